"""Browser entry points: the service home (hub OAuth login) and the OAuth callback."""

from __future__ import annotations

import html

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import web

from ... import __version__
from ...errors import Unauthorized
from .base import BaseHandler


class PageHandler(BaseHandler):
    """A page: not logged in means a redirect to the hub's OAuth login, not a 401."""

    async def before(self) -> None:
        try:
            await self.authenticate()
        except Unauthorized:
            if self.request.method not in ("GET", "HEAD"):
                raise
            self._deferred_redirect = self.get_login_url()

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "message", None) or getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            f"<!doctype html><title>uws_hub: {status_code}</title><h1>{status_code}</h1><p>{html.escape(str(message))}</p>"
        )


class HomeHandler(PageHandler):
    async def get(self) -> None:
        name = html.escape(self._hub_user["name"])
        prefix = self.ctx.prefix
        self.xsrf_token  # noqa: B018 - sets the _xsrf cookie pages use for API calls
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>uws_hub</title></head>
<body><main><h1>uws_hub {__version__}</h1>
<p>Signed in as <strong id="username">{name}</strong>.</p>
<ul>
<li><a href="{prefix}api/workspaces/">Your workspaces (JSON)</a></li>
<li><a href="{prefix}api/openapi.yaml">API description (OpenAPI 3)</a></li>
<li><a href="{self.ctx.hub_prefix}token">Create an API token for scripts</a></li>
</ul></main></body></html>"""
        )


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    @property
    def hub_auth(self):
        return self.settings["uws"].hub_auth


def routes(prefix: str) -> list:
    return [
        (rf"{prefix}?", HomeHandler),
        (rf"{prefix}oauth_callback", OAuthCallbackHandler),
    ]


__all__ = ["routes", "web"]
