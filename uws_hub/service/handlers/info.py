"""Public resources: /api/job_types, /api/parameters, /api/status, /api/openapi.{json,yaml}."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ... import scopes
from ..._version import __version__
from .. import health
from ..health import HealthChecks
from .base import BaseHandler, endpoint


class _CatalogHandler(BaseHandler):
    """What this hub offers, public: ``{"<key>": items}``."""

    auth_required = False
    key = ""

    def items(self):
        raise NotImplementedError

    @endpoint
    async def get(self) -> None:
        self.ok("Successful.", {self.key: self.items()})


class JobTypesHandler(_CatalogHandler):
    key = "job_types"

    def items(self) -> dict:
        return {jid: jt.as_dict() for jid, jt in self.ctx.settings.job_type_map.items()}


class ResourcesHandler(_CatalogHandler):
    """Where jobs can run (uws_hub extension): id -> {id, kind, name, description, limits}."""

    key = "resources"

    def items(self) -> dict:
        return {rid: r.as_dict() for rid, r in self.ctx.settings.resource_map.items()}


class ParametersHandler(_CatalogHandler):
    key = "parameters"

    def items(self) -> list:
        return [p.as_dict() for p in self.ctx.settings.parameter_list]

    @endpoint
    async def get(self) -> None:
        params = self.items()
        # UWS answered {"parameters": [...]}; the envelope carries the same list under data
        self.ok("Successful.", {"parameters": params}, parameters=params)


class StatusHandler(BaseHandler):
    """The health of the service and each part it depends on, in UWS's shape (see
    `uws_hub.service.health`). Anyone may ask; only operators (a token with
    custom:uws:read:metrics or custom:uws:read:audit, both in the uws-admin role) get the
    messages, which name hosts, paths and errors; everyone else gets whether each part is
    connected."""

    auth_required = False

    @endpoint
    async def get(self) -> None:
        operator = await self._operator()
        report = await HealthChecks.of(self.ctx).report()
        deps = report["dependencies"]
        down = health.not_connected(deps)
        self.write_json(
            {
                "success": not down,
                "message": f"Not connected: {', '.join(down)}."
                if down
                else "All dependencies connected.",
                "version": __version__,
                "build": self.ctx.build,
                "checked_at": report["checked_at"],
                "dependencies": deps if operator else health.redacted(deps),
            }
        )

    async def _operator(self) -> bool:
        """Whether the caller is an operator; a caller without a credential, or whose
        credential the hub refuses (or cannot check now), is answered as anyone."""
        if not self._credential():
            return False
        try:
            await self.authenticate()
        except Exception:  # noqa: BLE001 - not an operator, then: the report is public
            return False
        return self.has_scope(scopes.READ_METRICS) or self.has_scope(scopes.READ_AUDIT)


class OpenAPIHandler(BaseHandler):
    auth_required = False

    @endpoint
    async def get(self, fmt: str) -> None:
        if fmt == "yaml":
            self.set_header("Content-Type", "application/yaml; charset=UTF-8")
            self.finish(self.ctx.openapi_yaml)
        else:
            self.write_json(self.ctx.openapi)


class MetricsHandler(BaseHandler):
    """Prometheus metrics (needs custom:uws:read:metrics, held by the uws-admin role); see
    docs/metrics.md. Generated in a thread: the database gauges query at scrape time."""

    @endpoint
    async def get(self) -> None:
        self.require_scope(scopes.READ_METRICS)
        body = await asyncio.to_thread(generate_latest)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)
