"""Sessions people can plan around: a running job's time-limit warnings, the policy that bounds
extending it, and the extension itself.

**Policy.** A resource and a job type may each set ``max_extensions``, ``max_extension_min``,
``max_total_time_min`` and ``idle_timeout_min`` (`types.SessionLimits`); the stricter of the two
applies, and where neither sets one the site's default does (``c.UWS.max_extensions``,
``c.UWS.max_extension_min``, the resource's ``max_time_limit_min``, ``c.UWS.idle_timeout_min``).

**Warnings.** `due_warning` says which of ``c.UWS.time_warnings`` (seconds before the end) a job
should be warned at now; each point once per end time, so an extension re-arms them. The watch
(`uws_hub.sessionwatch`) records it in ``current_job_details.time_warning``, which the job's
answer, its event stream, the workspace page and the JupyterLab extension show.

**Extensions.** `SessionManager.extend` checks the policy and the core-hour quota (the added
time counts), raises Slurm's ``TimeLimit`` with ``scontrol update`` (the service's account must
be root, the SlurmUser or a Slurm operator: users may only lower their own limits) or, for a
local job, moves the timer the job manager enforces; the job's ``time_limit_s`` and so its
``time_left`` change at once. Audited ``job.extend``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..db.models import Job, JobStatus, User, utcnow
from ..errors import BadRequest, Forbidden, HubAPIError, UWSError
from ..slurm.spec import job_cluster
from ..times import utc_text
from .state import begin_stop, set_current

if TYPE_CHECKING:
    from ..config import UWS
    from ..quotas import QuotaManager
    from .manager import JobManager

log = logging.getLogger("uws_hub.jobs.sessions")

EXTENSIONS = Counter("uws_job_extensions_total", "Running jobs extended, by resource", ["resource"])
EXTENSION_REFUSALS = Counter(
    "uws_job_extension_refusals_total",
    "Extensions refused, by reason (count, minutes, total, quota, scheduler, state)",
    ["reason"],
)
for _reason in ("count", "minutes", "total", "quota", "scheduler", "state"):
    EXTENSION_REFUSALS.labels(_reason)  # a 0, not a missing series


@dataclass(frozen=True)
class SessionPolicy:
    max_extensions: int
    max_extension_min: int
    max_total_time_min: int | None  # None: no bound
    idle_timeout_min: int  # 0: jobs are not stopped for idleness


def policy_for(settings: UWS, resource_id: str, job_type_id: str) -> SessionPolicy:
    """The session policy of a job on `resource_id` of type `job_type_id`: the stricter of
    what the two set, the site's defaults where neither does."""
    res = settings.resource_map.get(resource_id)
    jtype = settings.job_type_map.get(job_type_id)

    def given(key: str) -> list[int]:
        return [
            v for x in (res, jtype) if x is not None and (v := getattr(x.session, key)) is not None
        ]

    def pick(key: str, default: int | None) -> int | None:
        return min(given(key)) if given(key) else default

    total = pick("max_total_time_min", None)
    if res is not None and res.max_time_limit_min is not None:  # the resource's hard maximum
        total = res.max_time_limit_min if total is None else min(total, res.max_time_limit_min)
    # idle: 0 set on the resource or job type turns it off there; the shorter positive applies
    idle = [v for v in given("idle_timeout_min") if v > 0]
    idle_min = (
        min(idle) if idle else (0 if given("idle_timeout_min") else settings.idle_timeout_min)
    )
    return SessionPolicy(
        max_extensions=pick("max_extensions", settings.max_extensions) or 0,
        max_extension_min=pick("max_extension_min", settings.max_extension_min) or 0,
        max_total_time_min=total,
        idle_timeout_min=idle_min or 0,
    )


def ends_at(job: Job) -> dt.datetime | None:
    """When a running job's time limit ends (None without a start or a limit)."""
    if job.datetime_start is None or not job.time_limit_s:
        return None
    return job.datetime_start + dt.timedelta(seconds=job.time_limit_s)


def left_text(seconds: float) -> str:
    """Time left as people say it: "45 seconds", "10 minutes", "1 h 05 min"."""
    s = max(0, int(round(seconds)))
    if s < 90:
        return f"{s} second{'s' if s != 1 else ''}"
    if s < 3600:
        return f"{round(s / 60)} minutes"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m:02d} min"


def extensions_of(job: Job) -> list[dict]:
    return list((job.job_details or {}).get("extensions") or [])


def offer(settings: UWS, job: Job) -> dict[str, Any]:
    """What the owner may still add to running `job` (shown with the job and inside JupyterLab):
    ``{allowed, max_minutes, used, max, why_not}``; `why_not` says why not, with the numbers."""
    policy = policy_for(settings, job.resource, job.job_type)
    used = len(extensions_of(job))
    room = None
    if policy.max_total_time_min is not None and job.time_limit_s:
        room = policy.max_total_time_min - math.ceil(job.time_limit_s / 60)
    max_minutes = policy.max_extension_min if room is None else min(policy.max_extension_min, room)
    why, code = None, None
    if job.status != JobStatus.RUNNING.value:
        why, code = "Only a running job can be extended.", "state"
    elif not job.time_limit_s:
        why, code = "This job has no time limit.", "state"
    elif policy.max_extensions == 0 or policy.max_extension_min == 0:
        why, code = "Jobs on this resource cannot be extended.", "count"
    elif used >= policy.max_extensions:
        why, code = (
            f"This job has been extended {used} time{'s' if used != 1 else ''}, "
            f"the most allowed ({policy.max_extensions}).",
            "count",
        )
    elif max_minutes <= 0:
        why, code = (
            f"This job already has the longest time allowed here "
            f"({policy.max_total_time_min} minutes).",
            "total",
        )
    if code is not None:
        return {
            "allowed": False,
            "max_minutes": 0,
            "used": used,
            "max": policy.max_extensions,
            "why_not": why,
            "_reason": code,
        }
    return {
        "allowed": True,
        "max_minutes": max_minutes,
        "used": used,
        "max": policy.max_extensions,
        "why_not": None,
    }


def due_warning(points: list[int], job: Job, now: dt.datetime) -> int | None:
    """The point of ``c.UWS.time_warnings`` (seconds before the end) running `job` should be
    warned at now, if it was not warned at it (or a nearer one) for its current end time."""
    end = ends_at(job)
    if end is None or job.status != JobStatus.RUNNING.value:
        return None
    left = (end - now).total_seconds()
    due = [p for p in points if 0 < left <= p]
    if not due:
        return None
    point = min(due)
    told = ((job.job_details or {}).get("current_job_details") or {}).get("time_warning") or {}
    if told.get("ends_at") == utc_text(end) and told.get("point", math.inf) <= point:
        return None
    return point


def warning_text(settings: UWS, job: Job, now: dt.datetime) -> str:
    end = ends_at(job)
    left = (end - now).total_seconds()
    said = f"This session ends in {left_text(left)}, at {end:%H:%M} UTC."
    more = offer(settings, job)
    if more["allowed"]:
        return f"{said} Save your work, or extend it (up to {more['max_minutes']} minutes more)."
    return f"{said} Save your work: {more['why_not']}"


def record_warning(settings: UWS, job: Job, point: int, now: dt.datetime) -> dict:
    """Record the time warning at `point` on `job` (the caller holds the row)."""
    warning = {
        "kind": "time",
        "point": point,
        "at": utc_text(now),
        "ends_at": utc_text(ends_at(job)),
        "message": warning_text(settings, job, now),
    }
    set_current(job, time_warning=warning)
    return warning


class SessionManager:
    """Extensions of running jobs (the API's ``PUT /jobs/<id>/extend/``)."""

    def __init__(self, settings: UWS, quotas: QuotaManager, jobs: JobManager):
        self.settings = settings
        self.quotas = quotas
        self.jobs = jobs
        #: one extension of a job at a time (a lock lives while someone holds or awaits it)
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    @staticmethod
    def parse_request(body: Any) -> tuple[int, int | None]:
        """(minutes, used): the minutes to add and, if given, how many extensions the client saw
        (a repeated request is then refused, not applied twice)."""
        body = body if isinstance(body, dict) else {}
        minutes, used = body.get("minutes"), body.get("used")

        def whole(v: Any, least: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= least

        if not whole(minutes, 1):
            raise BadRequest(
                'Say how long to extend the job by: {"minutes": n}, a whole number of 1 or more.'
            )
        if used is not None and not whole(used, 0):
            raise BadRequest('"used" must be the number of extensions seen so far (0 or more).')
        return minutes, used

    async def extend(
        self, session: Session, user: User, job: Job, minutes: int, used: int | None = None
    ) -> Job:
        """Add `minutes` to running `job`'s time limit, within its policy and the owner's
        core-hour quota; one extension of a job at a time. `used`: the extensions the client
        saw (409 if there are more by now: its request was already applied)."""
        lock = self._locks.get(job.id)
        if lock is None:
            lock = self._locks[job.id] = asyncio.Lock()
        async with lock:
            return await self._extend(session, user, job.id, minutes, used)

    async def _extend(
        self, session: Session, user: User, job_id: int, minutes: int, used: int | None
    ) -> Job:
        session.expire_all()
        job = session.get(Job, job_id)
        if used is not None and len(extensions_of(job)) != used:
            EXTENSION_REFUSALS.labels("state").inc()
            raise UWSError(
                f"Job {job_id} has been extended {len(extensions_of(job))} times by now, not "
                f"{used}: your extension was already made. Look at the job again.",
                status_code=409,
            )
        self._check(session, user, job, minutes)
        old = job.time_limit_s
        new_min = math.ceil(old / 60) + minutes
        where = self._slurm_job(job)
        slurm_id = where[1] if where else None
        session.commit()  # hold no transaction while the scheduler works
        if where is not None:
            await self._raise_slurm_limit(*where, new_min)
        # the row as it is now (not as this session last saw it), locked until recorded
        with_lock = session.scalar(
            select(Job)
            .where(Job.id == job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if with_lock.status != JobStatus.RUNNING.value or with_lock.time_limit_s != old:
            session.rollback()
            EXTENSION_REFUSALS.labels("state").inc()
            if slurm_id is not None:  # the scheduler's limit stays raised for a job that is ending
                log.warning(
                    "job %s changed while Slurm job %s was extended to %s minutes (%s); not "
                    "recorded",
                    job_id,
                    slurm_id,
                    new_min,
                    with_lock.status,
                )
            raise UWSError(
                f"Job {job_id} changed while it was being extended (it is {with_lock.status} "
                "now); look at it again before extending it.",
                status_code=409,
            )
        with_lock.time_limit_s = new_min * 60
        details = dict(with_lock.job_details or {})
        current = dict(details.get("current_job_details") or {})
        current.pop("time_warning", None)  # the end moved: the warnings are re-armed
        current.pop("time_left", None)  # computed from the new limit until Slurm says more
        details["current_job_details"] = current
        details["extensions"] = [
            *extensions_of(with_lock),
            {"minutes": minutes, "at": utc_text(utcnow())},
        ]
        with_lock.job_details = details
        audit.record(
            session,
            "job.extend",
            user=user.name,
            target_id=job_id,
            details={
                "minutes": minutes,
                "time_limit_min": new_min,
                "ends_at": utc_text(ends_at(with_lock)),
            },
        )
        try:
            session.commit()
        except Exception:
            if slurm_id is not None:
                log.error(
                    "job %s: Slurm job %s was extended to %s minutes but the record failed",
                    job_id,
                    slurm_id,
                    new_min,
                )
            raise
        EXTENSIONS.labels(with_lock.resource).inc()
        log.info("job %s extended by %s minutes to %s minutes", job_id, minutes, new_min)
        return with_lock

    def _slurm_job(self, job: Job) -> tuple[str | None, str] | None:
        """(cluster, Slurm job) whose limit to raise (None for a local job); a job whose kind
        cannot be told (its resource is no longer configured), or a Slurm job without its id,
        is refused rather than half-extended."""
        res = self.settings.resource_map.get(job.resource)
        kind = res.kind if res is not None else ""
        if kind == "local":
            return None
        if kind == "slurm" and job.resource_job_id:
            return job_cluster(self.settings, job.resource, job.cluster), str(job.resource_job_id)
        EXTENSION_REFUSALS.labels("state").inc()
        raise UWSError(
            f"Job {job.id} cannot be extended: its scheduler job is not known.", status_code=409
        )

    def _check(self, session: Session, user: User, job: Job, minutes: int) -> None:
        more = offer(self.settings, job)
        if not more["allowed"]:
            EXTENSION_REFUSALS.labels(more["_reason"]).inc()
            if job.status != JobStatus.RUNNING.value:
                raise BadRequest(f"{more['why_not']} Job {job.id} is {job.status}.")
            raise Forbidden(more["why_not"])
        policy = policy_for(self.settings, job.resource, job.job_type)
        if minutes > more["max_minutes"]:
            now_min = math.ceil(job.time_limit_s / 60)
            if more["max_minutes"] < policy.max_extension_min:
                EXTENSION_REFUSALS.labels("total").inc()
                raise Forbidden(
                    f"Extending by {minutes} minutes would make this job's time limit "
                    f"{now_min + minutes} minutes; the most allowed is "
                    f"{policy.max_total_time_min} minutes, so at most {more['max_minutes']} "
                    "more can be added."
                )
            EXTENSION_REFUSALS.labels("minutes").inc()
            raise Forbidden(
                f"One extension may add at most {policy.max_extension_min} minutes; "
                f"{minutes} were asked for."
            )
        try:
            self.quotas.check_core_hours(
                session,
                session.get(User, job.user_id),
                job.cpus,
                minutes * 60,
                asking=f"Extending job {job.id} by {minutes} minutes asks for",
            )
        except UWSError:
            EXTENSION_REFUSALS.labels("quota").inc()
            raise

    async def _raise_slurm_limit(self, cluster_id: str | None, slurm_id: str, minutes: int) -> None:
        """Raise the Slurm job's time limit on its cluster (``scontrol update`` as the
        service's account, or slurmrestd as the cluster's operator_user); an update that fails
        is read back: it may have gone through all the same."""
        from ..slurm.clusters import ClusterError

        try:
            await self.jobs.cluster(cluster_id).set_time_limit(slurm_id, minutes)
            return
        except ClusterError as e:
            text = str(e).strip().rstrip(".")
        EXTENSION_REFUSALS.labels("scheduler").inc()
        hint = ""
        if "denied" in text.lower() or "permission" in text.lower() or "operator" in text:
            hint = (
                " Raising a time limit needs root, the SlurmUser or a Slurm operator (the uws "
                "service's account, or the cluster's operator_user through slurmrestd); ask an "
                "administrator."
            )
        raise UWSError(f"Slurm did not extend job {slurm_id}: {text}.{hint}", status_code=502)


TIME_WARNINGS = Counter("uws_job_time_warnings_total", "Time-limit warnings recorded on jobs")
IDLE_WARNINGS = Counter("uws_job_idle_warnings_total", "Idle warnings recorded on jobs")
IDLE_STOPS = Counter("uws_idle_stops_total", "Jobs stopped for idleness, by resource", ["resource"])
IDLE_SAVED = Counter(
    "uws_idle_stop_core_hours_saved_total",
    "Core-hours idle stops left unspent: the job's cores × the rest of its time limit, by resource",
    ["resource"],
)


@dataclass(frozen=True)
class IdleCandidate:
    """A running job with an idle limit, as read for one pass."""

    job_id: int
    user: str
    server_name: str
    started: dt.datetime
    timeout_s: int
    warned_at: dt.datetime | None  # when its idle warning was recorded (None: not warned)


def _when(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


class SessionWatch:
    """Every ``c.UWS.session_check_interval``: records the time-limit warnings that are due on
    running jobs, and deals with idle ones — warned ``c.UWS.idle_warning`` seconds before their
    idle limit, stopped once the limit has passed *and* the warning has stood that long (*Stopped
    after N minutes idle.*), the warning withdrawn when activity comes back.

    Activity is the hub's ``last_activity`` of the server: traffic through its proxy and the job
    server's own reports, which count a busy kernel as activity (`uws_hub.labserver` marks it:
    the hub's record alone misses a kernel that computes silently). The service never calls the
    job server itself. Each row is locked and re-checked before it changes, as the job manager's
    transitions do."""

    def __init__(self, settings: UWS, db: sessionmaker[Session], hub: Any, jobs: JobManager):
        self.settings = settings
        self.db = db
        self.hub = hub
        self.jobs = jobs
        self.passes = 0

    async def run_pass(self) -> None:
        now = utcnow()
        await asyncio.to_thread(self.warn_due, now)
        await self.check_idle(now)
        self.passes += 1

    def warn_due(self, now: dt.datetime) -> list[int]:
        """Record the time warnings due at `now`; returns the ids of the jobs warned."""
        points = list(self.settings.time_warnings)
        if not points:
            return []
        with self.db() as session:
            rows = session.scalars(
                select(Job).where(
                    Job.status == JobStatus.RUNNING.value,
                    Job.time_limit_s.is_not(None),
                    Job.datetime_start.is_not(None),
                )
            ).all()
            due = [j.id for j in rows if due_warning(points, j, now) is not None]
        warned = []
        for job_id in due:
            with self.db() as session:
                job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
                point = due_warning(points, job, now) if job is not None else None
                if point is None:
                    continue
                record_warning(self.settings, job, point, now)
                session.commit()
            TIME_WARNINGS.inc()
            warned.append(job_id)
        return warned

    # ---- idleness ------------------------------------------------------------------------

    def idle_candidates(self) -> list[IdleCandidate]:
        """Running jobs whose policy has an idle limit."""
        out = []
        with self.db() as session:
            rows = session.execute(
                select(Job, User.name)
                .join(User, User.id == Job.user_id)
                .where(Job.status == JobStatus.RUNNING.value, Job.datetime_start.is_not(None))
            ).all()
            for job, name in rows:
                limit = policy_for(self.settings, job.resource, job.job_type).idle_timeout_min
                if not limit or not job.server_name:
                    continue
                current = (job.job_details or {}).get("current_job_details") or {}
                warned = _when((current.get("idle_warning") or {}).get("at"))
                out.append(
                    IdleCandidate(
                        job.id, name, job.server_name, job.datetime_start, limit * 60, warned
                    )
                )
        return out

    async def check_idle(self, now: dt.datetime) -> dict[str, int]:
        """One look at every job with an idle limit; returns what was done (warned, stopped,
        cleared)."""
        counts = {"warned": 0, "stopped": 0, "cleared": 0}
        candidates = await asyncio.to_thread(self.idle_candidates)
        if not candidates:
            return counts
        try:
            servers = await self.hub.active_servers()
        except HubAPIError as e:
            log.warning("idle check skipped: the hub did not answer (%s)", e.message)
            return counts
        for c in candidates:
            server = servers.get((c.user, c.server_name))
            if server is None:
                continue  # not (or no longer) the hub's: the job sync settles it
            last = max(c.started, _when(server.get("last_activity")) or c.started)
            decision = self.idle_decision(c, (now - last).total_seconds(), now)
            done, stop = await asyncio.to_thread(self._apply_idle, c, decision, last, now)
            if done:
                counts[{"stop": "stopped", "warn": "warned", "clear": "cleared"}[decision]] += 1
            if stop is not None:
                await self.jobs.send_stops([stop])
        return counts

    def idle_decision(self, c: IdleCandidate, idle: float, now: dt.datetime) -> str:
        """ "stop" once the idle limit has passed and the warning has stood its time, "warn"
        from ``c.UWS.idle_warning`` seconds before the limit, else "clear"."""
        lead = self.settings.idle_warning
        if idle < max(0, c.timeout_s - lead):
            return "clear"
        if idle >= c.timeout_s and c.warned_at and (now - c.warned_at).total_seconds() >= lead:
            return "stop"
        return "warn"

    def _apply_idle(
        self, c: IdleCandidate, decision: str, last: dt.datetime, now: dt.datetime
    ) -> tuple[bool, Any]:
        """Warn, stop or clear the warning of job `c` (row locked, still running); returns
        (whether anything changed, the stop to send or None)."""
        minutes = c.timeout_s // 60
        limit = f"{minutes} minute{'s' if minutes != 1 else ''}"
        with self.db() as session:
            job = session.scalar(select(Job).where(Job.id == c.job_id).with_for_update())
            if job is None or job.status != JobStatus.RUNNING.value:
                return False, None
            current = (job.job_details or {}).get("current_job_details") or {}
            warned = current.get("idle_warning")
            if decision == "clear":
                if not warned:
                    return False, None
                details = dict(job.job_details)
                details["current_job_details"] = {
                    k: v for k, v in current.items() if k != "idle_warning"
                }
                job.job_details = details
            elif decision == "warn":
                if warned:
                    return False, None
                stop_at = last + dt.timedelta(seconds=c.timeout_s)
                set_current(
                    job,
                    idle_warning={
                        "kind": "idle",
                        "at": utc_text(now),
                        "idle_since": utc_text(last),
                        "stop_at": utc_text(stop_at),
                        "message": (
                            f"This session has had no activity for {left_text((now - last).total_seconds())}: "
                            f"it will be stopped at {stop_at:%H:%M} UTC, after {limit} without "
                            "activity. Use it (open it, run something) to keep it."
                        ),
                    },
                )
                IDLE_WARNINGS.inc()
            else:
                reason = f"Stopped after {limit} idle."
                begin_stop(session, job, c.user, reason, reason=reason)
                rest = max(
                    0.0, (job.time_limit_s or 0) - (now - job.datetime_start).total_seconds()
                )
                IDLE_STOPS.labels(job.resource).inc()
                IDLE_SAVED.labels(job.resource).inc(max(1, job.cpus) * rest / 3600)
                session.commit()
                log.info("job %s stopped after %s minutes idle", c.job_id, minutes)
                return True, (c.user, c.job_id, c.server_name)
            session.commit()
        return True, None
