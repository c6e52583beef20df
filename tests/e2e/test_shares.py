"""Sharing by copy between two real accounts, with e-mail through a real SMTP server (aiosmtpd),
quotas that name the numbers, and live sharing of a running job."""

from __future__ import annotations

import hashlib
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from shareutil import user_id, wait_copy
from test_hostile_paths import HOSTILE_SOURCES

from conftest import Client
from hubtest import HubProcess
from jobutil import server_base, started, stop_and_wait, wait_job

USERS = ["uwst-alice", "uwst-bob", "uwst-carol", "uwst-admin"]


@pytest.fixture(scope="module")
def shub(smtp, hub_factory):
    ctl, _ = smtp

    def mail_templates(h: HubProcess) -> None:
        # the site overrides one template (the others are the shipped ones)
        (h.dir / "mail-templates").mkdir()
        (h.dir / "mail-templates" / "share_declined.txt").write_text(
            "Subject: [Lab] {{ workspace.name }} was declined\n\nSorry, {{ sender.name }}.\n"
        )

    def mail_settings(h: HubProcess) -> str:
        return f"""
c.UWS.smtp_host = "127.0.0.1"
c.UWS.smtp_port = {ctl.port}
c.UWS.smtp_poll_interval = 1.0
c.UWS.smtp_retry_delay = 1.0
c.UWS.email_template_dir = "{h.dir}/mail-templates"
c.UWS.email_from = "workspaces@uni-a.edu"
c.UWS.site_name = "Test Workspaces"
c.UWS.public_url = "{h.url}"
"""

    h = hub_factory(
        "shares",
        system_users=USERS,
        extra_config=mail_settings,
        before_start=mail_templates,
    )
    # people have e-mail addresses and names (as their identity source would record them)
    for u in USERS:
        Client.of(h, u).get("users/me/quota")
    with sqlite3.connect(h.dir / "uws.sqlite") as db:
        for u in USERS:
            first = u.split("-")[1].title()
            db.execute(
                "UPDATE uws_users SET email=?, first_name=? WHERE name=?",
                (f"{u}@uni-a.edu", first, u),
            )
    return h


@pytest.fixture(scope="module")
def people(shub):
    return {u: Client.of(shub, u) for u in USERS}


def as_user(name: str, script: str) -> None:
    """Run a shell script as `name` (files it makes are that account's, as a job's would be)."""
    subprocess.run(["runuser", "-u", name, "--", "bash", "-c", script], check=True)


def tree(path: Path) -> dict[str, tuple]:
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = Path(root, n)
            st = p.lstat()
            rel = str(p.relative_to(path))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            elif not p.is_file():
                out[rel] = ("special",)  # a FIFO: never opened (it would block)
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


def make_original(shub, alice: Client) -> tuple[dict, Path]:
    r = alice.post(
        "workspaces/",
        json={
            "name": "analysis",
            "description": "to share",
            "workspace_details": {
                "files": [
                    {"name": "notes.txt", "content": "hello bob"},
                    {"name": "data/raw/values.csv", "content": "1,2,3\n"},
                ],
                "symlinks": [{"name": "datasets", "source_path": str(shub.datasets)}],
            },
        },
    )
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    path = shub.root / "uwst-alice" / str(ws["id"])
    # things only the owner's own processes make: hidden files, job logs, links out, a FIFO
    script = f"""
set -e
cd {path}
head -c 1048576 /dev/urandom > data/big.bin
echo secret > .hidden
mkdir -p .jobs && echo log > .jobs/job-1.log
ln -s /etc/passwd passwd-link
ln -s notes.txt relative-link
mkfifo pipe
"""
    as_user("uwst-alice", script)
    return ws, path


def test_share_accept_end_to_end(shub, people, smtp):
    _, inbox = smtp
    alice, bob = people["uwst-alice"], people["uwst-bob"]
    ws, src = make_original(shub, alice)
    bob_id = user_id(alice, "uwst-bob")
    r = alice.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws["id"], "shared_user_ids": [str(bob_id)]},
    )
    assert r.status_code == 200, r.text
    share = r.json()["data"]["shared_workspaces"][0]
    copy_id = share["shared_workspace_id"]["id"]
    # not the recipient's workspace until accepted
    assert copy_id not in [w["id"] for w in bob.get("workspaces/").json()["data"]["workspaces"]]
    done = wait_copy(bob, share["id"])
    assert done["copy"]["files_total"] == done["copy"]["files_done"] == 3
    assert done["copy"]["bytes_done"] == 1048576 + len("hello bob") + len("1,2,3\n")
    mail = inbox.wait_for("uwst-bob@uni-a.edu", '"analysis"')
    assert "Alice" in mail["Subject"] and mail["From"].endswith("<workspaces@uni-a.edu>")
    # the e-mail links to the invitation by its address, the copy's id (as the API: UWS's ids)
    assert share["id"] == copy_id
    body = mail.get_payload(decode=True).decode()
    assert f"{shub.url}/services/uws/shares?workspace={copy_id}\n" in body.replace("\r", "")
    # as UWS: the original never ran a job, so no last job type nor options
    assert (share["last_job_type"], share["last_resource_options"]) == ("", {})
    # accept: a workspace of bob's, owned by bob's account, created (as UWS) when accepted
    r = bob.put(f"shared_workspaces/{share['id']}/accept/")
    assert r.status_code == 200, r.text
    accepted = r.json()["data"]["shared_workspace"]
    assert (
        accepted["shared_workspace_id"]["datetime_created"] == accepted["datetime_share_accepted"]
    )
    assert copy_id in [w["id"] for w in bob.get("workspaces/").json()["data"]["workspaces"]]
    inbox.wait_for("uwst-alice@uni-a.edu", "accepted")
    dst = shub.root / "uwst-bob" / str(copy_id)
    bob_uid = pwd.getpwnam("uwst-bob").pw_uid
    for root, dirs, files in os.walk(dst):
        for n in [".", *dirs, *files]:
            assert os.lstat(os.path.join(root, n)).st_uid == bob_uid, (root, n)
    got, want = tree(dst), tree(src)
    assert set(got) == {
        "notes.txt",
        "data",
        "data/raw",
        "data/raw/values.csv",
        "data/big.bin",
        "datasets",
    }
    for name in ("notes.txt", "data/raw/values.csv", "data/big.bin"):
        assert got[name] == want[name]  # same bytes, same modification time
    assert got["datasets"] == ("link", str(shub.datasets))  # into an allowed root: kept
    # the original is untouched and still alice's
    assert tree(src) == want and os.stat(src).st_uid == pwd.getpwnam("uwst-alice").pw_uid
    # accepted copies cannot be withdrawn; the sender's list shows it accepted
    assert bob.delete(f"shared_workspaces/{share['id']}/").status_code == 400
    sent = alice.get("shared_workspaces/", params={"is_accepted": "true"}).json()["data"]
    assert share["id"] in [s["id"] for s in sent["original_workspaces"]]
    assert (
        sent["original_workspaces"][0]["shared_workspace_id"]["user_id"]["username"] == "uwst-bob"
    )


# the corpus links made through the API are refused for (those a symlink can hold), planted by
# the owner directly, plus two links into the allowed root that a copy keeps
LINK_TARGETS = [t for t in HOSTILE_SOURCES if isinstance(t, str) and t and "\x00" not in t] + [
    "{datasets}",
    "{datasets}/sub",
]


def test_link_corpus_in_copies(shub, people):
    """The hostile link corpus planted in a workspace by its owner: the copy keeps only links
    that resolve into an allowed root, follows nothing, and carries nothing from outside."""
    alice, bob = people["uwst-alice"], people["uwst-bob"]
    outside = shub.dir / "outside"
    outside.mkdir(mode=0o700, exist_ok=True)
    (outside / "precious.txt").write_text("precious-secret")
    os.chmod(outside / "precious.txt", 0o600)
    (shub.datasets / "sub").mkdir(exist_ok=True)
    escape = shub.datasets / "escape"
    if not escape.is_symlink():
        escape.symlink_to(outside)
    ws = alice.post("workspaces/", json={"name": "links", "description": "d"}).json()["data"][
        "workspace"
    ]
    src = shub.root / "uwst-alice" / str(ws["id"])
    targets = [t.format(datasets=shub.datasets, outside=outside) for t in LINK_TARGETS]
    script = "set -e\n" + "".join(f"ln -s '{t}' {src}/l{i}\n" for i, t in enumerate(targets))
    script += f"mkdir {src}/real && echo ok > {src}/real/file\nln -s /etc {src}/real/etc-dir\n"
    as_user("uwst-alice", script)
    os.link(outside / "precious.txt", src / "hard")  # a hard link to a file alice cannot read
    sid = alice.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws["id"], "shared_user_ids": [user_id(alice, "uwst-bob")]},
    ).json()["data"]["shared_workspaces"][0]
    share = wait_copy(bob, sid["id"])
    dst = shub.root / "uwst-bob" / str(sid["shared_workspace_id"]["id"])
    got = tree(dst)
    kept = {k: v for k, v in got.items() if v[0] == "link"}
    assert kept == {
        f"l{LINK_TARGETS.index('{datasets}')}": ("link", os.path.realpath(shub.datasets)),
        f"l{LINK_TARGETS.index('{datasets}/sub')}": (
            "link",
            os.path.realpath(shub.datasets / "sub"),
        ),
    }
    assert set(got) - set(kept) == {"real", "real/file"}  # no hard link to the unreadable file
    for root, _dirs, files in os.walk(dst):
        for f in files:
            p = Path(root, f)
            assert p.is_symlink() or b"precious" not in p.read_bytes()
    assert share["copy"]["status"] == "done"
    assert bob.put(f"shared_workspaces/{sid['id']}/accept/").status_code == 200


def test_refusals(shub, people):
    alice, bob = people["uwst-alice"], people["uwst-bob"]
    ws = alice.post("workspaces/", json={"name": "r", "description": "d"}).json()["data"][
        "workspace"
    ]
    # as UWS, the people search never finds the caller: alice's id comes from bob's search
    assert "uwst-alice" not in [
        u["username"]
        for u in alice.get("users/", params={"search": "uwst"}).json()["data"]["users"]
    ]
    alice_id, bob_id = user_id(bob, "uwst-alice"), user_id(alice, "uwst-bob")

    def share(client, ws_id, ids):
        return client.post(
            "shared_workspaces/", json={"original_workspace_id": ws_id, "shared_user_ids": ids}
        )

    r = share(alice, ws["id"], [alice_id])
    assert r.status_code == 400 and "yourself" in r.json()["message"]
    first = share(alice, ws["id"], [bob_id])
    assert first.status_code == 200
    r = share(alice, ws["id"], [bob_id])
    assert r.status_code == 400 and "already shared with uwst-bob" in r.json()["message"]
    # bob cannot pass on a copy he has not accepted
    copy_id = first.json()["data"]["shared_workspaces"][0]["shared_workspace_id"]["id"]
    r = share(bob, copy_id, [alice_id])
    assert r.status_code == 400 and "not accepted yet" in r.json()["message"]
    for bad, msg in (  # UWS's texts (UWS-REFERENCE §1.15), and ours for what UWS let through
        ({"original_workspace_id": ws["id"]}, "Missing required fields."),
        (
            {"original_workspace_id": ws["id"], "shared_user_ids": 3},
            "shared_user_ids is not a list.",
        ),
        (
            {"original_workspace_id": ws["id"], "shared_user_ids": ["x"]},
            "Invalid user id provided.",
        ),
        (
            {"original_workspace_id": ws["id"], "shared_user_ids": [999999]},
            "Invalid user id provided.",
        ),
        (
            {"original_workspace_id": ws["id"], "shared_user_ids": []},
            "shared_user_ids is empty: name at least one person.",
        ),
    ):
        r = alice.post("shared_workspaces/", json=bad)
        assert r.status_code == 400 and r.json()["message"] == msg, r.text
    # bob's workspace is not alice's to share
    bws = bob.post("workspaces/", json={"name": "b", "description": "d"}).json()["data"][
        "workspace"
    ]
    assert share(alice, bws["id"], [bob_id]).status_code == 404
    # someone else cannot see or act on the invitation
    carol = people["uwst-carol"]
    sid = first.json()["data"]["shared_workspaces"][0]["id"]
    assert sid == copy_id  # addressed by the copy's id, as UWS
    for who in (carol, alice):  # only the recipient accepts: to anyone else there is none
        r = who.put(f"shared_workspaces/{sid}/accept/")
        assert (r.status_code, r.json()["message"]) == (404, f"Shared workspace {sid} not found.")
    r = carol.delete(f"shared_workspaces/{sid}/")
    assert (r.status_code, r.json()["message"]) == (
        403,
        f"User does not have permissions for shared workspace {sid}.",
    )
    r = carol.get(f"shared_workspaces/{sid}/")
    assert r.status_code == 200 and r.json()["message"] == (
        "Shared workspace matching given parameters could not be found."
    )
    assert r.json()["data"] == {"original_workspaces": [], "shared_workspaces": []}
    # the original cannot be deleted while the invitation is open
    r = alice.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 400 and "have not yet been accepted" in r.json()["message"]


def test_decline_and_cancel_remove_the_copy(shub, people, smtp):
    _, inbox = smtp
    alice, bob = people["uwst-alice"], people["uwst-bob"]
    ws = alice.post(
        "workspaces/",
        json={
            "name": "declined-one",
            "description": "d",
            "workspace_details": {"files": [{"name": "a", "content": "a"}]},
        },
    ).json()["data"]["workspace"]
    bob_id = user_id(alice, "uwst-bob")
    sid = alice.post(
        "shared_workspaces/", json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]}
    ).json()["data"]["shared_workspaces"][0]
    wait_copy(bob, sid["id"])
    copy_dir = shub.root / "uwst-bob" / str(sid["shared_workspace_id"]["id"])
    assert copy_dir.is_dir()
    r = bob.delete(f"shared_workspaces/{sid['id']}/")
    assert r.status_code == 200, r.text
    assert r.json()["message"] == f"Shared workspace {sid['id']} queued for deletion."
    assert "declined" in r.json()["detail"]
    mail = inbox.wait_for("uwst-alice@uni-a.edu", "[Lab] declined-one was declined")
    assert mail.get_payload().strip() == "Sorry, uwst-alice."  # the site's own template
    deadline = time.monotonic() + 30
    while copy_dir.exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    r = bob.get(f"shared_workspaces/{sid['id']}/")  # gone: UWS's empty answer
    assert r.status_code == 200 and r.json()["data"]["shared_workspaces"] == []
    # the sender cancels another one
    sid2 = alice.post(
        "shared_workspaces/", json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]}
    ).json()["data"]["shared_workspaces"][0]
    r = alice.delete(f"shared_workspaces/{sid2['id']}/")
    assert r.status_code == 200 and "cancelled" in r.json()["detail"]


def test_concurrent_accept_decline_cancel_end_consistent(shub, people):
    alice, bob = people["uwst-alice"], people["uwst-bob"]
    ws = alice.post("workspaces/", json={"name": "race", "description": "d"}).json()["data"][
        "workspace"
    ]
    bob_id = user_id(alice, "uwst-bob")
    for _round in range(2):
        sid = alice.post(
            "shared_workspaces/",
            json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]},
        ).json()["data"]["shared_workspaces"][0]["id"]
        wait_copy(bob, sid)
        results: list[tuple[str, int]] = []
        lock = threading.Lock()

        def act(kind, sid=sid, results=results, lock=lock):
            s = requests.Session()
            who = bob if kind in ("accept", "decline") else alice
            s.headers.update(who.session.headers)
            url = f"{shub.url}/services/uws/api/shared_workspaces/{sid}/"
            r = (
                s.put(url + "accept/", timeout=60)
                if kind == "accept"
                else s.delete(url, timeout=60)
            )
            with lock:
                results.append((kind, r.status_code))

        threads = [
            threading.Thread(target=act, args=(("accept", "decline", "cancel")[i % 3],))
            for i in range(100)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # accepting again is a no-op 200 (as UWS), so: either every 200 is an accept (the
        # invitation ended accepted), or exactly one decline or cancel won and no accept did
        wins = [k for k, code in results if code == 200]
        assert wins and (set(wins) == {"accept"} or len(wins) == 1), results
        assert all(code in (200, 400, 404) for _, code in results), results
        got = bob.get(f"shared_workspaces/{sid}/")
        if wins[0] == "accept":
            assert got.json()["data"]["shared_workspaces"][0]["is_accepted"] is True
        else:
            assert got.status_code == 200 and got.json()["data"]["shared_workspaces"] == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_service_killed_mid_copy_completes_after_restart(shub, people, sig):
    """Killed, the service leaves a partial copy in its hidden staging directory; stopped
    (SIGTERM), it stops the copy at once rather than finishing it before it exits, and leaves
    nothing. Either way the restarted service makes the whole copy."""
    alice, bob = people["uwst-alice"], people["uwst-bob"]
    ws = alice.post("workspaces/", json={"name": "big", "description": "d"}).json()["data"][
        "workspace"
    ]
    src = shub.root / "uwst-alice" / str(ws["id"])
    script = f"cd {src} && for d in $(seq 1 40); do mkdir d$d; for f in $(seq 1 100); do head -c 65536 /dev/urandom > d$d/f$f; done; done"
    as_user("uwst-alice", script)
    alice.get(f"workspaces/{ws['id']}/")
    bob_id = user_id(alice, "uwst-bob")
    sid = alice.post(
        "shared_workspaces/", json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]}
    ).json()["data"]["shared_workspaces"][0]
    copy_id = sid["shared_workspace_id"]["id"]
    share = wait_copy(bob, sid["id"], until=("copying", "done"))
    while share["copy"]["files_done"] == 0 and share["copy"]["status"] == "copying":
        share = wait_copy(bob, sid["id"], until=("copying", "done"))
    assert share["copy"]["status"] == "copying", (
        "the copy finished before the test could interrupt it"
    )
    (old,) = shub.service_pids()
    os.kill(old, sig)
    final = shub.root / "uwst-bob" / str(copy_id)
    if sig == signal.SIGTERM:
        deadline = time.monotonic() + 60
        while old in shub.service_pids():
            assert time.monotonic() < deadline, "the service did not stop"
            time.sleep(0.1)
        # it stopped without finishing the copy, and removed its partial copy
        assert not list((shub.root / "uwst-bob").glob(".uws-copy-*"))
    assert not final.exists()  # the partial copy is only in the hidden staging directory
    shub.wait_service_restarted(old)
    done = wait_copy(bob, sid["id"], timeout=180)
    assert done["copy"]["files_done"] == 4000
    assert tree(final) == tree(src)
    assert not list((shub.root / "uwst-bob").glob(".uws-copy-*"))
    assert bob.put(f"shared_workspaces/{sid['id']}/accept/").status_code == 200


def test_disk_full_during_copy(shub, people, smtp):
    """carol's directory is a 2 MiB filesystem: the copy fails clearly, nothing is half-made,
    and both sides get a mail saying so."""
    _, inbox = smtp
    alice, carol = people["uwst-alice"], people["uwst-carol"]
    carol_dir = shub.root / "uwst-carol"
    carol_dir.mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(carol_dir)], check=True
    )
    try:
        pw = pwd.getpwnam("uwst-carol")
        os.chown(carol_dir, pw.pw_uid, pw.pw_gid)
        ws = alice.post("workspaces/", json={"name": "too-big", "description": "d"}).json()["data"][
            "workspace"
        ]
        src = shub.root / "uwst-alice" / str(ws["id"])
        as_user("uwst-alice", f"head -c 4194304 /dev/urandom > {src}/big")
        before = tree(src)
        sid = alice.post(
            "shared_workspaces/",
            json={
                "original_workspace_id": ws["id"],
                "shared_user_ids": [user_id(alice, "uwst-carol")],
            },
        ).json()["data"]["shared_workspaces"][0]
        failed = wait_copy(carol, sid["id"], until=("failed", "done"))
        assert failed["copy"]["status"] == "failed"
        assert "space" in failed["copy"]["error"].lower(), failed["copy"]["error"]
        assert tree(src) == before
        assert list(carol_dir.iterdir()) == []  # no partial copy, no staging left
        for who in ("uwst-alice", "uwst-carol"):
            mail = inbox.wait_for(f"{who}@uni-a.edu", "failed")
            assert '"too-big"' in mail["Subject"] and "space" in mail.get_payload().lower()
        r = carol.put(f"shared_workspaces/{sid['id']}/accept/")
        assert r.status_code == 400 and "failed" in r.json()["message"]
        assert carol.delete(f"shared_workspaces/{sid['id']}/").status_code == 200
    finally:
        subprocess.run(["umount", "-l", str(carol_dir)], check=False)


# ---- quotas ---------------------------------------------------------------------------------


@pytest.fixture
def limits_reset(people):
    yield
    for u in ("uwst-alice", "uwst-bob"):
        people["uwst-admin"].put(
            f"users/{u}/quota", json={"disk_limit": None, "core_hours_limit": None}
        )


def test_quotas_refuse_with_the_numbers(shub, people, limits_reset):
    alice, bob, admin = people["uwst-alice"], people["uwst-bob"], people["uwst-admin"]
    # only operators set limits
    assert alice.put("users/uwst-alice/quota", json={"disk_limit": 10**12}).status_code == 403
    for bad in ({"disk_limit": -1}, {"core_hours_limit": "lots"}, {"other": 1}, {}):
        assert admin.put("users/uwst-bob/quota", json=bad).status_code == 400
    q = alice.get("users/me/quota").json()["data"]
    used = q["disk"]["used"]
    r = admin.put("users/uwst-alice/quota", json={"disk_limit": used + 4096, "core_hours_limit": 1})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["disk"]["limit"] == used + 4096
    # where the limits come from: alice's own, the site has none
    assert r.json()["data"]["overrides"] == {"disk_limit": used + 4096, "core_hours_limit": "1"}
    assert r.json()["data"]["defaults"] == {"disk_limit": None, "core_hours_limit": None}
    # the site counts all time (no accounting period)
    assert r.json()["data"]["core_hours"]["period"] == {"name": "all", "start": None, "end": None}
    # a workspace that would pass the limit
    r = alice.post(
        "workspaces/",
        json={
            "name": "x",
            "description": "d",
            "workspace_details": {"files": [{"name": "f", "content": "x" * 10000}]},
        },
    )
    assert r.status_code == 403
    assert "it needs 9.8 KiB" in r.json()["message"] and "disk quota" in r.json()["message"]
    ws = alice.post("workspaces/", json={"name": "small", "description": "d"}).json()["data"][
        "workspace"
    ]
    r = alice.put(f"workspaces/{ws['id']}/upload/", files={"f": ("big.bin", b"x" * 20000)})
    assert r.status_code == 403 and "upload these files" in r.json()["message"]
    # the same without Content-Length (chunked): refused as the bytes arrive, nothing kept
    body, ctype = requests.models.RequestEncodingMixin._encode_files(
        {"f": ("big.bin", b"x" * 20000)}, {}
    )
    r = alice.session.put(  # (the OpenAPI response check cannot read a streamed request)
        f"{shub.url}/services/uws/api/workspaces/{ws['id']}/upload/",
        data=(body[i : i + 4096] for i in range(0, len(body), 4096)),
        headers={"Content-Type": ctype},
        timeout=60,
    )
    assert r.status_code == 403 and "upload these files" in r.json()["message"], r.text
    assert not (shub.root / "uwst-alice" / str(ws["id"]) / "big.bin").exists()
    # a job asking for more core-hours than are left
    r = alice.put(
        f"workspaces/{ws['id']}/start/",
        json={"job_type": "test_job", "resource_options": {"num_cpus": 2, "time_limit_min": 60}},
    )
    assert r.status_code == 403
    assert "2 cores × 1 h = 2 core-hours; you have 1 of 1 left" in r.json()["message"], r.text
    # jobs started together cannot overrun the limit: running jobs hold the rest of their time
    admin.put("users/uwst-alice/quota", json={"core_hours_limit": 2})
    ws2 = alice.post("workspaces/", json={"name": "second", "description": "d"}).json()["data"][
        "workspace"
    ]
    first = alice.put(
        f"workspaces/{ws['id']}/start/",
        json={"job_type": "test_job", "resource_options": {"num_cpus": 1, "time_limit_min": 60}},
    )
    assert first.status_code == 200, first.text
    r = alice.put(
        f"workspaces/{ws2['id']}/start/",
        json={"job_type": "test_job", "resource_options": {"num_cpus": 1, "time_limit_min": 90}},
    )
    assert r.status_code == 403
    assert "(1 more is held by your running jobs)" in r.json()["message"], r.text
    wait_job(alice, first.json()["data"]["job"]["id"])  # running
    time.sleep(2)  # long enough to cost something
    done = stop_and_wait(alice, first.json()["data"]["job"]["id"])
    # usage after jobs end is what the jobs recorded
    jobs = alice.get("jobs/").json()["data"]["jobs"]
    recorded = sum(float(j["core_hours"]) for j in jobs if j["status"] in ("complete", "failed"))
    used = float(alice.get("users/me/quota").json()["data"]["core_hours"]["used"])
    assert abs(used - recorded) < 0.01 and float(done["core_hours"]) > 0, (used, recorded)
    # deleting is always allowed
    assert alice.delete(f"workspaces/{ws['id']}/").status_code == 200
    # a share accept that would pass the recipient's limit
    admin.put("users/uwst-alice/quota", json={"disk_limit": None})
    src = alice.post("workspaces/", json={"name": "to-bob", "description": "d"})
    assert src.status_code == 200, src.text
    src_ws = src.json()["data"]["workspace"]
    as_user(
        "uwst-alice", f"head -c 200000 /dev/urandom > {shub.root}/uwst-alice/{src_ws['id']}/blob"
    )
    bob_used = bob.get("users/me/quota").json()["data"]["disk"]["used"]
    admin.put("users/uwst-bob/quota", json={"disk_limit": bob_used + 1000})
    sid = alice.post(
        "shared_workspaces/",
        json={
            "original_workspace_id": src_ws["id"],
            "shared_user_ids": [user_id(alice, "uwst-bob")],
        },
    ).json()["data"]["shared_workspaces"][0]["id"]
    wait_copy(bob, sid)
    r = bob.put(f"shared_workspaces/{sid}/accept/")
    assert r.status_code == 403 and "accept this shared workspace" in r.json()["message"]
    admin.put("users/uwst-bob/quota", json={"disk_limit": None})
    assert bob.put(f"shared_workspaces/{sid}/accept/").status_code == 200
    # operators see everyone, and the report
    everyone = admin.get("quotas/").json()["data"]["quotas"]
    assert {"uwst-alice", "uwst-bob"} <= {q["username"] for q in everyone}
    assert alice.get("quotas/").status_code == 403
    csv_text = admin.get("usage/", params={"format": "csv"}).text
    assert csv_text.startswith("user,workspace_id,workspace_name,jobs,core_hours,disk_space")


def test_hub_ui_start_over_quota_is_refused_by_the_spawner(shub, people, limits_reset):
    """A job started from the hub's own pages/API (not the uws API) meets the same check."""
    alice, admin = people["uwst-alice"], people["uwst-admin"]
    admin.put("users/uwst-alice/quota", json={"core_hours_limit": 1})
    ws = alice.post("workspaces/", json={"name": "hubui", "description": "d"}).json()["data"][
        "workspace"
    ]
    with sqlite3.connect(shub.dir / "uws.sqlite") as db:
        uid = db.execute("SELECT id FROM uws_users WHERE name='uwst-alice'").fetchone()[0]
        cur = db.execute(
            "INSERT INTO uws_jobs (user_id, workspace_id, job_type, resource, status, datetime_created, "
            "cpus, gpus, time_limit_s, core_seconds, resource_options, job_details, server_removed) "
            "VALUES (?, ?, 'test_job', 'local', 'pending', '2026-01-01 00:00:00.000000', 4, 0, "
            "36000, 0, '{}', '{}', 0)",
            (uid, ws["id"]),
        )
        job_id = cur.lastrowid
    r = requests.post(
        f"{shub.url}/hub/api/users/uwst-alice/servers/job-{job_id}",
        json={"job_id": job_id},
        headers=alice.session.headers,
        timeout=60,
    )
    assert r.status_code == 403, r.text
    assert "4 cores × 10 h = 40 core-hours; you have 1 of 1 left" in r.json()["message"]
    admin.put("users/uwst-alice/quota", json={"core_hours_limit": None})


# ---- people search and live sharing -----------------------------------------------------------


def test_user_search(shub, people):
    alice = people["uwst-alice"]
    r = alice.get("users/", params={"search": "u"})
    assert r.status_code == 200 and r.json()["data"]["users"] == []
    assert r.json()["message"] == "Users matching given parameters could not be found."
    found = alice.get("users/", params={"search": "UWST-B"}).json()["data"]["users"]
    assert [u["username"] for u in found] == ["uwst-bob"]
    # UWS's shape, e-mail included (c.UWS.search_shows_email), found by e-mail too
    assert found[0]["email"] == "uwst-bob@uni-a.edu"
    assert set(found[0]) == {"id", "username", "first_name", "last_name", "email"}
    by_mail = alice.get("users/", params={"search": "bob@uni-a"}).json()["data"]["users"]
    assert [u["username"] for u in by_mail] == ["uwst-bob"]
    # never the caller
    mine = alice.get("users/", params={"search": "uwst-alice"}).json()
    assert mine["data"]["users"] == [], mine
    assert mine["message"] == "Users matching given parameters could not be found."
    assert alice.get("users/", params={"search": "%"}).json()["data"]["users"] == []
    anon = Client(shub)
    assert anon.get("users/", params={"search": "uwst"}).status_code == 401


def test_live_share_of_a_running_job(shub, people):
    alice, carol = people["uwst-alice"], people["uwst-carol"]
    ws = alice.post("workspaces/", json={"name": "live", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(alice, ws["id"], job_type="test_job", resource="local")
    url = server_base(j) + "whoami"

    def bob_gets() -> int:
        # a fresh token each time: servers cache what a token may do for a while
        headers = {"Authorization": f"token {shub.token_for('uwst-bob')}"}
        return requests.get(url, headers=headers, timeout=30, allow_redirects=False).status_code

    assert bob_gets() != 200
    r = alice.post(f"jobs/{j['id']}/shares/", json={"user": "uwst-bob"})
    assert r.status_code == 200, r.text
    listed = alice.get(f"jobs/{j['id']}/shares/").json()["data"]["shares"]
    assert [s["user"] for s in listed] == ["uwst-bob"]
    assert bob_gets() == 200
    # only the owner shares; nobody else sees the job
    assert carol.post(f"jobs/{j['id']}/shares/", json={"user": "uwst-carol"}).status_code == 404
    assert alice.post(f"jobs/{j['id']}/shares/", json={"user": "nobody-here"}).status_code == 400
    assert alice.post(f"jobs/{j['id']}/shares/", json={}).status_code == 400
    r = alice.delete(f"jobs/{j['id']}/shares/", json={"user": "uwst-bob"})
    assert r.status_code == 200
    assert alice.get(f"jobs/{j['id']}/shares/").json()["data"]["shares"] == []
    assert bob_gets() != 200
    stop_and_wait(alice, j["id"])


def test_quota_command_line(shub, people):
    bob = people["uwst-bob"]
    cmd = [str(Path(sys.executable).parent / "uws-hub")]
    cfg = ["-f", str(Path(__file__).parent / "hub_config.py")]
    r = subprocess.run(
        [*cmd, "quota", "set", "uwst-bob", "--disk", "5G", "--core-hours", "12.5", *cfg],
        env=shub.env,
        capture_output=True,
        text=True,
        cwd=shub.dir,
    )
    assert r.returncode == 0, r.stderr
    q = bob.get("users/me/quota").json()["data"]
    assert q["disk"]["limit"] == 5 * 1024**3 and q["core_hours"]["limit"] == "12.5"
    r = subprocess.run(
        [*cmd, "usage", "--from", "yesterday", *cfg],
        env=shub.env,
        capture_output=True,
        text=True,
        cwd=shub.dir,
    )
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [*cmd, "usage", "--csv", *cfg], env=shub.env, capture_output=True, text=True, cwd=shub.dir
    )
    assert r.returncode == 0 and r.stdout.startswith("user,workspace_id"), r.stderr
    subprocess.run(
        [*cmd, "quota", "set", "uwst-bob", "--disk", "default", "--core-hours", "default", *cfg],
        env=shub.env,
        check=True,
        capture_output=True,
        cwd=shub.dir,
    )


def test_mail_failure_never_breaks_a_share_and_is_retried(shub, people, smtp):
    ctl, inbox = smtp
    alice = people["uwst-alice"]
    ws = alice.post("workspaces/", json={"name": "while-mail-down", "description": "d"}).json()[
        "data"
    ]["workspace"]
    ctl.down()  # the mail server is down
    try:
        r = alice.post(
            "shared_workspaces/",
            json={
                "original_workspace_id": ws["id"],
                "shared_user_ids": [user_id(alice, "uwst-bob")],
            },
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while True:
            with sqlite3.connect(shub.dir / "uws.sqlite") as db:
                row = db.execute(
                    "SELECT attempts, last_error, sent FROM uws_notifications "
                    "WHERE subject LIKE '%while-mail-down%'"
                ).fetchone()
            if row and row[0] >= 1:
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.3)
        assert row[1] and row[2] is None  # failed, recorded, not lost
    finally:
        ctl.up()
    inbox.wait_for("uwst-bob@uni-a.edu", "while-mail-down", timeout=60)
