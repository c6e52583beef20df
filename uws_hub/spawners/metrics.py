"""The uws spawners' Prometheus metrics, in the hub process's default registry: JupyterHub's
own ``/hub/metrics`` shows them beside its ``jupyterhub_*`` metrics (and the Slurm monitor's
``uws_slurm_*``, see `monitor`). ``kind`` is the resource kind, ``local`` or ``slurm``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SPAWNER_STARTS = Counter(
    "uws_spawner_starts_total",
    "Job server starts by the uws spawners, by resource kind and outcome (success; failed; "
    "cancelled: timed out or stopped while starting; refused: the job was not startable)",
    ["kind", "outcome"],
)
SPAWNER_START_SECONDS = Histogram(
    "uws_spawner_start_seconds",
    "Duration of successful job server starts in the hub, from the spawner's start until the "
    "server answers (Slurm queue wait included)",
    ["kind"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200),
)
SPAWNER_ENDS = Counter(
    "uws_spawner_job_ends_total",
    "Job ends recorded by the uws spawners, by resource kind and the job's final status "
    "(complete, failed)",
    ["kind", "status"],
)

for _kind in ("local", "slurm"):  # every series from the start (a 0, not a missing series)
    for _outcome in ("success", "failed", "cancelled"):
        SPAWNER_STARTS.labels(_kind, _outcome)
    for _status in ("complete", "failed"):
        SPAWNER_ENDS.labels(_kind, _status)
    SPAWNER_START_SECONDS.labels(_kind)
