"""Jobs as local processes on the hub host, as the workspace owner."""

from __future__ import annotations

import asyncio
import os
import resource
import shlex

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid

from ..db.models import JobStatus
from ..job_wrapper import free_port
from ..workspaces import fsops
from . import jobctx
from .mixin import UWSJobMixin

J = JobStatus


class UWSLocalSpawner(UWSJobMixin, LocalProcessSpawner):
    """A job as a local process: set-uid to the owner's account, in the workspace, on as many
    CPUs as the job asked for (CPU affinity) and, where the resource says ``enforce_memory``, with
    its memory as each process's address-space limit; output goes to
    ``<workspace>/.jobs/job-<id>.log``. The service stops it when its time limit has passed."""

    uws_kind = "local"

    def make_preexec_fn(self, name):
        ctx = self._job
        setuid = set_user_setuid(ctx.account.name, chdir=False) if os.geteuid() == 0 else None
        ncpu = os.cpu_count() or 1
        cpus = {(ctx.job_id + i) % ncpu for i in range(min(ctx.cpus, ncpu))}
        workspace = ctx.workspace_path
        memory = (
            ctx.memory_mb * 1024 * 1024 if ctx.resource.enforce_memory and ctx.memory_mb else None
        )

        def preexec():
            if setuid is not None:
                setuid()
            os.chdir(workspace)
            try:
                os.sched_setaffinity(0, cpus)
            except OSError:
                pass
            if memory:  # each process of the job (kernels inherit it) gets this address space
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

        return preexec

    def _open_log(self) -> int:
        with fsops.acting_as(fsops.Owner(self._job.account.uid, self._job.account.gid)):
            return os.open(
                self.log_path(),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )

    def _command_with_prologue(self) -> None:
        """Run the job type's module loads and prologue (e.g. venv activation) before the server."""
        ctx = self._job
        lines = [f"module load {m}" for m in ctx.job_type.modules]
        if ctx.job_type.prologue.strip():
            lines.append(ctx.job_type.prologue)
        if lines:
            script = (
                "set -e\n"
                + "\n".join(lines)
                + "\nexec "
                + shlex.join([*self.cmd, *self.get_args()])
            )
            self.cmd, self.args = ["/bin/bash", "-c", script], []

    async def start_job(self) -> str:
        """Start the server as a local process (output to the job's log); returns its URL."""
        await self.emit("Starting the server on this host.", 30)
        self._command_with_prologue()
        fd = await asyncio.to_thread(self._open_log)
        self.popen_kwargs = {"stdout": fd, "stderr": fd}
        if not self.port:  # not JupyterHub's random_port(): see free_port
            self.port = free_port(self.ip or "127.0.0.1")
        try:
            ip, port = await LocalProcessSpawner.start(self)
        finally:
            os.close(fd)
            self.popen_kwargs = {}
        self._running_since = jobctx.now()
        await self.record(resource_job_id=self.pid, host="localhost")
        return f"http://{ip}:{port}"

    async def job_alive(self) -> tuple[bool, str]:
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                return False, f"the process exited with status {code}"
        return True, ""

    async def poll(self):
        status = await super().poll()
        if status is not None:
            # LocalProcessSpawner.stop() polls too: then the end is a stop, not a death
            await self.record_end(status, via_stop=getattr(self, "_stopping", False))
        return status

    async def stop(self, now=False):
        self._stopping = True
        await self.note_stop_request()
        try:
            await super().stop(now=now)
            await self.record_end(None, via_stop=True)
        finally:
            self._stopping = False

    async def job_end_facts(self, exit_info):
        if exit_info in (0, None):
            return J.COMPLETE.value, "The server ended.", None
        tail = await self.log_tail()
        return (
            J.FAILED.value,
            f"The server exited with status {exit_info}." + (f"\n{tail}" if tail else ""),
            None,
        )
