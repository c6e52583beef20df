"""The signal that durable work was recorded (a workspace to initialize, copy or delete).

Requests record the work in the database and call `PendingWork.recorded`; the service's
reconciler is woken by it, so it runs a pass at once instead of at its next interval. The
signal only saves time: the reconciler's passes read what is unfinished from the database, so
nothing is lost if a signal is missed (or the process restarts)."""

from __future__ import annotations

from ..periodic import Wakeup


class PendingWork(Wakeup):
    def recorded(self, ws_id: int | None = None) -> None:
        """Work for workspace `ws_id` is in the database: wake whoever drives it."""
        self.set()
