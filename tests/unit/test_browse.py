"""A workspace's files without a job (`workspaces.browse`): folder listings (sorted, paged,
hidden entries), links listed but never followed (not downloaded, not zipped, not deleted
through), folder zips that read back byte-identical, the zip size cap, deletions, and the async
side on the domain (`WorkspaceFiles`: ranges, zip streams that stop when their reader goes, the
recorded deletion). The HTTP helpers of `service.handlers.files` (ranges, names) at the end.
End to end through the hub: the lead's e2e module for the files API."""

from __future__ import annotations

import asyncio
import grp
import io
import os
import pwd
import stat
import threading
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from uws_hub.db.models import AuditEvent, Workspace
from uws_hub.errors import BadRequest, NotFound, PayloadTooLarge, UWSError
from uws_hub.service.handlers.files import byte_range, content_disposition, content_type
from uws_hub.workspaces import browse, fsops
from uws_hub.workspaces.browse import FileDownload, FolderDownload, WorkspaceFiles

from .domain import Domain

OUTSIDE_SECRET = b"outside-secret-" * 8


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the workspace that links point to."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_bytes(OUTSIDE_SECRET)
    return out


@pytest.fixture
def tree(tmp_path, outside) -> Path:
    """A workspace directory: files of known sizes and times, folders (one empty), dot and
    internal entries, links to a file and a folder outside."""
    ws = tmp_path / "ws"
    ws.mkdir()
    files = {
        "b.txt": b"bb" * 50,  # 100 bytes
        "A.csv": b"a" * 10,
        "c.bin": bytes(range(256)) * 4,  # 1024 bytes
        "data/raw/one.dat": b"\x00\x01" * 300,
        "data/two.txt": "zwei ✓\n".encode(),
        ".hidden": b"h",
    }
    for name, content in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_bytes(content)
    (ws / "Zeta").mkdir()  # empty, sorts among folders by name
    (ws / fsops.STAGING_DIR).mkdir()
    (ws / (fsops.TMP_PREFIX + "abc")).write_bytes(b"partial")
    (ws / "data" / (fsops.TRASH_PREFIX + "x")).mkdir()
    os.symlink("/etc/passwd", ws / "passwd")
    os.symlink(str(outside), ws / "out")
    for i, name in enumerate(["A.csv", "b.txt", "c.bin"]):  # oldest to newest
        os.utime(ws / name, (1_700_000_000 + i * 100, 1_700_000_000 + i * 100))
    return ws


@pytest.fixture
def ws_fd(tree):
    fd = os.open(tree, fsops.O_DIR)
    yield fd
    os.close(fd)


def closing(fd: int):
    return browse.closing_fd(fd)


def names(listing: dict) -> list[str]:
    return [e["name"] for e in listing["entries"]]


class Unseekable:
    """A write-only stream, like the pipe to a client: zipfile cannot seek back in it."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buf.write(data)

    def flush(self) -> None:
        pass


def zip_of(ws_fd: int, parts=(), level: int = 6, prefix: str = "") -> zipfile.ZipFile:
    out = Unseekable()
    browse.write_zip(ws_fd, parts, out, level, prefix=prefix)
    return zipfile.ZipFile(io.BytesIO(out.buf.getvalue()))


# ---- listing ------------------------------------------------------------------------------


def test_listing_shows_folders_first_then_files_by_name_and_hides_what_it_should(ws_fd):
    listing = browse.list_entries(ws_fd, ())
    # folders first, case-insensitively by name; dot-entries and internal entries not shown
    assert names(listing) == ["data", "Zeta", "A.csv", "b.txt", "c.bin", "out", "passwd"]
    assert listing["total"] == 7 and listing["path"] == ""
    assert (listing["sort"], listing["order"], listing["offset"], listing["limit"]) == (
        "name",
        "asc",
        0,
        100,
    )
    by_name = {e["name"]: e for e in listing["entries"]}
    assert by_name["c.bin"]["type"] == "file" and by_name["c.bin"]["size"] == 1024
    assert by_name["c.bin"]["path"] == "c.bin"
    assert by_name["c.bin"]["modified"].timestamp() == 1_700_000_200
    assert by_name["data"]["type"] == "directory" and by_name["data"]["size"] is None
    # links: listed as links with their text, never followed (no size of the target)
    assert by_name["passwd"] == {
        "name": "passwd",
        "path": "passwd",
        "type": "link",
        "size": None,
        "modified": by_name["passwd"]["modified"],
        "target": "/etc/passwd",
        "utf8": True,
    }
    assert "target" not in by_name["c.bin"]
    # descending by name: folders still first
    desc = browse.list_entries(ws_fd, (), order="desc")
    assert names(desc) == ["Zeta", "data", "passwd", "out", "c.bin", "b.txt", "A.csv"]


def test_hidden_entries_only_on_request_and_internal_entries_never(ws_fd):
    shown = names(browse.list_entries(ws_fd, (), hidden=True))
    assert ".hidden" in shown
    assert not [n for n in shown if n.startswith((".uws-", fsops.STAGING_DIR))]
    assert names(browse.list_entries(ws_fd, ("data",), hidden=True)) == ["raw", "two.txt"]
    with pytest.raises(NotFound, match=r"No such file or folder: \.uws-staging\."):
        browse.parse_path(fsops.STAGING_DIR)
    with pytest.raises(NotFound):
        browse.parse_path(f"data/{fsops.TRASH_PREFIX}x/y")


def test_sorting_by_size_and_time_and_paging(ws_fd):
    by_size = browse.list_entries(ws_fd, (), sort="size", order="desc")
    assert names(by_size)[:3] == ["c.bin", "b.txt", "A.csv"]  # folders and links have no size
    by_time = browse.list_entries(ws_fd, (), sort="modified")
    files = [n for n in names(by_time) if n in ("A.csv", "b.txt", "c.bin")]
    assert files == ["A.csv", "b.txt", "c.bin"]
    page = browse.list_entries(ws_fd, (), offset=2, limit=3)
    assert names(page) == ["A.csv", "b.txt", "c.bin"] and page["total"] == 7
    assert browse.list_entries(ws_fd, (), offset=50)["entries"] == []
    sub = browse.list_entries(ws_fd, ("data", "raw"))
    assert sub["path"] == "data/raw" and sub["entries"][0]["path"] == "data/raw/one.dat"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"sort": "owner"}, "sort must be one of name, size, modified"),
        ({"order": "up"}, "order must be asc or desc"),
        ({"limit": 0}, "limit must be a whole number from 1 to 1000"),
        ({"limit": 1001}, "limit must be a whole number from 1 to 1000"),
        ({"offset": -1}, "offset must be a whole number, 0 or more"),
    ],
)
def test_bad_listing_arguments_are_refused_naming_the_allowed_values(ws_fd, args, message):
    with pytest.raises(BadRequest, match=message):
        browse.list_entries(ws_fd, (), **args)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("../etc", "'.' and '..' are not allowed"),
        ("/etc/passwd", "must be relative to the workspace"),
        ("a\x00b", "NUL"),
        ("a//b", "empty path component"),
    ],
)
def test_the_path_guard_refuses_escapes(raw, message):
    with pytest.raises(BadRequest, match=message):
        browse.parse_path(raw)


def test_paths_that_name_no_folder(ws_fd):
    assert browse.parse_path("data/") == ("data",)
    assert browse.parse_path("") == browse.parse_path(None) == ()
    with pytest.raises(BadRequest, match="top folder cannot be deleted"):
        browse.parse_path("", root_ok=False)
    with pytest.raises(NotFound, match=r"^No such file or folder: nope/x\.$"):
        browse.list_entries(ws_fd, ("nope", "x"))
    with pytest.raises(BadRequest, match=r"^b\.txt is a file, not a folder\.$"):
        browse.list_entries(ws_fd, ("b.txt",))
    with pytest.raises(BadRequest, match=r"^out is a link; links are not followed\.$"):
        browse.list_entries(ws_fd, ("out",))


# ---- links are never followed ------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_listed_escaped_and_marked_not_reachable(tree, ws_fd):
    raw = os.path.join(os.fsencode(tree), b"raw-\xff")
    os.mkdir(raw)
    with open(os.path.join(raw, b"data-\xfe.bin"), "wb") as f:
        f.write(b"payload")
    (tree / "raw-\\xff").write_bytes(b"a real name with a backslash")  # shown alike
    same = [e for e in browse.list_entries(ws_fd, ())["entries"] if e["name"] == "raw-\\xff"]
    assert [(e["type"], e["utf8"]) for e in same] == [("directory", False), ("file", True)]
    assert browse.list_entries(ws_fd, ())["entries"][0]["utf8"] is True
    # the escaped path reaches the real name only, never the bytes on disk
    with pytest.raises(BadRequest, match="is a file, not a folder"):
        browse.list_entries(ws_fd, ("raw-\\xff",))
    with pytest.raises(NotFound) as e:
        browse.list_entries(ws_fd, ("data-\\xfe",))
    assert "listed with \\xNN escapes" in e.value.detail
    # ... while the top folder's zip has it, with the escaped names
    assert "raw-\\xff/data-\\xfe.bin" in zip_of(ws_fd).namelist()


def test_a_file_opens_and_links_are_refused(ws_fd):
    fd, st = browse.open_file(ws_fd, ("data", "two.txt"))
    with closing(fd):
        assert os.read(fd, 100) == "zwei ✓\n".encode() and stat.S_ISREG(st.st_mode)
    with pytest.raises(BadRequest, match=r"^passwd is a link; links are not followed\.$"):
        browse.open_file(ws_fd, ("passwd",))
    with pytest.raises(BadRequest, match=r"^out is a link; links are not followed\.$"):
        browse.open_file(ws_fd, ("out", "secret.txt"))  # through a linked folder
    with pytest.raises(BadRequest, match="is a folder, not a file"):
        browse.open_file(ws_fd, ("data",))
    with pytest.raises(NotFound):
        browse.open_file(ws_fd, ("data", "nothing.txt"))


def test_special_files_are_neither_served_nor_listed_as_files(tree, ws_fd):
    os.mkfifo(tree / "pipe")
    entry = {e["name"]: e for e in browse.list_entries(ws_fd, ())["entries"]}["pipe"]
    assert entry["type"] == "other" and entry["size"] is None
    with pytest.raises(BadRequest, match="pipe is not a regular file or folder"):
        browse.open_target(ws_fd, ("pipe",))  # and opening it did not block


# ---- zips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 6])
def test_a_folder_zip_reads_back_byte_identical_with_links_as_links(tree, ws_fd, level):
    zf = zip_of(ws_fd, level=level, prefix="My work")
    assert zf.testzip() is None
    members = {i.filename: i for i in zf.infolist()}
    files = {
        str(p.relative_to(tree)): p.read_bytes()
        for p in tree.rglob("*")
        if p.is_file() and not p.is_symlink() and not browse.is_internal(p.name)
    }
    for rel, content in files.items():
        assert zf.read(f"My work/{rel}") == content, rel
    # folders are entries (also an empty one); internal entries never; dot-files are data
    assert {"My work/", "My work/Zeta/", "My work/data/", "My work/data/raw/"} <= set(members)
    assert "My work/.hidden" in members
    assert not [n for n in members if ".uws-" in n]
    # a link is a symlink entry holding its text: the target's content is not in the zip
    link = members["My work/passwd"]
    assert stat.S_ISLNK(link.external_attr >> 16) and zf.read(link) == b"/etc/passwd"
    assert stat.S_ISLNK(members["My work/out"].external_attr >> 16)
    assert not [n for n in members if "secret" in n]
    assert stat.S_IMODE(members["My work/b.txt"].external_attr >> 16) == 0o644
    if level == 0:  # stored: the outside file's bytes would show verbatim if they were in it
        out = Unseekable()
        browse.write_zip(ws_fd, (), out, 0)
        assert OUTSIDE_SECRET not in out.buf.getvalue()
        assert b"root:x:0:0" not in out.buf.getvalue()
    assert members["My work/A.csv"].compress_type == (
        zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED
    )


def test_a_subfolder_zip_holds_only_that_folder(ws_fd):
    zf = zip_of(ws_fd, ("data",), prefix="data")
    assert sorted(zf.namelist()) == [
        "data/",
        "data/raw/",
        "data/raw/one.dat",
        "data/two.txt",
    ]


def test_the_zip_cap_refuses_with_the_numbers(ws_fd):
    with browse.closing_fd(browse.open_folder(ws_fd, ())) as dfd:
        size = browse.tree_size(dfd)
    # the files' sizes: 100 + 10 + 1024 + 600 + 9 + 1 (.hidden); links and folders count none
    assert (size.bytes, size.files, size.folders) == (1744, 6, 3)
    browse.check_zip_cap(size, 0)  # no cap
    browse.check_zip_cap(size, 1744)  # at the cap
    with pytest.raises(PayloadTooLarge) as refused:
        browse.check_zip_cap(size, 1024)
    assert refused.value.status_code == 413
    assert refused.value.message == (
        "This folder holds 1.7 KiB in 6 files; folders up to 1.0 KiB can be downloaded as a zip."
    )
    assert refused.value.detail == (
        "Download smaller folders, or start a job and use its file browser."
    )


# ---- removing ------------------------------------------------------------------------------------


def test_removing_a_folder_with_a_link_to_outside_leaves_the_outside_untouched(
    tree, ws_fd, outside
):
    os.symlink(str(outside), tree / "data" / "raw" / "elsewhere")
    os.symlink(str(outside / "secret.txt"), tree / "data" / "secret-link")
    browse.remove_entry(ws_fd, ("data",))
    assert not (tree / "data").exists()
    assert (outside / "secret.txt").read_bytes() == OUTSIDE_SECRET
    browse.remove_entry(ws_fd, ("out",))  # a link is removed itself
    assert not os.path.lexists(tree / "out") and (outside / "secret.txt").exists()
    browse.remove_entry(ws_fd, ("b.txt",))
    assert not (tree / "b.txt").exists()
    with pytest.raises(NotFound, match=r"No such file or folder: b\.txt\."):
        browse.remove_entry(ws_fd, ("b.txt",))
    with pytest.raises(BadRequest, match="links are not followed"):
        browse.remove_entry(ws_fd, ("passwd", "x"))  # nothing through a link
    with pytest.raises(BadRequest):
        browse.remove_entry(ws_fd, ())
    assert Path("/etc/passwd").exists()


# ---- as the owner (root only: needs a second account) ------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another account needs root")
def test_nothing_the_owner_cannot_read_is_served(tree):
    nobody = pwd.getpwnam("nobody")
    owner = fsops.Owner(nobody.pw_uid, nobody.pw_gid)
    for path in [tree, *tree.rglob("*")]:
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)
    private = tree / "data" / "root-only.txt"
    private.write_bytes(b"not yours")
    os.chmod(private, 0o600)  # root's, moved in: the owner cannot read it
    closed = tree / "closed"
    closed.mkdir(mode=0o700)
    (closed / "inside.txt").write_bytes(b"x")  # a folder of root's the owner cannot open
    with closing(os.open(tree, fsops.O_DIR)) as root_fd, fsops.acting_as(owner):
        with closing(browse.owner_view(root_fd)) as view:
            assert "root-only.txt" in names(browse.list_entries(view, ("data",)))
            with pytest.raises(BadRequest, match="Permission denied"):
                browse.open_file(view, ("data", "root-only.txt"))
            with pytest.raises(BadRequest, match="Permission denied"):
                browse.list_entries(view, ("closed",))
            out = Unseekable()
            skipped = browse.write_zip(view, (), out, 6)
    assert sorted(skipped) == ["closed", "data/root-only.txt"]
    zf = zipfile.ZipFile(io.BytesIO(out.buf.getvalue()))
    assert "data/root-only.txt" not in zf.namelist() and "closed/inside.txt" not in zf.namelist()
    assert sorted(zf.read("DOWNLOAD-ERRORS.txt").decode().splitlines()[1:]) == sorted(skipped)
    assert zf.read("data/two.txt") == "zwei ✓\n".encode()


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another account needs root")
def test_files_of_the_owners_groups_are_read_as_in_their_jobs(tree):
    """A file of a group the owner belongs to (a lab's shared data) is read with that group,
    in this thread only, and the thread's groups are back afterwards."""
    nobody, lab = pwd.getpwnam("nobody"), grp.getgrnam("adm").gr_gid
    shared = tree / "shared.csv"
    shared.write_bytes(b"lab data")
    os.chown(shared, 0, lab)
    os.chmod(shared, 0o640)
    before = os.getgroups()
    seen_elsewhere: list[list[int]] = []
    ask, answered = threading.Event(), threading.Event()

    def another_thread() -> None:  # running before, and while, this one acts
        while ask.wait(10):
            ask.clear()
            seen_elsewhere.append(os.getgroups())
            answered.set()

    threading.Thread(target=another_thread, daemon=True).start()

    def read_as(owner: fsops.Owner) -> bytes:
        with closing(os.open(tree, fsops.O_DIR)) as root_fd, fsops.acting_as(owner):
            answered.clear()
            ask.set()
            assert answered.wait(10)
            with closing(browse.owner_view(root_fd)) as view:
                fd, _ = browse.open_file(view, ("shared.csv",))
                with os.fdopen(fd, "rb") as f:
                    return f.read()

    with pytest.raises(BadRequest, match="Permission denied"):
        read_as(fsops.Owner(nobody.pw_uid, nobody.pw_gid))
    assert read_as(fsops.Owner(nobody.pw_uid, nobody.pw_gid, (lab,))) == b"lab data"
    assert os.getgroups() == before and seen_elsewhere == [before, before]


def test_an_accounts_groups_are_looked_up_without_its_primary_group():
    root = pwd.getpwnam("root")
    groups = fsops.account_groups("root", root.pw_gid)
    assert root.pw_gid not in groups
    assert set(groups) == set(os.getgrouplist("root", root.pw_gid)) - {root.pw_gid}
    assert fsops.account_groups("no-such-account-uws", 12345) == ()


# ---- the async side, on the domain ---------------------------------------------------------------


@pytest.fixture
def domain(tmp_path):
    with Domain(tmp_path) as d:
        # plain values (c.UWS.download_zip_max_bytes and zip_compression_level)
        d.settings.download_zip_max_bytes = 5 * 1024 * 1024
        d.settings.zip_compression_level = 1
        yield d


BIG = os.urandom(3 * 1024 * 1024 + 123)  # incompressible, several chunks


@pytest.fixture
def ws(domain, alice):
    ws = domain.create_workspace(alice, {"notes.txt": "hello\n", "sub/big.bin": BIG})
    (domain.path(ws) / "empty").mkdir()
    return ws


def run_files(domain: Domain, ws: Workspace, work):
    """Run `work(files, session, row)` (a coroutine) on the domain's loop."""

    async def main():
        files = WorkspaceFiles(domain.workspaces)
        with domain.db() as session:
            return await work(files, session, session.get(Workspace, ws.id))

    return domain.run(main())


async def collect(chunks) -> bytes:
    return b"".join([c async for c in chunks])


def test_listing_and_file_ranges_through_the_manager(domain, ws):
    async def work(files, session, row):
        listing = await files.list(session, row, "sub")
        download = await files.open_download(session, row, "sub/big.bin")
        try:
            assert isinstance(download, FileDownload) and download.size == len(BIG)
            whole = await collect(files.file_chunks(download))
            part = await collect(files.file_chunks(download, 1_048_570, 2_097_160))
            tail = await collect(files.file_chunks(download, len(BIG) - 5))
        finally:
            download.close()
        return listing, whole, part, tail

    listing, whole, part, tail = run_files(domain, ws, work)
    assert names(listing) == ["big.bin"] and listing["entries"][0]["size"] == len(BIG)
    assert whole == BIG and part == BIG[1_048_570:2_097_161] and tail == BIG[-5:]


def test_a_workspace_zip_streams_as_the_owner_and_reads_back(domain, ws):
    async def work(files, session, row):
        download = await files.open_download(session, row, "")
        try:
            assert isinstance(download, FolderDownload) and download.name == "analysis"
            assert (download.size.bytes, download.size.files) == (len(BIG) + 6, 2)
            assert files._zips == {row.user_id: 1}
            data = await collect(files.zip_stream(download))
        finally:
            download.close()
        return data, dict(files._zips)

    data, running = run_files(domain, ws, work)
    assert running == {}  # its place among the running zips is given back
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.read("analysis/sub/big.bin") == BIG
    assert zf.read("analysis/notes.txt") == b"hello\n"
    assert "analysis/empty/" in zf.namelist()


def test_a_zip_whose_reader_stops_stops_its_thread(domain, ws):
    # more than the chunks that may wait for the reader (stored: the zip is as large)
    domain.settings.zip_compression_level = 0
    domain.settings.download_zip_max_bytes = 0  # no cap
    (domain.path(ws) / "sub" / "more.bin").write_bytes(os.urandom(12 * browse.ZIP_CHUNK))

    async def work(files, session, row):
        download = await files.open_download(session, row, "sub")
        chunks = files.zip_stream(download)
        first = await chunks.__anext__()
        await asyncio.sleep(0.5)  # a slow client: the thread must wait, not run ahead
        waiting = download.pipe.queue.qsize()
        zippers = [t for t in threading.enumerate() if t.name.startswith("uws-zip-")]
        await chunks.aclose()
        download.close()
        return first, waiting, zippers

    first, waiting, zippers = run_files(domain, ws, work)
    assert first.startswith(b"PK\x03\x04")
    assert len(zippers) == 1 and waiting <= browse.ZIP_QUEUE_DEPTH
    zippers[0].join(timeout=5)
    assert not zippers[0].is_alive()


def test_a_folder_over_the_cap_is_refused_before_anything_is_sent(domain, alice):
    ws = domain.create_workspace(alice, {"a.bin": BIG, "b.bin": BIG})

    async def work(files, session, row):
        with pytest.raises(PayloadTooLarge, match=r"holds 6\.0 MiB in 2 files; .* 5\.0 MiB"):
            await files.open_download(session, row, "")
        return dict(files._zips)

    assert run_files(domain, ws, work) == {}


def test_too_many_zips_at_once_are_refused(domain, ws):
    async def work(files, session, row):
        held = [await files.open_download(session, row, "sub") for _ in range(2)]
        try:
            with pytest.raises(UWSError, match="already have 2 folder downloads") as refused:
                await files.open_download(session, row, "sub")
            # a file is not a zip: still served
            (await files.open_download(session, row, "notes.txt")).close()
        finally:
            for d in held:
                d.close()
        (await files.open_download(session, row, "sub")).close()
        return refused.value.status_code

    assert run_files(domain, ws, work) == 429


def test_a_deletion_is_recorded_with_the_scan_and_audited(domain, ws):
    before = domain.fresh(Workspace, ws.id)

    async def work(files, session, row):
        deleted = await files.delete(session, row, "sub")
        with pytest.raises(NotFound):
            await files.delete(session, row, "sub")
        with pytest.raises(BadRequest):
            await files.delete(session, row, "")
        return deleted

    assert run_files(domain, ws, work) == "sub"
    row = domain.fresh(Workspace, ws.id)
    assert not (domain.path(ws) / "sub").exists()
    assert [f["name"] for f in row.workspace_details["current_workspace_details"]["files"]] == [
        "/notes.txt"
    ]
    assert row.disk_space < before.disk_space - len(BIG) // 2
    with domain.db() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "workspace.delete_files")
        ).all()
        assert [(e.target_id, e.details, e.username) for e in events] == [
            (str(ws.id), {"path": "sub"}, "alice")
        ]


def test_a_workspace_being_deleted_is_neither_read_nor_changed(domain, ws):
    with domain.db() as session:
        row = session.get(Workspace, ws.id)
        row.status = "deleting"
        session.commit()

    async def work(files, session, row):
        with pytest.raises(BadRequest, match="cannot be read now: it is being deleted"):
            await files.list(session, row, "")
        with pytest.raises(BadRequest, match="cannot be changed: it is being deleted"):
            await files.delete(session, row, "notes.txt")

    run_files(domain, ws, work)
    assert (domain.path(ws) / "notes.txt").exists()


# ---- the HTTP helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, answer",
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=10-", (10, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=-", None),
    ],
)
def test_byte_ranges(header, answer):
    assert byte_range(header, 1000) == answer


@pytest.mark.parametrize(
    "header, size", [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges_are_416_naming_the_size(header, size):
    with pytest.raises(UWSError) as refused:
        byte_range(header, size)
    assert refused.value.status_code == 416
    assert refused.value.headers == {"Content-Range": f"bytes */{size}"}


def test_names_and_types_of_downloads():
    assert content_disposition('Résumé "v2".pdf') == (
        "attachment; filename=\"R_sum_ _v2_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22v2%22.pdf"
    )
    assert content_type("a.csv") == "text/csv"
    assert content_type("a.tar.gz") == "application/gzip"  # the bytes are gzip: never unpacked
    assert content_type("README") == "application/octet-stream"


def test_timestamps_before_1980_still_zip(tree, ws_fd):
    os.utime(tree / "A.csv", (0, 0))
    assert zip_of(ws_fd).getinfo("A.csv").date_time == (1980, 1, 1, 0, 0, 0)
