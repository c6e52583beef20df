"""Quota arithmetic without a database: core-seconds within a period, the figures people read
(hours, sizes), the limits in force, the operator's input, and the refusals that name the
numbers."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from uws_hub.errors import BadRequest
from uws_hub.quotas import (
    QuotaExceeded,
    QuotaManager,
    Usage,
    core_seconds_within,
    hours,
    human_bytes,
)

UTC = dt.timezone.utc


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_core_seconds_within_a_period():
    p0, p1, now = at(2026, 11, 1), at(2026, 12, 1), at(2026, 11, 10)
    # wholly inside: the scheduler's recorded figure
    assert core_seconds_within(at(2026, 11, 2), at(2026, 11, 2, 1), 4, 7000, p0, p1, now) == 7000
    # straddling the start: from the start, time × cores
    assert core_seconds_within(at(2026, 10, 31, 23), at(2026, 11, 1, 2), 2, 0, p0, p1, now) == 14400
    # ended before: nothing; not started: nothing
    assert core_seconds_within(at(2026, 10, 1), at(2026, 10, 2), 8, 10**6, p0, p1, now) == 0
    assert core_seconds_within(None, None, 8, 0, p0, p1, now) == 0
    # still running: until now
    assert core_seconds_within(at(2026, 11, 9), None, 3, None, p0, p1, now) == 3 * 86400


def test_core_seconds_past_the_period_end_and_without_cores():
    p0, p1, now = at(2026, 11, 1), at(2026, 12, 1), at(2026, 12, 5)
    # straddling the end: only the part before it
    assert (
        core_seconds_within(at(2026, 11, 30, 23), at(2026, 12, 1, 1), 2, 999, p0, p1, now) == 7200
    )
    # ended without a recorded figure: time × cores; no core count: one core
    assert (
        core_seconds_within(at(2026, 11, 2), at(2026, 11, 2, 0, 10), 2, None, p0, p1, now) == 1200
    )
    assert (
        core_seconds_within(at(2026, 11, 2), at(2026, 11, 2, 0, 10), None, None, p0, p1, now) == 600
    )
    # started after the period: nothing
    assert core_seconds_within(at(2026, 12, 2), None, 4, None, p0, p1, now) == 0


@pytest.mark.parametrize(
    "core_seconds, shown",
    [
        (0, "0"),
        (1, "0"),
        (17, "0"),
        (18, "0"),
        (19, "0.01"),
        (60, "0.02"),
        (3600, "1"),
        (5400, "1.5"),
        (45000, "12.5"),
        (3600 * 10**6, "1000000"),
    ],
)
def test_hours(core_seconds, shown):
    assert hours(core_seconds) == shown


@pytest.mark.parametrize(
    "n, shown",
    [
        (None, "unlimited"),
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (10000, "9.8 KiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (2048 * 1024**4, "2048.0 TiB"),  # no unit past TiB
    ],
)
def test_human_bytes(n, shown):
    assert human_bytes(n) == shown


def test_usage_figures():
    u = Usage(
        disk_used=3000,
        disk_limit=2000,
        core_seconds_used=5400,
        core_seconds_running=1800,
        core_seconds_limit=3600 * 10,
        core_seconds_reserved=3600,
        period="quarter",
        period_start=at(2026, 11, 1),
        period_end=at(2027, 2, 1),
    )
    assert u.disk_left == 0  # over the limit (it was lowered): nothing left, never negative
    assert u.core_seconds_total == 7200 and u.core_seconds_left == 3600 * 8
    assert u.as_dict() == {
        # over the limit, not yet recorded by the watch: no "since"
        "disk": {"used": 3000, "limit": 2000, "left": 0, "level": "exceeded", "level_since": None},
        "core_hours": {
            "used": "2",
            "finished": "1.5",
            "running": "0.5",
            "limit": "10",
            "left": "8",
            "reserved": "1",
            "period": {
                "name": "quarter",
                "start": "2026-11-01T00:00:00Z",
                "end": "2027-02-01T00:00:00Z",
            },
        },
    }


def test_unlimited_usage():
    u = Usage(
        disk_used=10,
        disk_limit=None,
        core_seconds_used=0,
        core_seconds_running=0,
        core_seconds_limit=None,
    )
    assert u.disk_left is None and u.core_seconds_left is None
    shown = u.as_dict()
    assert shown["disk"] == {
        "used": 10,
        "limit": None,
        "left": None,
        "level": "ok",
        "level_since": None,
    }
    assert shown["core_hours"]["limit"] is None and shown["core_hours"]["left"] is None
    assert shown["core_hours"]["period"] == {"name": "all", "start": None, "end": None}


# ---- limits in force -------------------------------------------------------------------------


def manager(disk: int = 0, core_hours: float = 0) -> QuotaManager:
    return QuotaManager(
        SimpleNamespace(default_disk_quota=disk, default_core_hours_quota=core_hours)
    )


class OneRow:
    """A session holding one person's uws_user_quotas row (or none)."""

    def __init__(self, disk_limit=None, core_seconds_limit=None, *, exists=True):
        self.row = (
            SimpleNamespace(disk_limit=disk_limit, core_seconds_limit=core_seconds_limit)
            if exists
            else None
        )

    def get(self, model, key):
        return self.row


ALICE = SimpleNamespace(id=1, name="alice")


@pytest.mark.parametrize(
    "site, row, limits",
    [
        ((0, 0), OneRow(exists=False), (None, None)),  # 0: unlimited
        ((10**9, 1.5), OneRow(exists=False), (10**9, 5400)),  # the site's defaults
        ((10**9, 1.5), OneRow(None, None), (10**9, 5400)),  # null overrides: the defaults
        ((10**9, 1.5), OneRow(5 * 10**9, 36000), (5 * 10**9, 36000)),  # her own
        ((0, 0), OneRow(2000, None), (2000, None)),
        ((10**9, 0), OneRow(0, 0), (0, 0)),  # an override of 0 is a limit of 0, not unlimited
    ],
)
def test_limits_in_force(site, row, limits):
    assert manager(*site).limits(row, ALICE) == limits


@pytest.mark.parametrize(
    "body, changes",
    [
        ({"disk_limit": 10**12}, {"disk_limit": 10**12}),
        ({"disk_limit": 0}, {"disk_limit": 0}),
        ({"core_hours_limit": 12.5}, {"core_hours_limit": 12.5}),
        ({"core_hours_limit": "12.5"}, {"core_hours_limit": "12.5"}),
        (
            {"disk_limit": None, "core_hours_limit": None},
            {"disk_limit": None, "core_hours_limit": None},
        ),
    ],
)
def test_operator_limits(body, changes):
    assert QuotaManager.parse_limits(body) == changes


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, 'Send {"disk_limit": bytes|null, "core_hours_limit": hours|null}.'),
        ([10], 'Send {"disk_limit": bytes|null, "core_hours_limit": hours|null}.'),
        ({"disk": 10}, "Unknown fields: ['disk']; use disk_limit and core_hours_limit."),
        (
            {"disk_limit": -1},
            "disk_limit must be a number of bytes (0 or more) or null for the default.",
        ),
        (
            {"disk_limit": "5G"},
            "disk_limit must be a number of bytes (0 or more) or null for the default.",
        ),
        (
            {"disk_limit": 1.5},
            "disk_limit must be a number of bytes (0 or more) or null for the default.",
        ),
        (
            {"disk_limit": True},
            "disk_limit must be a number of bytes (0 or more) or null for the default.",
        ),
        *(
            (
                {"core_hours_limit": v},
                "core_hours_limit must be a number of hours (0 or more) or null for the default.",
            )
            for v in ("lots", -1, True, 10**10, float("inf"), "NaN", [1])
        ),
    ],
)
def test_operator_limit_mistakes(body, message):
    with pytest.raises(BadRequest) as e:
        QuotaManager.parse_limits(body)
    assert e.value.status_code == 400
    assert e.value.message == message


# ---- refusals ------------------------------------------------------------------------------


def usage(**kw) -> Usage:
    figures = dict(
        disk_used=0,
        disk_limit=None,
        core_seconds_used=0,
        core_seconds_running=0,
        core_seconds_limit=None,
    )
    return Usage(**{**figures, **kw})


def test_disk_refusal_names_the_numbers():
    q = manager()
    u = usage(disk_used=1024, disk_limit=10 * 1024)
    q.check_disk_usage(u, adding=9 * 1024, doing="upload these files")  # exactly full: allowed
    with pytest.raises(QuotaExceeded) as e:
        q.check_disk_usage(u, adding=10000, doing="upload these files")
    assert e.value.status_code == 403
    assert e.value.message == (
        "Cannot upload these files: it needs 9.8 KiB; you use 1.0 KiB of your 10.0 KiB disk quota "
        "(9.0 KiB left). Delete files or workspaces you no longer need, or ask an administrator "
        "for more."
    )
    # already over (the limit was lowered): even adding nothing is refused, and says so
    with pytest.raises(QuotaExceeded) as e:
        q.check_disk_usage(
            usage(disk_used=4096, disk_limit=2048), adding=0, doing="create a workspace"
        )
    assert e.value.message.startswith(
        "Cannot create a workspace: you use 4.0 KiB of your 2.0 KiB disk quota (0 bytes left)."
    )
    q.check_disk_usage(usage(disk_used=10**15), adding=10**15, doing="upload")  # unlimited


class Known(QuotaManager):
    """A QuotaManager whose usage figures are given instead of read from the database."""

    def __init__(self, u: Usage):
        super().__init__(SimpleNamespace(default_disk_quota=0, default_core_hours_quota=0))
        self.u = u

    def usage(self, session, user, now=None, exclude_job_id=None) -> Usage:
        return self.u


def refusal(u: Usage, cpus: int, time_limit_s: int) -> str:
    with pytest.raises(QuotaExceeded) as e:
        Known(u).check_core_hours(None, ALICE, cpus, time_limit_s)
    assert e.value.status_code == 403
    return e.value.message


def test_core_hours_refusal_names_the_numbers():
    u = usage(core_seconds_limit=3600)
    Known(u).check_core_hours(None, ALICE, 1, 3600)  # exactly what is left: allowed
    assert refusal(u, 2, 3600) == (
        "This job asks for 2 cores × 1 h = 2 core-hours; you have 1 of 1 left. Ask for fewer "
        "cores or a shorter time limit, or ask an administrator for more core-hours."
    )
    assert refusal(usage(core_seconds_limit=1800), 1, 3600).startswith(
        "This job asks for 1 core × 1 h = 1 core-hour; you have 0.5 of 0.5 left."
    )


def test_running_jobs_hold_the_rest_of_their_time():
    u = usage(core_seconds_limit=2 * 3600, core_seconds_running=600, core_seconds_reserved=3000)
    assert "you have 1 of 2 left (0.83 more are held by your running jobs)." in refusal(u, 1, 5400)
    Known(u).check_core_hours(None, ALICE, 1, 3600)


def test_core_hours_refusal_says_when_they_renew():
    u = usage(
        core_seconds_used=3600,
        core_seconds_limit=3600,
        period="month",
        period_start=at(2026, 11, 1),
        period_end=at(2026, 12, 1),
    )
    assert refusal(u, 4, 1800) == (
        "This job asks for 4 cores × 0.5 h = 2 core-hours; you have 0 of 1 left this month. Ask "
        "for fewer cores or a shorter time limit, wait until 2026-12-01 when they renew, or ask "
        "an administrator for more core-hours."
    )


def test_no_core_hour_limit_allows_anything():
    Known(usage(core_seconds_used=10**9)).check_core_hours(None, ALICE, 64, 10**7)
