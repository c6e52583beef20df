"""/api/workspaces/<id>/files/: a workspace's files without a job — list a folder, delete a
file, link or folder, download a file (with ``Range``) or a folder as a zip.

Owner only (admins and services acting with ``?user=`` as elsewhere); anyone else's workspace
is the same 404 as on every workspace endpoint. The filesystem work is in
`uws_hub.workspaces.browse` (as the owner, no link followed); this module is HTTP only.

Routes (the workspace id is the one path argument)::

    {api}workspaces/([^/]+)/files/download/?   DownloadHandler   GET, HEAD
    {api}workspaces/([^/]+)/files/?            FilesHandler      GET, DELETE
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from urllib.parse import quote

from tornado import httputil
from tornado.iostream import StreamClosedError

from ... import scopes
from ...errors import BadRequest, UWSError
from ...workspaces.browse import MAX_LIMIT, FileDownload, FolderDownload, WorkspaceFiles
from .base import BaseHandler, endpoint

log = logging.getLogger("uws_hub.service")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: what a compressed file is, by the encoding `mimetypes` finds (sent as its type: never as
#: Content-Encoding, which would make browsers unpack it)
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


def flag(value: str, name: str) -> bool:
    """A 0/1 (or true/false) query argument; 400 naming it otherwise."""
    value = value.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("", "0", "false", "no"):
        return False
    raise BadRequest(f"{name} must be 0 or 1, not {value!r}.")


def content_type(name: str) -> str:
    """The file's type from its name (`mimetypes`), no charset; unknown: octet-stream."""
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return guessed or "application/octet-stream"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name (RFC 6266 / 8187)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    exact = quote(name, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{exact}"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range ``Range: bytes=a-b | a- | -n`` asks for, as (first, last) inclusive
    and clipped to the file; None for the whole file (no header, several ranges, another
    unit or a malformed header: RFC 9110 lets a server ignore those). 416 (``Content-Range:
    bytes */<size>``) when the range lies past the end of the file (or the file is empty)."""
    match = _RANGE.match((header or "").strip())
    if match is None or match.groups() == ("", ""):
        return None
    start, end = match.groups()
    if start:
        first, last = int(start), int(end) if end else size - 1
        if end and last < first:
            return None  # invalid syntax: ignored
        last = min(last, size - 1)
    else:
        suffix = int(end)
        first, last = max(0, size - suffix), size - 1
        if suffix == 0:
            first = size  # unsatisfiable
    if first >= size or first > last:
        raise UWSError(
            f"Range not satisfiable: the file has {size} bytes.",
            status_code=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    return first, last


def etag(download: FileDownload) -> str:
    return f'"{download.inode:x}-{download.size:x}-{download.mtime_ns:x}"'


class _PathArg:
    def _path(self) -> str:
        """``?path=`` as sent (names may begin or end with spaces: not stripped)."""
        return self.get_query_argument("path", "", strip=False)  # type: ignore[attr-defined]


class FilesHandler(_PathArg, BaseHandler):
    """``GET /workspaces/<id>/files/?path=&sort=&order=&offset=&limit=&hidden=``: one page of
    a folder (`WorkspaceFiles.list`: ``data = {path, entries, total, offset, limit, sort,
    order}``; scope ``read:workspaces``). ``DELETE /workspaces/<id>/files/?path=``: delete a
    file, link (itself) or folder (with everything in it) → ``{"message": "Deleted <path>."}``
    (scope ``workspaces``; refused unless the workspace may change). Path args: (ws_id)."""

    @classmethod
    def allowed_methods(cls, path_args: list[str]) -> list[str]:
        return ["GET", "DELETE", "OPTIONS"]

    @endpoint
    async def get(self, ws_id: str) -> None:
        user = self.acting_user(scopes.READ_WORKSPACES)
        ws = self.ctx.workspaces.get(self.db, user, ws_id)
        limit, offset = self.paging(default=100, most=MAX_LIMIT)
        listing = await self.ctx.files.list(
            self.db,
            ws,
            self._path(),
            sort=self.get_query_argument("sort", "name"),
            order=self.get_query_argument("order", "asc"),
            offset=offset,
            limit=limit,
            hidden=flag(self.get_query_argument("hidden", "0"), "hidden"),
        )
        self.ok("Successful.", listing)

    @endpoint
    async def delete(self, ws_id: str) -> None:
        user = self.acting_user(scopes.WORKSPACES)
        ws = self.ctx.workspaces.get_to_change(self.db, user, ws_id)
        name = await self.ctx.files.delete(self.db, ws, self._path())
        self.ok(f"Deleted {name}.")


class DownloadHandler(_PathArg, BaseHandler):
    """``GET|HEAD /workspaces/<id>/files/download?path=`` (scope ``read:workspaces``; path
    args: (ws_id)).

    A **file** is streamed (1 MiB reads in the thread pool, never whole in memory) with
    ``Content-Type`` from its name, ``Content-Disposition: attachment`` (ASCII fallback and
    ``filename*``), ``Content-Length``, ``Last-Modified``, a strong ``ETag``,
    ``Accept-Ranges: bytes``, ``X-Content-Type-Options: nosniff`` and a sandboxing CSP. One
    ``Range`` (``bytes=a-b``, ``a-``, ``-n``) answers 206 with ``Content-Range``; a range past
    the end 416 with ``Content-Range: bytes */<size>`` and a JSON error. Several ranges (or a
    malformed header, or an ``If-Range`` that does not match the ETag or Last-Modified) are
    answered with the whole file (200).

    A **folder** ("" or no path: the whole workspace) is a streamed zip (``application/zip``,
    ``<folder name>.zip``, the workspace's name for the top folder; chunked, no length), made
    as the owner in a thread with back-pressure; links stored as links, never followed. 413
    with the numbers above ``c.UWS.download_zip_max_bytes``. A client that goes away stops it.

    A link named as ``path`` is 400 ("links are not followed"). A failure after the answer has
    begun closes the connection, so the client sees a broken download, never a short one."""

    _download: FileDownload | FolderDownload | None = None
    _gone = False  # the client closed the connection

    @classmethod
    def allowed_methods(cls, path_args: list[str]) -> list[str]:
        return ["GET", "HEAD", "OPTIONS"]

    @endpoint
    async def get(self, ws_id: str) -> None:
        await self._serve(ws_id, body=True)

    @endpoint
    async def head(self, ws_id: str) -> None:
        await self._serve(ws_id, body=False)

    async def _serve(self, ws_id: str, *, body: bool) -> None:
        user = self.acting_user(scopes.READ_WORKSPACES)
        ws = self.ctx.workspaces.get(self.db, user, ws_id)
        files = self.ctx.files
        download = await files.open_download(self.db, ws, self._path())
        self._download = download
        try:
            if isinstance(download, FileDownload):
                await self._send_file(files, download, body)
            else:
                await self._send_zip(files, download, body)
        finally:
            self._download = None
            download.close()

    def _common_headers(self, name: str, ctype: str) -> None:
        self.set_header("Content-Type", ctype)
        self.set_header("Content-Disposition", content_disposition(name))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        self.set_header("Cache-Control", "private, no-cache")

    def _wanted_range(self, d: FileDownload, last_modified: str) -> tuple[int, int] | None:
        if_range = self.request.headers.get("If-Range")
        if if_range is not None and if_range.strip() not in (etag(d), last_modified):
            return None  # the file changed since the client's first part: all of it
        return byte_range(self.request.headers.get("Range"), d.size)

    async def _send_file(self, files: WorkspaceFiles, d: FileDownload, body: bool) -> None:
        last_modified = httputil.format_timestamp(d.modified)
        wanted = self._wanted_range(d, last_modified)  # 416 before any header is set
        self._common_headers(d.name, content_type(d.name))
        self.set_header("Last-Modified", last_modified)
        self.set_header("ETag", etag(d))
        self.set_header("Accept-Ranges", "bytes")
        first, last = wanted if wanted is not None else (0, d.size - 1)
        if wanted is not None:
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {first}-{last}/{d.size}")
        self.set_header("Content-Length", str(last - first + 1))
        if not body or last < first:
            self.finish()
            return
        await self._stream(files.file_chunks(d, first, last))

    async def _send_zip(self, files: WorkspaceFiles, d: FolderDownload, body: bool) -> None:
        self._common_headers(f"{d.name}.zip", "application/zip")
        if not body:
            await self.flush()  # no Content-Length: the size is known only once it is made
            self.finish()
            return
        await self._stream(files.zip_stream(d))

    async def _stream(self, chunks: AsyncIterator[bytes]) -> None:
        """Send `chunks`, each flushed before the next is asked for (a slow client slows
        the producer). A failure before anything was sent is answered as usual; after, the
        connection is closed (a truncated answer must not look complete)."""
        async with aclosing(chunks) as it:
            try:
                async for chunk in it:
                    self.write(chunk)
                    await self.flush()
            except Exception as e:
                if isinstance(e, UWSError) and not self._headers_written:
                    raise
                if not (self._gone or isinstance(e, StreamClosedError)):
                    log.warning("%s: download cut short: %s", self.request.path, e)
                self._abort()
                return
        self.finish()

    def _abort(self) -> None:
        """Close the connection mid-answer and end the request's bookkeeping."""
        if self._finished:
            return
        self._finished = True
        try:
            self.request.connection.close()
        except Exception:  # already closed
            pass
        self.application.log_request(self)
        self.on_finish()

    def on_connection_close(self) -> None:
        # the client went away: a zip being made stops now, not at its next chunk
        self._gone = True
        if isinstance(self._download, FolderDownload):
            self._download.cancel()
        super().on_connection_close()
