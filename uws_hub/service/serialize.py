"""API representations (UWS field names) and JSON encoding."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from ..db.models import Job, JobStatus, Workspace, utcnow


def isoformat(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC with milliseconds and 'Z', as the UWS (Django) API wrote them."""
    if value is None:
        return None
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime):
        return isoformat(obj)
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps(payload: Any) -> str:
    return json.dumps(payload, default=_default, separators=(",", ":"))


def workspace(ws: Workspace) -> dict:
    return {
        "id": ws.id,
        "name": ws.name,
        "description": ws.description,
        "disk_space": ws.disk_space,
        "datetime_created": isoformat(ws.datetime_created),
        "datetime_last_modified": isoformat(ws.datetime_last_modified),
        "datetime_last_job_launch": isoformat(ws.datetime_last_job_launch),
        "datetime_scanned": isoformat(ws.datetime_scanned),
        "workspace_details": ws.workspace_details,
        "status": ws.status,
        "status_message": ws.status_message,
        "default_job_type": ws.default_job_type,
    }


def last_job(j: Job | None) -> dict | None:
    """A workspace's most recent job, as its listing shows it (null: none yet)."""
    if j is None:
        return None
    return {
        "id": j.id,
        "job_type": j.job_type,
        "resource": j.resource,
        "status": j.status,
        "datetime_created": isoformat(j.datetime_created),
        "datetime_start": isoformat(j.datetime_start),
        "datetime_end": isoformat(j.datetime_end),
    }


def core_hours(core_seconds: int) -> str:
    """Core-seconds as the decimal string of core-hours UWS clients read (5 places)."""
    return str((Decimal(core_seconds) / Decimal(3600)).quantize(Decimal("0.00001")))


def job(j: Job, url_domain: str = "") -> dict:
    """A job in the UWS shape; `url_domain` completes connection_details for clients."""
    details = dict(j.job_details or {})
    current = dict(details.get("current_job_details") or {})
    conn = current.get("connection_details")
    if conn:
        current["connection_details"] = {**conn, "url_domain": url_domain}
    if j.status == JobStatus.RUNNING.value and j.datetime_start and j.time_limit_s:
        left = j.time_limit_s - (utcnow() - j.datetime_start).total_seconds()
        current.setdefault("time_left", max(0, int(left)))
    details["current_job_details"] = current
    seconds = j.core_seconds
    if j.status == JobStatus.RUNNING.value and j.datetime_start:  # the running burn
        seconds = int((utcnow() - j.datetime_start).total_seconds()) * max(1, j.cpus)
    return {
        "id": j.id,
        "workspace_id": j.workspace_id,
        "resource_job_id": j.resource_job_id if j.resource_job_id is not None else -1,
        "job_type": j.job_type,
        "status": j.status,
        "status_message": j.status_message,
        "datetime_created": isoformat(j.datetime_created),
        "datetime_start": isoformat(j.datetime_start),
        "datetime_end": isoformat(j.datetime_end),
        "core_hours": core_hours(seconds),
        "resource": j.resource,
        "cluster": j.cluster,
        "resource_options": j.resource_options,
        "job_details": details,
    }
