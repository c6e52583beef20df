"""Prometheus metrics: the service's /services/uws/metrics (operators only) move as a person
would expect when workspaces are made, jobs run, shares are copied and quotas refuse; job
starts are counted once, also across a service restart; the spawners' and the Slurm
monitor's metrics are on the hub's own /hub/metrics."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import Client
from jobutil import started, stop_and_wait, wait_job
from metricsutil import Scrape, hub_metrics

ME = "uwst-metrics"


def service_metrics(client: Client) -> Scrape:
    r = client.get(f"{client.hub.url}/services/uws/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return Scrape(r.text)


def eventually(read, check, timeout: float = 30):
    """Read until `check(value)` holds (the service counts on its next job sync)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        assert time.monotonic() < deadline, value
        time.sleep(0.25)


@pytest.fixture(scope="module")
def me(client_for) -> Client:
    return client_for(ME)


def new_workspace(client: Client, name: str, files=()) -> dict:
    r = client.post(
        "workspaces/",
        json={
            "name": name,
            "description": "d",
            "workspace_details": {"files": [{"name": n, "content": c} for n, c in files]},
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]["workspace"]


def test_only_operators_read_the_service_metrics(hub, me, anon, admin):
    r = me.get(f"{hub.url}/services/uws/metrics")
    assert r.status_code == 403 and "custom:uws:read:metrics" in r.json()["message"]
    assert anon.get(f"{hub.url}/services/uws/metrics").status_code == 401
    m = service_metrics(admin)
    assert m.value("uws_database_up") == 1
    for status in ("initializing", "idle", "active", "deleting", "error"):
        assert ("uws_workspaces", frozenset({("status", status)})) in m.samples
    assert ("uws_jobs", frozenset({("status", "running"), ("job_type", "test_job")})) in m.samples
    for name in (
        "uws_workspaces",
        "uws_jobs",
        "uws_job_queue_wait_seconds",
        "uws_job_server_start_seconds",
        "uws_share_copy_bytes",
        "uws_share_copy_files",
        "uws_share_copy_seconds",
        "uws_share_copies",
        "uws_quota_refusals",
        "uws_db_queries",
    ):
        assert m.help.get(name), name  # documented in the exposition itself


def test_workspaces_by_status(hub, me, admin):
    before = service_metrics(admin)
    ws = new_workspace(me, "counted")
    after = service_metrics(admin)
    idle = before.value("uws_workspaces", status="idle")
    assert after.value("uws_workspaces", status="idle") == idle + 1
    assert me.delete(f"workspaces/{ws['id']}/").status_code == 200
    eventually(
        lambda: service_metrics(admin).value("uws_workspaces", status="idle"),
        lambda v: v == idle,
    )
    # deleted rows are history, not a status anyone sees
    assert ("uws_workspaces", frozenset({("status", "deleted")})) not in after.samples


def test_jobs_by_status_and_start_durations(hub, me, admin):
    ws = new_workspace(me, "job metrics")
    svc, hub0 = service_metrics(admin), hub_metrics(hub)

    def jobs(m: Scrape, status: str) -> float:
        return m.value("uws_jobs", status=status, job_type="test_job")

    j = started(me, ws["id"], job_type="test_job")
    now = service_metrics(admin)
    assert jobs(now, "running") == jobs(svc, "running") + 1
    # the start is counted once the service's job sync has seen the job running
    waits = eventually(
        lambda: service_metrics(admin),
        lambda m: (
            m.value("uws_job_queue_wait_seconds_count", resource="local")
            == svc.value("uws_job_queue_wait_seconds_count", resource="local") + 1
        ),
    )
    assert (
        waits.value("uws_job_server_start_seconds_count", resource="local")
        == svc.value("uws_job_server_start_seconds_count", resource="local") + 1
    )
    job = wait_job(me, j["id"])
    metrics = job["job_details"]["metrics"]
    added = waits.value("uws_job_queue_wait_seconds_sum", resource="local") - svc.value(
        "uws_job_queue_wait_seconds_sum", resource="local"
    )
    assert added == pytest.approx(metrics["time_pending"], abs=0.01)

    stop_and_wait(me, j["id"])
    end = service_metrics(admin)
    assert jobs(end, "running") == jobs(svc, "running")
    assert jobs(end, "complete") == jobs(svc, "complete") + 1
    time.sleep(2.5)  # more job sync passes: nothing is counted twice
    later = service_metrics(admin)
    assert later.value("uws_job_queue_wait_seconds_count", resource="local") == waits.value(
        "uws_job_queue_wait_seconds_count", resource="local"
    )

    # the spawner's own metrics, on the hub's /hub/metrics
    hub1 = hub_metrics(hub)
    assert (
        hub1.value("uws_spawner_starts_total", kind="local", outcome="success")
        == hub0.value("uws_spawner_starts_total", kind="local", outcome="success") + 1
    )
    assert (
        hub1.value("uws_spawner_start_seconds_count", kind="local")
        == hub0.value("uws_spawner_start_seconds_count", kind="local") + 1
    )
    assert (
        hub1.value("uws_spawner_job_ends_total", kind="local", status="complete")
        == hub0.value("uws_spawner_job_ends_total", kind="local", status="complete") + 1
    )
    for name in (
        "uws_spawner_starts",
        "uws_spawner_start_seconds",
        "uws_spawner_job_ends",
        "uws_slurm_queries",
        "uws_slurm_query_errors",
        "uws_slurm_query_seconds",
        "uws_slurm_queue_up",
    ):
        assert hub1.help.get(name), name
    assert "jupyterhub_" in hub1.text  # the hub's own metrics are still there


def test_failed_start_is_counted_by_the_spawner(hub, me, admin):
    ws = new_workspace(me, "broken")
    before = hub_metrics(hub)
    r = me.put(f"workspaces/{ws['id']}/start/", json={"job_type": "broken_job"})
    # it fails so fast that the start request itself may already report it
    assert r.status_code == 200 or "failing on purpose" in r.json()["message"], r.text
    eventually(
        lambda: hub_metrics(hub).value("uws_spawner_starts_total", kind="local", outcome="failed"),
        lambda v: v == before.value("uws_spawner_starts_total", kind="local", outcome="failed") + 1,
    )


def test_share_copy_throughput(hub, me, admin, client_for):
    bob = client_for("uwst-bob")
    assert bob.get("users/me/quota").status_code == 200  # bob is known to uws
    found = me.get("users/", params={"search": "uwst-bob"}).json()["data"]["users"]
    bob_id = next(u["id"] for u in found if u["username"] == "uwst-bob")
    ws = new_workspace(me, "to copy", [("a.txt", "abc"), ("d/b.txt", "hello")])
    before = service_metrics(admin)
    r = me.post(
        "shared_workspaces/", json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]}
    )
    assert r.status_code == 200, r.text
    after = eventually(
        lambda: service_metrics(admin),
        lambda m: (
            m.value("uws_share_copies_total", outcome="done")
            == before.value("uws_share_copies_total", outcome="done") + 1
        ),
    )
    assert (
        after.value("uws_share_copy_files_total") == before.value("uws_share_copy_files_total") + 2
    )
    assert (
        after.value("uws_share_copy_bytes_total") == before.value("uws_share_copy_bytes_total") + 8
    )
    assert (
        after.value("uws_share_copy_seconds_count")
        == before.value("uws_share_copy_seconds_count") + 1
    )
    assert after.value("uws_share_copies_total", outcome="failed") == before.value(
        "uws_share_copies_total", outcome="failed"
    )


def test_quota_refusals_by_kind(hub, me, admin):
    ws = new_workspace(me, "quota")
    before = service_metrics(admin)
    try:
        r = admin.put(f"users/{ME}/quota", json={"disk_limit": 1, "core_hours_limit": 0})
        assert r.status_code == 200, r.text
        r = me.post(
            "workspaces/",
            json={
                "name": "too big",
                "description": "d",
                "workspace_details": {"files": [{"name": "x", "content": "xx"}]},
            },
        )
        assert r.status_code == 403, r.text
        r = me.put(f"workspaces/{ws['id']}/start/", json={"job_type": "test_job"})
        assert r.status_code == 403, r.text
        r = me.put(f"workspaces/{ws['id']}/start/", json={"job_type": "test_job"})
        assert r.status_code == 403, r.text
    finally:
        admin.put(f"users/{ME}/quota", json={"disk_limit": None, "core_hours_limit": None})
    after = service_metrics(admin)
    for kind, more in (("disk", 1), ("core_hours", 2)):
        assert (
            after.value("uws_quota_refusals_total", kind=kind)
            == before.value("uws_quota_refusals_total", kind=kind) + more
        )


def test_job_starts_are_counted_once_across_a_service_restart(hub, me, admin):
    """A job that reaches running while the service is down is counted after its restart; the
    starts the service had counted before are not counted again."""
    ws = new_workspace(me, "restart")
    first = started(me, ws["id"], job_type="test_job")
    eventually(  # counted before the restart
        lambda: service_metrics(admin).value("uws_job_queue_wait_seconds_count", resource="local"),
        lambda v: v >= 1,
    )
    stop_and_wait(me, first["id"])
    r = me.put(f"workspaces/{ws['id']}/start/", json={"job_type": "slow_job"})  # 6 s to start
    assert r.status_code == 200, r.text
    job_id = r.json()["data"]["job"]["id"]
    (old,) = hub.service_pids()
    os.kill(old, signal.SIGKILL)
    hub.wait_service_restarted(old)
    j = wait_job(me, job_id, ("running",), timeout=60)
    m = eventually(
        lambda: service_metrics(admin),
        lambda m: m.value("uws_job_queue_wait_seconds_count", resource="local") >= 1,
    )
    time.sleep(2.5)  # more job sync passes
    m = service_metrics(admin)
    assert m.value("uws_job_queue_wait_seconds_count", resource="local") == 1
    assert m.value("uws_job_server_start_seconds_count", resource="local") == 1
    assert m.value("uws_job_server_start_seconds_sum", resource="local") == pytest.approx(
        j["job_details"]["metrics"]["time_init"], abs=0.01
    )
    assert j["job_details"]["metrics"]["time_init"] >= 5  # the prologue's sleep
    stop_and_wait(me, job_id)
