"""Durable transitional states: kill the service in the middle of work; after the hub restarts
it, the reconciler finishes the work (a delete completes, a creation completes)."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import time

from conftest import empty_answer, workspace_dir
from uws_hub.workspaces.fsops import Owner, acting_as


def db(hub):
    conn = sqlite3.connect(hub.dir / "uws.sqlite", timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def ws_row(hub, ws_id):
    with db(hub) as conn:
        return conn.execute("SELECT * FROM uws_workspaces WHERE id = ?", (ws_id,)).fetchone()


def wait_for(predicate, timeout, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def fill(path, dirs=300, files=100):
    """Files as the workspace's owner would create them (a job writing results)."""
    st = path.stat()
    with acting_as(Owner(st.st_uid, st.st_gid)):
        for i in range(dirs):
            d = path / f"d{i:03d}"
            d.mkdir()
            for j in range(files):
                (d / f"f{j:03d}").write_bytes(b"x")


def test_service_killed_mid_delete_finishes_after_restart(hub, alice, make_workspace):
    ws = make_workspace(name="big-to-delete")
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    fill(d)  # 30,000 files: deleting them takes a while
    trash = d.parent / f".uws-trash-{ws['id']}"
    (old_pid,) = hub.service_pids()

    r = alice.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 200
    os.kill(old_pid, signal.SIGKILL)

    # the kill landed in the middle: the row says deleting and files are still there
    assert ws_row(hub, ws["id"])["status"] == "deleting"
    assert d.exists() or trash.exists()

    # while the service is down, a creation is recorded but its files are not written yet
    # (what a crash between the commit and the filesystem work leaves behind)
    with db(hub) as conn:
        uid = conn.execute("SELECT id FROM uws_users WHERE name = 'uwst-alice'").fetchone()[0]
        pending = {
            "files": [
                {"name": "resumed/hello.txt", "content_b64": base64.b64encode(b"hi").decode()}
            ],
            "symlinks": [],
        }
        details = {
            "request_workspace_details": {"files": [{"name": "resumed/hello.txt"}], "symlinks": []},
            "current_workspace_details": {"files": [], "symlinks": []},
        }
        now = "2026-01-01 00:00:00.000000"
        cur = conn.execute(
            "INSERT INTO uws_workspaces (user_id, name, description, file_path, disk_space, file_count, datetime_created,"
            " datetime_last_modified, workspace_details, pending_details, status) VALUES (?, 'resumed', 'd', '', 0, 0, ?, ?, ?, ?, 'initializing')",
            (uid, now, now, json.dumps(details), json.dumps(pending)),
        )
        new_id = cur.lastrowid

    # the hub notices the service died and starts it again (its poll runs every ~30 s)
    hub.wait_service_restarted(old_pid)
    assert wait_for(lambda: ws_row(hub, ws["id"])["status"] == "deleted", 60), hub.log_tail()
    assert not d.exists() and not trash.exists()
    assert empty_answer(alice.get(f"workspaces/{ws['id']}/"), "workspaces")

    assert wait_for(lambda: ws_row(hub, new_id)["status"] == "idle", 30), hub.log_tail()
    got = alice.get(f"workspaces/{new_id}/").json()["data"]["workspaces"][0]
    assert [f["name"] for f in got["workspace_details"]["current_workspace_details"]["files"]] == [
        "/resumed/hello.txt"
    ]
    nd = workspace_dir(hub, "uwst-alice", new_id)
    assert (nd / "resumed/hello.txt").read_bytes() == b"hi"
    assert os.stat(nd / "resumed/hello.txt").st_uid == os.stat(nd).st_uid != 0
    assert ws_row(hub, new_id)["pending_details"] is None


def test_concurrent_deletes_one_wins(hub, alice, make_workspace):
    from concurrent.futures import ThreadPoolExecutor

    ws = make_workspace(name="race")
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda _: alice.delete(f"workspaces/{ws['id']}/").status_code, range(8))
        )
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 400, 404}
    assert wait_for(lambda: ws_row(hub, ws["id"])["status"] == "deleted", 20)


def test_delete_refused_while_jobs_run_or_shares_are_pending(
    hub, alice, client_for, make_workspace
):
    """A workspace with a live job, or with unaccepted invitations of it, cannot be deleted."""
    from uws_hub.db.models import Job, SharedWorkspace, User, utcnow
    from uws_hub.db.session import make_engine, make_sessionmaker

    ws = make_workspace(name="busy")
    copy = make_workspace(client_for("uwst-bob"), name="bob-copy")
    Session = make_sessionmaker(make_engine(f"sqlite:///{hub.dir}/uws.sqlite"))
    with Session() as s:
        uid = s.query(User.id).filter_by(name="uwst-alice").scalar()
        bob = s.query(User.id).filter_by(name="uwst-bob").scalar()
        job = Job(
            user_id=uid,
            workspace_id=ws["id"],
            job_type="jupyter_lab",
            status="running",
            datetime_created=utcnow(),
        )
        s.add(job)
        s.commit()
        job_id = job.id
    r = alice.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 400
    assert r.json()["message"] == "Cannot delete workspace, jobs are running for this workspace."
    with Session() as s:
        s.get(Job, job_id).status = "complete"
        share = SharedWorkspace(
            original_workspace_id=ws["id"],
            shared_workspace_id=copy["id"],
            sender_id=uid,
            recipient_id=bob,
            copy_status="done",
        )
        s.add(share)
        s.commit()
        share_id = share.id
    r = alice.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 400
    assert "that have not yet been accepted" in r.json()["message"]
    assert ws_row(hub, ws["id"])["status"] == "idle"
    with Session() as s:
        s.get(SharedWorkspace, share_id).is_accepted = True
        s.commit()
    assert alice.delete(f"workspaces/{ws['id']}/").status_code == 200
