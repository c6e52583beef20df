"""Who may call what: tokens in every accepted header, scopes, 401/403/404, the browser cookie
with XSRF, services and admins acting for users, CORS for portals, revocation."""

from __future__ import annotations

import time

import pytest
import requests

from conftest import Client, empty_answer
from hubtest import hub_login


def test_no_token_is_401(anon, alice, make_workspace):
    ws = make_workspace()
    for method, path in [
        ("GET", "workspaces/"),
        ("POST", "workspaces/"),
        ("GET", f"workspaces/{ws['id']}/"),
        ("PUT", f"workspaces/{ws['id']}/"),
        ("PUT", f"workspaces/{ws['id']}/upload/"),
        ("DELETE", f"workspaces/{ws['id']}/"),
    ]:
        r = anon.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.text)
        # UWS's text (UWS-REFERENCE §1.1); what to do next in the detail beside it
        assert r.json()["message"] == "Authentication credentials were not provided."
        assert "Authorization: token" in r.json()["detail"]
    assert alice.get(f"workspaces/{ws['id']}").status_code == 200


def test_invalid_token_is_401(hub):
    c = Client(hub, "not-a-real-token")
    r = c.get("workspaces/")
    assert r.status_code == 401
    assert r.json()["message"] == "Invalid token provided."
    assert "/hub/token" in r.json()["detail"]


@pytest.mark.parametrize("value", ["Token", "Token a b", "tokenonly"])
def test_uws_header_not_two_words_is_401_invalid_format(hub, value):
    """UWS splits UWS-Authorization on a space and wants exactly two parts (§1.1)."""
    r = requests.get(
        f"{hub.url}/services/uws/api/workspaces/",
        headers={"UWS-Authorization": value},
        timeout=30,
    )
    assert r.status_code == 401, r.text
    assert r.json()["message"] == "Invalid auth header format."
    assert "UWS-Authorization: Token <token>" in r.json()["detail"]


def test_uws_header_with_an_unknown_token_is_invalid_token(hub):
    r = requests.get(
        f"{hub.url}/services/uws/api/workspaces/",
        headers={"UWS-Authorization": "Token not-a-real-token"},
        timeout=30,
    )
    assert r.status_code == 401
    assert r.json()["message"] == "Invalid token provided."


@pytest.mark.parametrize("header", ["token", "bearer", "uws"])
def test_every_token_header(client_for, header):
    c = client_for("uwst-alice", header=header)
    r = c.get("workspaces/")
    assert r.status_code == 200, r.text
    r = c.post("workspaces/", json={"name": f"via-{header}", "description": "d"})
    assert r.status_code == 200


def test_uws_header_any_case(hub, client_for):
    tok = hub.token_for("uwst-alice")
    for value in (f"Token {tok}", f"token {tok}", f"Bearer {tok}"):
        r = requests.get(
            f"{hub.url}/services/uws/api/workspaces/",
            headers={"UWS-Authorization": value},
            timeout=30,
        )
        assert r.status_code == 200, value


def test_read_only_token(hub, client_for, make_workspace):
    ws = make_workspace()
    reader = client_for(
        "uwst-alice",
        scopes=["access:services!service=uws", "custom:uws:read:workspaces!user=uwst-alice"],
    )
    assert reader.get(f"workspaces/{ws['id']}/").status_code == 200
    for method, path in [
        ("POST", "workspaces/"),
        ("PUT", f"workspaces/{ws['id']}/"),
        ("DELETE", f"workspaces/{ws['id']}/"),
    ]:
        r = reader.request(method, path, json={"name": "n", "description": "d"})
        assert r.status_code == 403, r.text
        assert "custom:uws:workspaces!user=uwst-alice" in r.json()["message"]
        assert "/hub/token" in r.json()["message"]


def test_token_without_service_access(client_for):
    c = client_for("uwst-alice", scopes=["read:users!user=uwst-alice"])
    r = c.get("workspaces/")
    assert r.status_code == 403
    assert "access:services!service=uws" in r.json()["message"]


def test_admin_acts_for_a_user(hub, client_for, make_workspace):
    bob = client_for("uwst-bob")
    ws = make_workspace(bob, name="bobs")
    admin = client_for("uwst-admin")  # a hub admin: holds the uws-admin role
    r = admin.get("workspaces/", params={"user": "uwst-bob"})
    assert r.status_code == 200
    assert ws["id"] in [w["id"] for w in r.json()["data"]["workspaces"]]
    assert admin.get(f"workspaces/{ws['id']}/", params={"user": "uwst-bob"}).status_code == 200
    # without ?user= the admin sees their own workspaces, not bob's
    assert empty_answer(admin.get(f"workspaces/{ws['id']}/"), "workspaces")


def test_service_must_name_the_user(hub):
    portal = Client(hub, hub.admin_token[::-1])  # the test-portal service, with the uws-admin role
    r = portal.get("workspaces/")
    assert r.status_code == 400
    assert "must say which user" in r.json()["message"]
    r = portal.post(
        "workspaces/", params={"user": "uwst-bob"}, json={"name": "from-portal", "description": "d"}
    )
    assert r.status_code == 200, r.text
    assert (hub.root / "uwst-bob" / str(r.json()["data"]["workspace"]["id"])).is_dir()
    # the hub's own admin service has no uws scopes
    admin_svc = Client(hub, hub.admin_token)
    r = admin_svc.get("workspaces/", params={"user": "uwst-bob"})
    assert r.status_code == 403


def test_revoked_token_stops_working(hub):
    tok = hub.token_for("uwst-alice", note="to revoke")
    c = Client(hub, tok)
    assert c.get("workspaces/").status_code == 200
    tokens = hub.hub_api("GET", "users/uwst-alice/tokens").json()["api_tokens"]
    tid = next(t["id"] for t in tokens if t["note"] == "to revoke")
    assert hub.hub_api("DELETE", f"users/uwst-alice/tokens/{tid}").status_code == 204
    deadline = time.monotonic() + 10  # the test hub trusts a token answer for 2 s
    while time.monotonic() < deadline and c.get("workspaces/").status_code == 200:
        time.sleep(0.5)
    assert c.get("workspaces/").status_code == 401


def browser_login(hub, name: str) -> requests.Session:
    s, r = hub_login(hub.url, name, "test-password")
    assert r.status_code == 302, r.text
    return s


def test_browser_cookie_with_xsrf(hub):
    s = browser_login(hub, "uwst-carol")
    r = s.get(f"{hub.url}/services/uws/", timeout=30)  # OAuth round trip through the hub
    assert r.status_code == 200
    assert '<strong id="username">uwst-carol</strong>' in r.text
    assert any(
        h.status_code == 302 and "/hub/api/oauth2/authorize" in h.headers["Location"]
        for h in r.history
    )
    api = f"{hub.url}/services/uws/api/workspaces/"
    assert s.get(api, timeout=30).status_code == 200
    r = s.post(api, json={"name": "cookie", "description": "d"}, timeout=30)
    assert r.status_code == 403
    assert "_xsrf" in r.json()["message"]
    r = s.post(
        api,
        json={"name": "cookie", "description": "d"},
        headers={"X-XSRFToken": "forged"},
        timeout=30,
    )
    assert r.status_code == 403
    xsrf = s.cookies.get("_xsrf", path="/services/uws/")
    r = s.post(
        api, json={"name": "cookie", "description": "d"}, headers={"X-XSRFToken": xsrf}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert (hub.root / "uwst-carol" / str(r.json()["data"]["workspace"]["id"])).is_dir()


def test_page_redirects_to_hub_login(hub):
    r = requests.get(f"{hub.url}/services/uws/", allow_redirects=False, timeout=30)
    assert r.status_code == 302
    assert "/hub/api/oauth2/authorize" in r.headers["Location"]


def test_cors_for_configured_portal_only(hub, alice):
    url = f"{hub.url}/services/uws/api/workspaces/"
    pre = requests.options(
        url,
        headers={
            "Origin": "https://portal.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "UWS-Authorization, Content-Type",
        },
        timeout=30,
    )
    assert pre.status_code == 204 and not pre.history
    assert pre.headers["Access-Control-Allow-Origin"] == "https://portal.example.org"
    assert "UWS-Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    r = alice.get("workspaces/", headers={"Origin": "https://portal.example.org"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://portal.example.org"
    other = requests.options(
        url,
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    r = alice.get("workspaces", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
