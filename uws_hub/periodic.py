"""Background loops of the service: one step now, then every interval (sooner when woken),
until stopped. Used by the reconciler, the job sync, the pruning, the mail outbox and the
Globus token renewal, so each of them is only its step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("uws_hub.periodic")


class Wakeup:
    """Wakes a `Periodic` before its interval is over (e.g. new work was recorded)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """Until woken or `timeout` seconds pass; whether it was woken."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


@dataclass
class Periodic:
    """Runs `step` at once, then every `interval` seconds (or when `wake` is set), as an
    asyncio task. A failing step is logged with its traceback and tried again next round: the
    loop never dies of it. `what` names the step in the log."""

    step: Callable[[], Awaitable[Any]]
    interval: float
    what: str
    wake: Wakeup | None = None
    _task: asyncio.Task | None = field(default=None, init=False, repr=False)

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            if self.wake is not None:
                self.wake.clear()  # what is recorded from here on is seen by this step
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in %gs", self.what, self.interval)
            if self.wake is not None:
                await self.wake.wait(self.interval)
            else:
                await asyncio.sleep(self.interval)
