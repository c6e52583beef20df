"""The filesystem layer, on real directories owned by a real account, run as root."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from hubtest import ensure_system_user, world_dir
from uws_hub.errors import BadRequest
from uws_hub.workspaces import fsops
from uws_hub.workspaces.fsops import acting_as


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


def test_acting_as_is_per_thread_and_drops_root_powers(account):
    _, owner = account
    seen = {}

    def worker():
        with acting_as(owner):
            try:
                open("/etc/shadow").read()
                seen["shadow"] = "read"
            except PermissionError:
                seen["shadow"] = "denied"
        seen["after"] = len(open("/etc/shadow").read()) > 0

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"shadow": "denied", "after": True}
    assert len(open("/etc/shadow").read()) > 0  # this thread was never affected


def test_create_dirs_owned_and_private(env):
    st_user = os.stat(env["root"] / env["pw"].pw_name)
    st_ws = os.stat(env["wdir"])
    assert (st_user.st_uid, st_ws.st_uid) == (env["pw"].pw_uid, env["pw"].pw_uid)
    assert st_ws.st_gid == env["pw"].pw_gid
    assert st_ws.st_mode & 0o777 == 0o700 and st_user.st_mode & 0o777 == 0o700
    rel = fsops.create_workspace_dir(
        str(env["root"]),
        env["pw"].pw_name,
        7,
        env["owner"],
        user_dir_mode=0o700,
        workspace_dir_mode=0o700,
    )
    assert rel == env["rel"]  # idempotent: a resumed initialization changes nothing


def test_user_dir_owned_by_someone_else_is_refused(env):
    with pytest.raises(fsops.StorageError, match="belongs to uid"):
        fsops.create_workspace_dir(
            str(env["root"]),
            env["pw"].pw_name,
            8,
            fsops.Owner(0, 0),
            user_dir_mode=0o700,
            workspace_dir_mode=0o700,
        )


def test_write_file_nested_owned(env):
    with acting_as(env["owner"]):
        n = fsops.write_file(env["fd"], ("a", "b", "c.txt"), [b"hello ", b"world"])
    assert n == 11
    p = env["wdir"] / "a" / "b" / "c.txt"
    assert p.read_bytes() == b"hello world"
    for q in (p, p.parent, p.parent.parent):
        assert (os.stat(q).st_uid, os.stat(q).st_gid) == (env["pw"].pw_uid, env["pw"].pw_gid)
    assert not [x for x in os.listdir(p.parent) if x.startswith(fsops.TMP_PREFIX)]


def test_write_replaces_file_and_hard_link_target_is_untouched(env):
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("f",), [b"v1"])
        fsops.write_file(env["fd"], ("f",), [b"version two"])
    assert (env["wdir"] / "f").read_bytes() == b"version two"
    # a hard link to a root-owned file outside: writing that name replaces the name, not the file
    os.link(env["outside"] / "target.txt", env["wdir"] / "hard")
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("hard",), [b"mine"])
    assert (env["outside"] / "target.txt").read_text() == "precious"
    assert os.stat(env["outside"] / "target.txt").st_uid == 0


def test_write_through_planted_link_refused(env):
    outside = env["outside"]
    before = snapshot(outside)
    os.symlink(outside / "target.txt", env["wdir"] / "evil")
    os.symlink(outside, env["wdir"] / "dirlink")
    with acting_as(env["owner"]):
        with pytest.raises(BadRequest):
            fsops.write_file(env["fd"], ("evil",), [b"pwned"])
        with pytest.raises(BadRequest):
            fsops.write_file(env["fd"], ("dirlink", "new.txt"), [b"pwned"])
        with pytest.raises(BadRequest):
            fsops.preflight(env["fd"], [("dirlink", "x")], [])
        with pytest.raises(BadRequest):
            fsops.preflight(env["fd"], [("evil",)], [])
    assert snapshot(outside) == before
    assert os.readlink(env["wdir"] / "evil") == str(outside / "target.txt")


def test_foreign_directory_inside_workspace_is_not_writable(env):
    """A directory the owner cannot write (e.g. moved in from elsewhere) stays out of reach."""
    foreign = env["wdir"] / "foreign"
    foreign.mkdir(mode=0o755)  # root-owned
    with acting_as(env["owner"]):
        with pytest.raises(BadRequest, match="Permission denied"):
            fsops.write_file(env["fd"], ("foreign", "x.txt"), [b"x"])
    assert os.listdir(foreign) == []


def test_symlink_created_as_owner_and_replaced(env, tmp_path):
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    with acting_as(env["owner"]):
        fsops.make_symlink(env["fd"], ("data", "link"), str(t1))
    link = env["wdir"] / "data" / "link"
    assert os.readlink(link) == str(t1)
    assert os.lstat(link).st_uid == env["pw"].pw_uid
    assert os.stat(t1).st_uid == 0  # the target's owner was not touched
    with acting_as(env["owner"]):
        fsops.make_symlink(env["fd"], ("data", "link"), str(t2))
        fsops.write_file(env["fd"], ("plain",), [b"x"])
        with pytest.raises(BadRequest, match="exists"):
            fsops.make_symlink(env["fd"], ("plain",), str(t1))
    assert os.readlink(link) == str(t2)
    assert (env["wdir"] / "plain").read_bytes() == b"x"


def test_rename(env):
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("a.txt",), [b"A"])
        fsops.write_file(env["fd"], ("b.txt",), [b"B"])
        fsops.rename_entry(env["fd"], ("a.txt",), ("moved", "a2.txt"))
        with pytest.raises(BadRequest, match="destination exists"):
            fsops.rename_entry(env["fd"], ("b.txt",), ("moved", "a2.txt"))
        with pytest.raises(BadRequest, match="does not exist"):
            fsops.rename_entry(env["fd"], ("nope",), ("newdir", "x"))
        with pytest.raises(BadRequest, match="into itself"):
            fsops.rename_entry(env["fd"], ("moved",), ("moved", "deeper"))
    assert (env["wdir"] / "moved" / "a2.txt").read_bytes() == b"A"
    assert not (env["wdir"] / "newdir").exists()  # a failed rename creates nothing
    os.symlink(env["outside"], env["wdir"] / "out")
    with acting_as(env["owner"]), pytest.raises(BadRequest):
        fsops.rename_entry(env["fd"], ("b.txt",), ("out", "b.txt"))
    assert not (env["outside"] / "b.txt").exists()


def test_preflight_renames(env):
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("a",), [b"A"])
        fsops.write_file(env["fd"], ("b",), [b"B"])
        fsops.preflight(env["fd"], [], [], [(("a",), ("c",))])
        with pytest.raises(BadRequest, match="does not exist"):
            fsops.preflight(env["fd"], [], [], [(("a",), ("c",)), (("zz",), ("d",))])
        with pytest.raises(BadRequest, match="destination exists"):
            fsops.preflight(env["fd"], [], [], [(("a",), ("b",))])


def test_scan_matches_du_and_hides_dot_entries(env):
    w = env["wdir"]
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("big.bin",), [os.urandom(300_000)])
        fsops.write_file(env["fd"], ("d", "small.txt"), [b"x"])
        fsops.write_file(env["fd"], (".cache", "junk"), [b"y" * 50_000])
        fsops.write_file(env["fd"], (".dotfile",), [b"z"])
    os.link(w / "big.bin", w / "hardlink.bin")
    os.symlink("/etc/hostname", w / "d" / "hostlink")
    res = fsops.scan(env["fd"], list_limit=100, owner_uid=env["pw"].pw_uid)
    du = int(
        subprocess.run(
            ["du", "-s", "-B1", str(w)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert res.disk_space == du
    assert [f["name"] for f in res.files] == ["/big.bin", "/d/small.txt", "/hardlink.bin"]
    assert res.symlinks == [{"name": "/d/hostlink", "source_path": "/etc/hostname"}]
    assert res.file_count == 6
    limited = fsops.scan(env["fd"], list_limit=1)
    assert limited.truncated and len(limited.files) + len(limited.symlinks) == 1
    assert limited.disk_space == du


def test_scan_counts_but_does_not_list_foreign_directories(env):
    foreign = env["wdir"] / "moved-in"
    foreign.mkdir()  # root-owned, as if moved in from someone else's tree
    (foreign / "secret-name.txt").write_bytes(b"s" * 10_000)
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("mine.txt",), [b"m"])
    res = fsops.scan(env["fd"], list_limit=100, owner_uid=env["pw"].pw_uid)
    assert [f["name"] for f in res.files] == ["/mine.txt"]
    du = int(
        subprocess.run(
            ["du", "-s", "-B1", str(env["wdir"])], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert res.disk_space == du


def test_scan_odd_names_fifos_and_depth(env):
    w = env["wdir"]
    (w / os.fsdecode(b"bad-\xff-name")).write_bytes(b"x")
    os.mkfifo(w / "pipe")
    deep = w
    for _ in range(fsops.MAX_SCAN_DEPTH + 5):
        deep = deep / "d"
    os.makedirs(deep)
    res = fsops.scan(env["fd"], list_limit=100)  # must not block on the FIFO
    names = [f["name"] for f in res.files]
    assert "/bad-\\xff-name" in names and "/pipe" in names
    assert res.incomplete
    delegated = fsops.scan(env["fd"], list_limit=0, du_after=1)  # du's part: no FIFO read either
    assert delegated.incomplete and delegated.file_count == res.file_count
    names[0].encode("utf-8")  # storable in any database


def test_delete_never_follows_links(env):
    outside = env["outside"]
    before = snapshot(outside)
    with acting_as(env["owner"]):
        fsops.write_file(env["fd"], ("sub", "f"), [b"data"])
    os.symlink(outside, env["wdir"] / "sub" / "to_outside")
    os.symlink(outside / "target.txt", env["wdir"] / "file_link")
    os.mkfifo(env["wdir"] / "sub" / "fifo")
    locked = env["wdir"] / "locked" / "inner"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    for p in (locked, locked.parent):
        os.chown(p, env["pw"].pw_uid, env["pw"].pw_gid)
    locked.chmod(0o000)  # the owner's own unreadable directory is still removed
    fsops.delete_workspace_dir(str(env["root"]), env["rel"], env["owner"])
    assert not env["wdir"].exists()
    assert not any(n.startswith(fsops.TRASH_PREFIX) for n in os.listdir(env["wdir"].parent))
    assert snapshot(outside) == before
    fsops.delete_workspace_dir(str(env["root"]), env["rel"], env["owner"])  # idempotent


def test_delete_leaves_what_the_owner_could_not_delete(env):
    foreign = env["wdir"] / "foreign"
    foreign.mkdir()
    (foreign / "theirs.txt").write_text("not yours")
    with pytest.raises(BadRequest, match="Permission denied"):
        fsops.delete_workspace_dir(str(env["root"]), env["rel"], env["owner"])
    trash = env["wdir"].parent / (fsops.TRASH_PREFIX + "7")
    assert (trash / "foreign" / "theirs.txt").read_text() == "not yours"
    # once an administrator has removed it, the next attempt finishes
    subprocess.run(["rm", "-rf", str(trash / "foreign")], check=True)
    fsops.delete_workspace_dir(str(env["root"]), env["rel"], env["owner"])
    assert not trash.exists()


def test_delete_with_planted_trash_and_replaced_workspace(env):
    outside = env["outside"]
    before = snapshot(outside)
    udir = env["wdir"].parent
    os.symlink(outside, udir / (fsops.TRASH_PREFIX + "7"))  # planted under our trash name
    fsops.delete_workspace_dir(str(env["root"]), env["rel"], env["owner"])
    assert not env["wdir"].exists() and not os.path.lexists(udir / (fsops.TRASH_PREFIX + "7"))
    # the workspace directory itself replaced by a link: only the link goes
    os.symlink(outside, env["wdir"])
    fsops.delete_workspace_dir(str(env["root"]), env["rel"], env["owner"])
    assert not os.path.lexists(env["wdir"])
    assert snapshot(outside) == before


@pytest.mark.parametrize("bad", ["..", "../x", "a/b/c", "alice", "/etc"])
def test_delete_refuses_odd_paths(env, bad):
    with pytest.raises(fsops.StorageError):
        fsops.delete_workspace_dir(str(env["root"]), bad, env["owner"])


@pytest.fixture
def small_fs(account):
    """A 1 MiB tmpfs holding a workspace: writes beyond it fail with a real ENOSPC."""
    base = world_dir("uws-small-")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(base)], check=True
    )
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
    with acting_as(owner):
        fsops.write_file(fd, ("keep.txt",), [b"old content"])
        with pytest.raises(fsops.StorageError) as e:
            fsops.write_file(fd, ("keep.txt",), [b"x" * 2_000_000])
    assert e.value.status_code == 507
    assert "No space left" in e.value.message
    assert (wdir / "keep.txt").read_bytes() == b"old content"
    assert os.listdir(wdir) == ["keep.txt"]


@pytest.mark.parametrize("du_after", [None, 1, 100])
@pytest.mark.parametrize("limit", [0, 3, 50, 10_000])
def test_scan_counts_like_du_whatever_the_listing_limit(tmp_path, limit, du_after):
    """Once the listing is full (or below hidden directories) the walk only counts: the same
    bytes as `du -s` (hard links once, also across subtrees) and every file, for any limit —
    also when the bytes are left to a `du` process (`du_after` entries) and the walk only counts."""
    root = tmp_path / "ws"
    for d in range(12):
        sub = root / (f".hidden{d}" if d % 4 == 0 else f"d{d:02d}") / "deeper"
        sub.mkdir(parents=True)
        for f in range(20):
            (sub / f"f{f}").write_bytes(b"x" * (f * 700))
    os.link(root / "d01" / "deeper" / "f5", root / "d02" / "deeper" / "hard")
    os.link(root / "d01" / "deeper" / "f6", root / ".hidden0" / "deeper" / "hard")
    os.symlink("/etc/hostname", root / "d03" / "link")  # never followed, counted as an entry
    with fsops.closing_fd(os.open(root, os.O_RDONLY | os.O_DIRECTORY)) as fd:
        res = fsops.scan(fd, limit, du_after=du_after)
        slow = fsops.scan(fd, limit, du_after=None)
    assert (res.disk_space, res.file_count, res.files, res.symlinks, res.truncated) == (
        slow.disk_space,
        slow.file_count,
        slow.files,
        slow.symlinks,
        slow.truncated,
    )
    assert not res.incomplete
    du = int(
        subprocess.run(
            ["du", "-s", "--block-size=1", str(root)], capture_output=True, text=True
        ).stdout.split()[0]
    )
    assert res.disk_space == du
    assert res.file_count == 12 * 20 + 3
    assert len(res.files) + len(res.symlinks) == min(limit, 9 * 20 + 2)
    assert res.truncated == (limit < 9 * 20 + 2)
