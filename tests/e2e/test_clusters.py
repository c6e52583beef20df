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
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import Client
from hubtest import HubProcess
from jobutil import ensure_slurm, scontrol, server_base, started, stop_and_wait
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
    # health: both clusters through their slurmrestd
    deps = admin.get("status/").json()["dependencies"]
    assert set(deps["slurm_clusters"]) == {"uws-rest", "uws2"}
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
