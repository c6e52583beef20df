"""Quotas read from the database (`QuotaManager`): what counts towards a person's disk and
core-hours, the limits in force with operators' overrides, the refusals that count live jobs,
and the usage report. The arithmetic without a database is tests/unit/test_quotas.py; end to
end: tests/e2e/test_quota_periods.py, tests/e2e/test_shares.py::test_quotas_refuse_with_the_numbers
and ::test_quota_command_line."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from uws_hub.db.models import AuditEvent, Job, SharedWorkspace, User, Workspace
from uws_hub.quotas import QuotaExceeded, report_csv

from .domain import Domain

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


class Rows:
    """Workspaces and jobs written straight into the database, as scans and spawners leave
    them (the figures are what matters here, not the files)."""

    def __init__(self, domain: Domain):
        self.domain = domain

    def workspace(self, owner: User, disk: int, status: str = "idle", name: str = "w") -> int:
        with self.domain.db() as session:
            ws = Workspace(
                user_id=owner.id,
                name=name,
                status=status,
                disk_space=disk,
                file_path=f"x/{name}",
                datetime_created=NOW - 100 * HOUR,
                datetime_last_modified=NOW - 100 * HOUR,
            )
            session.add(ws)
            session.commit()
            return ws.id

    def copy_for(self, sender: User, recipient: User, original: int, disk: int, accepted: bool):
        copy = self.workspace(recipient, disk, name="copy")
        with self.domain.db() as session:
            session.add(
                SharedWorkspace(
                    original_workspace_id=original,
                    shared_workspace_id=copy,
                    sender_id=sender.id,
                    recipient_id=recipient.id,
                    is_accepted=accepted,
                    copy_status="done",
                )
            )
            session.commit()
        return copy

    def job(
        self,
        owner: User,
        ws_id: int,
        status: str,
        *,
        cpus: int = 1,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        core_seconds: int = 0,
        limit: dt.timedelta = 4 * HOUR,
    ) -> int:
        with self.domain.db() as session:
            job = Job(
                user_id=owner.id,
                workspace_id=ws_id,
                job_type="jupyter_lab",
                status=status,
                cpus=cpus,
                datetime_created=start or NOW,
                datetime_start=start,
                datetime_end=end,
                core_seconds=core_seconds,
                time_limit_s=int(limit.total_seconds()),
            )
            session.add(job)
            session.commit()
            return job.id


@pytest.fixture
def rows(domain):
    return Rows(domain)


def usage_of(domain: Domain, user: User, **kw):
    with domain.db() as session:
        return domain.quotas.usage(session, session.get(User, user.id), now=NOW, **kw)


def test_disk_use_is_the_sum_of_ones_workspaces(domain, rows):
    alice, bob = domain.user("alice"), domain.user("bob")
    first = rows.workspace(alice, 1000)
    rows.workspace(alice, 2000)
    rows.workspace(alice, 500, status="error")  # still on disk: counts
    rows.workspace(alice, 10**9, status="deleted")  # gone: does not
    rows.workspace(bob, 7)
    # a copy counts for its recipient once accepted, not while it is only offered
    rows.copy_for(alice, bob, first, 300, accepted=True)
    rows.copy_for(alice, bob, first, 50_000, accepted=False)

    assert usage_of(domain, alice).disk_used == 3500
    assert usage_of(domain, bob).disk_used == 307
    assert usage_of(domain, domain.user("carol")).disk_used == 0


def test_core_hours_are_finished_jobs_plus_the_running_burn(domain, rows):
    alice, bob = domain.user("alice"), domain.user("bob")
    ws = rows.workspace(alice, 0)
    # ended: the scheduler's figure, whatever their status
    rows.job(alice, ws, "complete", start=NOW - 10 * HOUR, end=NOW - 9 * HOUR, core_seconds=3600)
    rows.job(alice, ws, "failed", start=NOW - 8 * HOUR, end=NOW - 8 * HOUR, core_seconds=60)
    # live: elapsed × cores so far, and the rest of their time limits held
    rows.job(alice, ws, "running", cpus=2, start=NOW - HOUR, limit=3 * HOUR)
    rows.job(alice, ws, "stopping", cpus=1, start=NOW - HOUR / 2, limit=HOUR)
    pending = rows.job(alice, ws, "pending", cpus=4, limit=HOUR / 4)  # not started: holds it all
    rows.job(bob, rows.workspace(bob, 0), "complete", core_seconds=10**6, end=NOW)

    u = usage_of(domain, alice)
    assert u.core_seconds_used == 3660
    assert u.core_seconds_running == 2 * 3600 + 1800
    assert u.core_seconds_reserved == (2 * 3 * 3600 - 7200) + (3600 - 1800) + 4 * 900
    assert u.as_dict()["core_hours"]["used"] == "3.52"  # 3660 + 9000 core-seconds
    # the spawner re-checks a job without counting what the job itself holds
    assert usage_of(domain, alice, exclude_job_id=pending).core_seconds_reserved == 14400 + 1800


def test_a_period_counts_only_what_ran_within_it(tmp_path):
    with Domain(tmp_path, core_hours_period="month") as domain:
        rows = Rows(domain)
        alice = domain.user("alice")
        ws = rows.workspace(alice, 0)
        november = dt.datetime(2026, 11, 1, tzinfo=UTC)
        rows.job(alice, ws, "complete", start=november - 48 * HOUR, end=november - 47 * HOUR)
        # straddling the start of the month: the part in November, time × cores
        straddling = dict(cpus=2, start=november - HOUR, end=november + 2 * HOUR)
        rows.job(alice, ws, "complete", core_seconds=99999, **straddling)
        rows.job(alice, ws, "complete", start=NOW - 3 * HOUR, end=NOW - 2 * HOUR, core_seconds=3000)
        rows.job(alice, ws, "running", start=november - HOUR, limit=1000 * HOUR)

        u = usage_of(domain, alice)
        assert (u.period, u.period_start, u.period_end) == (
            "month",
            november,
            dt.datetime(2026, 12, 1, tzinfo=UTC),
        )
        assert u.core_seconds_used == 2 * 2 * 3600 + 3000
        assert u.core_seconds_running == int((NOW - november).total_seconds())


def test_limits_are_the_sites_unless_an_operator_set_ones_own(tmp_path):
    with Domain(tmp_path, default_disk_quota=10**9, default_core_hours_quota=100) as domain:
        alice, bob = domain.user("alice"), domain.user("bob")
        with domain.db() as session:
            a = session.get(User, alice.id)
            assert domain.quotas.limits(session, a) == (10**9, 360000)
            domain.quotas.set_limits(
                session, a, {"disk_limit": 5 * 10**9, "core_hours_limit": "2.5"}
            )
            session.commit()
            assert domain.quotas.limits(session, a) == (5 * 10**9, 9000)
            # back to the default for the disk only
            domain.quotas.set_limits(session, a, {"disk_limit": None})
            session.commit()
            assert domain.quotas.limits(session, a) == (10**9, 9000)
            assert domain.quotas.limits(session, session.get(User, bob.id)) == (10**9, 360000)

            events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
            assert [(e.action, e.username, e.details) for e in events] == [
                (
                    "quota.update",
                    "alice",
                    {"disk_limit": [None, 5 * 10**9], "core_hours_limit": [None, "2.5"]},
                ),
                ("quota.update", "alice", {"disk_limit": [5 * 10**9, None]}),
            ]

            shown = domain.quotas.describe(session, a)
            assert shown["overrides"] == {"disk_limit": None, "core_hours_limit": "2.5"}
            assert shown["defaults"] == {"disk_limit": 10**9, "core_hours_limit": "100"}
            assert shown["disk"]["limit"] == 10**9 and shown["core_hours"]["limit"] == "2.5"
            # everyone at once, by name, says the same as one by one
            everyone = domain.quotas.describe_all(session)
            assert [d["username"] for d in everyone] == ["alice", "bob"]
            assert everyone[0] == shown
            assert everyone[1] == domain.quotas.describe(session, session.get(User, bob.id))


def test_refusals_read_the_database(tmp_path):
    with Domain(tmp_path, default_disk_quota=4000, default_core_hours_quota=2) as domain:
        rows = Rows(domain)
        alice = domain.user("alice")
        ws = rows.workspace(alice, 3000)
        rows.job(alice, ws, "complete", core_seconds=3600, start=NOW - 2 * HOUR, end=NOW - HOUR)
        with domain.db() as session:
            a = session.get(User, alice.id)
            domain.quotas.check_disk(session, a, adding=1000, doing="upload these files")
            with pytest.raises(QuotaExceeded) as e:
                domain.quotas.check_disk(session, a, adding=1001, doing="upload these files")
            assert e.value.message.startswith(
                "Cannot upload these files: it needs 1001 bytes; you use 2.9 KiB of your 3.9 KiB "
                "disk quota (1000 bytes left)."
            )
            domain.quotas.check_core_hours(session, a, 1, 3600)
            with pytest.raises(QuotaExceeded) as e:
                domain.quotas.check_core_hours(session, a, 2, 3600)
            assert e.value.message.startswith(
                "This job asks for 2 cores × 1 h = 2 core-hours; you have 1 of 2 left."
            )
            # an operator's override of 0 is a limit of 0 (not unlimited)
            domain.quotas.set_limits(session, a, {"core_hours_limit": 0})
            session.commit()
            with pytest.raises(QuotaExceeded):
                domain.quotas.check_core_hours(session, a, 1, 60)


def test_the_usage_report_per_person_and_workspace(domain, rows):
    alice, bob = domain.user("alice"), domain.user("bob")
    w1 = rows.workspace(alice, 100, name="w1")
    w2 = rows.workspace(alice, 200, name="w2")
    wb = rows.workspace(bob, 300, name="wb")
    rows.job(alice, w1, "complete", start=NOW - 5 * HOUR, end=NOW - 4 * HOUR, core_seconds=3600)
    rows.job(alice, w1, "complete", start=NOW - 3 * HOUR, end=NOW - 2 * HOUR, core_seconds=1800)
    rows.job(alice, w2, "complete", start=NOW - 50 * HOUR, end=NOW - 49 * HOUR, core_seconds=3600)
    rows.job(bob, wb, "complete", start=NOW - 2 * HOUR, end=NOW - HOUR, cpus=4, core_seconds=14400)
    rows.job(bob, wb, "pending")  # never ran: not in the report

    with domain.db() as session:
        since = NOW - 10 * HOUR
        report = domain.quotas.report(session, since, NOW)
        assert report == [
            {
                "user": "alice",
                "workspace_id": w1,
                "workspace_name": "w1",
                "jobs": 2,
                "disk_space": 100,
                "core_hours": "1.5",
            },
            {
                "user": "bob",
                "workspace_id": wb,
                "workspace_name": "wb",
                "jobs": 1,
                "disk_space": 300,
                "core_hours": "4",
            },
        ]
        assert domain.quotas.report(session, since, NOW, session.get(User, bob.id)) == report[1:]
        assert report_csv(report).splitlines() == [
            "user,workspace_id,workspace_name,jobs,core_hours,disk_space",
            f"alice,{w1},w1,2,1.5,100",
            f"bob,{wb},wb,1,4,300",
        ]
        # a window cutting a job counts its part inside: bob's job, half of it
        assert domain.quotas.report(session, NOW - 1.5 * HOUR, NOW)[-1]["core_hours"] == "2"
