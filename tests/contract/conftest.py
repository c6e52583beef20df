"""Fixtures of the contract suite: a running hub reached over HTTP only, and portal users.

Where the hub comes from:

- ``UWS_CONTRACT_URL`` (the hub's URL; the API is at ``<url>/services/uws/api/``) with
  ``UWS_CONTRACT_CLIENT_TOKEN`` (a trusted token client's token, as a portal holds) points the
  suite at any running deployment. Optional: ``UWS_CONTRACT_USERS`` (three user names, comma
  separated; default ``uwsc-alice,uwsc-bob,uwsc-carol``), ``UWS_CONTRACT_EMAIL_DOMAIN``
  (``example.org``), ``UWS_CONTRACT_JOB_TYPE`` (default ``test_job`` if offered, else the first
  job type), ``UWS_CONTRACT_ORIGIN`` (an origin the deployment's CORS allows),
  ``UWS_CONTRACT_GROUPS_TOKEN`` + ``UWS_CONTRACT_DATASETS`` (readable dataset uuids, comma
  separated) + ``UWS_CONTRACT_FORBIDDEN_DATASET`` for dataset links,
  ``UWS_CONTRACT_SYMLINK_TARGET`` (a directory symlinks may point at); tests needing what is
  not given are skipped.
- Without them, `launch_hub.py` is run as a subprocess: it starts a test hub (the e2e harness,
  with a dataset lookup stand-in) and prints its URL and tokens; it is stopped at the end.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from .uws import API_PREFIX, Api, Person, ok

HERE = Path(__file__).resolve().parent
DEFAULT_USERS = "uwsc-alice,uwsc-bob,uwsc-carol"


def _read_info(proc: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    """The launcher's JSON line (it prints one once the hub answers)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if not ready:
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        for line in buf.decode(errors="replace").splitlines():
            if line.startswith("{"):
                return json.loads(line)
    raise RuntimeError(
        f"the contract hub did not start:\n{log.read_text(errors='replace')[-4000:]}"
    )


@pytest.fixture(scope="session")
def deployment():
    """What the suite needs to know about the hub: url, client_token, and what is optional."""
    if url := os.environ.get("UWS_CONTRACT_URL"):
        token = os.environ.get("UWS_CONTRACT_CLIENT_TOKEN")
        if not token:
            pytest.exit("UWS_CONTRACT_URL needs UWS_CONTRACT_CLIENT_TOKEN (a trusted client's)", 2)
        datasets = [d for d in os.environ.get("UWS_CONTRACT_DATASETS", "").split(",") if d]
        yield {
            "url": url.rstrip("/"),
            "client_token": token,
            "origin": os.environ.get("UWS_CONTRACT_ORIGIN"),
            "groups_token": os.environ.get("UWS_CONTRACT_GROUPS_TOKEN"),
            "datasets": datasets,
            "forbidden_dataset": os.environ.get("UWS_CONTRACT_FORBIDDEN_DATASET"),
            "unknown_dataset": uuid.uuid4().hex,
            "symlink_target": os.environ.get("UWS_CONTRACT_SYMLINK_TARGET"),
            "imported": None,  # what a switched UWS site had: only the suite's own hub knows
        }
        return
    if os.geteuid() != 0:
        pytest.exit(
            "the contract suite starts a test hub as root (it creates system accounts); "
            "or point it at a running hub with UWS_CONTRACT_URL",
            2,
        )
    log = Path(tempfile.mkstemp(prefix="uws-contract-launcher-", suffix=".log")[1])
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "launch_hub.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        )
    try:
        info = _read_info(proc, log)
        # hub_config.py's CORS origin (c.UWS.cors_allowed_origins)
        yield {**info, "origin": "https://portal.example.org"}
    finally:
        proc.stdin.close()  # the launcher stops the hub and removes its directory
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def api_base(deployment) -> str:
    return deployment["url"] + API_PREFIX


@pytest.fixture(scope="session")
def anon(api_base) -> Api:
    """No UWS-Authorization header at all."""
    return Api(api_base)


@pytest.fixture(scope="session")
def get_token(anon, deployment):
    """A portal's login: POST /tokens/ with its client token and the person's user_info
    (UWS-REFERENCE §1.2, trusted-client flow)."""

    def get(user_info: dict) -> str:
        r = anon.post(
            "tokens/", json={"client_token": deployment["client_token"], "user_info": user_info}
        )
        body = ok(r, "Successful authentication.")
        assert isinstance(body.get("token"), str) and body["token"], body
        return body["token"]

    return get


def _person(get_token, api_base, username: str, first: str) -> Person:
    domain = os.environ.get("UWS_CONTRACT_EMAIL_DOMAIN", "example.org")
    user_info = {
        "username": username,
        "email": f"{username}@{domain}",
        "first_name": first,
        "last_name": "Contractson",
    }
    return Person(**user_info, api=Api(api_base, get_token(user_info)))


@pytest.fixture(scope="session")
def people(get_token, api_base) -> list[Person]:
    names = os.environ.get("UWS_CONTRACT_USERS", DEFAULT_USERS).split(",")
    assert len(names) == 3, "UWS_CONTRACT_USERS names three users"
    firsts = ["Alicia", "Bartholomew", "Carolina"]
    return [_person(get_token, api_base, n.strip(), f) for n, f in zip(names, firsts, strict=True)]


@pytest.fixture(scope="session")
def alice(people) -> Person:
    return people[0]


@pytest.fixture(scope="session")
def bob(people) -> Person:
    return people[1]


@pytest.fixture(scope="session")
def carol(people) -> Person:
    return people[2]


@pytest.fixture(scope="session")
def user_ids(people) -> dict[str, int]:
    """Each person's id as the people search shows it to another (UWS-REFERENCE §1.14, §6.1:
    how a portal finds whom to share with); keyed by e-mail."""
    ids = {}
    for i, p in enumerate(people):
        other = people[(i + 1) % len(people)]
        found = ok(other.api.get("users/", params={"search": p.email}))["data"]["users"]
        match = [u["id"] for u in found if u["email"] == p.email]
        assert len(match) == 1, found
        ids[p.email] = match[0]
    return ids


@pytest.fixture(scope="session")
def job_types(anon) -> dict:
    return ok(anon.get("job_types/"))["data"]["job_types"]


@pytest.fixture(scope="session")
def job_type(job_types) -> str:
    """The job type the suite starts: the quickest one of the test configuration."""
    chosen = os.environ.get("UWS_CONTRACT_JOB_TYPE")
    if chosen:
        return chosen
    return "test_job" if "test_job" in job_types else next(iter(job_types))


@pytest.fixture(scope="session")
def parameters(anon) -> list[dict]:
    return ok(anon.get("parameters/"))["data"]["parameters"]


@pytest.fixture
def make_workspace():
    """POST /workspaces/ (UWS-REFERENCE §1.4) and return data.workspace."""

    def make(who: Person, **body) -> dict:
        body.setdefault("name", "contract")
        body.setdefault("description", "a contract-suite workspace")
        r = who.api.post("workspaces/", json=body)
        return ok(r, "Successful.")["data"]["workspace"]

    return make


def portal_start_body(job_type: str) -> dict:
    """What the portal's launch dialog sends to PUT /workspaces/<id>/start (UWS-REFERENCE §1.6,
    §1.18: the portal's ``time_limit_minutes``; §3.3: ``gpu_enabled``)."""
    return {
        "job_type": job_type,
        "job_details": {},
        "resource_options": {"time_limit_minutes": 30, "gpu_enabled": False},
    }


@pytest.fixture(scope="session")
def hub_session():
    """A plain requests session for calls outside the API (a job's URL)."""
    return requests.Session()
