"""UWS-REFERENCE §1.14: ``GET /users/?search=<q>``, the people search a portal's share dialog
uses (§6.1), with uws_hub's documented limits (UWS-API.md GET /users/)."""

from __future__ import annotations

import pytest

from .uws import NO_USER, empty, ok, refused

USER_FIELDS = {"id", "first_name", "last_name", "username", "email"}


def search(who, term: str) -> list[dict]:
    return ok(who.api.get("users/", params={"search": term}))["data"]["users"]


def emails(users: list[dict]) -> list[str]:
    return [u["email"] for u in users]


def test_needs_authentication(anon):
    """UWS-REFERENCE §1.14: "Authenticated" (§1.1: 401 "Authentication credentials were not
    provided.")."""
    r = anon.get("users/", params={"search": "contract"})
    refused(r, 401, "Authentication credentials were not provided.")


@pytest.mark.parametrize(
    "term",
    [
        lambda p: p.first_name,
        lambda p: p.last_name.upper(),
        lambda p: f"{p.first_name} {p.last_name}".lower(),
        lambda p: p.email,
        lambda p: p.email.split("@")[0][2:],
    ],
    ids=["first", "LAST", "first last", "email", "email part"],
)
def test_search_by_name_or_email(alice, bob, term):
    """UWS-REFERENCE §1.14: "Searches case-insensitively in "first last" (concatenated) or in
    email" (§9: by email part, first name, last name, "first last"); items `{id, first_name,
    last_name, username, email}`."""
    found = search(alice, term(bob))
    assert bob.email in emails(found), found
    for u in found:
        assert USER_FIELDS <= set(u), u
        assert isinstance(u["id"], int)
    me = [u for u in found if u["email"] == bob.email][0]
    assert (me["first_name"], me["last_name"]) == (bob.first_name, bob.last_name)


def test_search_excludes_the_caller(alice):
    """UWS-REFERENCE §1.14: "Always excludes the caller"."""
    assert alice.email not in emails(search(alice, alice.first_name))
    assert alice.email not in emails(search(alice, alice.email))


def test_username_is_the_portals(alice, bob):
    """UWS-REFERENCE §1.14 `username`: the user the trusted-client login made (§3.1 Local /
    PSC `api_authenticate`: a Django user with the `user_info` username), i.e. the name the
    portal knows the person by."""
    me = [u for u in search(alice, bob.email) if u["email"] == bob.email]
    assert [u["username"] for u in me] == [bob.username], me


def test_no_match_is_200_with_message(alice):
    """UWS-REFERENCE §1.14: "Empty → "Users matching given parameters could not be found.""
    (§9: no match gives 200 with it)."""
    empty(alice.api.get("users/", params={"search": "zzqx-nobody-here"}), "users", NO_USER)


@pytest.mark.parametrize("params", [{}, {"search": ""}, {"search": "a"}])
def test_short_or_missing_term_is_an_empty_list(alice, params):
    """UWS-API.md GET /users/: "a term shorter than 2 characters gives 200 with an empty list
    (the portal's autocomplete calls with an empty term first and fails on any other
    status)" — uws_hub does not list everyone as UWS did without `search` (§1.14)."""
    r = alice.api.get("users/", params=params)
    body = ok(r)
    assert body["data"]["users"] == [], body
