"""The reconciler: finds rows in durable transitional states and drives them to the end.

Level-triggered: each pass asks the database what is unfinished (``initializing``,
``deleting``), so a crash or restart loses nothing — the next pass picks the work up. A kick
(after a request records new work) runs a pass soon instead of waiting for the interval.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..db.models import utcnow
from ..diskwatch import DiskWatch
from ..idempotency import IdempotencyStore
from ..jobs.manager import JobManager
from ..jobs.sessions import SessionWatch
from ..periodic import Periodic
from ..users.deletions import UserDeletions
from ..workspaces.manager import WorkspaceManager
from ..workspaces.rescans import PASS_EVERY, Rescans
from ..workspaces.work import PendingWork

log = logging.getLogger("uws_hub.reconciler")

#: seconds between prunings of the audit log (when c.UWS.audit_retention_days is set)
PRUNE_INTERVAL = 3600.0


class Reconciler:
    def __init__(
        self,
        workspaces: WorkspaceManager,
        work: PendingWork,
        interval: float,
        concurrency: int = 4,
        *,
        jobs: JobManager | None = None,
        job_interval: float = 5.0,
        audit_retention_days: int = 0,
        db: sessionmaker[Session] | None = None,
        idempotency: IdempotencyStore | None = None,
        rescans: Rescans | None = None,
        diskwatch: tuple[DiskWatch, float] | None = None,
        user_deletions: tuple[UserDeletions, float] | None = None,
        session_watch: tuple[SessionWatch, float] | None = None,
    ):
        self.workspaces = workspaces
        self.jobs = jobs
        self.job_interval = job_interval
        self.audit_retention_days = audit_retention_days
        self.db = db or workspaces.db
        self.idempotency = idempotency
        self.rescans = rescans
        self.diskwatch = diskwatch  # (the watch, seconds between its passes)
        self.user_deletions = user_deletions  # (people deleted from the hub, seconds between)
        self.session_watch = session_watch  # (time-limit warnings, seconds between passes)
        self.interval = interval
        self.work = work  # requests signal recorded work here: a pass runs at once
        self._loops: list[Periodic] = []
        self._running: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        # at most this many items at once (each holds a thread and a database connection)
        self._slots = asyncio.Semaphore(concurrency)
        self.passes = 0

    def start(self) -> None:
        self._loops = [Periodic(self._pass, self.interval, "reconciler pass", wake=self.work)]
        if self.jobs is not None:
            self._loops.append(Periodic(self.jobs.sync, self.job_interval, "job sync"))
        if self.audit_retention_days > 0 or self.idempotency is not None:
            self._loops.append(Periodic(self._prune, PRUNE_INTERVAL, "pruning"))
        if self.rescans is not None:
            self._loops.append(Periodic(self.rescans.run_pass, PASS_EVERY, "rescans"))
        if self.diskwatch is not None:
            watch, every = self.diskwatch
            self._loops.append(Periodic(watch.run_pass, every, "disk quota watch"))
        if self.user_deletions is not None:
            deletions, every = self.user_deletions
            self._loops.append(Periodic(deletions.run_pass, every, "user sync"))
        if self.session_watch is not None:
            watch, every = self.session_watch
            self._loops.append(Periodic(watch.run_pass, every, "session watch"))
        for loop in self._loops:
            loop.start()

    def prune_audit(self) -> int:
        """Delete audit events older than the retention (blocking; see audit.prune)."""
        before = utcnow() - dt.timedelta(days=self.audit_retention_days)
        with self.db() as session:
            deleted = audit.prune(session, before)
        if deleted:
            log.info(
                "audit log: %d event(s) older than %d days deleted",
                deleted,
                self.audit_retention_days,
            )
        return deleted

    async def _prune(self) -> None:
        """Keep the audit log within c.UWS.audit_retention_days and drop idempotency keys past
        their window: at start, then hourly."""
        if self.audit_retention_days > 0:
            try:
                await asyncio.to_thread(self.prune_audit)
            except Exception:
                log.exception("pruning the audit log failed; retrying in an hour")
        if self.idempotency is not None:
            await asyncio.to_thread(self.idempotency.prune)

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()
        if self.rescans is not None:
            await self.rescans.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass

    def kick(self) -> None:
        self.work.recorded()

    async def _pass(self) -> None:
        await self.run_pass()

    async def run_pass(self) -> int:
        """Start driving every unfinished item not already in progress; returns how many.

        Items run as their own tasks, so one slow or stuck item never holds up the next pass.
        """
        ids = [i for i in self.workspaces.pending_work() if i not in self._running]
        if ids:
            log.info("reconciler: resuming %d workspace(s): %s", len(ids), ids)
        for ws_id in ids:
            self._running.add(ws_id)
            task = asyncio.create_task(self._drive(ws_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.passes += 1
        return len(ids)

    async def _drive(self, ws_id: int) -> None:
        try:
            async with self._slots:
                await self.workspaces.drive(ws_id)
        except Exception:
            log.exception("reconciler: workspace %s failed; will retry", ws_id)
        finally:
            self._running.discard(ws_id)
