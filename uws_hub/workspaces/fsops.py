"""Directory operations on workspaces, safe against path and symlink tricks.

Every operation starts from a descriptor of ``root_dir`` and opens each component with
``O_NOFOLLOW`` relative to its parent's descriptor (``openat``-style). A symlink anywhere on the
way — planted by a user's job, even while we work — makes the operation fail instead of
escaping the workspace. Files are written to a temporary name and renamed into place (a failed
write never truncates an existing file); ownership is set on the descriptor we created
(``fchown``) or with ``follow_symlinks=False``, never through a link.

These functions block; the service calls them from a thread pool.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import BadRequest, UWSError

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_MODE = 0o644
DIR_MODE = 0o755
TMP_PREFIX = ".uws-tmp-"
TRASH_PREFIX = ".uws-trash-"
STAGING_DIR = ".uws-staging"


class StorageError(UWSError):
    """The filesystem refused (no space, read-only, quota): nothing is lost, retry after fixing."""

    status_code = 507


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def storage_error(exc: OSError, doing: str) -> UWSError:
    if exc.errno == errno.ENOSPC:
        return StorageError(
            f"No space left on the workspace storage while {doing}; free some space and retry."
        )
    if exc.errno == errno.EDQUOT:
        return StorageError(f"Disk quota exceeded while {doing}; free some space and retry.")
    if exc.errno == errno.EROFS:
        return StorageError(f"The workspace storage is read-only ({doing}); ask an administrator.")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return BadRequest(
            f"Cannot {doing}: a path component is a symbolic link or not a directory."
        )
    if exc.errno == errno.EISDIR:
        return BadRequest(f"Cannot {doing}: the target is a directory.")
    if exc.errno == errno.ENAMETOOLONG:
        return BadRequest(f"Cannot {doing}: name too long.")
    return StorageError(f"Storage error while {doing}: {exc.strerror}.")


@contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_root(root_dir: str) -> int:
    return os.open(root_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _open_dir(parent: int, name: str) -> int:
    return os.open(name, O_DIR, dir_fd=parent)


def _mkdir_owned(parent: int, name: str, owner: Owner, mode: int) -> int:
    """Open directory `name` in `parent`, creating it owned by `owner` if missing; never follow links."""
    try:
        return _open_dir(parent, name)
    except FileNotFoundError:
        pass
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        return _open_dir(parent, name)  # lost a race; re-open without following
    fd = _open_dir(parent, name)
    os.fchown(fd, owner.uid, owner.gid)
    os.fchmod(fd, mode)
    return fd


def walk_dirs(base: int, parts: Iterable[str], *, create: Owner | None = None) -> int:
    """Descriptor of the directory base/parts..., never following links. Caller closes it."""
    cur = os.dup(base)
    try:
        for part in parts:
            nxt = _mkdir_owned(cur, part, create, DIR_MODE) if create else _open_dir(cur, part)
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
                ) from None
            raise storage_error(e, "opening the workspace") from None


# ---- create / delete whole workspaces ------------------------------------------------------


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
        with closing_fd(open_root(root_dir)) as root:
            with closing_fd(_mkdir_owned(root, posix_name, owner, user_dir_mode)) as udir:
                st = os.fstat(udir)
                if st.st_uid != owner.uid:
                    raise StorageError(
                        f"{os.path.join(root_dir, posix_name)} belongs to uid {st.st_uid}, not {owner.uid}; "
                        "an administrator must fix its owner before workspaces can be created there."
                    )
                with closing_fd(_mkdir_owned(udir, str(ws_id), owner, workspace_dir_mode)) as wdir:
                    st = os.fstat(wdir)
                    if st.st_uid != owner.uid:
                        os.fchown(wdir, owner.uid, owner.gid)
    except OSError as e:
        raise storage_error(e, "creating the workspace directory") from None
    return rel


def delete_workspace_dir(root_dir: str, file_path: str) -> None:
    """Remove a workspace directory and everything in it; idempotent, never follows links.

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
    trash = TRASH_PREFIX + ws_part
    try:
        with closing_fd(open_root(root_dir)) as root:
            try:
                udir = _open_dir(root, user_part)
            except FileNotFoundError:
                return
            with closing_fd(udir):
                try:
                    st = os.stat(ws_part, dir_fd=udir, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None:
                    if stat.S_ISDIR(st.st_mode):
                        os.rename(ws_part, trash, src_dir_fd=udir, dst_dir_fd=udir)
                    else:  # a link or file where the workspace was: remove the entry itself only
                        os.unlink(ws_part, dir_fd=udir)
                try:
                    shutil.rmtree(trash, dir_fd=udir)
                except FileNotFoundError:
                    pass
    except OSError as e:
        raise storage_error(e, "deleting the workspace") from None


# ---- files, symlinks, renames inside a workspace ---------------------------------------------


def lstat_at(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def preflight(ws_fd: int, files: list[tuple[str, ...]], symlinks: list[tuple[str, ...]]) -> None:
    """Check, before writing anything, that every target can be written without following a link.

    Existing parent components must be real directories; an existing file target must be a
    regular file (it is replaced); an existing symlink target must be a symlink (it is replaced).
    """
    for kind, targets in (("file", files), ("symlink", symlinks)):
        for parts in targets:
            shown = "/".join(parts)
            cur = os.dup(ws_fd)
            try:
                for i, part in enumerate(parts[:-1]):
                    st = lstat_at(cur, part)
                    if st is None:
                        break
                    if not stat.S_ISDIR(st.st_mode):
                        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
                        raise BadRequest(
                            f"Cannot write {shown!r}: {'/'.join(parts[: i + 1])!r} is {what}."
                        )
                    nxt = _open_dir(cur, part)
                    os.close(cur)
                    cur = nxt
                else:
                    st = lstat_at(cur, parts[-1])
                    if st is not None:
                        if kind == "file" and not stat.S_ISREG(st.st_mode):
                            what = (
                                "a symbolic link"
                                if stat.S_ISLNK(st.st_mode)
                                else "a directory or special file"
                            )
                            raise BadRequest(f"Cannot write file {shown!r}: it exists as {what}.")
                        if kind == "symlink" and not stat.S_ISLNK(st.st_mode):
                            raise BadRequest(
                                f"Cannot create symlink {shown!r}: a file or directory of that name exists."
                            )
            except OSError as e:
                raise storage_error(e, f"checking {shown!r}") from None
            finally:
                os.close(cur)


def write_file(ws_fd: int, parts: tuple[str, ...], chunks: Iterable[bytes], owner: Owner) -> int:
    """Write a file atomically (temp file + rename), owned by `owner`; return bytes written."""
    shown = "/".join(parts)
    try:
        with closing_fd(walk_dirs(ws_fd, parts[:-1], create=owner)) as dfd:
            tmp = TMP_PREFIX + secrets.token_hex(8)
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
                dir_fd=dfd,
            )
            size = 0
            try:
                with open(fd, "wb", closefd=True) as f:
                    for chunk in chunks:
                        f.write(chunk)
                        size += len(chunk)
                    f.flush()
                    os.fchown(f.fileno(), owner.uid, owner.gid)
                    os.fchmod(f.fileno(), FILE_MODE)
                    os.fsync(f.fileno())
                st = lstat_at(dfd, parts[-1])
                if st is not None and not stat.S_ISREG(st.st_mode):
                    raise BadRequest(
                        f"Cannot write file {shown!r}: it exists and is not a regular file."
                    )
                os.rename(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
                raise
            return size
    except OSError as e:
        raise storage_error(e, f"writing {shown!r}") from None


def make_symlink(ws_fd: int, parts: tuple[str, ...], target: str, owner: Owner) -> None:
    """Create (or replace) symlink parts -> target, owned by `owner` (lchown)."""
    shown = "/".join(parts)
    try:
        with closing_fd(walk_dirs(ws_fd, parts[:-1], create=owner)) as dfd:
            tmp = TMP_PREFIX + secrets.token_hex(8)
            os.symlink(target, tmp, dir_fd=dfd)
            try:
                os.chown(tmp, owner.uid, owner.gid, dir_fd=dfd, follow_symlinks=False)
                st = lstat_at(dfd, parts[-1])
                if st is not None and not stat.S_ISLNK(st.st_mode):
                    raise BadRequest(
                        f"Cannot create symlink {shown!r}: a file or directory of that name exists."
                    )
                os.rename(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
                raise
    except OSError as e:
        raise storage_error(e, f"creating symlink {shown!r}") from None


def rename_entry(ws_fd: int, src: tuple[str, ...], dst: tuple[str, ...], owner: Owner) -> None:
    """Rename a file, directory or symlink inside the workspace; the destination must not exist."""
    s_shown, d_shown = "/".join(src), "/".join(dst)
    if dst[: len(src)] == src:
        raise BadRequest(f"Cannot move {s_shown!r} into itself ({d_shown!r}).")
    try:
        with (
            closing_fd(walk_dirs(ws_fd, src[:-1])) as sdir,
            closing_fd(walk_dirs(ws_fd, dst[:-1], create=owner)) as ddir,
        ):
            if lstat_at(sdir, src[-1]) is None:
                raise BadRequest(f"Cannot rename {s_shown!r}: it does not exist.")
            if lstat_at(ddir, dst[-1]) is not None:
                raise BadRequest(
                    f"Cannot rename {s_shown!r} to {d_shown!r}: the destination exists."
                )
            os.rename(src[-1], dst[-1], src_dir_fd=sdir, dst_dir_fd=ddir)
    except FileNotFoundError:
        raise BadRequest(f"Cannot rename {s_shown!r}: it does not exist.") from None
    except OSError as e:
        raise storage_error(e, f"renaming {s_shown!r}") from None


def remove_stale_temp(ws_fd: int) -> None:
    """Remove temporary files an interrupted write left at the top level of a workspace."""
    for entry in os.scandir(ws_fd):
        if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.name, dir_fd=ws_fd)
            except OSError:
                pass


# ---- scan ---------------------------------------------------------------------------------


@dataclass
class ScanResult:
    disk_space: int = 0
    file_count: int = 0
    files: list[dict] = field(default_factory=list)
    symlinks: list[dict] = field(default_factory=list)
    truncated: bool = False

    def details(self) -> dict:
        out = {"files": self.files, "symlinks": self.symlinks}
        if self.truncated:
            out["truncated"] = True
        return out


def scan(ws_fd: int, list_limit: int) -> ScanResult:
    """Disk usage (allocated bytes, hard links counted once, like ``du -s``) and a listing.

    The listing names files and symlinks relative to the workspace, hiding dot-entries and
    everything under dot-directories (which still count towards disk usage); at most
    `list_limit` entries are listed. Links are read, never followed.
    """
    res = ScanResult()
    seen_inodes: set[tuple[int, int]] = set()
    res.disk_space += os.fstat(ws_fd).st_blocks * 512
    listed = 0
    # depth-first with one open descriptor per level (not per pending directory)
    root = os.dup(ws_fd)
    frames: list[tuple[int, Iterator[os.DirEntry], str, bool]] = [(root, _entries(root), "", False)]
    try:
        while frames:
            dfd, it, prefix, hidden = frames[-1]
            entry = next(it, None)
            if entry is None:
                os.close(dfd)
                frames.pop()
                continue
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            mode = est.st_mode
            if est.st_nlink > 1 and not stat.S_ISDIR(mode):
                key = (est.st_dev, est.st_ino)
                if key not in seen_inodes:  # a hard-linked file's blocks count once, like du
                    seen_inodes.add(key)
                    res.disk_space += est.st_blocks * 512
            else:
                res.disk_space += est.st_blocks * 512
            name = entry.name
            is_hidden = hidden or name.startswith(".")
            rel = prefix + name
            if stat.S_ISDIR(mode):
                try:
                    sub = _open_dir(dfd, name)
                except OSError:
                    continue
                frames.append((sub, _entries(sub), rel + "/", is_hidden))
                continue
            res.file_count += 1
            if is_hidden:
                continue
            if listed >= list_limit:
                res.truncated = True
                continue
            listed += 1
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink(name, dir_fd=dfd)
                except OSError:
                    target = None
                res.symlinks.append({"name": rel, "source_path": target})
            else:
                res.files.append({"name": rel, "size": est.st_size})
    finally:
        for dfd, *_ in frames:
            os.close(dfd)
    res.files.sort(key=lambda f: f["name"])
    res.symlinks.sort(key=lambda f: f["name"])
    return res


def _entries(dfd: int) -> Iterator[os.DirEntry]:
    with os.scandir(dfd) as it:
        return iter(list(it))
