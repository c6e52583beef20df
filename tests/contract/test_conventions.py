"""UWS-REFERENCE §1.1: cross-cutting conventions (paths, auth header, envelope, empty results,
unknown query parameters, JSON bodies, serialization, CORS for the portal)."""

from __future__ import annotations

import pytest

from .uws import (
    NO_JOB,
    NO_SHARE,
    NO_USER,
    NO_WORKSPACE,
    Api,
    describe,
    empty,
    iso,
    ok,
    refused,
)

#: the views with permission_classes=[IsAuthenticated] (§1.1 Permissions)
PROTECTED = ["workspaces/", "jobs/", "users/?search=contract", "shared_workspaces/"]
#: the open ones
OPEN = ["job_types/", "parameters/", "status/"]


@pytest.mark.parametrize("path", PROTECTED)
def test_no_header_is_401_not_provided(anon, path):
    """UWS-REFERENCE §1.1: missing header → 401 "Authentication credentials were not
    provided." with the error envelope."""
    refused(anon.get(path), 401, "Authentication credentials were not provided.")


@pytest.mark.parametrize("value", ["Token", "abc", "Token a b"])
def test_bad_header_format_is_401(api_base, value):
    """UWS-REFERENCE §1.1: the header value must split into exactly two parts on a space,
    else 401 "Invalid auth header format."."""
    r = Api(api_base).get("workspaces/", headers={"UWS-Authorization": value})
    refused(r, 401, "Invalid auth header format.")


def test_unknown_token_is_401_invalid(api_base):
    """UWS-REFERENCE §1.1: unknown token → 401 "Invalid token provided."."""
    refused(Api(api_base, "0" * 32).get("workspaces/"), 401, "Invalid token provided.")


@pytest.mark.parametrize("word", ["Token", "token", "Bearer", "Whatever"])
def test_first_word_of_the_header_is_ignored(api_base, alice, word):
    """UWS-REFERENCE §1.1: "The first word is ignored; clients send `Token`"."""
    api = Api(api_base)
    r = api.get("workspaces/", headers={"UWS-Authorization": f"{word} {alice.api.token}"})
    ok(r)


@pytest.mark.parametrize("path", OPEN)
def test_open_views_need_no_auth(anon, path):
    """UWS-REFERENCE §1.1: job_types, parameters, status are open to everyone."""
    ok(anon.get(path))


@pytest.mark.parametrize(
    "path",
    ["workspaces", "jobs", "job_types", "parameters", "status", "shared_workspaces", "users"],
)
def test_both_slash_forms_answer_directly(alice, path):
    """UWS-REFERENCE §1.1: "A reimplementation should accept both forms" (portal-ui calls
    without the slash); UWS-API.md Conventions: "answering directly (no redirect)"."""
    params = {"search": "contract"} if path == "users" else None
    with_slash = alice.api.get(path + "/", params=params)
    without = alice.api.get(path, params=params)
    ok(with_slash)
    ok(without)
    assert with_slash.json()["message"] == without.json()["message"], describe(without)
    assert set(with_slash.json()) == set(without.json()), describe(without)


def test_ids_without_slash_answer_directly(alice, make_workspace):
    """UWS-REFERENCE §1.1 (portal-ui: `workspaces/{id}` without a slash)."""
    ws = make_workspace(alice, name="no-slash")
    for path in (f"workspaces/{ws['id']}", f"workspaces/{ws['id']}/"):
        assert ok(alice.api.get(path))["data"]["workspaces"][0]["id"] == ws["id"]


def test_envelope_on_success_and_error(alice):
    """UWS-REFERENCE §1.1: success `{"message": str, "success": true, "data": {...}}`; errors
    `{"success": false, "message": <detail>}`."""
    body = ok(alice.api.get("workspaces/"))
    assert isinstance(body["data"], dict)
    err = refused(alice.api.post("workspaces/", json={"name": "only a name"}), 400)
    assert isinstance(err["message"], str) and err["message"]


@pytest.mark.parametrize(
    "path, key, message",
    [
        ("workspaces/?name=zzqx-no-such", "workspaces", NO_WORKSPACE),
        ("workspaces/987654321/", "workspaces", NO_WORKSPACE),
        ("jobs/?job_type=zzqx-no-such", "jobs", NO_JOB),
        ("jobs/987654321/", "jobs", NO_JOB),
        ("users/?search=zzqxnobodyzz", "users", NO_USER),
    ],
)
def test_empty_result_is_200_with_message(carol, path, key, message):
    """UWS-REFERENCE §1.1: "a GET returns 200 with an empty list and a "… could not be
    found." message, not 404, even when an id is given" (§1.3, §1.10, §1.14 texts)."""
    empty(carol.api.get(path), key, message)


def test_empty_shares_is_200_with_message(carol):
    """UWS-REFERENCE §1.15: empty → "Shared workspace matching given parameters could not be
    found." (both lists empty)."""
    r = carol.api.get("shared_workspaces/", params={"is_accepted": "True"})
    body = ok(r, NO_SHARE)
    assert body["data"]["original_workspaces"] == [] == body["data"]["shared_workspaces"]


def test_unknown_query_parameters_are_ignored(alice, make_workspace):
    """UWS-REFERENCE §1.1: "Unknown query parameters are ignored silently"."""
    make_workspace(alice, name="query-params")
    plain = ok(alice.api.get("workspaces/"))["data"]["workspaces"]
    odd = ok(alice.api.get("workspaces/", params={"colour": "blue", "page": "2"}))
    assert odd["data"]["workspaces"] == plain


@pytest.mark.parametrize("body", [b"{not json", b""])
def test_invalid_or_missing_json_is_400(alice, body):
    """UWS-REFERENCE §1.1: "Invalid or missing JSON → 400 "Invalid JSON: …"" (§9: empty or
    missing body → 400)."""
    r = alice.api.post("workspaces/", data=body, headers={"Content-Type": "application/json"})
    refused(r, 400, prefix="Invalid JSON: ")


def test_datetimes_are_iso_strings(alice, make_workspace):
    """UWS-REFERENCE §1.1: datetimes come out as ISO strings."""
    ws = make_workspace(alice, name="iso")
    iso(ws["datetime_created"])
    iso(ws["datetime_last_modified"])
    assert ws["datetime_last_job_launch"] is None or iso(ws["datetime_last_job_launch"])


def test_cors_allows_the_uws_header(api_base, deployment, anon):
    """UWS-REFERENCE §1.1: CORS "adds `UWS-Authorization` to the allowed headers"; UWS-API.md
    Conventions: "CORS is configurable per allowed origin (preflight answered,
    `UWS-Authorization` allowed); no wildcard by default"."""
    origin = deployment.get("origin")
    if not origin:
        pytest.skip("UWS_CONTRACT_ORIGIN not given")
    r = anon.request(
        "OPTIONS",
        "workspaces/",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "uws-authorization,content-type",
        },
    )
    assert r.status_code in (200, 204), describe(r)
    assert r.headers.get("Access-Control-Allow-Origin") == origin, r.headers
    allowed = r.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "uws-authorization" in allowed, r.headers
    # and the answer itself carries the origin, so the browser lets the portal read it
    got = anon.get("status/", headers={"Origin": origin})
    assert got.headers.get("Access-Control-Allow-Origin") == origin, got.headers
