"""Helpers for tests that share workspaces: find a person's id, wait for a copy."""

from __future__ import annotations

import time

from conftest import Client


def user_id(client: Client, name: str) -> int:
    """The uws id of `name`, found through the people search (as a share dialog does)."""
    users = client.get("users/", params={"search": name}).json()["data"]["users"]
    return next(u["id"] for u in users if u["username"] == name)


def wait_copy(client: Client, share_id: int, until=("done",), timeout=120) -> dict:
    """Wait until the share's copy reaches one of `until`; the share as `client` sees it."""
    deadline = time.monotonic() + timeout
    while True:
        s = client.get(f"shared_workspaces/{share_id}/").json()["data"]
        share = (s["shared_workspaces"] or s["original_workspaces"])[0]
        if share["copy"]["status"] in until:
            return share
        assert time.monotonic() < deadline, share
        time.sleep(0.1)
