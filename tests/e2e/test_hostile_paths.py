"""The hostile path and link corpus, through the API: every case is refused with 400 and changes
nothing — not the workspace, not its database record, not anything outside it."""

from __future__ import annotations

import os

import pytest

from conftest import workspace_dir

HOSTILE_NAMES = [
    "../escape.txt",
    "../../etc/passwd",
    "/etc/passwd",
    "/tmp/abs.txt",
    "a/../../escape.txt",
    "sub/../../x",
    "./x",
    "x/.",
    "x/..",
    ".",
    "..",
    "",
    "a//b",
    "trailing/",
    "nul\x00byte",
    "\x00",
    "new\nline",
    "tab\tname",
    "del\x7f",
    "x" * 256,
    "d/" + "y" * 256,
    "a/" * 65 + "f",
    ("p" * 200 + "/") * 21 + "f",
    "out_dir/pwned.txt",
    "out_dir/deeper/pwned.txt",
    "keep.txt/inside",
]
#: names whose last component is an existing link or directory: refused for files, fine for links
EXISTING_NON_FILES = ["out_dir", "out_file", "subdir"]

HOSTILE_SOURCES = [
    "/etc",
    "/etc/passwd",
    "/",
    "relative/data",
    "../x",
    "{datasets}/../outside",
    "{outside}",
    "{outside}/precious.txt",
    "{datasets}-evil",
    "{datasets}/escape",
    "{datasets}/escape/precious.txt",
    "{datasets}/missing",
    "",
    "{datasets}/a\x00b",
    5,
    None,
    ["{datasets}"],
]


@pytest.fixture(scope="module")
def setup(hub, client_for):
    alice = client_for("uwst-alice")
    outside = hub.dir / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "precious.txt").write_text("do not touch")
    (hub.dir / "datasets-evil").mkdir(exist_ok=True)
    (hub.datasets / "ok").mkdir(exist_ok=True)
    if not os.path.lexists(hub.datasets / "escape"):
        os.symlink(outside, hub.datasets / "escape")
    r = alice.post(
        "workspaces/",
        json={
            "name": "target",
            "description": "hostile corpus target",
            "workspace_details": {
                "files": [
                    {"name": "keep.txt", "content": "k"},
                    {"name": "subdir/f", "content": "f"},
                ]
            },
        },
    )
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    # links a job running as alice could plant inside her workspace
    for name, target in (("out_dir", outside), ("out_file", outside / "precious.txt")):
        os.symlink(target, d / name)
        uid, gid = os.stat(d).st_uid, os.stat(d).st_gid
        os.lchown(d / name, uid, gid)
    ws = alice.put(f"workspaces/{ws['id']}/", json={}).json()["data"]["workspace"]
    return {"alice": alice, "ws": ws, "dir": d, "outside": outside, "hub": hub}


def snapshot(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            content = None
            if os.path.islink(p):
                content = os.readlink(p)
            elif os.path.isfile(p):
                content = open(p, "rb").read()
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_gid, content)
    return out


def put_details(details):
    """The request: PUT these workspace_details to the target workspace."""
    return lambda c, i: c.put(f"workspaces/{i}/", json={"workspace_details": details})


def assert_refused(setup, request, expect_in=None):
    alice, ws, d, outside, hub = (setup[k] for k in ("alice", "ws", "dir", "outside", "hub"))
    before = (snapshot(d), snapshot(outside), snapshot(hub.datasets), sorted(os.listdir(hub.root)))
    r = request(alice, ws["id"])
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["success"] is False and body["message"]
    if expect_in:
        assert expect_in in body["message"]
    after = (snapshot(d), snapshot(outside), snapshot(hub.datasets), sorted(os.listdir(hub.root)))
    assert after == before
    now = alice.get(f"workspaces/{ws['id']}/").json()["data"]["workspaces"][0]
    assert now == ws


@pytest.mark.parametrize("name", HOSTILE_NAMES + EXISTING_NON_FILES, ids=repr)
def test_file_name(setup, name):
    assert_refused(setup, put_details({"files": [{"name": name, "content": "pwned"}]}))


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_symlink_name(setup, name):
    src = str(setup["hub"].datasets / "ok")
    assert_refused(
        setup,
        put_details({"symlinks": [{"name": name, "source_path": src}]}),
    )


@pytest.mark.parametrize("source", HOSTILE_SOURCES, ids=repr)
def test_symlink_source(setup, source):
    hub = setup["hub"]
    fmt = {"datasets": str(hub.datasets), "outside": str(setup["outside"])}
    if isinstance(source, str):
        source = source.format(**fmt)
    elif isinstance(source, list):
        source = [s.format(**fmt) for s in source]
    assert_refused(
        setup,
        put_details({"symlinks": [{"name": "link", "source_path": source}]}),
    )


@pytest.mark.parametrize(
    "name", HOSTILE_NAMES + ["out_dir", "out_file", "keep.txt", "subdir"], ids=repr
)
def test_rename_destination(setup, name):
    assert_refused(
        setup,
        put_details({"renames": [{"name": "subdir/f", "new_name": name}]}),
    )


@pytest.mark.parametrize(
    "name",
    ["../keep.txt", "/etc/passwd", "missing.txt", "out_dir/precious.txt", "subdir/../keep.txt"],
    ids=repr,
)
def test_rename_source(setup, name):
    assert_refused(
        setup,
        put_details({"renames": [{"name": name, "new_name": "moved.txt"}]}),
    )


UPLOAD_NAMES = [
    "../escape.txt",
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../x",
    "./x",
    "..",
    "a//b",
    "out_dir/pwned.txt",
    "out_file",
    "subdir",
    "x" * 256,
]


@pytest.mark.parametrize("name", UPLOAD_NAMES, ids=repr)
def test_upload_name(setup, name):
    # a good file first, then the hostile one: the whole upload is refused, nothing written
    files = [("f", ("good.txt", b"fine")), ("f", (name, b"pwned"))]
    assert_refused(setup, lambda c, i: c.put(f"workspaces/{i}/upload/", files=files))


def test_mixed_request_refused_whole(setup):
    """One bad entry among good ones: nothing of the request is applied."""
    assert_refused(
        setup,
        lambda c, i: c.put(
            f"workspaces/{i}/",
            json={
                "name": "should-not-change",
                "workspace_details": {
                    "files": [
                        {"name": "good.txt", "content": "x"},
                        {"name": "../bad", "content": "x"},
                    ]
                },
            },
        ),
    )
