"""Defects an outside probe found (issue 10), each as a user would see it, through the proxy."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests
from shareutil import user_id, wait_copy

from conftest import Client, workspace_dir
from jobutil import wait_job
from uws_hub.workspaces.fsops import STAGING_DIR, TRASH_PREFIX

BIG = str(2**63)  # one past the largest 64-bit signed integer a database column holds


def api_url(hub, path: str) -> str:
    return f"{hub.url}/services/uws/api/{path.lstrip('/')}"


# ---- 1. a method nobody serves must not fail anybody else's request ---------------------


def test_unknown_methods_never_fail_other_clients(hub, alice, make_workspace):
    make_workspace(name="listed")
    headers = dict(alice.session.headers)
    stop = threading.Event()
    trace_codes: Counter = Counter()

    def tracer() -> None:
        s = requests.Session()  # no login: anyone can send these
        while not stop.is_set():
            for method in ("TRACE", "PROPFIND", "PURGE"):
                try:
                    r = s.request(method, api_url(hub, "status/"), timeout=30)
                    trace_codes[(method, r.status_code)] += 1
                except requests.RequestException as e:
                    trace_codes[(method, type(e).__name__)] += 1

    threads = [threading.Thread(target=tracer) for _ in range(2)]
    for t in threads:
        t.start()
    codes: Counter = Counter()
    try:
        s = requests.Session()
        s.headers.update(headers)
        for _ in range(400):
            codes[s.get(api_url(hub, "workspaces/"), timeout=30).status_code] += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert codes == {200: 400}, codes
    # (the proxy itself refuses CONNECT and method names it does not know: these reach us)
    assert set(trace_codes) == {("TRACE", 405), ("PROPFIND", 405), ("PURGE", 405)}, trace_codes
    assert min(trace_codes.values()) > 10, trace_codes


def test_405_says_what_is_allowed(hub, alice, make_workspace):
    ws = make_workspace(name="allow")
    cases = [
        ("TRACE", "status/", "GET, OPTIONS"),
        ("PATCH", "workspaces/", "GET, POST, OPTIONS"),
        ("POST", f"workspaces/{ws['id']}/", "GET, PUT, DELETE, OPTIONS"),
        ("DELETE", "workspaces/", "GET, POST, OPTIONS"),
        ("GET", f"workspaces/{ws['id']}/upload/", "PUT, OPTIONS"),
        ("DELETE", "shared_workspaces/", "GET, POST, OPTIONS"),
        ("PROPFIND", f"jobs/{ws['id']}/", "GET, OPTIONS"),
    ]
    for method, path, allow in cases:
        r = alice.session.request(method, api_url(hub, path), timeout=30)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers.get("Allow") == allow, (method, path, r.headers)
        body = r.json()
        assert body["success"] is False and body["message"], body
    # a 405 with a body that arrives: the connection stays usable for the next request
    s = requests.Session()
    s.headers.update(alice.session.headers)
    r = s.request("TRACE", api_url(hub, "status/"), data=b"x" * 100_000, timeout=30)
    assert r.status_code == 405
    assert s.get(api_url(hub, "workspaces/"), timeout=30).status_code == 200


# ---- 2. a workspace being deleted cannot change -----------------------------------------


def test_deleting_workspace_refuses_every_change(hub, alice, make_workspace):
    ws = make_workspace(
        name="doomed", workspace_details={"files": [{"name": "a.txt", "content": "x"}]}
    )
    url = f"workspaces/{ws['id']}/"
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    # a directory the owner cannot empty keeps the workspace in `deleting` (the reconciler retries)
    (d / "held").mkdir()
    (d / "held" / "root-file").write_text("x")
    assert alice.delete(url).status_code == 200
    for body in (
        {"name": "renamed"},
        {"description": "changed"},
        {"default_job_type": "jupyter_lab"},
        {"workspace_details": {"files": [{"name": "late.txt", "content": "x"}]}},
    ):
        r = alice.put(url, json=body)
        assert r.status_code == 400, r.text
        assert (
            r.json()["message"] == f"Workspace {ws['id']} cannot be changed: it is being deleted."
        )
    r = alice.put(f"{url}upload/", files={"f": ("late.bin", b"x")})
    assert r.status_code == 400 and "being deleted" in r.json()["message"], r.text
    got = alice.get(url).json()["data"]["workspaces"]
    assert [(w["name"], w["description"], w["status"]) for w in got] == [
        ("doomed", "a test workspace", "deleting")
    ]
    # once the owner can delete everything, the workspace goes away as asked
    trash = d.parent / f"{TRASH_PREFIX}{ws['id']}"
    (trash / "held" / "root-file").unlink()
    (trash / "held").chmod(0o777)
    deadline = time.monotonic() + 30
    while not gone(alice, url) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert gone(alice, url)
    assert not d.exists() and not trash.exists()


def gone(client, url: str) -> bool:
    """A workspace no longer listed (404 today; 200 with an empty list once issue 12 lands)."""
    r = client.get(url)
    return r.status_code == 404 or (r.status_code == 200 and r.json()["data"]["workspaces"] == [])


def test_rename_racing_delete_never_resurrects(hub, alice, make_workspace):
    """Concurrent PUT and DELETE: either the rename happened before the delete, or it was
    refused; the answer never claims success for a workspace that is going away."""
    for _ in range(5):
        ws = make_workspace(name="racing")
        url = f"workspaces/{ws['id']}/"
        answers = {}

        def rename(url: str = url, answers: dict = answers) -> None:
            answers["put"] = alice.put(url, json={"name": "renamed"})

        t = threading.Thread(target=rename)
        t.start()
        answers["delete"] = alice.delete(url)
        t.join()
        assert answers["delete"].status_code == 200, answers["delete"].text
        put = answers["put"]
        assert put.status_code in (200, 400, 404), put.text
        if put.status_code == 200:
            assert put.json()["data"]["workspace"]["status"] in ("idle", "active"), put.text


# ---- 3. bad input gets a 400 that says why, never a 500 ---------------------------------


def test_ids_out_of_range_are_400(hub, alice, bob, make_workspace):
    ws = make_workspace(name="range")
    before = alice.get(f"workspaces/{ws['id']}/").json()
    for method, path, body in [
        ("GET", f"workspaces/{BIG}/", None),
        ("PUT", f"workspaces/{BIG}/", {"name": "x"}),
        ("DELETE", f"workspaces/{BIG}/", None),
        ("PUT", f"workspaces/{BIG}/start/", {"job_type": "test_job"}),
        ("PUT", f"workspaces/{BIG}/upload/", None),
        ("GET", f"jobs/{BIG}/", None),
        ("PUT", f"jobs/{BIG}/stop/", None),
        ("GET", f"jobs/?workspace_id={BIG}", None),
        ("GET", f"jobs/?resource_job_id={BIG}", None),
        ("GET", f"jobs/?workspace_id=-{BIG}1", None),
        ("GET", f"shared_workspaces/{BIG}/", None),
        ("PUT", f"shared_workspaces/{BIG}/accept/", None),
        ("DELETE", f"shared_workspaces/{BIG}/", None),
        ("POST", "shared_workspaces/", {"original_workspace_id": int(BIG), "shared_user_ids": [1]}),
        (
            "POST",
            "shared_workspaces/",
            {"original_workspace_id": ws["id"], "shared_user_ids": [BIG]},
        ),
        (
            "POST",
            "shared_workspaces/",
            {"original_workspace_id": "9" * 5000, "shared_user_ids": [1]},
        ),
    ]:
        r = alice.request(method, path, json=body)
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert "out of range" in r.json()["message"], r.text
    # the largest id that can exist is an ordinary unknown id
    assert gone(alice, f"workspaces/{2**63 - 1}/")
    assert alice.get(f"workspaces/{ws['id']}/").json() == before


def test_deep_json_and_lone_surrogates_are_400(hub, alice, make_workspace):
    ws = make_workspace(name="unicode")
    deep = "[" * 1000 + "]" * 1000
    deep_obj = '{"name": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + ', "description": "d"}'
    for method, path in [
        ("POST", "workspaces/"),
        ("PUT", f"workspaces/{ws['id']}/"),
        ("PUT", f"workspaces/{ws['id']}/start/"),
        ("POST", "shared_workspaces/"),
        ("POST", "tokens/"),
    ]:
        for body in (deep, deep_obj):
            r = alice.request(method, path, data=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (method, path, r.text)
            assert "nested more than" in r.json()["message"], r.text
    for field in ("name", "description"):
        body = '{"name": "n", "description": "d"}'.replace(
            f'"{field}": "', f'"{field}": "before \\ud800 after'
        )
        for method, path in [("POST", "workspaces/"), ("PUT", f"workspaces/{ws['id']}/")]:
            r = alice.request(method, path, data=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, r.text
            assert "lone surrogate" in r.json()["message"] and field in r.json()["message"]
    # a surrogate pair is an ordinary character
    r = alice.put(f"workspaces/{ws['id']}/", data='{"name": "ok \\ud83d\\ude00"}')
    assert r.status_code == 200 and r.json()["data"]["workspace"]["name"] == "ok \U0001f600"
    names = [w["name"] for w in alice.get("workspaces/").json()["data"]["workspaces"]]
    assert not any("before" in n for n in names)


# ---- 4. a body that never arrives is answered 408, and holds nothing ------------------------


def raw_request(
    hub, head: str, parts: list[tuple[float, bytes]], wait: float = 40
) -> tuple[float, bytes]:
    """Send `head` then each (delay, bytes) part over one connection to the proxy; return the
    seconds until the answer began and the whole answer (read until the connection closes)."""
    host, port = urlsplit(hub.url).hostname, urlsplit(hub.url).port
    with socket.create_connection((host, port), timeout=wait) as sock:
        t0 = time.monotonic()
        sock.sendall(head.encode())
        for delay, data in parts:
            if select.select([sock], [], [], delay)[0]:
                break  # answered already
            sock.sendall(data)
        answer, first = b"", None
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            if first is None:
                first = time.monotonic() - t0
            answer += chunk
            head_part, sep, rest = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head_part)
            if sep and length and len(rest) >= int(length.group(1)):
                break
    return (first if first is not None else wait), answer


def test_stalled_bodies_get_408_and_change_nothing(hub, alice, make_workspace):
    ws = make_workspace(name="stall")
    token = alice.session.headers["Authorization"]
    path = urlsplit(api_url(hub, "workspaces/")).path
    before = len(alice.get("workspaces/").json()["data"]["workspaces"])
    # a declared body that never arrives: answered once nothing came for body_idle_timeout (4 s)
    body = json.dumps({"name": "never", "description": "d"}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    took, answer = raw_request(hub, head, [(0, body[:10])])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert 3 <= took <= 20, took
    assert b"no part of it arrived for 4 seconds" in answer, answer
    # a body trickling in (a byte a second) is bounded as a whole: body_timeout (8 s)
    took, answer = raw_request(hub, head, [(1, body[i : i + 1]) for i in range(len(body) - 1)])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert 7 <= took <= 25, took
    assert b"did not arrive in full within 8 seconds" in answer, answer
    assert len(alice.get("workspaces/").json()["data"]["workspaces"]) == before
    # an upload that stops half way: 408, nothing kept in the workspace or in staging
    boundary = "b0undary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="half.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"x" * 50_000
    upath = urlsplit(api_url(hub, f"workspaces/{ws['id']}/upload/")).path
    head = (
        f"PUT {upath} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(part) + 1_000_000}\r\n\r\n"
    )
    took, answer = raw_request(hub, head, [(0, part)])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    assert not (d / "half.bin").exists()
    staging = d.parent / STAGING_DIR
    deadline = time.monotonic() + 10
    while any(staging.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(staging.iterdir()), list(staging.iterdir())
    # the service answers everyone else throughout, and uploads that keep coming still work
    r = alice.put(f"workspaces/{ws['id']}/upload/", files={"f": ("whole.bin", b"y" * 100_000)})
    assert r.status_code == 200, r.text
    assert (d / "whole.bin").stat().st_size == 100_000


# ---- 9. rate limits: per token and per address, 429 with Retry-After, nobody else affected ---


@pytest.fixture(scope="module")
def limited_hub(hub_factory):
    extra = (
        "c.UWS.rate_limit_per_token = 2.0\n"
        "c.UWS.rate_limit_token_burst = 6\n"
        "c.UWS.rate_limit_per_address = 2.0\n"
        "c.UWS.rate_limit_address_burst = 6\n"
    )
    return hub_factory("limits", extra_config=extra)


def test_rate_limits_refuse_only_the_busy_caller(limited_hub):
    hub = limited_hub
    busy, calm = hub.token_for("uwst-busy"), hub.token_for("uwst-calm")
    calm_s = requests.Session()
    calm_s.headers["Authorization"] = f"token {calm}"
    busy_s = requests.Session()
    busy_s.headers["Authorization"] = f"token {busy}"
    codes = [busy_s.get(api_url(hub, "workspaces/"), timeout=30).status_code for _ in range(12)]
    assert codes[:6] == [200] * 6, codes  # the burst
    assert 429 in codes[6:], codes
    r = busy_s.get(api_url(hub, "workspaces/"), timeout=30)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    body = r.json()
    assert body["success"] is False
    assert body["message"].startswith("Too many requests: this token may make 2 calls a second")
    # refused calls change nothing
    r = busy_s.post(api_url(hub, "workspaces/"), json={"name": "n", "description": "d"}, timeout=30)
    assert r.status_code == 429
    # another token (even of the same person) and anonymous callers are not affected
    calm_again = requests.Session()
    calm_again.headers["Authorization"] = f"token {hub.token_for('uwst-busy')}"
    assert calm_again.get(api_url(hub, "workspaces/"), timeout=30).status_code == 200
    assert calm_s.get(api_url(hub, "workspaces/"), timeout=30).status_code == 200
    assert requests.get(api_url(hub, "job_types/"), timeout=30).status_code == 200
    # a caller within its allowance is never refused
    for _ in range(8):
        assert calm_s.get(api_url(hub, "workspaces/"), timeout=30).status_code == 200
        time.sleep(0.6)
    # after Retry-After, the busy token may call again, and nothing was created meanwhile
    time.sleep(int(r.headers.get("Retry-After", "1")) + 1)
    r = busy_s.get(api_url(hub, "workspaces/"), timeout=30)
    assert r.status_code == 200 and r.json()["data"]["workspaces"] == []


def test_rate_limits_per_address_without_a_valid_token(limited_hub):
    hub = limited_hub
    time.sleep(3)  # the address's allowance refills after the other test's anonymous call
    bad = requests.Session()
    bad.headers["Authorization"] = "token not-a-real-token"
    codes = [bad.get(api_url(hub, "workspaces/"), timeout=30).status_code for _ in range(10)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429, codes
    r = requests.get(api_url(hub, "status/"), timeout=30)  # same address, no token: same bucket
    assert r.status_code == 429 and "without a valid token from this address" in r.json()["message"]
    # a valid token from the same address is its own caller
    good = requests.Session()
    good.headers["Authorization"] = f"token {hub.token_for('uwst-calm')}"
    assert good.get(api_url(hub, "workspaces/"), timeout=30).status_code == 200
    # X-Real-Ip from the client does not make it another address
    r = requests.get(api_url(hub, "status/"), headers={"X-Real-Ip": "10.9.8.7"}, timeout=30)
    assert r.status_code == 429


# ---- 5. Idempotency-Key: a retried create is carried out once ----------------------------


def key() -> str:
    return f"test-{uuid.uuid4()}"


def test_idempotent_create_replays_the_first_answer(hub, alice):
    k = key()
    body = {"name": f"once-{k[-6:]}", "description": "d"}
    first = alice.post("workspaces/", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = alice.post("workspaces/", json=body, headers={"Idempotency-Key": k})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    listed = alice.get("workspaces/", params={"name": body["name"]}).json()["data"]["workspaces"]
    assert [w["id"] for w in listed] == [first.json()["data"]["workspace"]["id"]]
    # the same key for another request: 422, and nothing is done
    other = alice.post(
        "workspaces/", json={**body, "description": "other"}, headers={"Idempotency-Key": k}
    )
    assert other.status_code == 422 and "different request" in other.json()["message"]
    assert (
        len(alice.get("workspaces/", params={"name": body["name"]}).json()["data"]["workspaces"])
        == 1
    )
    # a refusal is an answer too: replayed, not retried
    k2 = key()
    t0 = time.monotonic()
    bad = alice.post("workspaces/", json={"name": "x"}, headers={"Idempotency-Key": k2})
    # (the refused call's own transaction once held SQLite's lock: its record waited 10 s)
    assert bad.status_code == 400 and time.monotonic() - t0 < 3
    bad2 = alice.post("workspaces/", json={"name": "x"}, headers={"Idempotency-Key": k2})
    assert bad2.status_code == 400 and bad2.headers["Idempotent-Replayed"] == "true"
    # a key that cannot be one is a 400
    r = alice.post("workspaces/", json=body, headers={"Idempotency-Key": "x" * 300})
    assert r.status_code == 400 and "Idempotency-Key must be" in r.json()["message"]


def test_idempotency_keys_are_per_person(hub, alice, bob):
    k = key()
    a = alice.post(
        "workspaces/", json={"name": "mine", "description": "d"}, headers={"Idempotency-Key": k}
    )
    b = bob.post(
        "workspaces/", json={"name": "mine", "description": "d"}, headers={"Idempotency-Key": k}
    )
    assert a.status_code == b.status_code == 200
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["data"]["workspace"]["id"] != b.json()["data"]["workspace"]["id"]


def test_concurrent_retries_create_once(hub, alice):
    k = key()
    body = {
        "name": f"concurrent-{k[-6:]}",
        "description": "d",
        "workspace_details": {
            "files": [{"name": f"f{i}", "content": "x" * 1000} for i in range(300)]
        },
    }
    answers: list = []

    def post() -> None:
        answers.append(alice.post("workspaces/", json=body, headers={"Idempotency-Key": k}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = Counter(r.status_code for r in answers)
    assert set(codes) <= {200, 409}, codes
    ids = {r.json()["data"]["workspace"]["id"] for r in answers if r.status_code == 200}
    assert len(ids) == 1, ids
    for r in answers:
        if r.status_code == 409:
            assert (
                r.headers["Retry-After"] == "1" and "still being carried out" in r.json()["message"]
            )
    listed = alice.get("workspaces/", params={"name": body["name"]}).json()["data"]["workspaces"]
    assert len(listed) == 1


def test_idempotent_upload_start_share_and_token(hub, alice, bob, make_workspace):
    ws = make_workspace(name="idem")
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    k = key()
    up = alice.put(
        f"workspaces/{ws['id']}/upload/",
        files={"f": ("a.txt", b"first")},
        headers={"Idempotency-Key": k},
    )
    assert up.status_code == 200, up.text
    (d / "a.txt").write_text("changed since")  # a replay must not write the file again
    again = alice.put(
        f"workspaces/{ws['id']}/upload/",
        files={"f": ("a.txt", b"first")},
        headers={"Idempotency-Key": k},
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert (d / "a.txt").read_text() == "changed since"
    other = alice.put(
        f"workspaces/{ws['id']}/upload/",
        files={"f": ("a.txt", b"other content")},
        headers={"Idempotency-Key": k},
    )
    assert other.status_code == 422 and (d / "a.txt").read_text() == "changed since"
    # a start: one job
    k = key()
    s1 = alice.put(
        f"workspaces/{ws['id']}/start/",
        json={"job_type": "test_job", "resource": "local"},
        headers={"Idempotency-Key": k},
    )
    assert s1.status_code == 200, s1.text
    s2 = alice.put(
        f"workspaces/{ws['id']}/start/",
        json={"job_type": "test_job", "resource": "local"},
        headers={"Idempotency-Key": k},
    )
    assert s2.json() == s1.json() and s2.headers["Idempotent-Replayed"] == "true"
    job_id = s1.json()["data"]["job"]["id"]
    jobs = alice.get("jobs/", params={"workspace_id": ws["id"]}).json()["data"]["jobs"]
    assert [j["id"] for j in jobs] == [job_id]
    alice.put(f"jobs/{job_id}/stop/")
    # a share: one invitation
    bob.post("workspaces/", json={"name": "bobs", "description": "d"})  # known to the service
    bob_id = user_id(alice, "uwst-bob")
    k = key()
    body = {"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]}
    sh1 = alice.post("shared_workspaces/", json=body, headers={"Idempotency-Key": k})
    assert sh1.status_code == 200, sh1.text
    sh2 = alice.post("shared_workspaces/", json=body, headers={"Idempotency-Key": k})
    assert sh2.json() == sh1.json()
    sent = alice.get("shared_workspaces/").json()["data"]["original_workspaces"]
    assert len([s for s in sent if (s["original_workspace_id"] or {}).get("id") == ws["id"]]) == 1
    # a token exchange: the same token, issued once
    k = key()
    body = {
        "client_token": hub.admin_token[::-1],  # the test-portal service
        "user_info": {"username": "idem-person", "email": "i@portal.example.org"},
    }
    t1 = requests.post(
        api_url(hub, "tokens/"), json=body, headers={"Idempotency-Key": k}, timeout=30
    )
    t2 = requests.post(
        api_url(hub, "tokens/"), json=body, headers={"Idempotency-Key": k}, timeout=30
    )
    assert t1.status_code == t2.status_code == 200, (t1.text, t2.text)
    assert t1.json()["token"] == t2.json()["token"] and t2.headers["Idempotent-Replayed"] == "true"
    name = t1.json()["data"]["username"]
    tokens = hub.hub_api("GET", f"users/{name}/tokens").json()["api_tokens"]
    assert len([t for t in tokens if t["note"].startswith("uws token for")]) == 1
    # the token is not kept readable in the uws database
    assert t1.json()["token"].encode() not in (hub.dir / "uws.sqlite").read_bytes()


def test_idempotency_in_cors_preflight(hub):
    r = requests.options(
        api_url(hub, "workspaces/"),
        headers={
            "Origin": "https://portal.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "idempotency-key",
        },
        timeout=30,
    )
    assert r.status_code == 204
    assert "Idempotency-Key" in r.headers["Access-Control-Allow-Headers"]


# ---- a slow hub or scheduler never holds up the API ----------------------------------------


def test_start_and_stop_answer_while_the_hub_works(hub, alice, make_workspace):
    ws = make_workspace(name="slow-start")
    t0 = time.monotonic()
    r = alice.put(
        f"workspaces/{ws['id']}/start/", json={"job_type": "slow_job", "resource": "local"}
    )
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    j = r.json()["data"]["job"]
    # slow_job sleeps 6 s before its server starts; the hub would hold the call 3 s
    assert took < 2.5 and j["status"] == "pending", (took, j)
    j = wait_job(alice, j["id"], ("running", "failed"), timeout=90)
    assert j["status"] == "running", j
    t0 = time.monotonic()
    r = alice.put(f"jobs/{j['id']}/stop/")
    assert r.status_code == 200 and time.monotonic() - t0 < 2.5
    assert wait_job(alice, j["id"], ("complete", "failed"), timeout=90)["status"] == "complete"


def test_acting_for_nobody_is_404_and_records_nothing(hub, admin):
    portal = Client(hub, hub.admin_token[::-1], name="test-portal")  # the uws-admin service
    for client in (portal, admin):
        for method, path, body in [
            ("GET", "users/me/quota/", None),
            ("PUT", "users/me/quota/", {"disk_limit": 5}),
            ("POST", "workspaces/", {"name": "n", "description": "d"}),
            ("GET", "workspaces/", None),
            ("GET", "jobs/", None),
        ]:
            r = client.request(method, path, params={"user": "uwst-nobody-at-all"}, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["message"] == "User uwst-nobody-at-all not found."
    found = admin.get("users/", params={"search": "uwst-nobody"}).json()["data"]["users"]
    assert found == []
    # a person the hub knows (not yet seen by uws) can be acted for
    hub.ensure_user("uwst-newcomer")
    r = portal.get("workspaces/", params={"user": "uwst-newcomer"})
    assert r.status_code == 200 and r.json()["data"]["workspaces"] == []


def test_invitation_of_a_deleted_workspace_shows_it_as_null(hub, alice, bob, make_workspace):
    bob.post("workspaces/", json={"name": "bobs", "description": "d"})  # known to the service
    ws = make_workspace(name="to-delete")
    r = alice.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws["id"], "shared_user_ids": [user_id(alice, "uwst-bob")]},
    )
    (share,) = r.json()["data"]["shared_workspaces"]
    wait_copy(bob, share["id"])
    assert bob.put(f"shared_workspaces/{share['id']}/accept/").status_code == 200
    assert alice.delete(f"workspaces/{ws['id']}/").status_code == 200
    deadline = time.monotonic() + 30
    while not gone(alice, f"workspaces/{ws['id']}/") and time.monotonic() < deadline:
        time.sleep(0.3)
    sent = alice.get(f"shared_workspaces/{share['id']}/").json()["data"]["original_workspaces"]
    assert sent[0]["original_workspace_id"] is None  # (its row says 'deleted': no API status)
    assert sent[0]["shared_workspace_id"]["id"] == share["shared_workspace_id"]["id"]
