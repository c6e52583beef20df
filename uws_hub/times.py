"""Times given by people (query arguments, command-line options): one parser for the API and
the command line, so a date means the same everywhere."""

from __future__ import annotations

import datetime as dt

from .errors import BadRequest


def utc_text(when: dt.datetime | None) -> str | None:
    """`when` as the API writes times: ``2026-12-06T05:14:53Z`` (None stays None)."""
    return None if when is None else when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None, name: str) -> dt.datetime | None:
    """A date (YYYY-MM-DD) or ISO-8601 time; UTC if it names no zone; None if empty.
    A bad value is a BadRequest naming `name`."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD) or an ISO-8601 time.") from e
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def parse_range(
    start: str | None, end: str | None, names: tuple[str, str] = ("from", "to")
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) from two optional values; the end must come after the start."""
    since, until = parse_time(start, names[0]), parse_time(end, names[1])
    if since and until and until <= since:
        raise BadRequest(f"{names[1]} must be after {names[0]}.")
    return since, until


PERIODS = {"all": 0, "month": 1, "quarter": 3, "year": 12}


def accounting_period(
    period: str, first_month: int, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) of the accounting period (UTC) that contains `now`: calendar months,
    quarters or years, the latter two counted from `first_month` (1–12; e.g. 7 for allocation
    years from July). ``all``: (None, None), usage never resets."""
    length = PERIODS[period]
    if not length:
        return None, None
    index = now.year * 12 + now.month - 1  # months since year 0
    anchor = first_month - 1
    first = (index - anchor) // length * length + anchor

    def month_start(i: int) -> dt.datetime:
        return dt.datetime(i // 12, i % 12 + 1, 1, tzinfo=dt.timezone.utc)

    return month_start(first), month_start(first + length)
