"""The reconciler: finds rows in durable transitional states and drives them to the end.

Level-triggered: each pass asks the database what is unfinished (``initializing``,
``deleting``), so a crash or restart loses nothing — the next pass picks the work up. A kick
(after a request records new work) runs a pass soon instead of waiting for the interval.
"""

from __future__ import annotations

import asyncio
import logging

from ..workspaces.manager import WorkspaceManager

log = logging.getLogger("uws_hub.reconciler")


class Reconciler:
    def __init__(self, workspaces: WorkspaceManager, interval: float):
        self.workspaces = workspaces
        self.interval = interval
        self._kicked = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._running: set[int] = set()
        self.passes = 0

    def start(self) -> None:
        self.workspaces.on_work = lambda _ws_id: self.kick()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def kick(self) -> None:
        self._kicked.set()

    async def _loop(self) -> None:
        while True:
            self._kicked.clear()
            try:
                await self.run_pass()
            except Exception:
                log.exception("reconciler pass failed; retrying in %.0fs", self.interval)
            try:
                await asyncio.wait_for(self._kicked.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def run_pass(self) -> int:
        """One pass over unfinished work; returns how many items were driven."""
        ids = [i for i in self.workspaces.pending_work() if i not in self._running]
        if ids:
            log.info("reconciler: resuming %d workspace(s): %s", len(ids), ids)
        await asyncio.gather(*(self._drive(i) for i in ids))
        self.passes += 1
        return len(ids)

    async def _drive(self, ws_id: int) -> None:
        self._running.add(ws_id)
        try:
            await self.workspaces.drive(ws_id)
        except Exception:
            log.exception("reconciler: workspace %s failed; will retry", ws_id)
        finally:
            self._running.discard(ws_id)
