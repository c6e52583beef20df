"""The workspaces API through the real hub and proxy: what a client sees and what lands on disk."""

from __future__ import annotations

import os
import pwd
import subprocess
import time

import pytest

from conftest import empty_answer, workspace_dir


def owner_of(path) -> str:
    return pwd.getpwuid(os.lstat(path).st_uid).pw_name


def test_create_with_files_and_symlinks(hub, alice, make_workspace):
    (hub.datasets / "genome").mkdir(exist_ok=True)
    (hub.datasets / "genome" / "chr1.fa").write_text(">chr1\nACGT\n")
    ws = make_workspace(
        name="analysis",
        description="first try",
        default_job_type="jupyter_lab",
        workspace_details={
            "files": [
                {"name": "README.md", "content": "# hi\n"},
                {"name": "src/deep/run.py", "content": "print(42)\n"},
                {"name": "bin.dat", "content": "AAEC/w==", "encoding": "base64"},
            ],
            "symlinks": [{"name": "data/genome", "source_path": str(hub.datasets / "genome")}],
        },
    )
    assert ws["name"] == "analysis" and ws["description"] == "first try"
    assert ws["default_job_type"] == "jupyter_lab"
    assert ws["disk_space"] > 0
    cur = ws["workspace_details"]["current_workspace_details"]
    # as UWS lists them: a leading "/"
    assert [f["name"] for f in cur["files"]] == ["/README.md", "/bin.dat", "/src/deep/run.py"]
    assert cur["symlinks"] == [
        {"name": "/data/genome", "source_path": str(hub.datasets / "genome")}
    ]
    req = ws["workspace_details"]["request_workspace_details"]
    assert req["files"] == [{"name": "README.md"}, {"name": "src/deep/run.py"}, {"name": "bin.dat"}]
    assert ws["datetime_created"].endswith("Z")

    d = workspace_dir(hub, "uwst-alice", ws["id"])
    assert (d / "src/deep/run.py").read_text() == "print(42)\n"
    assert (d / "bin.dat").read_bytes() == b"\x00\x01\x02\xff"
    assert os.readlink(d / "data/genome") == str(hub.datasets / "genome")
    for p in [
        d,
        d.parent,
        d / "README.md",
        d / "src",
        d / "src/deep",
        d / "src/deep/run.py",
        d / "data",
        d / "data/genome",
    ]:
        assert owner_of(p) == "uwst-alice", p
    assert os.stat(d).st_mode & 0o777 == 0o700
    assert owner_of(hub.datasets / "genome") == "root"  # the link's target was not chowned


def test_get_one_and_list_filters(alice, make_workspace):
    a = make_workspace(name="filter-a", description="alpha")
    b = make_workspace(name="filter-b", description="beta")
    r = alice.get(f"workspaces/{a['id']}/")
    assert r.status_code == 200
    assert [w["id"] for w in r.json()["data"]["workspaces"]] == [a["id"]]
    r = alice.get(f"workspaces/{a['id']}")  # no trailing slash: same answer, no redirect
    assert r.status_code == 200 and not r.history
    r = alice.get("workspaces", params={"name": "filter-b"})
    assert [w["id"] for w in r.json()["data"]["workspaces"]] == [b["id"]]
    r = alice.get(
        "workspaces/", params={"description": "alpha", "status": "idle", "unknown_param": "ignored"}
    )
    assert [w["id"] for w in r.json()["data"]["workspaces"]] == [a["id"]]
    r = alice.get("workspaces/", params={"status": "deleting", "name": "filter-a"})
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "message": "Workspace matching given parameters could not be found.",
        "data": {"workspaces": []},
    }
    ids = [w["id"] for w in alice.get("workspaces/").json()["data"]["workspaces"]]
    assert a["id"] in ids and b["id"] in ids and ids == sorted(ids)


def test_create_requires_name_and_description(hub, alice):
    before = (
        set(os.listdir(hub.root / "uwst-alice")) if (hub.root / "uwst-alice").exists() else set()
    )
    for body in ({"name": "x"}, {"description": "y"}, {}):
        r = alice.post("workspaces/", json=body)
        assert r.status_code == 400
        assert r.json() == {"success": False, "message": "Missing required fields."}
    after = (
        set(os.listdir(hub.root / "uwst-alice")) if (hub.root / "uwst-alice").exists() else set()
    )
    assert after == before


@pytest.mark.parametrize(
    "body,message",
    [
        ("not json", "Invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"name": 5, "description": "d"}', "'name' must be a string"),
        ('{"name": "n", "description": ["d"]}', "'description' must be a string"),
        (
            '{"name": "n", "description": "d", "default_job_type": "nope"}',
            "nope is not in the list of available job types.",
        ),
        (
            '{"name": "n", "description": "d", "workspace_details": "files"}',
            "Workspace details not JSON.",
        ),
        (
            '{"name": "n", "description": "d", "workspace_details": {"files": {"name": "a"}}}',
            "'files' index must contain a list.",  # UWS's text (§1.4)
        ),
        (
            '{"name": "n", "description": "d", "workspace_details": {"files": [{"name": "a", "content": 5}]}}',
            "content must be a string",
        ),
        (
            '{"name": "n", "description": "d", "workspace_details": {"files": [{"name": "a", "content": "@@", "encoding": "base64"}]}}',
            "not valid base64",
        ),
        (
            '{"name": "n", "description": "d", "workspace_details": {"files": [{"name": "a", "encoding": "rot13"}]}}',
            "encoding must be",
        ),
        (
            '{"name": "n", "description": "d", "workspace_details": {"renames": [{"name": "a", "new_name": "b"}]}}',
            "only valid when updating",
        ),
        ('{"name": "' + "n" * 256 + '", "description": "d"}', "longer than 255"),
    ],
)
def test_create_bad_input(hub, alice, body, message):
    n_before = len(alice.get("workspaces/").json()["data"]["workspaces"])
    r = alice.post("workspaces/", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert r.json()["success"] is False
    assert len(alice.get("workspaces/").json()["data"]["workspaces"]) == n_before


def test_update_rename_description_job_type_and_files(hub, alice, make_workspace):
    ws = make_workspace(workspace_details={"files": [{"name": "old.txt", "content": "o"}]})
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    r = alice.put(
        f"workspaces/{ws['id']}/",
        json={
            "name": "renamed",
            "description": "new words",
            "default_job_type": "test_job",
            "workspace_details": {
                "files": [{"name": "notes/today.md", "content": "- ok\n"}],
                "renames": [{"name": "old.txt", "new_name": "archive/old.txt"}],
            },
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Update successful."
    got = r.json()["data"]["workspace"]
    assert (got["name"], got["description"], got["default_job_type"]) == (
        "renamed",
        "new words",
        "test_job",
    )
    assert [f["name"] for f in got["workspace_details"]["current_workspace_details"]["files"]] == [
        "/archive/old.txt",
        "/notes/today.md",
    ]
    # as UWS: a PUT leaves request_workspace_details as the create asked for
    assert (
        got["workspace_details"]["request_workspace_details"]
        == (ws["workspace_details"]["request_workspace_details"])
    )
    assert got["datetime_last_modified"] >= ws["datetime_last_modified"]
    assert (d / "archive/old.txt").read_text() == "o" and not (d / "old.txt").exists()
    assert owner_of(d / "notes/today.md") == owner_of(d / "archive") == "uwst-alice"
    # clearing the default job type: null, or "" as UWS clients send
    r = alice.put(f"workspaces/{ws['id']}", json={"default_job_type": None})
    assert r.json()["data"]["workspace"]["default_job_type"] is None
    alice.put(f"workspaces/{ws['id']}", json={"default_job_type": "test_job"})
    r = alice.put(f"workspaces/{ws['id']}", json={"default_job_type": ""})
    assert r.status_code == 200 and r.json()["data"]["workspace"]["default_job_type"] is None
    # overwriting a file replaces its content
    alice.put(
        f"workspaces/{ws['id']}",
        json={"workspace_details": {"files": [{"name": "notes/today.md", "content": "v2"}]}},
    )
    assert (d / "notes/today.md").read_text() == "v2"


@pytest.mark.parametrize(
    "body,message",
    [
        ({"default_job_type": "nope"}, "nope is not in the list of available job types."),
        ({"name": 3}, "'name' must be a string"),
        (
            {"workspace_details": {"renames": [{"name": "missing.txt", "new_name": "x"}]}},
            "does not exist",
        ),
        (
            {"workspace_details": {"renames": [{"name": "keep.txt", "new_name": "other.txt"}]}},
            "destination exists",
        ),
        (
            {"workspace_details": {"files": [{"name": "keep.txt/inside", "content": "x"}]}},
            "not a directory",
        ),
    ],
)
def test_update_bad_input_changes_nothing(hub, alice, make_workspace, body, message):
    ws = make_workspace(
        name="stable",
        workspace_details={
            "files": [{"name": "keep.txt", "content": "k"}, {"name": "other.txt", "content": "o"}]
        },
    )
    r = alice.put(f"workspaces/{ws['id']}/", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    after = alice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]
    assert after == ws
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    assert sorted(os.listdir(d)) == ["keep.txt", "other.txt"]


def test_unknown_and_foreign_workspaces_are_404(hub, alice, bob, make_workspace):
    mine = make_workspace(
        name="alice-private", workspace_details={"files": [{"name": "s.txt", "content": "secret"}]}
    )
    # a GET answers as UWS: nothing of bob's has that id
    assert empty_answer(bob.get(f"workspaces/{mine['id']}/"), "workspaces")
    for method, path, kw in [
        ("PUT", f"workspaces/{mine['id']}/", {"json": {"name": "stolen"}}),
        ("PUT", f"workspaces/{mine['id']}/upload/", {"files": {"f": ("x.txt", b"x")}}),
        ("DELETE", f"workspaces/{mine['id']}/", {}),
    ]:
        r = bob.request(method, path, **kw)
        assert r.status_code == 404, (method, r.text)
        assert r.json() == {
            "success": False,
            "message": f"Workspace {mine['id']} not found for user.",
        }
    assert mine["id"] not in [w["id"] for w in bob.get("workspaces/").json()["data"]["workspaces"]]
    assert alice.get(f"workspaces/{mine['id']}").json()["data"]["workspaces"][0] == mine
    d = workspace_dir(hub, "uwst-alice", mine["id"])
    assert sorted(os.listdir(d)) == ["s.txt"]
    # an id that names nothing of hers: UWS's empty answer
    assert empty_answer(alice.get("workspaces/999999/"), "workspaces")
    for missing in ("abc", "0", "-1", "--5"):  # not ids at all (ids start at 1)
        r = alice.get(f"workspaces/{missing}/")
        assert r.status_code == 404
    # digits of other scripts are not ids: the full-width form of her workspace's id names none
    wide = "".join(chr(0xFF10 + int(c)) for c in str(mine["id"]))
    r = alice.get(f"workspaces/{wide}/")
    assert r.status_code == 404, r.text
    # bob cannot list alice's workspaces by naming her
    r = bob.get("workspaces/", params={"user": "uwst-alice"})
    assert r.status_code == 403
    assert "custom:uws:read:workspaces!user=uwst-alice" in r.json()["message"]


def test_delete_is_async_and_removes_directory(hub, alice, make_workspace):
    ws = make_workspace(workspace_details={"files": [{"name": "f/g.txt", "content": "x"}]})
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    assert d.exists()
    r = alice.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 200
    assert r.json() == {"success": True, "message": f"Workspace {ws['id']} queued for deletion."}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not empty_answer(
        alice.get(f"workspaces/{ws['id']}"), "workspaces"
    ):
        time.sleep(0.1)
    assert empty_answer(alice.get(f"workspaces/{ws['id']}"), "workspaces")
    assert not d.exists()
    assert ws["id"] not in [w["id"] for w in alice.get("workspaces/").json()["data"]["workspaces"]]
    # a second delete of the same workspace is a 404, not a crash
    assert alice.delete(f"workspaces/{ws['id']}/").status_code == 404


def test_wrong_methods(alice, make_workspace):
    ws = make_workspace()
    assert alice.post(f"workspaces/{ws['id']}/", json={}).status_code == 405
    assert alice.put("workspaces/", json={}).status_code == 405
    assert alice.delete("workspaces/").status_code == 405
    r = alice.get("no/such/endpoint/")
    assert r.status_code == 404 and r.json()["success"] is False


def test_large_json_body_refused(alice):
    # the test hub allows 1 MiB of JSON: a bigger body is read, dropped and answered with 413
    n_before = len(alice.get("workspaces/").json()["data"]["workspaces"])
    big = "x" * (2 * 1024 * 1024)
    r = alice.post(
        "workspaces/",
        json={
            "name": "big",
            "description": "d",
            "workspace_details": {"files": [{"name": "a", "content": big}]},
        },
    )
    assert r.status_code == 413
    assert "upload big files with PUT /workspaces/<id>/upload/" in r.json()["message"]
    assert len(alice.get("workspaces/").json()["data"]["workspaces"]) == n_before


def test_user_without_posix_account(hub, client_for):
    # a hub user whose name has no system account cannot get workspaces, and is told why
    name = "uwst-noaccount"
    r = hub.hub_api("POST", f"users/{name}")
    assert r.status_code in (201, 409)
    # the dev login created the system account with the hub user; take it away again
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    r = hub.hub_api("POST", f"users/{name}/tokens", json={"note": "t"})
    from conftest import Client

    c = Client(hub, r.json()["token"])
    r = c.post("workspaces/", json={"name": "n", "description": "d"})
    assert r.status_code == 403
    assert "no POSIX account 'uwst-noaccount'" in r.json()["message"]
    assert not (hub.root / name).exists()


def test_listing_is_never_stale(hub, client_for):
    """The listing is cached per user; every kind of change shows in the very next listing."""
    c = client_for("uwst-dave")

    def listing():
        return {w["id"]: w for w in c.get("workspaces/").json()["data"]["workspaces"]}

    assert listing() == {}
    ws = c.post("workspaces/", json={"name": "v1", "description": "d"}).json()["data"]["workspace"]
    assert listing()[ws["id"]]["name"] == "v1"
    c.put(f"workspaces/{ws['id']}/", json={"name": "v2"})
    assert listing()[ws["id"]]["name"] == "v2"
    before = listing()[ws["id"]]["disk_space"]
    c.put(f"workspaces/{ws['id']}/upload/", files={"f": ("big.bin", b"x" * 200_000)})
    assert listing()[ws["id"]]["disk_space"] > before
    c.put(
        f"workspaces/{ws['id']}/",
        json={"workspace_details": {"files": [{"name": "n.txt", "content": "n"}]}},
    )
    names = [
        f["name"]
        for f in listing()[ws["id"]]["workspace_details"]["current_workspace_details"]["files"]
    ]
    assert "/n.txt" in names
    assert [
        w["id"] for w in c.get("workspaces/", params={"name": "v2"}).json()["data"]["workspaces"]
    ] == [ws["id"]]
    c.delete(f"workspaces/{ws['id']}/")
    seen = listing()
    assert ws["id"] not in seen or seen[ws["id"]]["status"] == "deleting"
    deadline = time.monotonic() + 20
    while ws["id"] in listing() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listing() == {}
    assert c.get("workspaces/", params={"name": "v2"}).json()["data"]["workspaces"] == []


def test_listing_etag(client_for):
    c = client_for("uwst-erin")
    c.post("workspaces/", json={"name": "e", "description": "d"})
    r = c.get("workspaces/")
    tag = r.headers["Etag"]
    assert c.get("workspaces/", headers={"If-None-Match": tag}).status_code == 304
    c.post("workspaces/", json={"name": "e2", "description": "d"})
    r2 = c.get("workspaces/", headers={"If-None-Match": tag})
    assert r2.status_code == 200 and r2.headers["Etag"] != tag
    assert len(r2.json()["data"]["workspaces"]) == 2
    # another user's listing never shares a tag
    other = client_for("uwst-dave").get("workspaces/")
    assert other.headers.get("Etag") != r2.headers["Etag"]


def test_large_scan_runs_off_the_event_loop(hub, alice, anon, make_workspace):
    """While a big workspace is scanned, the service keeps answering other requests."""
    from concurrent.futures import ThreadPoolExecutor

    from uws_hub.workspaces.fsops import Owner, acting_as

    ws = make_workspace(name="huge")
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    st = d.stat()
    with acting_as(Owner(st.st_uid, st.st_gid)):
        for i in range(400):
            sub = d / f"d{i:03d}"
            sub.mkdir()
            for j in range(250):  # 100,000 files
                (sub / f"f{j:03d}").touch()
    finished = []
    with ThreadPoolExecutor(2) as pool:
        update = pool.submit(
            lambda: (
                alice.put(
                    f"workspaces/{ws['id']}/",
                    json={"workspace_details": {"files": [{"name": "x", "content": "x"}]}},
                ),
                finished.append("update"),
            )[0]
        )
        time.sleep(0.1)  # the update's scan (about half a second here) is under way
        status = anon.get("status/")
        finished.append("status")
        r = update.result()
    assert r.status_code == 200 and status.status_code == 200
    assert finished == ["status", "update"]
    got = r.json()["data"]["workspace"]
    assert got["workspace_details"]["current_workspace_details"]["truncated"] is True
    assert len(got["workspace_details"]["current_workspace_details"]["files"]) == 10000


def test_operators_list_everyones_workspaces_and_jobs(alice, bob, client_for, make_workspace):
    """?all_users=true: everyone's workspaces and jobs with their owners, for operators only."""
    a = make_workspace(alice, name="ops-listing-a")
    b = make_workspace(bob, name="ops-listing-b")
    admin = client_for("uwst-admin")
    r = admin.get("workspaces/", params={"all_users": "true", "limit": 1000})
    assert r.status_code == 200, r.text
    seen = {(w["username"], w["id"]) for w in r.json()["data"]["workspaces"]}
    assert {("uwst-alice", a["id"]), ("uwst-bob", b["id"])} <= seen
    r = admin.get("workspaces/", params={"all_users": "true", "name": "ops-listing-b"})
    assert [(w["username"], w["id"]) for w in r.json()["data"]["workspaces"]] == [
        ("uwst-bob", b["id"])
    ]
    assert (
        len(
            admin.get("workspaces/", params={"all_users": "1", "limit": 1}).json()["data"][
                "workspaces"
            ]
        )
        == 1
    )
    r = admin.get("jobs/", params={"all_users": "true"})
    assert r.status_code == 200 and all("username" in j for j in r.json()["data"]["jobs"])
    # people see only their own, and are told why
    for who, path in ((alice, "workspaces/"), (bob, "jobs/")):
        r = who.get(path, params={"all_users": "true"})
        assert r.status_code == 403 and "operators" in r.json()["message"], r.text
    for bad in (
        {"all_users": "maybe"},
        {"all_users": "true", "limit": 0},
        {"all_users": "true", "offset": "x"},
    ):
        r = admin.get("workspaces/", params=bad)
        assert r.status_code == 400, (bad, r.text)
    # without all_users nothing changed: an operator's own listing is their own
    mine = admin.get("workspaces/").json()["data"]["workspaces"]
    assert all("username" not in w for w in mine) and a["id"] not in [w["id"] for w in mine]


def test_unknown_put_action_is_400_invalid_put_type(alice, anon, make_workspace):
    """UWS-REFERENCE §1.8: PUT /workspaces/<id>/<other>/ is 400 "Invalid PUT type passed."."""
    ws = make_workspace()
    for path in (f"workspaces/{ws['id']}/foo/", f"workspaces/{ws['id']}/stop", "workspaces/9/x/"):
        r = alice.put(path, json={})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["message"] == "Invalid PUT type passed."
        assert "/start/" in r.json()["detail"]
    assert anon.put(f"workspaces/{ws['id']}/foo/", json={}).status_code == 401
    # the workspace is untouched, and other methods on such a path are still unknown
    assert (
        alice.get(f"workspaces/{ws['id']}/").json()["data"]["workspaces"][0]["name"] == ws["name"]
    )
    assert alice.get(f"workspaces/{ws['id']}/foo/").status_code == 404
