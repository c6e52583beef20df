"""A switched UWS site (issue 15, docs/operations.md "Switching a UWS site"): what a UWS client
had before the switch still answers the same after ``uws-hub import-uws`` — each person's UWS
token lists their workspaces with their UWS ids and nothing more, their ended jobs (counted
against their quota, now a limit), their invitations (a pending one is accepted by its copy's id), the files; the portal's login finds
the same person; new ids continue after the imported ones.

Runs against the suite's own hub (tests/contract/launch_hub.py imports tests/e2e/uwsimport.py's
site before the suite starts); skipped against another deployment. The tests run in file
order: the invitation is accepted last.
"""

from __future__ import annotations

import pytest

from .uws import (
    JOB_FIELDS,
    NO_SHARE,
    NO_WORKSPACE,
    WORKSPACE_FIELDS,
    Api,
    empty,
    iso,
    names,
    ok,
    refused,
    workspace,
)


@pytest.fixture(scope="module")
def imported(deployment) -> dict:
    if not deployment.get("imported"):
        pytest.skip("not a switched UWS site (tests/contract/launch_hub.py makes one)")
    return deployment["imported"]


@pytest.fixture(scope="module")
def apis(api_base, imported) -> dict[str, Api]:
    """Each imported person's API as their scripts call it: with their UWS token."""
    return {name: Api(api_base, token) for name, token in imported["tokens"].items()}


def test_a_uws_token_lists_its_owners_workspaces_and_nothing_more(apis, imported):
    everyone = {i for ids in imported["workspaces"].values() for i in ids}
    for name, api in apis.items():
        listed = ok(api.get("workspaces/"))["data"]["workspaces"]
        mine = imported["workspaces"][name]
        assert sorted(w["id"] for w in listed) == mine, (name, listed)
        for w in listed:
            assert WORKSPACE_FIELDS <= set(w), sorted(w)
            assert w["name"] == imported["names"][str(w["id"])]
            assert w["status"] == "idle"  # "active" in UWS: no job runs it here
            assert iso(w["datetime_created"]) == iso(imported["created"])
        for other in everyone - set(mine):
            empty(api.get(f"workspaces/{other}/"), "workspaces", NO_WORKSPACE)
            refused(
                api.delete(f"workspaces/{other}/"), 404, f"Workspace {other} not found for user."
            )


def test_workspace_details_and_files_came_over(apis, imported):
    ws = workspace(apis["uwsi-ann"], 41)
    assert ws["description"] == "cells" and ws["default_job_type"] == "test_job"
    assert names(ws) == {f"/{f}" for f in imported["files_41"]}
    ann = apis["uwsi-ann"]
    entries = ok(ann.get("workspaces/41/files/", params={"path": ""}))["data"]["entries"]
    kinds = {e["name"]: (e["type"], e.get("target")) for e in entries}
    assert kinds == {
        "data": ("directory", None),
        "latest": ("link", "data/cells.csv"),  # a link stays a link
        "notes.txt": ("file", None),
    }
    got = ann.get("workspaces/41/files/download", params={"path": "notes.txt"})
    assert got.status_code == 200 and got.text == "from UWS\n"


def test_ended_jobs_are_history_and_running_ones_stayed_behind(apis, imported):
    for name, api in apis.items():
        jobs = ok(api.get("jobs/"))["data"]["jobs"]
        assert sorted(j["id"] for j in jobs) == imported["jobs"][name], (name, jobs)
    (job,) = ok(apis["uwsi-ann"].get("jobs/101/"))["data"]["jobs"]
    assert JOB_FIELDS <= set(job), sorted(job)
    assert (job["workspace_id"], job["status"], job["resource_job_id"]) == (41, "complete", 4711)
    assert float(job["core_hours"]) == 2.5
    assert iso(job["datetime_end"]) > iso(job["datetime_start"])


def test_a_uws_quota_is_now_a_limit_and_the_history_counts(apis, imported):
    q = imported["quota"]
    got = ok(apis[q["user"]].get("users/me/quota/"))["data"]
    assert got["disk"]["limit"] == q["disk"]
    assert float(got["core_hours"]["limit"]) == q["core_hours"]
    assert float(got["core_hours"]["used"]) == q["used"]


def test_invitations_keep_their_ids_on_both_sides(apis, imported):
    pending = imported["pending_copy"]
    sent = ok(apis["uwsi-ann"].get("shared_workspaces/"))["data"]["original_workspaces"]
    assert {s["shared_workspace_id"]["id"] for s in sent} == {pending, imported["accepted_copy"]}
    got = ok(apis["uwsi-ben"].get("shared_workspaces/"))["data"]["shared_workspaces"]
    (item,) = got
    assert item["shared_workspace_id"]["id"] == pending and item["is_accepted"] is False
    assert item["original_workspace_id"]["id"] == 41
    assert item["original_workspace_id"]["user_id"]["email"] == "ann@uni.edu"
    body = ok(apis["uwsi-cy"].get(f"shared_workspaces/{pending}/"), NO_SHARE)
    assert body["data"]["shared_workspaces"] == []


def test_the_portals_login_finds_the_same_person(anon, deployment, imported):
    """After the switch the portal keeps logging people in with their user_info (the
    trusted-client flow): the token it gets is the imported person's."""
    r = anon.post(
        "tokens/",
        json={
            "client_token": deployment["client_token"],
            "user_info": {
                "username": "uwsi-ann",
                "email": "ann@uni.edu",
                "first_name": "Ann",
                "last_name": "Archer",
            },
        },
    )
    token = ok(r, "Successful authentication.")["token"]
    listed = ok(Api(anon.base, token).get("workspaces/"))["data"]["workspaces"]
    assert sorted(w["id"] for w in listed) == imported["workspaces"]["uwsi-ann"]


def test_the_portals_own_uws_token_still_logs_people_in(anon, imported):
    """The portal's account was a trusted client in UWS (group api_clients): its UWS token,
    carried over, still exchanges a person's user_info for their token."""
    r = anon.post(
        "tokens/",
        json={
            "client_token": imported["portal_token"],
            "user_info": {"username": "uwsi-ben", "email": "ben@lab.org"},
        },
    )
    token = ok(r, "Successful authentication.")["token"]
    listed = ok(Api(anon.base, token).get("workspaces/"))["data"]["workspaces"]
    assert [w["id"] for w in listed] == imported["workspaces"]["uwsi-ben"]


def test_new_ids_continue_after_the_imported_ones(apis, imported):
    r = apis["uwsi-cy"].post("workspaces/", json={"name": "after the switch", "description": ""})
    ws = ok(r, "Successful.")["data"]["workspace"]
    assert ws["id"] > imported["largest_imported_workspace"]
    ok(apis["uwsi-cy"].delete(f"workspaces/{ws['id']}/"))


def test_a_pending_invitation_is_accepted_by_its_copy_id(apis, imported):
    c = imported["pending_copy"]
    ben = apis["uwsi-ben"]
    ok(ben.put(f"shared_workspaces/{c}/accept/"), "Successful.")
    copy = workspace(ben, c)
    assert copy is not None and copy["name"] == "Spleen"
    assert names(copy) == {f"/{f}" for f in imported["files_41"]}
    listed = ok(ben.get("workspaces/"))["data"]["workspaces"]
    assert sorted(w["id"] for w in listed) == sorted([*imported["workspaces"]["uwsi-ben"], c])
