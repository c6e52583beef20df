"""Multipart upload: every file of every field, streamed to disk, owned by the workspace owner."""

from __future__ import annotations

import hashlib
import os
import pwd

from conftest import workspace_dir


def staging_empty(hub, user: str = "uwst-alice") -> bool:
    staging = hub.root / user / ".uws-staging"
    return not staging.exists() or os.listdir(staging) == []


def test_every_file_of_every_field(hub, alice, make_workspace):
    ws = make_workspace(name="uploads")
    files = [
        ("data", ("a.csv", b"1,2\n")),
        ("data", ("b.csv", b"3,4\n")),
        ("other", ("nested/dir/c.txt", b"c")),
        ("other", (".hidden", b"h")),
    ]
    r = alice.put(
        f"workspaces/{ws['id']}/upload/", files=files, data={"comment": "a plain field is ignored"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["message"] == "Successful upload."
    assert body["data"]["files"] == ["a.csv", "b.csv", "nested/dir/c.txt", ".hidden"]
    listed = [
        f["name"]
        for f in body["data"]["workspace"]["workspace_details"]["current_workspace_details"][
            "files"
        ]
    ]
    # as UWS: a leading "/", dot-entries hidden from the listing
    assert listed == ["/a.csv", "/b.csv", "/nested/dir/c.txt"]
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    assert (d / "a.csv").read_bytes() == b"1,2\n"
    assert (d / "nested/dir/c.txt").read_bytes() == b"c"
    assert (d / ".hidden").read_bytes() == b"h"
    for p in ("a.csv", "b.csv", "nested", "nested/dir", "nested/dir/c.txt", ".hidden"):
        assert pwd.getpwuid(os.lstat(d / p).st_uid).pw_name == "uwst-alice"
    assert staging_empty(hub)


def test_large_upload_streams_intact(hub, alice, make_workspace):
    ws = make_workspace(name="big-upload")
    blob = os.urandom(1 << 20) * 24  # 24 MiB
    r = alice.put(f"workspaces/{ws['id']}/upload", files={"f": ("big.bin", blob)})
    assert r.status_code == 200, r.text
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    assert hashlib.sha256((d / "big.bin").read_bytes()).digest() == hashlib.sha256(blob).digest()
    assert r.json()["data"]["workspace"]["disk_space"] >= len(blob)
    assert staging_empty(hub)


def test_replace_existing_file(hub, alice, make_workspace):
    ws = make_workspace(workspace_details={"files": [{"name": "r.txt", "content": "old"}]})
    r = alice.put(f"workspaces/{ws['id']}/upload/", files={"f": ("r.txt", b"new")})
    assert r.status_code == 200
    assert (workspace_dir(hub, "uwst-alice", ws["id"]) / "r.txt").read_bytes() == b"new"


def test_upload_refusals(hub, alice, make_workspace):
    ws = make_workspace(name="refusals")
    d = workspace_dir(hub, "uwst-alice", ws["id"])
    cases = [
        (
            {"data": b"plain body", "headers": {"Content-Type": "application/octet-stream"}},
            400,
            "multipart/form-data",
        ),
        ({"files": {"text": (None, b"only a field")}}, 400, "No files found in request."),
        ({"files": [("a", ("same.txt", b"1")), ("b", ("same.txt", b"2"))]}, 400, "named twice"),
        (
            {
                "data": b'--XX\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nunterminated',
                "headers": {"Content-Type": "multipart/form-data; boundary=XX"},
            },
            400,
            "Malformed multipart",
        ),
    ]
    for kw, status, message in cases:
        r = alice.put(f"workspaces/{ws['id']}/upload/", **kw)
        assert r.status_code == status, r.text
        assert message in r.json()["message"]
    assert os.listdir(d) == []
    assert staging_empty(hub)


def test_upload_over_limit_is_413(hub, alice, make_workspace):
    ws = make_workspace(name="limit")
    limit = 64 * 1024**2
    r = alice.put(
        f"workspaces/{ws['id']}/upload/", files={"f": ("huge.bin", b"x" * (limit + 1024))}
    )
    assert r.status_code == 413
    assert f"exceeds the limit of {limit} bytes" in r.json()["message"]
    assert os.listdir(workspace_dir(hub, "uwst-alice", ws["id"])) == []
    assert staging_empty(hub)
