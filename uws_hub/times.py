"""Times given by people (query arguments, command-line options): one parser for the API and
the command line, so a date means the same everywhere."""

from __future__ import annotations

import datetime as dt

from .errors import BadRequest


def parse_time(value: str | None, name: str) -> dt.datetime | None:
    """A date (YYYY-MM-DD) or ISO-8601 time; UTC if it names no zone; None if empty.
    A bad value is a BadRequest naming `name`."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD) or an ISO-8601 time.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def parse_range(
    start: str | None, end: str | None, names: tuple[str, str] = ("from", "to")
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) from two optional values; the end must come after the start."""
    since, until = parse_time(start, names[0]), parse_time(end, names[1])
    if since and until and until <= since:
        raise BadRequest(f"{names[1]} must be after {names[0]}.")
    return since, until
