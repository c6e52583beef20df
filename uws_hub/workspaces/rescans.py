"""Workspaces kept true to disk: what jobs write shows in the file list, the size and the quota.

A job writes into its workspace as the owner, behind the service's back. `Rescans` finds, from
the database alone (so nothing is lost across a restart, whichever side settled the job):

- workspaces whose last job **ended after their last scan** (complete, failed, stopped, or
  killed outside): rescanned at once;
- workspaces with a **running job** whose last scan is older than `c.UWS.rescan_interval`:
  rescanned periodically, so a disk quota holds while the job runs.

At most `c.UWS.rescan_concurrency` scans run at once (each holds a filesystem thread; the
large-tree path leaves the byte count to ``du``), and never two at once for one workspace: a
request for a scan already running waits for that one. A scan that fails is retried after
the interval, not at every pass. The owner can ask for a scan (``PUT /workspaces/<id>/scan/``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Job, JobStatus, Workspace, utcnow
from ..errors import UWSError
from . import scanproc
from .manager import CHANGEABLE

if TYPE_CHECKING:
    from .manager import WorkspaceManager

log = logging.getLogger("uws_hub.rescans")

#: seconds between looks for workspaces to rescan (`run_pass`: a cheap query)
PASS_EVERY = 5.0


class Rescans:
    def __init__(
        self,
        workspaces: WorkspaceManager,
        db: sessionmaker[Session],
        *,
        interval: float,
        concurrency: int,
    ):
        self.workspaces = workspaces
        self.db = db
        self.interval = interval  # seconds between scans of a workspace with a running job
        self.concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._running: dict[int, asyncio.Task] = {}
        self._failed: dict[int, float] = {}  # workspace -> monotonic time of its next try
        self.scans = 0  # completed scans (tests, metrics)
        #: called with the owner's user id after each scan (the disk quota watch)
        self.after_scan: Callable[[int], Awaitable[None]] | None = None

    # ---- what is due ----------------------------------------------------------------------

    def due(self, now: dt.datetime | None = None) -> list[int]:
        """Workspaces to rescan now: a job ended after the last scan, or a job runs and the
        last scan is older than the interval (oldest scans first)."""
        return [ws_id for ws_id, _ in self.due_kinds(now)]

    def due_kinds(self, now: dt.datetime | None = None) -> list[tuple[int, bool]]:
        """`due`, each with whether a quick rescan will do (only the interval passed while a
        job runs: ``du`` first, the walk only when the size moved) or it needs a full one (a
        job ended since the last scan)."""
        now = now or utcnow()
        W, J = Workspace, Job
        never = W.datetime_scanned.is_(None)
        ended_since = exists().where(
            J.workspace_id == W.id,
            J.datetime_end.is_not(None),
            or_(never, J.datetime_end > W.datetime_scanned),
        )
        conditions = [ended_since]
        if self.interval > 0:
            stale = or_(never, W.datetime_scanned < now - dt.timedelta(seconds=self.interval))
            running = exists().where(J.workspace_id == W.id, J.status == JobStatus.RUNNING.value)
            conditions.append(and_(running, stale))
        q = (
            select(W.id, ended_since)
            .where(W.status.in_(CHANGEABLE), or_(*conditions))
            .order_by(W.datetime_scanned.is_not(None), W.datetime_scanned)
        )
        with self.db() as session:
            rows = list(session.execute(q))
        retry = time.monotonic()
        return [(i, not ended) for i, ended in rows if self._failed.get(i, 0) <= retry]

    # ---- running them -----------------------------------------------------------------------

    async def run_pass(self) -> int:
        """Start a scan of every due workspace not being scanned — the periodic ones spread
        over the interval — and return how many started.

        A workspace whose job ended is scanned at once. Periodic rescans (a job runs) start at
        most ``max(concurrency, due × PASS_EVERY / interval)`` per pass, oldest first: a
        hundred workspaces with running jobs are rescanned a few at a time across the
        interval, not all in the same few seconds (bench P10), and still each within it."""
        due = [(i, quick) for i, quick in self.due_kinds() if i not in self._running]
        periodic = sum(1 for _, quick in due if quick)
        budget = periodic
        if self.interval > 0:
            budget = max(self.concurrency, math.ceil(periodic * PASS_EVERY / self.interval))
        started = 0
        for ws_id, quick in due:
            if quick:
                if budget <= 0:
                    continue
                budget -= 1
            self._start(ws_id, quick=quick)
            started += 1
        return started

    async def scan_now(self, ws_id: int) -> None:
        """Scan workspace `ws_id` now (or wait for the scan already running); raises what the
        scan raised (a workspace that cannot be scanned: 400)."""
        task = self._running.get(ws_id) or self._start(ws_id, quiet=False)
        await asyncio.shield(task)

    def _start(self, ws_id: int, *, quiet: bool = True, quick: bool = False) -> asyncio.Task:
        task = asyncio.create_task(self._scan(ws_id, quiet=quiet, quick=quick))
        self._running[ws_id] = task
        task.add_done_callback(lambda _t: self._running.pop(ws_id, None))
        return task

    async def _scan(self, ws_id: int, *, quiet: bool, quick: bool = False) -> None:
        async with self._slots:
            try:
                with self.db() as session:
                    ws = session.get(Workspace, ws_id)
                    owner = ws.user_id if ws is not None else None
                    if ws is not None:
                        await self.workspaces.rescan(session, ws, quick=quick)
                self._failed.pop(ws_id, None)
                self.scans += 1
            except Exception as e:
                self._failed[ws_id] = time.monotonic() + max(self.interval, 60.0)
                if isinstance(e, UWSError):  # a known refusal: its message says it all
                    log.warning("workspace %s: rescan failed, retrying later: %s", ws_id, e.message)
                else:
                    log.exception("workspace %s: rescan failed, retrying later", ws_id)
                if not quiet:
                    raise
                return
        if owner is not None and self.after_scan is not None:
            try:
                await self.after_scan(owner)
            except Exception:  # the watch's own periodic pass catches up
                log.exception("disk quota check after the rescan of workspace %s failed", ws_id)

    async def stop(self) -> None:
        """Cancel the scans in flight and kill their child processes (the next start finds
        them due again)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        scanproc.kill_all()  # the threads waiting on them return at once
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
