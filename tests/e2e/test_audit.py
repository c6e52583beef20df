"""The audit log: actions through the API leave the right events (actor, user, action,
object) in order, refused actions leave none, only operators read it, filters and pages work,
and `uws-hub audit` prints it."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shareutil import user_id, wait_copy

from conftest import Client
from jobutil import started, stop_and_wait

ME = "uwst-audit"


def events(admin: Client, **params) -> list[dict]:
    r = admin.get("audit/", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]["events"]


def mine(admin: Client, **params) -> list[dict]:
    """This test user's events, oldest first."""
    return list(reversed(events(admin, user=ME, limit=1000, **params)))


@pytest.fixture(scope="module")
def me(client_for) -> Client:
    return client_for(ME)


def test_workspace_and_job_actions_are_recorded_in_order(hub, me, admin):
    r = me.post(
        "workspaces/",
        json={
            "name": "audited",
            "description": "d",
            "workspace_details": {"files": [{"name": "a.txt", "content": "A"}]},
        },
        headers={"X-Request-Id": "audit-test-create-1"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-Id"] == "audit-test-create-1"
    ws = r.json()["data"]["workspace"]
    assert me.put(f"workspaces/{ws['id']}/", json={"name": "audited-2"}).status_code == 200
    assert me.put(f"workspaces/{ws['id']}/", json={"name": "audited-2"}).status_code == 200
    r = me.put(f"workspaces/{ws['id']}/upload/", files={"f": ("b.txt", b"B")})
    assert r.status_code == 200, r.text
    j = started(me, ws["id"], job_type="test_job")
    stop_and_wait(me, j["id"])
    assert me.delete(f"workspaces/{ws['id']}/").status_code == 200

    got = mine(admin)
    assert [(e["action"], e["target_type"], e["target_id"]) for e in got] == [
        ("workspace.create", "workspace", str(ws["id"])),
        ("workspace.update", "workspace", str(ws["id"])),  # the second PUT changed nothing
        ("workspace.upload", "workspace", str(ws["id"])),
        ("job.start", "job", str(j["id"])),
        ("job.stop", "job", str(j["id"])),
        ("workspace.delete", "workspace", str(ws["id"])),
    ]
    assert all(e["actor"] == ME and e["actor_kind"] == "user" and e["user"] == ME for e in got)
    assert all(e["ip"] == "127.0.0.1" and e["request_id"] for e in got)
    create, update, upload, start, stop, delete = got
    assert create["request_id"] == "audit-test-create-1"
    assert create["details"] == {"name": "audited", "files": 1}
    assert update["details"] == {"name": ["audited", "audited-2"]}
    assert upload["details"] == {"files": 1, "names": ["b.txt"]}
    assert start["details"]["workspace_id"] == ws["id"]
    assert start["details"]["job_type"] == "test_job" and start["details"]["resource"] == "local"
    assert delete["details"] == {"name": "audited-2"}
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)


def test_refused_actions_leave_no_event(hub, me, admin):
    before = mine(admin)
    assert me.post("workspaces/", json={"name": "no description"}).status_code == 400
    ws = me.post("workspaces/", json={"name": "busy", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(me, ws["id"], job_type="test_job")
    try:
        assert me.delete(f"workspaces/{ws['id']}/").status_code == 400  # a job runs in it
        r = me.put(f"workspaces/{ws['id']}/start/", json={"job_type": "test_job"})
        assert r.status_code == 400  # one job per workspace
        assert (
            me.put(f"workspaces/{ws['id']}/", json={"default_job_type": "nope"}).status_code == 400
        )
        # a quota refusal: the operator's change is recorded, the refused create is not
        r = admin.put(f"users/{ME}/quota", json={"disk_limit": 1})
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
    finally:
        admin.put(f"users/{ME}/quota", json={"disk_limit": None})
        stop_and_wait(me, j["id"])
    new = mine(admin)[len(before) :]
    assert [(e["action"], e["actor"]) for e in new] == [
        ("workspace.create", ME),
        ("job.start", ME),
        ("quota.update", "uwst-admin"),
        ("quota.update", "uwst-admin"),
        ("job.stop", ME),
    ]
    assert new[2]["details"] == {"disk_limit": [None, 1]}
    assert new[3]["details"] == {"disk_limit": [1, None]}
    assert new[2]["target_type"] == "quota" and new[2]["target_id"] == ME


def test_shares_and_acting_services_are_recorded(hub, me, admin, client_for):
    bob = client_for("uwst-bob")
    assert bob.get("users/me/quota").status_code == 200  # bob is known to uws
    bob_id = user_id(me, "uwst-bob")
    before = len(mine(admin))
    bob_before = len(events(admin, user="uwst-bob", limit=1000))
    ws = me.post("workspaces/", json={"name": "to share", "description": "d"}).json()["data"][
        "workspace"
    ]
    ids = []
    for _ in range(3):
        r = me.post(
            "shared_workspaces/",
            json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]},
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["shared_workspaces"][0]["id"])
        wait_copy(me, ids[-1])
        if len(ids) == 1:
            assert bob.put(f"shared_workspaces/{ids[0]}/accept/").status_code == 200
        elif len(ids) == 2:
            assert bob.delete(f"shared_workspaces/{ids[1]}/").status_code == 200
    assert me.delete(f"shared_workspaces/{ids[2]}/").status_code == 200
    # accepting again answers 200 as UWS, but changes nothing: no event
    assert bob.put(f"shared_workspaces/{ids[0]}/accept/").status_code == 200
    # a service acting for the user (the test-portal holds the uws-admin role)
    portal = Client(hub, hub.admin_token[::-1], name="test-portal")
    r = portal.post(f"workspaces/?user={ME}", json={"name": "by portal", "description": "d"})
    assert r.status_code == 200, r.text
    by_portal = r.json()["data"]["workspace"]

    new = mine(admin)[before:]
    assert [(e["action"], e["actor"], e["target_id"]) for e in new] == [
        ("workspace.create", ME, str(ws["id"])),
        ("share.create", ME, str(ids[0])),
        ("share.create", ME, str(ids[1])),
        ("share.create", ME, str(ids[2])),
        ("share.cancel", ME, str(ids[2])),
        ("workspace.create", "test-portal", str(by_portal["id"])),
    ]
    assert new[1]["details"]["recipient"] == "uwst-bob"
    assert new[1]["details"]["workspace_id"] == ws["id"]
    # the target is the invitation's address (its copy's id); details keep its old number
    assert new[1]["details"]["copy_id"] == ids[0]
    assert new[4]["details"] == {
        "workspace_id": ws["id"],
        "recipient": "uwst-bob",
        "invitation": new[3]["details"]["invitation"],
    }
    assert new[-1]["actor_kind"] == "service" and new[-1]["user"] == ME
    bobs = list(reversed(events(admin, user="uwst-bob", limit=1000)))[bob_before:]
    assert [(e["action"], e["actor"], e["target_id"]) for e in bobs] == [
        ("share.accept", "uwst-bob", str(ids[0])),
        ("share.decline", "uwst-bob", str(ids[1])),
    ]
    assert bobs[0]["details"]["sender"] == ME and bobs[1]["details"]["sender"] == ME


def test_token_creation_is_recorded(hub, anon, admin):
    r = anon.post(
        "tokens/",
        json={
            "client_token": hub.admin_token[::-1],  # the test-portal service
            "user_info": {"username": "audited-person", "email": "a@portal.example.org"},
        },
    )
    assert r.status_code == 200, r.text
    name = r.json()["data"]["username"]
    (e,) = events(admin, user=name, action="token.create")
    assert e["actor"] == "test-portal" and e["actor_kind"] == "service"
    assert e["target_type"] == "token" and e["target_id"]
    assert e["details"]["note"] == "uws token for test-portal"
    assert e["ip"] == "127.0.0.1"
    # a refused exchange (a client without the scope) records nothing
    alice_token = hub.token_for("uwst-alice")
    r = anon.post(
        "tokens/",
        json={"client_token": alice_token, "user_info": {"username": "x", "email": "x@y.org"}},
    )
    assert r.status_code == 403
    assert events(admin, actor="uwst-alice", action="token") == []


def test_only_operators_read_the_audit_log(hub, client_for, anon):
    alice = client_for("uwst-alice")
    r = alice.get("audit/")
    assert r.status_code == 403 and "custom:uws:read:audit" in r.json()["message"]
    assert alice.get("audit/", params={"user": "uwst-alice"}).status_code == 403
    assert anon.get("audit/").status_code == 401
    # the portal service holds the uws-admin role
    portal = Client(hub, hub.admin_token[::-1], name="test-portal")
    assert portal.get("audit/").status_code == 200


def test_filters_and_pages(hub, me, admin):
    everything = events(admin, user=ME, limit=1000)  # newest first
    assert len(everything) >= 10
    shares = events(admin, user=ME, action="share")
    assert shares and {e["action"] for e in shares} == {"share.create", "share.cancel"}
    assert events(admin, user=ME, action="share.cancel") == [
        e for e in shares if e["action"] == "share.cancel"
    ]
    assert events(admin, user=ME, action="shar_") == []  # a prefix, not a pattern
    by_admin = events(admin, user=ME, actor="uwst-admin")
    assert by_admin and {e["action"] for e in by_admin} == {"quota.update"}
    assert events(admin, user=ME, **{"from": "2999-01-01"}) == []
    assert events(admin, user=ME, to="2000-01-01") == []
    middle = everything[len(everything) // 2]["time"]
    older = events(admin, user=ME, to=middle, limit=1000)
    newer = events(admin, user=ME, limit=1000, **{"from": middle})
    assert older and all(e["time"] < middle for e in older)
    assert newer and all(e["time"] >= middle for e in newer)
    assert newer + older == everything

    # pages by id: the union is everything, in order, without repeats
    pages, before = [], None
    while True:
        params = {"user": ME, "limit": 3, **({"before": before} if before else {})}
        data = admin.get("audit/", params=params).json()["data"]
        pages.append(data["events"])
        before = data["next_before"]
        if before is None:
            break
    assert [e for p in pages for e in p] == everything
    assert all(len(p) == 3 for p in pages[:-1])
    assert events(admin, user=ME, limit=3, offset=3) == everything[3:6]

    for bad in ({"limit": 1001}, {"limit": 0}, {"limit": "x"}, {"offset": -1}, {"from": "soon"}):
        r = admin.get("audit/", params=bad)
        assert r.status_code == 400, (bad, r.text)
    r = admin.get("audit/", params={"from": "2020-01-02", "to": "2020-01-01"})
    assert r.status_code == 400


def test_command_line(hub, admin):
    cmd = [str(Path(sys.executable).parent / "uws-hub")]
    cfg = ["-f", str(Path(__file__).parent / "hub_config.py")]

    def run(*args):
        return subprocess.run(
            [*cmd, *args, *cfg], env=hub.env, capture_output=True, text=True, cwd=hub.dir
        )

    r = run("quota", "set", ME, "--core-hours", "7")
    assert r.returncode == 0, r.stderr
    r = run("quota", "set", ME, "--core-hours", "default")
    assert r.returncode == 0, r.stderr
    (e,) = events(admin, user=ME, action="quota", limit=1)
    assert e["actor_kind"] == "cli" and e["actor"] == getpass.getuser()
    assert e["details"] == {"core_hours_limit": ["7", None]}

    r = run("audit", "--user", ME, "--action", "workspace.create")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and all("workspace.create" in line and ME in line for line in lines)
    r = run("audit", "--user", ME, "--json", "--limit", "2")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["action"] for row in rows] == ["quota.update", "quota.update"]
    assert rows[0]["id"] < rows[1]["id"]  # oldest first
    r = run("audit", "--since", "yesterday")
    assert r.returncode == 2 and "--since" in r.stderr and "Traceback" not in r.stderr


def test_old_events_are_pruned(hub, admin):
    """Events older than c.UWS.audit_retention_days (10 years in the tests) go when the service
    starts (then hourly); `uws-hub audit-prune` deletes older than a date; each pruning leaves
    an audit.prune event saying how many went."""
    import datetime as dt
    import os
    import signal

    from uws_hub.db.models import AuditEvent, utcnow
    from uws_hub.db.session import make_engine, make_sessionmaker

    now = utcnow()
    Session = make_sessionmaker(make_engine(f"sqlite:///{hub.dir}/uws.sqlite"))
    with Session() as s:
        for years, what in ((12, "ancient"), (11, "ancient"), (9, "old")):
            s.add(
                AuditEvent(
                    time=now - dt.timedelta(days=365 * years),
                    actor="uwst-prune",
                    actor_kind="user",
                    username="uwst-prune",
                    action="workspace.create",
                    details={"name": what},
                )
            )
        s.commit()
    assert len(events(admin, user="uwst-prune")) == 3

    (old,) = hub.service_pids()
    os.kill(old, signal.SIGKILL)
    hub.wait_service_restarted(old)
    deadline = time.monotonic() + 30
    while len(kept := events(admin, user="uwst-prune")) == 3:
        assert time.monotonic() < deadline, kept
        time.sleep(0.5)
    assert [e["details"]["name"] for e in kept] == ["old"]
    (pruned,) = events(admin, action="audit.prune", limit=1)
    assert pruned["actor"] == "uws" and pruned["actor_kind"] == "system"
    assert pruned["details"]["events"] >= 2
    assert dt.datetime.fromisoformat(pruned["details"]["before"]) < now - dt.timedelta(days=3649)

    cmd = [str(Path(sys.executable).parent / "uws-hub"), "audit-prune"]
    cfg = ["-f", str(Path(__file__).parent / "hub_config.py")]

    def run(*args):
        return subprocess.run(
            [*cmd, *args, *cfg], env=hub.env, capture_output=True, text=True, cwd=hub.dir
        )

    r = run("--before", "2999-01-01")  # a typo must not empty the log
    assert r.returncode == 2 and "in the future; nothing was deleted" in r.stderr
    r = run("--before", "last year")
    assert r.returncode == 2 and "--before must be a date" in r.stderr
    assert len(events(admin, user="uwst-prune")) == 1
    before = (now - dt.timedelta(days=365 * 8)).date().isoformat()
    r = run("--before", before)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 audit event(s) older than ")
    assert events(admin, user="uwst-prune") == []
    (pruned,) = events(admin, action="audit.prune", limit=1)
    assert pruned["actor_kind"] == "cli" and pruned["actor"] == getpass.getuser()
    assert pruned["details"]["events"] == 1
