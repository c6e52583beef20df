"""Disk quotas that hold while jobs run: people are told, and running jobs are dealt with.

Rescans (`workspaces.rescans`) keep the usage current while jobs write. `DiskWatch` compares
everyone's usage with their limit — every `c.UWS.disk_quota_check_interval`, and for one person
as soon as a rescan of one of their workspaces ends — and:

- records the level the person has been told (``uws_user_quotas.disk_level``: 0, 90 or 100, and
  since when; see `quotas.disk_level` for the slack that keeps a wavering usage from flapping);
- on a crossing upwards queues an e-mail, once per crossing (``quota_warning`` at 90 %,
  ``quota_exceeded`` at 100 %; `c.UWS.quota_emails`), and audits ``quota.disk_level`` (a
  crossing downwards is audited too, without mail);
- applies `c.UWS.disk_quota_action` to the running jobs of people over their limit once the
  grace (`c.UWS.disk_quota_grace`) has passed — for each job from the later of when the usage
  passed the limit and the job's start, so a job started to clean up gets the whole grace:
  ``warn`` marks the job (``current_job_details.disk_quota``, shown on its page and in its event
  stream) and e-mails a reminder; ``stop`` stops it with the reason as its message. Each job is
  dealt with once per crossing; audited as ``quota.disk_action``.

The checks are a few queries whatever the number of people, run in a thread; level changes and
actions are committed together with their e-mails and audit events (the notifier's outbox).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import audit
from .db.models import Job, JobStatus, User, UserQuota, utcnow
from .jobs.state import Stop, begin_stop, set_current
from .quotas import DISK_LEVELS, QuotaManager, Usage, duration_text, human_bytes
from .times import utc_text

if TYPE_CHECKING:
    from .jobs.manager import JobManager
    from .notify import Notifier

log = logging.getLogger("uws_hub.diskwatch")


class DiskWatch:
    def __init__(
        self,
        settings,
        db: sessionmaker[Session],
        quotas: QuotaManager,
        notifier: Notifier,
        jobs: JobManager,
    ):
        self.settings = settings
        self.db = db
        self.quotas = quotas
        self.notifier = notifier
        self.jobs = jobs
        self._lock = asyncio.Lock()  # one check at a time: a crossing is recorded once
        self.passes = 0

    async def run_pass(self) -> None:
        """Check everyone (the periodic loop)."""
        await self.check_users(None)

    async def check_user(self, user_id: int) -> None:
        """Check one person at once (after a rescan of one of their workspaces)."""
        await self.check_users([user_id])

    async def check_users(self, user_ids: list[int] | None) -> None:
        async with self._lock:
            stops = await asyncio.to_thread(self.check, user_ids)
        if stops:
            await self.jobs.send_stops(stops)
        self.passes += 1

    # ---- the check (blocking: run in a thread) ---------------------------------------------

    def check(self, user_ids: list[int] | None, now: dt.datetime | None = None) -> list[Stop]:
        """Record level crossings of `user_ids` (None: everyone) and apply the action to jobs
        past their grace; returns the stops the hub must be asked for."""
        now = now or utcnow()
        with self.db() as session:
            usages = self.quotas.usages(session, user_ids, now)
            crossed = {uid: u for uid, u in usages.items() if u.disk_level != u.disk_level_told}
            if crossed:  # people deleted from the hub are told nothing more
                users = session.scalars(
                    select(User).where(User.id.in_(list(crossed)), User.deleted_at.is_(None))
                )
                for user in users:
                    self._crossed(session, user, crossed[user.id], now)
                session.flush()
            stops = self._act(session, usages, now)
            session.commit()
        return stops

    def _crossed(self, session: Session, user: User, usage: Usage, now: dt.datetime) -> None:
        """Record that `user`'s usage moved to a new level; tell them when it went up."""
        row = session.get(UserQuota, user.id)
        if row is None:
            row = UserQuota(user_id=user.id, updated=now)
            session.add(row)
        before, level = row.disk_level or 0, usage.disk_level
        row.disk_level, row.disk_level_since = level, now
        audit.record(
            session,
            "quota.disk_level",
            user=user.name,
            target_id=user.name,
            details={
                "level": DISK_LEVELS[level],
                "from": DISK_LEVELS[before],
                "used": usage.disk_used,
                "limit": usage.disk_limit,
            },
        )
        log.info(
            "%s: disk usage %s of %s is now at level %s (was %s)",
            user.name,
            usage.disk_used,
            usage.disk_limit,
            DISK_LEVELS[level],
            DISK_LEVELS[before],
        )
        if before == 100 and level < 100:
            _clear_warnings(session, user.id)
        if level > before and self.settings.quota_emails:
            self.notifier.queue(
                session, f"quota_{DISK_LEVELS[level]}", user, self._mail_context(user, usage)
            )

    def _mail_context(self, user: User, usage: Usage) -> dict:
        limit = usage.disk_limit or 0
        return {
            "recipient": user,
            "used": human_bytes(usage.disk_used),
            "limit": human_bytes(usage.disk_limit),
            "percent": 100 * usage.disk_used // max(1, limit),
            "notice": self.quotas.disk_notice(usage) or "",
            "action": self.settings.disk_quota_action,
            "grace": duration_text(self.settings.disk_quota_grace),
        }

    def _act(self, session: Session, usages: dict[int, Usage], now: dt.datetime) -> list[Stop]:
        """Apply c.UWS.disk_quota_action to running jobs of people over their limit — recorded
        at 100 % and over it now (the slack that keeps the level from flapping must not stop
        the jobs of someone who cleaned up to 99 %) — whose grace has passed and that were not
        dealt with in this crossing yet."""
        action = self.settings.disk_quota_action
        if action == "none":
            return []
        grace = dt.timedelta(seconds=self.settings.disk_quota_grace)
        q = (
            select(Job, User, UserQuota.disk_level_since)
            .join(User, User.id == Job.user_id)
            .join(UserQuota, UserQuota.user_id == Job.user_id)
            .where(
                UserQuota.disk_level == 100,
                Job.status == JobStatus.RUNNING.value,
                Job.user_id.in_([uid for uid, u in usages.items() if u.disk_over]),
            )
            .order_by(Job.id)
            # job rows locked (in id order) and re-read, as the job manager's transitions do:
            # a job that ended or began stopping meanwhile no longer matches and is left alone
            .with_for_update(of=Job)
        )
        acted: dict[int, tuple[User, list[int]]] = {}
        stops: list[Stop] = []
        for job, user, since in session.execute(q):
            since = since or now
            mark = ((job.job_details or {}).get("current_job_details") or {}).get("disk_quota")
            if (mark or {}).get("crossing") == utc_text(since):
                continue  # dealt with in this crossing
            if now < max(since, job.datetime_start or since) + grace:
                continue
            message = self._job_message(session, user, action)
            if action == "stop":
                begin_stop(session, job, user.name, message)
                stops.append((user.name, job.id, job.server_name))
            set_current(
                job,
                disk_quota={
                    "action": action,
                    "at": utc_text(now),
                    "crossing": utc_text(since),
                    "message": message,
                },
            )
            acted.setdefault(user.id, (user, []))[1].append(job.id)
        for user, job_ids in acted.values():
            self._record_action(session, user, action, job_ids)
        return stops

    def _job_message(self, session: Session, user: User, action: str) -> str:
        u = self.quotas.usage(session, user)
        grace = duration_text(self.settings.disk_quota_grace)
        numbers = f"{human_bytes(u.disk_used)} of {human_bytes(u.disk_limit)}"
        todo = (
            "Delete files you no longer need (the workspace page can do it without a job), or "
            "ask an administrator for more."
        )
        if action == "stop":
            return (
                f"Stopped: your workspaces stayed over your disk quota ({numbers}) for {grace}. "
                f"{todo}"
            )
        return f"Over the disk quota for {grace}: your workspaces use {numbers}. {todo}"

    def _record_action(self, session: Session, user: User, action: str, job_ids: list[int]):
        audit.record(
            session,
            "quota.disk_action",
            user=user.name,
            target_id=user.name,
            details={"action": action, "jobs": job_ids},
        )
        log.warning(
            "%s: over the disk quota past the grace: %s jobs %s", user.name, action, job_ids
        )
        if self.settings.quota_emails:
            context = self._mail_context(user, self.quotas.usage(session, user))
            self.notifier.queue(session, "quota_action", user, {**context, "jobs": job_ids})


def _clear_warnings(session: Session, user_id: int) -> None:
    """Back under the limit: the running jobs flagged by ``warn`` lose the flag."""
    jobs = session.scalars(
        select(Job)
        .where(Job.user_id == user_id, Job.status == JobStatus.RUNNING.value)
        .order_by(Job.id)
        .with_for_update()  # the job manager's changes to job_details are not overwritten
    )
    for job in jobs:
        details = dict(job.job_details or {})
        current = dict(details.get("current_job_details") or {})
        if (current.get("disk_quota") or {}).get("action") == "warn":
            del current["disk_quota"]
            job.job_details = {**details, "current_job_details": current}
