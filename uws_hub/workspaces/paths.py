"""Checks on names that clients send: paths inside a workspace, and symlink sources.

These are pure checks (no writes). The filesystem layer (`fsops`) additionally opens every path
component with O_NOFOLLOW relative to a directory descriptor, so a symlink planted inside a
workspace cannot redirect a write, chown or delete, even in a race.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ..errors import BadRequest

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_relpath(name: object, what: str = "file name") -> tuple[str, ...]:
    """Split a client-supplied path relative to a workspace into components, or raise 400.

    Refused: non-strings, empty names, absolute paths, ``.``/``..`` components, empty components
    (``a//b``, trailing ``/``), NUL and other control characters, components over 255 bytes,
    paths over 4096 bytes or deeper than 64 levels.
    """
    if not isinstance(name, str):
        raise BadRequest(f"Invalid {what} {name!r}: must be a string.")
    shown = name if len(name) <= 80 else name[:77] + "..."
    if not name:
        raise BadRequest(f"Invalid {what}: it is empty.")
    if "\x00" in name:
        raise BadRequest(f"Invalid {what} {shown!r}: contains a NUL byte.")
    if _CONTROL.search(name):
        raise BadRequest(f"Invalid {what} {shown!r}: contains control characters.")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest(f"Invalid {what} {shown!r}: not valid UTF-8.") from e
    if len(encoded) > MAX_PATH_BYTES:
        raise BadRequest(f"Invalid {what} {shown!r}: longer than {MAX_PATH_BYTES} bytes.")
    if name.startswith("/"):
        raise BadRequest(
            f"Invalid {what} {shown!r}: must be relative to the workspace, not absolute."
        )
    parts = tuple(name.split("/"))
    if len(parts) > MAX_DEPTH:
        raise BadRequest(f"Invalid {what} {shown!r}: nested deeper than {MAX_DEPTH} levels.")
    for part in parts:
        if part == "":
            raise BadRequest(f"Invalid {what} {shown!r}: empty path component.")
        if part in (".", ".."):
            raise BadRequest(f"Invalid {what} {shown!r}: '.' and '..' are not allowed.")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise BadRequest(
                f"Invalid {what} {shown!r}: a component is longer than {MAX_NAME_BYTES} bytes."
            )
    return parts


def uws_relpath(name: object, what: str, *, dots: str, absolute: str) -> tuple[str, ...]:
    """`split_relpath` with UWS's texts where UWS had them: `dots` for a ``..`` component,
    `absolute` for a name starting with ``/`` (uws_hub's reason in ``detail``)."""
    try:
        return split_relpath(name, what)
    except BadRequest as e:
        if isinstance(name, str) and name.startswith("/"):
            raise BadRequest(absolute, detail=e.message) from e
        if isinstance(name, str) and ".." in name.split("/"):
            raise BadRequest(dots, detail=e.message) from e
        raise


def check_distinct_targets(targets: Iterable[tuple[str, ...]]) -> None:
    """Refuse a request whose targets collide (same path twice, or a path inside another)."""
    seen: set[tuple[str, ...]] = set()
    for parts in targets:
        if parts in seen:
            raise BadRequest(f"{'/'.join(parts)!r} is named twice in this request.")
        seen.add(parts)
    for parts in seen:
        for i in range(1, len(parts)):
            if parts[:i] in seen:
                raise BadRequest(
                    f"{'/'.join(parts)!r} would be inside {'/'.join(parts[:i])!r}, which this request also creates as a file."
                )


def check_symlink_source(source: object, allowed_roots: list[str]) -> str:
    """Resolve a symlink source and check it lies under an allowed root; return the resolved path.

    The link is created to the resolved path, so it points where it was checked to point.
    """
    if not isinstance(source, str) or not source:
        # UWS's text (its storage looked the missing path up and found nothing)
        raise BadRequest(
            "Symlink path not found: ",
            detail="A symlink needs 'source_path': an absolute path (or 'dataset_uuid').",
        )
    if "\x00" in source or _CONTROL.search(source):
        raise BadRequest("Invalid symlink source_path: contains NUL or control characters.")
    if len(source.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BadRequest(f"Invalid symlink source_path: longer than {MAX_PATH_BYTES} bytes.")
    if not os.path.isabs(source):
        raise BadRequest(f"Invalid symlink source_path {source!r}: must be an absolute path.")
    if not allowed_roots:
        raise BadRequest(
            "Symlinks are not enabled on this server: the administrator has not configured c.UWS.symlink_roots."
        )
    real = os.path.realpath(source)
    for root in allowed_roots:
        rroot = os.path.realpath(root)
        if real == rroot or real.startswith(rroot.rstrip("/") + "/"):
            if not os.path.lexists(real):
                raise BadRequest(
                    f"Symlink path not found: {source}",
                    detail=f"Symlink source_path {source!r} does not exist.",
                )
            return real
    raise BadRequest(
        f"Symlink source_path {source!r} is outside the allowed locations ({', '.join(allowed_roots)})."
    )
