"""Rate limits: a token bucket per caller, so one busy script cannot crowd out everyone else.

Each token (or browser session) has its own bucket; calls without a credential, and calls whose
credential the hub refused, share a bucket per client address. A bucket holds up to `burst`
calls and refills at `rate` calls a second; a call finding it empty is refused with 429 and
``Retry-After`` (whole seconds until a call is allowed again). Buckets of callers who stopped
calling are dropped once full again, so memory follows the number of active callers.

Limits are per service process and kept in memory: a restart forgives everyone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from prometheus_client import Counter

REFUSED = Counter(
    "uws_rate_limited_total",
    "Calls refused with 429 because their caller was over its rate limit",
    ["kind"],
)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by caller. `rate` 0 turns the limit off."""

    #: drop idle buckets when there are more than this many
    PRUNE_AT = 10_000

    def __init__(self, rate: float, burst: int, kind: str, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.kind = kind
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Spend one call of `key`'s bucket: 0 if allowed, else seconds until one is."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.PRUNE_AT:
                self._prune(now)
            b = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        REFUSED.labels(self.kind).inc()
        return (1 - b.tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]

    def describe(self) -> str:
        return f"{self.rate:g} calls a second (bursts of {self.burst})"


def retry_after(wait: float) -> int:
    """The ``Retry-After`` header's whole seconds for a wait of `wait` seconds (at least 1)."""
    return max(1, math.ceil(wait))
