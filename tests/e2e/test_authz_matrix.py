"""Authorization matrix (issue 10), generated from the OpenAPI document: every operation × every
kind of caller, with the exact status (and UWS's message where UWS defines one) for each cell.

Callers: the owner of the resources (``owner``); another person (``other``), also asking with
``?user=<owner>`` (``other_user``); no token (``anon``); an unknown token in UWS's header
(``badtoken``); a token of the owner without uws scopes, only ``access:services!service=uws``
(``noscope``); a token of the owner without access to the service (``noaccess``); the
``test-portal`` service (uws-admin role) without and with ``?user=<owner>`` (``svc``,
``svc_user``); an operator (uwst-admin, uws-admin role) acting as themself (``operator``).
`test_share_roles` adds the parties of an invitation (the sender accepting, the recipient acting
on the copy before accepting it).

Expectations come from /work/shared/UWS-API.md and UWS-REFERENCE.md §1. Where today's service
answers otherwise the cell is a strict xfail naming the difference (issue 12 turns them green);
the difference is pinned (``raises=KnownGap``: same status as today), so any other answer fails.

The cells of everyone but the owner run first, against the owner's resources; then
`test_owner_data_unchanged` compares the owner's workspaces, files, jobs, invitations, live
shares and quota with a snapshot; then the owner's cells (and the service acting for the owner)
run, on their own resources where they change something (delete, start, stop, share, accept,
decline). Everything is made fresh for this module; the jobs started are stopped at the end.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from authzutil import SPEC, Expect, KnownGap, Op, contains, operations, snapshot, verify
from openapi_core.templating.responses.exceptions import ResponseNotFound
from shareutil import user_id, wait_copy

from conftest import Client, check_openapi
from jobutil import LIVE, wait_job

OWNER, OTHER, THIRD, OPERATOR = "uwst-mxowner", "uwst-mxother", "uwst-mxthird", "uwst-admin"
SERVICE = "test-portal"
SECRET = "mxsecret" + secrets.token_hex(6)  # in every name of the owner's: must not leak

#: callers who must not change the owner's data (their cells run before the snapshot check)
NON_OWNER = ["other", "other_user", "anon", "badtoken", "noscope", "noaccess", "svc", "operator"]
#: the owner, and the service acting for the owner (their cells run last)
OWNER_LIKE = ["owner", "svc_user"]
IDENTITIES = NON_OWNER + OWNER_LIKE

# ---- expectations ------------------------------------------------------------------------------

ANON = Expect(401, "Authentication credentials were not provided.")
BAD = Expect(401, "Invalid token provided.")
NOACCESS = Expect(403, contains("access:services!service=uws"))
SVC = Expect(400, f"Service {SERVICE} must say which user it acts for: add ?user=<name>.")
OPEN = {i: Expect(200).entitle() for i in IDENTITIES}


def noscope(scope: str) -> Expect:
    """The owner's token without uws scopes: 403 naming the scope it lacks for the owner."""
    return Expect(403, contains(f"lacks the scope custom:uws:{scope}!user={OWNER}"))


def user_op(scope: str, owner: Expect, foreign: Expect) -> dict[str, Expect]:
    """An operation on one person's resources: `owner` for the owner (and the service acting for
    them), `foreign` for another person and for an operator acting as themself. Another person
    asking with ``?user=<owner>`` gets 403 naming the scope (UWS had no ``?user=``)."""
    return {
        "owner": owner.entitle(),
        "svc_user": owner.entitle(),
        "other": foreign,
        "other_user": noscope(scope),
        "operator": foreign,
        "anon": ANON,
        "badtoken": BAD,
        "noscope": noscope(scope),
        "noaccess": NOACCESS,
        "svc": SVC,
    }


def operator_op(scope: str) -> dict[str, Expect]:
    """An operators' operation: the uws-admin role (the operator, the portal service) only."""
    refused = Expect(403, contains(f"custom:uws:{scope}"))
    return {
        "owner": refused,
        "other": refused,
        "other_user": refused,
        "noscope": refused,
        "noaccess": NOACCESS,
        "anon": ANON,
        "badtoken": BAD,
        "svc": Expect(200).entitle(),
        "svc_user": Expect(200).entitle(),
        "operator": Expect(200).entitle(),
    }


def empty_list(thing: str, key: str) -> Expect:
    """UWS: a GET of an id that is not yours is 200 with an empty list (UWS-API.md, Conventions)."""
    return Expect(200, f"{thing} matching given parameters could not be found.", empty=key)


WS_404 = Expect(404, "Workspace {workspace_id} not found for user.")
JOB_404 = Expect(404, "Job {job_id} not found for user.")
SHARE_404 = Expect(404, "Shared workspace {share_id} not found.")
SHARE_DELETE_403 = Expect(403, "User does not have permissions for shared workspace {share_id}.")
OWN_LIST = Expect(200)  # another person's own listing (must not show the owner's)
SHOWN = Expect(200).showing()  # the owner's listing (shows the owner's data)
THIRD_SHARE_TEXT = f"Job {{job_id}} shared with {THIRD}."


@dataclass
class Row:
    cells: dict[str, Expect]
    #: the request's keyword arguments (json, files, params, ...) from the cell's targets
    request: Callable[[dict], dict] = lambda t: {}
    #: the owner's and svc_user's cells act on a resource of their own (they change it)
    dedicated: bool = False


TOKEN_BODY = {
    "user_info": {"username": "mx-portal-person", "email": "mx-portal-person@portal.example.org"}
}
#: UWS's text (§1.2); which scope is missing is in `detail`
TOKEN_REFUSED = Expect(
    403,
    "Token is invalid for api_authentication. Please contact administrator to generate valid token.",
)
TOKEN_MISSING = Expect(400, "Missing client_token. Please have admin generate a token for you.")
TOKEN_OK = Expect(200, "Successful authentication.").entitle()

ROWS: dict[tuple[str, str], Row] = {
    ("GET", "/workspaces/"): Row(user_op("read:workspaces", SHOWN, OWN_LIST)),
    ("POST", "/workspaces/"): Row(
        user_op("workspaces", Expect(200, "Successful."), Expect(200, "Successful.")),
        lambda t: {"json": {"name": "mx-made-by-a-cell", "description": "made by a matrix cell"}},
    ),
    ("GET", "/workspaces/{workspace_id}/"): Row(
        user_op(
            "read:workspaces",
            Expect(200, "Successful.").showing(),
            empty_list("Workspace", "workspaces"),
        )
    ),
    ("PUT", "/workspaces/{workspace_id}/"): Row(
        user_op("workspaces", Expect(200, "Update successful."), WS_404),
        lambda t: {"json": {"name": "mx-renamed", "description": "changed by a matrix cell"}},
    ),
    ("DELETE", "/workspaces/{workspace_id}/"): Row(
        user_op("workspaces", Expect(200, "Workspace {workspace_id} queued for deletion."), WS_404),
        dedicated=True,
    ),
    ("PUT", "/workspaces/{workspace_id}/upload/"): Row(
        user_op("workspaces", Expect(200, "Successful upload."), WS_404),
        lambda t: {"files": {"data": ("mx-uploaded.txt", b"uploaded by a matrix cell\n")}},
    ),
    ("PUT", "/workspaces/{workspace_id}/scan/"): Row(
        user_op("workspaces", Expect(200, "Workspace {workspace_id} scanned."), WS_404)
    ),
    ("GET", "/workspaces/{workspace_id}/files/"): Row(
        user_op("read:workspaces", Expect(200, "Successful.").showing(), WS_404)
    ),
    ("GET", "/workspaces/{workspace_id}/files/download"): Row(
        user_op("read:workspaces", Expect(200), WS_404),
        lambda t: {"params": {"path": "notes/README.md"}},
    ),
    ("DELETE", "/workspaces/{workspace_id}/files/"): Row(
        user_op("workspaces", Expect(200, "Deleted gone.txt."), WS_404),
        lambda t: {"params": {"path": "gone.txt"}},
        dedicated=True,
    ),
    ("PUT", "/workspaces/{workspace_id}/start/"): Row(
        user_op("jobs", Expect(200, "Successful start."), WS_404),
        lambda t: {"json": {"job_type": "test_job", "resource": "local"}},
        dedicated=True,
    ),
    ("GET", "/jobs/"): Row(user_op("read:jobs", SHOWN, OWN_LIST)),
    ("GET", "/jobs/{job_id}/"): Row(
        user_op("read:jobs", Expect(200, "Successful.").showing(), empty_list("Job", "jobs"))
    ),
    ("PUT", "/jobs/{job_id}/stop/"): Row(
        user_op("jobs", Expect(200, "Job queued to stop."), JOB_404), dedicated=True
    ),
    ("PUT", "/jobs/{job_id}/extend/"): Row(
        user_op("jobs:extend", Expect(200, contains("Job extended by 1 minute;")), JOB_404),
        lambda t: {"json": {"minutes": 1}},
    ),
    ("GET", "/jobs/{job_id}/events"): Row(
        user_op("read:jobs", Expect(200), JOB_404), lambda t: {"stream": True}
    ),
    ("GET", "/job_types/"): Row(OPEN),
    ("GET", "/resources/"): Row(OPEN),
    ("GET", "/parameters/"): Row(OPEN),
    ("POST", "/tokens/"): Row(
        {
            "owner": TOKEN_REFUSED,  # the caller's token is the client token: not a trusted client
            "other": TOKEN_REFUSED,
            "other_user": TOKEN_REFUSED,
            "noscope": TOKEN_REFUSED,
            "noaccess": TOKEN_REFUSED,
            "operator": TOKEN_REFUSED,
            "anon": TOKEN_MISSING,
            "badtoken": TOKEN_MISSING,  # UWS-Authorization is not a client token
            "svc": TOKEN_OK,
            "svc_user": TOKEN_OK,
        },
        lambda t: {"json": TOKEN_BODY},
    ),
    ("GET", "/shared_workspaces/"): Row(user_op("read:shares", SHOWN, OWN_LIST)),
    ("POST", "/shared_workspaces/"): Row(
        user_op("shares", Expect(200), WS_404),
        lambda t: {
            "json": {"original_workspace_id": t["workspace_id"], "shared_user_ids": [t["third_id"]]}
        },
        dedicated=True,
    ),
    ("GET", "/shared_workspaces/{share_id}/"): Row(
        user_op(
            "read:shares",
            Expect(200, "Successful.").showing(),
            empty_list("Shared workspace", "shared_workspaces"),
        )
    ),
    ("DELETE", "/shared_workspaces/{share_id}/"): Row(
        user_op(
            "shares",
            Expect(200, "Shared workspace {share_id} queued for deletion."),
            SHARE_DELETE_403,
        ),
        dedicated=True,
    ),
    ("PUT", "/shared_workspaces/{share_id}/accept/"): Row(
        user_op("shares", Expect(200, "Successful."), SHARE_404), dedicated=True
    ),
    ("GET", "/users/"): Row(
        {
            **{
                i: Expect(200)
                for i in ("owner", "svc_user", "other", "other_user", "operator", "svc")
            },
            "noscope": Expect(403, contains("lacks the scope custom:uws:users:search")),
            "noaccess": NOACCESS,
            "anon": ANON,
            "badtoken": BAD,
        },
        lambda t: {"params": {"search": "mxowner"}},
    ),
    ("GET", "/users/{username}/quota/"): Row(
        {
            **{i: Expect(200).entitle() for i in ("owner", "svc_user", "operator", "svc")},
            "other": noscope("read:quota"),
            "other_user": noscope("read:quota"),
            "noscope": noscope("read:quota"),
            "noaccess": NOACCESS,
            "anon": ANON,
            "badtoken": BAD,
        }
    ),
    ("PUT", "/users/{username}/quota/"): Row(
        operator_op("admin:quotas"), lambda t: {"json": {"disk_limit": None}}
    ),
    ("GET", "/quotas/"): Row(operator_op("admin:quotas")),
    ("GET", "/usage/"): Row(operator_op("admin:quotas")),
    ("GET", "/audit/"): Row(operator_op("read:audit")),
    ("GET", "/jobs/{job_id}/shares/"): Row(
        user_op("read:jobs", Expect(200, "Successful."), JOB_404)
    ),
    ("POST", "/jobs/{job_id}/shares/"): Row(
        user_op("jobs", Expect(200, THIRD_SHARE_TEXT), JOB_404),
        lambda t: {"json": {"user": THIRD}},
    ),
    ("DELETE", "/jobs/{job_id}/shares/"): Row(
        user_op("jobs", Expect(200, f"{THIRD} no longer has access to job {{job_id}}."), JOB_404),
        lambda t: {"json": {"user": THIRD}},
    ),
    ("GET", "/status/"): Row(OPEN),
}

OPERATIONS = operations()


def cells(identities: list[str]) -> list:
    """One pytest param per (operation, caller), with the strict xfail of a known gap."""
    out = []
    for op in OPERATIONS:
        row = ROWS.get((op.method, op.path))
        for ident in identities:
            exp = row.cells.get(ident) if row else None
            marks = []
            if exp is not None and exp.gap:
                marks.append(pytest.mark.xfail(strict=True, raises=KnownGap, reason=exp.gap))
            out.append(pytest.param(op, ident, marks=marks, id=f"{op.operation_id}-{ident}"))
    return out


# ---- the owner's resources ------------------------------------------------------------------------


@dataclass
class World:
    hub: Any
    clients: dict[str, Client]
    targets: dict[str, Any]
    #: (method, path) -> identity -> the targets of that cell's own resource
    dedicated: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)
    before: Any = None
    #: workspaces made by cells of people other than the owner (removed at the end)
    made: list[tuple[Client, int]] = field(default_factory=list)

    def targets_for(self, op: Op, ident: str) -> dict:
        own = self.dedicated.get((op.method, op.path), {}).get(ident)
        return {**self.targets, **(own or {})}


def _workspace(client: Client, role: str, **body) -> dict:
    body.setdefault("name", f"mx-{role}-{SECRET}")
    body.setdefault("description", f"matrix {role} {SECRET}")
    r = client.post("workspaces/", json=body)
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    assert ws["status"] == "idle", ws
    return ws


def _start(client: Client, ws_id: int) -> int:
    r = client.put(
        f"workspaces/{ws_id}/start/",
        json={"job_type": "test_job", "resource": "local", "job_details": {"note": SECRET}},
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]["job"]["id"]


def _invite(sender: Client, ws_id: int, recipient_id: int) -> tuple[int, int]:
    r = sender.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws_id, "shared_user_ids": [recipient_id]},
    )
    assert r.status_code == 200, r.text
    share = r.json()["data"]["shared_workspaces"][0]
    # an invitation is addressed by its copy's id (as UWS)
    assert share["id"] == share["shared_workspace_id"]["id"], share
    return share["id"], share["shared_workspace_id"]["id"]


def _build_world(hub, client_for, made: list) -> World:
    """The owner's workspaces, jobs and invitations, the callers' clients, and the snapshot."""
    owner, other, third = client_for(OWNER), client_for(OTHER), client_for(THIRD)
    portal = Client(hub, hub.admin_token[::-1], name=SERVICE)
    clients = {
        "owner": owner,
        "other": other,
        "anon": Client(hub),
        "badtoken": Client(hub, "mx" + secrets.token_hex(16), header="uws"),
        "noscope": client_for(OWNER, scopes=["access:services!service=uws"]),
        "noaccess": client_for(OWNER, scopes=[f"read:users:name!user={OWNER}"]),
        "svc": portal,
        "svc_user": portal,
        "other_user": other,
        "third": third,  # the sender of the owner's invitations (test_share_roles)
        "operator": client_for(OPERATOR),
    }
    for c in (owner, other, third):  # known to uws (people search, invitations)
        assert c.get("users/me/quota/").status_code == 200
    third_id, owner_id = user_id(owner, THIRD), user_id(third, OWNER)

    main = _workspace(
        owner,
        "main",
        default_job_type="test_job",
        workspace_details={
            "files": [
                {"name": f"{SECRET}.txt", "content": "the owner's data\n"},
                {"name": "notes/README.md", "content": "# not yours\n"},
            ]
        },
    )
    ws = {role: _workspace(owner, role)["id"] for role in ("job", "stop-owner", "stop-svc_user")}
    for role in ("delete", "start", "share"):
        for who in OWNER_LIKE:
            ws[f"{role}-{who}"] = _workspace(owner, f"{role}-{who}")["id"]
    gone = {"files": [{"name": "gone.txt", "content": "deleted by the owner's cell\n"}]}
    for who in OWNER_LIKE:
        ws[f"delfile-{who}"] = _workspace(owner, f"delfile-{who}", workspace_details=gone)["id"]
    jobs = {role: _start(owner, ws[role]) for role in ("job", "stop-owner", "stop-svc_user")}
    # invitations the owner received (from a third person): one for everyone else's cells, one
    # for each owner cell that declines or accepts
    invites, copies = {}, {}
    for role in ("main", "decline-owner", "decline-svc_user", "accept-owner", "accept-svc_user"):
        src = _workspace(third, f"from-third-{role}")["id"]
        invites[role], copies[role] = _invite(third, src, owner_id)
    for j in jobs.values():
        wait_job(owner, j, ("running",), timeout=60)
    for s in invites.values():
        wait_copy(owner, s, timeout=60)

    w = World(
        hub,
        clients,
        made=made,
        targets={
            "workspace_id": main["id"],
            "job_id": jobs["job"],
            "share_id": invites["main"],
            "copy_id": copies["main"],  # the owner's copy of it (hidden until accepted)
            "username": OWNER,
            "third_id": third_id,
        },
    )
    w.dedicated = {
        ("DELETE", "/workspaces/{workspace_id}/"): {
            who: {"workspace_id": ws[f"delete-{who}"]} for who in OWNER_LIKE
        },
        ("PUT", "/workspaces/{workspace_id}/start/"): {
            who: {"workspace_id": ws[f"start-{who}"]} for who in OWNER_LIKE
        },
        ("DELETE", "/workspaces/{workspace_id}/files/"): {
            who: {"workspace_id": ws[f"delfile-{who}"]} for who in OWNER_LIKE
        },
        ("POST", "/shared_workspaces/"): {
            who: {"workspace_id": ws[f"share-{who}"]} for who in OWNER_LIKE
        },
        ("PUT", "/jobs/{job_id}/stop/"): {
            who: {"job_id": jobs[f"stop-{who}"]} for who in OWNER_LIKE
        },
        ("DELETE", "/shared_workspaces/{share_id}/"): {
            who: {"share_id": invites[f"decline-{who}"]} for who in OWNER_LIKE
        },
        ("PUT", "/shared_workspaces/{share_id}/accept/"): {
            who: {"share_id": invites[f"accept-{who}"]} for who in OWNER_LIKE
        },
    }
    assert set(w.dedicated) == {k for k, row in ROWS.items() if row.dedicated}
    w.before = snapshot(owner, hub.root, OWNER, jobs["job"])
    assert len(w.before.workspaces) == 12 and len(w.before.jobs) == 3, w.before
    assert len(w.before.shares) == 5 and w.before.trees[main["id"]], w.before
    return w


@pytest.fixture(scope="module")
def world(hub, client_for):
    made: list[tuple[Client, int]] = []
    try:
        yield _build_world(hub, client_for, made)
    finally:  # stop the owner's jobs, remove what other people's cells made
        owner = client_for(OWNER)
        for j in owner.get("jobs/").json()["data"]["jobs"]:
            if j["status"] in ("pending", "running"):
                owner.put(f"jobs/{j['id']}/stop/")
        for j in owner.get("jobs/").json()["data"]["jobs"]:
            if j["status"] in LIVE:
                wait_job(owner, j["id"], ("complete", "failed"), timeout=60)
        for client, ws_id in made:
            client.delete(f"workspaces/{ws_id}/")


# ---- the cells -----------------------------------------------------------------------------------


def run_cell(world: World, op: Op, ident: str) -> None:
    row = ROWS.get((op.method, op.path))
    assert row is not None, f"{op} has no row of expectations in ROWS: add one"
    exp = row.cells.get(ident)
    assert exp is not None, f"{op} has no expectation for {ident} in ROWS: add one"
    t = world.targets_for(op, ident)
    kw = row.request(t)
    if ident in ("svc_user", "other_user"):
        kw["params"] = {**kw.get("params", {}), "user": OWNER}
    call(world, world.clients[ident], op, kw, exp, t, own=ident in OWNER_LIKE)


def call(world: World, client: Client, op: Op, kw: dict, exp: Expect, t: dict, own: bool) -> None:
    """One request of a cell, its answer checked against the document and the expectation."""
    url = f"{world.hub.url}/services/uws/api{op.path.format(**t)}"
    resp = client.session.request(op.method, url, timeout=60, **kw)
    try:
        try:
            check_openapi(resp)  # the answer's body as the document describes it
        except ResponseNotFound:
            pass  # a status the document lacks: test_expected_statuses_are_documented
        if op == _EVENTS and resp.status_code == 200:
            _first_event(resp, t["job_id"])
        if op.method == "POST" and op.path == "/workspaces/" and resp.status_code == 200:
            if not own:
                world.made.append((client, resp.json()["data"]["workspace"]["id"]))
        verify(resp, exp, t, SECRET)
    finally:
        resp.close()


def _first_event(resp, job_id: int) -> None:
    """The event stream's first event is the job (then the stream is closed)."""
    assert resp.headers["Content-Type"].startswith("text/event-stream"), resp.headers
    lines = resp.iter_lines(decode_unicode=True)
    assert next(lines) == "event: status"
    data = next(lines)
    assert data.startswith("data: ") and json.loads(data[6:])["id"] == job_id, data


_EVENTS = next(op for op in OPERATIONS if op.path == "/jobs/{job_id}/events")


def test_every_operation_has_a_row():
    """New operations in the document need a row of expectations (and stale rows go)."""
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert set(ROWS) - documented == set(), "rows for operations the document does not have"
    assert documented - set(ROWS) == set(), "operations without a row of expectations"
    for key, row in ROWS.items():
        assert set(row.cells) == set(IDENTITIES), (key, set(IDENTITIES) ^ set(row.cells))


def test_expected_statuses_are_documented():
    """Every status a cell expects is one the document lists for the operation."""
    missing = sorted(
        f"{op} {exp.status} ({ident})"
        for op in OPERATIONS
        if (op.method, op.path) in ROWS  # (a missing row: test_every_operation_has_a_row)
        for ident, exp in ROWS[(op.method, op.path)].cells.items()
        if str(exp.status) not in SPEC["paths"][op.path][op.method.lower()]["responses"]
    )
    assert missing == [], "statuses the OpenAPI document does not list:\n" + "\n".join(missing)


@pytest.mark.parametrize("op,ident", cells(NON_OWNER))
def test_cell(world, op, ident):
    run_cell(world, op, ident)


#: the owner as the recipient of an invitation not accepted yet (the copy is theirs but hidden),
#: and the third person as its sender: UWS-API.md (Resources) and UWS-REFERENCE §1.5, §1.15
UNACCEPTED = Expect(400, "Workspace {copy_id} is a shared workspace and has not been accepted.")
SHARE_ROLES = {
    "sender-accepts": (
        "third",
        Op("PUT", "/shared_workspaces/{share_id}/accept/", "acceptShare"),
        {},
        Expect(404, "Shared workspace {share_id} not found."),
    ),
    "recipient-gets-unaccepted-copy": (
        "owner",
        Op("GET", "/workspaces/{copy_id}/", "getWorkspace"),
        {},
        empty_list("Workspace", "workspaces"),
    ),
    "recipient-updates-unaccepted-copy": (
        "owner",
        Op("PUT", "/workspaces/{copy_id}/", "updateWorkspace"),
        {"json": {"description": "changed by a matrix cell"}},
        UNACCEPTED,
    ),
    "recipient-deletes-unaccepted-copy": (
        "owner",
        Op("DELETE", "/workspaces/{copy_id}/", "deleteWorkspace"),
        {},
        UNACCEPTED,
    ),
    "recipient-uploads-to-unaccepted-copy": (
        "owner",
        Op("PUT", "/workspaces/{copy_id}/upload/", "uploadFiles"),
        {"files": {"data": ("mx-uploaded.txt", b"uploaded by a matrix cell\n")}},
        UNACCEPTED,
    ),
    "recipient-starts-in-unaccepted-copy": (
        "owner",
        Op("PUT", "/workspaces/{copy_id}/start/", "startJob"),
        {"json": {"job_type": "test_job", "resource": "local"}},
        UNACCEPTED,
    ),
}


@pytest.mark.parametrize(
    "role",
    [
        pytest.param(
            role,
            id=role,
            marks=[pytest.mark.xfail(strict=True, raises=KnownGap, reason=exp.gap)]
            if exp.gap
            else [],
        )
        for role, (_, _, _, exp) in SHARE_ROLES.items()
    ],
)
def test_share_roles(world, role):
    """The parties of an invitation act only as their role allows (before the snapshot check:
    none of these may change the owner's data)."""
    who, op, kw, exp = SHARE_ROLES[role]
    call(world, world.clients[who], op, dict(kw), exp, world.targets, own=False)


def test_owner_data_unchanged(world):
    """Nobody but the owner changed the owner's workspaces, files, jobs, invitations, live
    shares or limits (every cell above acted on them)."""
    after = snapshot(world.clients["owner"], world.hub.root, OWNER, world.targets["job_id"])
    assert after == world.before


@pytest.mark.parametrize("op,ident", cells(OWNER_LIKE))
def test_owner_cell(world, op, ident):
    run_cell(world, op, ident)


def test_owner_cells_acted_for_the_owner(world):
    """The owner's cells, and the service's with ``?user=<owner>``, did what they asked to the
    owner's data (not to the service's or anyone else's)."""
    owner, d = world.clients["owner"], world.dedicated
    wss = {w["id"]: w for w in owner.get("workspaces/").json()["data"]["workspaces"]}
    assert [w["name"] for w in wss.values()].count("mx-made-by-a-cell") == 2
    main = wss[world.targets["workspace_id"]]
    assert (main["name"], main["description"]) == ("mx-renamed", "changed by a matrix cell")
    assert (world.hub.root / OWNER / str(main["id"]) / "mx-uploaded.txt").is_file()
    jobs = {j["id"]: j for j in owner.get("jobs/").json()["data"]["jobs"]}
    shares = owner.get("shared_workspaces/").json()["data"]
    sent = {s["original_workspace_id"]["id"] for s in shares["original_workspaces"]}
    received = {s["id"]: s for s in shares["shared_workspaces"]}
    for who in OWNER_LIKE:
        gone = d[("DELETE", "/workspaces/{workspace_id}/")][who]["workspace_id"]
        assert gone not in wss or wss[gone]["status"] == "deleting", wss.get(gone)
        started_in = d[("PUT", "/workspaces/{workspace_id}/start/")][who]["workspace_id"]
        assert [j["job_type"] for j in jobs.values() if j["workspace_id"] == started_in] == [
            "test_job"
        ]
        stopped = d[("PUT", "/jobs/{job_id}/stop/")][who]["job_id"]
        assert jobs[stopped]["status"] in ("stopping", "complete"), jobs[stopped]
        assert d[("POST", "/shared_workspaces/")][who]["workspace_id"] in sent
        accepted = d[("PUT", "/shared_workspaces/{share_id}/accept/")][who]["share_id"]
        assert received[accepted]["is_accepted"] is True
        assert d[("DELETE", "/shared_workspaces/{share_id}/")][who]["share_id"] not in received
    r = owner.get(f"jobs/{world.targets['job_id']}/shares/")
    assert r.json()["data"]["shares"] == []  # granted and revoked again
