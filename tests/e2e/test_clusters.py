"""A hub whose host has no Slurm commands (no sbatch, squeue, scontrol, scancel, sacct, srun,
no munge) runs jobs as their own people on two clusters through each cluster's slurmrestd
(issue 16): submit and cancel with the person's own token, the queue read once per interval
as an ordinary account, an extension as the cluster's operator, health and metrics per
cluster. The project's two clusters (scripts/slurm.sh) stand for two sites' clusters.

The same ways and clusters in the shared hub: tests/e2e/test_jobs.py (every job test on Slurm,
both ways on both clusters), test_job_recovery.py (one cluster down, the other carries on),
test_sessions.py (extensions both ways), test_info.py (/status/)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import Client
from hubtest import HubProcess
from jobutil import (
    ensure_slurm,
    scontrol,
    server_base,
    slurm_env,
    started,
    stop_and_wait,
    wait_job,
)
from metricsutil import Scrape, hub_metrics

ME = "uwst-alice"
#: PATH on the clusters' nodes (the jobs'): this machine's, Slurm's commands included
NODE_PATH = os.pathsep.join(
    [
        os.path.dirname(sys.executable),
        "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    ]
)
SLURM_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "sacct", "srun", "sinfo", "munge")


def without_slurm(where: Path) -> str:
    """A directory with every command of this host except Slurm's and munge's (what a hub host
    without them has): the hub's PATH for the commands it runs."""
    packages = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\n", "slurm*", "munge", "libmunge*"],
        capture_output=True,
        text=True,
    ).stdout.split()
    installed = subprocess.run(
        ["dpkg-query", "-L", *packages], capture_output=True, text=True
    ).stdout.split()
    theirs = {os.path.basename(p) for p in installed if "/bin/" in p or "/sbin/" in p}
    where.mkdir(exist_ok=True)
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"):
        for entry in os.scandir(d):
            link = where / entry.name
            if entry.name not in theirs and not link.exists():
                link.symlink_to(entry.path)
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{where}"
    for command in SLURM_COMMANDS:
        assert shutil.which(command, path=path) is None, command
    return path


def rest_only(hub: HubProcess) -> str:
    path = without_slurm(hub.dir / "bin")
    return f"""
c.UWS.job_path = {path!r}
for _cid in ("default", "uws2-commands"):
    del c.UWS.slurm_clusters[_cid]
for _cid in ("uws-rest", "uws2"):
    c.UWS.slurm_clusters[_cid]["job_path"] = {NODE_PATH!r}
for _rid in ("slurm", "slurm-short", "slurm2-commands"):
    del c.UWS.resources[_rid]
# a cluster whose key this hub cannot read (an operator's mistake)
c.UWS.slurm_clusters["broken"] = dict(c.UWS.slurm_clusters["uws2"], jwt_key_file="/nonexistent/k")
c.UWS.resources["slurm-broken"] = {{"kind": "slurm", "cluster": "broken", "partition": "batch"}}
"""


@pytest.fixture(scope="module")
def rest_hub(hub_factory):
    ensure_slurm()
    return hub_factory("restonly", extra_config=rest_only, users=(ME, "uwst-admin"))


def commands_run(scrape: Scrape) -> dict:
    """Scheduler commands the process ran (``way="commands"`` series), by labels."""
    return {
        labels: value
        for (name, labels), value in scrape.samples.items()
        if name == "uws_slurm_queries_total" and ("way", "commands") in labels and value
    }


def test_a_hub_without_slurm_commands_runs_jobs_on_two_clusters(rest_hub):
    me = Client.of(rest_hub, ME)
    admin = Client.of(rest_hub, "uwst-admin")
    account = pwd.getpwnam(ME)
    for resource, cluster in (("slurm-rest", "uws-rest"), ("slurm2", "uws2")):
        r = me.post("workspaces/", json={"name": resource, "description": "d"})
        ws = r.json()["data"]["workspace"]
        j = started(me, ws["id"], job_type="test_job", resource=resource)
        assert j["cluster"] == cluster
        # the job runs as its person on the cluster Slurm says
        info = requests.get(
            server_base(j) + "whoami", headers=me.session.headers, timeout=30
        ).json()
        assert info["uid"] == account.pw_uid and info["slurm_job_id"] == str(j["resource_job_id"])
        sc = scontrol(j["resource_job_id"], resource)
        assert sc["UserId"].startswith(f"{ME}(") and sc["JobState"] == "RUNNING"
        # an extension: the cluster's operator raises the limit
        r = me.put(f"jobs/{j['id']}/extend/", json={"minutes": 30})
        assert r.status_code == 200, r.text
        assert scontrol(j["resource_job_id"], resource)["TimeLimit"] == "04:30:00"
        assert stop_and_wait(me, j["id"])["status"] == "complete"
        assert scontrol(j["resource_job_id"], resource)["JobState"] == "CANCELLED"
    # health: both clusters through their slurmrestd (and the one it cannot use, down)
    deps = admin.get("status/").json()["dependencies"]
    assert set(deps["slurm_clusters"]) == {"uws-rest", "uws2", "broken"}
    broken = deps["slurm_clusters"]["broken"]
    assert not broken["connected"] and "/nonexistent/k" in broken["message"], broken
    for cid, port in (("uws-rest", 6820), ("uws2", 6821)):
        d = deps["slurm_clusters"][cid]
        assert d["connected"] and f"(slurmrestd http://127.0.0.1:{port})" in d["message"], d
    # no process of the hub ran a scheduler command; each cluster was asked over HTTP
    hub = hub_metrics(rest_hub)
    service = Scrape(admin.get(f"{rest_hub.url}/services/uws/metrics").text)
    assert commands_run(hub) == {} and commands_run(service) == {}
    for cluster in ("uws-rest", "uws2"):
        rest = {"cluster": cluster, "way": "rest"}
        assert hub.value("uws_slurm_queries_total", **rest, command="sbatch") == 1
        assert hub.value("uws_slurm_queries_total", **rest, command="scancel") == 1
        assert hub.value("uws_slurm_queries_total", **rest, command="squeue") >= 1
        assert service.value("uws_slurm_queries_total", **rest, command="scontrol") >= 1  # raise
        assert hub.value("uws_slurm_queue_up", cluster=cluster) == 1


def test_a_cluster_the_hub_cannot_use_fails_a_start_saying_why(rest_hub):
    """A cluster whose key the hub cannot read: a start there fails at once, submitting
    nothing, with words an administrator can act on; the other clusters are not affected."""
    me = Client.of(rest_hub, ME)
    ws = me.post("workspaces/", json={"name": "broken", "description": "d"}).json()
    r = me.put(
        f"workspaces/{ws['data']['workspace']['id']}/start/",
        json={"job_type": "test_job", "resource": "slurm-broken"},
    )
    assert r.status_code == 200, r.text
    end = wait_job(me, r.json()["data"]["job"]["id"], ("failed", "running"), timeout=60)
    assert end["status"] == "failed" and end["resource_job_id"] == -1, end
    assert end["status_message"].startswith(
        "The job's Slurm cluster cannot be used: Slurm cluster 'broken' cannot be reached as "
        "configured: the cluster's JWT key /nonexistent/k cannot be read"
    ), end
    assert end["status_message"].endswith("Ask an administrator.")


def forget_jobs_of_the_second_cluster() -> None:
    """Restart the second cluster's slurmctld with its state cleared (``-c``): it no longer
    knows any job; its accounting (slurmdbd) still does."""
    conf = "/etc/slurm-uws2/slurm.conf"
    pidfile = Path("/tmp/uws-slurm2/slurmctld.pid")
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "slurmctld did not stop"
        time.sleep(0.2)
    env = {**os.environ, "SLURM_CONF": conf}
    subprocess.run(["/usr/sbin/slurmctld", "-c", "-f", conf], env=env, check=True)
    while (
        "idle"
        not in subprocess.run(
            ["sinfo", "-h", "-o", "%T", "-p", "batch"], env=env, capture_output=True, text=True
        ).stdout
    ):
        assert time.monotonic() < deadline + 30, "the second cluster did not come back"
        time.sleep(0.5)


def test_a_job_the_controller_forgot_is_read_from_accounting(rest_hub):
    """A job ends while the hub is down, and its controller forgets it (its state lost, or
    MinJobAge passed): the hub reads how it ended from the cluster's accounting through
    slurmrestd (/slurmdb), and the record says so, with Slurm's core-hours."""
    me = Client.of(rest_hub, ME)
    ws = me.post("workspaces/", json={"name": "forgotten", "description": "d"}).json()
    j = started(me, ws["data"]["workspace"]["id"], job_type="test_job", resource="slurm2")
    slurm_id = str(j["resource_job_id"])
    rest_hub.stop()  # (its servers keep running)
    time.sleep(1.5)  # (at least a second of elapsed time in accounting)
    env = slurm_env("slurm2")
    subprocess.run(["scancel", slurm_id], env=env, check=True)
    deadline = time.monotonic() + 30
    while (
        "CANCELLED"
        not in subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", slurm_id, "-o", "State"],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    ):
        assert time.monotonic() < deadline, "accounting never saw the cancel"
        time.sleep(0.5)
    forget_jobs_of_the_second_cluster()
    assert scontrol(slurm_id, "slurm2") == {}  # the controller no longer knows it
    rest_hub.start()
    end = wait_job(me, j["id"], ("failed", "complete"), timeout=60)
    assert end["status"] == "failed", end
    assert end["status_message"] == (
        f"Slurm job {slurm_id} was cancelled outside the hub (scancel or an administrator)."
    )
    assert float(end["core_hours"]) >= 1 / 3600  # accounting's elapsed time x its CPUs
    asked = hub_metrics(rest_hub).value(
        "uws_slurm_queries_total", cluster="uws2", way="rest", command="sacct"
    )
    assert asked >= 1


def test_a_job_whose_cluster_is_removed_from_the_settings_ends_saying_so(rest_hub):
    """The operator removes a cluster while a job runs on it: after the restart the hub can
    no longer follow the job, and its record ends failed, naming the cluster."""
    me = Client.of(rest_hub, ME)
    ws = me.post("workspaces/", json={"name": "removed", "description": "d"}).json()
    j = started(me, ws["data"]["workspace"]["id"], job_type="test_job", resource="slurm2")
    extra = rest_hub.env["UWS_TEST_EXTRA_CONFIG"]
    rest_hub.stop()  # (its servers keep running)
    rest_hub.env["UWS_TEST_EXTRA_CONFIG"] = (
        extra + '\ndel c.UWS.slurm_clusters["uws2"]\ndel c.UWS.resources["slurm2"]\n'
    )
    try:
        rest_hub.start()
        end = wait_job(me, j["id"], ("failed", "complete"), timeout=60)
        assert end["status"] == "failed", end
        assert end["status_message"] == (
            f"Slurm job {j['resource_job_id']}: Slurm cluster 'uws2' is not configured "
            "(c.UWS.slurm_clusters has ['broken', 'uws-rest']); the hub cannot follow this job."
        )
    finally:  # (the module's last test: its hub stays as it is)
        subprocess.run(["scancel", str(j["resource_job_id"])], env=slurm_env("slurm2"))
