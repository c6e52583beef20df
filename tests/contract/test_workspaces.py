"""UWS-REFERENCE §1.3–§1.5, §1.7–§1.9: workspaces — list/get, create, update, upload, unknown
actions, delete."""

from __future__ import annotations

import pytest

from .uws import (
    NO_WORKSPACE,
    WORKSPACE_FIELDS,
    WORKSPACE_STATUSES,
    empty,
    eventually,
    iso,
    names,
    ok,
    refused,
    wait_gone,
    workspace,
)

# ---- §1.3 GET ------------------------------------------------------------------------------


def test_list_and_get_have_the_dict_fields(alice, make_workspace):
    """UWS-REFERENCE §1.3: `data.workspaces` objects with `id, name, description, disk_space,
    datetime_created, datetime_last_modified, datetime_last_job_launch, workspace_details,
    status, default_job_type`; GET by id is a list of one."""
    ws = make_workspace(alice, name="fields")
    listed = ok(alice.api.get("workspaces/"))["data"]["workspaces"]
    mine = [w for w in listed if w["id"] == ws["id"]]
    assert len(mine) == 1
    got = ok(alice.api.get(f"workspaces/{ws['id']}/"))["data"]["workspaces"]
    assert len(got) == 1
    for w in (mine[0], got[0], ws):
        assert WORKSPACE_FIELDS <= set(w), sorted(w)
        assert isinstance(w["id"], int)
        assert isinstance(w["disk_space"], int)
        assert w["status"] in WORKSPACE_STATUSES
        details = w["workspace_details"]
        assert set(details) >= {"request_workspace_details", "current_workspace_details"}
        for part in details.values():
            assert isinstance(part["files"], list) and isinstance(part["symlinks"], list)


@pytest.mark.parametrize("field", ["name", "description", "status"])
def test_filters_match_exactly(alice, make_workspace, field):
    """UWS-REFERENCE §1.3: query filters (exact match) `name`, `description`, `status`."""
    ws = make_workspace(alice, name="filter-Target", description="filter-Description")
    value = ws[field]
    found = ok(alice.api.get("workspaces/", params={field: value}))["data"]["workspaces"]
    assert ws["id"] in [w["id"] for w in found]
    assert all(w[field] == value for w in found), found
    if field != "status":
        # exact: neither a prefix nor another case matches
        for other in (value[:-1], value.upper()):
            r = alice.api.get("workspaces/", params={field: other})
            assert ws["id"] not in [w["id"] for w in ok(r)["data"]["workspaces"]]


def test_filters_do_not_apply_to_a_get_by_id(alice, make_workspace):
    """UWS-REFERENCE §1.3: filters "apply only when no id is given"."""
    ws = make_workspace(alice, name="by-id")
    r = alice.api.get(f"workspaces/{ws['id']}/", params={"name": "something else"})
    assert [w["id"] for w in ok(r)["data"]["workspaces"]] == [ws["id"]]


def test_only_the_callers_workspaces(alice, bob, make_workspace):
    """UWS-REFERENCE §1.3: scope "only the caller's workspaces"; another's id answers as
    nothing (§1.1 empty result)."""
    ws = make_workspace(alice, name="alices")
    assert ws["id"] not in [w["id"] for w in ok(bob.api.get("workspaces/"))["data"]["workspaces"]]
    empty(bob.api.get(f"workspaces/{ws['id']}/"), "workspaces", NO_WORKSPACE)


# ---- §1.4 POST -----------------------------------------------------------------------------


def test_create_minimal(alice):
    """UWS-REFERENCE §1.4: 200 `{"message": "Successful.", "success": true, "data":
    {"workspace": {<dict fields>}}}`; portal-ui reads `data.workspace.id`."""
    r = alice.api.post("workspaces/", json={"name": "minimal", "description": "d"})
    ws = ok(r, "Successful.")["data"]["workspace"]
    assert WORKSPACE_FIELDS <= set(ws)
    assert isinstance(ws["id"], int)
    assert (ws["name"], ws["description"]) == ("minimal", "d")
    iso(ws["datetime_created"])
    assert workspace(alice.api, ws["id"])["name"] == "minimal"


@pytest.mark.parametrize("body", [{"name": "n"}, {"description": "d"}, {}])
def test_create_without_name_or_description_is_400(alice, body):
    """UWS-REFERENCE §1.4: name and description both required → 400 "Missing required
    fields."."""
    refused(alice.api.post("workspaces/", json=body), 400, "Missing required fields.")


def test_create_with_unknown_default_job_type_is_400(alice):
    """UWS-REFERENCE §1.4: 400 "<x> is not in the list of available job types."."""
    r = alice.api.post(
        "workspaces/", json={"name": "n", "description": "d", "default_job_type": "no_such_type"}
    )
    refused(r, 400, "no_such_type is not in the list of available job types.")


def test_create_with_empty_or_valid_default_job_type(alice, job_type):
    """UWS-REFERENCE §1.4: "An empty string is allowed"; a key of available_job_types is."""
    for value in ("", job_type):
        r = alice.api.post(
            "workspaces/", json={"name": "djt", "description": "d", "default_job_type": value}
        )
        ws = ok(r, "Successful.")["data"]["workspace"]
        if value:
            assert ws["default_job_type"] == value


@pytest.mark.parametrize("details", ["files", ["a"], 5])
def test_create_with_details_not_an_object_is_400(alice, details):
    """UWS-REFERENCE §1.4: `workspace_details` optional dict, otherwise 400 "Workspace
    details not JSON."."""
    r = alice.api.post(
        "workspaces/", json={"name": "n", "description": "d", "workspace_details": details}
    )
    refused(r, 400, "Workspace details not JSON.")


@pytest.mark.parametrize(
    "details, message",
    [
        ({"files": {"name": "a"}}, "'files' index must contain a list."),
        ({"symlinks": "x"}, "'symlinks' index must contain a list."),
        (
            {"files": [{"name": "../up.txt", "content": "x"}]},
            "File name cannot contain double dots.",
        ),
        (
            {"files": [{"name": "a/../../b", "content": "x"}]},
            "File name cannot contain double dots.",
        ),
        (
            {"symlinks": [{"name": "../l", "source_path": "/tmp"}]},
            "Symlink name cannot contain double dots.",
        ),
    ],
)
def test_create_with_bad_files_or_symlinks_is_400(alice, details, message):
    """UWS-REFERENCE §1.4 validation errors (from abstract_storage.py), verbatim; nothing is
    created (§1.4 flow step 8: the row is deleted)."""
    before = {w["id"] for w in ok(alice.api.get("workspaces/"))["data"]["workspaces"]}
    r = alice.api.post(
        "workspaces/", json={"name": "bad", "description": "d", "workspace_details": details}
    )
    refused(r, 400, message)
    after = {w["id"] for w in ok(alice.api.get("workspaces/"))["data"]["workspaces"]}
    assert after == before


def test_create_with_absolute_file_name_is_400(alice):
    """UWS-REFERENCE §1.4 / §3.2: "A leading / in a name makes the joined path absolute, so
    the check rejects it" → 400 "Invalid file path specified …"."""
    r = alice.api.post(
        "workspaces/",
        json={
            "name": "abs",
            "description": "d",
            "workspace_details": {"files": [{"name": "/etc/abs.txt", "content": "x"}]},
        },
    )
    refused(r, 400, prefix="Invalid file path specified")


def test_create_with_files_in_subdirectories(alice):
    """UWS-REFERENCE §1.4: `files: [{name, content}]`, `name` may contain subdirectories;
    `request_workspace_details = {files: [{name}], ...}` (contents never stored); the scan
    lists `/relative/path` (§4 update_workspace, §12 item 9)."""
    files = [{"name": "top.txt", "content": "hello"}, {"name": "a/b/deep.txt", "content": "x"}]
    r = alice.api.post(
        "workspaces/",
        json={"name": "with files", "description": "d", "workspace_details": {"files": files}},
    )
    ws = ok(r, "Successful.")["data"]["workspace"]
    asked = ws["workspace_details"]["request_workspace_details"]["files"]
    assert sorted(f["name"] for f in asked) == ["a/b/deep.txt", "top.txt"]
    assert all("content" not in f for f in asked), asked

    def listed():
        w = workspace(alice.api, ws["id"])
        return w if {"/top.txt", "/a/b/deep.txt"} <= names(w) else None

    w = eventually(listed, "the files in current_workspace_details")
    assert w["disk_space"] >= len("hello") + len("x")


@pytest.fixture
def target(deployment) -> str:
    if not deployment.get("symlink_target"):
        pytest.skip("UWS_CONTRACT_SYMLINK_TARGET not given")
    return deployment["symlink_target"]


def create_with_links(who, links: list) -> object:
    return who.api.post(
        "workspaces/",
        json={"name": "links", "description": "d", "workspace_details": {"symlinks": links}},
    )


def test_create_with_symlinks(alice, target):
    """UWS-REFERENCE §1.4: `symlinks: [{name, source_path}]`, `name` may contain
    subdirectories; the scan lists them with a leading `/` (§4). UWS-API.md ("Where uws_hub
    goes further"): "symlink targets limited to configured roots" — the target given is under
    them."""
    r = create_with_links(alice, [{"name": "data/linked", "source_path": target}])
    ws = ok(r, "Successful.")["data"]["workspace"]
    asked = ws["workspace_details"]["request_workspace_details"]["symlinks"]
    assert [(s["name"], s["source_path"]) for s in asked] == [("data/linked", target)]
    eventually(
        lambda: "/data/linked" in names(workspace(alice.api, ws["id"]), "symlinks"),
        "the link in current_workspace_details.symlinks",
    )


def test_symlink_to_a_missing_path_is_refused(alice, target):
    """UWS-REFERENCE §3.2: the target "must exist on the server, otherwise APIException 500
    "Symlink path not found: <p>"". The text is UWS's; the status is a 400 as UWS-API.md
    answers for dataset links that cannot be resolved ("uws_hub answers 400, not UWS's 500")
    and its Conventions ("400 (client error)")."""
    missing = target.rstrip("/") + "-does-not-exist"
    r = create_with_links(alice, [{"name": "gone", "source_path": missing}])
    refused(r, 400, f"Symlink path not found: {missing}")


def test_symlink_with_path_instead_of_source_path_is_refused(alice, target):
    """UWS-REFERENCE §1.4 note: "A symlink sent with only `path` fails with 500 "Symlink path
    not found: "" (status: as the test above)."""
    r = create_with_links(alice, [{"name": "p", "path": target}])
    refused(r, 400, prefix="Symlink path not found: ")


def test_symlink_with_absolute_name_is_400(alice, target):
    """UWS-REFERENCE §1.4 / §3.2: a leading `/` fails the destination check → 400 "Invalid
    symlink destination path specified …"."""
    r = create_with_links(alice, [{"name": "/abs-link", "source_path": target}])
    refused(r, 400, prefix="Invalid symlink destination path specified")


# ---- §1.5 PUT (update) -----------------------------------------------------------------------


def test_update_metadata(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.5: optional `name`, `description`, `default_job_type` → 200
    `{"message": "Update successful.", "success": true}`; sets `datetime_last_modified`."""
    ws = make_workspace(alice, name="before")
    r = alice.api.put(
        f"workspaces/{ws['id']}/",
        json={"name": "after", "description": "new text", "default_job_type": job_type},
    )
    ok(r, "Update successful.")
    w = workspace(alice.api, ws["id"])
    assert (w["name"], w["description"], w["default_job_type"]) == ("after", "new text", job_type)
    assert iso(w["datetime_last_modified"]) >= iso(ws["datetime_last_modified"])


def test_update_default_job_type_checks(alice, make_workspace):
    """UWS-REFERENCE §1.5: default_job_type "validated as in POST" (§1.4): unknown → 400,
    empty string allowed."""
    ws = make_workspace(alice, name="djt-update")
    r = alice.api.put(f"workspaces/{ws['id']}/", json={"default_job_type": "nope_type"})
    refused(r, 400, "nope_type is not in the list of available job types.")
    ok(
        alice.api.put(f"workspaces/{ws['id']}/", json={"default_job_type": ""}),
        "Update successful.",
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ({"workspace_details": "x"}, "Workspace details not JSON."),
        ({"workspace_details": {"files": "x"}}, "'files' index must contain a list."),
        ({"workspace_details": {"symlinks": {}}}, "'symlinks' index must contain a list."),
        (
            {"workspace_details": {"files": [{"name": "../x", "content": "x"}]}},
            "File name cannot contain double dots.",
        ),
    ],
)
def test_update_with_bad_details_is_400(alice, make_workspace, body, message):
    """UWS-REFERENCE §1.5: `workspace_details` "same shape as POST" (§1.4 texts)."""
    ws = make_workspace(alice, name="bad-update")
    refused(alice.api.put(f"workspaces/{ws['id']}/", json=body), 400, message)
    assert workspace(alice.api, ws["id"])["name"] == "bad-update"


def test_update_missing_body_is_400(alice, make_workspace):
    """UWS-REFERENCE §9 (Workspaces PUT: missing body 400) / §1.1 "Invalid JSON: …"."""
    ws = make_workspace(alice, name="no-body")
    r = alice.api.put(f"workspaces/{ws['id']}/", data=b"")
    refused(r, 400, prefix="Invalid JSON: ")


@pytest.mark.parametrize("action", ["", "start/", "upload/"])
def test_changing_an_unknown_or_foreign_workspace_is_404(alice, bob, make_workspace, action):
    """UWS-REFERENCE §1.5: "workspace is owned by the caller (else 404 "Workspace <id> not
    found for user.")" — for all PUTs on a workspace."""
    ws = make_workspace(alice, name="not-bobs")
    for ws_id in (ws["id"], 987654321):
        kw = {"files": {"f": ("f.txt", b"x")}} if action == "upload/" else {"json": {}}
        r = bob.api.put(f"workspaces/{ws_id}/{action}", **kw)
        refused(r, 404, f"Workspace {ws_id} not found for user.")
    assert workspace(alice.api, ws["id"])["name"] == "not-bobs"


def test_update_adds_files_listed_at_once(alice, make_workspace):
    """UWS-REFERENCE §1.5: new names are merged into `current_workspace_details` at once (the
    next GET shows them before the background scan), de-duplicated, with a leading `/`;
    `request_workspace_details` is not changed by a PUT."""
    ws = make_workspace(
        alice,
        name="add-files",
        workspace_details={"files": [{"name": "first.txt", "content": "1"}]},
    )
    asked = ws["workspace_details"]["request_workspace_details"]
    files = [{"name": "later/second.txt", "content": "2"}, {"name": "first.txt", "content": "3"}]
    r = alice.api.put(f"workspaces/{ws['id']}/", json={"workspace_details": {"files": files}})
    ok(r, "Update successful.")
    w = workspace(alice.api, ws["id"])
    listed = [
        e if isinstance(e, str) else e["name"]
        for e in w["workspace_details"]["current_workspace_details"]["files"]
    ]
    assert {"/first.txt", "/later/second.txt"} <= set(listed), listed
    assert len(listed) == len(set(listed)), listed
    assert w["workspace_details"]["request_workspace_details"] == asked


# ---- §1.7 upload ---------------------------------------------------------------------------


def test_upload_without_files_is_400(alice, make_workspace):
    """UWS-REFERENCE §1.7: "If `request.FILES` is empty → 400 "No files found in request."";
    a multipart form field without a file is no file."""
    ws = make_workspace(alice, name="upload-none")
    r = alice.api.put(f"workspaces/{ws['id']}/upload/", files={"note": (None, "just text")})
    refused(r, 400, "No files found in request.")


def test_upload_one_file_then_replace_it(alice, make_workspace):
    """UWS-REFERENCE §1.7: 200 `{"message": "Successful upload.", "success": true}`; the file
    goes to the workspace root; "An existing file of the same name is replaced" (one entry)."""
    ws = make_workspace(alice, name="upload-one")
    up = f"workspaces/{ws['id']}/upload/"
    ok(alice.api.put(up, files={"file": ("data.csv", b"0123456789")}), "Successful upload.")
    eventually(lambda: "/data.csv" in names(workspace(alice.api, ws["id"])), "data.csv listed")
    ok(alice.api.put(up, files={"file": ("data.csv", b"abc")}), "Successful upload.")
    listed = names(workspace(alice.api, ws["id"]))
    assert [n for n in listed if n.endswith("data.csv")] == ["/data.csv"], listed


def test_disk_space_follows_the_files(alice, make_workspace):
    """UWS-REFERENCE §7: `disk_space` "recomputed after each create, update, upload"; an upload
    replacing a file replaces its bytes (§1.7). UWS summed `st_size` (§3.2); uws_hub counts the
    blocks the files occupy, as quotas and `du` do (docs/api.md, "Where uws_hub differs from
    UWS"): at least the bytes written, growing and shrinking with them."""
    ws = make_workspace(
        alice,
        name="disk-space",
        workspace_details={"files": [{"name": "x.txt", "content": "hello"}]},
    )
    up = f"workspaces/{ws['id']}/upload/"

    def disk_space():
        return workspace(alice.api, ws["id"])["disk_space"]

    eventually(lambda: disk_space() >= 5, "disk_space counts x.txt")
    one_file = disk_space()
    big = b"0" * 300_000
    ok(alice.api.put(up, files={"file": ("data.csv", big)}), "Successful upload.")
    eventually(lambda: disk_space() >= one_file + len(big), "disk_space counts data.csv")
    ok(alice.api.put(up, files={"file": ("data.csv", b"abc")}), "Successful upload.")
    eventually(lambda: disk_space() < one_file + len(big), "disk_space shrinks (data.csv replaced)")


def test_upload_file_names(alice, make_workspace):
    """UWS-REFERENCE §1.7: a browser's file name lands in the workspace root. UWS (Django)
    stripped path components from a name; uws_hub writes a relative name with folders where it
    says (docs/api.md PUT upload, "Where uws_hub differs from UWS"), and refuses ``..``."""
    ws = make_workspace(alice, name="upload-path")
    up = f"workspaces/{ws['id']}/upload/"
    ok(alice.api.put(up, files={"file": ("report.txt", b"r")}), "Successful upload.")
    ok(alice.api.put(up, files={"file": ("sub/dir/deep.txt", b"r")}), "Successful upload.")
    eventually(
        lambda: {"/report.txt", "/sub/dir/deep.txt"} <= set(names(workspace(alice.api, ws["id"]))),
        "both uploads listed",
    )
    r = alice.api.put(up, files={"file": ("../escape.txt", b"r")})
    assert r.status_code == 400, r.text


def test_upload_every_file_of_every_field(alice, make_workspace):
    """UWS-REFERENCE §1.7 (two files → "Successful upload."); UWS-API.md PUT upload row:
    uws_hub keeps "every file of every field (UWS kept only the last per field)"."""
    ws = make_workspace(alice, name="upload-many")
    files = [
        ("files", ("a.txt", b"a")),
        ("files", ("b.txt", b"b")),
        ("other", ("c.txt", b"c")),
    ]
    ok(alice.api.put(f"workspaces/{ws['id']}/upload/", files=files), "Successful upload.")
    eventually(
        lambda: {"/a.txt", "/b.txt", "/c.txt"} <= names(workspace(alice.api, ws["id"])),
        "all three files listed",
    )


# ---- §1.8 unknown action -------------------------------------------------------------------


@pytest.mark.parametrize("action", ["bogus", "stop", "share"])
def test_unknown_put_type_is_400(alice, make_workspace, action):
    """UWS-REFERENCE §1.8: `PUT /workspaces/<id>/<other>/` → 400 "Invalid PUT type
    passed."."""
    ws = make_workspace(alice, name="put-type")
    refused(
        alice.api.put(f"workspaces/{ws['id']}/{action}/", json={}), 400, "Invalid PUT type passed."
    )


# ---- §1.9 DELETE ---------------------------------------------------------------------------


def test_delete_queues_deletion(alice, make_workspace):
    """UWS-REFERENCE §1.9: 200 `{"message": "Workspace <id> queued for deletion.", "success":
    true}`; status → `deleting`, then the row is removed."""
    ws = make_workspace(alice, name="to-delete")
    r = alice.api.delete(f"workspaces/{ws['id']}/")
    ok(r, f"Workspace {ws['id']} queued for deletion.")
    now = workspace(alice.api, ws["id"])
    assert now is None or now["status"] == "deleting", now
    wait_gone(alice.api, ws["id"])


def test_delete_not_owned_is_404(alice, bob, make_workspace):
    """UWS-REFERENCE §1.9: "404 if not owned" (the §1.5 text); nothing is deleted."""
    ws = make_workspace(alice, name="keep-me")
    for ws_id in (ws["id"], 987654321):
        refused(
            bob.api.delete(f"workspaces/{ws_id}/"), 404, f"Workspace {ws_id} not found for user."
        )
    assert workspace(alice.api, ws["id"])["status"] != "deleting"
