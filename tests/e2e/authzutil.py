"""Helpers for the authorization matrix (tests/e2e/test_authz_matrix.py): the operations of the
OpenAPI document, the expectation of one cell, how a cell's answer is checked, and a snapshot of
a person's data."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
import yaml

from hubtest import REPO

SPEC = yaml.safe_load((REPO / "uws_hub" / "openapi.yaml").read_text())
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class Op:
    method: str  # upper case
    path: str  # the document's path template
    operation_id: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations() -> list[Op]:
    """Every operation of the OpenAPI document, in the document's order."""
    return [
        Op(m.upper(), path, spec.get("operationId") or f"{m}{path}")
        for path, item in SPEC["paths"].items()
        for m, spec in item.items()
        if m in METHODS
    ]


class KnownGap(AssertionError):
    """The answer differs from the contract exactly as a known, tracked difference says (the
    cell is an xfail with ``raises=KnownGap``); any other difference fails the cell."""


#: a message check: an exact text, or a callable that says whether the text is right
Message = str | Callable[[str], bool] | None


def contains(*parts: str) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return all(p in text for p in parts)

    check.__doc__ = " and ".join(repr(p) for p in parts)
    return check


@dataclass(frozen=True)
class Expect:
    """What one cell must answer."""

    status: int
    #: the `message` (formatted with the cell's targets when a str); None: not checked
    message: Message = None
    #: a 200 whose data[<key>] must be an empty list (a GET of an id that is not yours, as UWS)
    empty: str | None = None
    #: a known difference of today's service (the cell is then a strict xfail): the reason, and
    #: the status today's service answers instead (the same status when only the text differs)
    gap: str | None = None
    today: int | None = None
    #: True when the answer may show the owner's data (the owner; operators on operator APIs)
    entitled: bool = False
    #: True when the answer must show the owner's data (the leak check's positive control)
    shows: bool = False

    def with_gap(self, reason: str, today: int | None = None) -> Expect:
        return replace(self, gap=reason, today=self.status if today is None else today)

    def entitle(self) -> Expect:
        return replace(self, entitled=True)

    def showing(self) -> Expect:
        return replace(self, entitled=True, shows=True)


def describe(resp: requests.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text[:600]}"


def verify(resp: requests.Response, exp: Expect, targets: dict[str, Any], secret: str) -> None:
    """Check a cell's answer against its expectation; a difference that is the cell's known gap
    raises KnownGap, any other an AssertionError."""
    problems: list[str] = []
    is_json = resp.headers.get("Content-Type", "").startswith("application/json")
    body: Any = resp.json() if is_json else None
    if resp.status_code != exp.status:
        problems.append(f"status {resp.status_code}, expected {exp.status}")
    elif exp.status >= 400 or exp.message is not None or exp.empty is not None:
        if not isinstance(body, dict):
            problems.append("the answer is not a JSON object")
        else:
            if body.get("success") is not (exp.status < 400):
                problems.append(f"success is {body.get('success')!r}")
            msg = body.get("message")
            if isinstance(exp.message, str):
                want = exp.message.format(**targets)
                if msg != want:
                    problems.append(f"message {msg!r}, expected {want!r}")
            elif exp.message is not None and not (isinstance(msg, str) and exp.message(msg)):
                problems.append(f"message {msg!r} does not contain {exp.message.__doc__}")
            if exp.empty is not None and (body.get("data") or {}).get(exp.empty) != []:
                problems.append(f"data.{exp.empty} is not an empty list")
    if problems:
        text = "; ".join(problems) + "\n" + describe(resp)
        if exp.gap and resp.status_code == exp.today:
            raise KnownGap(f"{exp.gap}: {text}")
        raise AssertionError(text)
    text = resp.text if is_json or resp.status_code >= 400 else ""
    if not exp.entitled and secret in text:
        raise AssertionError(f"the answer shows the owner's data:\n{describe(resp)}")
    if exp.shows and secret not in text:
        raise AssertionError(f"the answer does not show the owner's data:\n{describe(resp)}")


# ---- snapshots of a person's data -------------------------------------------------------------


def _tree(path: Path) -> dict[str, str]:
    """Relative path -> sha256 (files) or 'link:<target>' / 'dir' of everything under `path`
    but the job logs (``.jobs/``, written while a job runs)."""
    out: dict[str, str] = {}
    if not path.is_dir():
        return {"": "missing"}
    for dirpath, dirnames, filenames in os.walk(path):
        if Path(dirpath) == path and ".jobs" in dirnames:
            dirnames.remove(".jobs")
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(path))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Snapshot:
    workspaces: dict[int, tuple] = field(default_factory=dict)
    trees: dict[int, dict[str, str]] = field(default_factory=dict)
    jobs: dict[int, tuple] = field(default_factory=dict)
    shares: dict[int, tuple] = field(default_factory=dict)
    live_shares: list = field(default_factory=list)
    quota_overrides: dict = field(default_factory=dict)


def snapshot(client, root: Path, owner: str, live_job: int) -> Snapshot:
    """The owner's workspaces (name, description, status, default job type, files listed and on
    disk), jobs (workspace, type, status), invitations sent and received (both workspaces,
    accepted or not), the live shares of `live_job` and the owner's quota overrides."""
    snap = Snapshot()
    r = client.get("workspaces/")
    assert r.status_code == 200, r.text
    for w in r.json()["data"]["workspaces"]:
        cur = w["workspace_details"]["current_workspace_details"]
        snap.workspaces[w["id"]] = (
            w["name"],
            w["description"],
            w["status"],
            w["default_job_type"],
            tuple(sorted(f["name"] for f in cur.get("files", []))),
            tuple(sorted(s["name"] for s in cur.get("symlinks", []))),
        )
        snap.trees[w["id"]] = _tree(root / owner / str(w["id"]))
    r = client.get("jobs/")
    assert r.status_code == 200, r.text
    for j in r.json()["data"]["jobs"]:
        snap.jobs[j["id"]] = (j["workspace_id"], j["job_type"], j["status"], j["resource_job_id"])
    r = client.get("shared_workspaces/")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    for kind in ("original_workspaces", "shared_workspaces"):
        for s in data[kind]:
            snap.shares[s["id"]] = (
                kind,
                s["is_accepted"],
                (s["original_workspace_id"] or {}).get("id"),
                (s["shared_workspace_id"] or {}).get("id"),
            )
    r = client.get(f"jobs/{live_job}/shares/")
    assert r.status_code == 200, r.text
    snap.live_shares = sorted(
        (s["user"] or "", s["group"] or "") for s in r.json()["data"]["shares"]
    )
    r = client.get("users/me/quota/")
    assert r.status_code == 200, r.text
    snap.quota_overrides = r.json()["data"].get("overrides") or {}
    return snap
