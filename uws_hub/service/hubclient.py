"""The uws service's client for the hub's REST API (its own token; nothing else)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class HubAPIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"hub API {status}: {message}")
        self.status = status
        self.message = message


class HubClient:
    def __init__(self, api_url: str | None = None, token: str | None = None, timeout: float = 10.0):
        self.api_url = (
            api_url or os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
        ).rstrip("/")
        self.token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        self.timeout = timeout
        self.http = AsyncHTTPClient()

    async def request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        if params:
            url += "?" + "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
        req = HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            allow_nonstandard_methods=True,
        )
        try:
            resp = await self.http.fetch(req)
        except HTTPClientError as e:
            msg = ""
            if e.response is not None and e.response.body:
                try:
                    msg = json.loads(e.response.body).get("message", "")
                except ValueError:
                    msg = e.response.body[:200].decode("utf-8", "replace")
            raise HubAPIError(e.code, msg or str(e)) from None
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
