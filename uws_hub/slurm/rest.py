"""Slurm through its REST API, ``slurmrestd`` (issue 16): the hub then needs no Slurm commands
or munge on its host.

Written against the OpenAPI of Slurm 22.05's ``openapi/v0.0.38`` and ``openapi/dbv0.0.38``
plugins (the version is a setting). With ``auth/jwt`` slurmrestd runs each request as the user
its token names, and refuses tokens of root and of the SlurmUser; so every person's own
request (submit, cancel, update) carries a short-lived token minted for that person
(`JWTTokens`: HS256 with the cluster's ``jwt_hs256.key``, claims ``sun``, ``iat``, ``exp``;
never for root or another privileged account: slurmrestd 22.05 runs a request with a valid
token of root as root), and the one batched read of all jobs per interval carries an ordinary service account's. Never
one token for everyone.

A request that fails (no answer, an HTTP error, Slurm's ``errors``) raises `SlurmRestError`;
the monitor turns that into "unknown", never "ended", as for the commands.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .monitor import (
    GONE,
    LIVE_STATES,
    SLURM_ERRORS,
    SLURM_QUERIES,
    SLURM_SECONDS,
    UNKNOWN,
    QueueUnknown,
    SlurmJob,
)

#: the scheduler command each request stands for, in the uws_slurm_* metrics
COMMANDS = {
    "jobs": "squeue",
    "job": "scontrol",
    "submit": "sbatch",
    "cancel": "scancel",
    "update": "scontrol",
    "accounting": "sacct",
    "ping": "ping",
}


class SlurmRestError(Exception):
    """slurmrestd did not do what was asked: no answer, an HTTP error or Slurm's errors."""

    def __init__(self, message: str, *, status: int | None = None, gone: bool = False):
        super().__init__(message)
        self.status = status
        #: Slurm does not know the job (an invalid job id)
        self.gone = gone


class TokenSource(Protocol):
    """Where a person's Slurm token comes from: `JWTTokens`, or a site's token service
    (``token_source`` of a cluster: ``module:callable``, called with the cluster's
    `uws_hub.slurm.clusters.ClusterSpec`, returning an object with this method). `operator`
    is True only for the cluster's configured ``operator_user`` (time-limit raises)."""

    def token(self, username: str, operator: bool = False) -> str: ...


class JWTTokens:
    """HS256 tokens minted with the cluster's ``jwt_hs256.key`` (a root-only secret), as
    ``scontrol token`` would give them; each lives `lifespan` seconds and is reused until it
    has less than a third of that left."""

    def __init__(
        self,
        key_file: str,
        lifespan: int = 300,
        refused: frozenset[str] = frozenset({"slurm"}),
        operator: str | None = None,
    ):
        self.key_file = key_file
        self._key, self._key_stamp = b"", None
        self._cache: dict[str, tuple[str, float]] = {}
        self._read_key()
        self.lifespan = lifespan
        #: accounts never given a token besides root's and uid 0's (the cluster's SlurmUser;
        #: name it if it is not ``slurm``)
        self.refused = frozenset(refused)
        #: the cluster's Slurm operator (time-limit raises): the one privileged account a
        #: token is made for, and only when asked for as the operator
        self.operator = operator

    def _read_key(self) -> None:
        """(Re)read the key when the file changed (a rotated key: the cached tokens go)."""
        try:
            st = os.stat(self.key_file)
        except OSError as e:
            raise ValueError(f"the cluster's JWT key {self.key_file} cannot be read: {e}") from e
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._key_stamp:
            return
        try:
            with open(self.key_file, "rb") as f:
                key = f.read()
        except OSError as e:
            raise ValueError(f"the cluster's JWT key {self.key_file} cannot be read: {e}") from e
        if not key:
            raise ValueError(f"{self.key_file} is empty")
        self._key, self._key_stamp, self._cache = key, stamp, {}

    def token(self, username: str, operator: bool = False) -> str:
        now = time.time()
        self._read_key()
        if operator and username != self.operator:
            raise ValueError(f"{username} is not this cluster's operator_user")
        if username == self.operator and not operator:
            # the operator's token serves time-limit raises only, never a person's request
            raise ValueError(f"no Slurm token is made for {username} (the cluster's operator)")
        cached = self._cache.get(username)
        if cached and cached[1] - now > self.lifespan / 3:
            return cached[0]  # (only ever minted for an unprivileged account or the operator)
        if not operator and (username in self.refused or _is_root(username)):
            # slurmrestd would run the request as them: whoever holds the key could be root
            raise ValueError(f"no Slurm token is made for {username} (a privileged account)")
        exp = int(now) + self.lifespan
        value = jwt.encode({"sun": username, "iat": int(now), "exp": exp}, self._key, "HS256")
        if len(self._cache) > 10000:  # bounded: expired ones go first
            self._cache = {u: t for u, t in self._cache.items() if t[1] > now}
        self._cache[username] = (value, exp)
        return value


@dataclass
class SlurmRest:
    """One cluster's slurmrestd at `url` (``http://host:6820``)."""

    url: str
    tokens: TokenSource
    #: the account whose token reads every job (an ordinary user: not root, not SlurmUser)
    read_user: str
    version: str = "v0.0.38"
    #: (the openapi/dbv0.0.38 plugin serves /slurmdb/v0.0.38/)
    db_version: str = "v0.0.38"
    timeout: float = 20.0
    #: the cluster's id, in the metrics
    cluster: str = "default"
    #: the one account whose token may raise time limits (only asked for as the operator)
    operator_user: str | None = None
    #: accounts never named in a request besides root and uid 0 (the SlurmUser)
    refused: frozenset[str] = frozenset({"slurm"})

    def __post_init__(self) -> None:
        self._ordinary: set[str] = set()  # accounts checked once: not privileged

    def _check_user(self, user: str, operator: bool) -> None:
        """Whose token a request may carry, whatever makes the tokens (`JWTTokens` or a site's
        token service): a person's own request never carries root's, the SlurmUser's or the
        operator's; the operator's only a time-limit raise."""
        if operator:
            if not self.operator_user or user != self.operator_user:
                raise ValueError(f"{user} is not this cluster's operator_user")
            return
        if user == self.operator_user:
            raise ValueError(f"{user} is the cluster's operator: its token raises limits only")
        if user in self._ordinary:
            return
        if user in self.refused or _is_root(user):
            raise ValueError(f"no request is made as {user} (a privileged account)")
        if len(self._ordinary) > 10000:
            self._ordinary.clear()
        self._ordinary.add(user)

    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        user: str,
        body: Any = None,
        operator: bool = False,
    ) -> dict:
        m = (self.cluster, "rest", COMMANDS[what])
        SLURM_QUERIES.labels(*m).inc()
        try:
            self._check_user(user, operator)
            token = self.tokens.token(user, operator) if operator else self.tokens.token(user)
        except Exception as e:  # noqa: BLE001 - (a site's token service: whatever it raises)
            SLURM_ERRORS.labels(*m, "exec").inc()
            raise SlurmRestError(str(e)) from e
        t0 = time.perf_counter()
        request = HTTPRequest(
            self.url.rstrip("/") + path,
            method=method,
            headers={
                "X-SLURM-USER-NAME": user,
                "X-SLURM-USER-TOKEN": token,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            body=None if body is None else json.dumps(body),
            request_timeout=self.timeout,
            connect_timeout=min(self.timeout, 10.0),
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, TimeoutError, HTTPClientError) as e:
            # refused, unreachable, no answer in time, the connection dropped (raise_error=False
            # covers HTTP statuses only: a timeout is still raised)
            SLURM_ERRORS.labels(*m, "timeout").inc()
            raise SlurmRestError(f"slurmrestd at {self.url} did not answer: {e}", status=599) from e
        finally:
            SLURM_SECONDS.labels(*m).observe(time.perf_counter() - t0)
        if response.code == 599:  # tornado: no HTTP answer at all
            SLURM_ERRORS.labels(*m, "timeout").inc()
            raise SlurmRestError(
                f"slurmrestd at {self.url} did not answer: {response.error}", status=599
            )
        try:
            data = json.loads(response.body or b"{}")
        except ValueError:
            data = {}
        errors = (
            [e for e in data.get("errors") or [] if isinstance(e, dict)]
            if isinstance(data, dict)
            else []
        )
        if response.code >= 400 or errors:
            SLURM_ERRORS.labels(*m, "exit").inc()
            text = (
                "; ".join(str(e.get("error") or e.get("description") or e) for e in errors)
                or f"HTTP {response.code}"
            )
            gone = any(e.get("error_number") == 2017 for e in errors) or ("Invalid job id" in text)
            raise SlurmRestError(f"slurmrestd: {text}", status=response.code, gone=gone)
        return data if isinstance(data, dict) else {}

    # ---- reads (the service account) -------------------------------------------------------

    async def ping(self) -> dict:
        return await self._call("ping", "GET", f"/slurm/{self.version}/ping", self.read_user)

    async def jobs(self) -> dict[str, SlurmJob]:
        """Every job the controller remembers, in one request."""
        data = await self._call("jobs", "GET", f"/slurm/{self.version}/jobs", self.read_user)
        now = time.time()
        return {
            str(j["job_id"]): job_from_rest(j, now) for j in data.get("jobs") or [] if "job_id" in j
        }

    async def job(self, job_id: str) -> SlurmJob | None:
        """One job, or None if the controller no longer knows it."""
        try:
            data = await self._call(
                "job", "GET", f"/slurm/{self.version}/job/{int(job_id)}", self.read_user
            )
        except SlurmRestError as e:
            if e.gone:
                return None
            raise
        found = data.get("jobs") or []
        return job_from_rest(found[0], time.time()) if found else None

    async def accounting(self, job_id: str) -> SlurmJob | None:
        """The job as accounting (slurmdbd) kept it, or None if it has no record."""
        try:
            data = await self._call(
                "accounting", "GET", f"/slurmdb/{self.db_version}/job/{int(job_id)}", self.read_user
            )
        except SlurmRestError as e:
            if e.gone or e.status == 404:
                return None
            raise
        found = [j for j in data.get("jobs") or [] if isinstance(j, dict)]
        if not found:
            return None
        # job ids come round again (MaxJobId, a controller's state lost): the latest such job
        return job_from_accounting(
            max(found, key=lambda j: _epoch((j.get("time") or {}).get("submission")))
        )

    # ---- a person's own requests (their token) ---------------------------------------------

    async def submit(self, user: str, script: str, job: dict) -> str:
        """Submit `script` as `user` with the job properties `job`; the new job's id."""
        data = await self._call(
            "submit",
            "POST",
            f"/slurm/{self.version}/job/submit",
            user,
            {"script": script, "job": job},
        )
        if not data.get("job_id"):
            raise SlurmRestError("slurmrestd accepted the job but gave no job id")
        return str(data["job_id"])

    async def cancel(self, user: str, job_id: str) -> None:
        await self._call("cancel", "DELETE", f"/slurm/{self.version}/job/{int(job_id)}", user)

    async def update(self, user: str, job_id: str, changes: dict, operator: bool = False) -> None:
        """Change a job's properties (e.g. ``{"time_limit": minutes}``) as `user` (as the
        cluster's operator if `operator`: people may lower their own limits only)."""
        await self._call(
            "update",
            "POST",
            f"/slurm/{self.version}/job/{int(job_id)}",
            user,
            changes,
            operator=operator,
        )

    async def time_limit_min(self, job_id: str) -> int | None:
        """The job's time limit in minutes (None: unlimited, or Slurm no longer knows it)."""
        try:
            data = await self._call(
                "job", "GET", f"/slurm/{self.version}/job/{int(job_id)}", self.read_user
            )
        except SlurmRestError:
            return None
        found = data.get("jobs") or []
        return _minutes(found[0].get("time_limit")) if found else None

    async def partition_state(self, name: str) -> str:
        """A partition's state (``UP``, ``DOWN``...)."""
        data = await self._call(
            "job", "GET", f"/slurm/{self.version}/partition/{name}", self.read_user
        )
        found = data.get("partitions") or []
        if not found:
            raise SlurmRestError(f"no partition {name}", status=404)
        state = found[0].get("state") or "UNKNOWN"
        if isinstance(state, list):
            state = state[0] if state else "UNKNOWN"
        return str(state)


def _is_root(username: str) -> bool:
    try:
        return username == "root" or pwd.getpwnam(username).pw_uid == 0
    except KeyError:
        return False


def _minutes(limit: Any) -> int | None:
    """A v0.0.38 time limit in minutes (later versions: ``{"set", "infinite", "number"}``);
    None for none or unlimited."""
    if isinstance(limit, dict):
        limit = None if limit.get("infinite") or not limit.get("set", True) else limit.get("number")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _epoch(value: Any) -> int:
    """A v0.0.38 time: epoch seconds (0 or missing: not set)."""
    if isinstance(value, dict):  # later versions: {"set": bool, "number": int}
        return int(value.get("number") or 0) if value.get("set", True) else 0
    return int(value or 0)


def job_from_rest(j: dict, now: float) -> SlurmJob:
    """A job entry of ``GET /slurm/<v>/jobs`` as the monitor keeps jobs."""
    state = j.get("job_state") or "UNKNOWN"
    if isinstance(state, list):  # later versions: a list of flags
        state = state[0] if state else "UNKNOWN"
    start, end = _epoch(j.get("start_time")), _epoch(j.get("end_time"))
    running = state in ("RUNNING", "COMPLETING", "SUSPENDED")
    live = running or state in LIVE_STATES  # (a pending job's times are estimates)
    elapsed = None
    if start and running:
        elapsed = max(0, int(now - start))
    elif start and end and not live:
        elapsed = max(0, end - start)
    left = None
    limit = _minutes(j.get("time_limit"))
    if state == "RUNNING" and limit is not None and start:
        # (an unlimited job's end_time is a year away: no time left to tell)
        left = max(0, int(start + limit * 60 - now))
    cpus = j.get("cpus")
    job = SlurmJob(
        job_id=str(j["job_id"]),
        state=str(state),
        reason=str(j.get("state_reason") or ""),
        node=str(j.get("nodes") or j.get("batch_host") or ""),
        time_left_s=left,
        elapsed_s=elapsed,
        cpus=cpus if isinstance(cpus, int) else None,
        partition=str(j.get("partition") or ""),
        priority=j.get("priority") if isinstance(j.get("priority"), int) else 0,
        name=str(j.get("name") or ""),
        exit_code=str(j.get("exit_code", "")),
    )
    if state == "PENDING" and start:
        job.extra["start_estimate"] = start  # Slurm's expected start (epoch seconds)
    return job


def job_from_accounting(j: dict) -> SlurmJob:
    """A job entry of ``GET /slurmdb/<v>/job/<id>`` (shaped differently: ``state``,
    ``time``, ``required``)."""
    state = (j.get("state") or {}).get("current") or "UNKNOWN"
    if isinstance(state, list):
        state = state[0] if state else "UNKNOWN"
    times = j.get("time") or {}
    alloc = [t for t in (j.get("tres") or {}).get("allocated") or [] if t.get("type") == "cpu"]
    cpus = alloc[0].get("count") if alloc else (j.get("required") or {}).get("CPUs")
    exit_code = j.get("exit_code") or {}
    return SlurmJob(
        job_id=str(j.get("job_id")),
        state=str(state).split()[0],
        reason=str((j.get("state") or {}).get("reason") or ""),
        node=str(j.get("nodes") or ""),
        elapsed_s=times.get("elapsed") if isinstance(times.get("elapsed"), int) else None,
        cpus=cpus if isinstance(cpus, int) else None,
        partition=str(j.get("partition") or ""),
        exit_code=str(exit_code.get("return_code", "")) if isinstance(exit_code, dict) else "",
    )


class RestSource:
    """The monitor's queue through slurmrestd (`SlurmMonitor(source=RestSource(rest))`): all
    jobs in one request as the service account; a job missing from it is asked for alone, then
    in accounting (``/slurmdb``); an error or silence is "unknown", never "ended"."""

    way = "rest"

    def __init__(self, rest: SlurmRest):
        self.rest = rest

    async def queue(self) -> dict[str, SlurmJob]:
        try:
            return await self.rest.jobs()
        except SlurmRestError as e:
            raise QueueUnknown(str(e)) from e

    async def read_one(self, job_id: str) -> SlurmJob:
        """One job alone (`SlurmMonitor.status_while_starting`): as `look_up` (the controller,
        then accounting; an error or silence is "unknown")."""
        return await self.look_up(job_id)

    async def look_up(self, job_id: str) -> SlurmJob:
        try:
            job = await self.rest.job(job_id)
            if job is None:
                job = await self.rest.accounting(job_id)
        except SlurmRestError as e:
            return SlurmJob(job_id, UNKNOWN, reason=str(e))
        if job is None:
            return SlurmJob(
                job_id,
                GONE,
                reason="Slurm no longer knows this job (and keeps no accounting here).",
            )
        return job
