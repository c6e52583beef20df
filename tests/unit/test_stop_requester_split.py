"""Who asked the hub to stop a job (uws_hub.spawners.mixin.hub_stop_requester): the frame lookup
for JupyterHub's ``stop_single_user`` and its fallback. The end-to-end check with a real hub is
tests/e2e/test_jobs.py::test_stopped_from_the_hub_admin_side."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from jupyterhub.handlers.base import BaseHandler

from uws_hub import audit
from uws_hub.spawners import mixin


class FakeHandler(BaseHandler):
    """A request handler without a request cycle: only what the lookup reads."""

    current_user = None

    def __init__(self, who, ip="192.0.2.7"):  # no tornado Application needed
        self.current_user = who
        self.request = SimpleNamespace(remote_ip=ip)


def stop_like_jupyterhub(handler):
    """What JupyterHub 6.1 does: a ``stop`` closure with the handler as ``self`` awaits the
    spawner's stop, which asks who requested it before its first await."""
    self = handler
    seen = {}

    async def spawner_stop():
        seen["requester"] = mixin.hub_stop_requester()
        await asyncio.sleep(0)

    async def stop():
        assert self is handler  # `self` is a local of this frame, as in JupyterHub's closure
        await spawner_stop()

    asyncio.run(stop())
    return seen["requester"]


def test_outside_jupyterhub_nobody_asked():
    assert mixin._stop_request_handler() is None
    assert mixin.hub_stop_requester() is None
    assert asyncio.run(asyncio.to_thread(mixin.hub_stop_requester)) is None


def test_a_stop_frame_without_a_hub_handler_is_not_attributed():
    class Spawner:
        def stop(self):
            return mixin.hub_stop_requester()

    assert Spawner().stop() is None


def test_a_hub_request_is_attributed():
    user = SimpleNamespace(name="carol", kind="user")
    service = SimpleNamespace(name="idle-culler", kind="service")
    assert stop_like_jupyterhub(FakeHandler(user)) == audit.Actor("carol", "user", ip="192.0.2.7")
    assert stop_like_jupyterhub(FakeHandler(service)) == audit.Actor(
        "idle-culler", "service", ip="192.0.2.7"
    )
    # a handler that knows nobody: not attributed
    assert stop_like_jupyterhub(FakeHandler(None)) is None


def test_a_handler_whose_user_cannot_be_read_is_not_attributed():
    class Broken(FakeHandler):
        @property
        def current_user(self):
            raise RuntimeError("not authenticated yet")

        @current_user.setter
        def current_user(self, value):
            pass

    assert stop_like_jupyterhub(Broken(None)) is None


def test_when_the_frames_cannot_be_read_the_fallback_is_none(monkeypatch, caplog):
    def no_frames(depth=0):
        raise ValueError("call stack is not deep enough")

    monkeypatch.setattr(mixin, "sys", SimpleNamespace(_getframe=no_frames))
    with caplog.at_level(logging.WARNING, logger=mixin.__name__):
        assert mixin._stop_request_handler() is None
        assert mixin.hub_stop_requester() is None
    assert "could not look for the hub request behind a stop" in caplog.text

    # frames of another shape (no f_code): also None, never an exception
    monkeypatch.setattr(mixin, "sys", SimpleNamespace(_getframe=lambda depth=0: object()))
    assert mixin.hub_stop_requester() is None


def test_jupyterhub_still_stops_servers_in_a_stop_closure_holding_the_handler():
    """The canary for a JupyterHub upgrade: the lookup relies on ``stop_single_user`` running
    the stop in a nested function named ``stop`` that closes over the handler (``self``)."""
    code = BaseHandler.stop_single_user.__code__
    closures = [c for c in code.co_consts if getattr(c, "co_name", None) == "stop"]
    assert closures, "BaseHandler.stop_single_user has no nested 'stop' any more"
    assert "self" in closures[0].co_freevars
