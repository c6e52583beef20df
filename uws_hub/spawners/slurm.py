"""Jobs as Slurm batch jobs (batchspawner's SlurmSpawner, with uws's fixes).

Fixed against batchspawner 1.3.0: job status comes from the cluster's shared `SlurmMonitor`
(one queue read per interval for all jobs, not one per server per poll; a scheduler that does
not answer is "unknown", never "ended"); a job that dies before reporting its port fails the
spawn at the next check, with the end of its log, instead of after the whole start timeout; the
deprecated ``Spawner.db`` is not used; commands run as the workspace owner through ``runuser``.

A resource's cluster (`uws_hub.slurm.clusters`) is reached with the commands (``sbatch`` with
the batch script, as batchspawner) or through slurmrestd (the same script, the request as job
properties, submitted and cancelled with a token of the job's owner).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

from batchspawner import SlurmSpawner
from batchspawner.batchspawner import format_template
from jupyterhub.spawner import SpawnException
from traitlets import Float, Unicode, default

from ..db.models import JobStatus
from ..slurm.clusters import Cluster, ClusterError, ClusterNotConfigured, cluster_of
from ..slurm.monitor import GONE, UNKNOWN, SlurmJob, SlurmMonitor, measured
from ..slurm.spec import job_cluster
from ..times import utc_text
from . import jobctx
from .mixin import UWSJobMixin

J = JobStatus


def utc_text_of(epoch: float) -> str | None:
    """An epoch time as the API writes times; None for one gone by (no estimate then)."""
    import datetime as dt

    if epoch <= time.time() + 1:
        return None
    return utc_text(dt.datetime.fromtimestamp(epoch, dt.timezone.utc))


BATCH_SCRIPT = """#!/bin/bash
#SBATCH --job-name=uws-job-{{uws_job_id}}
#SBATCH --comment=uws-job-{{uws_job_id}}
#SBATCH --output={{log_path}}
#SBATCH --chdir={{workspace}}
#SBATCH --export={{keepvars}}
{% for d in directives %}#SBATCH {{d}}
{% endfor %}
set -euo pipefail
trap 'echo "uws: the job received SIGTERM"' TERM
{% for m in modules %}module load {{m}}
{% endfor %}{{prologue}}
{% if srun %}{{srun}} {% endif %}{{cmd}}
"""


class UWSSlurmSpawner(UWSJobMixin, SlurmSpawner):
    """A job as a Slurm batch job in the resource's partition, as the workspace owner."""

    uws_kind = "slurm"

    batch_script = Unicode(BATCH_SCRIPT, config=True, help="Template of the batch script (Jinja2).")

    batchspawner_singleuser_cmd = Unicode(
        "uws-job-singleuser",
        config=True,
        help="""Wrapper that starts the server on a free port and reports it to the hub
        (uws_hub's: standard library only, then exec; batchspawner-singleuser also works).""",
    )

    @default("exec_prefix")
    def _default_exec_prefix(self):
        if os.geteuid() != 0:
            return ""  # single-account mode: submit as ourselves
        return (
            shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
        ) + " -u {username} --"

    startup_poll_interval = Float(
        0.2, config=True, help="Seconds between checks while a job starts."
    )

    startup_fast_checks = Float(
        6.0,
        config=True,
        help="""Seconds after submission during which the queue is checked every
        startup_poll_interval (slurmctld starts jobs on its one-second pass, most within the
        first few: a start is seen when it happens, not up to a second later); then ever less
        often. The queue read is shared by every job starting at the same time.""",
    )

    uws_account = Unicode(
        "", help="POSIX account the job runs as (kept in the state, for scancel after a restart)."
    )
    uws_cluster = Unicode(
        "", help="The cluster that runs the job (kept in the state: its monitor after a restart)."
    )
    uws_persisted = ("uws_account", "uws_cluster")

    @default("req_username")
    def _uws_req_username(self):
        return self._job.account.name if self._job else (self.uws_account or self.user.name)

    @default("req_homedir")
    def _uws_req_homedir(self):
        if self._job:
            return self._job.account.home or self._job.workspace_path
        return "/"

    def bind_job(self, ctx):
        super().bind_job(ctx)
        self.uws_account = ctx.account.name
        self.uws_cluster = job_cluster(self.uws, ctx.resource.id) or ""

    @property
    def cluster(self) -> Cluster:
        """The job's cluster: its resource's, or (after a restart) the one kept in the state
        (`find_cluster` first, for a state kept before clusters were)."""
        if self._job is not None:
            return cluster_of(self.uws, self._job.resource.cluster)
        return cluster_of(self.uws, self.uws_cluster or None)

    async def find_cluster(self) -> Cluster:
        """The job's cluster, its record asked where the state names none (kept by a hub from
        before several clusters: the record, else its resource, says)."""
        if self._job is None and not self.uws_cluster and self.uws_job_id:
            found = await asyncio.to_thread(jobctx.job_cluster_id, self.uws, self.uws_job_id)
            self.uws_cluster = found or ""
        return self.cluster

    async def _end_unfollowable(self, e: ClusterNotConfigured, *, via_stop: bool = False) -> None:
        """A job whose cluster is no longer configured: the hub cannot follow or cancel it."""
        self.log.warning("job %s: %s", self.uws_job_id, e)
        gone = SlurmJob(str(self.job_id), GONE, reason=f"{e}; the hub cannot follow this job.")
        gone.extra["unfollowable"] = True
        await self.record_end(gone, via_stop=via_stop)
        self.clear_state()

    @property
    def monitor(self) -> SlurmMonitor:
        return self.cluster.monitor

    def get_env(self):
        env = super().get_env()
        if self._job is not None:
            try:
                env.update(self.cluster.job_env)
            except ClusterError:
                pass  # (the submission says why, in its own words)
        return env

    # ---- the batch script -----------------------------------------------------------------------

    def get_req_subvars(self):
        """The batch script's variables: batchspawner's, plus the job's account, log,
        workspace, ``#SBATCH`` directives, modules and prologue."""
        subvars = super().get_req_subvars()
        ctx = self._job
        if ctx is not None:
            plan = self._plan()
            subvars.update(
                username=ctx.account.name,
                homedir=ctx.account.home or ctx.workspace_path,
                uws_job_id=ctx.job_id,
                log_path=self.log_path(),
                workspace=ctx.workspace_path,
                directives=plan.slurm_directives(ctx.resource),
                modules=list(ctx.job_type.modules),
                prologue=ctx.job_type.prologue,
            )
        return subvars

    def _plan(self):
        from ..jobs.launch import LaunchPlan, slurm_placement

        ctx = self._job
        partition, gres = slurm_placement(ctx.resource, ctx.gpus)
        return LaunchPlan(
            job_type=ctx.job_type.id,
            resource=ctx.resource.id,
            kind="slurm",
            cpus=ctx.cpus,
            memory_mb=ctx.memory_mb,
            time_limit_min=max(1, ctx.time_limit_s // 60),
            gpus=ctx.gpus,
            partition=partition,
            gres=gres,
        )

    async def submit_batch_script(self):
        """Submit the script, built only from configuration and validated numbers.

        (batchspawner's version also merges ``user_options`` into the template variables, which
        would let a client write into the batch script; ours does not.)
        """
        if self.cluster.rest is not None:
            return await self._submit_rest()
        subvars = self.get_req_subvars()
        cmd = " ".join(
            (
                format_template(self.exec_prefix, **subvars),
                format_template(self.batch_submit_cmd, **subvars),
            )
        ).strip()
        subvars["cmd"] = self.cmd_formatted_for_batch()
        script = await self._get_batch_script(**subvars)
        self.log.debug("job %s: submitting\n%s", self.uws_job_id, script)
        with measured("sbatch", self.cluster.id):
            out = await self.run_command(cmd, input=script, env=self.get_env())
        self.job_id = self.parse_job_id(out)
        return self.job_id

    async def _submit_rest(self) -> str:
        """The same batch script through slurmrestd, as the job's owner; what ``#SBATCH``
        lines say goes in the job properties (slurmrestd takes the request from those), with
        the job's whole environment (slurmrestd passes no other)."""
        ctx = self._job
        subvars = self.get_req_subvars()
        subvars["cmd"] = self.cmd_formatted_for_batch()
        script = await self._get_batch_script(**subvars)
        job = {"name": f"uws-job-{ctx.job_id}", "comment": f"uws-job-{ctx.job_id}"}
        # (the resource's directives after these, as #SBATCH lines come after the script's)
        job.update(self._plan().slurm_job_properties(ctx.resource))
        job.update(
            standard_output=self.log_path(),
            current_working_directory=ctx.workspace_path,
            environment=self.get_env(),
        )
        self.log.debug("job %s: submitting through slurmrestd\n%s", self.uws_job_id, script)
        try:
            self.job_id = await self.cluster.submit(ctx.account.name, script, job)
        except ClusterError as e:
            raise RuntimeError(str(e)) from e
        return self.job_id

    async def cancel_batch_job(self):
        """Cancel the job as its owner (scancel through runuser, or slurmrestd with their token)."""
        try:
            await self.cluster.cancel(self.req_username, self.job_id)
        except ClusterError as e:
            raise RuntimeError(str(e)) from e

    # ---- start ----------------------------------------------------------------------------------

    async def start_job(self) -> str:
        """Submit the batch job, wait in the queue until it runs, then until the server in it
        reports its port; returns the server's URL."""
        self.ip = "0.0.0.0"
        self.port = 0
        await self._submit()
        info = await self._wait_until_running()
        self._running_since = jobctx.now()
        self.ip = info.node.split(",")[0]
        await self.record(host=self.ip, start_estimate=None)
        await self.emit(f"Running on {self.ip}; starting the server.", 50)
        await self._wait_for_port()
        return f"http://{self.ip}:{self.port}"

    async def _submit(self) -> None:
        ctx = self._job
        try:
            cluster = self.cluster
        except ClusterError as e:  # not reachable as configured: say so, submit nothing
            raise SpawnException(
                f"The job's Slurm cluster cannot be used: {e}. Ask an administrator.",
                reason="cluster",
                status_code=503,
            ) from e
        where = (
            f"partition {ctx.resource.partition}"
            if ctx.resource.partition
            else "the default partition"
        )
        if len(self.uws.cluster_map) > 1:
            where += f" of cluster {cluster.spec.name}"
        await self.emit(f"Submitting the job to Slurm ({where}).", 10)
        try:
            await self.submit_batch_script()
        except RuntimeError as e:
            raise SpawnException(
                f"Slurm refused the job: {str(e).strip() or 'sbatch failed'}",
                reason="sbatch",
                status_code=500,
            ) from e
        if not self.job_id:
            raise SpawnException("Slurm did not return a job id.", reason="sbatch", status_code=500)
        await self.record(resource_job_id=int(self.job_id), cluster=cluster.id)
        await self.emit(f"Submitted Slurm job {self.job_id}.", 20)

    async def _wait_until_running(self) -> SlurmJob:
        """Wait while the job is queued, telling why; fail if it ends before it runs."""
        last, wait = None, self.startup_poll_interval
        submitted = time.monotonic()
        while True:
            # while Slurm usually starts a job (its first scheduling passes) check at the start
            # pace; a job that stays queued, less and less often
            fast = time.monotonic() - submitted <= self.startup_fast_checks
            if fast:  # (slurmrestd: this job alone while few start at once)
                info = await self.monitor.status_while_starting(self.job_id, max_age=wait)
            else:
                info = await self.monitor.status(self.job_id, max_age=wait)
            if info.running:
                return info
            if info.ended:
                raise await self._ended_early(info, "before it started")
            text = self._queue_message(info)
            if text != last:
                estimate = info.extra.get("start_estimate") if info.pending else None
                await self.emit(
                    text, 30, start_estimate=utc_text_of(estimate) if estimate else None
                )
                last = text
            await asyncio.sleep(wait)
            if time.monotonic() - submitted > self.startup_fast_checks:
                wait = min(
                    wait * 1.5, max(self.startup_poll_interval, min(self.monitor.interval, 5.0))
                )

    @staticmethod
    def _queue_message(info: SlurmJob) -> str:
        if info.state == UNKNOWN:
            return "The scheduler is not answering; still waiting."
        why = [info.reason] if info.reason and info.reason != "None" else []
        if info.position:
            why.append(f"position {info.position} in {info.partition}")
        text = "Waiting in the Slurm queue" + (f" ({', '.join(why)})" if why else "") + "."
        estimate = utc_text_of(info.extra.get("start_estimate") or 0)
        if estimate:  # (a time gone by is none; as 2026-12-06 14:32 UTC)
            text += f" Slurm expects to start it by {estimate[:10]} {estimate[11:16]} UTC."
        return text

    async def _wait_for_port(self) -> None:
        """Until the job reports its port (batchspawner's hub API sets it); fail if it ends."""
        checked = time.monotonic()
        while self.port == 0:
            if time.monotonic() - checked >= 1.0:
                info = await self.monitor.status_while_starting(self.job_id, max_age=1.0)
                if info.ended:
                    raise await self._ended_early(info, "before the server reported its port")
                checked = time.monotonic()
            await asyncio.sleep(0.05)

    async def _ended_early(self, info: SlurmJob, when: str) -> SpawnException:
        tail = await self.log_tail()
        reason = info.reason if info.reason and info.reason != "None" else info.state
        return SpawnException(
            f"Slurm job {self.job_id} ended ({info.state}) {when}: {reason}."
            + (f"\n--- end of the job log ---\n{tail}" if tail else ""),
            reason="died",
            status_code=500,
        )

    async def job_alive(self) -> tuple[bool, str]:
        """(Asked while the server starts: as the other checks of a start.)"""
        info = await self.monitor.status_while_starting(self.job_id, max_age=1.0)
        if info.ended:
            return False, f"Slurm job {self.job_id} ended ({info.state})"
        return True, ""

    # ---- poll / stop ------------------------------------------------------------------------------

    async def poll(self):
        if not self.job_id:
            return 0
        try:
            cluster = await self.find_cluster()
        except ClusterNotConfigured as e:
            await self._end_unfollowable(e)
            return 1
        except ClusterError as e:  # configured, not reachable as configured: unknown
            self.log.warning("job %s: %s", self.uws_job_id, e)
            return None
        info = await cluster.monitor.status(self.job_id)
        if info.live:
            return None
        await self.record_end(info)
        self.clear_state()
        return 1

    async def stop(self, now=False):
        """Cancel the job; record its end only once Slurm confirms it. Otherwise the row stays
        ``stopping`` and the uws service's job sync finishes the cancellation (it checks Slurm)."""
        await self.note_stop_request()
        if not self.job_id:
            await self.record_end(None, via_stop=True)
            return
        try:
            cluster = await self.find_cluster()
        except ClusterNotConfigured as e:
            await self._end_unfollowable(e, via_stop=True)
            return
        except ClusterError as e:  # configured, not reachable as configured: try again later
            self.log.warning("job %s: %s", self.uws_job_id, e)
            await self.record(
                status=J.STOPPING.value,
                message=f"Cancelling Slurm job {self.job_id}: its cluster cannot be reached ({e}).",
            )
            return
        try:
            await self.cancel_batch_job()
        except (RuntimeError, ClusterError) as e:
            self.log.warning("job %s: scancel %s: %s", self.uws_job_id, self.job_id, e)
        info = None
        for _ in range(0 if now else 20):
            info = await cluster.monitor.status(self.job_id, max_age=0.5)
            if info.ended:
                break
            await asyncio.sleep(0.5)
        if info is not None and info.ended:
            await self.record_end(info, via_stop=True)
        else:
            await self.record(
                status=J.STOPPING.value,
                message=f"Cancelling Slurm job {self.job_id}; the scheduler has not confirmed yet.",
            )

    async def job_core_seconds(self, info):
        """Slurm's elapsed time x allocated CPUs."""
        if isinstance(info, SlurmJob) and info.elapsed_s is not None and info.cpus:
            return info.elapsed_s * info.cpus
        return None

    async def job_end_facts(self, info):
        core = await self.job_core_seconds(info)
        state = info.state if isinstance(info, SlurmJob) else UNKNOWN
        if state == "COMPLETED":
            return J.COMPLETE.value, "The job ended.", core
        if state == "TIMEOUT":
            return J.COMPLETE.value, "The job reached its time limit.", core
        if state == "CANCELLED":
            return (
                J.FAILED.value,
                f"Slurm job {self.job_id} was cancelled outside the hub (scancel or an administrator).",
                core,
            )
        if state == GONE and info.extra.get("unfollowable"):
            return J.FAILED.value, f"Slurm job {self.job_id}: {info.reason}", core
        if state == GONE:
            return (
                J.FAILED.value,
                f"Slurm job {self.job_id} is no longer known to the scheduler.",
                core,
            )
        reason = (
            info.reason if isinstance(info, SlurmJob) and info.reason not in ("", "None") else ""
        )
        return (
            J.FAILED.value,
            f"Slurm job {self.job_id} ended with state {state}"
            + (f": {reason}" if reason else "")
            + ".",
            core,
        )
