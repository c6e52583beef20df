"""Which Globus browser logins the token exchange offers (`c.UWS.globus_redirect_urls`): none
when the list is empty (the mode is off), and only the listed redirect URLs when it is not.
The whole flow, against the Globus stand-in: tests/e2e/test_auth_globus.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from uws_hub.errors import BadRequest
from uws_hub.users.tokens import TokenIssuer

from .domain import make_settings

PORTAL = "https://portal.example.org/globus-callback"


def issuer(tmp_path, urls: list[str]) -> TokenIssuer:
    return TokenIssuer(SimpleNamespace(settings=make_settings(tmp_path, globus_redirect_urls=urls)))


def test_the_browser_mode_is_off_without_listed_redirect_urls(tmp_path):
    with pytest.raises(BadRequest) as e:
        issuer(tmp_path, [])._check_redirect(PORTAL)
    assert e.value.message == "This hub does not offer the Globus browser login through its API."
    assert "c.UWS.globus_redirect_urls" in e.value.detail


def test_only_listed_redirect_urls_are_offered(tmp_path):
    listed = issuer(tmp_path, [PORTAL])
    listed._check_redirect(PORTAL)  # no refusal
    for other in (PORTAL + "/", "https://evil.example.org/globus-callback", PORTAL.upper()):
        with pytest.raises(BadRequest) as e:
            listed._check_redirect(other)
        assert e.value.message == "The redirect url is not allowed."
