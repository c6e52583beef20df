"""The hub's REST API as the service reads it (`uws_hub.service.hubclient.HubClient`), against
a real HTTP server speaking JupyterHub's paginated ``GET /users``."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from uws_hub.errors import HubAPIError
from uws_hub.service.hubclient import HubClient


class Users(web.RequestHandler):
    """JupyterHub's paginated user list (ordered by id, ``_pagination.next`` by offset), with
    hooks that change the users between two pages, as other admins do meanwhile."""

    def initialize(self, hub: dict) -> None:
        self.hub = hub

    def get(self) -> None:
        assert self.request.headers["Accept"] == "application/jupyterhub-pagination+json"
        offset = int(self.get_argument("offset"))
        limit = min(int(self.get_argument("limit")), self.hub["max_limit"])
        self.hub["asked"].append(offset)
        users = self.hub["users"]
        items = [{"name": n, "servers": {}} for n in users[offset : offset + limit]]
        nxt = offset + limit if offset + limit < len(users) else None
        if self.hub.get("stuck") and nxt is not None:
            nxt = offset
        self.write(
            json.dumps(
                {
                    "items": items,
                    "_pagination": {
                        "offset": offset,
                        "limit": limit,
                        "total": len(users),
                        "next": None if nxt is None else {"offset": nxt, "limit": limit},
                    },
                }
            )
        )
        for change in self.hub["between_pages"].pop(0) if self.hub["between_pages"] else ():
            change(users)


@pytest.fixture
def hub():
    state = {"users": [f"u{i:03}" for i in range(95)], "max_limit": 200, "asked": []}
    state["between_pages"] = []
    return state


def list_users(hub: dict, page_size: int) -> list[str]:
    async def main() -> list[str]:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([(r"/hub/api/users", Users, {"hub": hub})]))
        server.add_sockets([sock])
        try:
            client = HubClient(f"http://127.0.0.1:{port}/hub/api", token="t")
            return [u["name"] for u in await client.list_users(page_size)]
        finally:
            server.stop()

    return asyncio.run(main())


def test_every_user_is_listed_once_across_pages(hub):
    assert list_users(hub, 20) == hub["users"]
    assert hub["asked"] == [0, 18, 36, 54, 72, 90]  # each page starts a tenth of a page early


def test_users_deleted_between_pages_do_not_hide_the_others(hub):
    everyone = list(hub["users"])
    # after the first page two of its users are deleted, after the second one more
    hub["between_pages"] = [
        [lambda users: users.remove("u003"), lambda users: users.remove("u007")],
        [lambda users: users.remove("u021")],
    ]
    listed = list_users(hub, 20)
    gone = {"u003", "u007", "u021"}
    assert set(everyone) - gone <= set(listed) and len(listed) == len(set(listed))


def test_a_hub_that_caps_the_page_size_is_still_read_whole(hub):
    hub["max_limit"] = 10
    assert list_users(hub, 200) == hub["users"]


def test_a_hub_whose_pages_do_not_advance_is_an_error_not_a_loop(hub):
    hub["stuck"] = True
    with pytest.raises(HubAPIError, match="does not move on"):
        list_users(hub, 20)
