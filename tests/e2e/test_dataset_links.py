"""Dataset links (``symlinks: [{name, dataset_uuid}]`` with the caller's
``globus_groups_token``) through real hubs: one resolving ids with a path template, one asking
a stand-in of HuBMAP's lookup service (a real HTTP server, tests/e2e/standins/datasets.py). What
a client sees, what lands on disk, what the lookup service receives (one call per request, the
token as Bearer), refusals that change nothing, the service failing, and that the token is kept
nowhere: not in the databases, the audit log or the logs."""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import Client, workspace_dir
from hubtest import HubProcess
from standins.datasets import DatasetLookupStandin

USER = "uwst-dana"
NO_TOKEN = "No globus_groups_token passed when trying to use dataset_uuid."
LOOKUP_ERRORS = "Errors encountered when attempting to gather UUID information: "

#: datasets the lookup service knows (hex ids, as HuBMAP's) and one that lies elsewhere
PUBLIC = [uuid.uuid4().hex for _ in range(3)]
PROTECTED = uuid.uuid4().hex
FORBIDDEN = uuid.uuid4().hex
OUTSIDE = uuid.uuid4().hex
UNKNOWN = uuid.uuid4().hex
#: every token sent in this module (none may be kept anywhere)
TOKENS: list[str] = []


def new_token(lookup: DatasetLookupStandin, readable=()) -> str:
    token = "Agx" + secrets.token_urlsafe(48)
    lookup.add_token(token, list(readable))
    TOKENS.append(token)
    return token


def make_dataset(path: Path, name: str) -> None:
    path.mkdir(parents=True)
    (path / "README.txt").write_text(f"dataset {name}\n")
    path.chmod(0o755)  # root's, readable by everyone: the filesystem decides who reads it


def links(ws: dict) -> list[dict]:
    return ws["workspace_details"]["current_workspace_details"]["symlinks"]


def dataset_links(*ids: str) -> list[dict]:
    return [{"name": f"datasets/{i}", "dataset_uuid": i} for i in ids]


def as_user(name: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", name, "--", *cmd], capture_output=True, text=True)


@pytest.fixture(scope="module")
def lookup():
    with DatasetLookupStandin() as srv:
        yield srv


@pytest.fixture(scope="module")
def hhub(lookup, hub_factory) -> HubProcess:
    """A hub asking the lookup stand-in."""

    def datasets(h: HubProcess) -> None:
        for i in [*PUBLIC, PROTECTED, FORBIDDEN]:
            make_dataset(h.datasets / "hubmap" / i, i)
            lookup.add_dataset(i, str(h.datasets / "hubmap" / i), public=i in PUBLIC)
        make_dataset(h.dir / "elsewhere" / OUTSIDE, OUTSIDE)  # not under symlink_roots
        lookup.add_dataset(OUTSIDE, str(h.dir / "elsewhere" / OUTSIDE), public=True)

    return hub_factory(
        "datasets-http",
        extra_config=lambda h: (
            'c.UWS.dataset_resolver = "http"\n'
            f'c.UWS.dataset_lookup_url = "{lookup.lookup_url}"\n'
            "c.UWS.dataset_lookup_timeout = 5\n"
        ),
        before_start=datasets,
        users=[USER, "uwst-admin"],
    )


@pytest.fixture(scope="module")
def thub(hub_factory) -> HubProcess:
    """A hub finding datasets at a fixed place: <datasets>/fixed/{uuid}."""
    return hub_factory(
        "datasets-tpl",
        extra_config=lambda h: (
            'c.UWS.dataset_resolver = "template"\n'
            f'c.UWS.dataset_path_template = "{h.datasets}/fixed/{{uuid}}"\n'
        ),
        before_start=lambda h: [make_dataset(h.datasets / "fixed" / i, i) for i in PUBLIC],
        users=[USER],
    )


@pytest.fixture(scope="module")
def dana(hhub) -> Client:
    return Client.of(hhub, USER)


def workspaces_of(client: Client) -> list[int]:
    r = client.get("workspaces/")
    assert r.status_code == 200, r.text
    return [w["id"] for w in r.json()["data"]["workspaces"]]


def dirs_of(hub: HubProcess, user: str) -> set[str]:
    top = hub.root / user
    return set(os.listdir(top)) if top.exists() else set()


def create(client: Client, token: str | None = None, *, ids=(), where="top", **extra):
    body = {"name": "with data", "description": "datasets", **extra}
    details: dict = {"symlinks": dataset_links(*ids)}
    if token is not None and where == "top":
        body["globus_groups_token"] = token
    elif token is not None:
        details["globus_groups_token"] = token
    body["workspace_details"] = details
    return client.post("workspaces/", json=body)


# ---- the path template ----------------------------------------------------------------------


def test_template_links_datasets_the_job_user_can_read(thub):
    client = Client.of(thub, USER)
    r = create(client, ids=PUBLIC[:2])  # a fixed layout needs no token
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    expected = [
        {"name": f"/datasets/{i}", "source_path": str(thub.datasets / "fixed" / i)}
        for i in sorted(PUBLIC[:2])
    ]
    assert sorted(links(ws), key=lambda s: s["name"]) == expected
    asked = ws["workspace_details"]["request_workspace_details"]["symlinks"]
    assert {s["dataset_uuid"] for s in asked} == set(PUBLIC[:2])
    d = workspace_dir(thub, USER, ws["id"])
    for i in PUBLIC[:2]:
        link = d / "datasets" / i
        assert os.readlink(link) == str(thub.datasets / "fixed" / i)
        # the workspace's owner (as whom the job runs) reads the data through the link
        read = as_user(USER, "cat", str(link / "README.txt"))
        assert read.returncode == 0 and read.stdout == f"dataset {i}\n", read.stderr


def test_template_refuses_unknown_and_path_like_ids_changing_nothing(thub):
    client = Client.of(thub, USER)
    before, on_disk = workspaces_of(client), dirs_of(thub, USER)
    r = create(client, ids=[PUBLIC[0], UNKNOWN])
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        LOOKUP_ERRORS + str([{"uuid": UNKNOWN, "error": "Dataset not found."}])
    )
    for bad in ["../../etc", "/etc/passwd", "{uuid}", PUBLIC[0][:31], PUBLIC[0] + "/.."]:
        r = client.post(
            "workspaces/",
            json={
                "name": "x",
                "description": "x",
                "workspace_details": {"symlinks": [{"name": "d", "dataset_uuid": bad}]},
            },
        )
        assert r.status_code == 400 and "Invalid dataset_uuid" in r.json()["message"], r.text
    assert workspaces_of(client) == before and dirs_of(thub, USER) == on_disk


# ---- the lookup service -----------------------------------------------------------------------


def test_one_lookup_for_all_datasets_with_the_token_as_bearer(hhub, lookup, dana):
    token = new_token(lookup, readable=[PROTECTED])
    lookup.clear_requests()
    ids = [*PUBLIC, PROTECTED]
    r = create(dana, token, ids=ids)
    assert r.status_code == 200, r.text
    calls = lookup.requests_to("/datasets/file-system-abs-path")
    assert len(calls) == 1  # one call for four datasets
    assert calls[0].method == "POST" and calls[0].header("Authorization") == f"Bearer {token}"
    assert sorted(calls[0].json()) == sorted(ids)
    ws = r.json()["data"]["workspace"]
    d = workspace_dir(hhub, USER, ws["id"])
    for i in ids:
        assert os.readlink(d / "datasets" / i) == str(hhub.datasets / "hubmap" / i)
    assert {s["name"] for s in links(ws)} == {f"/datasets/{i}" for i in ids}


def test_update_adds_datasets_as_portal_ui_sends_them(hhub, lookup, dana):
    """portal-ui puts the token inside workspace_details, beside the links."""
    r = create(dana, ids=[])
    assert r.status_code == 200, r.text
    ws_id = r.json()["data"]["workspace"]["id"]
    token = new_token(lookup)
    lookup.clear_requests()
    r = dana.put(
        f"workspaces/{ws_id}/",
        json={
            "workspace_details": {
                "globus_groups_token": token,
                "symlinks": dataset_links(*PUBLIC[:2]),
            },
            "default_job_type": "jupyter_lab",
        },
    )
    assert r.status_code == 200, r.text
    assert lookup.lookups() == 1
    got = {s["name"]: s["source_path"] for s in links(r.json()["data"]["workspace"])}
    assert got == {f"/datasets/{i}": str(hhub.datasets / "hubmap" / i) for i in PUBLIC[:2]}


def test_a_forbidden_dataset_refuses_the_whole_request(hhub, lookup, dana):
    token = new_token(lookup)  # may read the public ones only
    before, on_disk = workspaces_of(dana), dirs_of(hhub, USER)
    r = create(dana, token, ids=[PUBLIC[0], FORBIDDEN, UNKNOWN])
    assert r.status_code == 400, r.text
    msg = r.json()["message"]
    assert msg.startswith(LOOKUP_ERRORS) and FORBIDDEN in msg and UNKNOWN in msg
    assert PUBLIC[0] not in msg and "do not have access" in msg
    assert token not in r.text
    assert workspaces_of(dana) == before and dirs_of(hhub, USER) == on_disk

    # on an update: no link added, nothing changed
    ws = create(dana, ids=[]).json()["data"]["workspace"]
    r = dana.put(
        f"workspaces/{ws['id']}/",
        json={
            "name": "renamed?",
            "globus_groups_token": token,
            "workspace_details": {"symlinks": dataset_links(PUBLIC[1], FORBIDDEN)},
        },
    )
    assert r.status_code == 400 and FORBIDDEN in r.json()["message"], r.text
    after = dana.get(f"workspaces/{ws['id']}/").json()["data"]["workspaces"][0]
    assert after["name"] == "with data" and links(after) == []
    assert not (workspace_dir(hhub, USER, ws["id"]) / "datasets").exists()


def test_missing_token_and_bad_token(hhub, lookup, dana):
    lookup.clear_requests()
    before = workspaces_of(dana)
    r = create(dana, ids=PUBLIC[:1])
    assert r.status_code == 400 and r.json()["message"] == NO_TOKEN, r.text
    r = create(dana, "", ids=PUBLIC[:1], where="details")
    assert r.status_code == 400 and r.json()["message"] == NO_TOKEN, r.text
    assert lookup.lookups() == 0  # refused before asking
    # a token the lookup service does not know: refused, saying what to do
    r = create(dana, "Agx-not-a-token-it-knows", ids=PUBLIC[:1])
    assert r.status_code == 400 and "globus_groups_token" in r.json()["message"], r.text
    assert "Log in again" in r.json()["detail"]
    assert workspaces_of(dana) == before


def test_outside_the_symlink_roots_is_refused(hhub, lookup, dana):
    token = new_token(lookup)
    before = workspaces_of(dana)
    r = create(dana, token, ids=[PUBLIC[0], OUTSIDE])
    assert r.status_code == 400, r.text
    assert "is outside the allowed locations" in r.json()["message"]
    assert OUTSIDE in r.json()["detail"]
    assert workspaces_of(dana) == before


def test_lookup_service_failing_is_a_server_error_that_changes_nothing(hhub, lookup, dana):
    token = new_token(lookup)
    before, on_disk = workspaces_of(dana), dirs_of(hhub, USER)
    lookup.set_failure("/datasets/", status=500, times=1, body={"error": "database is down"})
    r = create(dana, token, ids=PUBLIC[:2])
    assert r.status_code == 502, r.text
    assert r.json()["message"].startswith("Server side error: ")
    assert "database is down" in r.json()["message"]
    # an answer that is not a list of {uuid, path}: the service is broken, not the request
    lookup.set_failure("/datasets/", status=200, times=1, body={"paths": {}})
    r = create(dana, token, ids=PUBLIC[:2])
    assert r.status_code == 502 and "not a list" in r.json()["message"], r.text
    # the ids refused as a whole (a 4xx other than for the token): each is named
    lookup.set_failure("/datasets/", status=400, times=1, body={"error": "bad id list"})
    r = create(dana, token, ids=PUBLIC[:2])
    assert r.status_code == 400 and r.json()["message"].startswith(LOOKUP_ERRORS), r.text
    assert all(i in r.json()["message"] for i in PUBLIC[:2]) and "bad id list" in r.text
    lookup.set_failure("/datasets/", status="drop", times=1)
    r = create(dana, token, ids=PUBLIC[:2])
    assert r.status_code == 503 and r.json()["message"].startswith("Server side error: "), r.text
    lookup.stop()  # not listening at all
    try:
        r = create(dana, token, ids=PUBLIC[:2])
        assert r.status_code == 503, r.text
        assert "could not be reached" in r.json()["message"] and r.headers["Retry-After"]
    finally:
        lookup.start()  # the same port again
    assert workspaces_of(dana) == before and dirs_of(hhub, USER) == on_disk
    # a server error keeps no Idempotency-Key answer: the retry, once it is back, works
    key = {"Idempotency-Key": secrets.token_hex(8)}
    lookup.set_failure("/datasets/", status=503, times=1)
    body = {
        "name": "retried",
        "description": "d",
        "globus_groups_token": token,
        "workspace_details": {"symlinks": dataset_links(PUBLIC[2])},
    }
    assert dana.post("workspaces/", json=body, headers=key).status_code == 502
    r = dana.post("workspaces/", json=body, headers=key)
    assert r.status_code == 200, r.text
    assert dana.post("workspaces/", json=body, headers=key).headers["Idempotent-Replayed"]
    # the token is not part of what makes the request: a retry with a refreshed one is the same
    # request (answered again), another name is not (422)
    refreshed = {**body, "globus_groups_token": new_token(lookup, readable=[PUBLIC[2]])}
    again = dana.post("workspaces/", json=refreshed, headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"], again.text
    assert again.json()["data"]["workspace"]["id"] == r.json()["data"]["workspace"]["id"]
    other = dana.post("workspaces/", json={**body, "name": "another"}, headers=key)
    assert other.status_code == 422, other.text


def test_the_token_is_kept_nowhere(hhub, lookup, dana):
    token = new_token(lookup, readable=[PROTECTED])
    key = {"Idempotency-Key": secrets.token_hex(8)}
    r = dana.post(
        "workspaces/",
        json={
            "name": "kept?",
            "description": "d",
            "globus_groups_token": token,
            "workspace_details": {"symlinks": dataset_links(PROTECTED)},
        },
        headers=key,
    )
    assert r.status_code == 200, r.text
    ws_id = r.json()["data"]["workspace"]["id"]
    r = dana.put(
        f"workspaces/{ws_id}/",
        json={"workspace_details": {"globus_groups_token": token, "symlinks": []}},
    )
    assert r.status_code == 200, r.text
    assert create(dana, token, ids=[FORBIDDEN]).status_code == 400
    admin = Client.of(hhub, "uwst-admin")
    audit = admin.get("audit/", params={"user": USER, "limit": 1000})
    assert audit.status_code == 200, audit.text
    created = [
        e
        for e in audit.json()["data"]["events"]
        if e["target_id"] == str(ws_id) and e["action"] == "workspace.create"
    ]
    assert [e["details"] for e in created] == [{"name": "kept?", "symlinks": 1, "datasets": 1}]
    assert not any(t in audit.text for t in TOKENS)
    # the uws and hub databases (with their write-ahead logs) and the hub's log (which holds
    # the service's)
    files = [
        p for p in hhub.dir.iterdir() if p.name.startswith(("uws.sqlite", "jupyterhub.sqlite"))
    ]
    assert any(p.name == "uws.sqlite" for p in files)
    for path in [*files, hhub.log_path]:
        data = path.read_bytes()
        for t in TOKENS:
            assert t.encode() not in data, f"a globus_groups_token is in {path}"
