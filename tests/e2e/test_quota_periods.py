"""Core-hour limits per accounting period (c.UWS.core_hours_period): usage counts only what
jobs ran within the current month, quarter or year — a job straddling its start counts from
it — the quota and the usage report agree, and a refusal says when the core-hours renew.
(The period arithmetic itself: tests/unit/test_times.py and tests/unit/test_quotas.py.)"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Client
from uws_hub.quotas import hours
from uws_hub.times import accounting_period

ME = "uwst-period"
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def qhub(hub_factory):
    # quarters counted from February: Nov–Jan, Feb–Apr, May–Jul, Aug–Oct
    return hub_factory(
        "periods",
        system_users=[ME],
        extra_config='c.UWS.core_hours_period = "quarter"\nc.UWS.core_hours_year_start = 2\n',
    )


def test_usage_counts_this_period_only(qhub):
    me = Client.of(qhub, ME)
    admin = Client.of(qhub, "uwst-admin")
    ws = me.post("workspaces/", json={"name": "periods", "description": "d"})
    assert ws.status_code == 200, ws.text
    ws = ws.json()["data"]["workspace"]
    now = dt.datetime.now(UTC)
    p_start, p_end = accounting_period("quarter", 2, now)
    # jobs that ran before this quarter (as the database would hold them after months of use)
    inside = min(dt.timedelta(hours=1), (now - p_start) / 2)
    straddling_s = 2 * int(inside.total_seconds())
    from uws_hub.db.models import Job, User
    from uws_hub.db.session import make_engine, make_sessionmaker

    Session = make_sessionmaker(make_engine(f"sqlite:///{qhub.dir}/uws.sqlite"))
    with Session() as s:
        user_id = s.query(User).filter_by(name=ME).one().id

        def ended(start, end, cpus, core_seconds):
            s.add(
                Job(
                    user_id=user_id,
                    workspace_id=ws["id"],
                    job_type="test_job",
                    resource="local",
                    status="complete",
                    datetime_created=start,
                    datetime_start=start,
                    datetime_end=end,
                    cpus=cpus,
                    core_seconds=core_seconds,
                    server_removed=True,
                    start_observed=True,
                )
            )

        ended(p_start - dt.timedelta(days=3), p_start - dt.timedelta(days=2), 4, 4 * 86400)
        ended(p_start - dt.timedelta(hours=2), p_start + inside, 2, 2 * 3 * 3600)
        s.commit()

    q = me.get("users/me/quota").json()["data"]["core_hours"]
    assert q["period"] == {
        "name": "quarter",
        "start": p_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": p_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert q["used"] == q["finished"] == hours(straddling_s), q
    # the usage report over the same dates says the same
    r = admin.get("usage/", params={"from": p_start.date().isoformat(), "user": ME})
    assert r.status_code == 200, r.text
    (row,) = r.json()["data"]["usage"]
    assert row["core_hours"] == hours(straddling_s) and row["jobs"] == 1

    # a refusal names the period and when the core-hours renew
    assert admin.put(f"users/{ME}/quota", json={"core_hours_limit": 1}).status_code == 200
    r = me.put(
        f"workspaces/{ws['id']}/start/",
        json={"job_type": "test_job", "resource_options": {"num_cpus": 2, "time_limit_min": 60}},
    )
    assert r.status_code == 403, r.text
    left = hours(max(0, 3600 - straddling_s))
    assert f"you have {left} of 1 left this quarter" in r.json()["message"], r.text
    assert f"wait until {p_end:%Y-%m-%d} when they renew" in r.json()["message"]

    # the command line shows the same
    out = subprocess.run(
        [str(Path(sys.executable).parent / "uws-hub"), "quota", "show", ME, "-f"]
        + [str(Path(__file__).parent / "hub_config.py")],
        env=qhub.env,
        capture_output=True,
        text=True,
        cwd=qhub.dir,
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["core_hours"]
    assert shown["period"]["name"] == "quarter" and shown["used"] == hours(straddling_s)


@pytest.mark.parametrize("period", ["all", "month"])
def test_everyones_quotas_in_one_go_match_each_persons(tmp_path, period):
    """describe_all (the admin page; grouped queries) gives what describe gives each person."""
    from traitlets.config import Config

    from uws_hub.config import UWS
    from uws_hub.db import migrate
    from uws_hub.db.models import Job, SharedWorkspace, User, UserQuota, Workspace
    from uws_hub.db.session import make_engine, make_sessionmaker
    from uws_hub.quotas import QuotaManager

    c = Config()
    c.UWS.root_dir = str(tmp_path)
    c.UWS.db_url = f"sqlite:///{tmp_path}/uws.sqlite"
    c.UWS.default_core_hours_quota = 100.0
    c.UWS.core_hours_period = period
    settings = UWS(config=c)
    engine = make_engine(settings.db_url)
    migrate.upgrade(engine)
    Session = make_sessionmaker(engine)
    now = dt.datetime.now(UTC)
    p_start = accounting_period("month", 1, now)[0]
    with Session() as s:
        ann, bo, cy = (User(name=n) for n in ("ann", "bo", "cy"))  # cy: nothing at all
        s.add_all([ann, bo, cy])
        s.flush()
        ws = [
            Workspace(user_id=ann.id, name="a", disk_space=1000, status="idle"),
            Workspace(user_id=ann.id, name="gone", disk_space=5000, status="deleted"),
            Workspace(user_id=bo.id, name="b", disk_space=300, status="idle"),
            Workspace(user_id=bo.id, name="copy", disk_space=7000, status="idle"),
        ]
        s.add_all(ws)
        s.flush()
        # bo has not accepted the copy yet: it counts for nobody
        s.add(
            SharedWorkspace(
                original_workspace_id=ws[0].id,
                shared_workspace_id=ws[3].id,
                sender_id=ann.id,
                recipient_id=bo.id,
            )
        )

        def job(user, status, start, end, cpus, core_seconds=0, limit=None):
            s.add(
                Job(
                    user_id=user.id,
                    workspace_id=ws[0].id if user is ann else ws[2].id,
                    job_type="test_job",
                    status=status,
                    datetime_created=start or now,
                    datetime_start=start,
                    datetime_end=end,
                    cpus=cpus,
                    core_seconds=core_seconds,
                    time_limit_s=limit,
                )
            )

        long_ago = p_start - dt.timedelta(days=40)
        d = min(dt.timedelta(minutes=1), (now - p_start) / 4)  # recent, and within this month
        job(ann, "complete", long_ago, long_ago + dt.timedelta(hours=1), 2, 7200)
        job(ann, "complete", now - 2 * d, now - d, 1, 60)
        job(bo, "failed", now - 3 * d, now - 2 * d, 4, 240)
        job(bo, "pending", None, None, 2, limit=3600)  # in the queue: holds 2 core-hours
        s.add(UserQuota(user_id=bo.id, core_seconds_limit=36000))
        s.commit()

        qm = QuotaManager(settings)
        people = s.query(User).order_by(User.name).all()
        each = [qm.describe(s, u) for u in people]
        everyone = qm.describe_all(s)
    assert everyone == each
    got = {q["username"]: q for q in everyone}
    assert got["ann"]["disk"]["used"] == 1000 and got["bo"]["disk"]["used"] == 300
    assert got["ann"]["core_hours"]["used"] == (hours(60) if period == "month" else hours(7260))
    assert got["bo"]["core_hours"]["used"] == hours(240)
    assert got["bo"]["core_hours"]["reserved"] == "2" and got["bo"]["core_hours"]["limit"] == "10"
    assert got["cy"]["core_hours"]["used"] == "0" and got["cy"]["disk"]["used"] == 0
    assert got["cy"]["core_hours"]["limit"] == "100"
