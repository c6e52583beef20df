"""Files without a job (issue 13, part 3), through the hub's proxy: list a folder (paged,
sorted), download a file (Range, type, name) or a folder as a zip, delete files and folders —
as the owner's account, never following a link out of the workspace. Each rule on its own:
tests/unit/test_browse.py; the file browser in a browser: tests/e2e/test_pages.py."""

from __future__ import annotations

import grp
import io
import os
import stat
import subprocess
import zipfile

import pytest

from conftest import Client
from hubtest import ensure_system_user

ME = "uwst-alice"


@pytest.fixture(scope="module")
def tree(hub, alice):
    """A workspace with files, a folder, a hidden file, a link to /etc/passwd, a 3 MiB file
    written as the owner and a file only root can read."""
    files = [
        {"name": "a.txt", "content": "alpha\n"},
        {"name": "data/table.csv", "content": "x,y\n1,2\n"},
        {"name": "data/deep/c.txt", "content": "gamma\n"},
        {"name": ".hidden", "content": "h\n"},
    ]
    r = alice.post(
        "workspaces/",
        json={"name": "browse-me", "description": "d", "workspace_details": {"files": files}},
    )
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    path = hub.root / ME / str(ws["id"])
    big = os.urandom(3 * 1024 * 1024)
    subprocess.run(
        [
            "runuser",
            "-u",
            ME,
            "--",
            "sh",
            "-c",
            f"cat > {path}/big.bin; ln -s /etc/passwd {path}/pw",
        ],
        input=big,
        check=True,
    )
    secret = path / "root-only.txt"
    secret.write_text("not the owner's to read\n")  # root's, mode 0600, inside the workspace
    secret.chmod(0o600)
    grp = path / "root-group.txt"  # root's group may read it: the owner is not in that group
    grp.write_text("root's group only\n")
    grp.chmod(0o640)
    return ws, path, big


def listing(me: Client, ws: dict, **params) -> dict:
    r = me.get(f"workspaces/{ws['id']}/files/", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_folder_is_listed_paged_and_sorted_without_following_links(alice, tree):
    ws, _, big = tree
    top = listing(alice, ws)
    names = [e["name"] for e in top["entries"]]
    assert names == ["data", "a.txt", "big.bin", "pw", "root-group.txt", "root-only.txt"]
    by = {e["name"]: e for e in top["entries"]}
    assert by["data"]["type"] == "directory" and by["data"]["size"] is None
    assert by["big.bin"]["size"] == len(big) and by["big.bin"]["modified"].endswith("Z")
    assert by["pw"] == {**by["pw"], "type": "link", "target": "/etc/passwd", "size": None}
    assert ".hidden" in [e["name"] for e in listing(alice, ws, hidden=1)["entries"]]
    assert [e["name"] for e in listing(alice, ws, sort="size", order="desc")["entries"]][
        0
    ] == "big.bin"
    page = listing(alice, ws, limit=2, offset=1)
    assert page["total"] == 6 and [e["name"] for e in page["entries"]] == ["a.txt", "big.bin"]
    sub = listing(alice, ws, path="data")
    assert [(e["name"], e["path"]) for e in sub["entries"]] == [
        ("deep", "data/deep"),
        ("table.csv", "data/table.csv"),
    ]
    for bad, status in (("../", 400), ("/etc", 400), ("nope", 404), ("a.txt", 400), ("pw", 400)):
        r = alice.get(f"workspaces/{ws['id']}/files/", params={"path": bad})
        assert r.status_code == status, (bad, r.text)


def test_a_file_downloads_whole_or_in_ranges(alice, tree):
    ws, _, big = tree
    url = f"workspaces/{ws['id']}/files/download"
    r = alice.get(url, params={"path": "big.bin"})
    assert r.status_code == 200 and r.content == big
    assert r.headers["Content-Length"] == str(len(big)) and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="big.bin"')
    r = alice.get(url, params={"path": "big.bin"}, headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == big[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(big)}"
    r = alice.get(url, params={"path": "big.bin"}, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == big[-10:]
    r = alice.get(url, params={"path": "big.bin"}, headers={"Range": f"bytes={len(big)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(big)}"
    r = alice.get(url, params={"path": "data/table.csv"})
    assert r.status_code == 200 and r.text == "x,y\n1,2\n"
    assert r.headers["Content-Type"].startswith("text/csv")
    # a link is not followed; a file the owner cannot read is not served
    r = alice.get(url, params={"path": "pw"})
    assert r.status_code == 400 and "link" in r.json()["message"]
    for name, text in (("root-only.txt", b"not the owner's"), ("root-group.txt", b"group only")):
        r = alice.get(url, params={"path": name})  # nor through root's own groups
        assert 400 <= r.status_code < 500 and text not in r.content, (name, r.status_code)


def test_a_folder_downloads_as_a_zip_of_what_the_owner_can_read(alice, tree):
    ws, _, big = tree
    r = alice.get(f"workspaces/{ws['id']}/files/download", params={"path": ""})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    assert 'filename="browse-me.zip"' in r.headers["Content-Disposition"]
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.testzip() is None
    names = set(z.namelist())
    assert {"browse-me/a.txt", "browse-me/data/deep/c.txt", "browse-me/big.bin"} <= names
    assert z.read("browse-me/big.bin") == big
    link = z.getinfo("browse-me/pw")
    assert stat.S_ISLNK(link.external_attr >> 16) and z.read(link) == b"/etc/passwd"
    assert "browse-me/root-only.txt" not in names and "browse-me/root-group.txt" not in names
    assert "root-only.txt" in z.read("browse-me/DOWNLOAD-ERRORS.txt").decode()
    r = alice.get(f"workspaces/{ws['id']}/files/download", params={"path": "data"})
    assert sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) == [
        "data/",
        "data/deep/",
        "data/deep/c.txt",
        "data/table.csv",
    ]


def test_files_and_folders_are_deleted_as_the_owner_and_links_alone(alice, bob, tree):
    ws, path, big = tree
    # big.bin was written behind the service's back: a rescan counts it first
    before = alice.put(f"workspaces/{ws['id']}/scan/").json()["data"]["workspace"]["disk_space"]
    assert before > len(big)
    for who, params, status in (
        (bob, {"path": "a.txt"}, 404),  # not theirs
        (alice, {"path": ""}, 400),  # the top folder: delete the workspace instead
        (alice, {"path": "../x"}, 400),
        (alice, {"path": "nope.txt"}, 404),
    ):
        assert who.delete(f"workspaces/{ws['id']}/files/", params=params).status_code == status
    r = alice.delete(f"workspaces/{ws['id']}/files/", params={"path": "big.bin"})
    assert r.status_code == 200 and r.json()["message"] == "Deleted big.bin."
    after = alice.get(f"workspaces/{ws['id']}/").json()["data"]["workspaces"][0]["disk_space"]
    assert after <= before - len(big)  # the size follows at once
    assert alice.delete(f"workspaces/{ws['id']}/files/", params={"path": "pw"}).status_code == 200
    assert os.path.exists("/etc/passwd")  # the link went, not its target
    r = alice.delete(f"workspaces/{ws['id']}/files/", params={"path": "data"})
    assert r.status_code == 200 and not (path / "data").exists()
    assert (path / "root-only.txt").exists()  # nothing else touched
    assert [e["name"] for e in listing(alice, ws)["entries"]] == [
        "a.txt",
        "root-group.txt",
        "root-only.txt",
    ]


def test_a_file_of_the_owners_group_is_read_as_in_their_jobs(hub, client_for):
    """A lab's shared file (root's, readable by the lab group) is served to a member of the
    lab, as JupyterLab would read it in their job; a group they are not in still is not."""
    name = "uwst-labber"
    ensure_system_user(name)
    subprocess.run(["groupadd", "-f", "uwst-lab"], check=True)
    subprocess.run(["usermod", "-aG", "uwst-lab", name], check=True)
    me = client_for(name)
    r = me.post("workspaces/", json={"name": "lab", "description": "d"})
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    path = hub.root / name / str(ws["id"])
    shared, other = path / "lab-data.csv", path / "root-group.txt"
    shared.write_text("lab,data\n")
    os.chown(shared, 0, grp.getgrnam("uwst-lab").gr_gid)
    other.write_text("root's group only\n")
    for f in (shared, other):
        f.chmod(0o640)
    url = f"workspaces/{ws['id']}/files/download"
    r = me.get(url, params={"path": "lab-data.csv"})
    assert r.status_code == 200 and r.text == "lab,data\n"
    assert me.get(url, params={"path": "root-group.txt"}).status_code == 400
    z = zipfile.ZipFile(io.BytesIO(me.get(url, params={"path": ""}).content))
    assert z.read("lab/lab-data.csv") == b"lab,data\n" and "lab/root-group.txt" not in z.namelist()
