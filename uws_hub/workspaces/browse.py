"""A workspace's files without a job: list a folder, download a file or a folder (as a zip),
delete a file, link or folder.

Everything is read and removed **as the workspace's owner** (`fsops.acting_as`), opening every
path component with O_NOFOLLOW relative to its parent's descriptor: nothing the owner could not
read is served, and no link leads out of the workspace (a link is listed as a link with its
text, never followed). Internal entries (`fsops.TMP_PREFIX`, `fsops.TRASH_PREFIX`,
`fsops.STAGING_DIR`) are never shown and cannot be named.

The module has two parts: blocking functions on a workspace directory descriptor (call them
from a thread, under ``acting_as``), and `WorkspaceFiles`, the async operations the handlers
call (`list`, `open_download`, `file_chunks`, `zip_stream`, `delete`), built on the
`WorkspaceManager`'s thread pool, locks and recorded changes. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import os
import stat
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .. import audit
from ..db.models import Workspace, WorkspaceStatus
from ..errors import BadRequest, NotFound, PayloadTooLarge, UWSError
from ..quotas import human_bytes
from . import fsops
from .fsops import closing_fd, display_name, lstat_at, open_dir
from .manager import workspace_owner
from .paths import split_relpath

if TYPE_CHECKING:
    from .manager import WorkspaceManager

log = logging.getLogger("uws_hub.workspaces")

SORTS = ("name", "size", "modified")
ORDERS = ("asc", "desc")
MAX_LIMIT = 1000
#: a folder with more entries is not listed (413): the listing is sorted in memory
MAX_LISTED = 100_000
#: bytes read from a file at a time (one thread-pool call each)
READ_CHUNK = 1 << 20
#: bytes of zip output handed to the handler at a time, and how many may wait for it
ZIP_CHUNK = 1 << 20
ZIP_QUEUE_DEPTH = 4
#: zip streams running at once: in all, and per person (each holds a thread while it runs)
MAX_ZIP_STREAMS = 4
MAX_ZIP_STREAMS_PER_USER = 2
#: the entry a zip gets when something could not be included (its text names what)
ERRORS_NAME = "DOWNLOAD-ERRORS.txt"
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: statuses whose files can be read (an errored workspace's files may be rescued)
READABLE = (WorkspaceStatus.IDLE.value, WorkspaceStatus.ACTIVE.value, WorkspaceStatus.ERROR.value)


def is_internal(name: str) -> bool:
    """Whether `name` is the service's own entry (temporary files, trash, staging)."""
    return (
        name.startswith(fsops.TMP_PREFIX)
        or name.startswith(fsops.TRASH_PREFIX)
        or name == fsops.STAGING_DIR
    )


def parse_path(raw: str | None, *, root_ok: bool = True) -> tuple[str, ...]:
    """A client's ``path`` as components: empty (or missing) is the workspace's top folder
    (400 unless `root_ok`); one trailing ``/`` is allowed; ``..``, absolute paths, NUL and
    control characters are 400 (`paths.split_relpath`); an internal name is 404."""
    raw = raw or ""
    if raw.endswith("/") and raw.strip("/"):
        raw = raw[:-1]
    if not raw:
        if not root_ok:
            raise BadRequest(
                "Name a file or folder with ?path=: the workspace's top folder cannot be deleted.",
                detail="To delete the whole workspace, use DELETE /workspaces/<id>/.",
            )
        return ()
    parts = split_relpath(raw, "path")
    if any(is_internal(p) for p in parts):
        raise NotFound(f"No such file or folder: {raw}.")
    return parts


def check_listing(sort: str, order: str, offset: int, limit: int) -> None:
    """Refuse (400, naming the allowed values) a listing's bad sort, order or paging."""
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}, not {sort!r}.")
    if order not in ORDERS:
        raise BadRequest(f"order must be asc or desc, not {order!r}.")
    if not isinstance(offset, int) or offset < 0:
        raise BadRequest("offset must be a whole number, 0 or more.")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}.")


def shown(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


# ---- opening paths as the owner (blocking; call under acting_as) -----------------------------


def owner_view(ws_fd: int) -> int:
    """The workspace directory re-opened by the caller (the owner, under ``acting_as``): a
    descriptor opened by root would let its entries be read where the owner could not."""
    return os.open(".", fsops.O_DIR, dir_fd=ws_fd)


def _missing(asked: str) -> NotFound:
    """404 for path `asked`; a path written with ``\\xNN`` escapes is told why it is not found."""
    detail = None
    if "\\x" in asked:
        detail = (
            "Names that are not valid UTF-8 are listed with \\xNN escapes (utf8: false) and "
            "cannot be reached by a path: download their folder as a zip, or rename them from a job."
        )
    return NotFound(f"No such file or folder: {asked}.", detail=detail)


def _path_error(
    dfd: int, parts: tuple[str, ...], exc: OSError, folder: bool, asked: str
) -> UWSError:
    """What opening ``parts[-1]`` in `dfd` failing with `exc` means to the person who asked
    for path `asked` (the whole path when something is missing; else the component)."""
    path = shown(parts)
    if exc.errno == errno.ENOENT:
        return _missing(asked)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        st = lstat_at(dfd, parts[-1])
        if st is None:
            return _missing(asked)
        if stat.S_ISLNK(st.st_mode):
            return BadRequest(f"{path} is a link; links are not followed.")
        if stat.S_ISREG(st.st_mode) and folder:
            return BadRequest(f"{path} is a file, not a folder.")
        return BadRequest(f"{path} is not a regular file or folder.")
    return fsops.storage_error(exc, f"opening {path}")


def open_folder(ws_fd: int, parts: tuple[str, ...], asked: str | None = None) -> int:
    """Descriptor of folder `parts` below `ws_fd`, never following a link; 404 (naming
    `asked`, by default `parts`) if missing, 400 if a component is a link or a file. The
    caller closes it."""
    cur = os.dup(ws_fd)
    asked = shown(parts) if asked is None else asked
    try:
        for i, part in enumerate(parts):
            try:
                nxt = open_dir(cur, part)
            except OSError as e:
                raise _path_error(cur, parts[: i + 1], e, True, asked) from e
            os.close(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise


def open_target(ws_fd: int, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
    """Descriptor and stat of `parts`, a regular file or a folder (the top folder if empty).
    A link is 400 ("links are not followed"), so is anything else that is neither."""
    if not parts:
        fd = os.dup(ws_fd)
        return fd, os.fstat(fd)
    with closing_fd(open_folder(ws_fd, parts[:-1], shown(parts))) as dfd:
        st = lstat_at(dfd, parts[-1])
        if st is None:
            raise _missing(shown(parts))
        is_dir = stat.S_ISDIR(st.st_mode)
        try:
            fd = open_dir(dfd, parts[-1]) if is_dir else os.open(parts[-1], _O_FILE, dir_fd=dfd)
        except OSError as e:
            raise _path_error(dfd, parts, e, is_dir, shown(parts)) from e
        fst = os.fstat(fd)
        if not (stat.S_ISREG(fst.st_mode) or stat.S_ISDIR(fst.st_mode)):
            os.close(fd)
            raise BadRequest(f"{shown(parts)} is not a regular file or folder.")
        return fd, fst


def open_file(ws_fd: int, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
    """Descriptor and stat of regular file `parts` (O_NOFOLLOW); 400 for a folder or link."""
    fd, st = open_target(ws_fd, parts)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise BadRequest(f"{shown(parts) or 'The top folder'} is a folder, not a file.")
    return fd, st


# ---- listing ---------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _sorted(rows: list[tuple[str, str, os.stat_result]], sort: str, order: str) -> list:
    """`rows` (name, kind, stat) in the listing's order: by name, folders first (in either
    order, like every file manager); by size (folders and links have none: as -1); by
    modification time. Ties go by name."""
    if sort == "name":
        key: Callable[[Any], Any] = lambda r: (r[0].casefold(), r[0])  # noqa: E731
    elif sort == "size":
        key = lambda r: (r[2].st_size if r[1] == "file" else -1, r[0])  # noqa: E731
    else:
        key = lambda r: (r[2].st_mtime_ns, r[0])  # noqa: E731
    out = sorted(rows, key=key, reverse=order == "desc")
    if sort == "name":
        out.sort(key=lambda r: r[1] != "directory")  # stable: folders first
    return out


def _read_folder(dfd: int, path: str, hidden: bool) -> list[tuple[str, str, os.stat_result]]:
    rows = []
    with os.scandir(dfd) as it:
        for entry in it:
            name = entry.name
            if is_internal(name) or (name.startswith(".") and not hidden):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            rows.append((name, _kind(st.st_mode), st))
            if len(rows) > MAX_LISTED:
                raise PayloadTooLarge(
                    f"{path or 'This folder'} holds more than {MAX_LISTED:,} entries; the file "
                    f"browser lists folders of up to {MAX_LISTED:,}.",
                    detail="Start a job and use its file browser or a terminal.",
                )
    return rows


def list_entries(
    ws_fd: int,
    parts: tuple[str, ...],
    *,
    sort: str = "name",
    order: str = "asc",
    offset: int = 0,
    limit: int = 100,
    hidden: bool = False,
) -> dict:
    """One page of folder `parts`: ``{path, entries, total, offset, limit, sort, order}``.

    Each entry is ``{name, path, type, size, modified}`` (``type`` one of file, directory,
    link, other; ``size`` in bytes for files, else None; ``modified`` a UTC datetime) and, for
    links, ``target``: the link's text, never followed. Dot-entries only with `hidden`;
    internal entries never. Names that are not UTF-8 are shown with ``\\xNN`` escapes and
    ``utf8: false``: such a path names nothing (another request with it is 404), so the pages
    offer no download or delete for them — their folder's zip has them."""
    check_listing(sort, order, offset, limit)
    path = shown(parts)
    try:
        with closing_fd(open_folder(ws_fd, parts)) as dfd:
            rows = _sorted(_read_folder(dfd, path, hidden), sort, order)
            entries = [_entry(dfd, parts, *row) for row in rows[offset : offset + limit]]
    except OSError as e:
        raise fsops.storage_error(e, f"listing {path or 'the top folder'}") from e
    return {
        "path": path,
        "entries": entries,
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "sort": sort,
        "order": order,
    }


def _entry(dfd: int, parts: tuple[str, ...], name: str, kind: str, st: os.stat_result) -> dict:
    text = display_name(name)
    out = {
        "name": text,
        "path": shown((*parts, text)),
        "type": kind,
        "size": st.st_size if kind == "file" else None,
        "modified": _utc(st.st_mtime),
        "utf8": text == name,
    }
    if kind == "link":
        try:
            out["target"] = display_name(os.readlink(name, dir_fd=dfd))
        except OSError:
            out["target"] = None
    return out


# ---- walking a tree (sizes, zips) -------------------------------------------------------------


@dataclass
class Item:
    """One entry met by `walk_tree`. `parent` is the descriptor of its folder (valid until
    the walk goes on), `name` its name there, `rel` its path below the walked folder."""

    kind: str  # directory, file, link, other; "unreadable": a folder that could not be opened
    rel: str
    st: os.stat_result | None  # None for files when the walk was asked not to stat them
    parent: int
    name: str


def _scandir(fd: int) -> list[os.DirEntry]:
    with os.scandir(fd) as it:
        return [e for e in it if not is_internal(e.name)]


def walk_tree(dfd: int, *, stat_files: bool = True) -> Iterator[Item]:
    """Every entry below folder `dfd`, depth first, folders before their contents; links
    and other files are met, never followed. Folders the caller cannot open (or nested deeper
    than `fsops.MAX_SCAN_DEPTH`) are met as "unreadable" and not entered. Without
    `stat_files`, regular files come without a stat (their type from the directory entry:
    a caller that opens them takes an ``fstat`` anyway)."""
    stack: list[tuple[int, Iterator[os.DirEntry], str]] = []
    root = os.dup(dfd)
    stack.append((root, iter(()), ""))
    try:
        stack[0] = (root, iter(_scandir(root)), "")
        while stack:
            fd, it, prefix = stack[-1]
            entry = next(it, None)
            if entry is None:
                stack.pop()
                os.close(fd)
                continue
            try:
                if not stat_files and entry.is_file(follow_symlinks=False):
                    yield Item("file", prefix + display_name(entry.name), None, fd, entry.name)
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            rel, kind = prefix + display_name(entry.name), _kind(st.st_mode)
            if kind == "directory":
                sub = _enter(fd, entry.name, len(stack))
                if sub is None:
                    yield Item("unreadable", rel, st, fd, entry.name)
                    continue
                stack.append((sub[0], iter(sub[1]), rel + "/"))
            yield Item(kind, rel, st, fd, entry.name)
    finally:
        for fd, *_ in stack:
            os.close(fd)


def _enter(parent: int, name: str, depth: int) -> tuple[int, list[os.DirEntry]] | None:
    if depth > fsops.MAX_SCAN_DEPTH:
        return None
    try:
        fd = open_dir(parent, name)
    except OSError:
        return None
    try:
        return fd, _scandir(fd)
    except OSError:
        os.close(fd)
        return None


@dataclass
class TreeSize:
    bytes: int = 0  # the total of the regular files' sizes (what a zip holds, uncompressed)
    files: int = 0
    folders: int = 0
    unreadable: list[str] = field(default_factory=list)


def tree_size(dfd: int) -> TreeSize:
    """The sizes of the regular files below folder `dfd` (as the caller reads them)."""
    out = TreeSize()
    for item in walk_tree(dfd):
        if item.kind == "file":
            out.bytes += item.st.st_size  # type: ignore[union-attr]
            out.files += 1
        elif item.kind == "directory":
            out.folders += 1
        elif item.kind == "unreadable":
            out.unreadable.append(item.rel)
    return out


def check_zip_cap(size: TreeSize, cap: int) -> None:
    """413 with the numbers when `size` exceeds `cap` bytes (0: no cap)."""
    if cap and size.bytes > cap:
        raise PayloadTooLarge(
            f"This folder holds {human_bytes(size.bytes)} in {size.files:,} files; folders up "
            f"to {human_bytes(cap)} can be downloaded as a zip.",
            detail="Download smaller folders, or start a job and use its file browser.",
        )


# ---- zips --------------------------------------------------------------------------------------


def _zip_time(seconds: float) -> tuple[int, int, int, int, int, int]:
    """A modification time as a zip stores it (local time, 1980 to 2107, like ``zip``)."""
    try:
        t = time.localtime(max(0.0, seconds))[:6]
    except (OverflowError, ValueError, OSError):
        t = (2107, 12, 31, 23, 59, 58)
    return max(min(t, (2107, 12, 31, 23, 59, 58)), (1980, 1, 1, 0, 0, 0))  # type: ignore[return-value]


def _info(name: str, st: os.stat_result, compress: int, level: int) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=_zip_time(st.st_mtime))
    zi.create_system = 3  # unix: the mode below is read by unzip
    zi.external_attr = (st.st_mode & 0xFFFF) << 16
    zi.compress_type = compress
    zi._compresslevel = level if compress == zipfile.ZIP_DEFLATED else None  # type: ignore[attr-defined]
    return zi


def _add_dir(zf: zipfile.ZipFile, name: str, st: os.stat_result) -> None:
    zi = _info(name.rstrip("/") + "/", st, zipfile.ZIP_STORED, 0)
    zi.external_attr |= 0x10  # MS-DOS directory flag
    zi.CRC = 0
    if hasattr(zf, "mkdir"):  # 3.11+
        zf.mkdir(zi)
    else:
        zf.writestr(zi, b"")


def _add_link(zf: zipfile.ZipFile, item: Item, name: str) -> bool:
    """The link as a symlink entry (its text, mode S_IFLNK): unzip re-creates the link; the
    target's content is never read."""
    try:
        target = os.readlink(item.name, dir_fd=item.parent)
    except OSError:
        return False
    zf.writestr(_info(name, item.st, zipfile.ZIP_STORED, 0), os.fsencode(target))
    return True


def _add_file(zf: zipfile.ZipFile, item: Item, name: str, compress: int, level: int) -> bool:
    """Copy regular file `item` into the zip (Zip64 when large); False if it cannot be opened."""
    try:
        fd = os.open(item.name, _O_FILE, dir_fd=item.parent)
    except OSError:
        return False
    with closing_fd(fd):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        zi = _info(name, st, compress, level)
        zi.file_size = st.st_size  # Zip64 headers when it is large
        with zf.open(zi, "w", force_zip64=st.st_size > zipfile.ZIP64_LIMIT // 4) as out:
            # no larger buffer than the file needs (a 1 MiB one per small file costs more
            # than reading it); a short read of a regular file is its end
            want = min(READ_CHUNK, st.st_size + 1)
            while chunk := os.read(fd, want):
                out.write(chunk)
                if len(chunk) < want:
                    break
                want = READ_CHUNK
    return True


def write_zip(
    ws_fd: int, parts: tuple[str, ...], out: Any, level: int, *, prefix: str = ""
) -> list[str]:
    """Write folder `parts` below `ws_fd` as a zip to `out` (a writable, possibly unseekable
    stream); return the paths that could not be included.

    Members are named ``<prefix>/<path>`` (no prefix: the paths themselves). Deflate at `level`
    (0: stored), Zip64 for large members and many entries. Dot-files are included, internal
    entries never. Folders are kept as entries (also empty ones); a **link is stored as a
    symlink entry** (its text; the target is never read); other file types (FIFOs, sockets,
    devices) are skipped, as are files and folders the caller cannot open: those are named in
    a ``DOWNLOAD-ERRORS.txt`` at the zip's top."""
    compress = zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    skipped: list[str] = []
    with closing_fd(open_folder(ws_fd, parts)) as dfd:
        with zipfile.ZipFile(out, "w", compression=compress, allowZip64=True) as zf:
            if base:
                _add_dir(zf, base, os.fstat(dfd))
            for item in walk_tree(dfd, stat_files=False):
                name = base + item.rel
                if item.kind == "directory":
                    _add_dir(zf, name, item.st)
                    continue
                if item.kind == "file":
                    done = _add_file(zf, item, name, compress, level)
                elif item.kind == "link":
                    done = _add_link(zf, item, name)
                else:
                    done = False
                if not done:
                    skipped.append(item.rel)
            if skipped:
                _add_errors(zf, base, skipped)
    return skipped


def _add_errors(zf: zipfile.ZipFile, base: str, skipped: list[str]) -> None:
    name = base + ERRORS_NAME
    while name in zf.NameToInfo:
        name = base + "_" + name[len(base) :]
    text = (
        "These entries could not be included (not readable, or not a regular file, folder or "
        "link):\n" + "".join(f"{path}\n" for path in skipped)
    )
    zi = zipfile.ZipInfo(name, date_time=_zip_time(time.time()))
    zi.external_attr = 0o100644 << 16
    zf.writestr(zi, text.encode("utf-8", "backslashreplace"))


# ---- removing ------------------------------------------------------------------------------------


def target_stat(ws_fd: int, parts: tuple[str, ...]) -> os.stat_result:
    """lstat of `parts` (the entry itself: a link is not followed); 404 if it does not exist,
    400 if a folder on the way is a link or a file."""
    try:
        with closing_fd(open_folder(ws_fd, parts[:-1], shown(parts))) as dfd:
            st = lstat_at(dfd, parts[-1])
    except OSError as e:
        raise fsops.storage_error(e, f"checking {shown(parts)}") from e
    if st is None:
        raise NotFound(f"No such file or folder: {shown(parts)}.")
    return st


def remove_entry(ws_fd: int, parts: tuple[str, ...]) -> None:
    """Remove file, link or folder `parts` (a folder with everything in it, never following a
    link: a link is removed itself, its target untouched); 404 if it does not exist."""
    if not parts:
        raise BadRequest("The workspace's top folder cannot be deleted here.")
    try:
        with closing_fd(open_folder(ws_fd, parts[:-1], shown(parts))) as dfd:
            st = lstat_at(dfd, parts[-1])
            if st is None:
                raise _missing(shown(parts))
            if stat.S_ISDIR(st.st_mode):
                fsops.remove_tree(dfd, parts[-1])
            else:
                os.unlink(parts[-1], dir_fd=dfd)
    except OSError as e:
        raise fsops.storage_error(e, f"deleting {shown(parts)}") from e


# ---- the async side ---------------------------------------------------------------------------------


class _Cancelled(Exception):
    """The zip's reader went away: the writing thread stops."""


_END = object()


class ZipPipe:
    """The zip thread's output stream: writes gathered into chunks of `ZIP_CHUNK` bytes and
    handed to the event loop; at most `depth` chunks wait there (a slow client holds the
    thread back instead of the service buffering the zip). Unseekable (no ``tell``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, depth: int = ZIP_QUEUE_DEPTH):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.slots = threading.Semaphore(depth)
        self.cancelled = threading.Event()
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        if self.cancelled.is_set():
            raise _Cancelled()
        self.buf += data
        if len(self.buf) >= ZIP_CHUNK:
            self._send(bytes(self.buf))
            self.buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, item: Any) -> None:
        while not self.slots.acquire(timeout=1.0):
            if self.cancelled.is_set():
                raise _Cancelled()
        if self.cancelled.is_set():
            raise _Cancelled()
        self._put(item)

    def _put(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError as e:  # the loop is closed: the service is stopping
            raise _Cancelled() from e

    def finish(self, error: BaseException | None) -> None:
        """The thread is done: the rest of the output, then the end (or the failure)."""
        if error is None and self.buf:
            self._send(bytes(self.buf))
        self._put(error if error is not None else _END)

    def cancel(self) -> None:
        """The reader is gone: stop the thread (at its next write) and wake the reader."""
        self.cancelled.set()
        self.slots.release()
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, _END)
        except RuntimeError:
            pass


@dataclass
class FileDownload:
    """An open regular file to send (`WorkspaceFiles.file_chunks`); close it when done."""

    fd: int
    name: str  # the file's own name
    size: int
    modified: float  # st_mtime
    inode: int
    mtime_ns: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class FolderDownload:
    """An open folder to send as a zip (`WorkspaceFiles.zip_stream`); close it when done."""

    fd: int  # opened by the owner
    owner: fsops.Owner
    name: str  # the zip's base name (also the folder its members are in)
    size: TreeSize
    level: int
    release: Callable[[], None]  # frees its place among the running zip streams
    pipe: ZipPipe | None = None

    def cancel(self) -> None:
        """Stop the zip (the client went away): its thread ends and closes what it opened."""
        if self.pipe is not None:
            self.pipe.cancel()

    def close(self) -> None:
        self.cancel()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.release()
        self.release = lambda: None


def zip_base_name(ws: Workspace, parts: tuple[str, ...]) -> str:
    """The zip's name without ``.zip``: the folder's name; for the top folder the workspace's
    name (or ``workspace-<id>`` when it has none that can be a file name)."""
    raw = parts[-1] if parts else (ws.name or "")
    name = "".join("_" if c in '/\\"' or ord(c) < 32 or ord(c) == 127 else c for c in raw)
    name = name.strip().strip(".")
    return name or f"workspace-{ws.id}"


class WorkspaceFiles:
    """A workspace's files for its owner, without a job (see the module's docstring).

    Takes the `WorkspaceManager`: its thread pool (`_run`), settings and — for deletions —
    its per-workspace lock and `_fs_change` (refused unless the workspace may change; the
    scan, disk usage and audit event are recorded with the change). Callers look the
    workspace up for the person first (``manager.get`` / ``get_to_change``: 404 otherwise).
    """

    def __init__(
        self,
        manager: WorkspaceManager,
        *,
        max_zip_streams: int = MAX_ZIP_STREAMS,
        max_zip_streams_per_user: int = MAX_ZIP_STREAMS_PER_USER,
    ):
        self.manager = manager
        self.settings = manager.settings
        self.max_zip_streams = max_zip_streams
        self.max_zip_streams_per_user = max_zip_streams_per_user
        self._zips: dict[int, int] = {}  # user id -> zip streams running

    # ---- reading ---------------------------------------------------------------------------

    def _owner(self, session: Session, ws: Workspace) -> fsops.Owner:
        """The owner to read as; 400 unless the workspace has files to read now."""
        if ws.status not in READABLE or not ws.file_path:
            why = {
                WorkspaceStatus.INITIALIZING.value: "it is still being created; try again in a moment",
                WorkspaceStatus.DELETING.value: "it is being deleted",
            }.get(ws.status, ws.status)
            raise BadRequest(f"The files of workspace {ws.id} cannot be read now: {why}.")
        _, owner = workspace_owner(session, ws, single_account=self.settings.single_account)
        return owner

    def _as_owner(self, file_path: str, owner: fsops.Owner, work: Callable[[int], Any]) -> Any:
        """Run `work` on the workspace directory as its owner (blocking)."""
        with closing_fd(fsops.open_workspace(self.settings.root_dir, file_path)) as wfd:
            with fsops.acting_as(owner):
                try:
                    with closing_fd(owner_view(wfd)) as view:
                        return work(view)
                except OSError as e:
                    raise fsops.storage_error(e, "reading the workspace") from e

    async def list(
        self,
        session: Session,
        ws: Workspace,
        path: str | None,
        *,
        sort: str = "name",
        order: str = "asc",
        offset: int = 0,
        limit: int = 100,
        hidden: bool = False,
    ) -> dict:
        """One page of a folder of `ws` (`list_entries`'s answer); `path` as the client gave
        it ("" or None: the top folder). 400 for a bad path, sort, order or paging, 404 if the
        folder does not exist, 400 if it is a file or a link."""
        check_listing(sort, order, offset, limit)
        parts = parse_path(path)
        owner = self._owner(session, ws)
        file_path = ws.file_path
        session.commit()  # no connection is held while the filesystem works

        def work(view: int) -> dict:
            return list_entries(
                view, parts, sort=sort, order=order, offset=offset, limit=limit, hidden=hidden
            )

        return await self.manager._run(self._as_owner, file_path, owner, work)

    async def open_download(
        self, session: Session, ws: Workspace, path: str | None
    ) -> FileDownload | FolderDownload:
        """Open what `path` names for download, as the owner: a `FileDownload` for a regular
        file, a `FolderDownload` for a folder ("" or None: the whole workspace). A link is
        400 ("links are not followed"), so is any other file type; 404 if it does not exist.
        A folder is walked first: 413 (with the numbers) when its files total more than
        ``download_zip_max_bytes``; 429/503 when too many zips are being made. The caller
        closes what it gets."""
        parts = parse_path(path)
        owner = self._owner(session, ws)
        file_path, user_id, base = ws.file_path, ws.user_id, zip_base_name(ws, parts)
        session.commit()
        fd, st = await self.manager._run(
            self._as_owner, file_path, owner, lambda view: open_target(view, parts)
        )
        if stat.S_ISREG(st.st_mode):
            name = parts[-1]
            return FileDownload(fd, name, st.st_size, st.st_mtime, st.st_ino, st.st_mtime_ns)
        try:
            release = self._take_zip_slot(user_id)
        except UWSError:
            os.close(fd)
            raise
        folder = FolderDownload(fd, owner, base, TreeSize(), self._level(), release)
        try:
            folder.size = await self.manager._run(self._measure, fd, owner)
            check_zip_cap(folder.size, self.settings.download_zip_max_bytes)
        except BaseException:
            folder.close()
            raise
        return folder

    def _level(self) -> int:
        return min(9, max(0, int(self.settings.zip_compression_level)))

    @staticmethod
    def _measure(fd: int, owner: fsops.Owner) -> TreeSize:
        with fsops.acting_as(owner):
            try:
                return tree_size(fd)
            except OSError as e:
                raise fsops.storage_error(e, "reading the folder") from e

    def _take_zip_slot(self, user_id: int) -> Callable[[], None]:
        mine = self._zips.get(user_id, 0)
        if mine >= self.max_zip_streams_per_user:
            raise UWSError(
                f"You already have {mine} folder downloads running; wait for one to finish.",
                status_code=429,
                headers={"Retry-After": "30"},
            )
        if sum(self._zips.values()) >= self.max_zip_streams:
            raise UWSError(
                "Too many folder downloads are running on this server; try again in a minute.",
                status_code=503,
                headers={"Retry-After": "60"},
            )
        self._zips[user_id] = mine + 1

        def release() -> None:
            left = self._zips.get(user_id, 1) - 1
            if left > 0:
                self._zips[user_id] = left
            else:
                self._zips.pop(user_id, None)

        return release

    async def file_chunks(
        self, download: FileDownload, first: int = 0, last: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes `first`..`last` (inclusive; None: to the end) of the file, `READ_CHUNK` at a
        time, each read in the thread pool (the next one runs while the caller sends). A file
        that shrank meanwhile raises `fsops.StorageError` (the answer must be cut short)."""
        end = download.size if last is None else last + 1
        pos, pending = first, None
        run = self.manager._run
        try:
            if pos < end:
                pending = asyncio.ensure_future(
                    run(os.pread, download.fd, min(READ_CHUNK, end - pos), pos)
                )
            while pending is not None:
                data = await pending
                pending = None
                if not data:
                    raise fsops.StorageError(
                        f"{download.name} changed while it was being sent; download it again."
                    )
                pos += len(data)
                if pos < end:
                    pending = asyncio.ensure_future(
                        run(os.pread, download.fd, min(READ_CHUNK, end - pos), pos)
                    )
                yield data
        finally:
            if pending is not None:  # never close the file under a read in flight
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: not logged as never retrieved

    async def zip_stream(self, download: FolderDownload) -> AsyncIterator[bytes]:
        """The folder as a zip (`write_zip`, prefix: the zip's base name), made in a thread of
        its own as the owner and handed over in chunks with back-pressure. Closing the
        iterator early (or `download.cancel()`) stops the thread at its next write; a failure
        while writing is raised here (the answer must be cut short, not finished)."""
        loop = asyncio.get_running_loop()
        pipe = download.pipe = ZipPipe(loop)
        fd = os.dup(download.fd)  # the thread's own: it closes it
        thread = threading.Thread(
            target=_zip_thread,
            args=(fd, download.owner, download.name, download.level, pipe),
            name=f"uws-zip-{download.name[:20]}",
            daemon=True,
        )
        thread.start()
        try:
            while True:
                item = await pipe.queue.get()
                if item is _END:
                    if pipe.cancelled.is_set():
                        raise _Cancelled()  # stopped before the end: not a whole zip
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                pipe.slots.release()
        finally:
            pipe.cancel()  # a no-op once the thread is done

    # ---- deleting -------------------------------------------------------------------------

    async def delete(self, session: Session, ws: Workspace, path: str | None) -> str:
        """Delete file, link or folder `path` of `ws` (a folder with all it holds; a link
        itself, never its target) as the owner, under the workspace's lock and only while it
        may change (`WorkspaceManager._fs_change`: the scan, disk usage and the audit event
        ``workspace.delete_files`` are recorded with it). Returns the path deleted. 400 for
        the top folder or a bad path, 404 if it does not exist (nothing changes then)."""
        parts = parse_path(path, root_ok=False)
        mgr = self.manager
        name = shown(parts)

        def record() -> None:
            audit.record(
                session,
                "workspace.delete_files",
                user=mgr._owner_name(session, ws),
                target_id=ws.id,
                details={"path": name},
            )

        async with mgr._lock(ws.id):
            await mgr._fs_change(
                session,
                ws,
                lambda wfd: remove_entry(wfd, parts),
                lambda wfd: target_stat(wfd, parts),
                record,
            )
        return name


def _zip_thread(fd: int, owner: fsops.Owner, prefix: str, level: int, pipe: ZipPipe) -> None:
    """Body of a zip stream's thread: write the zip as the owner, then tell the reader."""
    error: BaseException | None = None
    try:
        with closing_fd(fd), fsops.acting_as(owner):
            skipped = write_zip(fd, (), pipe, level, prefix=prefix)
        if skipped:
            log.info("zip of %s: %d entries skipped", prefix, len(skipped))
    except _Cancelled:
        return
    except Exception as e:  # told to the reader, who cuts the answer short
        if pipe.cancelled.is_set():
            return
        log.warning("zip of %s failed", prefix, exc_info=e)
        error = e if isinstance(e, UWSError) else fsops.StorageError(f"Zip failed: {e}")
    try:
        pipe.finish(error)
    except _Cancelled:
        pass
