"""/api/workspaces/<id>/start, /api/jobs, /api/jobs/<id>/stop, /api/jobs/<id>/events (SSE)."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from tornado.iostream import StreamClosedError

from ... import scopes
from ...db.models import Job, JobStatus, User, UserQuota
from ...errors import BadRequest, HubAPIError, UWSError
from ...jobs import sessions
from ...jobs.specs import StartSpec
from .. import serialize
from .base import BaseHandler, endpoint
from .workspaces import found_or_none

NOT_FOUND_LIST = "Job matching given parameters could not be found."
ENDED = (JobStatus.COMPLETE.value, JobStatus.FAILED.value)


class JobHandlerMixin:
    def url_domain(self) -> str:
        return (
            self.ctx.settings.public_url.rstrip("/")
            or f"{self.request.protocol}://{self.request.host}"
        )

    def job_json(self, job: Job) -> dict:
        out = serialize.job(job, self.url_domain())
        if job.status == JobStatus.RUNNING.value:  # what may still be added to its time
            current = out["job_details"]["current_job_details"]
            offer = sessions.offer(self.ctx.settings, job)
            current["extension"] = {k: v for k, v in offer.items() if not k.startswith("_")}
        return out


class StartHandler(JobHandlerMixin, BaseHandler):
    idempotent_routes = {"PUT": "PUT /workspaces/{id}/start/"}

    async def answer_from_effect(self, effect: list[dict]) -> bool:
        started = [e["target_id"] for e in effect if e["action"] == "job.start"]
        if not started:
            return False
        job = self.ctx.jobs.get(self.db, self.acting_user(scopes.JOBS), started[0])
        self.ok("Successful start.", {"job": self.job_json(job)})
        return True

    @endpoint
    async def put(self, ws_id: str) -> None:
        user = self.acting_user(scopes.JOBS)
        ws = self.ctx.workspaces.get_to_change(self.db, user, ws_id)
        job = await self.ctx.jobs.start(self.db, user, ws, StartSpec.parse(self.json_body()))
        self.ok("Successful start.", {"job": self.job_json(job)})


class JobsHandler(JobHandlerMixin, BaseHandler):
    @endpoint
    async def get(self, job_id: str | None = None) -> None:
        mgr = self.ctx.jobs
        if job_id is None and self.everyone(scopes.READ_JOBS):
            filters = self.query_filters("job_type", "status")
            rows = self.db.execute(mgr.list_all_query(filters, *self.paging())).all()
            out = [{**self.job_json(j), "username": name} for j, name in rows]
            self.ok("Successful." if out else NOT_FOUND_LIST, {"jobs": out})
            return
        user = self.acting_user(scopes.READ_JOBS)
        if job_id is not None:  # as UWS: an id that is not the caller's is an empty answer
            job = found_or_none(mgr.get, self.db, user, job_id)
            jobs = [job] if job else []
        else:
            filters = self.query_filters("workspace_id", "resource_job_id", "job_type", "status")
            jobs = list(self.db.scalars(mgr.list_query(user, filters)))
        out = [self.job_json(j) for j in jobs]
        self.ok("Successful." if out else NOT_FOUND_LIST, {"jobs": out})


class StopHandler(JobHandlerMixin, BaseHandler):
    @endpoint
    async def put(self, job_id: str) -> None:
        user = self.acting_user(scopes.JOBS)
        mgr = self.ctx.jobs
        job = await mgr.stop(self.db, user, mgr.get(self.db, user, job_id))
        self.ok("Job queued to stop.", {"job": self.job_json(job)})


class ExtendHandler(JobHandlerMixin, BaseHandler):
    @endpoint
    async def put(self, job_id: str) -> None:
        user = self.acting_user(scopes.EXTEND_JOBS)
        job = self.ctx.jobs.get(self.db, user, job_id)
        minutes, used = sessions.SessionManager.parse_request(self.json_body())
        job = await self.ctx.sessions.extend(self.db, user, job, minutes, used)
        out = self.job_json(job)
        left = sessions.left_text(out["job_details"]["current_job_details"].get("time_left") or 0)
        added = f"{minutes} minute{'s' if minutes != 1 else ''}"
        self.ok(f"Job extended by {added}; it now has {left} left.", {"job": out})


class EventsHandler(JobHandlerMixin, BaseHandler):
    """Server-Sent Events: the job's status and details whenever they change, until it ends.

    Authenticated like every other endpoint (UWS had an unauthenticated WebSocket). Each event is
    ``event: status`` with the job as JSON; a comment line keeps idle connections open.
    """

    poll_seconds = 0.5
    keepalive_seconds = 15.0
    max_streams_per_user = 16
    max_streams = 2000
    _open: ClassVar[dict[str, int]] = {}
    _closed = False
    _counted: str | None = None

    def on_connection_close(self) -> None:
        self._closed = True

    def on_finish(self) -> None:
        self._release()
        super().on_finish()  # closes the request's database session

    def _release(self) -> None:
        if self._counted is not None:
            left = self._open.get(self._counted, 1) - 1
            if left > 0:
                self._open[self._counted] = left
            else:
                self._open.pop(self._counted, None)
            self._counted = None

    @endpoint
    async def get(self, job_id: str) -> None:
        user = self.acting_user(scopes.READ_JOBS)
        job_id = self.ctx.jobs.get(self.db, user, job_id).id
        self.db.commit()  # hold no connection while streaming
        if self._open.get(user.name, 0) >= self.max_streams_per_user:
            raise UWSError(
                f"{user.name} already has {self.max_streams_per_user} open event streams; "
                "close some (each browser tab showing a job holds one) and try again.",
                status_code=429,
            )
        if sum(self._open.values()) >= self.max_streams:
            raise UWSError(
                "The service has too many open event streams; poll GET /jobs/<id>/ instead "
                "or try again in a minute.",
                status_code=429,
            )
        self._open[user.name] = self._open.get(user.name, 0) + 1
        self._counted = user.name
        try:
            await self._stream(job_id)
        finally:
            self._release()

    async def _stream(self, job_id: int) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        last, last_sent, told = None, time.monotonic(), (0, None)
        warned: list = [None, None]
        try:
            while not self._closed:
                with self.ctx.db() as session:
                    job = session.get(Job, job_id)
                    out = self.job_json(job)
                    payload = serialize.dumps(out)
                    ended = job.status in ENDED
                    told, quota = self._quota_event(session, job, told)
                current = out["job_details"]["current_job_details"]
                warning = [current.get("time_warning"), current.get("idle_warning")]
                news = [w for w, was in zip(warning, warned, strict=True) if w and w != was]
                warned = warning
                if quota is not None:
                    self.write(f"event: quota\ndata: {quota}\n\n")
                for w in news:
                    self.write(f"event: warning\ndata: {serialize.dumps(w)}\n\n")
                if payload != last:
                    self.write(f"event: status\ndata: {payload}\n\n")
                if quota is not None or news or payload != last:
                    await self.flush()
                    last, last_sent = payload, time.monotonic()
                elif time.monotonic() - last_sent > self.keepalive_seconds:
                    self.write(": keepalive\n\n")
                    await self.flush()
                    last_sent = time.monotonic()
                if ended:
                    break
                await asyncio.sleep(self.poll_seconds)
        except StreamClosedError:
            return
        if not self._closed:
            self.finish()

    def _quota_event(self, session, job: Job, told: tuple) -> tuple[tuple, str | None]:
        """The owner's disk level as the quota watch recorded it, and a ``quota`` event's data
        when it changed since `told` (none for a person who has always been under 90 %)."""
        row = session.get(UserQuota, job.user_id)
        now = (row.disk_level, row.disk_level_since) if row is not None else (0, None)
        if now == told or (told == (0, None) and now[0] == 0):  # nothing new to say
            return now, None
        disk = self.ctx.quotas.describe(session, session.get(User, job.user_id))["disk"]
        return now, serialize.dumps(disk)


class JobSharesHandler(JobHandlerMixin, BaseHandler):
    """Live access to a running job for other people, through JupyterHub's own shares.

    The collaborator opens the same JupyterLab, which runs as the owner's account: what they do
    there, they do as the owner. To give someone their own files instead, share by copy."""

    def _target(self) -> dict:
        body = self.json_body()
        if not isinstance(body, dict) or len([k for k in ("user", "group") if body.get(k)]) != 1:
            raise BadRequest('Send {"user": "<name>"} or {"group": "<name>"}.')
        key = "user" if body.get("user") else "group"
        if not isinstance(body[key], str) or len(body[key]) > 255:
            raise BadRequest(f"{key} must be a name.")
        return {key: body[key]}

    def _live_job(self, job_id: str, scope: str):
        user = self.acting_user(scope)
        job = self.ctx.jobs.get(self.db, user, job_id)
        if job.status not in ("pending", "running"):
            raise BadRequest(
                f"Job {job.id} is {job.status}; only a running job can be shared live."
            )
        return user, job

    @staticmethod
    def _model(share: dict) -> dict:
        return {
            "user": (share.get("user") or {}).get("name"),
            "group": (share.get("group") or {}).get("name"),
            "scopes": share.get("scopes", []),
            "created_at": share.get("created_at"),
        }

    @endpoint
    async def get(self, job_id: str) -> None:
        user, job = self._live_job(job_id, scopes.READ_JOBS)
        self.db.commit()
        try:
            items = await self.ctx.hub.list_shares(user.name, job.server_name)
        except HubAPIError as e:
            raise UWSError(f"The hub did not list the shares: {e.message}", status_code=502) from e
        self.ok("Successful.", {"shares": [self._model(s) for s in items]})

    @endpoint
    async def post(self, job_id: str) -> None:
        user, job = self._live_job(job_id, scopes.JOBS)
        target = self._target()
        if target.get("user") == user.name:
            raise BadRequest("You already have access to your own job.")
        try:
            share = await self.ctx.jobs.grant_live_share(self.db, user, job, target)
        except HubAPIError as e:
            if e.status in (400, 404):
                raise BadRequest(f"Cannot share job {job.id}: {e.message}") from e
            raise UWSError(
                f"The hub did not share job {job.id}: {e.message}", status_code=502
            ) from e
        who = target.get("user") or f"group {target.get('group')}"
        self.ok(f"Job {job.id} shared with {who}.", {"share": self._model(share)})

    @endpoint
    async def delete(self, job_id: str) -> None:
        user, job = self._live_job(job_id, scopes.JOBS)
        target = self._target()
        try:
            await self.ctx.jobs.revoke_live_share(self.db, user, job, target)
        except HubAPIError as e:
            raise UWSError(f"The hub did not revoke the share: {e.message}", status_code=502) from e
        who = target.get("user") or f"group {target.get('group')}"
        self.ok(f"{who} no longer has access to job {job.id}.")
