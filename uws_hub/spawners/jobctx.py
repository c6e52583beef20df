"""The hub side of a job: load and check the Job row a spawn names, and write the facts the
spawner learns (running, host, scheduler id, messages, end, core-seconds).

The uws service owns the database; a spawner writes only the row of the job it runs. These
functions block (small single-row queries): spawners call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from jupyterhub.spawner import SpawnException
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..config import UWS
from ..db.models import Job, JobStatus, User, Workspace, WorkspaceStatus, utcnow
from ..db.session import shared_sessions
from ..errors import UWSError
from ..identity import PosixAccount
from ..jobs.state import RUNNING_OR_PENDING, begin_stop, end_job, set_current
from ..jobs.types import JobType, Resource
from ..users.accounts import account_for

J = JobStatus
_SERVER = re.compile(r"^job-(\d+)$")


def sessions(settings: UWS) -> sessionmaker[Session]:
    """Sessions on the uws database, shared by the spawners of this hub process."""
    return shared_sessions(settings.db_url, settings.db_kwargs)


@dataclass(frozen=True)
class JobContext:
    """Everything a spawner needs about the job it starts, checked."""

    job_id: int
    hub_user: str
    account: PosixAccount
    workspace_id: int
    workspace_path: str
    job_type: JobType
    resource: Resource
    cpus: int
    memory_mb: int | None
    gpus: int
    time_limit_s: int
    options: dict = field(default_factory=dict)
    created: dt.datetime | None = None

    @property
    def log_dir(self) -> str:
        return os.path.join(self.workspace_path, ".jobs")


def refuse(message: str, *, reason: str, status: int = 400) -> SpawnException:
    """A refused spawn: `message` is what the person sees on the hub's pages."""
    return SpawnException(message, reason=reason, status_code=status)


def job_id_for(server_name: str, user_options: dict | None) -> int:
    """The job a spawn is for: from user_options["job_id"], which must match the server name."""
    m = _SERVER.match(server_name or "")
    if not m:
        raise refuse(
            "uws_hub runs servers as jobs in workspaces: start one from the Workspaces page (/services/uws/).",
            reason="no_job",
        )
    from_name = int(m.group(1))
    raw = (user_options or {}).get("job_id", from_name)
    try:
        job_id = int(raw)
    except (TypeError, ValueError) as e:
        raise refuse(f"The job id {raw!r} is not a number.", reason="bad_job") from e
    if job_id != from_name:
        raise refuse(
            f"Server {server_name} is for job {from_name}, not job {job_id}.", reason="bad_job"
        )
    return job_id


def load_job(
    settings: UWS, hub_user: str, server_name: str, user_options: dict | None
) -> JobContext:
    """Load the job a spawn names and check it may start here; raise SpawnException if not.

    The checks, in order: the job row exists, belongs to `hub_user` and is pending; its
    workspace is available; its job type and resource are still configured; its owner has an
    account; the core-hour quota allows it; its workspace directory is the owner's."""
    job_id = job_id_for(server_name, user_options)
    with sessions(settings)() as session:
        job = _job_row(session, job_id)
        owner = _owner(session, job, hub_user)
        _check_pending(job)
        ws = _available_workspace(session, job)
        job_type, resource = _configured(settings, job)
        account = _account(settings, owner)
        _check_quota(settings, session, owner, job)
        path = _workspace_dir(settings, ws, account, job_id)
        return JobContext(
            job_id=job.id,
            hub_user=hub_user,
            account=account,
            workspace_id=ws.id,
            workspace_path=path,
            job_type=job_type,
            resource=resource,
            cpus=job.cpus,
            memory_mb=job.memory_mb,
            gpus=job.gpus,
            time_limit_s=job.time_limit_s or 0,
            options=dict(job.resource_options or {}),
            created=job.datetime_created,
        )


def _job_row(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise refuse(
            f"There is no job {job_id}. Start jobs from a workspace.",
            reason="bad_job",
            status=404,
        )
    return job


def _owner(session: Session, job: Job, hub_user: str) -> User:
    """The job's owner, who must be the hub user spawning it."""
    owner = session.get(User, job.user_id)
    if owner is None or owner.name != hub_user:
        raise refuse(
            f"Job {job.id} does not belong to {hub_user}.", reason="foreign_job", status=403
        )
    return owner


def _check_pending(job: Job) -> None:
    if job.status != J.PENDING.value:
        raise refuse(
            f"Job {job.id} is {job.status}; start a new job from its workspace.",
            reason="job_not_pending",
            status=409,
        )


def _available_workspace(session: Session, job: Job) -> Workspace:
    ws = session.get(Workspace, job.workspace_id)
    if ws is None or ws.status not in (WorkspaceStatus.IDLE.value, WorkspaceStatus.ACTIVE.value):
        raise refuse(
            f"The workspace of job {job.id} is not available.",
            reason="workspace_unavailable",
            status=409,
        )
    return ws


def _configured(settings: UWS, job: Job) -> tuple[JobType, Resource]:
    """The job's job type and resource, if this hub still offers them."""
    job_type = settings.job_type_map.get(job.job_type)
    resource = settings.resource_map.get(job.resource)
    if job_type is None or resource is None:
        raise refuse(
            f"Job {job.id} asks for job type {job.job_type!r} on resource {job.resource!r}, which this hub no "
            "longer offers; start a new job.",
            reason="bad_config",
        )
    return job_type, resource


def _account(settings: UWS, owner: User) -> PosixAccount:
    try:
        return account_for(owner, single_account=settings.single_account)
    except UWSError as e:
        raise refuse(e.message, reason="no_account", status=403) from e


def _check_quota(settings: UWS, session: Session, owner: User, job: Job) -> None:
    """The same core-hour check as the API's, for starts from the hub's own pages."""
    if job.status != J.PENDING.value or job.datetime_start:
        return
    from ..quotas import QuotaManager

    try:
        QuotaManager(settings).check_core_hours(
            session, owner, job.cpus, job.time_limit_s or 0, exclude_job_id=job.id
        )
    except UWSError as e:
        raise refuse(e.message, reason="quota", status=403) from e


def _workspace_dir(settings: UWS, ws: Workspace, account: PosixAccount, job_id: int) -> str:
    """The workspace's directory (real path): directly under the owner's directory, a
    directory, and (unless single-account) owned by the owner's account."""
    user_root = os.path.realpath(os.path.join(settings.root_dir, account.name))
    path = os.path.realpath(os.path.join(settings.root_dir, ws.file_path))
    if not ws.file_path or os.path.dirname(path) != user_root or not os.path.isdir(path):
        raise refuse(
            f"The workspace directory of job {job_id} is not under {user_root}; ask an administrator.",
            reason="bad_workspace",
            status=500,
        )
    st = os.stat(path)
    if not settings.single_account and st.st_uid != account.uid:
        raise refuse(
            f"The workspace directory of job {job_id} does not belong to {account.name}; ask an administrator.",
            reason="bad_workspace",
            status=500,
        )
    return path


def update_job(settings: UWS, job_id: int, **changes: Any) -> None:
    """Write fields of the job row and, for ``message``/``progress``/``time_left``/
    ``connection_details``/``proxy_details``/metrics, its job_details; an ended job is left alone
    unless ``end`` is given."""
    with sessions(settings)() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        end = changes.pop("end", None)
        metrics = changes.pop("metrics", None)
        current = {
            k: changes.pop(k)
            for k in (
                "message",
                "progress",
                "time_left",
                "connection_details",
                "proxy_details",
                "node",
                "start_estimate",
            )
            if k in changes
        }
        if end is not None:
            status, message, when, core = end
            end_job(job, status, message, when)
            if core is not None:
                job.core_seconds = core
        elif job.status in (J.COMPLETE.value, J.FAILED.value):
            return
        if changes.get("status") == J.RUNNING.value and job.status != J.PENDING.value:
            changes.pop("status")  # stopping stays stopping (its stop is on the way)
        for key, value in changes.items():
            setattr(job, key, value)
        if current:
            set_current(job, **current)
        if metrics:
            details = dict(job.job_details or {})
            details["metrics"] = {**(details.get("metrics") or {}), **metrics}
            job.job_details = details
        session.commit()


def mark_hub_stop(settings: UWS, job_id: int, requester: audit.Actor) -> bool:
    """A stop asked through the hub (its API, admin page, home page, a culler): a pending or
    running job becomes ``stopping`` and ``job.stop`` is audited with the requester, in one
    transaction on the locked row. False (nothing written) if the job is already stopping
    (asked through uws: audited there) or has ended."""
    with sessions(settings)() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status not in RUNNING_OR_PENDING:
            return False
        owner = session.get(User, job.user_id)
        begin_stop(
            session,
            job,
            owner.name if owner else None,
            f"Stopping: asked through the hub by {requester.name}.",
            via="hub",
            actor=requester,
        )
        session.commit()
        return True


def job_cluster_id(settings: UWS, job_id: int) -> str | None:
    """The Slurm cluster of a job: its record's, else its resource's (`slurm.spec.job_cluster`)."""
    from ..slurm.spec import job_cluster

    with sessions(settings)() as session:
        job = session.get(Job, job_id)
        return job_cluster(settings, job.resource, job.cluster) if job else None


def job_status(settings: UWS, job_id: int) -> str | None:
    """The job's status now (None: no such job)."""
    with sessions(settings)() as session:
        job = session.get(Job, job_id)
        return job.status if job else None


def now() -> dt.datetime:
    return utcnow()
