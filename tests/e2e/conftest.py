"""Fixtures: one real hub for the session, a factory for tests that need a hub of their own,
API clients per user, OpenAPI checks on every answer."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import yaml
from mailutil import Inbox, SmtpServer
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from hubtest import REPO, HubFactory, HubProcess

SPEC_PATH = REPO / "uws_hub" / "openapi.yaml"
_spec_dict = yaml.safe_load(SPEC_PATH.read_text())
OPENAPI = OpenAPI.from_dict(copy.deepcopy(_spec_dict))
SPEC_PATHS = set(_spec_dict["paths"])
#: (method, spec path, status) seen in this session, to check the spec is exercised
SEEN_OPERATIONS: set[tuple[str, str, int]] = set()

if os.geteuid() != 0:
    pytest.exit(
        "the test suite runs as root: it creates system accounts and checks file ownership", 2
    )


def _spec_path(path: str) -> str | None:
    """Map a request path under /services/uws/api to the spec's path template, or None."""
    rel = path.split("/services/uws/api", 1)[-1]
    if not rel.endswith("/"):
        rel += "/"
    parts = rel.strip("/").split("/")
    for template in SPEC_PATHS:
        tparts = template.strip("/").split("/")
        if len(tparts) == len(parts) and all(
            t.startswith("{") or t == p for t, p in zip(tparts, parts, strict=True)
        ):
            return template
    return None


def check_openapi(resp: requests.Response) -> None:
    """Validate a response from the uws API against the OpenAPI document the package ships."""
    req = resp.request
    url = urlsplit(req.url)
    if "/services/uws/api/" not in url.path + "/" or "openapi." in url.path:
        return
    template = _spec_path(url.path)
    if template is None or req.method.lower() not in _spec_dict["paths"][template]:
        return  # unknown path or method (404/405): checked by their own tests
    SEEN_OPERATIONS.add((req.method, template, resp.status_code))
    path = url.path.rstrip("/") + ("/" if template.endswith("/") else "")
    norm = req.copy()
    norm.url = urlunsplit(url._replace(path=path))
    if req.method == "GET":
        norm.body = None
    if (
        resp.headers.get("Content-Type", "").startswith("application/json")
        or resp.status_code >= 400
    ):
        OPENAPI.validate_response(RequestsOpenAPIRequest(norm), RequestsOpenAPIResponse(resp))


class Client:
    """HTTP to the hub as one identity; every uws API answer is checked against the spec."""

    def __init__(
        self, hub: HubProcess, token: str | None = None, *, header: str = "token", name: str = ""
    ):
        self.hub = hub
        self.name = name
        self.session = requests.Session()
        if token:
            if header == "uws":
                self.session.headers["UWS-Authorization"] = f"Token {token}"
            elif header == "bearer":
                self.session.headers["Authorization"] = f"Bearer {token}"
            else:
                self.session.headers["Authorization"] = f"token {token}"

    @classmethod
    def of(
        cls, hub: HubProcess, name: str, scopes: list[str] | None = None, header: str = "token"
    ) -> Client:
        """A client acting as `name` (made a hub user if new) with a fresh token."""
        return cls(hub, hub.token_for(name, scopes), header=header, name=name)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        url = (
            path
            if path.startswith("http")
            else f"{self.hub.url}/services/uws/api/{path.lstrip('/')}"
        )
        resp = self.session.request(method, url, **kw)
        check_openapi(resp)
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def hub():
    """The hub most tests share (hub_config.py's settings as they are)."""
    hubs = HubFactory()
    try:
        yield hubs("main")
    finally:
        hubs.close()


@pytest.fixture(scope="module")
def hub_factory():
    """For a test module that needs hubs of its own (other settings, an authenticator, a hub it
    may break): ``hub_factory(name, env=..., extra_config=..., ...)`` (see HubFactory) starts
    one; all are stopped and removed after the module's last test, or earlier with
    ``hub_factory.release(hub)``.

    List it after the fixtures the hub uses (a stand-in, an SMTP server): module fixtures are
    torn down in the reverse order they were set up, so the hubs then stop before those do."""
    hubs = HubFactory()
    yield hubs
    hubs.close()


@pytest.fixture(scope="module")
def smtp():
    """A real SMTP server (aiosmtpd) and its inbox: ``server, inbox = smtp``; list it before
    `hub_factory` so the module's hubs stop before it does."""
    inbox = Inbox()
    server = SmtpServer(inbox)
    yield server, inbox
    server.down()


@pytest.fixture(scope="session")
def client_for(hub):
    cache: dict[tuple, Client] = {}

    def make(name: str, scopes: list[str] | None = None, header: str = "token") -> Client:
        key = (name, tuple(scopes) if scopes is not None else None, header)
        if key not in cache:
            cache[key] = Client.of(hub, name, scopes, header)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def alice(client_for):
    return client_for("uwst-alice")


@pytest.fixture(scope="session")
def bob(client_for):
    return client_for("uwst-bob")


@pytest.fixture(scope="session")
def admin(client_for):
    """An operator: uwst-admin is a hub admin, hence in the uws-admin role."""
    return client_for("uwst-admin")


@pytest.fixture(scope="session")
def anon(hub):
    return Client(hub)


@pytest.fixture
def make_workspace(alice):
    """Create a workspace (as alice by default) and return its API representation."""

    def make(client: Client = alice, **body):
        body.setdefault("name", "ws")
        body.setdefault("description", "a test workspace")
        r = client.post("workspaces/", json=body)
        assert r.status_code == 200, r.text
        ws = r.json()["data"]["workspace"]
        assert ws["status"] == "idle", ws
        return ws

    return make


def workspace_dir(hub: HubProcess, owner: str, ws_id: int) -> Path:
    return hub.root / owner / str(ws_id)


def empty_answer(resp: requests.Response, key: str) -> bool:
    """UWS's answer to a GET of an id that names nothing of the caller's (deleted, someone
    else's, never made): 200 with an empty list under data[key]."""
    return (
        resp.status_code == 200
        and resp.json()["success"] is True
        and resp.json()["data"][key] == []
        and resp.json()["message"].endswith("matching given parameters could not be found.")
    )
