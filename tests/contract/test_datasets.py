"""Dataset links as the portal makes them: UWS-REFERENCE §1.4 (create with `symlinks: [{name:
"datasets/<uuid>", dataset_uuid}]` plus a top-level `globus_groups_token`), §1.5 (the portal
adds datasets to an existing workspace), §3.2 (HubmapLocalFileSystemStorage: texts), §6.3
(a shared copy keeps its links)."""

from __future__ import annotations

import json

import pytest

from .uws import eventually, names, ok, refused, workspace

NO_TOKEN = "No globus_groups_token passed when trying to use dataset_uuid."
LOOKUP_ERRORS = "Errors encountered when attempting to gather UUID information: "


@pytest.fixture(scope="module")
def data(deployment) -> dict:
    if not (deployment.get("groups_token") and deployment.get("datasets")):
        pytest.skip("UWS_CONTRACT_GROUPS_TOKEN / UWS_CONTRACT_DATASETS not given")
    return deployment


def links(*uuids: str) -> list[dict]:
    """What the portal sends (§1.4, §1.5, §3.2: "portal-ui uses `datasets/<uuid>`")."""
    return [{"name": f"datasets/{u}", "dataset_uuid": u} for u in uuids]


def create(who, uuids, token=None, *, in_details=False):
    body: dict = {"name": "with datasets", "description": "from the portal"}
    details: dict = {"symlinks": links(*uuids)}
    if token is not None and in_details:
        details["globus_groups_token"] = token
    elif token is not None:
        body["globus_groups_token"] = token
    body["workspace_details"] = details
    return who.api.post("workspaces", json=body)  # the portal: no trailing slash


def listed_links(who, ws_id) -> set[str]:
    return names(workspace(who.api, ws_id), "symlinks")


def my_workspaces(who) -> set[int]:
    return {w["id"] for w in ok(who.api.get("workspaces/"))["data"]["workspaces"]}


def test_create_with_dataset_links(alice, data):
    """UWS-REFERENCE §1.4 / §3.2: each dataset is linked at the requested name; the scan lists
    it as `/datasets/<uuid>` (§4); "File contents are never stored in the DB, and neither is
    the Globus token" (§1.4 flow 2)."""
    uuids = data["datasets"][:2]
    r = create(alice, uuids, data["groups_token"])
    ws = ok(r, "Successful.")["data"]["workspace"]
    want = {f"/datasets/{u}" for u in uuids}
    eventually(lambda: want <= listed_links(alice, ws["id"]), "the dataset links listed")
    asked = ws["workspace_details"]["request_workspace_details"]["symlinks"]
    assert {s.get("dataset_uuid") for s in asked} == set(uuids), asked
    assert data["groups_token"] not in json.dumps(workspace(alice.api, ws["id"]))


def test_token_inside_workspace_details(alice, data):
    """UWS-REFERENCE §3.2: the storage reads "`workspace_details.globus_groups_token`"."""
    u = data["datasets"][0]
    ws = ok(create(alice, [u], data["groups_token"], in_details=True))["data"]["workspace"]
    eventually(lambda: f"/datasets/{u}" in listed_links(alice, ws["id"]), "the link listed")


def test_dataset_links_need_the_groups_token(alice, data):
    """UWS-REFERENCE §3.2: "Missing token → 400 "No globus_groups_token passed when trying to
    use dataset_uuid."" (the stored-token fallback "probably never works")."""
    before = my_workspaces(alice)
    refused(create(alice, data["datasets"][:1]), 400, NO_TOKEN)
    assert my_workspaces(alice) == before


@pytest.mark.parametrize("which", ["unknown_dataset", "forbidden_dataset"])
def test_unresolvable_datasets_are_400(alice, data, which):
    """UWS-REFERENCE §3.2: "Any per-uuid error → 500 "Errors encountered when attempting to
    gather UUID information: [...]""; UWS-API.md POST /workspaces/: "uws_hub answers 400, not
    UWS's 500, when uuids cannot be resolved". Nothing is created."""
    if not data.get(which):
        pytest.skip(f"no {which} given")
    before = my_workspaces(alice)
    r = create(alice, [data["datasets"][0], data[which]], data["groups_token"])
    body = refused(r, 400, prefix=LOOKUP_ERRORS)
    assert data[which] in body["message"], body
    assert my_workspaces(alice) == before


def test_portal_adds_datasets_to_a_workspace(alice, data, make_workspace):
    """UWS-REFERENCE §1.5: "portal-ui uses this to add datasets to an existing workspace: it
    sends symlinks `datasets/<uuid>` with `dataset_uuid` and `globus_groups_token`"; the new
    names show at once (merged into current_workspace_details); request_workspace_details is
    not changed."""
    ws = make_workspace(alice, name="add datasets")
    u = data["datasets"][1]
    body = {
        "workspace_details": {"symlinks": links(u)},
        "globus_groups_token": data["groups_token"],
    }
    ok(alice.api.put(f"workspaces/{ws['id']}", json=body), "Update successful.")
    w = workspace(alice.api, ws["id"])
    assert f"/datasets/{u}" in names(w, "symlinks"), w
    assert (
        w["workspace_details"]["request_workspace_details"]
        == (ws["workspace_details"]["request_workspace_details"])
    )
    # and without the token: refused, nothing added
    other = data["datasets"][0]
    r = alice.api.put(
        f"workspaces/{ws['id']}", json={"workspace_details": {"symlinks": links(other)}}
    )
    refused(r, 400, NO_TOKEN)
    assert f"/datasets/{other}" not in listed_links(alice, ws["id"])


def test_shared_copy_keeps_dataset_links(alice, bob, data, user_ids):
    """UWS-REFERENCE §6.3: the copy keeps "symlinks as symlinks, so dataset links still point
    at the same data"."""
    u = data["datasets"][0]
    ws = ok(create(alice, [u], data["groups_token"]))["data"]["workspace"]
    r = alice.api.post(
        "shared_workspaces",
        json={"original_workspace_id": ws["id"], "shared_user_ids": [user_ids[bob.email]]},
    )
    c = ok(r)["data"]["shared_workspaces"][0]["shared_workspace_id"]["id"]
    ok(bob.api.put(f"shared_workspaces/{c}/accept"), "Successful.")

    def copied():
        w = workspace(bob.api, c)
        return w and w["status"] == "idle" and f"/datasets/{u}" in names(w, "symlinks")

    eventually(copied, "the copy with its dataset link")
