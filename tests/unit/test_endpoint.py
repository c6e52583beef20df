"""Every HTTP method of a uws handler carries @endpoint (it answers errors found before the
body and replays idempotent calls); one without it is refused when its class is defined, so a
forgotten decorator cannot ship."""

from __future__ import annotations

import pytest

from uws_hub.service import app
from uws_hub.service.handlers.base import BaseHandler, endpoint


def test_a_method_without_endpoint_is_refused_at_import():
    with pytest.raises(TypeError, match=r"Forgetful\.post must be decorated with @endpoint"):

        class Forgetful(BaseHandler):  # defining it is the test
            async def post(self) -> None:
                pass


def test_a_decorated_method_is_accepted_and_marked():
    class Careful(BaseHandler):
        @endpoint
        async def get(self) -> None:
            pass

    assert Careful.get._uws_endpoint is True
    assert Careful.allowed_methods([]) == ["GET", "OPTIONS"]


def test_every_routed_handler_method_is_an_endpoint():
    seen = 0
    for route in app.routes("/services/uws/"):
        handler = route[1]
        if not issubclass(handler, BaseHandler):
            continue
        for name in ("get", "post", "put", "delete", "patch"):
            method = getattr(handler, name)
            if method is not getattr(BaseHandler, name):
                assert getattr(method, "_uws_endpoint", False), f"{handler.__name__}.{name}"
                seen += 1
    assert seen >= 30  # the API's methods, all of them checked
