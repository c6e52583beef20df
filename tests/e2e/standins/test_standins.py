"""Self-tests of the stand-ins: every endpoint over real HTTP, with ``requests``.

Also drives oauthenticator's GlobusOAuthenticator against the Globus stand-in, so that a change in
either shows up here first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from standins.accountapi import AccountAPIStandin
from standins.globus import (
    GROUPS_SCOPE,
    TRANSFER_SCOPE,
    VIEW_IDENTITY_SET_SCOPE,
    GlobusStandin,
    decode_jwt,
)

HERE = Path(__file__).resolve().parent
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "hub-secret-0123456789-0123456789-0123"
REDIRECT = "http://127.0.0.1:18000/hub/oauth_callback"
OTHER_ID = "99999999-2222-3333-4444-555555555555"
OTHER_SECRET = "other-secret"
G_STAFF = "aaaaaaaa-0000-0000-0000-000000000001"
G_LAB = "aaaaaaaa-0000-0000-0000-000000000002"
G_INVITED = "aaaaaaaa-0000-0000-0000-000000000003"
ALICE = {
    "sub": "0c1f0b3a-1111-4f00-9000-00000000a11c",
    "username": "alice@uni-a.edu",
    "name": "Alice Liddell",
    "email": "alice@uni-a.edu",
    "identity_provider": "d1a9bd3c-0000-4000-8000-00000000aaaa",
    "identity_provider_display_name": "University A",
    "organization": "University A",
    "groups": [
        {"id": G_STAFF, "name": "staff", "role": "admin"},
        G_LAB,
        {"id": G_INVITED, "name": "invited", "status": "invited"},
    ],
}
BASE_SCOPES = ["openid", "profile", "email", TRANSFER_SCOPE, GROUPS_SCOPE]


# ---------------------------------------------------------------------------------------------
# Globus
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def globus():
    srv = GlobusStandin().start()
    srv.add_client(CLIENT_ID, SECRET, [REDIRECT])
    srv.add_client(OTHER_ID, OTHER_SECRET, ["http://127.0.0.1:18001/cb"])
    srv.add_group(G_LAB, "lab")
    srv.set_login(ALICE)
    yield srv
    srv.stop()
    assert srv.errors == []


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def authorize(srv: GlobusStandin, scopes=BASE_SCOPES, **extra) -> requests.Response:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": " ".join(scopes),
        "state": "st-123",
        "response_type": "code",
        **extra,
    }
    return requests.get(srv.authorize_url, params=params, allow_redirects=False, timeout=5)


def redirect_params(resp: requests.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    loc = resp.headers["Location"]
    assert loc.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def exchange(srv: GlobusStandin, code: str, *, basic=False, **extra) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    auth = None
    if basic:
        auth = (CLIENT_ID, SECRET)
    else:
        form.update(client_id=CLIENT_ID, client_secret=SECRET)
    return requests.post(srv.token_url, data=form, auth=auth, timeout=5)


def login(srv: GlobusStandin, scopes=BASE_SCOPES, **extra) -> dict:
    verifier, challenge = pkce()
    params = redirect_params(
        authorize(srv, scopes, code_challenge=challenge, code_challenge_method="S256", **extra)
    )
    resp = exchange(srv, params["code"], code_verifier=verifier)
    assert resp.status_code == 200, resp.text
    return resp.json()


def by_rs(token_response: dict) -> dict[str, dict]:
    tokens = [token_response, *token_response["other_tokens"]]
    return {t["resource_server"]: t for t in tokens}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_authorization_code_flow(globus):
    verifier, challenge = pkce()
    resp = authorize(globus, code_challenge=challenge, code_challenge_method="S256")
    params = redirect_params(resp)
    assert params["state"] == "st-123"
    assert globus.authorize_requests[-1]["code_challenge"] == challenge

    resp = exchange(globus, params["code"], code_verifier=verifier)
    assert resp.status_code == 200, resp.text
    tr = resp.json()
    assert tr["resource_server"] == "auth.globus.org"
    assert tr["token_type"] == "Bearer"
    assert tr["expires_in"] == 172800
    assert tr["scope"] == "openid profile email"
    assert tr["state"] == "st-123"
    assert "refresh_token" not in tr  # no access_type=offline
    tokens = by_rs(tr)
    assert set(tokens) == {"auth.globus.org", "transfer.api.globus.org", "groups.api.globus.org"}
    assert tokens["groups.api.globus.org"]["scope"] == GROUPS_SCOPE
    assert tokens["transfer.api.globus.org"]["scope"] == TRANSFER_SCOPE
    assert len({t["access_token"] for t in tokens.values()}) == 3

    claims = decode_jwt(tr["id_token"], SECRET)
    assert claims["aud"] == CLIENT_ID
    assert claims["sub"] == ALICE["sub"]
    assert claims["preferred_username"] == "alice@uni-a.edu"
    assert claims["iss"] == "https://auth.globus.org"
    assert claims["exp"] > time.time()
    jwt = pytest.importorskip("jwt")  # PyJWT, as oauthenticator would decode it
    assert jwt.decode(tr["id_token"], SECRET, algorithms=["HS256"], audience=CLIENT_ID)

    info = requests.get(globus.userinfo_url, headers=bearer(tr["access_token"]), timeout=5)
    assert info.status_code == 200
    assert info.json() == {
        "sub": ALICE["sub"],
        "preferred_username": "alice@uni-a.edu",
        "name": "Alice Liddell",
        "email": "alice@uni-a.edu",
        "identity_provider": ALICE["identity_provider"],
        "identity_provider_display_name": "University A",
        "organization": "University A",
    }

    groups_token = tokens["groups.api.globus.org"]["access_token"]
    globus.clear_requests()
    resp = requests.get(globus.groups_url, headers=bearer(groups_token), timeout=5)
    assert resp.status_code == 200
    groups = {g["id"]: g for g in resp.json()}
    assert set(groups) == {G_STAFF, G_LAB}  # the invited membership is not active
    assert groups[G_STAFF]["name"] == "staff"
    assert groups[G_LAB]["name"] == "lab"
    assert groups[G_STAFF]["my_memberships"] == [
        {
            "group_id": G_STAFF,
            "identity_id": ALICE["sub"],
            "username": "alice@uni-a.edu",
            "role": "admin",
            "status": "active",
        }
    ]
    for key in ("description", "group_type", "enforce_session", "parent_id", "policies"):
        assert key in groups[G_LAB]
    assert [r.route for r in globus.requests_to("/v2/groups/")] == ["/v2/groups/my_groups"]
    assert globus.requests[-1].header("authorization") == f"Bearer {groups_token}"
    invited = requests.get(
        globus.groups_url + "?statuses=invited", headers=bearer(groups_token), timeout=5
    )
    assert [g["id"] for g in invited.json()] == [G_INVITED]


def test_basic_client_auth_and_scopes_without_auth_rs(globus):
    params = redirect_params(authorize(globus, [TRANSFER_SCOPE]))
    resp = exchange(globus, params["code"], basic=True)
    assert resp.status_code == 200, resp.text
    tr = resp.json()
    # without an auth.globus.org scope the top-level token is the first resource server's
    assert tr["resource_server"] == "transfer.api.globus.org"
    assert tr["other_tokens"] == []
    assert "id_token" not in tr


def test_authorize_rejects_unknown_client_and_redirect_uri(globus):
    resp = authorize(globus, client_id="nope")
    assert resp.status_code == 400
    resp = authorize(globus, redirect_uri="http://evil.example/cb")
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    resp = authorize(globus, response_type="token")
    assert redirect_params(resp)["error"] == "unsupported_response_type"
    resp = authorize(globus, scopes=["not-a-scope"])
    assert redirect_params(resp)["error"] == "invalid_scope"


def test_login_error_redirects_back(globus):
    globus.set_login_error("access_denied", times=1)
    params = redirect_params(authorize(globus))
    assert params == {"error": "access_denied", "state": "st-123"}
    assert "code" in redirect_params(authorize(globus))  # times=1: next login works
    globus.set_login(None)
    assert authorize(globus).status_code == 400


def test_code_is_single_use_and_bound(globus):
    verifier, challenge = pkce()
    code = redirect_params(
        authorize(globus, code_challenge=challenge, code_challenge_method="S256")
    )["code"]
    wrong = exchange(globus, code, code_verifier="x" * 43)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_grant"
    missing = exchange(globus, code)
    assert missing.status_code == 401
    bad_redirect = exchange(globus, code, code_verifier=verifier, redirect_uri=REDIRECT + "x")
    assert bad_redirect.status_code == 401
    other_client = requests.post(
        globus.token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(OTHER_ID, OTHER_SECRET),
        timeout=5,
    )
    assert other_client.status_code == 401
    assert exchange(globus, code, code_verifier=verifier).status_code == 200
    again = exchange(globus, code, code_verifier=verifier)
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_grant"


def test_token_endpoint_client_authentication(globus):
    code = redirect_params(authorize(globus))["code"]
    resp = requests.post(
        globus.token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(CLIENT_ID, "wrong"),
        timeout=5,
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    resp = requests.post(globus.token_url, data={"grant_type": "password"}, timeout=5)
    assert resp.status_code == 401
    resp = requests.post(
        globus.token_url, data={"grant_type": "password"}, auth=(CLIENT_ID, SECRET), timeout=5
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"


def test_refresh_tokens_with_offline_access(globus):
    tr = login(globus, access_type="offline")
    tokens = by_rs(tr)
    assert all(t.get("refresh_token") for t in tokens.values())
    transfer = tokens["transfer.api.globus.org"]
    resp = requests.post(
        globus.token_url,
        data={"grant_type": "refresh_token", "refresh_token": transfer["refresh_token"]},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    new = resp.json()
    assert new["resource_server"] == "transfer.api.globus.org"
    assert new["scope"] == TRANSFER_SCOPE
    assert new["access_token"] != transfer["access_token"]
    assert new["other_tokens"] == []
    # another client cannot use it
    resp = requests.post(
        globus.token_url,
        data={"grant_type": "refresh_token", "refresh_token": transfer["refresh_token"]},
        auth=(OTHER_ID, OTHER_SECRET),
        timeout=5,
    )
    assert resp.status_code == 401


def introspect(srv, token, auth=(CLIENT_ID, SECRET), **extra) -> requests.Response:
    return requests.post(srv.introspect_url, data={"token": token, **extra}, auth=auth, timeout=5)


def test_introspection(globus):
    linked = {"sub": "0c1f0b3a-2222-4f00-9000-00000000a11c", "username": "alice@globusid.org"}
    globus.set_login({**ALICE, "identity_set": [linked]})
    tr = login(globus, BASE_SCOPES + [VIEW_IDENTITY_SET_SCOPE])
    resp = introspect(globus, tr["access_token"], include="identity_set,identity_set_detail")
    assert resp.status_code == 200
    info = resp.json()
    assert info["active"] is True
    assert info["sub"] == ALICE["sub"]
    assert info["username"] == "alice@uni-a.edu"
    assert info["client_id"] == CLIENT_ID
    assert info["scope"].split() == ["openid", "profile", "email", VIEW_IDENTITY_SET_SCOPE]
    assert set(info["aud"]) == {CLIENT_ID, "auth.globus.org"}
    assert info["iss"] == "https://auth.globus.org"
    assert info["exp"] > info["iat"] == info["nbf"]
    assert info["identity_set"] == [ALICE["sub"], linked["sub"]]
    assert [i["username"] for i in info["identity_set_detail"]] == [
        "alice@uni-a.edu",
        "alice@globusid.org",
    ]
    assert "identity_set" not in introspect(globus, tr["access_token"]).json()

    userinfo = requests.get(globus.userinfo_url, headers=bearer(tr["access_token"]), timeout=5)
    assert [i["sub"] for i in userinfo.json()["identity_set"]] == [ALICE["sub"], linked["sub"]]

    # not in the token's audience: inactive; no client auth: 401; unknown token: inactive
    assert introspect(globus, tr["access_token"], auth=(OTHER_ID, OTHER_SECRET)).json() == {
        "active": False
    }
    assert introspect(globus, tr["access_token"], auth=None).status_code == 401
    assert introspect(globus, "nope").json() == {"active": False}
    globus.expire_token(tr["access_token"])
    assert introspect(globus, tr["access_token"]).json() == {"active": False}


def test_dependent_token_grant(globus):
    tr = login(globus)
    form = {"grant_type": "urn:globus:auth:grant_type:dependent_token", "token": tr["access_token"]}
    resp = requests.post(globus.token_url, data=form, auth=(CLIENT_ID, SECRET), timeout=5)
    assert resp.status_code == 200, resp.text
    deps = resp.json()
    assert isinstance(deps, list)
    assert {d["resource_server"] for d in deps} == {
        "transfer.api.globus.org",
        "groups.api.globus.org",
    }
    assert all("refresh_token" not in d for d in deps)
    groups_token = next(d for d in deps if d["resource_server"] == "groups.api.globus.org")
    resp = requests.get(globus.groups_url, headers=bearer(groups_token["access_token"]), timeout=5)
    assert {g["id"] for g in resp.json()} == {G_STAFF, G_LAB}

    resp = requests.post(
        globus.token_url,
        data={**form, "scope": TRANSFER_SCOPE, "access_type": "offline"},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    [dep] = resp.json()
    assert dep["resource_server"] == "transfer.api.globus.org" and dep["refresh_token"]
    assert globus.token_info(dep["access_token"])["grant"] == (
        "urn:globus:auth:grant_type:dependent_token"
    )

    bad_scope = requests.post(
        globus.token_url,
        data={**form, "scope": "urn:globus:auth:scope:other.example:all"},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    not_ours = requests.post(globus.token_url, data=form, auth=(OTHER_ID, OTHER_SECRET), timeout=5)
    assert not_ours.status_code == 401 and not_ours.json()["error"] == "invalid_grant"
    globus.expire_token(tr["access_token"])
    expired = requests.post(globus.token_url, data=form, auth=(CLIENT_ID, SECRET), timeout=5)
    assert expired.status_code == 401


def test_revocation(globus):
    tr = login(globus, access_type="offline")
    resp = requests.post(
        globus.revocation_url,
        data={"token": tr["access_token"]},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    assert resp.status_code == 200
    assert (
        requests.get(globus.userinfo_url, headers=bearer(tr["access_token"]), timeout=5).status_code
        == 401
    )
    assert introspect(globus, tr["access_token"]).json() == {"active": False}

    transfer = by_rs(tr)["transfer.api.globus.org"]
    requests.post(
        globus.revocation_url,
        data={"token": transfer["refresh_token"]},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    # revoking the refresh token revokes the access token of the same grant, and refreshing fails
    assert introspect(globus, transfer["access_token"]).json() == {"active": False}
    resp = requests.post(
        globus.token_url,
        data={"grant_type": "refresh_token", "refresh_token": transfer["refresh_token"]},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    assert resp.status_code == 401
    # another client's revocation of our token is a no-op; no client auth is 401
    groups = by_rs(tr)["groups.api.globus.org"]
    requests.post(
        globus.revocation_url,
        data={"token": groups["access_token"]},
        auth=(OTHER_ID, OTHER_SECRET),
        timeout=5,
    )
    assert globus.token_info(groups["access_token"])["active"] is True
    assert requests.post(globus.revocation_url, data={"token": "x"}, timeout=5).status_code == 401


def test_userinfo_and_groups_reject_wrong_tokens(globus):
    tr = login(globus, ["openid", "profile", GROUPS_SCOPE])
    info = requests.get(globus.userinfo_url, headers=bearer(tr["access_token"]), timeout=5).json()
    assert "email" not in info  # no email scope
    groups_token = by_rs(tr)["groups.api.globus.org"]["access_token"]
    assert (
        requests.get(globus.userinfo_url, headers=bearer(groups_token), timeout=5).status_code
        == 403
    )
    assert (
        requests.get(globus.groups_url, headers=bearer(tr["access_token"]), timeout=5).status_code
        == 403
    )
    assert requests.get(globus.groups_url, timeout=5).status_code == 401
    resp = requests.get(globus.userinfo_url, timeout=5)
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"
    globus.expire_all()
    assert (
        requests.get(globus.groups_url, headers=bearer(groups_token), timeout=5).status_code == 401
    )


def test_group_controls(globus):
    tr = login(globus)
    token = by_rs(tr)["groups.api.globus.org"]["access_token"]

    def ids():
        resp = requests.get(globus.groups_url, headers=bearer(token), timeout=5)
        return {g["id"] for g in resp.json()}

    globus.set_groups(ALICE["sub"], [G_LAB])
    assert ids() == {G_LAB}
    globus.set_membership(G_STAFF, ALICE["sub"], role="manager")
    assert ids() == {G_LAB, G_STAFF}
    globus.set_membership(G_STAFF, ALICE["sub"], status="left")
    assert ids() == {G_LAB}
    globus.remove_membership(G_LAB, ALICE["sub"])
    assert ids() == set()


def test_client_credentials_and_token_lookup(globus):
    resp = requests.post(
        globus.token_url,
        data={"grant_type": "client_credentials", "scope": f"{TRANSFER_SCOPE} openid"},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    tr = resp.json()
    assert tr["resource_server"] == "auth.globus.org"
    assert [t["resource_server"] for t in tr["other_tokens"]] == ["transfer.api.globus.org"]
    info = introspect(globus, tr["access_token"]).json()
    assert info["sub"] == CLIENT_ID
    assert info["username"] == f"{CLIENT_ID}@clients.auth.globus.org"

    login(globus)
    alice_tokens = globus.tokens_for(ALICE["sub"])
    assert {t["resource_server"] for t in alice_tokens} == {
        "auth.globus.org",
        "transfer.api.globus.org",
        "groups.api.globus.org",
    }
    assert all(t["active"] and t["client_id"] == CLIENT_ID for t in alice_tokens)
    globus.revoke_all(ALICE["sub"])
    assert globus.tokens_for(ALICE["sub"], active_only=True) == []


def test_failure_injection(globus):
    tr = login(globus)
    token = by_rs(tr)["groups.api.globus.org"]["access_token"]
    globus.set_failure("/v2/groups/", status=503, times=1)
    assert requests.get(globus.groups_url, headers=bearer(token), timeout=5).status_code == 503
    assert requests.get(globus.groups_url, headers=bearer(token), timeout=5).status_code == 200

    globus.set_failure("/v2/groups/", status=None, delay=2.0, times=1)
    with pytest.raises(requests.Timeout):
        requests.get(globus.groups_url, headers=bearer(token), timeout=0.3)

    globus.set_failure("/v2/oauth2/userinfo", status="drop")
    with pytest.raises(requests.ConnectionError):
        requests.get(globus.userinfo_url, headers=bearer(tr["access_token"]), timeout=5)
    globus.clear_failures()
    assert requests.get(globus.userinfo_url, headers=bearer(tr["access_token"]), timeout=5).ok
    globus.set_failure("/v2/oauth2/token$", status=500)
    assert introspect(globus, tr["access_token"]).json()["active"] is True
    assert requests.post(globus.token_url, data={}, timeout=5).status_code == 500
    globus.clear_failures()
    assert len(globus.requests_to("/v2/groups/my_groups", "GET")) == 3


def test_discovery(globus):
    doc = requests.get(globus.url + "/.well-known/openid-configuration", timeout=5).json()
    assert doc["token_endpoint"] == globus.token_url
    assert doc["userinfo_endpoint"] == globus.userinfo_url
    assert requests.get(globus.url + "/nope", timeout=5).status_code == 404
    assert requests.post(globus.userinfo_url + "x", timeout=5).status_code == 404
    assert requests.get(globus.token_url, timeout=5).status_code == 405


class _FakeCallbackHandler:
    """The two things GlobusOAuthenticator.authenticate reads from the callback handler."""

    def __init__(self, code: str, cookie_state: str):
        self._args = {"code": code}
        self._cookie = cookie_state

    def get_argument(self, name, default=None):
        return self._args.get(name, default)

    def get_state_cookie(self):
        return self._cookie


def test_oauthenticator_globus_against_standin(globus):
    """oauthenticator's own GlobusOAuthenticator logs in, reads groups and revokes tokens."""
    oauth_globus = pytest.importorskip("oauthenticator.globus")
    from oauthenticator.oauth2 import _serialize_state

    auth = oauth_globus.GlobusOAuthenticator(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        oauth_callback_url=REDIRECT,
        allowed_globus_groups={G_LAB},
        admin_globus_groups={G_STAFF},
        **globus.authenticator_config(),
    )
    assert GROUPS_SCOPE in auth.scope
    # what OAuthLoginHandler.get sends (tornado's authorize_redirect joins the scopes with " ")
    verifier, challenge = pkce()
    state = _serialize_state({"state_id": "abc"})
    url = (
        auth.authorize_url
        + "?"
        + urlencode(
            {
                "redirect_uri": REDIRECT,
                "client_id": CLIENT_ID,
                "response_type": "code",
                "scope": " ".join(auth.scope),
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    params = redirect_params(requests.get(url, allow_redirects=False, timeout=5))
    assert params["state"] == state
    cookie = _serialize_state({"state_id": "abc", "next_url": None, "code_verifier": verifier})

    async def run():
        model = await auth.authenticate(_FakeCallbackHandler(params["code"], cookie))
        allowed = await auth.check_allowed(model["name"], model)
        await auth.revoke_service_tokens(model["auth_state"]["tokens"])
        return model, allowed

    model, allowed = asyncio.run(run())
    assert model["name"] == "alice"
    assert model["admin"] is True
    assert allowed is True
    state_ = model["auth_state"]
    assert set(state_["globus_groups"]) == {G_STAFF, G_LAB}
    assert set(state_["tokens"]) == {"transfer.api.globus.org"}  # auth and groups excluded
    assert state_["globus_user"]["preferred_username"] == "alice@uni-a.edu"
    token_req = [r for r in globus.requests if r.route == "/v2/oauth2/token"][-1].form()
    assert token_req["code_verifier"] == verifier
    assert token_req["client_secret"] == SECRET  # basic_auth is False by default
    revoked = state_["tokens"]["transfer.api.globus.org"]["access_token"]
    assert globus.token_info(revoked)["revoked"] is True
    assert (
        globus.requests_to("/v2/oauth2/token/revoke")[-1]
        .header("Authorization")
        .startswith("Basic ")
    )


# ---------------------------------------------------------------------------------------------
# Account API
# ---------------------------------------------------------------------------------------------

JWT = "test-jwt"
GET_USER = """
    query GetUserAndAllocationUsers($pscId: String, $username: String, $email: String) {
        user(pscId: $pscId, username: $username, email: $email) {
            uid pscId username name { first last } email { primary }
            allocationUsers { allocation { gid grant { number } resource { name } } }
        }
    }
"""
GET_ALLOCATION = """
    query GetAllocationAndAllocationUsers($components: AllocationComponentsInput!) {
        allocation(components: $components) {
            id startDate endDate active grant { number } resource { name active }
            allocationUsers { active user { name { first last } } }
        }
    }
"""
ADD_TO_ALLOCATION = """
    mutation AddUserToAllocation($input: AddAllocationUserInput!) {
        addAllocationUser(input: $input) {
            allocationUser { user { name { first last } username } allocation { gid grant { number } } }
        }
    }
"""
ADD_USER = """
    mutation AddUserWithAllocations($input: AddUserInput!) {
        addUser(input: $input) {
            user { uid pscId username name { first last }
                   allocationUsers { startDate endDate active allocation { gid grant { number } } } }
        }
    }
"""
COMPONENTS = {"grant": {"number": "GR-1"}, "resource": {"name": "bridges2"}}


@pytest.fixture
def api():
    srv = AccountAPIStandin(jwt_token=JWT).start()
    srv.add_allocation("17", "GR-1", "bridges2", 15001)
    srv.add_allocation("18", "GR-2", "bridges2", 15002)
    srv.add_user("bob", "bob@uni-b.edu", 20001, "Bob", "Builder", ["18"])
    yield srv
    srv.stop()
    assert srv.errors == []


def gql(srv, op, query, variables, token=JWT, timeout=5) -> requests.Response:
    headers = {"Authorization": f"JWT {token}"} if token else {}
    body = {"operationName": op, "query": query, "variables": variables}
    return requests.post(srv.root_url, json=body, headers=headers, timeout=timeout)


def test_account_api_auth(api):
    for token in (None, "wrong"):
        resp = gql(api, "GetUserAndAllocationUsers", GET_USER, {"username": "bob"}, token=token)
        assert resp.status_code == 401
        assert resp.json() == {"errors": [{"message": "Unauthorized"}]}
    resp = requests.post(
        api.root_url,
        json={"operationName": "GetUserAndAllocationUsers", "query": GET_USER, "variables": {}},
        headers={"Authorization": f"Bearer {JWT}"},
        timeout=5,
    )
    assert resp.status_code == 401
    assert (
        requests.get(api.root_url, headers={"Authorization": f"JWT {JWT}"}, timeout=5).status_code
        == 405
    )
    assert requests.post(api.url + "/other", timeout=5).status_code == 404


def test_get_user(api):
    for variables in ({"username": "bob"}, {"email": "BOB@uni-b.edu"}, {"pscId": "P20001"}):
        resp = gql(api, "GetUserAndAllocationUsers", GET_USER, variables)
        assert resp.status_code == 200
        user = resp.json()["data"]["user"]
        assert user["uid"] == 20001
        assert user["username"] == "bob"
        assert user["name"] == {"first": "Bob", "last": "Builder"}
        assert user["email"] == {"primary": "bob@uni-b.edu"}
        [au] = user["allocationUsers"]
        assert au["allocation"]["gid"] == 15002
        assert au["allocation"]["grant"] == {"number": "GR-2"}
        assert au["allocation"]["resource"]["name"] == "bridges2"
        assert {"startDate", "endDate", "active"} <= set(au["allocation"])
    resp = gql(api, "GetUserAndAllocationUsers", GET_USER, {"username": "nobody"})
    assert resp.json() == {"data": {"user": None}}


def test_get_allocation_with_empty_operation_name(api):
    # the seed's client sends operationName "" for this query: the query's own name counts
    resp = gql(api, "", GET_ALLOCATION, {"components": COMPONENTS})
    assert resp.status_code == 200
    alloc = resp.json()["data"]["allocation"]
    assert alloc["id"] == "17"
    assert alloc["grant"] == {"number": "GR-1"}
    assert alloc["resource"] == {"name": "bridges2", "active": True}
    assert alloc["allocationUsers"] == []
    missing = {"grant": {"number": "GR-9"}, "resource": {"name": "bridges2"}}
    resp = gql(api, "GetAllocationAndAllocationUsers", GET_ALLOCATION, {"components": missing})
    assert resp.json() == {"data": {"allocation": None}}
    assert api.operations[0] == ("GetAllocationAndAllocationUsers", {"components": COMPONENTS})


def test_add_user_to_allocation(api):
    variables = {"input": {"user": {"username": "bob"}, "allocation": {"components": COMPONENTS}}}
    resp = gql(api, "AddUserToAllocation", ADD_TO_ALLOCATION, variables)
    assert resp.status_code == 200
    au = resp.json()["data"]["addAllocationUser"]["allocationUser"]
    assert au["user"] == {"username": "bob", "name": {"first": "Bob", "last": "Builder"}}
    assert au["allocation"]["gid"] == 15001
    assert au["allocation"]["grant"] == {"number": "GR-1"}
    user = api.get_user("bob")
    assert {a["allocation"]["grant"]["number"] for a in user["allocationUsers"]} == {"GR-1", "GR-2"}
    alloc = gql(api, "", GET_ALLOCATION, {"components": COMPONENTS}).json()["data"]["allocation"]
    assert [a["user"]["username"] for a in alloc["allocationUsers"]] == ["bob"]

    again = gql(api, "AddUserToAllocation", ADD_TO_ALLOCATION, variables)
    assert again.status_code == 200
    assert again.json()["data"] == {"addAllocationUser": None}
    assert again.json()["errors"][0]["path"] == ["addAllocationUser"]
    nobody = {"input": {"user": {"username": "zed"}, "allocation": {"components": COMPONENTS}}}
    resp = gql(api, "AddUserToAllocation", ADD_TO_ALLOCATION, nobody)
    assert "does not exist" in resp.json()["errors"][0]["message"]


def test_add_user_with_allocations(api):
    def add(email, allocations=("17",)):
        variables = {
            "input": {
                "name": {"first": "Carol", "last": "Danvers"},
                "affiliation": {"affiliationCode": "WS_API"},
                "email": {"primary": email},
                "allocations": [{"allocation": {"id": a}} for a in allocations],
            }
        }
        return gql(api, "AddUserWithAllocations", ADD_USER, variables)

    resp = add("Carol.D@uni-c.edu")
    assert resp.status_code == 200, resp.text
    user = resp.json()["data"]["addUser"]["user"]
    assert user["username"] == "carold"
    assert user["uid"] == 30000
    assert user["name"] == {"first": "Carol", "last": "Danvers"}
    [au] = user["allocationUsers"]
    assert au["active"] is True and au["startDate"] and au["endDate"]
    assert au["allocation"]["gid"] == 15001 and au["allocation"]["grant"] == {"number": "GR-1"}

    second = add("carol.d@other.org").json()["data"]["addUser"]["user"]
    assert (second["username"], second["uid"]) == ("carold1", 30001)

    dup = add("CAROL.D@uni-c.edu")
    assert dup.status_code == 200
    assert dup.json()["data"] == {"addUser": None}
    assert "already exists" in dup.json()["errors"][0]["message"]
    unknown = add("dave@uni-d.edu", allocations=("404",))
    assert "Allocation" in unknown.json()["errors"][0]["message"]
    assert api.find_user(email="dave@uni-d.edu") is None  # nothing half-created
    assert [u["username"] for u in api.users] == ["bob", "carold", "carold1"]


def test_add_user_control_advances_uid_counter(api):
    api.add_user("erin", "erin@x.org", 30005, "Erin", "E", ["17"])
    user = api.get_user("erin")
    assert user["uid"] == 30005 and user["allocationUsers"][0]["allocation"]["gid"] == 15001
    variables = {
        "input": {
            "name": {"first": "F", "last": "G"},
            "affiliation": {"affiliationCode": "X"},
            "email": {"primary": "erin@y.org"},
            "allocations": [],
        }
    }
    created = gql(api, "AddUserWithAllocations", ADD_USER, variables).json()["data"]["addUser"]
    assert created["user"]["uid"] == 30006
    assert created["user"]["username"] == "erin1"


def test_unknown_or_mismatched_operations(api):
    resp = gql(api, "DeleteEverything", "mutation DeleteEverything { x }", {})
    assert resp.status_code == 400
    assert "DeleteEverything" in resp.json()["errors"][0]["message"]
    resp = gql(api, "GetUserAndAllocationUsers", GET_ALLOCATION, {})
    assert resp.status_code == 400  # the name is not an operation of the query
    resp = gql(api, None, "{ user { uid } }", {})
    assert resp.status_code == 400
    resp = requests.post(
        api.root_url, data="{not json", headers={"Authorization": f"JWT {JWT}"}, timeout=5
    )
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["message"]


def test_account_api_failure_injection(api):
    api.set_failure("GetUserAndAllocationUsers", status=500, times=2)
    codes = [
        gql(api, "GetUserAndAllocationUsers", GET_USER, {"username": "bob"}).status_code
        for _ in range(3)
    ]
    assert codes == [500, 500, 200]
    # other operations are not affected
    assert gql(api, "", GET_ALLOCATION, {"components": COMPONENTS}).status_code == 200

    api.set_failure("GetAllocationAndAllocationUsers", status=200, message="backend down", times=1)
    resp = gql(api, "", GET_ALLOCATION, {"components": COMPONENTS})
    assert resp.status_code == 200
    assert resp.json() == {"errors": [{"message": "backend down"}], "data": None}

    api.set_failure(None, status=None, delay=2.0, times=1)
    with pytest.raises(requests.Timeout):
        gql(api, "GetUserAndAllocationUsers", GET_USER, {"username": "bob"}, timeout=0.3)
    api.set_failure("AddUserWithAllocations", status="drop")
    with pytest.raises(requests.ConnectionError):
        gql(api, "AddUserWithAllocations", ADD_USER, {"input": {}})
    api.clear_failures()
    assert [op for op, _ in api.operations] == [
        "GetUserAndAllocationUsers",
        "GetUserAndAllocationUsers",
        "GetUserAndAllocationUsers",
        "GetAllocationAndAllocationUsers",
        "GetAllocationAndAllocationUsers",
        "GetUserAndAllocationUsers",
        "AddUserWithAllocations",
    ]
    assert api.requests[0].header("Authorization") == f"JWT {JWT}"


# ---------------------------------------------------------------------------------------------
# As subprocesses, driven through the control API
# ---------------------------------------------------------------------------------------------


def _spawn(module: str, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    line = proc.stdout.readline()
    assert line, f"{module} did not start"
    return proc, json.loads(line)["url"]


def _control(url: str, method: str, *args, **kwargs):
    resp = requests.post(
        f"{url}/_standin/{method}", json={"args": args, "kwargs": kwargs}, timeout=5
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def test_globus_as_subprocess():
    proc, url = _spawn("standins.globus", "--client", f"{CLIENT_ID}:{SECRET}:{REDIRECT}")
    try:
        ident = _control(url, "set_login", {"username": "carol@uni-c.edu"})
        resp = requests.get(
            url + "/v2/oauth2/authorize",
            params={
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT,
                "scope": "openid profile",
                "response_type": "code",
                "state": "s",
            },
            allow_redirects=False,
            timeout=5,
        )
        code = redirect_params(resp)["code"]
        tr = requests.post(
            url + "/v2/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
            auth=(CLIENT_ID, SECRET),
            timeout=5,
        ).json()
        info = requests.get(
            url + "/v2/oauth2/userinfo", headers=bearer(tr["access_token"]), timeout=5
        )
        assert info.json()["preferred_username"] == "carol@uni-c.edu"
        assert [t["sub"] for t in _control(url, "tokens_for", ident["sub"])] == [ident["sub"]]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_accountapi_as_subprocess():
    proc, url = _spawn(
        "standins.accountapi", "--jwt-token", JWT, "--allocation", "17:GR-1:bridges2:15001"
    )
    try:
        _control(url, "add_user", "bob", "bob@uni-b.edu", 20001, "Bob", "B", ["17"])
        resp = requests.post(
            url + "/api/graph/graphql",
            json={
                "operationName": "GetUserAndAllocationUsers",
                "query": GET_USER,
                "variables": {"username": "bob"},
            },
            headers={"Authorization": f"JWT {JWT}"},
            timeout=5,
        )
        assert resp.json()["data"]["user"]["allocationUsers"][0]["allocation"]["gid"] == 15001
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
