"""The HuBMAP portal's session end to end, in its own call forms: no trailing slashes
(UWS-REFERENCE §1.1), `UWS-Authorization: Token` from a trusted-client login (§1.2), the
autocomplete's empty first search (UWS-API.md GET /users/), launch options (§1.6, §1.18),
polling `/jobs` for `connection_details` (§1.10), stop, share and accept (§6)."""

from __future__ import annotations

from .conftest import portal_start_body
from .uws import Api, eventually, ok


def test_portal_session(api_base, deployment, alice, bob, job_type):
    """UWS-REFERENCE §1 portal notes and §6, as one client run."""
    login = Api(api_base).post(
        "tokens", json={"client_token": deployment["client_token"], "user_info": alice.user_info}
    )
    me = Api(api_base, ok(login, "Successful authentication.")["token"])
    ok(me.get("job_types"))
    ok(me.get("parameters"))
    r = me.post("workspaces", json={"name": "portal", "description": "from the portal"})
    ws_id = ok(r, "Successful.")["data"]["workspace"]["id"]
    assert [w["id"] for w in ok(me.get(f"workspaces/{ws_id}"))["data"]["workspaces"]] == [ws_id]

    j = ok(me.put(f"workspaces/{ws_id}/start", json=portal_start_body(job_type)))["data"]["job"]

    def ready():
        now = ok(me.get("jobs", params={"workspace_id": ws_id}))["data"]["jobs"]
        mine = [x for x in now if x["id"] == j["id"]]
        cd = mine and mine[0]["job_details"]["current_job_details"].get("connection_details")
        return mine[0] if cd else None

    eventually(ready, "the job's connection_details", 90)
    ok(me.put(f"jobs/{j['id']}/stop"), "Job queued to stop.")
    eventually(
        lambda: (
            ok(me.get(f"jobs/{j['id']}"))["data"]["jobs"][0]["status"] in ("complete", "failed")
        ),
        "the job ended",
    )

    # the share dialog: autocomplete (empty term first), pick bob, share
    assert ok(me.get("users", params={"search": ""}))["data"]["users"] == []
    found = ok(me.get("users", params={"search": bob.email}))["data"]["users"]
    bob_id = [u["id"] for u in found if u["email"] == bob.email][0]
    r = me.post(
        "shared_workspaces", json={"original_workspace_id": ws_id, "shared_user_ids": [bob_id]}
    )
    copy_id = ok(r)["data"]["shared_workspaces"][0]["shared_workspace_id"]["id"]
    invites = ok(bob.api.get("shared_workspaces"))["data"]["shared_workspaces"]
    assert copy_id in [i["shared_workspace_id"]["id"] for i in invites]
    ok(bob.api.put(f"shared_workspaces/{copy_id}/accept"), "Successful.")
    eventually(
        lambda: copy_id in [w["id"] for w in ok(bob.api.get("workspaces"))["data"]["workspaces"]],
        "the accepted copy among bob's workspaces",
    )
