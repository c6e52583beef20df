"""Streaming multipart upload into a workspace.

The request body is parsed as it arrives (python-multipart) and every file part of every field
is written to its own file in a private staging directory under ``root_dir``; memory use does
not grow with the upload. Only when the whole body has arrived and every name has passed the
path guard are the files moved into the workspace — a bad name anywhere refuses the whole
upload and changes nothing.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
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


def staging_root(root_dir: str) -> str:
    return os.path.join(root_dir, fsops.STAGING_DIR)


def clear_staging(root_dir: str) -> None:
    """Create the staging directory, removing uploads a crash left half-received (at service start)."""
    path = staging_root(root_dir)
    if os.path.islink(path):
        os.unlink(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


class UploadReceiver:
    """Receives one multipart body. `feed` and `finish` block (run them in a thread)."""

    def __init__(self, root_dir: str, content_type: str):
        ctype, opts = parse_options_header(content_type or "")
        boundary = opts.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise BadRequest("Upload must be multipart/form-data with a boundary.")
        base = staging_root(root_dir)
        os.makedirs(base, mode=0o700, exist_ok=True)
        self.dir = os.path.join(base, secrets.token_hex(12))
        os.mkdir(self.dir, 0o700)
        self.files: list[StagedFile] = []
        self.error: UWSError | None = None
        self._current: StagedFile | None = None
        self._fh = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
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
        self._fh = open(os.path.join(self.dir, staged.staged_name), "wb")  # noqa: SIM115
        self._current = staged
        self.files.append(staged)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None:
            self._fh.write(data[start:end])
            self._current.size += end - start

    def _part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # driving
    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except OSError as e:
            raise fsops.storage_error(e, "receiving the upload") from None
        except Exception as e:  # malformed multipart
            raise BadRequest(f"Malformed multipart upload: {e}") from None

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except Exception as e:
            raise BadRequest(f"Malformed multipart upload: {e}") from None
        if self._fh is not None:
            raise BadRequest("Malformed multipart upload: the body ended inside a file part.")
        if self.error:
            raise self.error
        if not self.files:
            raise BadRequest("No files found in request.")
        check_distinct_targets(f.parts for f in self.files)

    def commit(self, ws_fd: int, owner: fsops.Owner) -> list[StagedFile]:
        """Move the staged files into the workspace (after `finish`)."""
        fsops.preflight(ws_fd, [f.parts for f in self.files], [])
        for f in self.files:
            src = os.path.join(self.dir, f.staged_name)
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchown(fd, owner.uid, owner.gid)
                os.fchmod(fd, fsops.FILE_MODE)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                with fsops.closing_fd(fsops.walk_dirs(ws_fd, f.parts[:-1], create=owner)) as dfd:
                    st = fsops.lstat_at(dfd, f.parts[-1])
                    if st is not None and not stat.S_ISREG(st.st_mode):
                        raise BadRequest(
                            f"Cannot write file {'/'.join(f.parts)!r}: it exists and is not a regular file."
                        )
                    try:
                        os.rename(src, f.parts[-1], dst_dir_fd=dfd)
                    except OSError as e:
                        if e.errno != errno.EXDEV:
                            raise
                        with open(src, "rb") as fh:
                            fsops.write_file(
                                ws_fd, f.parts, iter(lambda: fh.read(1 << 20), b""), owner
                            )
            except OSError as e:
                raise fsops.storage_error(e, f"writing {'/'.join(f.parts)!r}") from None
        return self.files

    def cleanup(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        shutil.rmtree(self.dir, ignore_errors=True)
