"""Disk and core-hour quotas: limits, usage, enforcement with messages that name the numbers.

- Limits: a site default (`c.UWS.default_disk_quota`, `c.UWS.default_core_hours_quota`; 0 is
  unlimited) and per-user overrides (uws_user_quotas), set by operators through the API or
  ``uws-hub quota``. An override of ``null`` falls back to the default.
- Usage: disk is the sum of the user's workspaces as last scanned (shared copies count once
  accepted); core-hours are the finished jobs' recorded core-seconds plus the running burn of
  live ones (elapsed × cores), within the current accounting period (`c.UWS.core_hours_period`:
  all time, or the month, quarter or year; a job that began before the period counts from the period's start).
- Enforcement: a job start is refused when cores × time limit exceed what is left; creating a
  workspace, uploading and accepting a share are refused when they would pass the disk limit.
  Deleting is always allowed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from prometheus_client import Counter
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from . import audit
from .db.models import (
    LIVE_JOB_STATUSES,
    Job,
    JobStatus,
    SharedWorkspace,
    User,
    UserQuota,
    Workspace,
    WorkspaceStatus,
    utcnow,
)
from .errors import BadRequest, UWSError
from .times import accounting_period, utc_text

QUOTA_REFUSALS = Counter(
    "uws_quota_refusals_total",
    "Requests refused by a quota, by kind (disk: create, upload, accept a share; core_hours: "
    "start a job)",
    ["kind"],
)
for _kind in ("disk", "core_hours"):
    QUOTA_REFUSALS.labels(_kind)  # a 0, not a missing series


class QuotaExceeded(UWSError):
    status_code = 403


#: disk levels people are told about: under 90 %, from 90 %, from 100 % of their limit
DISK_LEVELS = {0: "ok", 90: "warning", 100: "exceeded"}
#: a level is left only once the usage is this share of the limit below where it begins, so a
#: usage wavering around 90 % or 100 % does not send a notice at every rescan
LEVEL_SLACK = 0.02


def disk_level(used: int, limit: int | None, current: int = 0) -> int:
    """The disk level (0, 90 or 100) of `used` bytes against `limit` (None: unlimited), for
    someone told `current` so far: reached at 90 % and 100 %, left only `LEVEL_SLACK` below."""
    if limit is None:
        return 0
    if limit <= 0:
        return 100 if used > 0 else 0
    for level in (100, 90):
        threshold = limit * (level / 100 - (LEVEL_SLACK if level <= current else 0))
        if used >= threshold:
            return level
    return 0


def duration_text(seconds: float) -> str:
    """A grace period as people say it: "1 hour", "90 minutes", "45 seconds"."""
    s = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size and s % size == 0:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{s} second{'s' if s != 1 else ''}" if s < 120 else f"{s // 60} minutes"


def human_bytes(n: int | None) -> str:
    """`n` bytes as people read them ("1.5 GiB"); None is "unlimited"."""
    if n is None:
        return "unlimited"
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


def hours(core_seconds: int | float) -> str:
    """Core-seconds as hours with at most two decimals ("1.5", "0")."""
    h = Decimal(core_seconds) / Decimal(3600)
    text = f"{h:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def core_seconds_within(
    job_start: dt.datetime | None,
    job_end: dt.datetime | None,
    cpus: int | None,
    recorded: int | None,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> int:
    """Core-seconds a job spent within [start, end): the scheduler's recorded figure when the
    whole (ended) job lies inside, else the clipped time × its cores."""
    if job_start is None:
        return 0
    ran_from, ran_to = max(job_start, start), min(job_end or now, end)
    if ran_to <= ran_from:
        return 0
    if job_end is not None and recorded is not None and (ran_from, ran_to) == (job_start, job_end):
        return int(recorded)
    return int((ran_to - ran_from).total_seconds()) * max(1, cpus or 1)


@dataclass
class Usage:
    disk_used: int
    disk_limit: int | None
    core_seconds_used: int  # finished jobs (within the period)
    core_seconds_running: int  # live jobs so far (within the period)
    core_seconds_limit: int | None
    core_seconds_reserved: int = 0  # the rest of live jobs' time limits
    period: str = "all"  # c.UWS.core_hours_period
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None  # when the core-hours renew
    disk_level_told: int = 0  # the level last told to the person (uws_hub.diskwatch)
    disk_level_since: dt.datetime | None = None  # when the usage reached it

    @property
    def disk_level(self) -> int:
        """0, 90 or 100: where the usage stands now (see `disk_level`)."""
        return disk_level(self.disk_used, self.disk_limit, self.disk_level_told)

    @property
    def disk_over(self) -> bool:
        """Whether the usage is at or over the limit now (no slack)."""
        return self.disk_limit is not None and self.disk_used >= max(self.disk_limit, 1)

    @property
    def disk_over_since(self) -> dt.datetime | None:
        """Since when the usage has been over the limit (None: it is not, or not yet seen by
        the watch)."""
        told = self.disk_level_told == 100 and self.disk_level == 100 and self.disk_over
        return self.disk_level_since if told else None

    @property
    def core_seconds_total(self) -> int:
        return self.core_seconds_used + self.core_seconds_running

    @property
    def disk_left(self) -> int | None:
        return None if self.disk_limit is None else max(0, self.disk_limit - self.disk_used)

    @property
    def core_seconds_left(self) -> int | None:
        if self.core_seconds_limit is None:
            return None
        return max(0, self.core_seconds_limit - self.core_seconds_total)

    def as_dict(self) -> dict:
        return {
            "disk": {
                "used": self.disk_used,
                "limit": self.disk_limit,
                "left": self.disk_left,
                "level": DISK_LEVELS[self.disk_level],
                "level_since": utc_text(
                    self.disk_level_since if self.disk_level == self.disk_level_told else None
                ),
            },
            "core_hours": {
                "used": hours(self.core_seconds_total),
                "finished": hours(self.core_seconds_used),
                "running": hours(self.core_seconds_running),
                "limit": None
                if self.core_seconds_limit is None
                else hours(self.core_seconds_limit),
                "left": None if self.core_seconds_left is None else hours(self.core_seconds_left),
                "reserved": hours(self.core_seconds_reserved),
                "period": {
                    "name": self.period,
                    "start": utc_text(self.period_start),
                    "end": utc_text(self.period_end),
                },
            },
        }


def _of_users(q, column, user_ids: list[int] | None):
    """`q` limited to rows whose `column` is one of `user_ids` (None: everyone's)."""
    return q if user_ids is None else q.where(column.in_(user_ids))


def _disk_used(session: Session, user_ids: list[int] | None) -> dict[int, int]:
    """Bytes in each user's workspaces as last scanned (not deleted; shared copies once
    accepted)."""
    unaccepted = select(SharedWorkspace.shared_workspace_id).where(
        SharedWorkspace.is_accepted.is_(False)
    )
    q = (
        select(Workspace.user_id, func.coalesce(func.sum(Workspace.disk_space), 0))
        .where(
            Workspace.status != WorkspaceStatus.DELETED.value,
            Workspace.id.not_in(unaccepted),
        )
        .group_by(Workspace.user_id)
    )
    disk: dict[int, int] = defaultdict(int)
    for uid, used in session.execute(_of_users(q, Workspace.user_id, user_ids)):
        disk[uid] = int(used)
    return disk


def _finished_core_seconds(
    session: Session,
    user_ids: list[int] | None,
    p_start: dt.datetime | None,
    now: dt.datetime,
) -> dict[int, int]:
    """Core-seconds of each user's ended jobs: all of them (`p_start` None), else what they
    spent since the accounting period began."""
    finished: dict[int, int] = defaultdict(int)
    if p_start is None:
        q = (
            select(Job.user_id, func.coalesce(func.sum(Job.core_seconds), 0))
            .where(Job.status.not_in(LIVE_JOB_STATUSES))
            .group_by(Job.user_id)
        )
        for uid, spent in session.execute(_of_users(q, Job.user_id, user_ids)):
            finished[uid] = int(spent)
        return finished
    q = select(Job.user_id, Job.datetime_start, Job.datetime_end, Job.cpus, Job.core_seconds).where(
        Job.status.not_in(LIVE_JOB_STATUSES), Job.datetime_end >= p_start
    )
    for uid, start, end, cpus, recorded in session.execute(_of_users(q, Job.user_id, user_ids)):
        finished[uid] += core_seconds_within(start, end, cpus, recorded, p_start, now, now)
    return finished


def _live_core_seconds(
    session: Session,
    user_ids: list[int] | None,
    p_start: dt.datetime | None,
    now: dt.datetime,
    exclude_job_id: int | None,
) -> tuple[dict[int, int], dict[int, int]]:
    """(running, reserved) per user: what live jobs have burnt so far (within the period) and
    the rest of their time limits; `exclude_job_id` is left out."""
    running: dict[int, int] = defaultdict(int)
    reserved: dict[int, int] = defaultdict(int)
    q = select(Job.user_id, Job.id, Job.datetime_start, Job.cpus, Job.time_limit_s).where(
        Job.status.in_(LIVE_JOB_STATUSES)
    )
    for uid, job_id, start, cpus, limit_s in session.execute(_of_users(q, Job.user_id, user_ids)):
        if job_id == exclude_job_id:
            continue
        cores = max(1, cpus or 1)
        burnt = max(0, int((now - start).total_seconds())) * cores if start else 0
        running[uid] += (
            burnt
            if p_start is None
            else core_seconds_within(start, None, cpus, None, p_start, now, now)
        )
        if limit_s:
            reserved[uid] += max(0, int(limit_s) * cores - burnt)
    return running, reserved


class QuotaManager:
    def __init__(self, settings):
        self.settings = settings

    # ---- limits ----------------------------------------------------------------------

    def limits(self, session: Session, user: User) -> tuple[int | None, int | None]:
        """(disk bytes, core-seconds) in force for `user`; None is unlimited."""
        return self._effective(session.get(UserQuota, user.id))

    def _effective(self, row: UserQuota | None) -> tuple[int | None, int | None]:
        """(disk bytes, core-seconds) in force: the person's own override, else the site's."""
        disk = row.disk_limit if row is not None and row.disk_limit is not None else None
        core = (
            row.core_seconds_limit
            if row is not None and row.core_seconds_limit is not None
            else None
        )
        default_disk, default_core = self._defaults()
        return (default_disk if disk is None else disk), (default_core if core is None else core)

    def _defaults(self) -> tuple[int | None, int | None]:
        """The site defaults: (disk bytes, core-seconds); None is unlimited."""
        disk, core = self.settings.default_disk_quota, self.settings.default_core_hours_quota
        return (int(disk) if disk > 0 else None), (int(core * 3600) if core > 0 else None)

    def describe(self, session: Session, user: User) -> dict:
        """Usage and effective limits, plus where the limits come from: the user's own
        ``overrides`` (null = none) and the site ``defaults`` (null = unlimited)."""
        return self._describe(user, self.usage(session, user), session.get(UserQuota, user.id))

    def describe_all(self, session: Session) -> list[dict]:
        """`describe` for everyone, by name — with a fixed number of queries, however many
        people there are (see bench/bench_quotas.py)."""
        users = session.scalars(
            select(User).where(User.deleted_at.is_(None)).order_by(User.name)
        ).all()
        usages = self.usages(session, None)
        rows = {row.user_id: row for row in session.scalars(select(UserQuota))}
        return [self._describe(u, usages[u.id], rows.get(u.id)) for u in users]

    def disk_notice(self, usage: Usage) -> str | None:
        """What to tell the person about their disk usage (None under 90 %): the numbers, what
        is refused, what happens to running jobs (c.UWS.disk_quota_action) and what to do."""
        level = usage.disk_level
        if level == 0 or usage.disk_limit is None:
            return None
        numbers = (
            f"You use {human_bytes(usage.disk_used)} of your {human_bytes(usage.disk_limit)} "
            "disk quota"
        )
        todo = "Delete files or workspaces you no longer need, or ask an administrator for more."
        if level == 90 or not usage.disk_over:  # (just under the limit again: no refusals)
            pct = 100 * usage.disk_used // max(1, usage.disk_limit)
            return f"{numbers} ({pct} %). {todo}"
        grace = duration_text(self.settings.disk_quota_grace)
        jobs = {
            "none": "",
            "warn": f" Running jobs are flagged after {grace} over the limit.",
            "stop": f" Running jobs are stopped after {grace} over the limit.",
        }[self.settings.disk_quota_action]
        return (
            f"{numbers}: you are over it, so uploads and new workspaces are refused.{jobs} {todo}"
        )

    def _describe(self, user: User, usage: Usage, row: UserQuota | None) -> dict:
        disk_default, core_default = self._defaults()
        out = usage.as_dict()
        out["disk"]["notice"] = self.disk_notice(usage)
        grace = dt.timedelta(seconds=self.settings.disk_quota_grace)
        over = usage.disk_over_since
        out["disk"]["action"] = {
            "policy": self.settings.disk_quota_action,
            "grace_seconds": int(grace.total_seconds()),
            # when the action applies to the jobs running now (later ones get their own grace)
            "at": utc_text(over + grace)
            if over is not None and self.settings.disk_quota_action != "none"
            else None,
        }
        return {
            "username": user.name,
            **out,
            "overrides": {
                "disk_limit": row.disk_limit if row is not None else None,
                "core_hours_limit": hours(row.core_seconds_limit)
                if row is not None and row.core_seconds_limit is not None
                else None,
            },
            "defaults": {
                "disk_limit": disk_default,
                "core_hours_limit": hours(core_default) if core_default else None,
            },
        }

    @staticmethod
    def parse_limits(body: object) -> dict:
        """Validate an operator's ``{"disk_limit": bytes|null, "core_hours_limit": hours|null}``
        (400 naming what is wrong); returns the changes for `set_limits`."""
        if not isinstance(body, dict) or not body:
            raise BadRequest('Send {"disk_limit": bytes|null, "core_hours_limit": hours|null}.')
        unknown = set(body) - {"disk_limit", "core_hours_limit"}
        if unknown:
            raise BadRequest(
                f"Unknown fields: {sorted(unknown)}; use disk_limit and core_hours_limit."
            )
        changes = {}
        if "disk_limit" in body:
            v = body["disk_limit"]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise BadRequest(
                    "disk_limit must be a number of bytes (0 or more) or null for the default."
                )
            changes["disk_limit"] = v
        if "core_hours_limit" in body:
            v = body["core_hours_limit"]
            if v is not None:
                try:
                    if isinstance(v, bool):
                        raise InvalidOperation
                    d = Decimal(str(v))
                    if d < 0 or not d.is_finite() or d > Decimal(10**9):
                        raise InvalidOperation
                except InvalidOperation as e:
                    raise BadRequest(
                        "core_hours_limit must be a number of hours (0 or more) or null for the default."
                    ) from e
            changes["core_hours_limit"] = v
        return changes

    def set_limits(self, session: Session, user: User, changes: dict) -> None:
        """`changes`: disk_limit (bytes) and/or core_hours_limit (hours); None: the default.
        Recorded in the audit log (old and new override) with the caller's commit."""
        row = session.get(UserQuota, user.id)
        if row is None:
            row = UserQuota(user_id=user.id, updated=utcnow())
            session.add(row)
        before = (row.disk_limit, row.core_seconds_limit)
        if "disk_limit" in changes:
            row.disk_limit = changes["disk_limit"]
        if "core_hours_limit" in changes:
            value = changes["core_hours_limit"]
            row.core_seconds_limit = None if value is None else int(Decimal(str(value)) * 3600)
        row.updated = utcnow()
        details = {}
        if "disk_limit" in changes:
            details["disk_limit"] = [before[0], row.disk_limit]
        if "core_hours_limit" in changes:
            details["core_hours_limit"] = [
                None if v is None else hours(v) for v in (before[1], row.core_seconds_limit)
            ]
        audit.record(session, "quota.update", user=user.name, target_id=user.name, details=details)

    # ---- usage -----------------------------------------------------------------------

    def usage(
        self,
        session: Session,
        user: User,
        now: dt.datetime | None = None,
        exclude_job_id: int | None = None,
    ) -> Usage:
        """`usages` of one user."""
        return self.usages(session, [user.id], now, exclude_job_id)[user.id]

    def usages(
        self,
        session: Session,
        user_ids: list[int] | None,
        now: dt.datetime | None = None,
        exclude_job_id: int | None = None,
    ) -> dict[int, Usage]:
        """Usage of the users `user_ids` (None: everyone), by user id: one query per figure
        (disk, ended jobs, live jobs, limits) whatever the number of users."""
        now = now or utcnow()
        period = self.settings.core_hours_period
        p_start, p_end = accounting_period(period, self.settings.core_hours_year_start, now)
        disk = _disk_used(session, user_ids)
        finished = _finished_core_seconds(session, user_ids, p_start, now)
        running, reserved = _live_core_seconds(session, user_ids, p_start, now, exclude_job_id)
        rows = {
            row.user_id: row
            for row in session.scalars(_of_users(select(UserQuota), UserQuota.user_id, user_ids))
        }
        ids = user_ids if user_ids is not None else session.scalars(select(User.id)).all()
        out = {}
        for uid in ids:
            row = rows.get(uid)
            disk_limit, core_limit = self._effective(row)
            out[uid] = Usage(
                disk[uid],
                disk_limit,
                finished[uid],
                running[uid],
                core_limit,
                reserved[uid],
                period,
                p_start,
                p_end,
                row.disk_level if row is not None else 0,
                row.disk_level_since if row is not None else None,
            )
        return out

    # ---- enforcement -------------------------------------------------------------------

    def check_disk(self, session: Session, user: User, *, adding: int, doing: str) -> None:
        """Refuse (QuotaExceeded, naming the numbers) `doing` what adds `adding` bytes past
        the user's disk limit."""
        self.check_disk_usage(self.usage(session, user), adding=adding, doing=doing)

    def check_disk_usage(self, u: Usage, *, adding: int, doing: str) -> None:
        """`check_disk` against usage read earlier: a streamed upload reads the usage once at
        its start and checks each arriving chunk against it (no Content-Length is needed)."""
        if u.disk_limit is None:
            return
        if u.disk_used + max(0, adding) > u.disk_limit:
            QUOTA_REFUSALS.labels("disk").inc()
            need = f" it needs {human_bytes(adding)};" if adding > 0 else ""
            raise QuotaExceeded(
                f"Cannot {doing}:{need} you use {human_bytes(u.disk_used)} of your "
                f"{human_bytes(u.disk_limit)} disk quota ({human_bytes(u.disk_left)} left). "
                "Delete files or workspaces you no longer need, or ask an administrator for more."
            )

    def check_core_hours(
        self,
        session: Session,
        user: User,
        cpus: int,
        time_limit_s: int,
        exclude_job_id: int | None = None,
        asking: str = "This job asks for",
    ) -> None:
        """Refuse a job whose cores × time limit exceed what is left — counting what the user's
        other live jobs may still spend (the rest of their time limits), so jobs started
        together cannot overrun the limit. `asking` begins the refusal (an extension says
        what it asks for)."""
        u = self.usage(session, user, exclude_job_id=exclude_job_id)
        if u.core_seconds_limit is None:
            return
        need = max(1, cpus) * max(0, time_limit_s)
        left = max(0, (u.core_seconds_left or 0) - u.core_seconds_reserved)
        if need > left:
            QUOTA_REFUSALS.labels("core_hours").inc()
            reserved = hours(u.core_seconds_reserved)
            held = (
                f" ({reserved} more {'is' if reserved == '1' else 'are'} held by your running jobs)"
                if u.core_seconds_reserved
                else ""
            )
            if u.period_end is None:
                this, renew = "", ""
            else:
                this = f" this {u.period}"
                renew = f", wait until {u.period_end:%Y-%m-%d} when they renew"
            raise QuotaExceeded(
                f"{asking} {cpus} core{'s' if cpus != 1 else ''} × "
                f"{hours(time_limit_s)} h = {hours(need)} core-hour{'' if hours(need) == '1' else 's'}; "
                f"you have {hours(left)} of "
                f"{hours(u.core_seconds_limit)} left{this}{held}. Ask for fewer cores or a "
                f"shorter time limit{renew}, or ask an administrator for more core-hours."
            )

    # ---- reports ------------------------------------------------------------------------

    def report(
        self,
        session: Session,
        start: dt.datetime | None,
        end: dt.datetime | None,
        user: User | None = None,
    ) -> list[dict]:
        """Core-hours of jobs that ran within [start, end) (clipped to it) per user and workspace,
        with each workspace's current disk usage."""
        start = start or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        end = end or utcnow()
        rows: dict[tuple[str, int], dict] = {}
        now = utcnow()
        for job, uname, wname, disk in session.execute(_report_query(start, end, user)):
            r = rows.setdefault(
                (uname, job.workspace_id),
                {
                    "user": uname,
                    "workspace_id": job.workspace_id,
                    "workspace_name": wname,
                    "jobs": 0,
                    "core_seconds": 0,
                    "disk_space": disk,
                },
            )
            r["jobs"] += 1
            r["core_seconds"] += _job_core_seconds_within(job, start, end, now)
        out = sorted(rows.values(), key=lambda r: (r["user"], r["workspace_id"]))
        for r in out:
            r["core_hours"] = hours(r.pop("core_seconds"))
        return out


def _report_query(start: dt.datetime, end: dt.datetime, user: User | None):
    """(job, user name, workspace name, workspace disk) of the jobs that ran within [start, end),
    of `user` (None: everyone's)."""
    q = (
        select(Job, User.name, Workspace.name, Workspace.disk_space)
        .join(User, User.id == Job.user_id)
        .join(Workspace, Workspace.id == Job.workspace_id)
        .where(
            Job.datetime_start.is_not(None),
            Job.datetime_start < end,
            and_(
                (Job.datetime_end.is_(None)) | (Job.datetime_end >= start),
            ),
        )
    )
    return q if user is None else q.where(Job.user_id == user.id)


def _job_core_seconds_within(
    job: Job, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> int:
    """`core_seconds_within` for a job row: its end and recorded figure count once it ended."""
    ended = job.status in (JobStatus.COMPLETE.value, JobStatus.FAILED.value)
    return core_seconds_within(
        job.datetime_start,
        job.datetime_end if ended else None,
        job.cpus,
        job.core_seconds if ended else None,
        start,
        end,
        now,
    )


REPORT_FIELDS = ["user", "workspace_id", "workspace_name", "jobs", "core_hours", "disk_space"]


def report_csv(rows: list[dict]) -> str:
    """The usage report as CSV (the API's ``format=csv`` and ``uws-hub usage --csv``)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, REPORT_FIELDS)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
