"""Rate limits: a token bucket per caller; a refused call learns how long to wait, nobody else is
affected, and idle callers cost no memory."""

from __future__ import annotations

import pytest

from uws_hub.service.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_burst_then_the_rate(clock):
    limiter = RateLimiter(rate=2, burst=3, kind="token", clock=clock)
    assert [limiter.take("alice") for _ in range(3)] == [0, 0, 0]  # the burst
    assert limiter.take("alice") == pytest.approx(0.5)  # one call every half second
    clock.now += 0.25
    assert limiter.take("alice") == pytest.approx(0.25)  # refused calls cost nothing
    clock.now += 0.25
    assert limiter.take("alice") == 0
    assert limiter.take("alice") == pytest.approx(0.5)


def test_callers_have_their_own_buckets(clock):
    limiter = RateLimiter(rate=1, burst=2, kind="token", clock=clock)
    assert [limiter.take("busy") for _ in range(3)] == [0, 0, pytest.approx(1.0)]
    assert limiter.take("calm") == 0 and limiter.take("calm") == 0


def test_an_idle_caller_gets_at_most_a_burst(clock):
    limiter = RateLimiter(rate=1, burst=2, kind="address", clock=clock)
    limiter.take("a")
    clock.now += 3600
    assert [limiter.take("a") for _ in range(3)] == [0, 0, pytest.approx(1.0)]


def test_rate_zero_is_off(clock):
    limiter = RateLimiter(rate=0, burst=1, kind="token", clock=clock)
    assert all(limiter.take("a") == 0 for _ in range(1000))


def test_burst_is_at_least_one(clock):
    limiter = RateLimiter(rate=1, burst=0, kind="token", clock=clock)
    assert limiter.burst == 1
    assert limiter.take("a") == 0 and limiter.take("a") > 0


def test_idle_buckets_are_dropped_but_busy_callers_stay_limited(clock):
    limiter = RateLimiter(rate=1, burst=2, kind="token", clock=clock)
    limiter.PRUNE_AT = 3
    assert [limiter.take("busy") for _ in range(3)] == [0, 0, pytest.approx(1.0)]
    limiter.take("idle1")
    limiter.take("idle2")
    clock.now += 1.5  # the idle ones are full again; busy is not (0 + 1.5 of 2)
    limiter.take("newcomer")  # the 4th caller: the full buckets go
    assert len(limiter._buckets) == 2  # busy and newcomer
    assert limiter.take("busy") == 0
    assert limiter.take("busy") == pytest.approx(0.5)  # still counted from where it was
    assert [limiter.take("idle1") for _ in range(2)] == [0, 0]  # back with a full bucket


def test_describe():
    assert RateLimiter(2.0, 6, "token").describe() == "2 calls a second (bursts of 6)"
    assert RateLimiter(0.5, 1, "address").describe() == "0.5 calls a second (bursts of 1)"


@pytest.mark.parametrize("wait, seconds", [(0, 1), (0.001, 1), (1.0, 1), (1.01, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_at_least_one(wait, seconds):
    assert retry_after(wait) == seconds
