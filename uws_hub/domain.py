"""The domain, wired: every manager built with what it uses, through its constructor. The
service (`service.app.ServiceContext`) and the unit tests build it the same way, here."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from .config import UWS
from .diskwatch import DiskWatch
from .jobs.manager import JobManager
from .jobs.sessions import SessionManager, SessionWatch
from .notify import Notifier
from .quotas import QuotaManager
from .shares.copyrun import ShareCopies
from .shares.manager import ShareManager
from .users.deletions import UserDeletions
from .workspaces import fsops
from .workspaces.manager import WorkspaceManager
from .workspaces.rescans import Rescans
from .workspaces.work import PendingWork


@dataclass
class Domain:
    quotas: QuotaManager
    notifier: Notifier
    work: PendingWork  # the reconciler waits on it; the managers signal recorded work
    share_copies: ShareCopies
    workspaces: WorkspaceManager
    shares: ShareManager
    jobs: JobManager
    rescans: Rescans  # keeps workspaces true to disk after and during jobs
    diskwatch: DiskWatch  # tells people about their disk usage and deals with jobs over it
    user_deletions: UserDeletions  # settles people deleted from the hub
    sessions: SessionManager  # extends running jobs within their policy
    session_watch: SessionWatch  # warns before time limits


def build_domain(
    settings: UWS,
    db: sessionmaker[Session],
    executor: Executor,
    hub: Any,
    *,
    work: PendingWork | None = None,
) -> Domain:
    """The managers over database `db`, filesystem threads `executor` and the hub's REST API
    `hub` (`service.hubclient.HubClient` or a stand-in with its methods)."""
    quotas = QuotaManager(settings)
    notifier = Notifier(settings, db)
    work = work or PendingWork()
    share_copies = ShareCopies(settings, db, notifier=notifier)
    workspaces = WorkspaceManager(
        settings, db, executor, quotas=quotas, work=work, share_copies=share_copies
    )
    shares = ShareManager(settings, db, workspaces, quotas=quotas, work=work, notifier=notifier)
    jobs = JobManager(settings, db, hub, quotas=quotas)
    rescans = Rescans(
        workspaces,
        db,
        interval=settings.rescan_interval,
        concurrency=settings.rescan_concurrency,
    )
    diskwatch = DiskWatch(settings, db, quotas, notifier, jobs)
    rescans.after_scan = diskwatch.check_user  # a rescan may move its owner across a level
    user_deletions = UserDeletions(
        settings, db, hub, jobs=jobs, shares=shares, work=work, executor=executor, fs=fsops
    )
    sessions = SessionManager(settings, quotas, jobs)
    session_watch = SessionWatch(settings, db, hub, jobs)
    return Domain(
        quotas,
        notifier,
        work,
        share_copies,
        workspaces,
        shares,
        jobs,
        rescans,
        diskwatch,
        user_deletions,
        sessions,
        session_watch,
    )
