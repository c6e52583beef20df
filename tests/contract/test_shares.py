"""UWS-REFERENCE §1.15 and §6: sharing by copy with invitations — what sender, recipient and a
third person see and may do, through ``/shared_workspaces/`` and ``/workspaces/``. Every
``<id>`` of an invitation is the recipient's copy workspace id (§1.15; UWS-API.md)."""

from __future__ import annotations

import pytest

from .conftest import portal_start_body
from .uws import (
    NO_SHARE,
    NO_WORKSPACE,
    PERSON_FIELDS,
    SHARE_FIELDS,
    SHARE_WORKSPACE_FIELDS,
    empty,
    eventually,
    iso,
    names,
    ok,
    refused,
    wait_gone,
    wait_job,
    workspace,
)

FILES = [{"name": "notes/readme.md", "content": "# shared"}]


def original(alice, make_workspace, **extra) -> dict:
    return make_workspace(
        alice,
        name="to share",
        description="shared by copy",
        workspace_details={"files": FILES},
        **extra,
    )


def share(sender, ws_id, recipient_ids) -> list[dict]:
    r = sender.api.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws_id, "shared_user_ids": recipient_ids},
    )
    return ok(r)["data"]["shared_workspaces"]


def share_one(sender, ws_id, recipient_id) -> tuple[dict, int]:
    """One invitation: (the item, the copy's id)."""
    items = share(sender, ws_id, [recipient_id])
    assert len(items) == 1, items
    return items[0], items[0]["shared_workspace_id"]["id"]


def sent_and_received(who) -> tuple[list[int], list[int]]:
    data = ok(who.api.get("shared_workspaces/"))["data"]
    return (
        [s["shared_workspace_id"]["id"] for s in data["original_workspaces"]],
        [s["shared_workspace_id"]["id"] for s in data["shared_workspaces"]],
    )


def person_of(p) -> dict:
    return {"first_name": p.first_name, "last_name": p.last_name, "email": p.email}


def check_item(item: dict, ws: dict, sender, recipient) -> None:
    """UWS-REFERENCE §1.15 item: `{original_workspace_id: W, shared_workspace_id: W,
    last_resource_options, last_job_type, is_accepted, datetime_share_created}`, W = `{id,
    user_id: {username, first_name, last_name, email}, name, description,
    workspace_details}`."""
    assert SHARE_FIELDS <= set(item), sorted(item)
    orig, copy = item["original_workspace_id"], item["shared_workspace_id"]
    for w, owner in ((orig, sender), (copy, recipient)):
        assert SHARE_WORKSPACE_FIELDS <= set(w), sorted(w)
        assert PERSON_FIELDS <= set(w["user_id"]), w["user_id"]
        assert {k: w["user_id"][k] for k in person_of(owner)} == person_of(owner), w["user_id"]
        # §6.2: name, description copied
        assert (w["name"], w["description"]) == (ws["name"], ws["description"])
    assert orig["id"] == ws["id"] and copy["id"] != ws["id"]
    assert isinstance(item["is_accepted"], bool)
    iso(item["datetime_share_created"])


def test_share_answers_the_invitation(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §1.15 POST: body `{"original_workspace_id", "shared_user_ids"}` → 200
    `data.shared_workspaces` = the new mappings; §6.2: `is_accepted=False`, with no job yet
    `last_resource_options` {} and `last_job_type` "" ("empty when there are no jobs")."""
    ws = original(alice, make_workspace)
    item, _ = share_one(alice, ws["id"], user_ids[bob.email])
    check_item(item, ws, alice, bob)
    assert item["is_accepted"] is False
    assert item["last_resource_options"] == {}
    assert item["last_job_type"] == ""


def test_sharing_again_while_the_first_is_open_is_refused(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §6.1 lists "Not prevented: ... sharing the same workspace twice to the same
    person" among UWS's defects; uws_hub refuses a second open invitation (docs/api.md, "Where
    uws_hub differs from UWS") and names the open one; once it is answered, sharing again works."""
    ws = original(alice, make_workspace)
    _, first = share_one(alice, ws["id"], user_ids[bob.email])
    r = alice.api.post(
        "shared_workspaces/",
        json={"original_workspace_id": ws["id"], "shared_user_ids": [user_ids[bob.email]]},
    )
    assert r.status_code == 400 and f"shared workspace {first}" in r.json()["message"], r.text
    assert sent_and_received(bob)[1].count(first) == 1
    assert bob.api.delete(f"shared_workspaces/{first}/").status_code == 200
    _, second = share_one(alice, ws["id"], user_ids[bob.email])
    assert second != first


def test_share_owner_username_is_the_portals(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §1.15: `user_id.username` (the portal tells sent from received by it,
    UWS-API.md POST /shared_workspaces/) is the Django username the trusted-client login made
    from `user_info.username` (§3.1)."""
    ws = original(alice, make_workspace)
    item, _ = share_one(alice, ws["id"], user_ids[bob.email])
    assert item["original_workspace_id"]["user_id"]["username"] == alice.username, item
    assert item["shared_workspace_id"]["user_id"]["username"] == bob.username, item


def test_both_parties_see_the_invitation(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §1.15 GET: `data.original_workspaces` (sent), `data.shared_workspaces`
    (received); by id = the recipient's copy id, for both; filter `is_accepted`."""
    ws = original(alice, make_workspace)
    item, copy_id = share_one(alice, ws["id"], user_ids[bob.email])
    sent, got = sent_and_received(alice)
    assert copy_id in sent and copy_id not in got
    sent, got = sent_and_received(bob)
    assert copy_id in got and copy_id not in sent
    for who in (alice, bob):
        data = ok(who.api.get(f"shared_workspaces/{copy_id}/"))["data"]
        items = data["original_workspaces"] + data["shared_workspaces"]
        assert [i["shared_workspace_id"]["id"] for i in items] == [copy_id], data
        check_item(items[0], ws, alice, bob)
    pending = ok(bob.api.get("shared_workspaces/", params={"is_accepted": "False"}))["data"]
    assert copy_id in [i["shared_workspace_id"]["id"] for i in pending["shared_workspaces"]]
    accepted = ok(bob.api.get("shared_workspaces/", params={"is_accepted": "True"}))["data"]
    assert copy_id not in [i["shared_workspace_id"]["id"] for i in accepted["shared_workspaces"]]


def test_a_third_person_sees_nothing(alice, bob, carol, make_workspace, user_ids):
    """UWS-REFERENCE §1.15: the lists are what the caller sent or received; §1.1 empty."""
    ws = original(alice, make_workspace)
    _, copy_id = share_one(alice, ws["id"], user_ids[bob.email])
    r = carol.api.get(f"shared_workspaces/{copy_id}/")
    body = ok(r, NO_SHARE)
    assert body["data"]["original_workspaces"] == [] == body["data"]["shared_workspaces"]


def test_pending_copy_is_hidden_and_locked(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §1.3: unaccepted copies are excluded from `GET /workspaces/`; §1.5/§6.4:
    any PUT or DELETE on one through `/workspaces/` → 400 "Workspace <id> is a shared
    workspace and has not been accepted."."""
    ws = original(alice, make_workspace)
    _, c = share_one(alice, ws["id"], user_ids[bob.email])
    assert c not in [w["id"] for w in ok(bob.api.get("workspaces/"))["data"]["workspaces"]]
    empty(bob.api.get(f"workspaces/{c}/"), "workspaces", NO_WORKSPACE)
    text = f"Workspace {c} is a shared workspace and has not been accepted."
    refused(bob.api.put(f"workspaces/{c}/", json={"name": "mine now"}), 400, text)
    refused(bob.api.put(f"workspaces/{c}/start/", json=portal_start_body("x")), 400, text)
    refused(bob.api.put(f"workspaces/{c}/upload/", files={"f": ("f.txt", b"x")}), 400, text)
    refused(bob.api.delete(f"workspaces/{c}/"), 400, text)


def test_original_not_deletable_while_shares_are_pending(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §1.9: 400 "Workspace <id> has shared workspaces associated with it, that
    have not yet been accepted. Please cancel those shares to delete this workspace."."""
    ws = original(alice, make_workspace)
    share_one(alice, ws["id"], user_ids[bob.email])
    r = alice.api.delete(f"workspaces/{ws['id']}/")
    refused(
        r,
        400,
        f"Workspace {ws['id']} has shared workspaces associated with it, that have not yet "
        "been accepted. Please cancel those shares to delete this workspace.",
    )
    assert workspace(alice.api, ws["id"])["status"] != "deleting"


def test_accept_is_for_the_recipient_only(alice, bob, carol, make_workspace, user_ids):
    """UWS-REFERENCE §1.15 accept: "recipient only; a non-recipient gets 404 "Shared workspace
    <id> not found.""."""
    ws = original(alice, make_workspace)
    _, c = share_one(alice, ws["id"], user_ids[bob.email])
    for who, share_id in ((carol, c), (alice, c), (bob, 987654321)):
        r = who.api.put(f"shared_workspaces/{share_id}/accept/")
        refused(r, 404, f"Shared workspace {share_id} not found.")
    sent, got = sent_and_received(bob)
    assert c in got  # still pending
    pending = ok(bob.api.get(f"shared_workspaces/{c}/"))["data"]["shared_workspaces"]
    assert pending[0]["is_accepted"] is False


def test_unknown_share_put_type_is_400(alice, bob, make_workspace, user_ids):
    """UWS-REFERENCE §1.15 accept: "other put types → 400 "Invalid PUT type passed.""."""
    ws = original(alice, make_workspace)
    _, c = share_one(alice, ws["id"], user_ids[bob.email])
    refused(bob.api.put(f"shared_workspaces/{c}/reject/"), 400, "Invalid PUT type passed.")
    assert c in sent_and_received(bob)[1]


def test_delete_refusals(alice, bob, carol, make_workspace, user_ids):
    """UWS-REFERENCE §1.15 DELETE: 404 "Shared workspace <id> not found."; 403 "User does not
    have permissions for shared workspace <id>." (a third person)."""
    ws = original(alice, make_workspace)
    _, c = share_one(alice, ws["id"], user_ids[bob.email])
    refused(
        bob.api.delete("shared_workspaces/987654321/"), 404, "Shared workspace 987654321 not found."
    )
    r = carol.api.delete(f"shared_workspaces/{c}/")
    refused(r, 403, f"User does not have permissions for shared workspace {c}.")
    assert c in sent_and_received(bob)[1]


def test_accept_makes_the_copy_the_recipients(alice, bob, make_workspace, user_ids, job_type):
    """UWS-REFERENCE §1.15 accept → 200 "Successful."; §6.5: `is_accepted=True`, the copy's
    `datetime_created` reset to the acceptance time, then a normal workspace of the recipient
    (§6.2/§6.3: name, description, default_job_type and files copied); §1.15: accepted → DELETE
    400 "Shared workspace <id> has been accepted and cannot be deleted."; the original can be
    deleted now (§9 cross-checks)."""
    ws = original(alice, make_workspace, default_job_type=job_type)
    item, c = share_one(alice, ws["id"], user_ids[bob.email])
    ok(bob.api.put(f"shared_workspaces/{c}/accept/"), "Successful.")
    # §6.5: "Accepting twice is not guarded" (a portal's second click is harmless)
    ok(bob.api.put(f"shared_workspaces/{c}/accept"), "Successful.")
    copy = eventually(
        lambda: (w := workspace(bob.api, c)) and w["status"] == "idle" and w, "the copy idle"
    )
    assert (copy["name"], copy["description"]) == (ws["name"], ws["description"])
    assert copy["default_job_type"] == job_type
    assert "/notes/readme.md" in names(copy), copy
    assert iso(copy["datetime_created"]) >= iso(item["datetime_share_created"])
    now = ok(bob.api.get(f"shared_workspaces/{c}/"))["data"]["shared_workspaces"]
    assert now[0]["is_accepted"] is True
    accepted = ok(bob.api.get("shared_workspaces/", params={"is_accepted": "True"}))["data"]
    assert c in [i["shared_workspace_id"]["id"] for i in accepted["shared_workspaces"]]
    r = bob.api.delete(f"shared_workspaces/{c}/")
    refused(r, 400, f"Shared workspace {c} has been accepted and cannot be deleted.")
    ok(bob.api.put(f"workspaces/{c}/", json={"name": "bob's now"}), "Update successful.")
    ok(alice.api.delete(f"workspaces/{ws['id']}/"), f"Workspace {ws['id']} queued for deletion.")
    wait_gone(alice.api, ws["id"])
    assert workspace(bob.api, c)["name"] == "bob's now"


@pytest.mark.parametrize("by", ["recipient", "sender"])
def test_decline_or_cancel(alice, bob, make_workspace, user_ids, by):
    """UWS-REFERENCE §1.15 DELETE: decline (recipient) or cancel (sender) → 200 "Shared
    workspace <id> queued for deletion."; the copy goes (§6.6), the invitation with it, and
    the original can be deleted."""
    ws = original(alice, make_workspace)
    _, c = share_one(alice, ws["id"], user_ids[bob.email])
    who = bob if by == "recipient" else alice
    ok(who.api.delete(f"shared_workspaces/{c}/"), f"Shared workspace {c} queued for deletion.")

    def gone():
        return c not in sent_and_received(alice)[0] and c not in sent_and_received(bob)[1]

    eventually(gone, "the invitation gone")
    ok(alice.api.delete(f"workspaces/{ws['id']}/"), f"Workspace {ws['id']} queued for deletion.")


@pytest.mark.parametrize(
    "body",
    [{"original_workspace_id": 1}, {"shared_user_ids": [1]}, {}],
    ids=["no recipients", "no workspace", "empty"],
)
def test_post_without_fields_is_400(alice, body):
    """UWS-REFERENCE §1.15 POST: 400 "Missing required fields."."""
    refused(alice.api.post("shared_workspaces/", json=body), 400, "Missing required fields.")


def test_post_errors(alice, bob, make_workspace, user_ids, anon):
    """UWS-REFERENCE §1.15 POST errors: 404 "Workspace <id> not found for user." (not the
    caller's); 400 "shared_user_ids is not a list."; 400 "Invalid user id provided."; §9:
    unauthenticated 401."""
    ws = original(alice, make_workspace)
    bob_id = user_ids[bob.email]
    for ws_id in (ws["id"], 987654321):
        body = {"original_workspace_id": ws_id, "shared_user_ids": [user_ids[alice.email]]}
        refused(
            bob.api.post("shared_workspaces/", json=body),
            404,
            f"Workspace {ws_id} not found for user.",
        )
    body = {"original_workspace_id": ws["id"], "shared_user_ids": bob_id}
    refused(alice.api.post("shared_workspaces/", json=body), 400, "shared_user_ids is not a list.")
    body = {"original_workspace_id": ws["id"], "shared_user_ids": [987654321]}
    refused(alice.api.post("shared_workspaces/", json=body), 400, "Invalid user id provided.")
    body = {"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]}
    refused(
        anon.post("shared_workspaces/", json=body),
        401,
        "Authentication credentials were not provided.",
    )
    data = ok(alice.api.get("shared_workspaces/"))["data"]["original_workspaces"]
    # (an invitation whose original was deleted has original_workspace_id null, §1.9)
    assert ws["id"] not in [(i["original_workspace_id"] or {}).get("id") for i in data]


def test_ids_as_numeric_strings(alice, bob, make_workspace, user_ids):
    """UWS-API.md POST /shared_workspaces/: "ids may arrive as numbers or numeric strings"."""
    ws = original(alice, make_workspace)
    items = share(alice, str(ws["id"]), [str(user_ids[bob.email])])
    assert [i["original_workspace_id"]["id"] for i in items] == [ws["id"]]


def test_invitation_carries_the_last_job(alice, bob, make_workspace, user_ids, job_type):
    """UWS-REFERENCE §6.2: `last_job_type` and `last_resource_options` "from the original's
    latest job" (§6.5: the portal pre-fills its launch dialog from them)."""
    ws = original(alice, make_workspace)
    r = alice.api.put(f"workspaces/{ws['id']}/start", json=portal_start_body(job_type))
    j = ok(r, "Successful start.")["data"]["job"]
    wait_job(alice.api, j["id"], ("running", "complete", "failed"))
    ok(alice.api.put(f"jobs/{j['id']}/stop/"))
    wait_job(alice.api, j["id"], ("complete", "failed"))
    item, _ = share_one(alice, ws["id"], user_ids[bob.email])
    assert item["last_job_type"] == job_type, item
    assert isinstance(item["last_resource_options"], dict) and item["last_resource_options"], item
