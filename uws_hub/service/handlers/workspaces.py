"""/api/workspaces: list, get, create, update, upload, delete."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib

from tornado import web

from ... import scopes
from ...db.models import Workspace
from ...errors import BadRequest, NotFound, PayloadTooLarge, UWSError
from ...ids import parse_id
from ...workspaces.specs import WorkspaceSpec
from .. import serialize
from .base import BaseHandler, endpoint

NOT_FOUND_LIST = "Workspace matching given parameters could not be found."


def listed(ws, job) -> dict:
    """A workspace as /workspaces/ answers show it: with its most recent job (null if none)."""
    return {**serialize.workspace(ws), "last_job": serialize.last_job(job)}


def with_last_job(handler: BaseHandler, ws) -> dict:
    """`listed` for one workspace (the answers of create, update and upload)."""
    return listed(ws, handler.ctx.workspaces.last_jobs(handler.db, ws_ids=[ws.id]).get(ws.id))


def found_or_none(get, session, user, raw_id: str):
    """`get(session, user, raw_id)`, or None when the id names nothing of the caller's: UWS
    answers a GET of such an id 200 with an empty list (clients poll ids they deleted). A path
    segment that is not a whole number ≥ 1 (ids start at 1) is not an id at all: still 404."""
    number = parse_id(raw_id, "id")
    if number is None or number < 1:
        return get(session, user, raw_id)  # raises the resource's own 404
    try:
        return get(session, user, raw_id)
    except NotFound:
        return None


class WorkspacesHandler(BaseHandler):
    idempotent_routes = {"POST": "POST /workspaces/"}
    #: the body counts without its Globus groups token: a retry with a refreshed token is the
    #: same request (and no hash of a credential is kept)
    hash_raw_body = False

    def content_digest(self) -> str:
        raw = b"".join(self._chunks or [])
        try:
            body = json.loads(raw)
        except ValueError:
            return hashlib.sha256(raw).hexdigest()
        if isinstance(body, dict):
            body.pop("globus_groups_token", None)
            if isinstance(body.get("workspace_details"), dict):
                body["workspace_details"].pop("globus_groups_token", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @classmethod
    def allowed_methods(cls, path_args: list[str]) -> list[str]:
        return ["GET", "PUT", "DELETE", "OPTIONS"] if path_args else ["GET", "POST", "OPTIONS"]

    @endpoint
    async def get(self, ws_id: str | None = None) -> None:
        mgr = self.ctx.workspaces
        if ws_id is None and self.everyone(scopes.READ_WORKSPACES):
            filters = self.query_filters("name", "description", "status")
            rows = self.db.execute(mgr.list_all_query(filters, *self.paging())).all()
            last = mgr.last_jobs(self.db, ws_ids=[ws.id for ws, _ in rows])
            out = [{**listed(ws, last.get(ws.id)), "username": name} for ws, name in rows]
            self.ok("Successful." if out else NOT_FOUND_LIST, {"workspaces": out})
            return
        user = self.acting_user(scopes.READ_WORKSPACES)
        if ws_id is not None:
            # one workspace: also from the cache, under the same listing version (one query)
            key, version = (user.id, "one", ws_id), user.workspaces_version
            body = self.ctx.listings.get(key, version)
            if body is None:
                # as UWS: an id that names none of the caller's workspaces is an empty answer
                ws = found_or_none(mgr.get, self.db, user, ws_id)
                body = serialize.dumps(
                    {
                        "success": True,
                        "message": "Successful." if ws else NOT_FOUND_LIST,
                        "data": {"workspaces": [with_last_job(self, ws)] if ws else []},
                    }
                ).encode()
                self.ctx.listings.put(key, version, body)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(body)
            return
        filters = self.query_filters("name", "description", "status")
        # the listing is served from a cache keyed by the user's listing version (one query)
        key, version = (user.id, tuple(sorted(filters.items()))), user.workspaces_version
        body = self.ctx.listings.get(key, version)
        if body is None:
            last = mgr.last_jobs(self.db, user=user)
            workspaces = [
                listed(ws, last.get(ws.id)) for ws in self.db.scalars(mgr.list_query(user, filters))
            ]
            message = "Successful." if workspaces else NOT_FOUND_LIST
            body = serialize.dumps(
                {"success": True, "message": message, "data": {"workspaces": workspaces}}
            ).encode()
            self.ctx.listings.put(key, version, body)
        self._etag = f'W/"ws-{user.id}-{version}-{zlib.crc32(repr(key[1]).encode()):x}"'
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(body)

    def workspace_spec(self, *, creating: bool) -> WorkspaceSpec:
        """The request body as a checked create or update (a 400 says what is wrong)."""
        return WorkspaceSpec.parse(
            self.json_body(),
            creating=creating,
            job_types=self.ctx.settings.job_type_map,
            symlink_roots=self.ctx.settings.symlink_roots,
        )

    def compute_etag(self) -> str | None:
        # a version-based tag: no hashing of large bodies on every request
        return getattr(self, "_etag", None)

    @endpoint
    async def post(self, ws_id: str | None = None) -> None:
        if ws_id is not None:
            raise web.HTTPError(
                405, "POST creates a workspace: send it to /workspaces/ without an id."
            )
        user = self.acting_user(scopes.WORKSPACES)
        ws = await self.ctx.workspaces.create(self.db, user, self.workspace_spec(creating=True))
        self.ok("Successful.", {"workspace": with_last_job(self, ws)})

    async def answer_from_effect(self, effect: list[dict]) -> bool:
        created = [e["target_id"] for e in effect if e["action"] == "workspace.create"]
        if not created:
            return False
        user = self.acting_user(scopes.WORKSPACES)
        await self.ctx.workspaces.drive(int(created[0]))  # finish it, as the first try would
        ws = self.ctx.workspaces.get(self.db, user, created[0])
        self.db.refresh(ws)
        if ws.status == "error":
            raise UWSError(
                f"Workspace {ws.id} could not be created: {ws.status_message}", status_code=500
            )
        self.ok("Successful.", {"workspace": with_last_job(self, ws)})
        return True

    def _one(self, ws_id: str | None, without_id: str) -> Workspace:
        """The caller's workspace `ws_id` to change (405 saying `without_id` if no id)."""
        if ws_id is None:
            raise web.HTTPError(405, without_id)
        user = self.acting_user(scopes.WORKSPACES)
        return self.ctx.workspaces.get_to_change(self.db, user, ws_id)

    @endpoint
    async def put(self, ws_id: str | None = None) -> None:
        ws = self._one(ws_id, "PUT updates a workspace: send it to /workspaces/<id>/.")
        ws = await self.ctx.workspaces.update(self.db, ws, self.workspace_spec(creating=False))
        self.ok("Update successful.", {"workspace": with_last_job(self, ws)})

    @endpoint
    async def delete(self, ws_id: str | None = None) -> None:
        ws = self._one(ws_id, "DELETE removes one workspace: send it to /workspaces/<id>/.")
        self.ctx.workspaces.request_delete(self.db, ws)
        self.ok(f"Workspace {ws.id} queued for deletion.")


class UploadHandler(BaseHandler):
    """Multipart upload, streamed to disk as it arrives; every file of every field is written."""

    receiver = None
    _failure: UWSError | None = None
    _committing = False

    @classmethod
    def allowed_methods(cls, path_args: list[str]) -> list[str]:
        return ["PUT", "OPTIONS"]

    async def before(self) -> None:
        if self.request.method == "OPTIONS":
            return
        if self.request.method != "PUT":
            raise web.HTTPError(405, "Upload with PUT /workspaces/<id>/upload/.")
        await self.authenticate()
        await self.check_named_user()
        user = self.acting_user(scopes.WORKSPACES)
        mgr = self.ctx.workspaces
        self.workspace = mgr.get_to_change(self.db, user, self.path_args[0])
        limit = self.ctx.settings.max_upload_size
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            self.request.connection.set_max_body_size(int(length))  # drained, then answered
            raise PayloadTooLarge(
                f"Upload of {int(length)} bytes exceeds the limit of {limit} bytes."
            )
        self.request.connection.set_max_body_size(limit)
        ctype = self.request.headers.get("Content-Type", "")
        expected = int(length) if length.isdigit() else 0
        self.receiver = await mgr.start_upload(self.db, self.workspace, ctype, expected)

    body_time_bounded = False  # large files on slow lines: only a stalled body times out
    idempotent_routes = {"PUT": "PUT /workspaces/{id}/upload/"}
    hash_raw_body = False  # each try has its own multipart boundary

    def content_digest(self) -> str:
        return self.receiver.digest.hexdigest() if self.receiver is not None else ""

    async def receive(self, chunk: bytes) -> None:
        if self.receiver is None or self._failure is not None or self._deferred_error is not None:
            return
        try:
            await self.ctx.workspaces.feed_upload(self.receiver, chunk)
        except UWSError as e:
            self._failure = e

    @endpoint
    async def put(self, ws_id: str) -> None:
        if self._failure is not None:
            if self.receiver is not None:
                receiver, self.receiver = self.receiver, None
                await self.ctx.workspaces.abort_upload(receiver)
            raise self._failure
        if self.receiver is None:
            raise BadRequest("No files found in request.")
        self._committing = True
        names = await self.ctx.workspaces.finish_upload(self.db, self.workspace, self.receiver)
        self.ok(
            "Successful upload.", {"files": names, "workspace": with_last_job(self, self.workspace)}
        )

    def on_connection_close(self) -> None:
        # the client went away mid-upload: drop what was staged (unless the commit is running,
        # which cleans up itself)
        self._drop_upload()
        super().on_connection_close()

    def on_finish(self) -> None:
        if not self._committing:  # answered before the body was in (408, refusals)
            self._drop_upload()
        super().on_finish()

    def _drop_upload(self) -> None:
        if self.receiver is not None and not self._committing:
            receiver, self.receiver = self.receiver, None
            asyncio.ensure_future(self.ctx.workspaces.abort_upload(receiver))


class ScanHandler(BaseHandler):
    """``PUT /workspaces/<id>/scan/``: the owner asks for a rescan now (what a job wrote shows
    in the file list, the size and the quota); a scan already running is waited for."""

    @endpoint
    async def put(self, ws_id: str) -> None:
        user = self.acting_user(scopes.WORKSPACES)
        ws = self.ctx.workspaces.get_to_change(self.db, user, ws_id)
        self.db.commit()  # no connection held while the scan runs
        await self.ctx.rescans.scan_now(ws.id)
        self.db.refresh(ws)
        self.ok(f"Workspace {ws.id} scanned.", {"workspace": with_last_job(self, ws)})
