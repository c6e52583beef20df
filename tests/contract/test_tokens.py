"""UWS-REFERENCE §1.2: ``POST /tokens/`` in the trusted-client flow a portal uses (the Globus
modes are tested in tests/e2e/test_auth_globus.py; only their "Missing …" texts here)."""

from __future__ import annotations

import pytest

from .uws import Api, ok, refused

CREDENTIALS = "Incorrect authentication credentials."


def info(name: str = "uwsc-alice") -> dict:
    return {"username": name, "email": f"{name}@example.org", "first_name": "A", "last_name": "B"}


def test_login_answers_token_in_uws_shape(anon, deployment, alice):
    """UWS-REFERENCE §1.2: 200 `{"success": true, "message": "Successful authentication.",
    "token": "<key>"}`; the token works with `UWS-Authorization: Token <key>` (§1.1)."""
    r = anon.post(
        "tokens/", json={"client_token": deployment["client_token"], "user_info": alice.user_info}
    )
    body = ok(r, "Successful authentication.")
    assert isinstance(body["token"], str) and body["token"]
    ok(Api(anon.base, body["token"]).get("workspaces/"))


def test_login_again_keeps_earlier_tokens_working(anon, deployment, alice, make_workspace):
    """UWS-REFERENCE §1.2: "every login returns the same token" — a client may keep using the
    token of an earlier login. UWS-API.md (POST /tokens/): "uws_hub returns a JupyterHub API
    token for that user", so what is asserted is that both tokens act as the same person."""
    ws = make_workspace(alice, name="two-logins")
    body = {"client_token": deployment["client_token"], "user_info": alice.user_info}
    second = ok(anon.post("tokens/", json=body))["token"]
    for token in (alice.api.token, second):
        listed = ok(Api(anon.base, token).get(f"workspaces/{ws['id']}/"))["data"]["workspaces"]
        assert [w["id"] for w in listed] == [ws["id"]]


def test_first_and_last_name_are_optional(anon, deployment):
    """UWS-REFERENCE §1.2: `user_info` has "username", "email", optional "first_name",
    "last_name"."""
    name = "uwsc-dora"
    r = anon.post(
        "tokens/",
        json={
            "client_token": deployment["client_token"],
            "user_info": {"username": name, "email": f"{name}@example.org"},
        },
    )
    ok(r, "Successful authentication.")


def test_missing_client_token_is_400(anon):
    """UWS-REFERENCE §1.2: 400 "Missing client_token. Please have admin generate a token for
    you."."""
    r = anon.post("tokens/", json={"user_info": info()})
    refused(r, 400, "Missing client_token. Please have admin generate a token for you.")


def test_missing_user_info_is_400(anon, deployment):
    """UWS-REFERENCE §1.2: 400 "Missing user_info. Please provide user_info to get
    user_token."."""
    r = anon.post("tokens/", json={"client_token": deployment["client_token"]})
    refused(r, 400, "Missing user_info. Please provide user_info to get user_token.")


def test_unknown_client_token_is_401(anon):
    """UWS-REFERENCE §1.2: an unknown client token → 401 "Incorrect authentication
    credentials."."""
    r = anon.post("tokens/", json={"client_token": "f" * 32, "user_info": info()})
    refused(r, 401, CREDENTIALS)


def test_client_token_of_a_non_client_is_403(anon, alice):
    """UWS-REFERENCE §1.2: a client token whose user is not in `api_clients` → 403 "Token is
    invalid for api_authentication. Please contact administrator to generate valid token."
    (UWS's text; a UWS defect returned the exception instead of raising it, which clients saw
    as 401 "Incorrect authentication credentials."; uws_hub answers the 403 UWS meant:
    docs/api.md, "Where uws_hub differs from UWS"). A person's own token is such a token."""
    r = anon.post("tokens/", json={"client_token": alice.api.token, "user_info": info("uwsc-eve")})
    refused(
        r,
        403,
        "Token is invalid for api_authentication. Please contact administrator to generate "
        "valid token.",
    )


@pytest.mark.parametrize("drop", ["username", "email"])
def test_user_info_without_username_or_email_is_400(anon, deployment, drop):
    """UWS-REFERENCE §1.2: "Missing username or email in user_info." (UWS's text; the same
    defect made clients see 401 "Incorrect authentication credentials."; uws_hub answers the
    400 UWS meant: docs/api.md, "Where uws_hub differs from UWS")."""
    user_info = info("uwsc-frank")
    del user_info[drop]
    r = anon.post(
        "tokens/", json={"client_token": deployment["client_token"], "user_info": user_info}
    )
    refused(r, 400, "Missing username or email in user_info.")


def test_missing_globus_auth_token_is_400(anon):
    """UWS-REFERENCE §1.2: 400 "Missing auth_token." (Globus token mode)."""
    refused(anon.post("tokens/", json={"auth_token": ""}), 400, "Missing auth_token.")


def test_missing_redirect_url_is_400(anon):
    """UWS-REFERENCE §1.2: 400 "Missing redirect url." (Globus oauth mode: a code without
    its redirect_url)."""
    refused(anon.post("tokens/", json={"code": "abc"}), 400, "Missing redirect url.")
