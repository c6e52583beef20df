"""A job row's transitions, shared by the service (`jobs.manager`) and the hub's spawners
(`spawners.jobctx`): the current-details bookkeeping, a stop someone asked for, and the end.
Pure database work on rows the caller holds; nothing here talks to the hub or Slurm."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from .. import audit
from ..db.models import Job, JobStatus, utcnow

J = JobStatus
#: a stop to ask the hub for: (owner's hub name, job id, server name)
Stop = tuple[str, int, str | None]
RUNNING_OR_PENDING = (J.PENDING.value, J.RUNNING.value)
ENDED = (J.COMPLETE.value, J.FAILED.value)


def server_name(job_id: int) -> str:
    return f"job-{job_id}"


def core_seconds(start: dt.datetime | None, end: dt.datetime | None, cpus: int) -> int:
    if not start or not end:
        return 0
    return max(0, int((end - start).total_seconds())) * max(1, cpus)


#: current_job_details that hold only while a job waits in the queue
WAITING_ONLY = ("start_estimate",)


def set_current(job: Job, **fields: Any) -> None:
    """Update job_details.current_job_details (reassigned, so the JSON change is saved); a
    field set to None among `WAITING_ONLY` is removed rather than kept as null."""
    details = dict(job.job_details or {})
    current = dict(details.get("current_job_details") or {})
    current.update(fields)
    for key in WAITING_ONLY:
        if key in fields and fields[key] is None:
            current.pop(key, None)
    details["current_job_details"] = current
    job.job_details = details


def begin_stop(
    session: Session,
    job: Job,
    owner: str | None,
    message: str,
    *,
    via: str | None = None,
    actor: audit.Actor | None = None,
    reason: str | None = None,
) -> None:
    """A stop someone asked for: the job becomes ``stopping`` with `message`, and ``job.stop``
    is audited (by the session's actor, or `actor`) in the caller's transaction. Used by the
    API's stop and by the spawner for stops asked through the hub (``via="hub"``). A `reason`
    (e.g. an idle stop) is kept as the message the job ends with (see `end_job`)."""
    job.status = J.STOPPING.value
    set_current(
        job, message=message, start_estimate=None, **({"stop_reason": reason} if reason else {})
    )
    details: dict[str, Any] = {"workspace_id": job.workspace_id}
    if via:
        details["via"] = via
    if reason:
        details["reason"] = reason
    audit.record(session, "job.stop", user=owner, target_id=job.id, details=details, actor=actor)


def end_job(job: Job, status: str, message: str, when: dt.datetime | None = None) -> None:
    """Record the end of a job (idempotent for ended jobs). A stopping job stopped for a reason
    (`begin_stop`'s `reason`) that completes ends with that reason as its message."""
    if job.status in ENDED:
        return
    reason = ((job.job_details or {}).get("current_job_details") or {}).get("stop_reason")
    if reason and job.status == J.STOPPING.value and status == J.COMPLETE.value:
        message = reason
    job.status = status
    job.datetime_end = when or utcnow()
    job.core_seconds = core_seconds(job.datetime_start, job.datetime_end, job.cpus)
    job.status_message = message if status == J.FAILED.value else None
    set_current(job, message=message, time_left=None, start_estimate=None)
