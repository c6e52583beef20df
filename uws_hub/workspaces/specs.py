"""Workspace requests, checked at the edge: a handler turns the JSON body of a create or an
update into a `WorkspaceSpec` (names, description, default job type, and the files, symlinks
and renames of ``workspace_details`` as a `DetailsSpec`) and the manager works on that. Every
problem is a 400 with the message UWS gives; nothing is written before the whole body is
known to be good.

A symlink may name a dataset (``dataset_uuid``) instead of a ``source_path``: it is checked
here (a dataset id, nothing path-like) and kept as a `DatasetLinkSpec` with the request's
``globus_groups_token`` beside it, until the manager has `datasets` resolve it — once per
request, before anything is written — into an ordinary `SymlinkSpec`. The token is kept out
of every record (``request_record``, ``pending_record``, the audit counts, ``repr``)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest
from .paths import check_distinct_targets, check_symlink_source, split_relpath, uws_relpath

NAME_MAX = 255
DESCRIPTION_MAX = 10000
#: a dataset id: a UUID, with or without its dashes (HuBMAP's ids are 32 hex digits)
DATASET_ID = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


@dataclass
class FileSpec:
    parts: tuple[str, ...]
    data: bytes

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass
class SymlinkSpec:
    parts: tuple[str, ...]
    source: str  # resolved, checked against symlink_roots
    dataset_uuid: str | None = None  # the dataset it links, for a dataset link

    @property
    def name(self) -> str:
        return "/".join(self.parts)

    def record(self) -> dict:
        rec = {"name": self.name, "source_path": self.source}
        if self.dataset_uuid is not None:
            rec["dataset_uuid"] = self.dataset_uuid
        return rec


@dataclass
class DatasetLinkSpec:
    """A link to a dataset by its id, not resolved yet (see `workspaces.datasets`)."""

    parts: tuple[str, ...]
    uuid: str

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass
class DetailsSpec:
    files: list[FileSpec] = field(default_factory=list)
    symlinks: list[SymlinkSpec] = field(default_factory=list)
    renames: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    #: dataset links still to resolve (the manager resolves them before anything is written)
    datasets: list[DatasetLinkSpec] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files or self.symlinks or self.renames or self.datasets)

    def size(self) -> int:
        return sum(len(f.data) for f in self.files)

    def request_record(self) -> dict:
        """What UWS stores as request_workspace_details (names, not contents)."""
        return {
            "files": [{"name": f.name} for f in self.files],
            "symlinks": [s.record() for s in self.symlinks],
        }

    def pending_record(self) -> dict:
        """Everything initialization needs to (re)do the writes after a restart."""
        if self.datasets:
            raise RuntimeError("dataset links must be resolved before they are recorded")
        return {
            "files": [
                {"name": f.name, "content_b64": base64.b64encode(f.data).decode()}
                for f in self.files
            ],
            "symlinks": [s.record() for s in self.symlinks],
        }

    @classmethod
    def from_pending(cls, rec: dict | None) -> DetailsSpec:
        rec = rec or {}
        return cls(
            files=[
                FileSpec(tuple(f["name"].split("/")), base64.b64decode(f["content_b64"]))
                for f in rec.get("files", [])
            ],
            symlinks=[
                SymlinkSpec(tuple(s["name"].split("/")), s["source_path"], s.get("dataset_uuid"))
                for s in rec.get("symlinks", [])
            ],
        )


def parse_details(details: Any, symlink_roots: list[str]) -> DetailsSpec:
    """Validate ``workspace_details`` from a request (files, symlinks, renames); raise 400."""
    if details is None:
        return DetailsSpec()
    if not isinstance(details, dict):
        raise BadRequest("Workspace details not JSON.")
    files, symlinks, renames = (
        [] if details.get(key) is None else details[key] for key in ("files", "symlinks", "renames")
    )
    for key, val in (("files", files), ("symlinks", symlinks), ("renames", renames)):
        if not isinstance(val, list):  # UWS's text (§1.4)
            raise BadRequest(
                f"'{key}' index must contain a list.",
                detail=f"workspace_details.{key} must be a list.",
            )
    links = [_parse_symlink(i, s, symlink_roots) for i, s in enumerate(symlinks)]
    spec = DetailsSpec(
        files=[_parse_file(i, f) for i, f in enumerate(files)],
        symlinks=[s for s in links if isinstance(s, SymlinkSpec)],
        renames=[_parse_rename(i, r) for i, r in enumerate(renames)],
        datasets=[s for s in links if isinstance(s, DatasetLinkSpec)],
    )
    check_distinct_targets(
        [f.parts for f in spec.files] + [s.parts for s in links] + [d for _, d in spec.renames]
    )
    return spec


def _parse_file(i: int, f: Any) -> FileSpec:
    if not isinstance(f, dict):
        raise BadRequest(
            f"workspace_details.files[{i}] must be an object with 'name' and 'content'."
        )
    parts = uws_relpath(
        f.get("name"),
        "file name",
        dots="File name cannot contain double dots.",
        absolute="Invalid file path specified",
    )
    content = f.get("content", "")
    encoding = f.get("encoding", "utf-8")
    if not isinstance(content, str):
        raise BadRequest(f"workspace_details.files[{i}].content must be a string.")
    if encoding == "utf-8":
        return FileSpec(parts, content.encode("utf-8", "surrogatepass"))
    if encoding != "base64":
        raise BadRequest(f"workspace_details.files[{i}].encoding must be 'utf-8' or 'base64'.")
    try:
        return FileSpec(parts, base64.b64decode(content, validate=True))
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"workspace_details.files[{i}].content is not valid base64.") from e


def _parse_symlink(i: int, s: Any, symlink_roots: list[str]) -> SymlinkSpec | DatasetLinkSpec:
    if not isinstance(s, dict):
        raise BadRequest(
            f"workspace_details.symlinks[{i}] must be an object with 'name' and 'source_path' "
            "(or 'dataset_uuid')."
        )
    parts = uws_relpath(
        s.get("name"),
        "symlink name",
        dots="Symlink name cannot contain double dots.",
        absolute="Invalid symlink destination path specified",
    )
    uuid = s.get("dataset_uuid")
    if uuid is None:
        return SymlinkSpec(parts, check_symlink_source(s.get("source_path"), symlink_roots))
    if s.get("source_path") is not None:
        raise BadRequest(
            f"workspace_details.symlinks[{i}] has both 'source_path' and 'dataset_uuid'; "
            "give one of them."
        )
    return DatasetLinkSpec(parts, check_dataset_id(uuid, f"workspace_details.symlinks[{i}]"))


def check_dataset_id(value: Any, where: str) -> str:
    """`value` if it is a dataset id (a UUID, dashes optional), else a 400: nothing path-like
    ever reaches a resolver's template or the lookup service."""
    if isinstance(value, str) and DATASET_ID.fullmatch(value):
        return value
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise BadRequest(
        f"Invalid dataset_uuid {shown} in {where}: a dataset id is a UUID (32 hexadecimal "
        "digits, dashes allowed)."
    )


def _parse_rename(i: int, r: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(r, dict):
        raise BadRequest(
            f"workspace_details.renames[{i}] must be an object with 'name' and 'new_name'."
        )
    return (
        split_relpath(r.get("name"), "file name"),
        split_relpath(r.get("new_name"), "new file name"),
    )


def spec_counts(spec: DetailsSpec) -> dict[str, int]:
    """What a request wrote, as counts (for the audit log: names and contents are not copied)."""
    counts = {
        "files": len(spec.files),
        "symlinks": len(spec.symlinks) + len(spec.datasets),
        "datasets": len(spec.datasets) + sum(s.dataset_uuid is not None for s in spec.symlinks),
        "renames": len(spec.renames),
    }
    return {k: v for k, v in counts.items() if v}


def _str_field(body: dict, key: str, *, required: bool, max_len: int | None = None) -> str | None:
    val = body.get(key)
    if val is None:
        if required:
            raise BadRequest("Missing required fields.")
        return None
    if not isinstance(val, str):
        raise BadRequest(f"'{key}' must be a string.")
    if max_len and len(val) > max_len:
        raise BadRequest(f"'{key}' is longer than {max_len} characters.")
    if "\x00" in val:
        raise BadRequest(f"'{key}' contains a NUL character.")
    return val


def check_job_type(job_type: Any, job_types: Container[str]) -> str | None:
    """A workspace's default job type: one this hub offers, or None ("" is none, as in UWS)."""
    if job_type is None or job_type == "":
        return None
    if not isinstance(job_type, str) or job_type not in job_types:
        raise BadRequest(f"{job_type} is not in the list of available job types.")
    return job_type


@dataclass(frozen=True)
class WorkspaceSpec:
    """A checked create or update request. On an update, None means "leave as it is" (and
    `job_type_given` tells a default job type cleared with null from one not sent).
    `dataset_token` is the caller's ``globus_groups_token`` while dataset links wait to be
    resolved (never shown, recorded or compared)."""

    name: str | None
    description: str | None
    default_job_type: str | None
    job_type_given: bool
    details: DetailsSpec
    dataset_token: Any = field(default=None, repr=False, compare=False)

    def resolved(self, details: DetailsSpec) -> WorkspaceSpec:
        """This request with its dataset links resolved into `details` (and the token gone)."""
        return dataclasses.replace(self, details=details, dataset_token=None)

    @classmethod
    def parse(
        cls,
        body: Any,
        *,
        creating: bool,
        job_types: Container[str],
        symlink_roots: list[str],
    ) -> WorkspaceSpec:
        """Check a request body (a create needs a name and a description; only an update may
        rename files)."""
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        name = _str_field(body, "name", required=creating, max_len=NAME_MAX)
        description = _str_field(body, "description", required=creating, max_len=DESCRIPTION_MAX)
        default_job_type = check_job_type(body.get("default_job_type"), job_types)
        details = parse_details(body.get("workspace_details"), symlink_roots)
        if creating and details.renames:
            raise BadRequest("renames are only valid when updating a workspace.")
        token = _dataset_token(body) if details.datasets else None
        return cls(name, description, default_job_type, "default_job_type" in body, details, token)


def _dataset_token(body: dict) -> Any:
    """The ``globus_groups_token`` sent for dataset links: top-level in the body, or inside
    ``workspace_details`` (where UWS read it and portal-ui puts it). Checked when used."""
    token = body.get("globus_groups_token")
    details = body.get("workspace_details")
    if not token and isinstance(details, dict):
        token = details.get("globus_groups_token")
    return token or None
