"""Streaming multipart upload into a workspace.

The request body is parsed as it arrives (python-multipart) and every file part of every field
is written to its own file in a staging directory of the owner, ``<root>/<user>/.uws-staging/``,
as the owner (`fsops.acting_as`); memory use does not grow with the upload. Only when the whole
body has arrived and every name has passed the path guard are the files renamed into the
workspace — a bad name anywhere refuses the whole upload and writes nothing into the workspace.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import BadRequest, UWSError
from . import fsops
from .paths import check_distinct_targets, split_relpath


@dataclass
class StagedFile:
    parts: tuple[str, ...]
    staged_name: str
    size: int = 0


def clear_staging(root_dir: str) -> None:
    """Remove uploads a crash left half-received, in every user's staging directory (at start-up)."""
    with fsops.closing_fd(fsops.open_root(root_dir)) as root:
        for entry in os.scandir(root):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                udir = fsops.open_dir(root, entry.name)
            except OSError:
                continue
            with fsops.closing_fd(udir):
                st = os.fstat(udir)
                try:
                    with fsops.acting_as(fsops.Owner(st.st_uid, st.st_gid)):
                        fsops.remove_tree(udir, fsops.STAGING_DIR)
                except (OSError, UWSError):
                    pass


class UploadReceiver:
    """Receives one multipart body for one workspace.

    Every method blocks and acts as the owner: run them in a thread.
    """

    def __init__(self, root_dir: str, posix_name: str, owner: fsops.Owner, content_type: str):
        ctype, opts = parse_options_header(content_type or "")
        boundary = opts.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise BadRequest("Upload must be multipart/form-data with a boundary.")
        self.owner = owner
        self.usage = None  # the owner's quota usage when the upload began (set by the manager)
        self.received = 0  # body bytes so far
        self.token = secrets.token_hex(12)
        #: what was uploaded (each part's disposition and bytes), whatever the boundary: a retry
        #: of the same upload (a new boundary) is the same request (Idempotency-Key)
        self.digest = hashlib.sha256()
        self.files: list[StagedFile] = []
        self.error: UWSError | None = None
        self._current: StagedFile | None = None
        self._fh = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        with fsops.acting_as(owner):
            try:
                with fsops.closing_fd(fsops.open_root(root_dir)) as root:
                    with fsops.closing_fd(fsops.walk_dirs(root, [posix_name])) as udir:
                        self._staging = fsops.mkdir_open(udir, fsops.STAGING_DIR, 0o700)
                os.mkdir(self.token, 0o700, dir_fd=self._staging)
                self._dir = fsops.open_dir(self._staging, self.token)
            except OSError as e:
                raise fsops.storage_error(e, "preparing the upload") from e
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_cb,
                "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
            max_header_count=16,
        )

    # parser callbacks
    def _part_begin(self) -> None:
        self._headers = {}
        self._current = None

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        self.digest.update(b"\0part\0" + self._headers.get(b"content-disposition", b"") + b"\0")
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw = opts.get(b"filename")
        if raw is None or raw == b"":
            return  # a plain form field or an empty file input: nothing to write
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.error = self.error or BadRequest("Upload file name is not valid UTF-8.")
            return
        try:
            parts = split_relpath(name, "upload file name")
        except BadRequest as e:
            self.error = self.error or e
            return
        if self.error:
            return
        staged = StagedFile(parts=parts, staged_name=str(len(self.files)))
        fd = os.open(
            staged.staged_name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            fsops.FILE_MODE,
            dir_fd=self._dir,
        )
        self._fh = open(fd, "wb")  # noqa: SIM115 - closed at the part's end
        self._current = staged
        self.files.append(staged)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.digest.update(data[start:end])
        if self._fh is not None:
            self._fh.write(data[start:end])
            self._current.size += end - start

    def _part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # driving
    def feed(self, chunk: bytes) -> None:
        with fsops.acting_as(self.owner):
            try:
                self._parser.write(chunk)
            except OSError as e:
                raise fsops.storage_error(e, "receiving the upload") from e
            except Exception as e:  # malformed multipart
                raise BadRequest(f"Malformed multipart upload: {e}") from e

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except Exception as e:
            raise BadRequest(f"Malformed multipart upload: {e}") from e
        if self._fh is not None:
            raise BadRequest("Malformed multipart upload: the body ended inside a file part.")
        if self.error:
            raise self.error
        if not self.files:
            raise BadRequest("No files found in request.")
        check_distinct_targets(f.parts for f in self.files)

    def check(self, ws_fd: int) -> None:
        """Verify every target can be written (after `finish`, before `commit`), as the owner."""
        with fsops.acting_as(self.owner):
            fsops.preflight(ws_fd, [f.parts for f in self.files], [])

    def commit(self, ws_fd: int) -> list[StagedFile]:
        """Move the staged files into the workspace (after `check`), as the owner."""
        with fsops.acting_as(self.owner):
            for f in self.files:
                shown = "/".join(f.parts)
                try:
                    fd = os.open(
                        f.staged_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir
                    )
                    with fsops.closing_fd(fd):
                        os.fsync(fd)
                    with fsops.closing_fd(fsops.walk_dirs(ws_fd, f.parts[:-1], create=True)) as dfd:
                        st = fsops.lstat_at(dfd, f.parts[-1])
                        if st is not None and not stat.S_ISREG(st.st_mode):
                            raise BadRequest(
                                f"Cannot write file {shown!r}: it exists and is not a regular file."
                            )
                        try:
                            os.rename(
                                f.staged_name, f.parts[-1], src_dir_fd=self._dir, dst_dir_fd=dfd
                            )
                        except OSError as e:
                            if e.errno != errno.EXDEV:  # the workspace is another filesystem: copy
                                raise
                            fd = os.open(
                                f.staged_name,
                                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=self._dir,
                            )
                            with open(fd, "rb") as fh:
                                fsops.write_file(
                                    ws_fd, f.parts, iter(lambda fh=fh: fh.read(1 << 20), b"")
                                )
                except OSError as e:
                    raise fsops.storage_error(e, f"writing {shown!r}") from e
        return self.files

    def cleanup(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if getattr(self, "_dir", None) is None:
            return
        with fsops.acting_as(self.owner):
            os.close(self._dir)
            self._dir = None
            try:
                fsops.remove_tree(self._staging, self.token)
            except (OSError, UWSError):
                pass
            os.close(self._staging)
