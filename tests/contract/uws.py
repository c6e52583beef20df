"""A UWS client as UWS's clients wrote one: HTTP only, ``UWS-Authorization: Token <token>``,
the ``{success, message, data}`` envelope. Plus the few checks every contract test repeats.

Nothing here imports uws_hub or the e2e harness: what a test asserts comes from
/work/shared/UWS-REFERENCE.md (and UWS-API.md where uws_hub deliberately differs).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

#: where uws_hub serves the UWS API (UWS-API.md: clients switch by changing the base URL)
API_PREFIX = "/services/uws/api/"

#: Workspace.get_dict_fields() (UWS-REFERENCE §1.3, §9 test_models)
WORKSPACE_FIELDS = {
    "id",
    "name",
    "description",
    "disk_space",
    "datetime_created",
    "datetime_last_modified",
    "datetime_last_job_launch",
    "workspace_details",
    "status",
    "default_job_type",
}
#: the job's dict fields (UWS-REFERENCE §1.6, §1.10)
JOB_FIELDS = {
    "id",
    "workspace_id",
    "resource_job_id",
    "job_type",
    "status",
    "datetime_created",
    "datetime_start",
    "datetime_end",
    "core_hours",
    "job_details",
}
#: a shared-workspace item (UWS-REFERENCE §1.15)
SHARE_FIELDS = {
    "original_workspace_id",
    "shared_workspace_id",
    "last_resource_options",
    "last_job_type",
    "is_accepted",
    "datetime_share_created",
}
SHARE_WORKSPACE_FIELDS = {"id", "user_id", "name", "description", "workspace_details"}
PERSON_FIELDS = {"username", "first_name", "last_name", "email"}

WORKSPACE_STATUSES = {"initializing", "idle", "active", "deleting", "error"}  # §2
JOB_STATUSES = {"pending", "running", "complete", "failed", "stopping"}  # §2

NO_WORKSPACE = "Workspace matching given parameters could not be found."
NO_JOB = "Job matching given parameters could not be found."
NO_USER = "Users matching given parameters could not be found."
NO_SHARE = "Shared workspace matching given parameters could not be found."


def describe(r: requests.Response) -> str:
    """The request and answer, for assertion messages (the report quotes what uws_hub said)."""
    return f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:800]}"


@dataclass
class Api:
    """HTTP to ``<hub>/services/uws/api/`` as one caller."""

    base: str  # ends with /services/uws/api/
    token: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        if self.token:
            self.session.headers["UWS-Authorization"] = f"Token {self.token}"

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        kw.setdefault("allow_redirects", False)  # UWS-API.md: answered directly, no redirect
        return self.session.request(method, self.base + path.lstrip("/"), **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


@dataclass
class Person:
    """A portal user: what the portal sent as ``user_info`` and the UWS token it got back."""

    username: str
    email: str
    first_name: str
    last_name: str
    api: Api

    @property
    def user_info(self) -> dict[str, str]:
        return {
            "username": self.username,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
        }


def ok(r: requests.Response, message: str | None = None) -> dict:
    """A success answer (UWS-REFERENCE §1.1 envelope): 200, ``success`` true, a str message."""
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body.get("success") is True, describe(r)
    assert isinstance(body.get("message"), str), describe(r)
    if message is not None:
        assert body["message"] == message, describe(r)
    return body


def refused(
    r: requests.Response, status: int, message: str | None = None, *, prefix: str | None = None
) -> dict:
    """An error answer (UWS-REFERENCE §1.1): the status, ``{"success": false, "message"}``
    with the message verbatim (or starting with `prefix` where the reference gives one)."""
    assert r.status_code == status, describe(r)
    body = r.json()
    assert body.get("success") is False, describe(r)
    if message is not None:
        assert body.get("message") == message, describe(r)
    if prefix is not None:
        assert str(body.get("message")).startswith(prefix), describe(r)
    return body


def empty(r: requests.Response, key: str, message: str) -> None:
    """UWS-REFERENCE §1.1: a GET matching nothing is 200 with an empty list and the message."""
    body = ok(r, message)
    assert body["data"][key] == [], describe(r)


def iso(value: Any) -> dt.datetime:
    """UWS-REFERENCE §1.1: datetimes come out as ISO strings."""
    assert isinstance(value, str), value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Call `check` until it returns something truthy (its value), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def workspace(api: Api, ws_id: int) -> dict | None:
    """The caller's workspace `ws_id`, or None when GET finds nothing (§1.3)."""
    r = api.get(f"workspaces/{ws_id}/")
    found = ok(r)["data"]["workspaces"]
    return found[0] if found else None


def job(api: Api, job_id: int) -> dict | None:
    r = api.get(f"jobs/{job_id}/")
    found = ok(r)["data"]["jobs"]
    return found[0] if found else None


def names(ws: dict, kind: str = "files") -> set[str]:
    """The names listed in current_workspace_details (UWS-REFERENCE §1.5, §4: "/a/b.txt")."""
    entries = ws["workspace_details"]["current_workspace_details"][kind]
    # portal-ui copes with a legacy form where files are plain strings (§2)
    return {e if isinstance(e, str) else e["name"] for e in entries}


def wait_job(api: Api, job_id: int, until: tuple[str, ...], timeout: float = 90) -> dict:
    def reached():
        j = job(api, job_id)
        return j if j and j["status"] in until else None

    return eventually(reached, f"job {job_id} reaching {until}", timeout)


def wait_gone(api: Api, ws_id: int, timeout: float = 90) -> None:
    eventually(lambda: workspace(api, ws_id) is None, f"workspace {ws_id} deleted", timeout)
