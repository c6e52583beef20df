"""Jobs on the service side: start, stop, list, and keeping job records in line with the hub.

A job is a named server ``job-<id>`` of the workspace owner. Starting one records the Job row
(validated job type, resource and options), then asks the hub to start the server with
``user_options = {"job_id": id}``; the spawner (in the hub) loads everything else from the row and
writes the facts it learns (running, host, Slurm id, end, core-hours). `sync` runs periodically
and after restarts: it asks the hub once which servers exist and settles rows the hub no longer
backs, retries stops, enforces local time limits and removes ended jobs' named servers.
Nothing here knows about HTTP handlers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram
from sqlalchemy import false, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..db.models import (
    LIVE_JOB_STATUSES,
    Job,
    JobStatus,
    User,
    Workspace,
    WorkspaceStatus,
    utcnow,
)
from ..errors import AccountMissing, BadRequest, HubAPIError, NotFound, UWSError
from ..identity import resolve_account
from ..ids import parse_id
from ..slurm.spec import job_cluster
from .launch import LaunchPlan, plan_launch
from .specs import StartSpec
from .state import (
    ENDED,
    RUNNING_OR_PENDING,
    Stop,
    begin_stop,
    end_job,
    server_name,
    set_current,
)

if TYPE_CHECKING:
    from ..config import UWS
    from ..quotas import QuotaManager
    from ..slurm.clusters import Cluster

log = logging.getLogger("uws_hub.jobs")
J = JobStatus

#: a job's start in two parts, counted once per job when the service sees it running
JOB_QUEUE_WAIT = Histogram(
    "uws_job_queue_wait_seconds",
    "Time from a job's request until its process runs (local) or its Slurm job runs on a node",
    ["resource"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
)
JOB_SERVER_START = Histogram(
    "uws_job_server_start_seconds",
    "Time from a job's process running until its server answers (the server's own start-up)",
    ["resource"],
    buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 600),
)


def _retrieve_failure(request: asyncio.Future) -> None:
    """A start request that failed after its caller had its answer: recorded on the job."""
    if not request.cancelled() and (e := request.exception()) is not None:
        log.warning("%s", getattr(e, "message", e))


@dataclass
class LiveJob:
    """What sync decides on: a live row, read in one short transaction."""

    id: int
    username: str
    server_name: str
    status: str
    kind: str
    created: dt.datetime
    started: dt.datetime | None
    time_limit_s: int | None
    cpus: int
    resource_job_id: int | None
    #: Slurm: the cluster that runs it (its resource's if the row says none)
    cluster: str | None = None
    #: the owner as recorded (name, posix_name, uid, gid): slurmrestd cancels as their account
    owner: tuple | None = None

    @classmethod
    def of(cls, job: Job, user: User, settings: UWS) -> LiveJob:
        username = user.name
        resource = settings.resource_map.get(job.resource)
        return cls(
            id=job.id,
            username=username,
            server_name=job.server_name or server_name(job.id),
            status=job.status,
            kind=resource.kind if resource is not None else "",
            created=job.datetime_created,
            started=job.datetime_start,
            time_limit_s=job.time_limit_s,
            cpus=job.cpus,
            resource_job_id=job.resource_job_id,
            cluster=job_cluster(settings, job.resource, job.cluster),
            owner=(user.name, user.posix_name, user.uid, user.gid),
        )

    def account(self, settings: UWS) -> str | None:
        """The POSIX account the job runs as (as its spawner resolved it), None if none."""
        name, posix_name, uid, gid = self.owner or (self.username, None, None, None)
        try:
            return resolve_account(
                name,
                posix_name=posix_name,
                uid=uid,
                gid=gid,
                single_account=settings.single_account,
            ).name
        except AccountMissing:
            return None


def _signal_local_job(pid: int, job_id: int) -> bool:
    """SIGTERM the process group of local job `job_id` if `pid` is still that job's server
    (its environment names the job: a recycled pid is left alone). True if it was signalled."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return False  # gone (or not ours to read: then not ours to kill)
    if f"UWS_JOB_ID={job_id}".encode() not in environ:
        return False
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except OSError:
        return False
    log.warning("job %s: its server (pid %s) ran without the hub; sent SIGTERM", job_id, pid)
    return True


def _end_orphan(row: Job, core: int | None) -> None:
    """End a live row the hub no longer runs, saying what happened to it."""
    now = utcnow()
    orphaned = (row.job_details or {}).get("current_job_details", {}).get("orphaned")
    if row.status == J.STOPPING.value and orphaned:
        message = f"The hub no longer ran this job's server; its {orphaned} was stopped."
        end_job(row, J.FAILED.value, message, now)
    elif row.status == J.STOPPING.value:
        end_job(row, J.COMPLETE.value, "Stopped.", now)
    elif row.status == J.PENDING.value:
        end_job(row, J.FAILED.value, "The server did not start; the hub has no record of it.", now)
    else:
        end_job(row, J.FAILED.value, "The server is gone; the hub no longer runs it.", now)
    if core is not None:
        row.core_seconds = core


class JobManager:
    def __init__(self, settings: UWS, db: sessionmaker[Session], hub, *, quotas: QuotaManager):
        self.settings = settings
        self.db = db
        self.hub = hub  # the hub's REST API (`service.hubclient.HubClient`)
        self.quotas = quotas  # core-hour checks at start
        self._stop_sent: dict[int, float] = {}
        #: jobs whose start request the hub has not answered yet, and when it answered the others
        self._starting: set[int] = set()
        self._start_answered: dict[int, dt.datetime] = {}

    # ---- queries -----------------------------------------------------------------------

    @staticmethod
    def _of_kept_workspaces():
        """Jobs whose workspace is not deleted: UWS deleted a workspace's jobs with it, so its
        clients never see them again (uws_hub keeps them for the usage report and quotas)."""
        kept = select(Workspace.id).where(Workspace.status != WorkspaceStatus.DELETED.value)
        return Job.workspace_id.in_(kept)

    def list_query(self, user: User, filters: dict[str, str]):
        q = select(Job).where(Job.user_id == user.id, self._of_kept_workspaces())
        for key in ("workspace_id", "resource_job_id"):
            if key in filters:
                value = parse_id(filters[key], key)
                q = q.where(getattr(Job, key) == value if value is not None else false())
        for key in ("job_type", "status"):
            if key in filters:
                q = q.where(getattr(Job, key) == filters[key])
        return q.order_by(Job.id)

    def list_all_query(self, filters: dict[str, str], limit: int, offset: int):
        """Everyone's jobs with their owners' names (operators): live ones first, then newest."""
        q = select(Job, User.name).join(User, User.id == Job.user_id)
        for key in ("job_type", "status"):
            if key in filters:
                q = q.where(getattr(Job, key) == filters[key])
        live = Job.status.in_(RUNNING_OR_PENDING)
        return q.order_by(live.desc(), Job.id.desc()).limit(limit).offset(offset)

    def get(self, session: Session, user: User, job_id: Any) -> Job:
        given, job_id = job_id, parse_id(job_id, "Job id")
        if job_id is None:
            raise NotFound(f"Job {given} not found for user.")
        job = session.scalar(
            select(Job).where(Job.id == job_id, Job.user_id == user.id, self._of_kept_workspaces())
        )
        if job is None:
            raise NotFound(f"Job {job_id} not found for user.")
        return job

    # ---- start ----------------------------------------------------------------------------

    def plan(self, ws: Workspace, request: StartSpec) -> LaunchPlan:
        """Resolve a start request against the workspace's default job type and this hub's
        job types, resources and parameters (400 / 422)."""
        s = self.settings
        job_type_id = request.job_type or ws.default_job_type or s.default_job_type
        if not job_type_id:
            raise BadRequest("Missing job_type and no default job type set on workspace.")
        if job_type_id not in s.job_type_map:
            raise BadRequest(f"{job_type_id} is not in the list of available job types.")
        job_type = s.job_type_map[job_type_id]
        resource_id = request.resource or job_type.resources[0]
        if resource_id not in job_type.resources:
            raise BadRequest(
                f"Resource {resource_id!r} cannot run job type {job_type_id!r}; choose one of {list(job_type.resources)}."
            )
        return plan_launch(
            job_type, s.resource_map[resource_id], s.parameter_list, request.resource_options
        )

    async def start(self, session: Session, user: User, ws: Workspace, spec: StartSpec) -> Job:
        """Start a job in `ws`: check the request, the workspace's running jobs and the
        core-hour quota, record the Job (``pending``) and ask the hub to start its server.
        Answers within ``c.UWS.hub_answer_wait`` (the start goes on; the job row says how it
        ends); a refusal by the hub at once is raised."""
        if ws.status not in (WorkspaceStatus.IDLE.value, WorkspaceStatus.ACTIVE.value):
            raise BadRequest(
                f"Workspace {ws.id} is {ws.status}; jobs start in idle or active workspaces."
            )
        plan = self.plan(ws, spec)
        self._check_room(session, user, ws, plan)
        job = self._record_start(session, user, ws, plan, spec.job_details)
        session.commit()
        await self._ask_hub(user.name, job, ws.id)
        session.refresh(job)
        log.info(
            "job %s (%s on %s) requested for %s in workspace %s",
            job.id,
            plan.job_type,
            plan.resource,
            user.name,
            ws.id,
        )
        return job

    def _check_room(self, session: Session, user: User, ws: Workspace, plan: LaunchPlan) -> None:
        """At most c.UWS.max_jobs_per_workspace live jobs, and the core-hours to run this one."""
        live = session.scalars(
            select(Job.id)
            .where(Job.workspace_id == ws.id, Job.status.in_(RUNNING_OR_PENDING))
            .order_by(Job.id)
        ).all()
        if len(live) >= self.settings.max_jobs_per_workspace:
            raise BadRequest(
                f"Workspace {ws.id} already has a running job (job {live[0]}); stop it first or wait for it to end."
            )
        self.quotas.check_core_hours(session, user, plan.cpus, plan.time_limit_min * 60)

    @staticmethod
    def _record_start(
        session: Session, user: User, ws: Workspace, plan: LaunchPlan, job_details: dict
    ) -> Job:
        """The pending Job row, the workspace active, ``job.start`` audited (not committed)."""
        now = utcnow()
        job = Job(
            user_id=user.id,
            workspace_id=ws.id,
            job_type=plan.job_type,
            resource=plan.resource,
            status=J.PENDING.value,
            datetime_created=now,
            cpus=plan.cpus,
            memory_mb=plan.memory_mb,
            gpus=plan.gpus,
            time_limit_s=plan.time_limit_min * 60,
            resource_options=plan.options,
            job_details={
                "metrics": {},
                "request_job_details": job_details,
                "current_job_details": {"message": "Starting."},
            },
        )
        session.add(job)
        session.flush()
        job.server_name = server_name(job.id)
        ws.datetime_last_job_launch = now
        ws.status = WorkspaceStatus.ACTIVE.value
        audit.record(
            session,
            "job.start",
            user=user.name,
            target_id=job.id,
            details={
                "workspace_id": ws.id,
                "job_type": plan.job_type,
                "resource": plan.resource,
                "cpus": plan.cpus,
                "time_limit_min": plan.time_limit_min,
            },
        )
        return job

    async def _ask_hub(self, username: str, job: Job, ws_id: int) -> None:
        """Ask the hub to start the job's server; wait at most c.UWS.hub_answer_wait."""
        request = asyncio.ensure_future(
            self._request_start(username, job.id, job.server_name, ws_id)
        )
        try:
            # the hub answers once the server is up or its slow_spawn_timeout has passed: a
            # caller waits at most hub_answer_wait, then has the job pending (the request goes
            # on; the job record says how it ends). Refusals come at once, and are the caller's.
            await asyncio.wait_for(asyncio.shield(request), self.settings.hub_answer_wait)
        except asyncio.TimeoutError:
            request.add_done_callback(_retrieve_failure)

    async def _request_start(self, username: str, job_id: int, name: str, ws_id: int) -> None:
        """Ask the hub to start the job's server. A refusal ends the job failed, saying why, and
        is raised (UWSError) for a caller still waiting."""
        # while the hub takes the request (seconds, under load), the job is not in its server
        # list yet: the job sync must not take it for an orphan (see `sync`)
        self._starting.add(job_id)
        try:
            await self.hub.start_server(username, name, {"job_id": job_id})
            self._start_answered[job_id] = utcnow()
        except HubAPIError as e:
            if e.status == 429:  # the hub's concurrent_spawn_limit
                message, status = (
                    "The hub is starting too many jobs at once right now; try again in a minute.",
                    429,
                )
            else:
                message, status = e.message, 400 if e.status < 500 else 500
            if status >= 500:
                # the spawn began and failed (or the hub's Stop interrupted it): the spawner
                # records why on the job, which the caller gets (as UWS, a start is answered
                # with its job; a server the hub lost is settled by the job sync)
                log.info("job %s: the hub's start ended with %s: %s", job_id, e.status, message)
                return
            with self.db() as session:  # refused before any spawn: the job ends here
                job = session.get(Job, job_id)
                if job is not None and job.status in RUNNING_OR_PENDING:
                    end_job(job, J.FAILED.value, f"The hub did not start the job: {message}")
                    self._settle_workspace(session, ws_id)
                    session.commit()
            raise UWSError(
                f"Job {job_id} could not be started: {message}", status_code=status
            ) from e
        finally:
            self._starting.discard(job_id)

    # ---- stop -----------------------------------------------------------------------------

    async def stop(self, session: Session, user: User, job: Job) -> Job:
        """Stop a pending or running job: it becomes ``stopping`` (audited) and the hub is
        asked to stop its server; answers within c.UWS.hub_answer_wait, the job row says how
        it ends."""
        if job.status not in RUNNING_OR_PENDING:
            raise BadRequest("This job is not running or pending.")
        begin_stop(session, job, user.name, "Stopping.")
        session.commit()
        # the job is `stopping` until the hub confirms; a failed request is retried by the sync
        request = asyncio.ensure_future(self._send_stop(user.name, job.id, job.server_name))
        try:
            await asyncio.wait_for(asyncio.shield(request), self.settings.hub_answer_wait)
        except asyncio.TimeoutError:
            pass
        return job

    # ---- live shares (JupyterHub's shares of the job's server) ---------------------------------

    async def grant_live_share(self, session: Session, user: User, job: Job, target: dict) -> dict:
        """Give `target` ({"user": name} or {"group": name}) access to the running job through
        the hub; the hub's errors (HubAPIError) are the caller's to explain."""
        session.commit()  # hold no database connection while the hub works
        share = await self.hub.grant_share(user.name, job.server_name, target)
        audit.record(session, "job.share", user=user.name, target_id=job.id, details=target)
        session.commit()
        return share

    async def revoke_live_share(self, session: Session, user: User, job: Job, target: dict) -> None:
        session.commit()
        await self.hub.revoke_share(user.name, job.server_name, target)
        audit.record(session, "job.unshare", user=user.name, target_id=job.id, details=target)
        session.commit()

    async def send_stops(self, stops: list[Stop]) -> None:
        """Ask the hub to stop the servers of jobs already marked ``stopping`` (owner, job id,
        server name), e.g. by the disk quota watch; a failed request is retried by the sync."""
        await asyncio.gather(*(self._send_stop(u, j, n) for u, j, n in stops if n))

    async def _send_stop(self, username: str, job_id: int, name: str) -> None:
        self._stop_sent[job_id] = utcnow().timestamp()
        try:
            await self.hub.stop_server(username, name, remove=False)
        except HubAPIError as e:
            log.warning(
                "job %s: stop request to the hub failed (will retry): %s", job_id, e.message
            )

    # ---- keeping rows in line with the hub -------------------------------------------------

    async def sync(self) -> dict[str, int]:
        """One pass: settle live jobs the hub no longer runs (cancelling what still runs
        without it), retry stops, enforce local time limits, remove ended jobs' named servers.

        Rows are read in one short transaction and each change is made in its own, on a fresh
        row locked for update and only if the row is still in the state the decision was made
        on: the spawners (in the hub) write the same rows meanwhile and their facts win. Hub or
        scheduler errors skip what depends on them (nothing is concluded from a silent hub)."""
        counts = {"settled": 0, "stops": 0, "removed": 0, "timeouts": 0, "orphans": 0}
        self.observe_starts()
        live, leftovers = self._read_for_sync()
        if not live and not leftovers:
            self._settle_all()
            return counts
        now = utcnow()  # before the hub's answer: what it lists is at least this recent
        try:
            servers = await self.hub.active_servers()
        except HubAPIError as e:
            log.warning("job sync skipped: the hub did not answer (%s)", e.message)
            return counts
        for job in live:
            await self._sync_live(job, servers, now, counts)
        for job_id, username, name in leftovers:
            if (username, name) not in servers:  # else the hub is still stopping it
                await self._remove_server(job_id, username, name, counts)
        self._settle_all()
        if any(counts.values()):
            log.info("job sync: %s", counts)
        return counts

    def _read_for_sync(self) -> tuple[list[LiveJob], list[tuple[int, str, str]]]:
        """In one short transaction: the live jobs, and ended jobs whose named server is
        still to be removed (job id, user, server name; 200 at a time)."""
        with self.db() as session:
            live = [
                LiveJob.of(job, user, self.settings)
                for job, user in session.execute(
                    select(Job, User)
                    .join(User, User.id == Job.user_id)
                    .where(Job.status.in_(LIVE_JOB_STATUSES))
                ).all()
            ]
            leftovers = [
                (job.id, name, job.server_name)
                for job, name in session.execute(
                    select(Job, User.name)
                    .join(User, User.id == Job.user_id)
                    .where(
                        Job.status.in_(ENDED),
                        Job.server_removed.is_(False),
                        Job.server_name.is_not(None),
                    )
                    .limit(200)
                ).all()
            ]
        return live, leftovers

    async def _sync_live(
        self,
        job: LiveJob,
        servers: Container[tuple[str, str]],
        now: dt.datetime,
        counts: dict[str, int],
    ) -> None:
        """One live job against the hub's servers: settle it if the hub has none (after the
        grace), retry its stop, or stop it at its time limit (local jobs; Slurm enforces its
        own)."""
        grace = self.settings.job_orphan_grace
        if (job.username, job.server_name) not in servers:
            if job.id in self._starting:
                return  # the hub has not answered the start request yet
            since = max(job.created, self._start_answered.get(job.id, job.created))
            if (now - since).total_seconds() >= grace:  # else the hub may not have it yet
                await self._settle_orphan(job, counts)
            return
        if job.status == J.STOPPING.value:
            if now.timestamp() - self._stop_sent.get(job.id, 0) > grace:
                await self._send_stop(job.username, job.id, job.server_name)
                counts["stops"] += 1
        elif (
            job.status == J.RUNNING.value
            and job.kind == "local"
            and job.started
            and job.time_limit_s
            and (now - job.started).total_seconds() > job.time_limit_s
        ):
            message = f"Time limit of {job.time_limit_s // 60} minutes reached; stopping."

            def to_stopping(row: Job) -> None:
                row.status = J.STOPPING.value
                set_current(row, message=message)

            if self._transition(job.id, (J.RUNNING.value,), to_stopping):
                await self._send_stop(job.username, job.id, job.server_name)
                counts["timeouts"] += 1

    async def _remove_server(
        self, job_id: int, username: str, name: str, counts: dict[str, int]
    ) -> None:
        """Remove an ended job's named server from the hub (a 400: still stopping; next pass)."""
        try:
            await self.hub.stop_server(username, name, remove=True)
        except HubAPIError as e:
            if e.status != 400:
                log.warning("job %s: removing its named server failed: %s", job_id, e.message)
            return
        self._transition(job_id, ENDED, lambda row: setattr(row, "server_removed", True))
        self._stop_sent.pop(job_id, None)
        self._start_answered.pop(job_id, None)
        counts["removed"] += 1

    def observe_starts(self) -> int:
        """Count the start of every job that reached running since the last pass (also while
        the service was down) in the start-duration histograms, once: the row is marked first,
        so a restart never counts a start twice. Jobs that ended without starting are marked
        too (nothing to count). Returns how many starts were counted."""
        with self.db() as session:
            rows = session.execute(
                select(
                    Job.id, Job.resource, Job.datetime_created, Job.datetime_start, Job.job_details
                )
                .where(
                    Job.start_observed.is_(False),
                    or_(Job.datetime_start.is_not(None), Job.status.in_(ENDED)),
                )
                .order_by(Job.id)
                .limit(1000)
            ).all()
            if not rows:
                return 0
            session.execute(
                update(Job)
                .where(Job.id.in_([r.id for r in rows]), Job.start_observed.is_(False))
                .values(start_observed=True)
            )
            session.commit()
        counted = 0
        for r in rows:
            if r.datetime_start is None:
                continue
            metrics = (r.job_details or {}).get("metrics") or {}
            pending = metrics.get("time_pending")
            if pending is None:  # a row written before the spawner recorded its timings
                pending = max(0.0, (r.datetime_start - r.datetime_created).total_seconds())
            JOB_QUEUE_WAIT.labels(r.resource).observe(pending)
            if metrics.get("time_init") is not None:
                JOB_SERVER_START.labels(r.resource).observe(metrics["time_init"])
            counted += 1
        return counted

    def _transition(self, job_id: int, expected: tuple[str, ...], change) -> bool:
        """Apply `change` to job `job_id` if it is still in one of `expected` (row locked)."""
        with self.db() as session:
            row = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if row is None or row.status not in expected:
                return False
            change(row)
            session.commit()
            return True

    async def _settle_orphan(self, job: LiveJob, counts: dict[str, int]) -> None:
        """A live row the hub has no server for. If its Slurm job or local process still runs,
        cancel it (it would burn core-hours nobody can reach) and wait for the next pass;
        once nothing runs, end the row."""
        if job.kind == "slurm" and job.resource_job_id:
            running, core = await self._orphan_slurm_job(job)
        elif job.kind == "local" and job.resource_job_id:
            running, core = await self._orphan_process(job), None
        else:
            running, core = False, None
        if running is None:
            return  # the scheduler did not answer: conclude nothing
        if running:
            counts["orphans"] += 1
            return
        if self._transition(job.id, LIVE_JOB_STATUSES, lambda row: _end_orphan(row, core)):
            counts["settled"] += 1

    async def _orphan_slurm_job(self, job: LiveJob) -> tuple[bool | None, int | None]:
        """(whether the orphan's Slurm job still ran and is being cancelled — None if the
        scheduler did not answer, its core-seconds if it has ended)."""
        # imported here: the monitor's metrics belong in the registry only where Slurm is used
        from ..slurm.clusters import ClusterError, ClusterNotConfigured
        from ..slurm.monitor import UNKNOWN

        try:
            cluster = self.cluster(job.cluster)
        except ClusterNotConfigured as e:  # nobody can follow it any more: the row ends, saying so
            log.warning("job %s: %s; its row ends", job.id, e)
            message = f"Slurm job {job.resource_job_id}: {e}; the hub cannot follow this job."
            self._transition(
                job.id,
                LIVE_JOB_STATUSES,
                lambda row: end_job(row, J.FAILED.value, message, utcnow()),
            )
            return None, None
        except ClusterError as e:
            log.warning("job %s: %s", job.id, e)
            return None, None  # configured, not reachable as configured: conclude nothing
        info = await cluster.monitor.status(str(job.resource_job_id))
        if info.state == UNKNOWN:
            return None, None
        if not info.live:
            core = (
                info.elapsed_s * (info.cpus or job.cpus or 1)
                if info.elapsed_s is not None
                else None
            )
            return False, core
        try:  # (commands: as the service's account; slurmrestd: as the job's owner)
            owner = job.account(self.settings) if cluster.rest else None
            await cluster.cancel(owner, str(job.resource_job_id))
        except ClusterError as e:
            log.warning("job %s: cancelling Slurm job %s: %s", job.id, job.resource_job_id, e)
        self._mark_orphan_stopping(
            job.id,
            f"The hub no longer runs this job's server; cancelling Slurm job {job.resource_job_id}.",
            f"Slurm job {job.resource_job_id}",
        )
        return True, None

    async def _orphan_process(self, job: LiveJob) -> bool:
        """Whether the orphan's local process still ran (it is signalled to stop)."""
        if not await asyncio.to_thread(_signal_local_job, job.resource_job_id, job.id):
            return False
        self._mark_orphan_stopping(
            job.id,
            f"The hub no longer runs this job's server; stopping process {job.resource_job_id}.",
            f"process {job.resource_job_id}",
        )
        return True

    def _mark_orphan_stopping(self, job_id: int, message: str, what: str) -> None:
        def change(row: Job) -> None:
            row.status = J.STOPPING.value
            set_current(row, message=message, orphaned=what)

        self._transition(job_id, LIVE_JOB_STATUSES, change)

    def cluster(self, cluster_id: str | None) -> Cluster:
        """A Slurm cluster as the service sees it (its own monitor: one queue read per
        interval for all of the cluster's jobs); ClusterError if it is not configured."""
        from ..slurm.clusters import cluster_of

        return cluster_of(self.settings, cluster_id)

    def _settle_all(self) -> None:
        """Workspaces whose active/idle no longer matches their jobs (a spawner ended a job)."""
        with self.db() as session:
            has_live = (
                select(Job.id)
                .where(Job.workspace_id == Workspace.id, Job.status.in_(LIVE_JOB_STATUSES))
                .exists()
            )
            mismatched = session.scalars(
                select(Workspace.id).where(
                    ((Workspace.status == WorkspaceStatus.ACTIVE.value) & ~has_live)
                    | ((Workspace.status == WorkspaceStatus.IDLE.value) & has_live)
                )
            ).all()
            for ws_id in mismatched:
                self._settle_workspace(session, ws_id)
            session.commit()

    def _settle_workspace(self, session: Session, ws_id: int) -> None:
        """A workspace is active while a job is pending, running or stopping, else idle."""
        ws = session.get(Workspace, ws_id)
        if ws is None or ws.status not in (
            WorkspaceStatus.IDLE.value,
            WorkspaceStatus.ACTIVE.value,
        ):
            return
        live = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.workspace_id == ws_id, Job.status.in_(LIVE_JOB_STATUSES))
        )
        ws.status = WorkspaceStatus.ACTIVE.value if live else WorkspaceStatus.IDLE.value
