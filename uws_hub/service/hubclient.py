"""The uws service's client for the hub's REST API (its own token; nothing else)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..errors import HubAPIError

__all__ = ["HubAPIError", "HubClient"]


class HubClient:
    def __init__(self, api_url: str | None = None, token: str | None = None, timeout: float = 10.0):
        self.api_url = (
            api_url or os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
        ).rstrip("/")
        self.token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        self.timeout = timeout
        self.http = AsyncHTTPClient()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        paginated: bool = False,
        timeout: float | None = None,
        **params: str,
    ) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        if params:
            url += "?" + "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        if paginated:
            headers["Accept"] = "application/jupyterhub-pagination+json"
        req = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=timeout or self.timeout,
            connect_timeout=self.timeout,
            allow_nonstandard_methods=True,
        )
        try:
            resp = await self.http.fetch(req)
        except OSError as e:  # connection refused: the hub is restarting
            raise HubAPIError(599, f"cannot reach the hub: {e}") from e
        except HTTPClientError as e:
            msg = ""
            if e.response is not None and e.response.body:
                try:
                    msg = json.loads(e.response.body).get("message", "")
                except ValueError:
                    msg = e.response.body[:200].decode("utf-8", "replace")
            raise HubAPIError(e.code, msg or str(e)) from e
        return json.loads(resp.body) if resp.body else None

    async def info(self) -> dict:
        return await self.request("GET", "/")

    async def get_user(self, name: str) -> dict | None:
        try:
            return await self.request("GET", f"/users/{quote(name, safe='')}")
        except HubAPIError as e:
            if e.status == 404:
                return None
            raise

    async def start_server(self, user: str, server: str, options: dict) -> None:
        """Ask the hub to start named server `server` of `user` with these user_options."""
        # the hub answers once the spawn is done or slow_spawn_timeout has passed
        await self.request(
            "POST",
            f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}",
            options,
            timeout=max(60.0, self.timeout),
        )

    async def stop_server(self, user: str, server: str, *, remove: bool = False) -> bool:
        """Stop (and optionally remove) a named server; False if the hub has no such server."""
        try:
            await self.request(
                "DELETE",
                f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}",
                {"remove": remove},
            )
        except HubAPIError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def _all_users(self, page_size: int, **params) -> list[dict]:
        """Every user model of the hub's paginated ``GET /users`` (with `params`), page by page;
        raises HubAPIError if any page cannot be read (a partial list must never pass for the
        whole one).

        Pages are read by offset, so a user deleted while they are read would shift the rest
        by one and the first of the next page would be missed: each page after the first starts
        a tenth of a page early (users seen twice are kept once), so a few deletions meanwhile
        lose nobody."""
        out: dict[str, dict] = {}
        offset = 0
        while True:
            page = await self.request(
                "GET", "/users", paginated=True, offset=offset, limit=page_size, **params
            )
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise HubAPIError(502, "the hub's user list is not a paginated answer")
            for user in page["items"]:
                out.setdefault(user["name"], user)
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt:
                return list(out.values())
            step = nxt["offset"] - offset  # the hub may cap the page size
            if step < 1:
                raise HubAPIError(502, "the hub's user list does not move on to a next page")
            offset = nxt["offset"] - min(step - 1, max(1, step // 10))

    async def active_servers(self, page_size: int = 200) -> dict[tuple[str, str], dict]:
        """Every running or starting server: (user, server name) -> the hub's server model.

        One paginated listing of active users (a page per `page_size` users)."""
        return {
            (user["name"], name): server
            for user in await self._all_users(page_size, state="active")
            for name, server in (user.get("servers") or {}).items()
        }

    async def list_users(self, page_size: int = 200) -> list[dict]:
        """Every hub user's model (``name``, ``created``, …)."""
        return await self._all_users(page_size)

    # ---- JupyterHub's shares (live access to a running server) ---------------------------------

    async def list_shares(self, user: str, server: str) -> list[dict]:
        out = await self.request("GET", f"/shares/{quote(user, safe='')}/{quote(server, safe='')}")
        return out.get("items", []) if isinstance(out, dict) else []

    async def grant_share(self, user: str, server: str, target: dict) -> dict:
        return await self.request(
            "POST", f"/shares/{quote(user, safe='')}/{quote(server, safe='')}", target
        )

    async def revoke_share(self, user: str, server: str, target: dict) -> None:
        await self.request(
            "PATCH", f"/shares/{quote(user, safe='')}/{quote(server, safe='')}", target
        )
