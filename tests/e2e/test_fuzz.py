"""The uws API fuzzed with schemathesis against the OpenAPI document the service serves.

Every operation gets schema-valid and schema-violating requests (the examples, coverage and
fuzzing phases), then the stateful phase follows the document's `links` (create a workspace →
get, update, upload, delete it; share → get, accept, withdraw). All as an ordinary user,
``uwst-fuzz``. A test fails on any 5xx, any answer the document does not describe (status,
content type, headers, body), any schema-violating request the server accepted (the document
states UWS's permissiveness, so that is a real disagreement), and any traceback in the hub's log.

Job starts are real processes: `PUT /workspaces/{id}/start/` gets its own, small test in which
every start runs ``test_job`` (a small server, not JupyterLab) on this machine, and whatever the
fuzz user still has running is stopped at the end.

Invitations go only to ``uwst-fuzz-peer`` and are withdrawn at the end, so no other test's user
receives one. The seed is fixed and the number of examples bounded: about 2,500 requests in
about a minute. Each token may make 20 calls a second (c.UWS.rate_limit_per_token): the calls
take turns with four tokens of the fuzz user. Positive-data acceptance is not checked: a valid
request may still be refused for what a schema cannot say (a name with control characters, an
unknown job type, someone else's workspace).
"""

from __future__ import annotations

import os
import time

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import FlakyStrategyDefinition

from conftest import SPEC_PATH

#: fixed, so a run is repeatable; UWS_FUZZ_SEED and UWS_FUZZ_SCALE (a factor on the numbers of
#: examples) explore further, e.g. ``UWS_FUZZ_SEED=7 UWS_FUZZ_SCALE=5 pytest tests/e2e/test_fuzz.py``
SEED = int(os.environ.get("UWS_FUZZ_SEED", "20261205"))
SCALE = float(os.environ.get("UWS_FUZZ_SCALE", "1"))
FUZZ_USER = "uwst-fuzz"
#: whom the fuzz user's invitations go to (never another test's user)
PEER = "uwst-fuzz-peer"
#: examples per operation in the fuzzing phase (the examples and coverage phases add their own)
MAX_EXAMPLES = int(40 * SCALE)
START_EXAMPLES = int(12 * SCALE)
STATEFUL_EXAMPLES = int(40 * SCALE)
#: the stateful test runs (with the next seed) until it has made this many requests
STATEFUL_REQUESTS = int(400 * SCALE)
STATEFUL_ATTEMPTS = 6
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "ignored_auth",
]
#: the operation that starts real processes (`test_start`; the stateful test reaches it through
#: the links of a created workspace). No link leads to the event stream of a job: a stream lasts
#: until the job ends (`test_api` only meets other people's jobs and unknown ids: 404 at once).
START = "PUT /workspaces/{workspace_id}/start/"
#: a small server that starts in a fraction of a second (not JupyterLab), on this machine
FAST_JOB, FAST_RESOURCE = "test_job", "local"

#: where the session's hub serves the API, and the fuzz user's tokens (set by `fuzz_schema`)
TARGET: dict = {}
CREDENTIALS: list[dict] = []
REQUESTS = {"stateless": 0, "start": 0, "stateful": 0, "total": 0}


class HubLog:
    """New lines of the hub's log since the last look: a traceback there fails the test."""

    def __init__(self, path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def check(self, what: str) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            new = f.read().decode(errors="replace")
            self.offset = f.tell()
        if "Traceback" in new:
            at = new.index("Traceback")
            start = new.rfind("\n[", 0, at)
            raise AssertionError(
                f"traceback in the hub's log after {what}:\n{new[max(0, start) : at + 3000]}"
            )


#: loaded from the file at import (the tests are generated per operation when collected); the
#: service's base URL and the token are set once the session's hub runs (`fuzz_schema`), and
#: `test_served_document` checks the service serves this same document
schema = schemathesis.openapi.from_path(SPEC_PATH)
schema.config.update(request_timeout=30, workers=1)
schema.config.checks.update(included_check_names=CHECKS)
schema.config.generation.update(
    max_examples=MAX_EXAMPLES,
    # the token is the credential; generated Authorization/UWS-Authorization/cookie values
    # would only replace it (the answer is then 401, which tests/e2e/test_auth.py checks)
    with_security_parameters=False,
    # unknown query parameters are ignored (as in UWS): an extra one is no violation
    allow_extra_parameters=False,
    database="none",
)
#: every operation but job starts; job starts alone (see `test_start`)
most = schema.exclude(operation_id="startJob")
starts = schema.include(operation_id="startJob")


@pytest.fixture(scope="module")
def fuzz_token(hub) -> str:
    return hub.token_for(FUZZ_USER)


@pytest.fixture(scope="module", autouse=True)
def fuzz_schema(hub, fuzz_token):
    """The document, pointed at the session's hub, with the fuzz user's tokens."""
    TARGET["base_url"] = f"{hub.url}/services/uws/api"
    schema.config.update(base_url=TARGET["base_url"])  # the stateful test reads it from there
    # each token may make 20 calls a second (c.UWS.rate_limit_per_token); the fuzzing makes
    # about 40: the calls take turns with a few tokens of the same user, so none is throttled
    tokens = [fuzz_token] + [hub.token_for(FUZZ_USER, note=f"fuzz {i}") for i in range(3)]
    CREDENTIALS.extend({"Authorization": f"token {t}"} for t in tokens)
    TARGET["peer_id"] = peer_id(hub, fuzz_token)
    yield schema
    stop_fuzz_jobs(hub, fuzz_token)
    CREDENTIALS.clear()


def peer_id(hub, token: str) -> int:
    """The uws id of `PEER` (known to uws after one call of theirs)."""
    api = f"{hub.url}/services/uws/api"
    peer = {"Authorization": f"token {hub.token_for(PEER)}"}
    assert requests.get(f"{api}/users/me/quota/", headers=peer, timeout=30).status_code == 200
    found = requests.get(
        f"{api}/users/",
        params={"search": PEER},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()["data"]["users"]
    return next(u["id"] for u in found if u["username"] == PEER)


def to_peer(case) -> None:
    """Invitations go to `PEER`: a plausible id in a valid list of recipients becomes the
    peer's (valid stays valid), so random ids never name another test's user; invalid lists,
    odd and out-of-range ids are sent as generated."""
    body = case.body
    if case.operation.label != "POST /shared_workspaces/" or not isinstance(body, dict):
        return
    ids = body.get("shared_user_ids")
    if isinstance(ids, list) and 1 <= len(ids) <= 100:
        body["shared_user_ids"] = [TARGET["peer_id"] if is_plausible_id(x) else x for x in ids]


def is_plausible_id(value) -> bool:
    text = value.strip().removeprefix("-") if isinstance(value, str) else ""
    if text.isascii() and text.isdigit():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and -(10**6) < value < 10**6


def call(case):
    """Send a case as the fuzz user (the next of its tokens) and check the answer."""
    to_peer(case)
    headers = CREDENTIALS[REQUESTS["total"] % len(CREDENTIALS)]
    REQUESTS["total"] += 1
    return case.call_and_validate(base_url=TARGET["base_url"], headers=headers)


def test_served_document(hub):
    """The service serves the document the tests fuzz with (as JSON and as YAML)."""
    served = requests.get(f"{hub.url}/services/uws/api/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == yaml.safe_load(SPEC_PATH.read_text())
    served = requests.get(f"{hub.url}/services/uws/api/openapi.yaml", timeout=30)
    assert served.text == SPEC_PATH.read_text()


def stop_fuzz_jobs(hub, token: str, timeout: float = 60) -> None:
    """Stop every job the fuzz user still has and wait until they have ended; withdraw the
    invitations it sent (random ids can name other test users)."""
    api = f"{hub.url}/services/uws/api"
    headers = {"Authorization": f"token {token}"}
    sent = requests.get(f"{api}/shared_workspaces/", headers=headers, timeout=30).json()["data"]
    for share in sent["original_workspaces"]:
        if not share["is_accepted"]:
            requests.delete(f"{api}/shared_workspaces/{share['id']}/", headers=headers, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = requests.get(f"{api}/jobs/", headers=headers, timeout=30).json()["data"]["jobs"]
        live = [j for j in jobs if j["status"] in ("pending", "running", "stopping")]
        if not live:
            return
        for j in live:
            if j["status"] != "stopping":
                requests.put(f"{api}/jobs/{j['id']}/stop/", headers=headers, timeout=30)
        time.sleep(1)
    raise AssertionError(f"jobs of {FUZZ_USER} did not end: {live}")


@pytest.fixture(scope="module")
def hub_log(hub):
    return HubLog(hub.log_path)


@most.parametrize()
@hypothesis_seed(SEED)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case, hub_log):
    """Each operation but job starts: valid and invalid requests, answers as documented."""
    REQUESTS["stateless"] += 1
    call(case)
    hub_log.check(f"{case.method} {case.formatted_path}")


def fast_job(case) -> None:
    """A start that names a job type and resource by a string, or none (absent or empty: the
    defaults), runs `FAST_JOB` on `FAST_RESOURCE`; any other body is left as generated (it is
    refused before a process starts). Valid stays valid: the document allows any string or
    nothing there."""
    if isinstance(case.body, dict) and (
        isinstance(case.body.get("job_type"), str) or not case.body.get("job_type")
    ):
        case.body["job_type"] = FAST_JOB
        if isinstance(case.body.get("resource"), str) or not case.body.get("resource"):
            case.body["resource"] = FAST_RESOURCE


@starts.parametrize()
@hypothesis_seed(SEED)
@settings(
    max_examples=START_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_start(case, hub_log, fuzz_workspace):
    """Job starts, bounded: a few dozen, in the fuzz user's own workspace or a random id."""
    if case.path_parameters and case.path_parameters.get("workspace_id") == 1:
        case.path_parameters["workspace_id"] = fuzz_workspace
    fast_job(case)
    REQUESTS["start"] += 1
    call(case)
    hub_log.check(f"{case.method} {case.formatted_path}")


@pytest.fixture(scope="module")
def fuzz_workspace(hub, fuzz_token) -> int:
    r = requests.post(
        f"{hub.url}/services/uws/api/workspaces/",
        json={"name": "fuzz", "description": "job starts", "default_job_type": FAST_JOB},
        headers={"Authorization": f"token {fuzz_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]["workspace"]["id"]


def test_stateful(hub_log):
    """Sequences along the document's links: create → get/update/upload/delete, share → get,
    accept, withdraw; each answer checked as above."""

    failures: list[BaseException] = []  # kept here: a flaky replay must not hide one

    class Workflow(schema.as_state_machine()):
        def before_call(self, case) -> None:
            if case.operation.label == START:
                fast_job(case)
            to_peer(case)
            # ?user=<someone else> is refused (403) before anything else happens: in sequences,
            # acting for oneself goes further (any string is valid there)
            if case.query and isinstance(case.query.get("user"), str) and case.query["user"]:
                case.query["user"] = FUZZ_USER

        def get_call_kwargs(self, case) -> dict:
            headers = CREDENTIALS[REQUESTS["total"] % len(CREDENTIALS)]
            REQUESTS["total"] += 1
            return {"headers": headers}

        def after_call(self, response, case) -> None:
            REQUESTS["stateful"] += 1
            super().after_call(response, case)
            try:
                hub_log.check(f"{case.method} {case.formatted_path}")
            except AssertionError as e:
                failures.append(e)
                raise

        def validate_response(self, response, case, *args, **kwargs) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except Exception as e:
                failures.append(e)
                raise

    # Which links a sequence can follow depends on the server's answers (a share that was
    # made, or not): when Hypothesis meets a sequence it drew before going another way, it
    # stops with FlakyStrategyDefinition. That is no finding: go on with the next seed (as
    # schemathesis's own runner does). Sequences are only generated, never shrunk: a replay
    # against a server whose state has moved on would not be the same sequence.
    for attempt in range(STATEFUL_ATTEMPTS):
        hypothesis_seed(SEED + attempt)(Workflow)  # run_state_machine_as_test reads it there
        try:
            Workflow.run(
                settings=settings(
                    max_examples=STATEFUL_EXAMPLES,
                    stateful_step_count=8,
                    phases=[Phase.generate],
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        except FlakyStrategyDefinition:
            if failures:
                raise failures[0] from None
        if REQUESTS["stateful"] >= STATEFUL_REQUESTS:
            break
    assert REQUESTS["stateful"] >= STATEFUL_REQUESTS // 2, REQUESTS


def test_volume():
    """The suite above made the requests it is meant to (when it ran in full)."""
    if not all(REQUESTS.values()):
        pytest.skip("only part of the fuzz suite ran")
    print(f"fuzz requests: {REQUESTS}")
    assert REQUESTS["total"] >= 2000, REQUESTS
