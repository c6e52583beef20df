"""Times people give (query arguments, command-line options) and the accounting periods that
core-hour limits count within."""

from __future__ import annotations

import datetime as dt

import pytest

from uws_hub.errors import BadRequest
from uws_hub.times import accounting_period, parse_range, parse_time

UTC = dt.timezone.utc


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-28", at(2026, 11, 28)),  # a date: its midnight, UTC
        ("2026-11-28T10:30:00", at(2026, 11, 28, 10, 30)),  # no zone: UTC
        ("2026-11-28T10:30:00Z", at(2026, 11, 28, 10, 30)),
        (" 2026-11-28T10:30Z ", at(2026, 11, 28, 10, 30)),
        ("2026-11-28T12:30:00+02:00", at(2026, 11, 28, 10, 30)),  # the same instant
    ],
)
def test_times(value, expected):
    when = parse_time(value, "from")
    assert when == expected and when.tzinfo is not None


@pytest.mark.parametrize("value", [None, ""])
def test_no_time(value):
    assert parse_time(value, "from") is None


@pytest.mark.parametrize("value", ["yesterday", "28/11/2026", "2026-13-01", "2026-11-28 25:00"])
def test_bad_times_name_the_argument(value):
    with pytest.raises(BadRequest) as e:
        parse_time(value, "since")
    assert e.value.status_code == 400
    assert e.value.message == "since must be a date (YYYY-MM-DD) or an ISO-8601 time."


def test_ranges():
    assert parse_range("2026-11-01", "2026-12-01") == (at(2026, 11, 1), at(2026, 12, 1))
    assert parse_range(None, "2026-12-01") == (None, at(2026, 12, 1))
    assert parse_range("2026-11-01", "") == (at(2026, 11, 1), None)
    for start, end in (("2026-12-01", "2026-11-01"), ("2026-11-01", "2026-11-01")):
        with pytest.raises(BadRequest) as e:
            parse_range(start, end)
        assert e.value.message == "to must be after from."
    with pytest.raises(BadRequest) as e:
        parse_range("2026-12-01", "2026-11-01", ("--since", "--until"))
    assert e.value.message == "--until must be after --since."
    with pytest.raises(BadRequest, match="^to must be a date"):
        parse_range("2026-11-01", "soon")


@pytest.mark.parametrize(
    "period, first_month, now, start, end",
    [
        ("all", 1, at(2026, 11, 28, 21), None, None),
        ("month", 1, at(2026, 11, 28, 21), at(2026, 11, 1), at(2026, 12, 1)),
        ("month", 1, at(2026, 12, 31, 23, 59), at(2026, 12, 1), at(2027, 1, 1)),
        ("quarter", 1, at(2026, 11, 28), at(2026, 10, 1), at(2027, 1, 1)),
        ("quarter", 2, at(2026, 11, 28), at(2026, 11, 1), at(2027, 2, 1)),
        ("quarter", 2, at(2027, 1, 31), at(2026, 11, 1), at(2027, 2, 1)),
        ("year", 1, at(2026, 1, 1), at(2026, 1, 1), at(2027, 1, 1)),
        ("year", 7, at(2026, 6, 30, 23), at(2025, 7, 1), at(2026, 7, 1)),
        ("year", 7, at(2026, 7, 1), at(2026, 7, 1), at(2027, 7, 1)),
    ],
)
def test_accounting_periods(period, first_month, now, start, end):
    assert accounting_period(period, first_month, now) == (start, end)


@pytest.mark.parametrize("period", ["month", "quarter", "year"])
@pytest.mark.parametrize("first_month", [1, 2, 7, 12])
def test_periods_tile_the_calendar(period, first_month):
    """Every instant lies in exactly one period, and the next period starts where it ends."""
    now = at(2025, 1, 1)
    start, end = accounting_period(period, first_month, now)
    while now < at(2028, 1, 1):
        s, e = accounting_period(period, first_month, now)
        assert s <= now < e
        if s != start:
            assert s == end  # no gap, no overlap
            start, end = s, e
        now += dt.timedelta(days=13, hours=7)
