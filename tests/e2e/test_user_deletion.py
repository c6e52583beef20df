"""A person deleted in the hub leaves nothing dangling (issue 13, part 4): an administrator
deletes them through the hub's REST API (as its admin page does) while they have a running job,
a workspace with files and an invitation nobody answered; the hub stops the job and records
the request, the uws service settles the rest — and the same name made again starts empty.
On a hub that archives after the grace, the files reach the archive (on another filesystem
when the machine has one) with their owners. The pieces one by one (the mass-disappearance
guard, delete after the grace, a crash mid-way): tests/unit/test_user_deletions.py."""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from shareutil import user_id

from conftest import Client
from hubtest import HubProcess
from jobutil import started

PERSON = "uwst-gone"
OTHER = "uwst-stays"
ADMIN = "uwst-admin"
GRACE = 6.0


@pytest.fixture(scope="module")
def dhub(hub_factory) -> HubProcess:
    return hub_factory(
        "deletion",
        system_users=[PERSON, OTHER],
        users=[PERSON, OTHER, ADMIN],
        extra_config=f"c.UWS.user_sync_interval = 1.0\nc.UWS.deleted_user_grace = {GRACE}\n",
    )


def wait_for(what, timeout: float = 60, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, f"still waiting for {what.__doc__ or what}"
        time.sleep(every)


def uws_db(hub: HubProcess) -> sqlite3.Connection:
    return sqlite3.connect(hub.dir / "uws.sqlite")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def a_busy_person(hub: HubProcess, person: Client, other: Client) -> tuple[dict, dict]:
    """`person` with a workspace holding a file, a running job in it, and an invitation to
    `other` nobody answered; returns the workspace and the job."""
    mine = other.post("workspaces/", json={"name": "own", "description": "d"})  # known to uws
    assert mine.status_code == 200, mine.text
    r = person.post(
        "workspaces/",
        json={
            "name": "thesis",
            "description": "d",
            "workspace_details": {"files": [{"name": "chapter1.md", "content": "# one"}]},
        },
    )
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    job = started(person, ws["id"], job_type="test_job", resource="local")
    assert process_alive(job["resource_job_id"])
    r = person.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws["id"], "shared_user_ids": [user_id(person, OTHER)]},
    )
    assert r.status_code == 200, r.text
    assert other.get("shared_workspaces/").json()["data"]["shared_workspaces"]
    return ws, job


def check_held(hub: HubProcess, admin: Client, held: Path, ws: dict) -> None:
    """The workspace's files in the hold area, owner untouched, out of everyone's reach."""
    wait_for(lambda: held.is_dir())
    assert not (hub.root / PERSON / str(ws["id"])).exists()
    st = (held / "chapter1.md").stat()
    assert st.st_uid == pwd.getpwnam(PERSON).pw_uid
    assert (held / "chapter1.md").read_text() == "# one"
    for parent in (held.parent, held.parent.parent):
        pst = parent.stat()
        assert pst.st_uid == 0 and stat.S_IMODE(pst.st_mode) == 0o700
    # the person's own account cannot reach them any more
    peek = subprocess.run(
        ["runuser", "-u", PERSON, "--", "ls", str(held)], capture_output=True, text=True
    )
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    hold = admin.get("audit/", params={"action": "workspace.hold", "user": PERSON})
    assert [e["target_id"] for e in hold.json()["data"]["events"]] == [str(ws["id"])]
    everyone = admin.get("workspaces/", params={"all_users": "true"}).json()["data"]["workspaces"]
    assert ws["id"] not in [w["id"] for w in everyone]


def test_a_deleted_person_leaves_nothing_dangling(dhub):
    person, other = Client.of(dhub, PERSON), Client.of(dhub, OTHER)
    admin = Client.of(dhub, ADMIN)
    ws, job = a_busy_person(dhub, person, other)

    # the administrator deletes the person (a running job and all): the hub agrees at once
    r = dhub.hub_api("DELETE", f"users/{PERSON}")
    assert r.status_code == 204, r.text
    assert dhub.hub_api("GET", f"users/{PERSON}").status_code == 404
    assert not process_alive(job["resource_job_id"])  # the hub stopped it to delete the person

    spool = dhub.dir / "uws_user_deletions"

    def settled():
        """the service settled the request"""
        events = admin.get("audit/", params={"action": "user.delete", "user": PERSON})
        return not list(spool.glob("*.json")) and events.json()["data"]["events"]

    (event,) = wait_for(settled)
    assert (event["actor"], event["actor_kind"]) == ("uws", "system")
    details = event["details"]
    assert details["reason"] == "deleted in the hub"
    assert details["servers_stopped_by_hub"] == [f"job-{job['id']}"]
    assert details["invitations_cancelled"] and details["workspaces_held"] == [ws["id"]]
    tombstone_id = int(details["tombstone"].rsplit("-", 1)[1])
    with uws_db(dhub) as db:
        (status,) = db.execute("SELECT status FROM uws_jobs WHERE id=?", (job["id"],)).fetchone()
    assert status == "complete"
    # the invitation is gone for the one invited
    r = other.get("shared_workspaces/")
    assert r.status_code == 200 and r.json()["data"]["shared_workspaces"] == []

    held = dhub.root / ".uws-deleted" / str(tombstone_id) / str(ws["id"])
    check_held(dhub, admin, held, ws)
    # keep (the default): still held once the grace is over
    time.sleep(GRACE + 2)
    assert held.is_dir() and (held / "chapter1.md").exists()

    # the same name made again is a new person with nothing
    assert dhub.hub_api("POST", f"users/{PERSON}").status_code == 201
    again = Client.of(dhub, PERSON)
    r = again.get("workspaces/")
    assert r.status_code == 200 and r.json()["data"]["workspaces"] == []
    assert again.get(f"workspaces/{ws['id']}/").json()["data"]["workspaces"] == []
    assert again.get("jobs/").json()["data"]["jobs"] == []


ARCHIVED = "uwst-archived"


@pytest.fixture(scope="module")
def archive_dir():
    """The archive, on another filesystem than the workspaces when the machine has one
    (/dev/shm is tmpfs): the held files are then copied, not renamed."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    path = Path(tempfile.mkdtemp(prefix="uws-archive-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ahub(archive_dir, hub_factory) -> HubProcess:
    return hub_factory(
        "deletion-archive",
        system_users=[ARCHIVED],
        users=[ARCHIVED, ADMIN],
        extra_config=(
            "c.UWS.user_sync_interval = 1.0\nc.UWS.deleted_user_grace = 2.0\n"
            "c.UWS.deleted_user_workspaces = 'archive'\n"
            f"c.UWS.deleted_user_archive_dir = {str(archive_dir)!r}\n"
        ),
    )


def test_archived_after_the_grace_with_owners_kept(ahub, archive_dir):
    person, admin = Client.of(ahub, ARCHIVED), Client.of(ahub, ADMIN)
    r = person.post(
        "workspaces/",
        json={
            "name": "data",
            "description": "d",
            "workspace_details": {
                "files": [{"name": "raw/run1.csv", "content": "t,v\n0,1\n"}],
                "symlinks": [],
            },
        },
    )
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    os.symlink("raw/run1.csv", ahub.root / ARCHIVED / str(ws["id"]) / "latest")
    assert ahub.hub_api("DELETE", f"users/{ARCHIVED}").status_code == 204

    def archived():
        """the workspace.archive event"""
        r = admin.get("audit/", params={"action": "workspace.archive", "user": ARCHIVED})
        return r.json()["data"]["events"]

    (event,) = wait_for(archived)
    dest = Path(event["details"]["path"])
    assert dest.parent.parent == archive_dir and dest.name == str(ws["id"])
    assert dest.parent.name.startswith(f"{ARCHIVED}-")
    uid = pwd.getpwnam(ARCHIVED).pw_uid
    assert (dest / "raw" / "run1.csv").read_text() == "t,v\n0,1\n"
    assert (dest / "raw" / "run1.csv").stat().st_uid == uid and dest.stat().st_uid == uid
    assert os.readlink(dest / "latest") == "raw/run1.csv"  # a link stays a link
    assert (
        not (ahub.root / ".uws-deleted" / dest.parent.name.rsplit("-", 1)[1])
        .joinpath(str(ws["id"]))
        .exists()
    )
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
