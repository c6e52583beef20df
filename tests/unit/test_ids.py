"""Record ids as clients send them (paths, query filters, bodies): a whole number in the 64-bit
range is an id, anything else names no record (None, so the caller answers 404 or an empty
list), and a whole number past the range is a 400 that says the range."""

from __future__ import annotations

import pytest

from uws_hub.errors import BadRequest
from uws_hub.ids import MAX_ID, parse_id


@pytest.mark.parametrize(
    "value, expected",
    [
        (7, 7),
        ("42", 42),
        (" 42 ", 42),
        ("007", 7),
        ("-3", -3),  # in range, and names no record
        (MAX_ID, MAX_ID),
        (str(MAX_ID), MAX_ID),
        (-MAX_ID - 1, -MAX_ID - 1),
    ],
)
def test_ids(value, expected):
    assert parse_id(value, "workspace_id") == expected


@pytest.mark.parametrize(
    "value",
    ["abc", "", " ", "-", "4.2", "1e3", "0x10", "--5", "\u00b2", "\uff15", "+5"]
    + [4.2, 7.0, True, False, None, [1], {"id": 1}],
)
def test_not_a_whole_number_names_no_record(value):
    assert parse_id(value, "workspace_id") is None


@pytest.mark.parametrize(
    "value", [MAX_ID + 1, str(MAX_ID + 1), -MAX_ID - 2, "9" * 30, "9" * 5000, 10**100]
)
def test_out_of_range_is_400(value):
    with pytest.raises(BadRequest) as e:
        parse_id(value, "workspace_id")
    assert e.value.status_code == 400
    assert e.value.message == (
        "workspace_id is out of range: ids are whole numbers from 1 to 9223372036854775807."
    )
