"""Disk quotas while jobs run (`uws_hub.diskwatch.DiskWatch`): people are told at 90 % and
100 % — once per crossing, not at every check — and once the grace has passed the operator's
action (none | warn | stop) applies to their running jobs, each once per crossing, audited.
End to end (a real JupyterLab filling the disk, the page banner, the e-mail over SMTP):
tests/e2e/test_disk_quota_jobs.py."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from uws_hub.db.models import AuditEvent, Job, Notification, User, UserQuota, Workspace, utcnow
from uws_hub.quotas import disk_level, duration_text

from .domain import Domain

LIMIT = 1_000_000


@pytest.fixture
def domain(tmp_path):
    with Domain(tmp_path, disk_quota_grace=600.0) as d:
        yield d


def limited(domain: Domain):
    """alice, with an address and a disk limit of `LIMIT` bytes."""
    user = domain.user("alice", email="alice@example.org")
    with domain.db() as session:
        domain.quotas.set_limits(session, session.merge(user), {"disk_limit": LIMIT})
        session.commit()
    return user


@pytest.fixture
def alice(domain):
    return limited(domain)


def use(domain: Domain, ws: Workspace, nbytes: int) -> None:
    """Make the workspace's last scan say `nbytes` (as a rescan after a job would)."""
    with domain.db() as session:
        session.get(Workspace, ws.id).disk_space = nbytes
        session.commit()


def mails(domain: Domain) -> list[tuple[str, str]]:
    with domain.db() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id))
        return [(n.kind, n.subject) for n in rows]


def events(domain: Domain, action: str) -> list[dict]:
    with domain.db() as session:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return [e.details for e in session.scalars(q)]


def running_job(domain: Domain, owner, ws: Workspace, started: dt.datetime) -> Job:
    job = domain.start_job(owner, ws)
    with domain.db() as session:
        row = session.get(Job, job.id)
        row.status, row.datetime_start = "running", started
        session.commit()
    return job


def test_levels_are_reached_at_90_and_100_percent_and_left_only_clearly_below():
    assert [disk_level(u, 1000) for u in (0, 899, 900, 999, 1000, 5000)] == [0, 0, 90, 90, 100, 100]
    assert disk_level(10**12, None) == 0  # unlimited
    assert disk_level(0, 0) == 0 and disk_level(1, 0) == 100  # a limit of nothing
    # told "exceeded": a usage just under the limit stays there; 2 % under leaves it
    assert disk_level(995, 1000, current=100) == 100
    assert disk_level(979, 1000, current=100) == 90
    assert disk_level(885, 1000, current=90) == 90 and disk_level(879, 1000, current=90) == 0
    assert duration_text(3600) == "1 hour" and duration_text(5400) == "90 minutes"
    assert duration_text(45) == "45 seconds" and duration_text(172800) == "2 days"


def test_people_are_told_once_per_crossing(domain, alice):
    ws = domain.create_workspace(alice)
    watch = domain.diskwatch
    use(domain, ws, LIMIT // 2)
    watch.check(None)
    assert mails(domain) == [] and events(domain, "quota.disk_level") == []

    use(domain, ws, LIMIT * 92 // 100)
    watch.check(None)
    watch.check(None)  # nothing new: no second mail
    assert mails(domain) == [
        ("quota_warning", "Your workspaces use 92 % of your disk quota on uws_hub")
    ]
    row = domain.fresh(UserQuota, alice.id)
    assert row.disk_level == 90 and row.disk_level_since is not None

    use(domain, ws, LIMIT + 1)
    watch.check(None)
    assert [k for k, _ in mails(domain)] == ["quota_warning", "quota_exceeded"]
    with domain.db() as session:
        body = session.scalars(select(Notification.body).order_by(Notification.id.desc())).first()
    assert "976.6 KiB, over your disk quota of 976.6 KiB" in body
    assert "Running jobs will be flagged after 10 minutes over the limit" in body

    use(domain, ws, LIMIT * 99 // 100)  # wavering just under the limit: still "exceeded"
    watch.check(None)
    assert domain.fresh(UserQuota, alice.id).disk_level == 100
    use(domain, ws, LIMIT * 95 // 100)  # clearly under: back to "warning", no mail for that
    watch.check(None)
    use(domain, ws, LIMIT * 2)  # over again: a new crossing, a new mail
    watch.check(None)
    assert [k for k, _ in mails(domain)] == ["quota_warning", "quota_exceeded", "quota_exceeded"]
    assert [(e["from"], e["level"]) for e in events(domain, "quota.disk_level")] == [
        ("ok", "warning"),
        ("warning", "exceeded"),
        ("exceeded", "warning"),
        ("warning", "exceeded"),
    ]


def test_quota_emails_can_be_turned_off(tmp_path):
    with Domain(tmp_path, quota_emails=False) as domain:
        alice = limited(domain)
        use(domain, domain.create_workspace(alice), LIMIT * 3)
        domain.diskwatch.check(None)
        assert mails(domain) == []  # not mailed, still recorded and shown
        assert domain.fresh(UserQuota, alice.id).disk_level == 100


def over_with_jobs(domain: Domain, alice) -> tuple[Job, Job, dt.datetime]:
    """alice over her limit since `t0`: one job running since before, one started 5 min after."""
    ws = domain.create_workspace(alice)
    other = domain.create_workspace(alice, name="other")
    t0 = utcnow()
    early = running_job(domain, alice, ws, t0 - dt.timedelta(hours=1))
    late = running_job(domain, alice, other, t0 + dt.timedelta(minutes=5))
    use(domain, ws, LIMIT * 2)
    assert domain.diskwatch.check(None, now=t0) == []
    return early, late, domain.fresh(UserQuota, alice.id).disk_level_since


def mark(domain: Domain, job: Job) -> dict | None:
    return domain.fresh(Job, job.id).job_details["current_job_details"].get("disk_quota")


def test_warn_flags_each_running_job_once_after_its_grace(domain, alice):
    early, late, since = over_with_jobs(domain, alice)
    watch = domain.diskwatch
    assert watch.check(None, now=since + dt.timedelta(minutes=9)) == []
    assert mark(domain, early) is None  # within the grace
    assert watch.check(None, now=since + dt.timedelta(minutes=10)) == []  # warn stops nothing
    flagged = mark(domain, early)
    assert flagged["action"] == "warn" and "1.9 MiB of 976.6 KiB" in flagged["message"]
    assert mark(domain, late) is None  # started later: its own grace
    watch.check(None, now=since + dt.timedelta(minutes=15))
    assert mark(domain, late)["action"] == "warn"
    watch.check(None, now=since + dt.timedelta(minutes=30))  # each job once
    assert events(domain, "quota.disk_action") == [
        {"action": "warn", "jobs": [early.id]},
        {"action": "warn", "jobs": [late.id]},
    ]
    assert [k for k, _ in mails(domain)] == ["quota_exceeded", "quota_action", "quota_action"]
    assert domain.fresh(Job, early.id).status == "running" and domain.hub.stopped() == []


def test_stop_stops_running_jobs_after_the_grace_with_the_reason(tmp_path):
    with Domain(tmp_path, disk_quota_grace=600.0, disk_quota_action="stop") as domain:
        alice = limited(domain)
        early, late, since = over_with_jobs(domain, alice)
        stops = domain.diskwatch.check(None, now=since + dt.timedelta(minutes=11))
        job = domain.fresh(Job, early.id)
        assert stops == [("alice", early.id, job.server_name)]
        assert job.status == "stopping"
        message = job.job_details["current_job_details"]["message"]
        assert message.startswith("Stopped: your workspaces stayed over your disk quota (1.9 MiB")
        assert domain.fresh(Job, late.id).status == "running"
        stop_events = events(domain, "job.stop")
        assert stop_events == [{"workspace_id": job.workspace_id}]
        with domain.db() as session:
            body = session.scalars(
                select(Notification.body).order_by(Notification.id.desc())
            ).first()
        assert f"running job {early.id} was stopped" in body

        # the service sends the stop to the hub
        async def sent():
            await domain.jobs.send_stops(stops)

        domain.run(sent())
        assert ("alice", job.server_name, False) in domain.hub.stopped()


def test_none_leaves_running_jobs_alone(tmp_path):
    with Domain(tmp_path, disk_quota_grace=0.0, disk_quota_action="none") as domain:
        alice = limited(domain)
        early, _late, since = over_with_jobs(domain, alice)
        assert domain.diskwatch.check(None, now=since + dt.timedelta(days=1)) == []
        assert mark(domain, early) is None and events(domain, "quota.disk_action") == []
        assert [k for k, _ in mails(domain)] == ["quota_exceeded"]  # told all the same


def test_the_quota_answer_says_where_the_person_stands_and_what_happens(domain, alice):
    ws = domain.create_workspace(alice)
    use(domain, ws, LIMIT * 2)
    with domain.db() as session:
        before = domain.quotas.describe(session, session.merge(alice))["disk"]
    assert before["level"] == "exceeded" and before["level_since"] is None  # not yet recorded
    assert before["action"] == {"policy": "warn", "grace_seconds": 600, "at": None}
    domain.diskwatch.check(None)
    with domain.db() as session:
        disk = domain.quotas.describe(session, session.merge(alice))["disk"]
    since = dt.datetime.fromisoformat(disk["level_since"].replace("Z", "+00:00"))
    assert disk["action"]["at"] == (since + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert disk["notice"] == (
        "You use 1.9 MiB of your 976.6 KiB disk quota: you are over it, so uploads and new "
        "workspaces are refused. Running jobs are flagged after 10 minutes over the limit. "
        "Delete files or workspaces you no longer need, or ask an administrator for more."
    )
    use(domain, ws, LIMIT * 91 // 100)
    with domain.db() as session:
        disk = domain.quotas.describe(session, session.merge(alice))["disk"]
    assert disk["level"] == "warning" and disk["notice"].startswith(
        "You use 888.7 KiB of your 976.6 KiB disk quota (91 %)."
    )


def test_a_rescan_checks_its_owner_at_once(domain, alice):
    ws = domain.create_workspace(alice)
    (domain.path(ws) / "big.bin").write_bytes(b"x" * (LIMIT + 4096))  # what a job wrote

    async def scan():
        await domain.rescans.scan_now(ws.id)

    domain.run(scan())
    assert domain.fresh(UserQuota, alice.id).disk_level == 100
    assert [k for k, _ in mails(domain)] == ["quota_exceeded"]


def test_the_watch_runs_one_check_at_a_time(domain, alice):
    ws = domain.create_workspace(alice)
    use(domain, ws, LIMIT * 2)

    async def together():
        await asyncio.gather(*(domain.diskwatch.check_user(alice.id) for _ in range(5)))

    domain.run(together())
    assert [k for k, _ in mails(domain)] == ["quota_exceeded"]  # one crossing, one mail
    assert len(events(domain, "quota.disk_level")) == 1


def test_no_action_once_under_the_limit_again_even_within_the_slack(domain, alice):
    """Cleaned up to 99 %: still recorded "exceeded" (the slack), but nothing is refused any
    more, so no job is flagged or stopped and the notice no longer says "over"."""
    early, _late, since = over_with_jobs(domain, alice)
    with domain.db() as session:
        ws_id = session.get(Job, early.id).workspace_id
    use(domain, domain.fresh(Workspace, ws_id), LIMIT * 99 // 100)
    domain.diskwatch.check(None, now=since + dt.timedelta(hours=2))
    assert domain.fresh(UserQuota, alice.id).disk_level == 100
    assert mark(domain, early) is None and events(domain, "quota.disk_action") == []
    with domain.db() as session:
        disk = domain.quotas.describe(session, session.merge(alice))["disk"]
    assert "of your 976.6 KiB disk quota (99 %). Delete files" in disk["notice"]
    assert disk["action"]["at"] is None


def test_people_deleted_from_the_hub_are_told_nothing(domain, alice):
    ws = domain.create_workspace(alice)
    use(domain, ws, LIMIT * 2)
    with domain.db() as session:
        session.get(User, alice.id).deleted_at = utcnow()
        session.commit()
    domain.diskwatch.check(None)
    assert mails(domain) == [] and events(domain, "quota.disk_level") == []


def test_a_warning_flag_goes_when_the_person_is_under_the_limit_again(domain, alice):
    early, _late, since = over_with_jobs(domain, alice)
    domain.diskwatch.check(None, now=since + dt.timedelta(minutes=11))
    assert mark(domain, early)["action"] == "warn"
    with domain.db() as session:
        ws_id = session.get(Job, early.id).workspace_id
    use(domain, domain.fresh(Workspace, ws_id), LIMIT // 2)  # cleaned up
    domain.diskwatch.check(None, now=since + dt.timedelta(minutes=12))
    assert mark(domain, early) is None
