"""Globus login and the token endpoint against a Globus stand-in that speaks Globus Auth's
OAuth2 protocol (authorize, token, userinfo, introspect, dependent tokens) and the Groups API.
The hub's own HTTP client talks to it; nothing in the authenticator is mocked."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import sqlite3
import stat
import subprocess
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from shareutil import user_id

from conftest import Client, check_openapi
from hubtest import HubProcess
from jobutil import job, server_base, started, stop_and_wait
from standins.globus import TRANSFER_RS, GlobusStandin
from uws_hub.scopes import CUSTOM_SCOPES

ALLOWED = str(uuid.uuid4())
OTHER = str(uuid.uuid4())
ADMINS = str(uuid.uuid4())
NAMES = [
    "uwsg-alice",
    "uwsg-alice-gmail",
    "uwsg-bob",
    "uwsg-pat-tokenportal",
    "uwsg-carl",
    "uwsg-ada",
    "uwsg-dora",
    "uwsg-lee-tokenportal",
    "uwsg-max-tokenportal",
    "uwsg-lee-wideportal",
    "uwsg-kim-badportal",
    "uwsg-eve",
    "uwsg-gus",
]
PORTAL_TOKEN = secrets.token_hex(16)
WIDE_PORTAL_TOKEN = secrets.token_hex(16)
BAD_PORTAL_TOKEN = secrets.token_hex(16)
#: a portal page Globus sends people back to (never fetched: the tests read the redirect)
PORTAL_REDIRECT = "https://portal.example.org/globus/callback?from=uws"
#: registered with the hub's Globus app, but not in c.UWS.globus_redirect_urls
UNLISTED_REDIRECT = "https://elsewhere.example.org/callback"
#: UWS's scopes (GlobusUserAuthentication's OAuth mode), c.UWS.globus_oauth_scopes' default
UWS_SCOPES = [
    "openid",
    "profile",
    "email",
    "urn:globus:auth:scope:transfer.api.globus.org:all",
    "urn:globus:auth:scope:auth.globus.org:view_identities",
    "urn:globus:auth:scope:groups.api.globus.org:all",
]


def userdel(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


def person(username: str, groups=(ALLOWED,), **kw) -> dict:
    return {
        "sub": kw.pop("sub", str(uuid.uuid4())),
        "username": username,
        "name": kw.pop("name", "Test Person"),
        "email": kw.pop("email", username),
        "identity_provider": str(uuid.uuid4()),
        "identity_provider_display_name": username.split("@")[1],
        "groups": list(groups),
        **kw,
    }


@pytest.fixture(scope="module")
def globus():
    g = GlobusStandin().start()
    g.add_group(ALLOWED, "uws users")
    g.add_group(OTHER, "another project")
    g.add_group(ADMINS, "hub operators")
    yield g
    g.stop()


def globus_login_settings(
    globus: GlobusStandin, hub: HubProcess, cls: str = "UWSGlobusAuthenticator"
) -> str:
    """Settings for `hub` to log people in at the Globus stand-in as its client "uws-hub"
    (registered here, for the hub's callback URL); `cls` is the authenticator class they set."""
    globus.add_client("uws-hub", "hub-secret", [f"{hub.url}/hub/oauth_callback"])
    urls = "\n".join(f"c.{cls}.{k} = {v!r}" for k, v in globus.authenticator_config().items())
    return f"""
c.{cls}.client_id = "uws-hub"
c.{cls}.client_secret = "hub-secret"
c.{cls}.oauth_callback_url = "{hub.url}/hub/oauth_callback"
{urls}
"""


@pytest.fixture(scope="module")
def ghub(globus, hub_factory):
    for n in NAMES:
        userdel(n)
    settings = f"""
c.JupyterHub.authenticator_class = "uws-globus"
c.UWSGlobusAuthenticator.allowed_globus_groups = {{"{ALLOWED}"}}
c.UWSGlobusAuthenticator.admin_globus_groups = {{"{ADMINS}"}}
c.UWSGlobusAuthenticator.admin_users = {{"uwsg-dora"}}  # account names, as in any hub
c.UWSGlobusAuthenticator.identity_providers = {{"uni-a.edu", "gmail.com", "portal.org"}}
c.AccountMapping.create_accounts = True
c.AccountMapping.home_domains = ["uni-a.edu"]
c.JupyterHub.services.append({{"name": "token-portal", "api_token": "{PORTAL_TOKEN}"}})
c.JupyterHub.services.append({{"name": "wide-portal", "api_token": "{WIDE_PORTAL_TOKEN}"}})
c.JupyterHub.services.append({{"name": "bad-portal", "api_token": "{BAD_PORTAL_TOKEN}"}})
c.UWS.token_client_services = {{"token-portal", "wide-portal", "bad-portal"}}
c.UWS.token_client_scopes = {{
    # this portal's tokens may also read the person's hub profile and open their jobs
    "wide-portal": [
        *uws_hub.scopes.token_api_scopes("uws"), "read:users!user", "access:servers!user"
    ],
    # scopes people do not hold: refused
    "bad-portal": ["custom:uws:admin:quotas"],
}}
c.UWS.globus_redirect_urls = {{"{PORTAL_REDIRECT}"}}
"""
    h = hub_factory(
        "globus",
        auth_state=True,
        extra_config=lambda h: globus_login_settings(globus, h) + settings,
    )
    # the portal's pages are registered with the hub's Globus app as well (Globus redirects
    # only to registered URLs)
    globus.add_client(
        "uws-hub",
        "hub-secret",
        [f"{h.url}/hub/oauth_callback", PORTAL_REDIRECT, UNLISTED_REDIRECT],
    )
    yield h
    hub_factory.release(h)
    for n in NAMES:
        userdel(n)


def globus_login(hub: HubProcess, globus: GlobusStandin, who: dict | None):
    """The browser's part of the OAuth dance; returns (session, the hub's final answer)."""
    if who is not None:
        globus.set_login(who)
    s = requests.Session()
    r = s.get(f"{hub.url}/hub/oauth_login", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"].startswith(globus.url), r.text
    r = s.get(r.headers["Location"], allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    r = s.get(r.headers["Location"], allow_redirects=False, timeout=60)
    return s, r


def identities(hub) -> list[tuple]:
    with sqlite3.connect(hub.dir / "uws.sqlite") as db:
        return db.execute(
            "SELECT i.source, i.external_id, i.external_username, u.name, u.uid "
            "FROM uws_external_identities i JOIN uws_users u ON u.id = i.user_id ORDER BY i.id"
        ).fetchall()


def test_two_alices_are_two_people(ghub, globus):
    home = person("uwsg-alice@uni-a.edu")
    other = person("uwsg-alice@gmail.com")
    _, r = globus_login(ghub, globus, home)
    assert r.status_code == 302, r.text[-800:]
    _, r = globus_login(ghub, globus, other)
    assert r.status_code == 302, r.text[-800:]
    a, g = pwd.getpwnam("uwsg-alice"), pwd.getpwnam("uwsg-alice-gmail")
    assert a.pw_uid != g.pw_uid
    users = {u["name"] for u in ghub.hub_api("GET", "users").json()}
    assert {"uwsg-alice", "uwsg-alice-gmail"} <= users and "uwsg-alice@uni-a.edu" not in users
    # the same person again (new username at Globus, same sub): the same account
    home["username"] = "uwsg-alice.l@uni-a.edu"
    _, r = globus_login(ghub, globus, home)
    assert r.status_code == 302
    rows = [r for r in identities(ghub) if r[0] == "globus"]
    assert [(r[1], r[3]) for r in rows][:2] == [
        (home["sub"], "uwsg-alice"),
        (other["sub"], "uwsg-alice-gmail"),
    ]
    assert rows[0][2] == "uwsg-alice.l@uni-a.edu"


def test_group_allow_list_is_checked_at_every_login(ghub, globus):
    bob = person("uwsg-bob@uni-a.edu", groups=[ALLOWED])
    _, r = globus_login(ghub, globus, bob)
    assert r.status_code == 302
    globus.set_groups(bob["sub"], [OTHER])  # removed from the allowed group
    _, r = globus_login(ghub, globus, None)
    assert r.status_code == 403
    assert "not a member of a group that may use this hub" in r.text
    assert "Traceback" not in r.text


def test_groups_api_down_fails_closed(ghub, globus):
    carl = person("uwsg-carl@uni-a.edu")
    globus.set_failure("/v2/groups/my_groups", status=503)
    try:
        _, r = globus_login(ghub, globus, carl)
    finally:
        globus.clear_failures()
    assert r.status_code == 503
    assert "your access cannot be checked" in r.text
    assert "uwsg-carl" not in {u["name"] for u in ghub.hub_api("GET", "users").json()}
    with pytest.raises(KeyError):
        pwd.getpwnam("uwsg-carl")  # no account for a login that did not pass


def test_admins_by_group_and_by_account_name(ghub, globus):
    _, r = globus_login(ghub, globus, person("uwsg-ada@uni-a.edu", groups=[ADMINS]))
    assert r.status_code == 302, r.text[-500:]
    assert ghub.hub_api("GET", "users/uwsg-ada").json()["admin"] is True
    _, r = globus_login(ghub, globus, person("uwsg-dora@uni-a.edu", groups=[ALLOWED]))
    assert r.status_code == 302, r.text[-500:]
    assert ghub.hub_api("GET", "users/uwsg-dora").json()["admin"] is True
    assert ghub.hub_api("GET", "users/uwsg-alice").json()["admin"] is False


def test_identity_provider_restriction(ghub, globus):
    _, r = globus_login(ghub, globus, person("uwsg-mallory@evil.org"))
    assert r.status_code == 403
    assert "which this hub does not accept" in r.text


def test_job_gets_only_the_tokens_it_needs_in_a_private_file(ghub, globus):
    alice = person("uwsg-alice@uni-a.edu")
    alice["sub"] = identities(ghub)[0][1]  # the home alice of the first test
    _, r = globus_login(ghub, globus, alice)
    assert r.status_code == 302
    c = Client.of(ghub, "uwsg-alice")
    ws = c.post("workspaces/", json={"name": "globus", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(c, ws["id"], job_type="test_job", resource="local")
    environ = dict(
        kv.split(b"=", 1)
        for kv in open(f"/proc/{j['resource_job_id']}/environ", "rb").read().split(b"\0")
        if b"=" in kv
    )
    assert b"GLOBUS_DATA" not in environ
    assert not any(b"access_token" in v or b"refresh" in k.lower() for k, v in environ.items())
    path = environ[b"UWS_GLOBUS_TOKENS_FILE"].decode()
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == pwd.getpwnam("uwsg-alice").pw_uid
    tokens = json.loads(open(path).read())
    assert set(tokens) == {TRANSFER_RS}
    assert tokens[TRANSFER_RS]["access_token"] in {
        t["token"] for t in globus.tokens_for(alice["sub"], TRANSFER_RS, active_only=True)
    }
    assert "refresh_token" not in json.dumps(tokens)
    stop_and_wait(c, j["id"])
    assert not os.path.exists(path)  # removed when the job ends
    assert job(c, j["id"])["status"] == "complete"


def test_expired_tokens_are_refreshed_before_a_job_starts(ghub, globus):
    alice_sub = identities(ghub)[0][1]
    globus.set_login(globus.identity(alice_sub))
    _, r = globus_login(ghub, globus, None)
    assert r.status_code == 302
    globus.expire_all()  # every access token lapses; the refresh tokens still work
    globus.clear_requests()
    c = Client.of(ghub, "uwsg-alice")
    ws = c.post("workspaces/", json={"name": "refresh", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(c, ws["id"], job_type="test_job", resource="local")
    environ = open(f"/proc/{j['resource_job_id']}/environ", "rb").read().split(b"\0")
    path = next(v for v in environ if v.startswith(b"UWS_GLOBUS_TOKENS_FILE=")).split(b"=", 1)[1]
    token = json.loads(open(path).read())[TRANSFER_RS]["access_token"]
    info = globus.token_info(token)
    assert info and info["active"] and info["grant"] == "refresh_token"
    refreshes = [
        q
        for q in globus.requests_to("/v2/oauth2/token", "POST")
        if q.form().get("grant_type") == "refresh_token"
    ]
    assert len(refreshes) >= 2  # the login token, groups and transfer: each its own refresh
    stop_and_wait(c, j["id"])


def test_someone_removed_from_the_group_cannot_start_jobs(ghub, globus):
    """bob was removed from the allowed group (an earlier test); his old session may not
    start jobs: the refresh before the start finds out."""
    bob = Client.of(ghub, "uwsg-bob")
    ws = bob.post("workspaces/", json={"name": "bob", "description": "d"}).json()["data"][
        "workspace"
    ]
    r = bob.put(f"workspaces/{ws['id']}/start/", json={"job_type": "test_job", "resource": "local"})
    assert r.status_code in (400, 403), r.text
    assert "login again" in r.json()["message"]
    jobs = bob.get("jobs/", params={"workspace_id": ws["id"]}).json()["data"]["jobs"]
    assert [j["status"] for j in jobs] == ["failed"]


# ---- POST /api/tokens/ --------------------------------------------------------------------


def hub_as(ghub, method: str, path: str, token: str, **kw) -> requests.Response:
    return requests.request(
        method,
        f"{ghub.url}/hub/api/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kw,
    )


#: what a hub user model holds beyond the identity ("identify" scopes: name, admin, groups)
NOT_IN_GROUPS = (
    "User is not a member of any allowed Globus groups. Please contact your administrator for "
    "access."
)
PROFILE = {"servers", "auth_state", "last_activity", "created", "roles", "pending"}


def tokens_api(hub, body, headers=None):
    r = requests.post(
        f"{hub.url}/services/uws/api/tokens/", json=body, headers=headers or {}, timeout=30
    )
    check_openapi(r)
    return r


def test_globus_token_gives_the_same_user_as_the_login(ghub, globus):
    sub = identities(ghub)[0][1]
    auth_tokens = globus.tokens_for(sub, "auth.globus.org", active_only=True)
    r = tokens_api(ghub, {"auth_token": auth_tokens[-1]["token"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] and body["data"]["username"] == "uwsg-alice"
    who = requests.get(
        f"{ghub.url}/hub/api/user", headers={"Authorization": f"token {body['token']}"}, timeout=30
    ).json()
    assert who["name"] == "uwsg-alice"
    ws = requests.get(
        f"{ghub.url}/services/uws/api/workspaces/",
        headers={"Authorization": f"token {body['token']}"},
        timeout=30,
    )
    assert ws.status_code == 200
    # for the uws API only (c.UWS.globus_token_scopes is not set): no servers, no hub profile,
    # no more tokens
    token = body["token"]
    assert not PROFILE & set(hub_as(ghub, "GET", "users/uwsg-alice", token).json())
    assert hub_as(ghub, "POST", "users/uwsg-alice/servers/x", token, json={}).status_code == 403
    assert hub_as(ghub, "POST", "users/uwsg-alice/tokens", token, json={}).status_code == 403
    # an expired Globus token is refused and changes nothing
    globus.expire_token(auth_tokens[-1]["token"])
    r = tokens_api(ghub, {"auth_token": auth_tokens[-1]["token"]})
    assert r.status_code == 401
    assert r.json()["message"] == "Incorrect authentication credentials."  # UWS's text
    assert "not active" in r.json()["detail"]


def test_globus_token_of_someone_outside_the_groups_is_refused(ghub, globus):
    bob_sub = next(r[1] for r in identities(ghub) if r[3] == "uwsg-bob")
    tok = globus.tokens_for(bob_sub, "auth.globus.org", active_only=True)[-1]["token"]
    r = tokens_api(ghub, {"auth_token": tok})
    assert r.status_code == 403, r.text
    assert r.json()["message"] == NOT_IN_GROUPS  # UWS's text; the hub's advice beside it
    assert "not a member of a group" in r.json()["detail"]


# ---- the Globus browser mode (UWS's authentication_type "oauth") -------------------------------


def globus_auth_uri(ghub, globus, **extra) -> tuple[str, dict]:
    """Call 1: the authorize URL for the portal's page, and its query."""
    r = tokens_api(ghub, {"redirect_url": PORTAL_REDIRECT, **extra})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"auth_uri"}  # UWS's answer as it is: no success/message envelope
    uri = r.json()["auth_uri"]
    assert uri.startswith(globus.authorize_url + "?")
    return uri, dict(parse_qsl(urlsplit(uri).query))


def globus_code(globus, uri: str, who: dict | None) -> tuple[str, str]:
    """The browser at Globus (as `who`): the code and state it brings back to the portal."""
    if who is not None:
        globus.set_login(who)
    r = requests.get(uri, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    back = r.headers["Location"]
    assert back.startswith(PORTAL_REDIRECT.split("?")[0])
    query = dict(parse_qsl(urlsplit(back).query))
    assert query["from"] == "uws"  # the portal's own query is kept
    return query["code"], query["state"]


def test_globus_browser_mode_gives_a_token(ghub, globus):
    eve = person("uwsg-eve@uni-a.edu", groups=[ALLOWED])
    uri, query = globus_auth_uri(ghub, globus)
    assert query["client_id"] == "uws-hub" and query["redirect_uri"] == PORTAL_REDIRECT
    assert query["scope"].split() == UWS_SCOPES and query["response_type"] == "code"
    assert query["access_type"] == "online"  # the hub keeps no Globus token: no refresh token
    assert len(query["state"]) >= 16
    code, state = globus_code(globus, uri, eve)
    assert state == query["state"]  # what the portal checks
    r = tokens_api(ghub, {"redirect_url": PORTAL_REDIRECT, "code": code})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["message"] == "Successful authentication."
    assert body["data"]["username"] == "uwsg-eve"
    eve_client = Client(ghub, body["token"], header="uws", name="uwsg-eve")
    ws = eve_client.get("workspaces/")
    assert ws.status_code == 200 and ws.json()["data"]["workspaces"] == []
    assert eve_client.post("workspaces/", json={"name": "e", "description": "d"}).ok
    # the same person as at a Globus login: identity keyed by the Globus sub, a real account
    row = next(r for r in identities(ghub) if r[3] == "uwsg-eve")
    assert row[:3] == ("globus", eve["sub"], "uwsg-eve@uni-a.edu")
    assert pwd.getpwnam("uwsg-eve").pw_uid == row[4]
    listed = ghub.hub_api("GET", "users/uwsg-eve/tokens").json()["api_tokens"]
    assert [t["note"] for t in listed] == ["uws token for a Globus login"]
    # a code works once (Globus's rule): UWS's 401, what happened beside it
    again = tokens_api(ghub, {"redirect_url": PORTAL_REDIRECT, "code": code})
    assert again.status_code == 401
    assert again.json()["message"] == "Incorrect authentication credentials."
    assert "invalid_grant" in again.json()["detail"]
    # neither the code nor any Globus token of the exchange is in the logs
    log = ghub.log_path.read_text(errors="replace")
    issued = [t["token"] for t in globus.tokens_for(eve["sub"], kind=None)]
    assert issued and not [s for s in [code, *issued] if s in log]
    # and the hub keeps no Globus token: every one the code gave is revoked at Globus
    grant = [
        t for t in globus.tokens_for(eve["sub"], kind=None) if t["grant"] == "authorization_code"
    ]
    assert {t["resource_server"] for t in grant} >= {"auth.globus.org", "groups.api.globus.org"}
    deadline = time.monotonic() + 15
    while any(t["active"] for t in grant):
        assert time.monotonic() < deadline, [(t["resource_server"], t["active"]) for t in grant]
        time.sleep(0.2)
        grant = [globus.token_info(t["token"]) for t in grant]
    assert all(t["revoked"] for t in grant)


def test_globus_browser_mode_state_and_retries(ghub, globus):
    """The portal's own state goes through; call 1 is never replayed (nothing to replay: each
    gets its own state); call 2 with an Idempotency-Key answers the same token again although
    Globus would not take the code twice."""
    uri, query = globus_auth_uri(ghub, globus, state="portal-7f3a")
    assert query["state"] == "portal-7f3a"
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    one = requests.post(
        f"{ghub.url}/services/uws/api/tokens/",
        json={"redirect_url": PORTAL_REDIRECT},
        headers=headers,
        timeout=30,
    )
    two = requests.post(
        f"{ghub.url}/services/uws/api/tokens/",
        json={"redirect_url": PORTAL_REDIRECT},
        headers=headers,
        timeout=30,
    )
    assert one.status_code == two.status_code == 200 and "Idempotent-Replayed" not in two.headers
    assert one.json()["auth_uri"] != two.json()["auth_uri"]  # different random states
    eve = globus.identity(next(r[1] for r in identities(ghub) if r[3] == "uwsg-eve"))
    code, state = globus_code(globus, uri, {**eve, "groups": [ALLOWED]})
    assert state == "portal-7f3a"
    body = {"redirect_url": PORTAL_REDIRECT, "code": code}
    first = tokens_api(ghub, body, headers)
    assert first.status_code == 200, first.text
    replay = tokens_api(ghub, body, headers)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["token"] == first.json()["token"]
    # the kept answer opens only with the same code: another key is a new exchange, refused
    other = tokens_api(ghub, body, {"Idempotency-Key": str(uuid.uuid4())})
    assert other.status_code == 401


def test_globus_browser_mode_outside_the_groups_is_refused(ghub, globus):
    gus = person("uwsg-gus@uni-a.edu", groups=[OTHER])
    before = identities(ghub)
    uri, _ = globus_auth_uri(ghub, globus)
    code, _ = globus_code(globus, uri, gus)
    r = tokens_api(ghub, {"redirect_url": PORTAL_REDIRECT, "code": code})
    assert r.status_code == 403, r.text
    assert r.json()["message"] == NOT_IN_GROUPS
    assert "not a member of a group that may use this hub" in r.json()["detail"]
    assert identities(ghub) == before
    with pytest.raises(KeyError):
        pwd.getpwnam("uwsg-gus")  # no account for a login that did not pass
    assert ghub.hub_api("GET", "users/uwsg-gus").status_code == 404


def test_globus_browser_mode_without_the_groups_scope(ghub, globus):
    """A login whose scopes do not include the groups scope, on a hub that checks groups: UWS's
    403. (The stand-in's authorize endpoint takes the scopes the URL names, as Globus does;
    the URL is altered here as a portal could.)"""
    uri, query = globus_auth_uri(ghub, globus)
    query["scope"] = "openid profile email"
    eve = globus.identity(next(r[1] for r in identities(ghub) if r[3] == "uwsg-eve"))
    code, _ = globus_code(globus, f"{globus.authorize_url}?{urlencode(query)}", eve)
    r = tokens_api(ghub, {"redirect_url": PORTAL_REDIRECT, "code": code})
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "Groups token not available for authentication."
    assert "groups scope" in r.json()["detail"]


def test_trusted_client(ghub):
    info = {"username": "uwsg-pat", "email": "pat@portal.org", "first_name": "Pat"}
    r = tokens_api(ghub, {"client_token": PORTAL_TOKEN, "user_info": info})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["data"]["username"] == "uwsg-pat-tokenportal"  # the portal's namespace
    again = tokens_api(ghub, {"client_token": PORTAL_TOKEN, "user_info": info}).json()
    assert (
        again["data"]["username"] == first["data"]["username"] and again["token"] != first["token"]
    )
    assert pwd.getpwnam("uwsg-pat-tokenportal").pw_uid >= 1000
    # it is an ordinary hub token: listed with an expiry, and revocable
    listed = ghub.hub_api("GET", "users/uwsg-pat-tokenportal/tokens").json()["api_tokens"]
    assert len(listed) == 2 and all(t["expires_at"] for t in listed)
    headers = {"Authorization": f"token {first['token']}"}
    assert requests.get(f"{ghub.url}/hub/api/user", headers=headers, timeout=30).status_code == 200
    for t in listed:
        ghub.hub_api("DELETE", f"users/uwsg-pat-tokenportal/tokens/{t['id']}")
    assert requests.get(f"{ghub.url}/hub/api/user", headers=headers, timeout=30).status_code == 403


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"user_info": {"username": "x", "email": "x@y.org"}}, 400, "Missing client_token"),
        ({"client_token": PORTAL_TOKEN}, 400, "Missing user_info"),
        (
            {"client_token": PORTAL_TOKEN, "user_info": {"username": "x"}},
            400,  # UWS's text (§1.2: its defect answered 401; docs/api.md)
            "Missing username or email in user_info.",
        ),
        (
            {"client_token": PORTAL_TOKEN, "user_info": {"username": "x", "email": "nope"}},
            400,
            "not an e-mail",
        ),
        (
            {"client_token": "wrong", "user_info": {"username": "x", "email": "x@y.org"}},
            401,
            "not valid",
        ),
        ({"auth_token": ""}, 400, "Missing auth_token."),
        # characters that cannot travel in an HTTP header (the client token is sent on to the
        # hub in one): a 400 that says what a token is, not a 500
        (
            {"client_token": "abc\u20ac\u4e2d", "user_info": {"username": "x", "email": "x@y.org"}},
            400,
            "client_token must be a token",
        ),
        (
            {"client_token": "caf\u00e9", "user_info": {"username": "x", "email": "x@y.org"}},
            400,
            "client_token must be a token",
        ),
        (
            {"client_token": 12345, "user_info": {"username": "x", "email": "x@y.org"}},
            400,
            "client_token must be a token",
        ),
        ({"auth_token": "Ag\u2603"}, 400, "auth_token must be a token"),
        # the Globus browser mode
        ({"code": "abc"}, 400, "Missing redirect url."),
        ({"redirect_url": ""}, 400, "Missing redirect url."),
        ({"redirect_url": 7, "code": "abc"}, 400, "Missing redirect url."),
        ({"redirect_url": PORTAL_REDIRECT, "code": ""}, 400, "Missing code."),
        ({"redirect_url": PORTAL_REDIRECT, "code": "c\u2603"}, 400, "code must be a token"),
        ({"redirect_url": PORTAL_REDIRECT, "state": "a b"}, 400, "state must be"),
        ({"redirect_url": UNLISTED_REDIRECT}, 400, "The redirect url is not allowed."),
        ({"redirect_url": UNLISTED_REDIRECT, "code": "abc"}, 400, "c.UWS.globus_redirect_urls"),
        (
            {"redirect_url": PORTAL_REDIRECT, "code": "never-issued"},
            401,
            "Incorrect authentication credentials.",
        ),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_token_endpoint_misuse(ghub, body, status, message):
    before = len(identities(ghub))
    r = tokens_api(ghub, body)
    assert r.status_code == status, r.text
    # UWS's text where it has one; uws_hub's advice beside it
    assert message in r.json()["message"] + " " + r.json().get("detail", "")
    assert len(identities(ghub)) == before


def test_client_without_the_role_is_refused(ghub):
    user_token = ghub.token_for("uwst-alice")  # an ordinary user's token
    r = tokens_api(
        ghub, {"client_token": user_token, "user_info": {"username": "x", "email": "x@y.org"}}
    )
    # UWS's text (§1.2; its defect answered 401, docs/api.md); what to do in detail
    assert r.status_code == 403
    assert r.json()["message"] == (
        "Token is invalid for api_authentication. Please contact administrator to generate "
        "valid token."
    )
    assert "uws-token-client" in r.json()["detail"]


def test_client_token_in_header_with_other_characters(ghub):
    """The client token in the Authorization header: Latin-1 characters the header can carry
    are refused the same way (400), never sent on."""
    r = requests.post(
        f"{ghub.url}/services/uws/api/tokens/",
        data=json.dumps({"user_info": {"username": "x", "email": "x@y.org"}}),
        headers={"Authorization": "token caf\u00e9".encode("latin-1")},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert "client_token must be a token" in r.json()["message"]


# ---- least privilege of exchanged tokens ----------------------------------------------------


def test_exchanged_token_is_for_the_uws_api_only(ghub):
    info = {"username": "uwsg-lee", "email": "lee@portal.org"}
    r = tokens_api(ghub, {"client_token": PORTAL_TOKEN, "user_info": info})
    assert r.status_code == 200, r.text
    name, token = r.json()["data"]["username"], r.json()["token"]
    assert name == "uwsg-lee-tokenportal"
    listed = ghub.hub_api("GET", f"users/{name}/tokens").json()["api_tokens"]
    held = set(listed[-1]["scopes"])  # as the hub lists them: expanded, filters resolved
    assert {
        "access:services!service=uws",
        f"custom:uws:workspaces!user={name}",
        f"custom:uws:jobs!user={name}",
        f"custom:uws:shares!user={name}",
        f"custom:uws:read:quota!user={name}",
        "custom:uws:users:search",
    } <= held
    # (the hub adds its "identify" scopes to every token: the owner's name and groups)
    identify = {"read:users:name", "read:users:groups"}
    assert {s.split("!")[0] for s in held} <= {"access:services", *identify, *CUSTOM_SCOPES}
    assert not {s for s in held if s.startswith("custom:uws:admin")}
    # the hub's own API: it may say who it is (any token may), nothing more
    me = hub_as(ghub, "GET", "user", token)
    assert me.status_code == 200 and me.json()["name"] == name
    assert not PROFILE & set(me.json()), me.json()
    assert {s.split("!")[0] for s in me.json()["scopes"]} <= {
        "access:services",
        *identify,
        *CUSTOM_SCOPES,
    }
    profile = hub_as(ghub, "GET", f"users/{name}", token)  # the same identity, no profile
    assert profile.status_code == 200 and not PROFILE & set(profile.json()), profile.json()
    assert hub_as(ghub, "POST", f"users/{name}/servers/mine", token, json={}).status_code == 403
    assert hub_as(ghub, "POST", f"users/{name}/tokens", token, json={}).status_code == 403
    assert hub_as(ghub, "GET", f"users/{name}/tokens", token).status_code == 403
    # ... while everything of the uws API works with it
    other = tokens_api(
        ghub,
        {"client_token": PORTAL_TOKEN, "user_info": {"username": "uwsg-max", "email": "m@x.org"}},
    )
    assert other.status_code == 200, other.text
    lee = Client(ghub, token, name=name)
    ws = lee.post("workspaces/", json={"name": "least", "description": "d"}).json()["data"][
        "workspace"
    ]
    assert lee.get(f"workspaces/{ws['id']}/").status_code == 200
    assert lee.get("users/me/quota").status_code == 200
    r = lee.put(f"workspaces/{ws['id']}/upload/", files={"f": ("r.txt", b"data")})
    assert r.status_code == 200, r.text
    j = started(lee, ws["id"], job_type="test_job", resource="local")
    assert j["job_details"]["current_job_details"]["connection_details"]["url_path"]
    with requests.get(  # the job's event stream
        f"{ghub.url}/services/uws/api/jobs/{j['id']}/events",
        headers={"Authorization": f"token {token}"},
        stream=True,
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        first = next(
            line for line in resp.iter_lines(decode_unicode=True) if line.startswith("data: ")
        )
        assert json.loads(first[6:])["status"] == "running"
    # the job's JupyterLab is opened through the hub login, not with this token
    r = requests.get(
        server_base(j) + "whoami",
        headers={"Authorization": f"token {token}"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 403, r.text
    # live sharing of the running job, and sharing the workspace by copy
    r = lee.post(f"jobs/{j['id']}/shares/", json={"user": "uwsg-max-tokenportal"})
    assert r.status_code == 200, r.text
    assert [s["user"] for s in lee.get(f"jobs/{j['id']}/shares/").json()["data"]["shares"]] == [
        "uwsg-max-tokenportal"
    ]
    assert lee.delete(f"jobs/{j['id']}/shares/", json={"user": "uwsg-max-tokenportal"}).ok
    max_id = user_id(lee, "uwsg-max-tokenportal")
    r = lee.post(
        "shared_workspaces/", json={"original_workspace_id": ws["id"], "shared_user_ids": [max_id]}
    )
    assert r.status_code == 200, r.text
    share_id = r.json()["data"]["shared_workspaces"][0]["id"]
    assert stop_and_wait(lee, j["id"])["status"] == "complete"
    assert lee.delete(f"shared_workspaces/{share_id}/").status_code == 200  # withdrawn
    r = lee.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 200, r.text


def test_a_configured_client_gets_wider_scopes(ghub):
    info = {"username": "uwsg-lee", "email": "lee@portal.org"}
    r = tokens_api(ghub, {"client_token": WIDE_PORTAL_TOKEN, "user_info": info})
    assert r.status_code == 200, r.text
    name, token = r.json()["data"]["username"], r.json()["token"]
    assert name == "uwsg-lee-wideportal"
    profile = hub_as(ghub, "GET", f"users/{name}", token)
    assert profile.status_code == 200 and "last_activity" in profile.json()  # read:users!user
    assert hub_as(ghub, "POST", f"users/{name}/tokens", token, json={}).status_code == 403
    lee = Client(ghub, token, name=name)
    ws = lee.post("workspaces/", json={"name": "wide", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(lee, ws["id"], job_type="test_job", resource="local")
    r = requests.get(
        server_base(j) + "whoami", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert r.status_code == 200 and r.json()["requester"] == name  # access:servers!user
    stop_and_wait(lee, j["id"])


def test_a_client_configured_with_scopes_people_lack_is_refused(ghub):
    info = {"username": "uwsg-kim", "email": "kim@portal.org"}
    r = tokens_api(ghub, {"client_token": BAD_PORTAL_TOKEN, "user_info": info})
    assert r.status_code == 403, r.text
    message = r.json()["message"]
    assert "c.UWS.token_client_scopes['bad-portal']" in message and "admin:quotas" in message
    assert ghub.hub_api("GET", "users/uwsg-kim-badportal/tokens").json()["api_tokens"] == []


@pytest.mark.parametrize(
    "authenticator, granted",
    [("uws-globus", True), ("uws-account-api", True), ("uws-dev", False), (None, False)],
)
def test_the_service_reads_auth_state_only_on_globus_hubs(tmp_path, authenticator, granted):
    """The service's role gets admin:auth_state (to renew jobs' Globus tokens) only where
    logins are Globus logins."""
    from traitlets.config import Config

    import uws_hub

    c = Config()
    c.UWS.root_dir = str(tmp_path)
    c.UWS.db_url = f"sqlite:///{tmp_path}/uws.sqlite"
    if authenticator:
        c.JupyterHub.authenticator_class = authenticator
    uws_hub.setup(c, config_file=str(tmp_path / "jupyterhub_config.py"))
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "uws-service")
    assert ("admin:auth_state" in role["scopes"]) is granted


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("token_client_scopes", {"portal": []}, "must be a non-empty list of scopes"),
        ("token_client_scopes", {"portal": ["read:users !user"]}, "which is not a scope"),
        ("token_client_scopes", {"portal": ["custom:uws:jobz!user"]}, "no scope custom:uws:jobz"),
        ("globus_token_scopes", ["custom:uws:nope"], "c.UWS.globus_token_scopes has"),
    ],
)
def test_token_scope_settings_are_checked(tmp_path, setting, value, message):
    from traitlets.config import Config

    from uws_hub.config import UWS
    from uws_hub.errors import ConfigError

    c = Config()
    c.UWS.root_dir = str(tmp_path)
    c.UWS.db_url = f"sqlite:///{tmp_path}/uws.sqlite"
    c.UWS[setting] = value
    with pytest.raises(ConfigError, match=message):
        UWS(config=c).validate()
