"""Faults under load: the uws service frozen and killed, the hub and the database restarted, and
kill -9 in the middle of a create, an upload, a delete and a share copy.

Clients here behave as a careful script does: each creating call carries an Idempotency-Key,
and a call that gets no answer (a timeout, a refused connection, the proxy's 503 while the
service is down, 409 while the first try still runs) is sent again with the same key. Asserted
after each fault: every call was answered in the end, nothing acknowledged was lost, nothing was
created twice, no workspace is left in a transitional state, and no 500 was ever answered.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter

import pytest
import requests
from shareutil import user_id, wait_copy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from conftest import Client, empty_answer, workspace_dir
from hubtest import REPO, HubProcess

PG_ADMIN = os.environ.get("UWS_TEST_PG_URL")
#: answers that mean "not answered yet: send it again"
RETRY = {408, 409, 429, 502, 503, 504}


@pytest.fixture(scope="module")
def fhub(hub_factory):
    """A hub of its own (its service is killed, the hub and database restarted), on PostgreSQL
    when the suite has it."""
    env, name = {}, None
    if PG_ADMIN:
        name = f"uws_faults_{secrets.token_hex(4)}"
        # no pooled connection: the database is restarted in between
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        env["UWS_TEST_DB_URL"] = (
            make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        )
    h = hub_factory("faults", env=env, users=("uwst-load0", "uwst-load1", "uwst-alice", "uwst-bob"))
    yield h
    hub_factory.release(h)
    if name:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


class Caller:
    """One client: sends a call until it is answered (see RETRY), with the same key."""

    def __init__(self, hub: HubProcess, token: str):
        self.hub = hub
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.codes: Counter = Counter()  # every answer seen, transient ones included
        self.unanswered: list[str] = []

    def call(self, method: str, path: str, *, key: bool = False, deadline: float = 150, **kw):
        headers = {"Idempotency-Key": str(uuid.uuid4())} if key else {}
        url = f"{self.hub.url}/services/uws/api/{path}"
        give_up = time.monotonic() + deadline
        while time.monotonic() < give_up:
            try:
                r = self.session.request(method, url, headers=headers, timeout=5, **kw)
            except requests.RequestException:
                self.codes["no answer"] += 1
            else:
                ours = r.headers.get("Content-Type", "").startswith("application/json")
                self.codes[r.status_code if ours else f"{r.status_code} (proxy)"] += 1
                if ours and r.status_code not in RETRY:
                    return r
            time.sleep(0.3)
        self.unanswered.append(f"{method} {path}")
        return None


class Load:
    """Callers creating, listing and deleting workspaces until stopped; what they were told."""

    def __init__(self, hub: HubProcess, tag: str, clients: int = 4):
        self.tag = tag
        self.callers = [Caller(hub, hub.token_for(f"uwst-load{i % 2}")) for i in range(clients)]
        self.created: dict[str, int] = {}  # name -> id, as acknowledged
        self.deleted: set[int] = set()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(c, i)) for i, c in enumerate(self.callers)
        ]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _run(self, caller: Caller, i: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            name = f"{self.tag}-{i}-{n}"
            r = caller.call(
                "POST", "workspaces/", key=True, json={"name": name, "description": "load"}
            )
            if r is not None and r.status_code == 200:
                self.created[name] = r.json()["data"]["workspace"]["id"]
            caller.call("GET", "workspaces/")
            if n % 3 == 0 and r is not None and r.status_code == 200:
                ws_id = self.created[name]
                d = caller.call("DELETE", f"workspaces/{ws_id}/")
                # a retry may find it being deleted, or gone, by the try whose answer was lost
                if d is not None and (
                    d.status_code in (200, 404) or "already being deleted" in d.json()["message"]
                ):
                    self.deleted.add(ws_id)

    def check(self, client: Client) -> Counter:
        """Every call answered, no 500, everything acknowledged there once, nothing stuck."""
        codes = sum((c.codes for c in self.callers), Counter())
        assert not [u for c in self.callers for u in c.unanswered], codes
        assert 500 not in codes, codes
        assert len(self.created) >= 8, (self.created, codes)
        settle_workspaces(client)
        for user in ("uwst-load0", "uwst-load1"):
            mine = [
                w
                for w in client.get("workspaces/", params={"user": user}).json()["data"][
                    "workspaces"
                ]
                if w["name"].startswith(f"{self.tag}-")
            ]
            names = Counter(w["name"] for w in mine)
            assert not [n for n, k in names.items() if k > 1], names  # nothing created twice
            for w in mine:
                assert w["status"] == "idle", w
                assert self.created.get(w["name"]) == w["id"], w  # nothing unacknowledged
        listed = {
            w["id"]
            for user in ("uwst-load0", "uwst-load1")
            for w in client.get("workspaces/", params={"user": user}).json()["data"]["workspaces"]
        }
        for name, ws_id in self.created.items():  # nothing acknowledged lost
            assert (ws_id in listed) == (ws_id not in self.deleted), (name, ws_id)
        return codes


def settle_workspaces(client: Client, timeout: float = 60) -> None:
    """Wait until no workspace is initializing or deleting (the reconciler finishes them)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [
            w
            for user in ("uwst-load0", "uwst-load1", "uwst-alice", "uwst-bob")
            for w in client.get("workspaces/", params={"user": user}).json()["data"]["workspaces"]
            if w["status"] in ("initializing", "deleting")
        ]
        if not busy:
            return
        assert time.monotonic() < deadline, f"stuck: {busy}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def operator(fhub):
    return Client(fhub, fhub.admin_token[::-1], name="test-portal")  # the uws-admin service


def service_pid(hub: HubProcess) -> int:
    (pid,) = hub.service_pids()
    return pid


def kill_service(hub: HubProcess) -> None:
    old = service_pid(hub)
    os.kill(old, signal.SIGKILL)
    hub.wait_service_restarted(old)


def test_service_frozen_under_load(fhub, operator):
    with Load(fhub, "frozen") as load:
        time.sleep(2)
        pid = service_pid(fhub)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(10)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(4)
    codes = load.check(operator)
    assert codes["no answer"] > 0, codes  # the callers did time out while it was frozen


def test_service_killed_under_load(fhub, operator):
    alice = Client.of(fhub, "uwst-alice")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "before-the-kill", "description": "d"}
    first = alice.post("workspaces/", json=body, headers=key)
    assert first.status_code == 200, first.text
    with Load(fhub, "killed") as load:
        time.sleep(2)
        kill_service(fhub)
        time.sleep(3)
    load.check(operator)
    # the key outlived the process: the retry is answered, not carried out again
    again = alice.post("workspaces/", json=body, headers=key)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


def test_hub_restarted_under_load(fhub, operator):
    with Load(fhub, "hubrestart") as load:
        time.sleep(2)
        fhub.stop()
        fhub.start()
        time.sleep(3)
    codes = load.check(operator)
    assert codes["no answer"] > 0, codes


@pytest.mark.skipif(not PG_ADMIN, reason="needs the project's PostgreSQL (UWS_TEST_PG_URL)")
def test_database_restarted_under_load(fhub, operator):
    pg = str(REPO / "scripts" / "pg.sh")
    with Load(fhub, "pgrestart") as load:
        time.sleep(2)
        subprocess.run([pg, "stop"], check=True)
        try:
            time.sleep(4)
        finally:
            subprocess.run([pg, "start"], check=True)
        time.sleep(4)
    codes = load.check(operator)
    assert codes[503] > 0, codes  # the outage was answered 503 (retry), not 500


# ---- kill -9 in the middle of the work ------------------------------------------------------


def files(n: int) -> list[dict]:
    return [{"name": f"d{i % 20}/f{i}.txt", "content": f"file {i}\n" * 20} for i in range(n)]


def in_background(fn) -> threading.Thread:
    t = threading.Thread(target=fn)
    t.start()
    return t


def test_kill_during_create(fhub, operator):
    alice = Caller(fhub, fhub.token_for("uwst-alice"))
    body = {"name": "big-create", "description": "d", "workspace_details": {"files": files(3000)}}
    answers = []
    t = in_background(
        lambda: answers.append(alice.call("POST", "workspaces/", key=True, json=body))
    )
    time.sleep(0.4)
    kill_service(fhub)
    t.join()
    (r,) = answers
    assert r is not None and r.status_code == 200, (r and r.text, alice.codes)
    ws = r.json()["data"]["workspace"]
    settle_workspaces(operator)
    mine = operator.get("workspaces/", params={"user": "uwst-alice", "name": "big-create"})
    (got,) = mine.json()["data"]["workspaces"]  # exactly one
    assert got["id"] == ws["id"] and got["status"] == "idle"
    d = workspace_dir(fhub, "uwst-alice", ws["id"])
    assert sum(1 for _ in d.rglob("*.txt")) == 3000


def test_kill_during_upload(fhub, operator):
    alice = Caller(fhub, fhub.token_for("uwst-alice"))
    ws = alice.call("POST", "workspaces/", json={"name": "upload-kill", "description": "d"})
    ws = ws.json()["data"]["workspace"]
    d = workspace_dir(fhub, "uwst-alice", ws["id"])
    data = os.urandom(40 * 1024**2)
    answers = []
    t = in_background(
        lambda: answers.append(
            alice.call(
                "PUT", f"workspaces/{ws['id']}/upload/", key=True, files={"f": ("big.bin", data)}
            )
        )
    )
    time.sleep(0.5)
    kill_service(fhub)
    t.join()
    (r,) = answers
    assert r is not None and r.status_code == 200, (r and r.text, alice.codes)
    assert (d / "big.bin").read_bytes() == data  # whole, never a part
    staging = d.parent / ".uws-staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_kill_during_delete(fhub, operator):
    alice = Caller(fhub, fhub.token_for("uwst-alice"))
    r = alice.call(
        "POST",
        "workspaces/",
        json={
            "name": "delete-kill",
            "description": "d",
            "workspace_details": {"files": files(3000)},
        },
    )
    ws = r.json()["data"]["workspace"]
    d = workspace_dir(fhub, "uwst-alice", ws["id"])
    assert alice.call("DELETE", f"workspaces/{ws['id']}/").status_code == 200
    kill_service(fhub)
    settle_workspaces(operator)
    got = operator.get(f"workspaces/{ws['id']}/", params={"user": "uwst-alice"})
    assert empty_answer(got, "workspaces")
    assert not d.exists()
    assert not [p for p in d.parent.iterdir() if p.name.endswith(f"-{ws['id']}")]


def test_kill_during_share_copy(fhub, operator):
    alice = Caller(fhub, fhub.token_for("uwst-alice"))
    bob = Client.of(fhub, "uwst-bob")
    bob.post("workspaces/", json={"name": "bobs", "description": "d"})  # known to the service
    r = alice.call(
        "POST",
        "workspaces/",
        json={
            "name": "share-kill",
            "description": "d",
            "workspace_details": {"files": files(3000)},
        },
    )
    ws = r.json()["data"]["workspace"]
    asker = Client.of(fhub, "uwst-alice")
    body = {"original_workspace_id": ws["id"], "shared_user_ids": [user_id(asker, "uwst-bob")]}
    r = alice.call("POST", "shared_workspaces/", key=True, json=body)
    assert r.status_code == 200, r.text
    (share,) = r.json()["data"]["shared_workspaces"]
    time.sleep(0.3)
    kill_service(fhub)
    share = wait_copy(bob, share["id"])
    copy_id = share["shared_workspace_id"]["id"]
    copy = workspace_dir(fhub, "uwst-bob", copy_id)
    assert sum(1 for _ in copy.rglob("*.txt")) == 3000
    sent = asker.get("shared_workspaces/").json()["data"]["original_workspaces"]
    assert len([s for s in sent if (s["original_workspace_id"] or {}).get("id") == ws["id"]]) == 1
