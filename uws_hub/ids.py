"""Record ids as clients send them: in paths, query filters and bodies.

Ids are 64-bit signed integers in the database. A number past that range can name no record,
and handing it to the database fails there (SQLite cannot bind it, PostgreSQL refuses it), so it
is refused here with a 400 that says the range; anything that is not a number names no record.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import BadRequest

MAX_ID = 2**63 - 1
#: a whole number as clients write one: ASCII digits, an optional minus (not "²", "５" or "--5")
_WHOLE = re.compile(r"-?[0-9]+")


def parse_id(value: Any, field: str) -> int | None:
    """`value` as an id: an int, or None when it is not a whole number (no record has it).
    Raises BadRequest for a whole number outside the range ids can have."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not _WHOLE.fullmatch(value):
            return None
        try:
            value = int(value)
        except ValueError as e:  # more digits than Python converts: surely out of range
            raise BadRequest(out_of_range(field)) from e
    if not isinstance(value, int):
        return None
    if not -MAX_ID - 1 <= value <= MAX_ID:
        raise BadRequest(out_of_range(field))
    return value


def out_of_range(field: str) -> str:
    return f"{field} is out of range: ids are whole numbers from 1 to {MAX_ID}."
