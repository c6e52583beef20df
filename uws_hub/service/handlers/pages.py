"""The web pages: workspaces, one workspace (files, jobs, sharing), invitations, admin.

Pages are Jinja2 templates that extend JupyterHub's own ``page.html`` (through the package's
navbar override), so the hub's navbar, fonts and colours are theirs; the hub serves its
stylesheets and scripts, the service serves its own (``static/``) — nothing comes from a CDN.
A page is a shell: its script reads and changes everything through the REST API with the
browser's hub login (cookie + XSRF header), so a page can do exactly what the API allows and
the API's checks are the only checks.
"""

from __future__ import annotations

import html
import json
import os

import jinja2
from jupyterhub._data import DATA_FILES_PATH
from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import web

from ... import scopes
from ..._version import __version__
from ...errors import Forbidden, Unauthorized, UWSError
from .base import BaseHandler, endpoint

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATES = os.path.join(HERE, "templates")
STATIC = os.path.join(HERE, "static")
HUB_TEMPLATES = os.path.join(DATA_FILES_PATH, "templates")

_env: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    """Our templates first (``page.html`` is the navbar override), the hub's as ``templates/``."""
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader(TEMPLATES),
                    jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader(HUB_TEMPLATES)}),
                ]
            ),
            autoescape=True,
        )
    return _env


class _HubUser:
    """What the hub's page.html reads from ``user``."""

    def __init__(self, name: str):
        self.name = name
        self.json_escaped_name = json.dumps(name)[1:-1]


class PageHandler(BaseHandler):
    """A page: not logged in means a redirect to the hub's OAuth login, not a 401."""

    page_scope: str | None = None

    async def before(self) -> None:
        try:
            await self.authenticate()
        except Unauthorized:
            if self.request.method not in ("GET", "HEAD"):
                raise
            self._deferred_redirect = self.get_login_url()
            return
        if self.page_scope and not self.has_scope(self.page_scope):
            raise Forbidden("This page is for administrators of the workspace service.")

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, UWSError):
            status_code = exc.status_code
        message = getattr(exc, "message", None) or getattr(exc, "log_message", None)
        if status_code >= 500 and not isinstance(exc, UWSError):
            message = "Internal error; it has been logged. Please retry, and tell an administrator if it persists."
        self.clear_header("Content-Type")
        self.set_status(status_code)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        try:
            self.finish(
                self.render_page(
                    "uws/error.html",
                    status_code=status_code,
                    message=message,
                    title=f"Error {status_code}",
                    page_name="error",
                )
            )
        except Exception:  # never fail while reporting a failure
            self.finish(
                f"<!doctype html><title>uws_hub: {status_code}</title><h1>{status_code}</h1>"
                f"<p>{html.escape(str(message))}</p>"
            )

    def render_page(self, template: str, **ns) -> str:
        ctx = self.ctx
        model = getattr(self, "_hub_user", None) or {}
        hub_prefix = ctx.hub_prefix
        public_base = hub_prefix[: -len("hub/")] if hub_prefix.endswith("hub/") else "/"
        owned = set(model.get("scopes", []))
        is_admin = bool(model) and self.has_scope(scopes.ADMIN_QUOTAS)
        page = {
            "prefix": ctx.prefix,
            "api": ctx.prefix + "api/",
            "hub_prefix": hub_prefix,
            "public_base": public_base,
            "user": model.get("name"),
            "is_admin": is_admin,
            "site_name": ctx.settings.site_name,
        }
        values = {
            # what JupyterHub's page.html expects
            "base_url": hub_prefix,
            "prefix": public_base,
            "user": _HubUser(model["name"]) if model.get("name") else None,
            "admin_access": bool(model.get("admin")),
            "parsed_scopes": owned,
            "services": [],
            "no_spawner_check": True,
            "logout_url": hub_prefix + "logout",
            "login_url": hub_prefix + "login",
            "logo_url": public_base,
            "xsrf_token": self.xsrf_token.decode("ascii"),
            "version_hash": "",
            "announcement": None,
            "static_url": lambda path, include_version=True: f"{hub_prefix}static/{path}",
            "uws_service_name": ctx.settings.service_name,
            # ours
            "uws_static": lambda path: f"{ctx.prefix}static/{path}?v={ctx.build}",
            "uws_page": page,
            "uws_page_json": json.dumps(page),
            "is_uws_admin": is_admin,
            "version": __version__,
            **ns,
        }
        return environment().get_template(template).render(**values)

    def page(self, name: str, title: str, **ns) -> None:
        """Render ``templates/uws/<name>.html``, whose script is ``static/pages/<name>.js``."""
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.render_page(f"uws/{name}.html", page_name=name, title=title, **ns))

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # pages with one-click actions are never shown inside another site's frame
        self.set_header("Content-Security-Policy", "frame-ancestors 'self'")
        self.set_header("X-Frame-Options", "SAMEORIGIN")


class HomeHandler(PageHandler):
    """The workspaces list: the service's home and where people land after logging in."""

    @endpoint
    async def get(self) -> None:
        self.page("workspaces", "Workspaces")


class WorkspacePageHandler(PageHandler):
    @endpoint
    async def get(self, ws_id: str) -> None:
        if not ws_id.isdigit():
            raise web.HTTPError(404, "No such workspace.")
        self.page("workspace", "Workspace", workspace_id=int(ws_id))


class SharesPageHandler(PageHandler):
    @endpoint
    async def get(self) -> None:
        self.page("shares", "Invitations")


class AdminPageHandler(PageHandler):
    page_scope = scopes.ADMIN_QUOTAS

    @endpoint
    async def get(self) -> None:
        self.page("admin", "Workspace admin")


class StaticHandler(web.StaticFileHandler):
    """The pages' own scripts and styles (long-cached: URLs carry the build id)."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.get_query_argument("v", None):
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    @property
    def hub_auth(self):
        return self.settings["uws"].hub_auth


__all__ = ["web"]
