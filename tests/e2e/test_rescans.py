"""Workspaces true to disk (issue 13, part 1): what a real JupyterLab writes into a workspace
shows in its file list, its size and its owner's disk usage — while the job runs (every
c.UWS.rescan_interval), as soon as it ends, and when the owner asks (PUT .../scan/)."""

from __future__ import annotations

import base64
import os
import time

import pytest
import requests

from conftest import Client
from jobutil import server_base, started, stop_and_wait

ME = "uwst-rescan"
BIG = 8 * 1024 * 1024  # as the issue measured: 8 MiB written through JupyterLab


@pytest.fixture(scope="module")
def rhub(hub_factory):
    return hub_factory("rescans", system_users=[ME], extra_config="c.UWS.rescan_interval = 4\n")


def workspace(me: Client, ws_id: int) -> dict:
    return me.get(f"workspaces/{ws_id}/").json()["data"]["workspaces"][0]


def names(ws: dict) -> set[str]:
    return {f["name"] for f in ws["workspace_details"]["current_workspace_details"]["files"]}


def used(me: Client) -> int:
    return me.get("users/me/quota").json()["data"]["disk"]["used"]


def until(what, check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.25)
    return found


def lab_write(j: dict, me: Client, name: str, size: int) -> None:
    """Save a file of `size` bytes through the job's JupyterLab (its contents API)."""
    r = requests.put(
        server_base(j) + f"api/contents/{name}",
        headers=me.session.headers,
        json={
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(os.urandom(size)).decode(),
        },
        timeout=60,
    )
    assert r.status_code in (200, 201), r.text


def test_what_a_job_writes_shows_while_it_runs_and_when_it_ends(rhub):
    me = Client.of(rhub, ME)
    ws = me.post("workspaces/", json={"name": "written", "description": "d"}).json()["data"][
        "workspace"
    ]
    before = used(me)
    j = started(me, ws["id"], job_type="jupyter_lab", resource="local", timeout=180)
    lab_write(j, me, "big.bin", BIG)
    # while it runs: within the rescan interval (4 s here), without anyone asking
    seen = until(
        "big.bin listed while the job runs",
        lambda: (w := workspace(me, ws["id"])) and "/big.bin" in names(w) and w,
    )
    assert seen["disk_space"] >= BIG and seen["datetime_scanned"]
    assert used(me) >= before + BIG  # the disk quota counts it
    lab_write(j, me, "last.bin", 1024)
    assert stop_and_wait(me, j["id"])["status"] == "complete"
    # as soon as the job has ended (no interval to wait for: the check runs every 5 s)
    until("last.bin listed after the job", lambda: "/last.bin" in names(workspace(me, ws["id"])))


def test_the_owner_asks_for_a_scan(rhub, tmp_path):
    me = Client.of(rhub, ME)
    ws = me.post("workspaces/", json={"name": "asked", "description": "d"}).json()["data"][
        "workspace"
    ]
    scanned = ws["datetime_scanned"]
    # written behind the service's back (as a job, or a login node, would)
    path = rhub.root / ME / str(ws["id"]) / "outside.txt"
    os.system(f"runuser -u {ME} -- sh -c 'echo hello > {path}'")
    r = me.put(f"workspaces/{ws['id']}/scan/")
    assert r.status_code == 200, r.text
    assert r.json()["message"] == f"Workspace {ws['id']} scanned."
    got = r.json()["data"]["workspace"]
    assert "/outside.txt" in names(got) and got["datetime_scanned"] > scanned
    # not someone else's; not a deleted one
    other = Client.of(rhub, "uwst-admin")
    assert other.put(f"workspaces/{ws['id']}/scan/").status_code == 404
    assert me.delete(f"workspaces/{ws['id']}/").status_code == 200
    r = me.put(f"workspaces/{ws['id']}/scan/")
    assert r.status_code in (400, 404), r.text
