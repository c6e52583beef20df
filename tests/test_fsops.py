"""The filesystem layer, on real directories owned by a real account, run as root."""

from __future__ import annotations

import os
import subprocess

import pytest

from hubtest import ensure_system_user, world_dir
from uws_hub.errors import BadRequest
from uws_hub.workspaces import fsops


@pytest.fixture(scope="module")
def account():
    pw = ensure_system_user("uwst-alice")
    return pw, fsops.Owner(pw.pw_uid, pw.pw_gid)


@pytest.fixture
def env(account):
    """root dir, a created workspace (fd), an outside directory with a root-owned file."""
    pw, owner = account
    base = world_dir("uws-fsops-")
    root = base / "root"
    root.mkdir()
    outside = base / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("precious")
    rel = fsops.create_workspace_dir(
        str(root), pw.pw_name, 7, owner, user_dir_mode=0o700, workspace_dir_mode=0o700
    )
    wdir = root / rel
    fd = fsops.open_workspace(str(root), rel)
    yield {
        "root": root,
        "rel": rel,
        "wdir": wdir,
        "fd": fd,
        "outside": outside,
        "owner": owner,
        "pw": pw,
    }
    os.close(fd)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def snapshot(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            content = open(p, "rb").read() if os.path.isfile(p) and not os.path.islink(p) else None
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_gid, content)
    return out


def test_create_dirs_owned_and_private(env):
    st_user = os.stat(env["root"] / env["pw"].pw_name)
    st_ws = os.stat(env["wdir"])
    assert (st_user.st_uid, st_ws.st_uid) == (env["pw"].pw_uid, env["pw"].pw_uid)
    assert st_ws.st_gid == env["pw"].pw_gid
    assert st_ws.st_mode & 0o777 == 0o700
    # idempotent: a second call (a resumed initialization) changes nothing
    rel = fsops.create_workspace_dir(
        str(env["root"]),
        env["pw"].pw_name,
        7,
        env["owner"],
        user_dir_mode=0o700,
        workspace_dir_mode=0o700,
    )
    assert rel == env["rel"]


def test_user_dir_owned_by_someone_else_is_refused(env, account):
    other = fsops.Owner(0, 0)
    with pytest.raises(fsops.StorageError, match="belongs to uid"):
        fsops.create_workspace_dir(
            str(env["root"]),
            env["pw"].pw_name,
            8,
            other,
            user_dir_mode=0o700,
            workspace_dir_mode=0o700,
        )


def test_write_file_nested_owned(env):
    n = fsops.write_file(env["fd"], ("a", "b", "c.txt"), [b"hello ", b"world"], env["owner"])
    assert n == 11
    p = env["wdir"] / "a" / "b" / "c.txt"
    assert p.read_bytes() == b"hello world"
    for q in (p, p.parent, p.parent.parent):
        assert os.stat(q).st_uid == env["pw"].pw_uid
    assert not [x for x in os.listdir(p.parent) if x.startswith(fsops.TMP_PREFIX)]


def test_write_replaces_regular_file(env):
    fsops.write_file(env["fd"], ("f",), [b"v1"], env["owner"])
    fsops.write_file(env["fd"], ("f",), [b"version two"], env["owner"])
    assert (env["wdir"] / "f").read_bytes() == b"version two"


def test_write_through_planted_link_refused(env):
    outside = env["outside"]
    before = snapshot(outside)
    os.symlink(outside / "target.txt", env["wdir"] / "evil")
    os.symlink(outside, env["wdir"] / "dirlink")
    with pytest.raises(BadRequest):
        fsops.write_file(env["fd"], ("evil",), [b"pwned"], env["owner"])
    with pytest.raises(BadRequest):
        fsops.write_file(env["fd"], ("dirlink", "new.txt"), [b"pwned"], env["owner"])
    with pytest.raises(BadRequest):
        fsops.preflight(env["fd"], [("dirlink", "x")], [])
    with pytest.raises(BadRequest):
        fsops.preflight(env["fd"], [("evil",)], [])
    assert snapshot(outside) == before
    assert os.readlink(env["wdir"] / "evil") == str(outside / "target.txt")


def test_symlink_created_with_lchown_and_replaced(env, tmp_path):
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    fsops.make_symlink(env["fd"], ("data", "link"), str(t1), env["owner"])
    link = env["wdir"] / "data" / "link"
    assert os.readlink(link) == str(t1)
    assert os.lstat(link).st_uid == env["pw"].pw_uid
    assert os.stat(t1).st_uid == 0  # the target's owner was not touched
    fsops.make_symlink(env["fd"], ("data", "link"), str(t2), env["owner"])
    assert os.readlink(link) == str(t2)
    fsops.write_file(env["fd"], ("plain",), [b"x"], env["owner"])
    with pytest.raises(BadRequest, match="exists"):
        fsops.make_symlink(env["fd"], ("plain",), str(t1), env["owner"])
    assert (env["wdir"] / "plain").read_bytes() == b"x"


def test_rename(env):
    fsops.write_file(env["fd"], ("a.txt",), [b"A"], env["owner"])
    fsops.write_file(env["fd"], ("b.txt",), [b"B"], env["owner"])
    fsops.rename_entry(env["fd"], ("a.txt",), ("moved", "a2.txt"), env["owner"])
    assert (env["wdir"] / "moved" / "a2.txt").read_bytes() == b"A"
    with pytest.raises(BadRequest, match="destination exists"):
        fsops.rename_entry(env["fd"], ("b.txt",), ("moved", "a2.txt"), env["owner"])
    with pytest.raises(BadRequest, match="does not exist"):
        fsops.rename_entry(env["fd"], ("nope",), ("x",), env["owner"])
    with pytest.raises(BadRequest, match="into itself"):
        fsops.rename_entry(env["fd"], ("moved",), ("moved", "deeper"), env["owner"])
    os.symlink(env["outside"], env["wdir"] / "out")
    with pytest.raises(BadRequest):
        fsops.rename_entry(env["fd"], ("b.txt",), ("out", "b.txt"), env["owner"])
    assert not (env["outside"] / "b.txt").exists()


def test_scan_matches_du_and_hides_dot_entries(env):
    w = env["wdir"]
    fsops.write_file(env["fd"], ("big.bin",), [os.urandom(300_000)], env["owner"])
    fsops.write_file(env["fd"], ("d", "small.txt"), [b"x"], env["owner"])
    fsops.write_file(env["fd"], (".cache", "junk"), [b"y" * 50_000], env["owner"])
    fsops.write_file(env["fd"], (".dotfile",), [b"z"], env["owner"])
    os.link(w / "big.bin", w / "hardlink.bin")
    os.symlink("/etc/hostname", w / "d" / "hostlink")
    res = fsops.scan(env["fd"], list_limit=100)
    du = int(
        subprocess.run(
            ["du", "-s", "-B1", str(w)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert res.disk_space == du
    names = [f["name"] for f in res.files]
    assert names == ["big.bin", "d/small.txt", "hardlink.bin"]
    assert res.symlinks == [{"name": "d/hostlink", "source_path": "/etc/hostname"}]
    assert not any(n.startswith(".") or "/." in n for n in names)
    assert res.file_count >= 5
    limited = fsops.scan(env["fd"], list_limit=1)
    assert limited.truncated and len(limited.files) + len(limited.symlinks) == 1
    assert limited.disk_space == du


def test_delete_never_follows_links(env, tmp_path):
    outside = env["outside"]
    before = snapshot(outside)
    fsops.write_file(env["fd"], ("sub", "f"), [b"data"], env["owner"])
    os.symlink(outside, env["wdir"] / "sub" / "to_outside")
    os.symlink(outside / "target.txt", env["wdir"] / "file_link")
    fsops.delete_workspace_dir(str(env["root"]), env["rel"])
    assert not env["wdir"].exists()
    assert not any(n.startswith(fsops.TRASH_PREFIX) for n in os.listdir(env["wdir"].parent))
    assert snapshot(outside) == before
    fsops.delete_workspace_dir(str(env["root"]), env["rel"])  # idempotent


def test_delete_when_workspace_replaced_by_link(env):
    outside = env["outside"]
    before = snapshot(outside)
    os.rename(env["wdir"], env["wdir"].with_name("moved-away"))
    os.symlink(outside, env["wdir"])
    fsops.delete_workspace_dir(str(env["root"]), env["rel"])
    assert not os.path.lexists(env["wdir"])
    assert snapshot(outside) == before


@pytest.mark.parametrize("bad", ["..", "../x", "a/b/c", "alice", "/etc"])
def test_delete_refuses_odd_paths(env, bad):
    with pytest.raises(fsops.StorageError):
        fsops.delete_workspace_dir(str(env["root"]), bad)


@pytest.fixture
def small_fs(account):
    """A 1 MiB tmpfs holding a workspace: writes beyond it fail with a real ENOSPC."""
    base = world_dir("uws-small-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(base)], check=True)
    try:
        pw, owner = account
        rel = fsops.create_workspace_dir(
            str(base), pw.pw_name, 1, owner, user_dir_mode=0o700, workspace_dir_mode=0o700
        )
        fd = fsops.open_workspace(str(base), rel)
        yield base / rel, fd, owner
        os.close(fd)
    finally:
        subprocess.run(["umount", "-l", str(base)], check=False)
        os.rmdir(base)


def test_disk_full_keeps_old_file(small_fs):
    wdir, fd, owner = small_fs
    fsops.write_file(fd, ("keep.txt",), [b"old content"], owner)
    with pytest.raises(fsops.StorageError) as e:
        fsops.write_file(fd, ("keep.txt",), [b"x" * 2_000_000], owner)
    assert e.value.status_code == 507
    assert "No space left" in e.value.message
    assert (wdir / "keep.txt").read_bytes() == b"old content"
    assert os.listdir(wdir) == ["keep.txt"]
