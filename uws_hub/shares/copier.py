"""Copy a workspace into another account's directory, safely and fast.

The copy is made into a hidden staging directory ``<root>/<recipient>/.uws-copy-<ws id>`` and
renamed to ``<root>/<recipient>/<ws id>`` only when complete, so a recipient never sees a partial
copy; a restart removes a stale staging directory and starts again.

- Reads happen with the sender's filesystem uid, writes with the recipient's (``acting_as``),
  so the copy is owned by the recipient and nothing the sender could not read is copied.
- Nothing is followed: directories and files are opened ``O_NOFOLLOW`` relative to their parent's
  descriptor; hidden entries (``.name``, which includes the job logs in ``.jobs``) are skipped;
  symbolic links are kept as links only when their target is an absolute path that resolves
  (as the sender) into one of the allowed roots (``c.UWS.symlink_roots``), the rule links made
  through the API follow; the copy points at the resolved path. FIFOs, sockets and devices are
  skipped.
- File data is cloned when the filesystem can (``FICLONE``: reflink on XFS/btrfs), else copied
  in the kernel (``copy_file_range``), else read and written. Modes (without set-id bits) and
  modification times are kept.
- Progress (files, bytes) is reported through a callback; the callback may ask to stop
  (cancelled share) by returning False.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UWSError
from ..workspaces import fsops
from ..workspaces.fsops import Owner, acting_as, closing_fd, open_dir
from ..workspaces.paths import check_symlink_source

FICLONE = 0x40049409
STAGING_PREFIX = ".uws-copy-"
CHUNK = 64 * 1024 * 1024


class CopyCancelled(Exception):
    """The callback asked to stop (the share was cancelled or declined)."""


@dataclass
class CopyPlan:
    files: int = 0
    bytes: int = 0


@dataclass
class CopyStats:
    files: int = 0
    bytes: int = 0
    cloned: int = 0  # files whose data was cloned (reflink)
    skipped_links: int = 0
    skipped_special: int = 0


def staging_name(ws_id: int) -> str:
    return f"{STAGING_PREFIX}{ws_id}"


def allowed_link(target: str, roots: list[str]) -> str | None:
    """The path a copied link may point to, or None: the same rule as links made through the
    API — absolute, and resolving (all links in it followed, as the sender) into an allowed
    root; the copy points at the resolved path, where it was checked to point."""
    try:
        return check_symlink_source(target, roots)
    except UWSError:
        return None


def _visible(name: str) -> bool:
    return not name.startswith(".")


def plan(src_fd: int, sender: Owner) -> CopyPlan:
    """What a copy will carry (regular files and their bytes), read as the sender."""
    out = CopyPlan()
    with acting_as(sender):
        stack = [os.dup(src_fd)]
        try:
            while stack:
                dfd = stack.pop()
                with closing_fd(dfd):
                    for entry in os.scandir(dfd):
                        if not _visible(entry.name):
                            continue
                        st = entry.stat(follow_symlinks=False)
                        if stat.S_ISDIR(st.st_mode):
                            try:
                                stack.append(open_dir(dfd, entry.name))
                            except OSError:
                                continue
                        elif stat.S_ISREG(st.st_mode):
                            out.files += 1
                            out.bytes += st.st_size
        finally:
            for fd in stack:
                os.close(fd)
    return out


def _listing(dfd: int) -> list[tuple[str, os.stat_result]]:
    """The visible entries of `dfd` with their lstat (call as the reader)."""
    out = []
    for entry in os.scandir(dfd):
        if _visible(entry.name):
            try:
                out.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    # directories first: the walk pops from the end, so files come out together, in batches
    out.sort(key=lambda e: not stat.S_ISDIR(e[1].st_mode))
    return out


BATCH = 64


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


UMASK = _umask()


def _copy_files(sfd, dfd, batch, sender: Owner, recipient: Owner, stats: CopyStats) -> None:
    opened: list[tuple[str, int]] = []
    try:
        with acting_as(sender):
            for name, _st in batch:
                try:
                    rfd = os.open(
                        name,
                        os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                        dir_fd=sfd,
                    )
                except OSError as e:
                    if (
                        isinstance(e, (PermissionError, FileNotFoundError))
                        or e.errno == errno.ELOOP
                    ):
                        continue  # unreadable by the sender, gone, or swapped for a link
                    raise
                opened.append((name, rfd))
        with acting_as(recipient):
            for name, rfd in opened:
                rst = os.fstat(rfd)
                if not stat.S_ISREG(rst.st_mode):  # swapped since the listing
                    continue
                mode = stat.S_IMODE(rst.st_mode) & 0o777
                wfd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    mode,
                    dir_fd=dfd,
                )
                try:
                    _copy_data(rfd, wfd, rst.st_size, stats)
                    if mode & UMASK:
                        os.fchmod(wfd, mode)
                    os.utime(wfd, ns=(rst.st_atime_ns, rst.st_mtime_ns))
                finally:
                    os.close(wfd)
                stats.files += 1
                stats.bytes += rst.st_size
    finally:
        for _name, rfd in opened:
            os.close(rfd)


def _copy_data(src: int, dst: int, size: int, stats: CopyStats) -> None:
    try:
        fcntl.ioctl(dst, FICLONE, src)
        stats.cloned += 1
        return
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF):
            raise
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, min(CHUNK, size - done))
            if n == 0:
                break
            done += n
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    os.lseek(src, done, os.SEEK_SET)
    os.lseek(dst, done, os.SEEK_SET)
    while True:
        block = os.read(src, 1024 * 1024)
        if not block:
            break
        view = memoryview(block)
        while view:
            view = view[os.write(dst, view) :]


def copy_tree(
    src_fd: int,
    dst_fd: int,
    sender: Owner,
    recipient: Owner,
    symlink_roots: list[str],
    progress: Callable[[CopyStats], bool] | None = None,
    report_every: int = 200,
) -> CopyStats:
    """Copy the visible contents of directory `src_fd` into the empty directory `dst_fd`.

    Reads as `sender`, writes as `recipient` (see the module docs): directories keep their
    modes (plus the owner's rwx), links are kept only when `allowed_link`, FIFOs, sockets and
    devices are skipped, regular files are copied in batches. `progress` is called every
    `report_every` files and at the end; CopyCancelled when it returns False.
    """
    return _TreeCopy(sender, recipient, symlink_roots, progress, report_every).run(src_fd, dst_fd)


class _TreeCopy:
    """One `copy_tree`: depth-first, one (source, copy) descriptor pair per level."""

    def __init__(
        self,
        sender: Owner,
        recipient: Owner,
        symlink_roots: list[str],
        progress: Callable[[CopyStats], bool] | None,
        report_every: int,
    ):
        self.sender, self.recipient = sender, recipient
        self.symlink_roots = symlink_roots
        self.progress, self.report_every = progress, report_every
        self.stats = CopyStats()
        self.since_report = 0

    def run(self, src_fd: int, dst_fd: int) -> CopyStats:
        # (source dir fd, destination dir fd, entries with their lstat, read as the sender)
        stack: list[tuple[int, int, list[tuple[str, os.stat_result]]]] = []
        with acting_as(self.sender):
            first = os.dup(src_fd)
            entries = _listing(first)
        stack.append((first, os.dup(dst_fd), entries))
        try:
            while stack:
                sfd, dfd, pending = stack[-1]
                if not pending:
                    stack.pop()
                    os.close(sfd)
                    os.close(dfd)
                    continue
                name, st = pending.pop()
                if stat.S_ISDIR(st.st_mode):
                    sub = self._directory(sfd, dfd, name, st.st_mode, len(stack))
                    if sub is not None:
                        stack.append(sub)
                elif stat.S_ISLNK(st.st_mode):
                    self._link(sfd, dfd, name)
                elif stat.S_ISREG(st.st_mode):
                    self._files(sfd, dfd, (name, st), pending)
                else:
                    self.stats.skipped_special += 1
        finally:
            for sfd, dfd, _ in stack:
                os.close(sfd)
                os.close(dfd)
        if self.progress is not None:
            self._report()
        return self.stats

    def _directory(self, sfd: int, dfd: int, name: str, mode: int, depth: int):
        """Create the copy of directory `name`; (source fd, copy fd, its entries) to walk next,
        or None when the sender cannot open it."""
        if depth >= fsops.MAX_SCAN_DEPTH:
            raise fsops.StorageError(
                f"The workspace is nested deeper than {fsops.MAX_SCAN_DEPTH} levels."
            )
        with acting_as(self.sender):
            try:
                sub = open_dir(sfd, name)
            except (PermissionError, FileNotFoundError, NotADirectoryError):
                return None
            children = _listing(sub)
        with acting_as(self.recipient):
            os.mkdir(name, 0o700, dir_fd=dfd)
            dsub = open_dir(dfd, name)
            os.fchmod(dsub, (stat.S_IMODE(mode) & 0o777) | 0o700)
        return sub, dsub, children

    def _link(self, sfd: int, dfd: int, name: str) -> None:
        """Copy symlink `name` if its target is allowed (see `allowed_link`), else skip it."""
        with acting_as(self.sender):
            try:
                target = allowed_link(os.readlink(name, dir_fd=sfd), self.symlink_roots)
            except OSError:
                target = None
        if target is None:
            self.stats.skipped_links += 1
            return
        with acting_as(self.recipient):
            os.symlink(target, name, dir_fd=dfd)

    def _files(self, sfd: int, dfd: int, first, pending: list) -> None:
        """Copy regular file `first` with the regular files next in `pending`, as one batch:
        one switch to the sender to open them all, one to the recipient to write them all
        (two identity switches per batch, not per file)."""
        batch = [first]
        while pending and len(batch) < BATCH and stat.S_ISREG(pending[-1][1].st_mode):
            batch.append(pending.pop())
        before = self.stats.files
        _copy_files(sfd, dfd, batch, self.sender, self.recipient, self.stats)
        self.since_report += self.stats.files - before
        if self.progress is not None and self.since_report >= self.report_every:
            self.since_report = 0
            self._report()

    def _report(self) -> None:
        if self.progress(self.stats) is False:
            raise CopyCancelled()
