"""API representations (UWS field names) and JSON encoding."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from ..db.models import Workspace


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
        "workspace_details": ws.workspace_details,
        "status": ws.status,
        "status_message": ws.status_message,
        "default_job_type": ws.default_job_type,
    }


def core_hours(core_seconds: int) -> str:
    """Core-seconds as the decimal string of core-hours UWS clients read (5 places)."""
    return str((Decimal(core_seconds) / Decimal(3600)).quantize(Decimal("0.00001")))
