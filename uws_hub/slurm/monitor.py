"""A shared view of the Slurm queue for every job the hub tracks.

Like kubespawner's reflector: one long-lived object per hub process keeps a snapshot of the
queue, refreshed by a single ``squeue`` (all jobs, all states still in the controller's memory)
when a caller wants data newer than it has. Every spawner's ``poll()`` reads the snapshot, so
N jobs cost one scheduler query per interval, not N; concurrent callers share one refresh. A
hub restart's re-adoption of all jobs is one query.

A controller timeout or error is "unknown" — never the end of a job. A job absent from the
queue is looked up with ``scontrol show job`` before anyone calls it ended.
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger("uws_hub.slurm")

# in the default registry of the process that runs them: the hub's /hub/metrics for the
# spawners' queries, the uws service's metrics for its job sync's (orphaned jobs)
# each by cluster (c.UWS.slurm_clusters) and way: ``commands`` (the command itself) or ``rest``
# (the slurmrestd request that stands for it: GET jobs is squeue, POST job/submit is sbatch...)
SLURM_QUERIES = Counter(
    "uws_slurm_queries",
    "Scheduler queries (squeue, scontrol, sacct, sbatch, scancel, ping), by cluster, way "
    "(commands or rest: the slurmrestd request standing for the command) and command",
    ["cluster", "way", "command"],
)
SLURM_ERRORS = Counter(
    "uws_slurm_query_errors",
    "Scheduler queries that did not succeed, by cluster, way, command and reason (timeout: "
    "no answer in c.UWS.slurm_command_timeout; exit: a non-zero exit status or an HTTP or "
    "Slurm error; exec: could not be run, or no token could be made)",
    ["cluster", "way", "command", "reason"],
)
SLURM_SECONDS = Histogram(
    "uws_slurm_query_seconds",
    "Duration of scheduler queries, by cluster, way and command",
    ["cluster", "way", "command"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
SLURM_QUEUE_UP = Gauge(
    "uws_slurm_queue_up",
    "1 if the cluster's Slurm monitor's last queue read answered, 0 if it did not (NaN "
    "before the first), by cluster",
    ["cluster"],
)


def declare(cluster: str, way: str) -> None:
    """The cluster's series, present from the start (a 0, not a missing series)."""
    SLURM_QUEUE_UP.labels(cluster).set(float("nan"))
    for cmd in ("squeue", "scontrol", "sbatch", "scancel"):
        SLURM_QUERIES.labels(cluster, way, cmd)
        SLURM_ERRORS.labels(cluster, way, cmd, "timeout")


LIVE_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
}
UNKNOWN = "UNKNOWN"  # the scheduler did not answer
GONE = "GONE"  # Slurm no longer knows the job
#: id, state, reason, nodes, time left, time used, CPUs, partition, priority, start (a pending
#: job's expected start, where the scheduler has one), name (last: it may hold the separator)
SQUEUE_FORMAT = "%i|%T|%r|%N|%L|%M|%C|%P|%Q|%S|%j"


def parse_start(text: str) -> int | None:
    """squeue's ``%S`` (``2026-12-06T14:32:00``; the commands run with ``TZ=UTC``) as epoch
    seconds; None for ``N/A``, ``Unknown`` and the like."""
    try:
        return calendar.timegm(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def parse_duration(text: str) -> int | None:
    """Slurm's [D-]HH:MM:SS, MM:SS or minutes as seconds; None for UNLIMITED/INVALID/NOT_SET."""
    text = (text or "").strip()
    if not text or not text[0].isdigit():
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return days * 86400 + seconds


@dataclass
class SlurmJob:
    job_id: str
    state: str
    reason: str = ""
    node: str = ""
    time_left_s: int | None = None
    elapsed_s: int | None = None
    cpus: int | None = None
    partition: str = ""
    priority: int = 0
    name: str = ""
    position: int | None = None  # among pending jobs of the partition, 1 = next
    exit_code: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES or self.state == UNKNOWN

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def pending(self) -> bool:
        return self.state in ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "RESV_DEL_HOLD")

    @property
    def ended(self) -> bool:
        return not self.live


@contextmanager
def measured(command: str, cluster: str = "default") -> Iterator[None]:
    """Count and time one scheduler command run some other way (batchspawner's sbatch); an
    exception is an error (reason ``exit``)."""
    SLURM_QUERIES.labels(cluster, "commands", command).inc()
    t0 = time.perf_counter()
    try:
        yield
    except Exception:
        SLURM_ERRORS.labels(cluster, "commands", command, "exit").inc()
        raise
    finally:
        SLURM_SECONDS.labels(cluster, "commands", command).observe(time.perf_counter() - t0)


async def run(
    cmd: list[str], timeout: float, env: dict | None = None, cluster: str = "default"
) -> tuple[int, str, str]:
    """Run a scheduler command; (exit status, stdout, stderr); status 124 on timeout. (A
    command run as its owner, ``runuser -u NAME -- scancel``, counts as ``scancel``.)"""
    label = os.path.basename(cmd[cmd.index("--") + 1] if "--" in cmd else cmd[0])
    m = (cluster, "commands", label)
    SLURM_QUERIES.labels(*m).inc()
    t0 = time.perf_counter()
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as e:
        SLURM_ERRORS.labels(*m, "exec").inc()
        return 127, "", str(e)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        SLURM_ERRORS.labels(*m, "timeout").inc()
        return 124, "", f"{label} did not answer within {timeout:.0f} s"
    finally:
        SLURM_SECONDS.labels(*m).observe(time.perf_counter() - t0)
    if proc.returncode:
        SLURM_ERRORS.labels(*m, "exit").inc()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace").strip()


#: starting jobs a source that reads one job cheaply asks for one by one (more share a read)
FEW_STARTING = 4


class QueueUnknown(Exception):
    """The scheduler did not answer (the queue is unknown, no job has ended by it)."""


class CommandsSource:
    """The queue through Slurm's commands on this host: one ``squeue`` for all jobs; a job
    missing from it is looked up with ``scontrol show job``, then in accounting (``sacct``)."""

    way = "commands"

    def __init__(
        self,
        timeout: float = 20.0,
        path: str = "/usr/bin:/bin:/usr/sbin:/sbin",
        env: dict | None = None,
        cluster: str = "default",
    ):
        self.timeout = timeout
        #: the commands' environment: PATH, and the cluster's SLURM_CONF where it has its own
        self.env = dict(env) if env else {"PATH": path, "LANG": "C", "TZ": "UTC"}
        self.cluster = cluster

    async def _run(self, cmd: list[str]) -> tuple[int, str, str]:
        return await run(cmd, self.timeout, self.env, cluster=self.cluster)

    async def queue(self) -> dict[str, SlurmJob]:
        code, out, err = await self._run(
            ["squeue", "-h", "--all", "--states=all", "-o", SQUEUE_FORMAT]
        )
        if code != 0:
            raise QueueUnknown(err or f"squeue exited with status {code}")
        jobs: dict[str, SlurmJob] = {}
        for line in out.splitlines():
            parts = line.split("|", 10)
            if len(parts) < 11:
                continue
            jid, state, reason, node, left, used, cpus, part, prio, start, name = parts
            job = jobs[jid] = SlurmJob(
                job_id=jid,
                state=state.strip(),
                reason=reason.strip(),
                node=node.strip(),
                time_left_s=parse_duration(left),
                elapsed_s=parse_duration(used),
                cpus=int(cpus) if cpus.strip().isdigit() else None,
                partition=part.strip(),
                priority=int(prio) if prio.strip().isdigit() else 0,
                name=name,
            )
            if job.pending and (estimate := parse_start(start)):
                job.extra["start_estimate"] = estimate  # as slurmrestd's start_time says
        return jobs

    async def look_up(self, job_id: str) -> SlurmJob:
        """A job missing from squeue: ask scontrol before calling it ended."""
        code, out, err = await self._run(["scontrol", "show", "job", "-o", job_id])
        if code == 0 and "JobState=" in out:
            fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
            return SlurmJob(
                job_id,
                fields.get("JobState", UNKNOWN),
                reason=fields.get("Reason", ""),
                node=fields.get("NodeList", ""),
                elapsed_s=parse_duration(fields.get("RunTime", "")),
                cpus=int(fields["NumCPUs"]) if fields.get("NumCPUs", "").isdigit() else None,
                partition=fields.get("Partition", ""),
                exit_code=fields.get("ExitCode", ""),
            )
        if "Invalid job id" in (err + out):
            return await self._from_accounting(job_id)
        return SlurmJob(job_id, UNKNOWN, reason=err or f"scontrol exited with status {code}")

    async def _from_accounting(self, job_id: str) -> SlurmJob:
        """The controller has forgotten the job (MinJobAge): ask accounting, where there is one."""
        code, out, err = await self._run(
            [
                "sacct",
                "-j",
                job_id,
                "-X",
                "-n",
                "-P",
                "-o",
                "State,ElapsedRaw,AllocCPUS,Reason,NodeList,ExitCode",
            ]
        )
        # (the latest such job: ids come round again)
        line = out.strip().splitlines()[-1] if code == 0 and out.strip() else ""
        parts = line.split("|")
        if len(parts) >= 6 and parts[0]:
            return SlurmJob(
                job_id,
                parts[0].split()[0],  # "CANCELLED by 1004" -> CANCELLED
                reason=parts[3],
                node=parts[4],
                elapsed_s=int(parts[1]) if parts[1].isdigit() else None,
                cpus=int(parts[2]) if parts[2].isdigit() else None,
                exit_code=parts[5],
            )
        return SlurmJob(
            job_id, GONE, reason="Slurm no longer knows this job (and keeps no accounting here)."
        )


class SlurmMonitor:
    """One cluster's queue for every caller in this process (see `uws_hub.slurm.clusters`)."""

    def __init__(
        self,
        interval: float = 10.0,
        timeout: float = 20.0,
        path: str = "/usr/bin:/bin:/usr/sbin:/sbin",
        source=None,
        cluster: str = "default",
    ):
        self.interval = interval
        self.timeout = timeout
        self.cluster = cluster
        #: where the queue comes from: `CommandsSource` (the default) or a
        #: `uws_hub.slurm.rest.RestSource`
        self.source = (
            source if source is not None else CommandsSource(timeout, path, cluster=cluster)
        )
        declare(cluster, self.source.way)
        self.snapshot: dict[str, SlurmJob] = {}
        self.snapshot_time = float("-inf")
        self.snapshot_ok = False
        self.last_error = ""
        self._refresh: asyncio.Task | None = None
        self._final: OrderedDict[str, SlurmJob] = OrderedDict()  # ended jobs (bounded)
        #: jobs checked by `status_while_starting` in the last 2 s, and when
        self._starting: dict[str, float] = {}
        #: the last read of each of those read alone, and when (`max_age` holds for it too)
        self._read_alone: dict[str, tuple[float, SlurmJob]] = {}
        self.refreshes = 0

    async def refresh(self) -> None:
        """Refresh the snapshot with one query; concurrent callers share the same query."""
        await asyncio.shield(self._refresh_soon())

    def _refresh_soon(self) -> asyncio.Future:
        """The snapshot's refresh under way, started if there is none (not awaited here)."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._do_refresh())
            self._refresh.add_done_callback(self._log_failed_refresh)
        return self._refresh

    def _log_failed_refresh(self, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "slurm monitor (%s): the queue read failed", self.cluster, exc_info=task.exception()
            )

    async def _do_refresh(self) -> None:
        try:
            jobs = await self.source.queue()
        except Exception as e:  # QueueUnknown, or a source's own failure: unknown, not ended
            self.refreshes += 1
            self.snapshot_time = time.monotonic()  # (so not read again before the interval)
            self.snapshot_ok = False
            SLURM_QUEUE_UP.labels(self.cluster).set(0)
            self.last_error = str(e) or type(e).__name__
            log.warning(
                "slurm monitor (%s): queue unknown: %s",
                self.cluster,
                self.last_error,
                exc_info=not isinstance(e, QueueUnknown),
            )
            return
        self.refreshes += 1
        self.snapshot_time = time.monotonic()
        SLURM_QUEUE_UP.labels(self.cluster).set(1)
        by_partition: dict[str, list[SlurmJob]] = {}
        for job in jobs.values():
            if job.pending:
                by_partition.setdefault(job.partition, []).append(job)
        for queue in by_partition.values():
            queue.sort(key=lambda j: (-j.priority, int(j.job_id) if j.job_id.isdigit() else 0))
            for i, job in enumerate(queue):
                job.position = i + 1
        self.snapshot, self.snapshot_ok, self.last_error = jobs, True, ""

    async def status(self, job_id: str, max_age: float | None = None) -> SlurmJob:
        """What Slurm says of `job_id`, from a snapshot at most `max_age` seconds old."""
        job_id = str(job_id)
        if job_id in self._final:
            return self._final[job_id]
        age = time.monotonic() - self.snapshot_time
        if age > (self.interval if max_age is None else max_age):
            await self.refresh()
        if not self.snapshot_ok:
            return SlurmJob(job_id, UNKNOWN, reason=self.last_error)
        job = self.snapshot.get(job_id)
        if job is None:
            job = await self.source.look_up(job_id)
        if job.ended:
            self._final[job_id] = job
            while len(self._final) > 10000:
                self._final.popitem(last=False)
        return job

    async def status_while_starting(self, job_id: str, max_age: float) -> SlurmJob:
        """A starting job's state, checked often (every 0.2 s). Where the source reads one job
        far more cheaply than all (slurmrestd: the whole queue's JSON costs the cluster about
        0.15 s of CPU for 2,000 jobs, bench P3), each of up to `FEW_STARTING` jobs starting at
        once is read alone; more share the snapshot, one read for all, as `status` does."""
        job_id = str(job_id)
        now = time.monotonic()
        self._starting[job_id] = now
        for other in [k for k, t in self._starting.items() if now - t > 2.0]:
            del self._starting[other]
        read_one = getattr(self.source, "read_one", None)
        if read_one is None or job_id in self._final or len(self._starting) > FEW_STARTING:
            return await self.status(job_id, max_age)
        last = self._read_alone.get(job_id)
        if last is not None and now - last[0] < max_age:
            # (read `max_age` ago at most: the checks while its server starts ask for one a
            # second, not one every 0.2 s, slurmrestd's and slurmctld's CPU being the job's)
            job = copy.copy(last[1])
        else:
            job = await read_one(job_id)
            self._read_alone[job_id] = (now, copy.copy(job))  # (when the read was asked)
            for other in [k for k in self._read_alone if k not in self._starting]:
                del self._read_alone[other]
        if job.ended:
            self._final[job_id] = job
            while len(self._final) > 10000:
                self._final.popitem(last=False)
        elif job.pending:
            self._place_in_queue(job)
        return job

    def _place_in_queue(self, job: SlurmJob) -> None:
        """A job read alone has no place in its partition's queue: that needs every job. It
        takes the one the shared snapshot gives it, the snapshot refreshed in the background
        at most once per interval, as `status` would (the next check shows the place)."""
        if time.monotonic() - self.snapshot_time > self.interval:
            self._refresh_soon()
        known = self.snapshot.get(job.job_id) if self.snapshot_ok else None
        if job.position is None and known is not None and known.pending:
            job.position = known.position

    def forget(self, job_id: str) -> None:
        self._final.pop(str(job_id), None)
        self._starting.pop(str(job_id), None)
        self._read_alone.pop(str(job_id), None)
