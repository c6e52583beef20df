"""Helpers for job tests: start, wait, read through the hub."""

from __future__ import annotations

import os
import subprocess
import time

import requests

from hubtest import REPO, ensure_system_user

LIVE = ("pending", "running", "stopping")


#: the ordinary account whose token reads the slurmrestd clusters' queues (hub_config.py)
SLURM_READER = "uwst-slurmread"


def ensure_slurm() -> None:
    """The project's Slurm clusters (make test starts them; a bare pytest run starts them
    here), and the account that reads their queues through slurmrestd."""
    if os.environ.get("UWS_TEST_SLURM") != "1":
        subprocess.run([str(REPO / "scripts" / "slurm.sh"), "start"], check=True)
        os.environ["UWS_TEST_SLURM"] = "1"
    ensure_system_user(SLURM_READER)


def start(client, ws_id: int, **body) -> requests.Response:
    return client.put(f"workspaces/{ws_id}/start/", json=body)


def job(client, job_id: int) -> dict:
    r = client.get(f"jobs/{job_id}/")
    assert r.status_code == 200, r.text
    return r.json()["data"]["jobs"][0]


def wait_job(client, job_id: int, until=("running",), timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        j = job(client, job_id)
        if j["status"] in until:
            return j
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {j['status']} after {timeout}s: {j}")
        time.sleep(0.25)


def started(client, ws_id: int, timeout: float = 120, **body) -> dict:
    """Start a job and wait until it runs (fails the test with the job's message otherwise)."""
    r = start(client, ws_id, **body)
    assert r.status_code == 200, r.text
    j = wait_job(client, r.json()["data"]["job"]["id"], ("running", "failed", "complete"), timeout)
    assert j["status"] == "running", j
    # a job says "running" only once the hub has routed its server: a client may open it at once
    me = client.session.get(f"{client.hub.url}/hub/api/user", timeout=30)
    if me.ok:  # (tokens without read:users cannot ask)
        server = (me.json().get("servers") or {}).get(f"job-{j['id']}")
        assert server is None or server.get("ready"), server
    return j


def stop_and_wait(client, job_id: int, timeout: float = 60) -> dict:
    r = client.put(f"jobs/{job_id}/stop/")
    assert r.status_code == 200, r.text
    return wait_job(client, job_id, ("complete", "failed"), timeout)


def open_url(j: dict) -> str:
    cd = j["job_details"]["current_job_details"]["connection_details"]
    return cd["url_domain"] + cd["url_path"]


def server_base(j: dict) -> str:
    """The job server's base URL through the hub proxy (…/user/<name>/job-<id>/)."""
    cd = j["job_details"]["current_job_details"]["connection_details"]
    path = cd["url_path"]
    return cd["url_domain"] + path[: path.index("/job-") + len("/job-") + len(str(j["id"]))] + "/"


#: the test hub's Slurm resources (hub_config.py): resource -> (cluster id, the Slurm
#: cluster's slurm.conf, partition). slurm and slurm-rest are the first cluster (commands,
#: slurmrestd); slurm2 and slurm2-commands the second (slurmrestd, commands)
SLURM_RESOURCES = {
    "slurm": ("default", "/etc/slurm/slurm.conf", "debug"),
    "slurm-rest": ("uws-rest", "/etc/slurm/slurm.conf", "debug"),
    "slurm2": ("uws2", "/etc/slurm-uws2/slurm.conf", "batch"),
    "slurm2-commands": ("uws2-commands", "/etc/slurm-uws2/slurm.conf", "batch"),
}


def slurm_env(resource: str = "slurm") -> dict:
    """The environment for Slurm commands on `resource`'s cluster."""
    return {**os.environ, "SLURM_CONF": SLURM_RESOURCES[resource][1]}


def scontrol(job_id, resource: str = "slurm") -> dict:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", str(job_id)],
        capture_output=True,
        text=True,
        env=slurm_env(resource),
    ).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
