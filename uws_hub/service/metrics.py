"""The service's Prometheus metrics that are read from the uws database at scrape time.

Counters and histograms of events live with the code that counts them (quota refusals in
`uws_hub.quotas`, copies in `uws_hub.shares.manager`, job starts in `uws_hub.jobs.manager`,
scheduler commands in `uws_hub.slurm.monitor`). What is a *state* — how many workspaces and
jobs there are in each status — is computed when Prometheus scrapes, by one grouped query per
table, so it is always right, survives restarts, and costs nothing between scrapes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Job, JobStatus, Workspace, WorkspaceStatus

log = logging.getLogger("uws_hub.service")

#: statuses a person can see (``deleted`` rows are kept for history only)
WORKSPACE_STATUSES = [s.value for s in WorkspaceStatus if s is not WorkspaceStatus.DELETED]
JOB_STATUSES = [s.value for s in JobStatus]


class DatabaseCollector(Collector):
    """Workspaces by status, jobs by status and job type, and whether the database answered."""

    def __init__(self, db: sessionmaker[Session], job_types: Iterable[str] = ()):
        self.db = db
        self.job_types = list(job_types)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "uws_workspaces",
                "Workspaces in each status (initializing, idle, active, deleting, error)",
                labels=["status"],
            ),
            GaugeMetricFamily(
                "uws_jobs",
                "Jobs in each status, by job type (ended jobs stay counted as complete or failed)",
                labels=["status", "job_type"],
            ),
            GaugeMetricFamily(
                "uws_database_up",
                "1 if the uws database answered this scrape's queries, else 0",
            ),
        )

    def describe(self):
        return list(self._families())

    def collect(self):
        workspaces, jobs, up = self._families()
        try:
            with self.db() as session:
                by_status = dict(
                    session.execute(
                        select(Workspace.status, func.count()).group_by(Workspace.status)
                    ).all()
                )
                by_job = {
                    (status, job_type): n
                    for status, job_type, n in session.execute(
                        select(Job.status, Job.job_type, func.count()).group_by(
                            Job.status, Job.job_type
                        )
                    ).all()
                }
        except Exception as e:  # a scrape reports the failure; it never fails itself
            log.warning("metrics: the uws database did not answer: %s", e)
            up.add_metric([], 0)
            yield up
            return
        for status in WORKSPACE_STATUSES:
            workspaces.add_metric([status], by_status.get(status, 0))
        # every configured job type in every status (0, not a missing series), plus types
        # only old rows still name
        types = list(dict.fromkeys([*self.job_types, *(t for _, t in by_job)]))
        for job_type in types:
            for status in JOB_STATUSES:
                jobs.add_metric([status, job_type], by_job.get((status, job_type), 0))
        up.add_metric([], 1)
        yield workspaces
        yield jobs
        yield up


_registered: DatabaseCollector | None = None


def register(
    db: sessionmaker[Session], job_types: Iterable[str], registry: CollectorRegistry = REGISTRY
) -> DatabaseCollector:
    """Add the database collector to `registry` (once per process: a second call replaces it)."""
    global _registered
    if _registered is not None:
        try:
            registry.unregister(_registered)
        except KeyError:
            pass
    _registered = DatabaseCollector(db, job_types)
    registry.register(_registered)
    return _registered
