"""Public resources: /api/job_types, /api/parameters, /api/status, /api/openapi.{json,yaml}."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ... import scopes
from ..._version import __version__
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
    auth_required = False

    @endpoint
    async def get(self) -> None:
        database, storage, hub = await asyncio.gather(
            self.ctx.check_database(), self.ctx.check_storage(), self.ctx.check_hub()
        )
        deps = {"database": database, "storage": storage, "hub": hub}
        down = [name for name, d in deps.items() if not d["connected"]]
        self.write_json(
            {
                "success": not down,
                "message": f"Not connected: {', '.join(down)}."
                if down
                else "All dependencies connected.",
                "version": __version__,
                "build": self.ctx.build,
                "dependencies": deps,
            }
        )


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
