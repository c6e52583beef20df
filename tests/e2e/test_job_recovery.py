"""Job status across restarts and outages: hub restart (jobs re-adopted with one scheduler
query per cluster), slurmctld down for 60 s (no job marked failed; the other cluster's jobs
carry on and new ones start there), uws service restart (rows catch up), orphans cancelled
(scancel, and slurmrestd as the job's owner)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import Client
from hubtest import REPO, HubProcess
from jobutil import ensure_slurm, job, scontrol, server_base, started, stop_and_wait, wait_job
from metricsutil import Scrape, hub_metrics


@pytest.fixture(scope="module")
def rhub(hub_factory):
    ensure_slurm()
    # polls every 15 s, a queue snapshot lives 20 s: start-up re-adoption is the only query then
    return hub_factory(
        "recovery", env={"UWS_TEST_SLURM_POLL": "20", "UWS_TEST_POLL_INTERVAL": "15"}
    )


@pytest.fixture(scope="module")
def ralice(rhub):
    return Client.of(rhub, "uwst-alice")


def workspace(client) -> dict:
    r = client.post("workspaces/", json={"name": "recovery", "description": "d"})
    assert r.status_code == 200, r.text
    return r.json()["data"]["workspace"]


#: the first cluster through its commands, the second through its slurmrestd (hub_config.py)
FIRST = {"cluster": "default", "way": "commands"}
SECOND = {"cluster": "uws2", "way": "rest"}


def squeue_count(hub: HubProcess, cluster: dict = FIRST) -> float:
    """Queue reads of all jobs: squeue, or slurmrestd's GET jobs, on `cluster`."""
    return hub_metrics(hub).value("uws_slurm_queries_total", **cluster, command="squeue")


def squeue_errors(scrape: Scrape) -> float:
    """Failed squeue calls, whatever the reason (no answer in time, an error exit)."""
    return sum(
        scrape.value("uws_slurm_query_errors_total", **FIRST, command="squeue", reason=reason)
        for reason in ("timeout", "exit", "exec")
    )


def reachable(client, j: dict) -> bool:
    r = requests.get(server_base(j) + "whoami", headers=client.session.headers, timeout=30)
    return r.status_code == 200 and r.json()["job_id"] == str(j["id"])


def test_hub_restart_readopts_running_jobs(rhub, ralice):
    jobs = [started(ralice, workspace(ralice)["id"], job_type="test_job", resource="local")]
    jobs += [
        started(ralice, workspace(ralice)["id"], job_type="test_job", resource=resource)
        for resource in ("slurm", "slurm", "slurm", "slurm2", "slurm2")
    ]
    rhub.stop()  # cleanup_servers = False: the jobs keep running
    for j in jobs:
        if j["resource"].startswith("slurm"):
            assert scontrol(j["resource_job_id"], j["resource"])["JobState"] == "RUNNING"
        else:
            os.kill(j["resource_job_id"], 0)  # still alive
    rhub.start()
    # all re-adopted: one queue read per cluster answered every Slurm job's poll at start-up
    # (squeue on the first, one slurmrestd request on the second)
    assert squeue_count(rhub) == 1 and squeue_count(rhub, SECOND) == 1
    for j in jobs:
        now = job(ralice, j["id"])
        assert now["status"] == "running", now
        assert reachable(ralice, now)
    users = rhub.hub_api("GET", "users/uwst-alice").json()
    for j in jobs:
        assert users["servers"][f"job-{j['id']}"]["ready"] is True
    # and they still stop normally
    for j in jobs:
        assert stop_and_wait(ralice, j["id"])["status"] == "complete"


def test_slurmctld_down_for_a_minute(rhub, ralice):
    """The first cluster's controller goes away for a minute: its job stays running (unknown
    is not ended); the second cluster's jobs carry on, and new ones start there."""
    j = started(ralice, workspace(ralice)["id"], job_type="test_job", resource="slurm")
    other = started(ralice, workspace(ralice)["id"], job_type="test_job", resource="slurm2")
    before = hub_metrics(rhub)
    assert before.value("uws_slurm_queue_up", cluster="default") == 1
    pidfile = "/tmp/uws-slurm/slurmctld.pid"
    os.kill(int(open(pidfile).read()), signal.SIGTERM)
    try:
        # meanwhile, on the second cluster: a new job starts, and stops
        new = started(ralice, workspace(ralice)["id"], job_type="test_job", resource="slurm2")
        assert stop_and_wait(ralice, new["id"])["status"] == "complete"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert job(ralice, j["id"])["status"] == "running"  # unknown is not ended
            assert job(ralice, other["id"])["status"] == "running"
            time.sleep(2)
        assert reachable(ralice, job(ralice, j["id"]))  # the job itself kept running
        assert reachable(ralice, job(ralice, other["id"]))
        # the hub kept asking, got no answer, and its metrics say so, for that cluster only
        during = hub_metrics(rhub)
        assert during.value("uws_slurm_queue_up", cluster="default") == 0
        assert during.value("uws_slurm_queue_up", cluster="uws2") == 1
        assert squeue_errors(during) >= squeue_errors(before) + 1
        seconds = "uws_slurm_query_seconds_count"
        assert during.value(seconds, **FIRST, command="squeue") > before.value(
            seconds, **FIRST, command="squeue"
        )
        # and /status/ tells which cluster is down
        status = Client(rhub).get("status/").json()
        clusters = status["dependencies"]["slurm_clusters"]
        assert not clusters["default"]["connected"] and clusters["uws2"]["connected"]
        assert not status["dependencies"]["resources"]["slurm"]["connected"]
        assert status["dependencies"]["resources"]["slurm2"]["connected"]
        assert "slurm_clusters.default" in status["message"]
        assert "slurm_clusters.uws2" not in status["message"]
    finally:
        subprocess.run([str(REPO / "scripts" / "slurm.sh"), "start"], check=True)
    deadline = time.monotonic() + 60  # a query still waiting on the old controller may end first
    while hub_metrics(rhub).value("uws_slurm_queue_up", cluster="default") != 1:
        assert time.monotonic() < deadline, "the Slurm monitor did not see the controller back"
        time.sleep(1)
    assert job(ralice, j["id"])["status"] == "running"
    assert stop_and_wait(ralice, j["id"])["status"] == "complete"
    assert stop_and_wait(ralice, other["id"])["status"] == "complete"


def test_service_restart_catches_up(rhub, ralice):
    """Rows the service left inconsistent while it was down are settled after its restart."""
    ws = workspace(ralice)
    a = started(ralice, ws["id"], job_type="test_job")
    a = stop_and_wait(ralice, a["id"])
    b = started(ralice, workspace(ralice)["id"], job_type="test_job")
    b = stop_and_wait(ralice, b["id"])
    (old,) = rhub.service_pids()
    os.kill(old, signal.SIGKILL)
    # while it is down: two rows that no longer match the hub (the servers are gone)
    with sqlite3.connect(rhub.dir / "uws.sqlite") as db:
        db.execute("UPDATE uws_jobs SET status='running', datetime_end=NULL WHERE id=?", (a["id"],))
        db.execute(
            "UPDATE uws_jobs SET status='stopping', datetime_end=NULL WHERE id=?", (b["id"],)
        )
        db.execute("UPDATE uws_workspaces SET status='active' WHERE id=?", (ws["id"],))
    rhub.wait_service_restarted(old)
    a2 = wait_job(ralice, a["id"], ("failed", "complete"), timeout=60)
    b2 = wait_job(ralice, b["id"], ("failed", "complete"), timeout=60)
    assert a2["status"] == "failed" and "no longer runs it" in a2["status_message"]
    assert b2["status"] == "complete"
    deadline = time.monotonic() + 20
    while ralice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]["status"] != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_orphaned_jobs_are_cancelled(rhub, ralice):
    """A job whose server the hub forgot (lost database, manual cleanup) keeps no resources:
    its Slurm job is cancelled, its local process stopped, and the record says why."""
    slurm = started(ralice, workspace(ralice)["id"], job_type="test_job", resource="slurm")
    local = started(ralice, workspace(ralice)["id"], job_type="test_job", resource="local")
    rest = started(ralice, workspace(ralice)["id"], job_type="test_job", resource="slurm2")
    rhub.stop()  # the jobs keep running; the hub forgets their servers while it is down
    with sqlite3.connect(rhub.dir / "jupyterhub.sqlite") as db:
        for j in (slurm, local, rest):
            (server_id,) = db.execute(
                "SELECT server_id FROM spawners WHERE name=?", (f"job-{j['id']}",)
            ).fetchone()
            db.execute("DELETE FROM spawners WHERE name=?", (f"job-{j['id']}",))
            db.execute("DELETE FROM servers WHERE id=?", (server_id,))
    rhub.start()
    ended = {
        j["id"]: wait_job(ralice, j["id"], ("failed", "complete"), timeout=90)
        for j in (slurm, local, rest)
    }
    s, loc = ended[slurm["id"]], ended[local["id"]]
    assert s["status"] == "failed", s
    assert f"Slurm job {slurm['resource_job_id']} was stopped" in s["status_message"]
    assert loc["status"] == "failed", loc
    assert f"process {local['resource_job_id']} was stopped" in loc["status_message"]
    state = subprocess.run(
        ["scontrol", "show", "job", "-o", str(slurm["resource_job_id"])],
        capture_output=True,
        text=True,
    ).stdout
    assert "JobState=CANCELLED" in state or not state.strip(), state
    assert not running(local["resource_job_id"])
    assert float(s["core_hours"]) > 0  # Slurm's elapsed time x cpus
    # through slurmrestd: cancelled with its owner's token
    r = ended[rest["id"]]
    assert r["status"] == "failed" and r["cluster"] == "uws2", r
    assert f"Slurm job {rest['resource_job_id']} was stopped" in r["status_message"]
    assert scontrol(rest["resource_job_id"], "slurm2")["JobState"] == "CANCELLED"


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan reparented to an init that does not reap)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False
