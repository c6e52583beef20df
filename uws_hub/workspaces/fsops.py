"""Directory operations on workspaces, safe against path and symlink tricks.

Two rules make them safe when the service runs as root:

1. **Inside a user's directory, act as the user.** Everything under ``<root>/<user>/`` is done
   with the owner's filesystem uid and gid (`acting_as`, a per-thread ``setfsuid``/``setfsgid``;
   the kernel then also drops root's file capabilities for that thread). Whatever a user plants
   in their directory — links, hard links, directories moved in from elsewhere, races — the
   service can only do what the user could do themselves. New files belong to the user without
   any chown. Only ``<root>/<user>/`` itself is created as root (in the root-owned ``root_dir``)
   and handed over with ``fchown`` on its descriptor.
2. **Never follow a link.** Every path component is opened with ``O_NOFOLLOW`` (and directories
   with ``O_DIRECTORY | O_NONBLOCK``, so a FIFO cannot block) relative to its parent's descriptor.

Files are written to a temporary name and renamed into place, so a failed write never truncates
an existing file. The scan runs as root (so disk usage counts everything, like ``du``) but lists
only names inside directories the owner owns. These functions block: call them from a thread pool.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import BadRequest, UWSError

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FILE_MODE = 0o644
DIR_MODE = 0o755
TMP_PREFIX = ".uws-tmp-"
TRASH_PREFIX = ".uws-trash-"
STAGING_DIR = ".uws-staging"
#: deeper trees are not scanned further (and the scan says so)
MAX_SCAN_DEPTH = 512
#: after this many entries a scan leaves the byte count to GNU ``du`` (see `scan`)
DU_AFTER_ENTRIES = 20_000
DU = shutil.which("du", path="/usr/bin:/bin")

log = logging.getLogger("uws_hub.workspaces")


class StorageError(UWSError):
    """The filesystem refused (no space, read-only, quota): nothing is lost, retry after fixing."""

    status_code = 507


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int
    #: supplementary groups, as the owner's jobs have them; () for none
    groups: tuple[int, ...] = ()
    #: the account's name: its groups are looked up (`account_groups`) in the worker thread
    #: that acts as it, never on the event loop (the lookup may go to LDAP)
    name: str = ""


# ---- acting as the owner -----------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setfsuid.argtypes = [ctypes.c_uint32]
_libc.setfsgid.argtypes = [ctypes.c_uint32]
_state = threading.local()
#: the raw setgroups system call changes the calling thread only (glibc's setgroups() changes
#: every thread of the process); None where its number is not known here: no groups are taken
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159}.get(platform.machine())
#: how long the groups looked up for an account are kept (lookups may go to LDAP)
GROUPS_TTL = 60.0
_groups_cache: dict[tuple[str, int], tuple[float, tuple[int, ...]]] = {}


def account_groups(name: str, gid: int) -> tuple[int, ...]:
    """The supplementary groups of account `name` (primary `gid` left out), as a login gives
    them; () when the service is not root or the lookup fails. Kept `GROUPS_TTL` seconds."""
    if os.geteuid() != 0 or _SYS_SETGROUPS is None:
        return ()
    now = time.monotonic()
    hit = _groups_cache.get((name, gid))
    if hit is not None and now - hit[0] < GROUPS_TTL:
        return hit[1]
    try:
        groups = tuple(sorted(set(os.getgrouplist(name, gid)) - {gid}))
    except OSError as e:
        log.warning("could not look up the groups of %s: %s", name, e)
        groups = ()
    _groups_cache[(name, gid)] = (now, groups)
    return groups


def _set_thread_groups(groups: tuple[int, ...] | list[int]) -> None:
    arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    if _libc.syscall(ctypes.c_long(_SYS_SETGROUPS), ctypes.c_long(len(groups)), arr) != 0:
        err = ctypes.get_errno()
        raise StorageError(
            f"Could not take the workspace owner's groups ({os.strerror(err)}); ask an administrator."
        )


def _current_fsuid() -> int:
    return _libc.setfsuid(0xFFFFFFFF)  # an invalid id changes nothing and returns the current one


@contextmanager
def acting_as(owner: Owner | None) -> Iterator[None]:
    """Run the block (in this thread only) with `owner`'s filesystem uid and gid, and their
    supplementary groups (so a file their group may read is read as in their jobs).

    A no-op when the service is not root (it can only act as itself anyway) or already acts as
    someone in this thread.
    """
    if owner is None or os.geteuid() != 0 or getattr(_state, "acting", False):
        yield
        return
    saved = None
    if _SYS_SETGROUPS is not None:  # exactly the owner's groups, none of this thread's own
        groups = owner.groups or (account_groups(owner.name, owner.gid) if owner.name else ())
        saved = os.getgroups()  # this thread's
        _set_thread_groups(groups)
    try:
        with _fs_ids(owner):
            yield
    finally:
        if saved is not None:
            _restore_groups(saved)


def _restore_groups(saved: list[int]) -> None:
    """Give the thread its groups back; if that fails, the process must not go on with a
    thread holding someone else's groups: it ends (JupyterHub restarts the service)."""
    try:
        _set_thread_groups(saved)
    except StorageError:
        log.critical("could not restore a worker thread's groups; exiting")
        os._exit(70)


@contextmanager
def _fs_ids(owner: Owner) -> Iterator[None]:
    _libc.setfsgid(owner.gid)
    _libc.setfsuid(owner.uid)
    if _current_fsuid() != owner.uid:
        _libc.setfsuid(0)
        _libc.setfsgid(0)
        raise StorageError(
            f"Could not switch to uid {owner.uid} for filesystem work; ask an administrator."
        )
    _state.acting = True
    try:
        yield
    finally:
        _state.acting = False
        _libc.setfsuid(0)
        _libc.setfsgid(os.getegid())


# ---- helpers -------------------------------------------------------------------------------


def storage_error(exc: OSError, doing: str) -> UWSError:
    """Turn an OSError into the user's error; `doing` is a phrase like "writing 'a.txt'"."""
    server = {
        errno.ENOSPC: "No space left on the workspace storage ({}); free some space and retry.",
        errno.EDQUOT: "Disk quota exceeded ({}); free some space and retry.",
        errno.EROFS: "The workspace storage is read-only ({}); ask an administrator.",
    }
    client = {
        errno.ELOOP: "A path component is a symbolic link or not a directory ({}).",
        errno.ENOTDIR: "A path component is a symbolic link or not a directory ({}).",
        errno.EISDIR: "The target is a directory ({}).",
        errno.ENAMETOOLONG: "Name too long ({}).",
        errno.EACCES: "Permission denied ({}); check the modes of your directories.",
        errno.EPERM: "Permission denied ({}); check the modes of your directories.",
    }
    if exc.errno in server:
        return StorageError(server[exc.errno].format(doing))
    if exc.errno in client:
        return BadRequest(client[exc.errno].format(doing))
    # not one of the answers above: the person reads strerror, the log keeps the whole error
    log.warning("storage error %s", doing, exc_info=exc)
    return StorageError(f"Storage error ({doing}): {exc.strerror}.")


def display_name(name: str) -> str:
    """A file name as text that every database accepts (undecodable bytes shown as \\xNN)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_root(root_dir: str) -> int:
    return os.open(root_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_dir(parent: int, name: str) -> int:
    return os.open(name, O_DIR, dir_fd=parent)


def lstat_at(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def mkdir_open(parent: int, name: str, mode: int) -> int:
    """Open directory `name` in `parent`, creating it if missing; never follow links."""
    try:
        return open_dir(parent, name)
    except FileNotFoundError:
        pass
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        return open_dir(parent, name)  # lost a race; re-open without following
    fd = open_dir(parent, name)
    os.fchmod(fd, mode)
    return fd


def walk_dirs(base: int, parts: Iterable[str], *, create: bool = False) -> int:
    """Descriptor of the directory base/parts..., never following links. Caller closes it."""
    cur = os.dup(base)
    try:
        for part in parts:
            nxt = mkdir_open(cur, part, DIR_MODE) if create else open_dir(cur, part)
            os.close(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise


def open_workspace(root_dir: str, file_path: str) -> int:
    """Descriptor of an existing workspace directory <root>/<user>/<id>; never follows links."""
    with closing_fd(open_root(root_dir)) as root:
        try:
            return walk_dirs(root, file_path.split("/"))
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise StorageError(
                    f"The workspace directory {file_path} is missing on disk; ask an administrator to check the storage."
                ) from e
            raise storage_error(e, "opening the workspace") from e


# ---- the user's directory and whole workspaces -----------------------------------------------


def ensure_user_dir(root_dir: str, posix_name: str, owner: Owner, mode: int) -> None:
    """Create <root>/<posix_name>/ owned by `owner` (as root: root_dir belongs to root)."""
    with closing_fd(open_root(root_dir)) as root:
        try:
            fd = open_dir(root, posix_name)
        except FileNotFoundError:
            try:
                os.mkdir(posix_name, 0o700, dir_fd=root)
            except FileExistsError:
                pass
            fd = open_dir(root, posix_name)
            st = os.fstat(fd)
            if (
                st.st_uid == os.geteuid() and st.st_uid != owner.uid
            ):  # ours, just made: hand it over
                os.fchown(fd, owner.uid, owner.gid)
            os.fchmod(fd, mode)
        with closing_fd(fd):
            st = os.fstat(fd)
            if st.st_uid != owner.uid:
                raise StorageError(
                    f"{os.path.join(root_dir, posix_name)} belongs to uid {st.st_uid}, not {owner.uid}; "
                    "an administrator must fix its owner before workspaces can be created there."
                )


def create_workspace_dir(
    root_dir: str,
    posix_name: str,
    ws_id: int,
    owner: Owner,
    *,
    user_dir_mode: int,
    workspace_dir_mode: int,
) -> str:
    """Create <root>/<posix_name>/<ws_id>/ owned by `owner` (idempotent); return "posix_name/ws_id"."""
    rel = f"{posix_name}/{ws_id}"
    try:
        ensure_user_dir(root_dir, posix_name, owner, user_dir_mode)
        with (
            closing_fd(open_root(root_dir)) as root,
            closing_fd(open_dir(root, posix_name)) as udir,
        ):
            with acting_as(owner):
                with closing_fd(mkdir_open(udir, str(ws_id), workspace_dir_mode)) as wdir:
                    if os.fstat(wdir).st_uid != owner.uid:
                        raise StorageError(f"{rel} exists but does not belong to uid {owner.uid}.")
    except OSError as e:
        raise storage_error(e, "creating the workspace directory") from e
    return rel


def delete_workspace_dir(root_dir: str, file_path: str, owner: Owner) -> None:
    """Remove a workspace directory and everything in it, as its owner; idempotent.

    The directory is first renamed to a hidden trash name, so it disappears at once and a
    restart after a crash finds the rest and finishes.
    """
    user_part, _, ws_part = file_path.partition("/")
    if (
        not user_part
        or not ws_part
        or "/" in ws_part
        or ws_part in (".", "..")
        or user_part in (".", "..")
    ):
        raise StorageError(f"Refusing to delete unexpected workspace path {file_path!r}.")
    try:
        _in_user_dir(root_dir, user_part, owner, lambda udir: _remove_workspace(udir, ws_part))
    except OSError as e:
        raise storage_error(e, "deleting the workspace") from e


def _remove_workspace(udir: int, ws_part: str) -> None:
    trash = TRASH_PREFIX + ws_part
    st = lstat_at(udir, ws_part)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            remove_tree(udir, trash)  # whatever was planted under our trash name
            os.rename(ws_part, trash, src_dir_fd=udir, dst_dir_fd=udir)
        else:  # a link or file where the workspace was: remove the entry itself only
            os.unlink(ws_part, dir_fd=udir)
    remove_tree(udir, trash)


def remove_user_entry(root_dir: str, user_part: str, name: str, owner: Owner) -> None:
    """Remove <root>/<user_part>/<name> (a tree, links not followed) as `owner`; idempotent."""
    if "/" in user_part or user_part in ("", ".", "..") or "/" in name or name in ("", ".", ".."):
        raise StorageError(f"Refusing to remove unexpected path {user_part}/{name}.")
    try:
        _in_user_dir(root_dir, user_part, owner, lambda udir: remove_tree(udir, name))
    except OSError as e:
        raise storage_error(e, f"removing {name}") from e


def _in_user_dir(root_dir: str, user_part: str, owner: Owner, work: Callable[[int], None]):
    """Run `work` on the descriptor of <root>/<user_part>/, as `owner`; nothing when that
    directory does not exist."""
    with closing_fd(open_root(root_dir)) as root:
        try:
            udir = open_dir(root, user_part)
        except FileNotFoundError:
            return
        with closing_fd(udir), acting_as(owner):
            work(udir)


def remove_tree(parent: int, name: str) -> None:
    """Remove `name` in directory `parent` and everything below it, never following links.

    Runs with the caller's credentials (the owner's, under `acting_as`): it removes what the
    owner could remove, making their own unreadable directories readable first. Directories are
    opened with O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK, so a link or FIFO swapped in is refused.
    """
    st = lstat_at(parent, name)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent)
        return
    stack: list[tuple[int, int, str, Iterator[os.DirEntry]]] = []  # (parent fd, fd, name, entries)
    fd = _open_owned_dir(parent, name)
    stack.append((parent, fd, name, _entries(fd)))
    try:
        while stack:
            pfd, dfd, dname, it = stack[-1]
            entry = next(it, None)
            if entry is None:
                stack.pop()
                os.close(dfd)
                os.rmdir(dname, dir_fd=pfd)
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if len(stack) > MAX_SCAN_DEPTH:
                        raise StorageError(
                            f"{dname} is nested deeper than {MAX_SCAN_DEPTH} levels; ask an administrator."
                        )
                    sub = _open_owned_dir(dfd, entry.name)
                    stack.append((dfd, sub, entry.name, _entries(sub)))
                else:
                    os.unlink(entry.name, dir_fd=dfd)
            except FileNotFoundError:
                continue
    finally:
        for _pfd, dfd, *_ in stack:
            os.close(dfd)


def _open_owned_dir(parent: int, name: str) -> int:
    try:
        fd = open_dir(parent, name)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=parent)  # the owner's own unreadable directory
        fd = open_dir(parent, name)
    try:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | 0o700)  # entries must be removable
    except PermissionError:
        pass  # not the owner's: removing its entries fails, which is right
    return fd


def _entries(dfd: int) -> Iterator[os.DirEntry]:
    with os.scandir(dfd) as it:
        return iter(list(it))


# ---- files, symlinks, renames inside a workspace (call under acting_as) ----------------------


def preflight(
    ws_fd: int,
    files: list[tuple[str, ...]],
    symlinks: list[tuple[str, ...]],
    renames: list[tuple[tuple[str, ...], tuple[str, ...]]] = (),
) -> None:
    """Check, before writing anything, that every target can be written without following a link.

    Existing parent components must be real directories; an existing file target must be a
    regular file (it is replaced); an existing symlink target must be a symlink (it is replaced);
    a rename's source must exist and its destination must not.
    """
    for parts in files:
        st = _lstat_target(ws_fd, parts, "write file")
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a directory or special file"
            raise BadRequest(f"Cannot write file {'/'.join(parts)!r}: it exists as {kind}.")
    for parts in symlinks:
        st = _lstat_target(ws_fd, parts, "create symlink")
        if st is not None and not stat.S_ISLNK(st.st_mode):
            raise BadRequest(
                f"Cannot create symlink {'/'.join(parts)!r}: a file or directory of that name exists."
            )
    for src, dst in renames:
        if dst[: len(src)] == src:
            raise BadRequest(f"Cannot move {'/'.join(src)!r} into itself ({'/'.join(dst)!r}).")
        if _lstat_target(ws_fd, src, "rename") is None:
            raise BadRequest(f"Cannot rename {'/'.join(src)!r}: it does not exist.")
        if _lstat_target(ws_fd, dst, "rename to") is not None:
            raise BadRequest(
                f"Cannot rename {'/'.join(src)!r} to {'/'.join(dst)!r}: the destination exists."
            )


def _lstat_target(ws_fd: int, parts: tuple[str, ...], what: str) -> os.stat_result | None:
    """The lstat of ws_fd/parts, or None when it (or a parent) does not exist; BadRequest (saying
    "Cannot `what` ...") when a parent component is a link or not a directory."""
    shown = "/".join(parts)
    cur = os.dup(ws_fd)
    try:
        for i, part in enumerate(parts[:-1]):
            st = lstat_at(cur, part)
            if st is None:
                return None
            if not stat.S_ISDIR(st.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise BadRequest(
                    f"Cannot {what} {shown!r}: {'/'.join(parts[: i + 1])!r} is {kind}."
                )
            nxt = open_dir(cur, part)
            os.close(cur)
            cur = nxt
        return lstat_at(cur, parts[-1])
    except OSError as e:
        raise storage_error(e, f"checking {shown!r}") from e
    finally:
        os.close(cur)


def write_file(ws_fd: int, parts: tuple[str, ...], chunks: Iterable[bytes]) -> int:
    """Write a file atomically (temp file + fsync + rename); return bytes written."""
    shown = "/".join(parts)
    try:
        with closing_fd(walk_dirs(ws_fd, parts[:-1], create=True)) as dfd:
            tmp = TMP_PREFIX + secrets.token_hex(8)
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
                dir_fd=dfd,
            )
            size = 0
            with _removed_on_failure(dfd, tmp):
                with open(fd, "wb", closefd=True) as f:
                    for chunk in chunks:
                        f.write(chunk)
                        size += len(chunk)
                    f.flush()
                    os.fchmod(f.fileno(), FILE_MODE)
                    os.fsync(f.fileno())
                _rename_over(
                    dfd,
                    tmp,
                    parts[-1],
                    stat.S_ISREG,
                    f"Cannot write file {shown!r}: it exists and is not a regular file.",
                )
            return size
    except OSError as e:
        raise storage_error(e, f"writing {shown!r}") from e


def make_symlink(ws_fd: int, parts: tuple[str, ...], target: str) -> None:
    """Create (or replace) symlink parts -> target."""
    shown = "/".join(parts)
    try:
        with closing_fd(walk_dirs(ws_fd, parts[:-1], create=True)) as dfd:
            tmp = TMP_PREFIX + secrets.token_hex(8)
            os.symlink(target, tmp, dir_fd=dfd)
            with _removed_on_failure(dfd, tmp):
                _rename_over(
                    dfd,
                    tmp,
                    parts[-1],
                    stat.S_ISLNK,
                    f"Cannot create symlink {shown!r}: a file or directory of that name exists.",
                )
    except OSError as e:
        raise storage_error(e, f"creating symlink {shown!r}") from e


@contextmanager
def _removed_on_failure(dfd: int, tmp: str) -> Iterator[None]:
    """Remove the temporary entry `tmp` of `dfd` if the block fails (then re-raise)."""
    try:
        yield
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise


def _rename_over(dfd: int, tmp: str, name: str, same_kind: Callable[[int], bool], refusal: str):
    """Rename `tmp` to `name` in `dfd`, replacing an existing `name` only if `same_kind` holds
    for its mode (else BadRequest `refusal`)."""
    st = lstat_at(dfd, name)
    if st is not None and not same_kind(st.st_mode):
        raise BadRequest(refusal)
    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)


def rename_entry(ws_fd: int, src: tuple[str, ...], dst: tuple[str, ...]) -> None:
    """Rename a file, directory or symlink inside the workspace; the destination must not exist."""
    s_shown, d_shown = "/".join(src), "/".join(dst)
    if dst[: len(src)] == src:
        raise BadRequest(f"Cannot move {s_shown!r} into itself ({d_shown!r}).")
    try:
        with closing_fd(walk_dirs(ws_fd, src[:-1])) as sdir:
            if lstat_at(sdir, src[-1]) is None:
                raise BadRequest(f"Cannot rename {s_shown!r}: it does not exist.")
            with closing_fd(walk_dirs(ws_fd, dst[:-1], create=True)) as ddir:
                if lstat_at(ddir, dst[-1]) is not None:
                    raise BadRequest(
                        f"Cannot rename {s_shown!r} to {d_shown!r}: the destination exists."
                    )
                os.rename(src[-1], dst[-1], src_dir_fd=sdir, dst_dir_fd=ddir)
    except FileNotFoundError as e:
        raise BadRequest(f"Cannot rename {s_shown!r}: it does not exist.") from e
    except OSError as e:
        raise storage_error(e, f"renaming {s_shown!r}") from e


def remove_stale_temp(ws_fd: int) -> None:
    """Remove temporary files an interrupted write left at the top level of a workspace."""
    with os.scandir(ws_fd) as it:
        for entry in it:
            if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.name, dir_fd=ws_fd)
                except OSError:
                    pass


# ---- scan (as root: reads only) ---------------------------------------------------------------


@dataclass
class ScanResult:
    disk_space: int = 0
    file_count: int = 0
    files: list[dict] = field(default_factory=list)
    symlinks: list[dict] = field(default_factory=list)
    truncated: bool = False
    incomplete: bool = False

    def details(self) -> dict:
        out: dict = {"files": self.files, "symlinks": self.symlinks}
        if self.truncated:
            out["truncated"] = True
        if self.incomplete:
            out["incomplete"] = True
        return out


class _Du:
    """``du -s --block-size=1`` of an open directory, running beside the scan.

    It is given the directory's descriptor (``/proc/self/fd/N``, followed as a command-line
    argument only: ``-D``), so it sees exactly the directory the scan opened; inside, GNU du
    follows no link and counts hard links once, which is what the scan counts.
    """

    def __init__(self, dfd: int):
        self.proc = subprocess.Popen(
            [DU, "-s", "-D", "--block-size=1", f"/proc/self/fd/{dfd}"],
            pass_fds=(dfd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        )

    def total(self) -> tuple[int | None, bool]:
        """(bytes or None when du gave no total, whether du met errors)."""
        out, _err = self.proc.communicate()
        try:
            return int(out.split()[0]), self.proc.returncode != 0
        except (IndexError, ValueError):
            return None, True

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()


def scan(
    ws_fd: int,
    list_limit: int,
    owner_uid: int | None = None,
    du_after: int | None = DU_AFTER_ENTRIES,
) -> ScanResult:
    """Disk usage (allocated bytes, hard links counted once, like ``du -s``) and a listing.

    Everything counts towards disk usage. The listing names files and symlinks relative to the
    workspace, hiding dot-entries and everything under dot-directories, and — when `owner_uid`
    is given — anything inside a directory the owner does not own (a directory moved in from
    elsewhere is counted, not shown); at most `list_limit` entries. Links are read, never
    followed. A tree deeper than MAX_SCAN_DEPTH or a directory that cannot be opened makes the
    result `incomplete`.

    Large trees: after `du_after` entries the byte count is left to one GNU ``du`` process on
    the other core, and the walk itself goes on without a ``stat`` per entry wherever it only
    counts (hidden or foreign subtrees, a full listing): file types come from the directory
    entries. If du gives no total the tree is walked again the slow way.
    """
    walk = _ScanWalk(list_limit, owner_uid, du_after)
    try:
        walk.run(ws_fd)
        if not walk.take_du_total():
            return scan(ws_fd, list_limit, owner_uid, du_after=None)
    finally:
        walk.close()
    return walk.result()


class _ScanWalk:
    """One `scan`: depth-first, with one open descriptor per level (not per pending directory).

    A frame is (directory descriptor, its remaining entries, prefix). The prefix is None once
    nothing below it can be listed (hidden, foreign, or the listing is full): then names are
    not even decoded — the walk only counts.
    """

    def __init__(self, list_limit: int, owner_uid: int | None, du_after: int | None):
        self.list_limit = list_limit
        self.owner_uid = owner_uid
        self.du_after = du_after
        self.res = ScanResult()
        self.du: _Du | None = None
        self.root = -1
        self.frames: list[tuple[int, Iterator[os.DirEntry], str | None]] = []
        self.seen_inodes: set[tuple[int, int]] = set()
        self.disk = 0
        self.file_count = 0
        self.listed = 0
        self.walked = 0

    def run(self, ws_fd: int) -> None:
        """Walk the whole tree below `ws_fd`."""
        root_st = os.fstat(ws_fd)
        self.disk = root_st.st_blocks * 512
        self.root = os.dup(ws_fd)
        self.frames.append((self.root, iter(()), None))  # from here on, `close` closes it
        shown_root = self.owner_uid is None or root_st.st_uid == self.owner_uid
        self.frames[0] = (self.root, _entries(self.root), "" if shown_root else None)
        frames = self.frames
        while frames:
            dfd, it, prefix = frames[-1]
            if self._counting_only(prefix):
                descended = self._count_entries(dfd, it, prefix)
            else:
                descended = self._walk_entries(dfd, it, prefix)
            if not descended:  # this directory is done
                os.close(dfd)
                frames.pop()

    def _counting_only(self, prefix: str | None) -> bool:
        """Whether du counts the bytes and nothing more is listed here: only files are counted."""
        return self.du is not None and (prefix is None or self.listed >= self.list_limit)

    def _walk_entries(self, dfd: int, it: Iterator[os.DirEntry], prefix: str | None) -> bool:
        """Count (with a stat each) and list `dfd`'s entries; True once it descends into a
        subdirectory (this directory's iterator resumes afterwards), False when it is done."""
        for entry in it:
            if self._visit(dfd, entry, prefix):
                return True
            if self._counting_only(prefix):  # du took over the bytes: the rest only counts
                return self._count_entries(dfd, it, prefix)
        return False

    def _count_entries(self, dfd: int, it: Iterator[os.DirEntry], prefix: str | None) -> bool:
        """Count `dfd`'s remaining entries without a stat (du counts the bytes); True once it
        descends into a subdirectory, False when it is done."""
        files = 0
        try:
            for entry in it:
                name = entry.name
                if prefix is not None and not name.startswith("."):
                    self.res.truncated = True
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if not is_dir:
                    files += 1
                elif self._descend(dfd, name, None):
                    return True
            return False
        finally:
            self.file_count += files

    def _visit(self, dfd: int, entry: os.DirEntry, prefix: str | None) -> bool:
        """Count one entry by its stat and list it if shown; True when it is a directory the
        walk descends into now."""
        self.walked += 1
        if self.walked == self.du_after and DU is not None:
            self.du = _Du(self.root)
        try:
            est = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return False
        if est.st_nlink > 1 and not stat.S_ISDIR(est.st_mode):
            key = (est.st_dev, est.st_ino)
            if key not in self.seen_inodes:  # a hard-linked file's blocks count once, like du
                self.seen_inodes.add(key)
                self.disk += est.st_blocks * 512
        else:
            self.disk += est.st_blocks * 512
        name = entry.name
        shown = prefix is not None and not name.startswith(".")
        if stat.S_ISDIR(est.st_mode):
            owned = self.owner_uid is None or est.st_uid == self.owner_uid
            return self._descend(dfd, name, prefix if shown and owned else None)
        self.file_count += 1
        if shown:
            self._list(dfd, name, prefix, est)
        return False

    def _descend(self, dfd: int, name: str, prefix: str | None) -> bool:
        """Make subdirectory `name` of `dfd` the next frame: listed under `prefix` while the
        listing has room, only counted when `prefix` is None. False (and the result is
        incomplete) when it is too deep or cannot be opened."""
        if len(self.frames) >= MAX_SCAN_DEPTH:
            self.res.incomplete = True
            return False
        try:
            sub = open_dir(dfd, name)
        except OSError:
            self.res.incomplete = True
            return False
        sub_prefix = None
        if prefix is not None:
            if self.listed < self.list_limit:
                sub_prefix = prefix + display_name(name) + "/"
            else:  # visible, but the listing is full: only counted
                self.res.truncated = True
        self.frames.append((sub, _entries(sub), sub_prefix))
        return True

    def _list(self, dfd: int, name: str, prefix: str, est: os.stat_result) -> None:
        if self.listed >= self.list_limit:
            self.res.truncated = True
            return
        self.listed += 1
        rel = "/" + prefix + display_name(name)  # as UWS lists them: "/a/b.txt"
        if stat.S_ISLNK(est.st_mode):
            try:
                target = display_name(os.readlink(name, dir_fd=dfd))
            except OSError:
                target = None
            self.res.symlinks.append({"name": rel, "source_path": target})
        else:
            self.res.files.append({"name": rel, "size": est.st_size})

    def take_du_total(self) -> bool:
        """Take the byte count from du, if it ran; False when it gave no total."""
        if self.du is None:
            return True
        total, errors = self.du.total()
        self.du = None
        if total is None:
            return False
        self.disk = total
        self.res.incomplete = self.res.incomplete or errors
        return True

    def close(self) -> None:
        if self.du is not None:
            self.du.kill()
        for dfd, *_ in self.frames:
            os.close(dfd)
        self.frames.clear()

    def result(self) -> ScanResult:
        res = self.res
        res.disk_space = self.disk
        res.file_count = self.file_count
        res.files.sort(key=lambda f: f["name"])
        res.symlinks.sort(key=lambda f: f["name"])
        return res
