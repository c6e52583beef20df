"""The Slurm clusters a hub reaches (issue 16), each its own way in.

``c.UWS.slurm_clusters`` names them; a Slurm resource names its cluster (``cluster:``). Each
cluster is reached either through Slurm's **commands** on the hub's host (``sbatch``,
``squeue``…, with the cluster's own ``SLURM_CONF``) or through its REST API, **slurmrestd**
(`uws_hub.slurm.rest`: the hub host then needs no Slurm commands or munge). Every cluster has
its own `SlurmMonitor` (one queue read per interval for all of its jobs), its own health and
its own series in the ``uws_slurm_*`` metrics; a cluster that does not answer makes only its
own jobs "unknown".

`Cluster` is what the rest of uws_hub asks: the monitor, a cancel, the time-limit raise an
extension needs, the controller's and a partition's health, and (REST) a submission. A hub
without ``c.UWS.slurm_clusters`` has one cluster, ``default``, reached with the commands and
the host's own Slurm configuration, as before.
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any

from .monitor import CommandsSource, SlurmMonitor, parse_duration, run
from .spec import ClusterSpec, default_cluster


class ClusterError(Exception):
    """The cluster did not do what was asked (the scheduler's own words in the message)."""


class ClusterNotConfigured(ClusterError):
    """The cluster named (by a job's record or its resource) is not in c.UWS.slurm_clusters:
    the hub can no longer follow its jobs."""


class Cluster:
    """One cluster's way in, for this process (made and shared by `cluster_of`)."""

    def __init__(self, spec: ClusterSpec, *, interval: float, timeout: float, path: str):
        self.spec = spec
        self.id = spec.id
        self.way = spec.way
        self.timeout = timeout
        #: the commands' environment (commands way; times in UTC: squeue's start estimates)
        self.env = {"PATH": path, "LANG": "C", "TZ": "UTC"}
        if spec.slurm_conf:
            self.env["SLURM_CONF"] = spec.slurm_conf
        self.rest = None
        interval = spec.poll_interval or interval
        if spec.way == "rest":
            from .rest import RestSource, SlurmRest

            self.rest = SlurmRest(
                spec.url or "",
                _token_source(spec),
                spec.read_user or "",
                version=spec.version,
                db_version=spec.db_version,
                timeout=timeout,
                cluster=spec.id,
                operator_user=spec.operator_user,
                refused=frozenset(spec.refused_users),
            )
            source: Any = RestSource(self.rest)
        else:
            source = CommandsSource(timeout, path, env=self.env, cluster=spec.id)
        self.monitor = SlurmMonitor(interval, timeout, path, source=source, cluster=spec.id)

    @property
    def job_env(self) -> dict[str, str]:
        """What a job on this cluster needs in its environment besides the job's own: the
        cluster's SLURM_CONF (for commands run inside the job) and its nodes' PATH."""
        env = {"SLURM_CONF": self.spec.slurm_conf} if self.spec.slurm_conf else {}
        if self.spec.job_path:
            env["PATH"] = self.spec.job_path
        return env

    async def _run(self, cmd: list[str]) -> tuple[int, str, str]:
        return await run(cmd, self.timeout, self.env, cluster=self.id)

    # ---- a person's requests ------------------------------------------------------------------

    async def submit(self, user: str, script: str, job: dict) -> str:
        """Submit through slurmrestd as `user` (the commands way submits in the spawner)."""
        from .rest import SlurmRestError

        assert self.rest is not None, "the commands way submits with sbatch"
        try:
            return await self.rest.submit(user, script, job)
        except SlurmRestError as e:
            raise ClusterError(str(e)) from e

    async def cancel(self, user: str | None, job_id: str) -> None:
        """Cancel `job_id` as `user` (its owner; None: as the hub's own account, commands way
        only — slurmrestd never gets a token of root)."""
        if self.rest is not None:
            from .rest import SlurmRestError

            if not user:
                raise ClusterError("a job is cancelled through slurmrestd as its owner only")
            try:
                await self.rest.cancel(user, job_id)
            except SlurmRestError as e:
                if e.gone:
                    return
                raise ClusterError(str(e)) from e
            finally:
                self.monitor.forget(job_id)
            return
        cmd = ["scancel", str(job_id)]
        if user and os.geteuid() == 0:
            runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
            cmd = [runuser, "-u", user, "--", *cmd]
        code, _, err = await self._run(cmd)
        self.monitor.forget(job_id)
        if code != 0 and "Invalid job id" not in err:
            raise ClusterError(err or f"scancel exited with status {code}")

    async def set_time_limit(self, job_id: str, minutes: int) -> None:
        """Raise a job's time limit (an extension). Only root, the SlurmUser or a Slurm
        operator may raise one: the commands way runs ``scontrol update`` as the hub's
        account; slurmrestd is asked as the cluster's ``operator_user``. An update that fails
        is read back (it may have been made all the same)."""
        try:
            if self.rest is not None:
                error = await self._rest_time_limit(job_id, minutes)
            else:
                code, _, err = await self._run(
                    ["scontrol", "update", f"JobId={job_id}", f"TimeLimit={minutes}"]
                )
                error = (err or f"scontrol exited with status {code}") if code else ""
            if error and await self.time_limit_min(job_id) != minutes:
                raise ClusterError(error)
        finally:
            self.monitor.forget(job_id)

    async def _rest_time_limit(self, job_id: str, minutes: int) -> str:
        from .rest import SlurmRestError

        operator = self.spec.operator_user
        if not operator:
            raise ClusterError(
                f"cluster {self.id} has no operator_user: only a Slurm operator may raise a "
                "time limit through slurmrestd"
            )
        try:
            await self.rest.update(operator, job_id, {"time_limit": minutes}, operator=True)
        except SlurmRestError as e:
            return str(e)
        return ""

    async def time_limit_min(self, job_id: str) -> int | None:
        """The job's time limit now, in minutes (None if Slurm does not say)."""
        if self.rest is not None:
            return await self.rest.time_limit_min(job_id)
        code, out, _ = await self._run(["squeue", "-h", "-o", "%l", "-j", str(job_id)])
        seconds = parse_duration(out.strip()) if code == 0 else None
        return seconds // 60 if seconds is not None else None

    # ---- health ---------------------------------------------------------------------------------

    async def ping(self) -> tuple[bool, str]:
        """Whether the controller answers, and what it says."""
        if self.rest is not None:
            from .rest import SlurmRestError

            try:
                data = await self.rest.ping()
            except SlurmRestError as e:
                return False, str(e)
            pings = data.get("pings") or []
            up = [p for p in pings if p.get("ping") == "UP"]
            names = ", ".join(str(p.get("hostname")) for p in up)
            if up:
                return True, f"slurmctld {names} is UP (slurmrestd {self.spec.url})"
            return False, f"no controller UP: {pings}"
        code, out, err = await self._run(["scontrol", "ping"])
        if code == 0 and " is UP" in out:
            return True, out.strip().splitlines()[0]
        return False, " ".join(out.split()) or err or f"scontrol ping: exit status {code}"

    async def partition_state(self, partition: str) -> tuple[bool, str]:
        """Whether `partition` is UP, and its state (or the error)."""
        if self.rest is not None:
            from .rest import SlurmRestError

            try:
                state = await self.rest.partition_state(partition)
            except SlurmRestError as e:
                return False, f"partition {partition}: {e}"
        else:
            code, out, err = await self._run(["scontrol", "show", "partition", "-o", partition])
            if code != 0:
                return (
                    False,
                    f"partition {partition}: {err or out.strip() or f'exit status {code}'}",
                )
            fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
            state = fields.get("State", "UNKNOWN")
        return state == "UP", f"partition {partition} {state}"


def _token_source(spec: ClusterSpec):
    from .rest import JWTTokens

    if spec.token_source:
        module, _, attr = spec.token_source.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        return factory(spec)
    return JWTTokens(
        spec.jwt_key_file or "",
        lifespan=spec.token_lifespan,
        refused=frozenset(spec.refused_users),
        operator=spec.operator_user,
    )


_built: dict[tuple, Cluster] = {}


def cluster_of(settings: Any, cluster_id: str | None) -> Cluster:
    """The cluster `cluster_id` (None: the default one) as this process reaches it: made at its
    first use and shared by every spawner and the service's job sync, so each cluster has one
    monitor. ClusterError if it is not configured or cannot be reached as configured (its key
    unreadable, its token service not importable)."""
    specs = settings.cluster_map
    cid = cluster_id or default_cluster(specs)
    spec = specs.get(cid)
    if spec is None:
        raise ClusterNotConfigured(
            f"Slurm cluster {cid!r} is not configured (c.UWS.slurm_clusters has {sorted(specs)})"
        )
    key = (spec, settings.slurm_poll_interval, settings.slurm_command_timeout, settings.job_path)
    found = _built.get(key)
    if found is None:
        try:
            found = Cluster(
                spec,
                interval=settings.slurm_poll_interval,
                timeout=settings.slurm_command_timeout,
                path=settings.job_path,
            )
        except (OSError, ValueError, ImportError, AttributeError) as e:
            raise ClusterError(f"Slurm cluster {cid!r} cannot be reached as configured: {e}") from e
        _built[key] = found
    return found
