"""What every uws job spawner does, whatever runs the job.

`UWSJobMixin` goes before a JupyterHub spawner class. Given a checked `JobContext` (see
`jobctx.load_job`), it runs the job's server in the workspace as the workspace owner's account
with an explicit environment, reports progress a person understands (to the hub's progress
page and to the job record), waits until the server answers — failing at once, with the reason,
if it dies first — and records the facts (running, host, end, core-seconds) on the job row.
Subclasses provide `start_job`, `job_alive` and `job_end_facts`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jupyterhub.spawner import SpawnException
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, HasTraits, Integer, default

from .. import audit, scopes
from ..config import UWS
from ..db.models import JobStatus
from ..errors import UWSError
from . import jobctx
from .jobctx import JobContext
from .metrics import SPAWNER_ENDS, SPAWNER_START_SECONDS, SPAWNER_STARTS

if TYPE_CHECKING:
    from jupyterhub.handlers.base import BaseHandler

J = JobStatus


def _stop_request_handler() -> BaseHandler | None:
    """The JupyterHub request handler whose ``stop_single_user`` runs the stop under way, found
    by walking up the caller's frames; None if there is none — or if the frames are not laid
    out as expected (this never raises).

    Checked against JupyterHub 6.1.1 (``jupyterhub/handlers/base.py``): ``stop_single_user``
    defines ``async def stop()``, a closure whose frame has the handler (a ``BaseHandler``) as
    its local ``self``; it awaits ``user.stop()``, which awaits the spawner's ``stop``. Should a
    JupyterHub upgrade rename or restructure that closure, hub stops are no longer attributed
    to who asked (not an error); tests/e2e/test_jobs.py::test_stopped_from_the_hub_admin_side
    then fails."""
    try:
        from jupyterhub.handlers.base import BaseHandler

        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == "stop":
                handler = frame.f_locals.get("self")
                if isinstance(handler, BaseHandler):
                    return handler
            frame = frame.f_back
    except Exception:  # noqa: BLE001 - an unexpected layout: not attributed, but logged
        logging.getLogger(__name__).warning(
            "could not look for the hub request behind a stop", exc_info=True
        )
    return None


def hub_stop_requester() -> audit.Actor | None:
    """Who asked the hub to stop the server being stopped now, if a request did.

    JupyterHub runs every stop a request asks for — its REST API, its admin page and home page
    (which call that API), an idle culler (a service calling it) — in the ``stop`` closure of
    ``BaseHandler.stop_single_user``, whose frame holds the request's handler. The spawner's
    ``stop`` runs inside that closure, so the caller's frames lead to the handler and its
    ``current_user`` (see `_stop_request_handler`). Stops the hub makes by itself (cleaning up
    after a failed start, shutting down with ``cleanup_servers``) have no such frame: None.
    Call it before the first ``await``."""
    handler = _stop_request_handler()
    if handler is None:
        return None
    try:
        who = handler.current_user
    except Exception:  # noqa: BLE001 - nobody known: not attributed
        who = None
    if who is None:
        return None
    kind = "service" if getattr(who, "kind", "user") == "service" else "user"
    return audit.Actor(who.name, kind, ip=handler.request.remote_ip)


def proxy_details(url: str, path: str) -> dict[str, Any]:
    """UWS's ``proxy_details`` of a job whose server answers at `url`: the host (the compute
    node on Slurm) and port it listens on, and its path on the hub (JupyterHub's proxy routes
    that path to host:port)."""
    parts = urlsplit(url)
    return {"hostname": parts.hostname or "", "port": parts.port or 0, "path": path}


async def _address_of(host: str, port: int) -> str:
    """The node's address, looked up once for a start's many connects (IPv4 first: a job's
    server listens on 0.0.0.0); the name itself if it cannot be looked up now."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return host
    found.sort(key=lambda info: info[0] != socket.AF_INET)
    return found[0][4][0] if found else host


async def _takes_connections(host: str, port: int) -> bool:
    """Whether something listens on host:port (a TCP connect, closed at once)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


#: the job servers' extra Jupyter config: turns on `uws_hub.labserver` and the lab extension
LAB_CONFIG = os.path.join(os.path.dirname(os.path.dirname(__file__)), "labextension", "config")


class UWSJobMixin(HasTraits):
    """Workspace/job logic shared by the local and Slurm spawners."""

    uws_job_id = Integer(0, help="The uws job this server runs (kept in the spawner's state).")
    #: the resource kind this spawner runs (``local``, ``slurm``): the metrics' ``kind`` label
    uws_kind = ""

    _job: JobContext | None = None

    @default("server_token_scopes")
    def _default_server_token_scopes(self) -> list[str]:
        return scopes.job_server_scopes(self.uws.service_name)

    #: file name -> (environment variable, content): secrets a job gets as owner-only files
    #: (e.g. Globus tokens), never in its environment or on a command line
    uws_private_files: dict = {}
    _private_env: dict = {}
    _events: list
    _start_done = False
    _ended_recorded = False

    # ---- configuration and binding ----------------------------------------------------------

    @property
    def uws(self) -> UWS:
        if getattr(self, "_uws", None) is None:
            self._uws = UWS(config=self.config)
        return self._uws

    def bind_job(self, ctx: JobContext) -> None:
        """Take the job's settings: workspace, command, environment, limits."""
        self._job = ctx
        self.uws_job_id = ctx.job_id
        self.notebook_dir = ctx.workspace_path
        self.default_url = ctx.job_type.default_url
        self.cmd = list(ctx.job_type.command or self.uws.singleuser_command)
        self.cpu_limit = float(ctx.cpus)
        if ctx.memory_mb:
            self.mem_limit = ctx.memory_mb * 1024 * 1024

    def job_env(self) -> dict[str, str]:
        """The job's own variables: ``UWS_*``, its parameters, its job type's environment and
        the paths of its private files."""
        ctx = self._job
        env = {
            "PATH": self.uws.job_path,
            "UWS_JOB_ID": str(ctx.job_id),
            "UWS_WORKSPACE_ID": str(ctx.workspace_id),
            "UWS_WORKSPACE_DIR": ctx.workspace_path,
            "UWS_JOB_TYPE": ctx.job_type.id,
            "UWS_RESOURCE": ctx.resource.id,
        }
        for key, value in ctx.options.items():
            if key not in ("num_cpus", "memory_mb", "time_limit_min", "gpus"):
                env["UWS_PARAM_" + "".join(c if c.isalnum() else "_" for c in key.upper())] = str(
                    value
                )
        env.update(ctx.job_type.environment)
        # the session extension (time left, warnings, Extend) in JupyterLab: its config first
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            p for p in (LAB_CONFIG, ctx.job_type.environment.get("JUPYTER_CONFIG_PATH")) if p
        )
        service = (self.uws.job_service_url or self.uws.service_url).rstrip("/")
        env["UWS_API_URL"] = f"{service}/services/{self.uws.service_name}/api/"
        env.update(self._private_env)
        return env

    def get_env(self):
        env = super().get_env()
        if self._job is not None:
            env.update(self.job_env())
        return env

    def user_env(self, env):
        """USER, HOME and SHELL of the workspace owner's account (not the hub user's name)."""
        import pwd

        if self._job is None:
            return super().user_env(env)
        acct = self._job.account
        env["USER"] = acct.name
        try:
            pw = pwd.getpwnam(acct.name)
            env["HOME"], env["SHELL"] = pw.pw_dir, pw.pw_shell or "/bin/bash"
        except KeyError:
            env["HOME"] = self._job.workspace_path
        return env

    # ---- state ----------------------------------------------------------------------------------

    #: traits kept in the spawner's state (the hub's database) across hub restarts; each
    #: class names its own, and all along the class hierarchy are kept
    uws_persisted: tuple[str, ...] = ("uws_job_id",)

    def _persisted_traits(self) -> list[str]:
        names: list[str] = []
        for cls in type(self).__mro__:
            names += [n for n in cls.__dict__.get("uws_persisted", ()) if n not in names]
        return names

    def get_state(self):
        state = super().get_state()
        for name in self._persisted_traits():
            if getattr(self, name):
                state[name] = getattr(self, name)
        return state

    def load_state(self, state):
        super().load_state(state)
        for name in self._persisted_traits():
            setattr(self, name, state.get(name, self.trait_defaults(name)))

    def clear_state(self):
        super().clear_state()
        # the job id is kept: stop() after a poll found the server dead still records the end

    # ---- progress ---------------------------------------------------------------------------------

    async def emit(self, message: str, progress: int | None = None, **facts: Any) -> None:
        """Tell the person what is happening (hub progress page and the job record)."""
        if not hasattr(self, "_events"):
            self._events = []
        event: dict[str, Any] = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self._events.append(event)
        self._wake_progress()
        self.log.info("job %s: %s", self.uws_job_id, message)
        if progress is not None:  # the job record shows the same percentage as the hub's page
            facts["progress"] = progress
        await self.record(message=message, **facts)

    def _wake_progress(self) -> None:
        waiter = getattr(self, "_progress_waiter", None)
        if waiter is not None:
            waiter.set()

    async def progress(self):
        """Each event as soon as it happens. The hub stops reading when the start finishes and
        drops what the generator has not handed over yet, so nothing may wait on a timer here."""
        sent = 0
        if getattr(self, "_progress_waiter", None) is None:
            self._progress_waiter = asyncio.Event()
        while True:
            self._progress_waiter.clear()
            events = getattr(self, "_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            if self._start_done:
                return
            try:
                await asyncio.wait_for(self._progress_waiter.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    #: set by the job chooser: true once the hub has finished this spawn (the proxy route to
    #: the server exists). The job is recorded as running only then, so an API client that opens
    #: the job's URL as soon as it says "running" reaches the server, not the hub's wait page.
    uws_spawn_finished: Callable[[], bool] | None = None
    _running_task: asyncio.Future | None = None

    async def _record_running(self, changes: dict, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.uws_spawn_finished() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # (the hub adds the route within milliseconds)
        await self.record(**changes)  # an ended or stopping job is left as it is

    async def record(self, **changes: Any) -> None:
        """Write `changes` to the job's row (see `jobctx.update_job`)."""
        if self.uws_job_id:
            await asyncio.to_thread(jobctx.update_job, self.uws, self.uws_job_id, **changes)

    # ---- start ------------------------------------------------------------------------------------

    async def start(self):
        """Start the job's server (`start_job`), wait until it answers and record it running;
        a start that fails is recorded as failed with a message a person understands."""
        if self._job is None:
            raise SpawnException(
                "This server was not prepared as a uws job.", reason="no_job", status_code=400
            )
        self._events, self._start_done, self._ended_recorded = [], False, False
        began, outcome = time.monotonic(), "failed"
        try:
            url = await self._start_and_wait()
            outcome = "success"
            SPAWNER_START_SECONDS.labels(self.uws_kind).observe(time.monotonic() - began)
            return url
        except asyncio.CancelledError:
            outcome = "cancelled"
            if time.monotonic() - began < self.start_timeout - 1:
                # not the hub's start timeout: the server was stopped while it started (the
                # hub cancels the start, then calls stop(), which records the end)
                raise
            await self._record_failure(
                f"The server did not answer within {self.start_timeout} seconds."
            )
            raise
        except SpawnException as e:
            await self._record_failure(
                e.jupyterhub_message
                if hasattr(e, "jupyterhub_message")
                else str(e.log_message or e)
            )
            raise
        except Exception as e:
            self.log.exception("job %s: the start failed unexpectedly", self.uws_job_id)
            message = str(e) or type(e).__name__
            await self._record_failure(message)
            raise SpawnException(message, reason="job_failed", status_code=500) from e
        finally:
            SPAWNER_STARTS.labels(self.uws_kind, outcome).inc()
            self._start_done = True
            self._wake_progress()

    async def _start_and_wait(self) -> str:
        """The steps of a start: the log directory and private files, the job, its server
        answering, the record that it runs. Returns the server's URL."""
        await asyncio.to_thread(self._prepare_log_dir)
        if self.uws_private_files:
            self._private_env = await asyncio.to_thread(self._write_private_files)
        url = await self.start_job()
        await self.emit("Waiting for the server to answer.", 80)
        await self.wait_until_answering(url)
        running = self._running_changes(jobctx.now(), url)
        if self.uws_spawn_finished is None:
            await self.record(**running)
        else:  # once the hub has routed the server (after start() returns)
            self._running_task = asyncio.ensure_future(self._record_running(running))
        self._events.append({"message": "Ready.", "progress": 100, "ready": True})
        return url

    def _running_changes(self, now, url: str = "") -> dict[str, Any]:
        """The job row's changes once its server answers at `url`, with the start's timings
        and, as UWS had them, the server's ``proxy_details`` (host, port, path)."""
        running_since = getattr(self, "_running_since", None) or now
        created = self._job.created or running_since
        return dict(
            status=J.RUNNING.value,
            datetime_start=running_since,
            message="Ready.",
            progress=100,
            connection_details={"url_path": self.server_url_path()},
            proxy_details=proxy_details(url, self.server_url_path()),
            metrics={
                "time_pending": round((running_since - created).total_seconds(), 3),
                "time_init": round((now - running_since).total_seconds(), 3),
            },
        )

    async def _record_failure(self, message: str) -> None:
        """A start that did not succeed: failed — unless it was stopped on purpose meanwhile."""
        self._ended_recorded = True
        try:
            status_now = await asyncio.shield(
                asyncio.to_thread(jobctx.job_status, self.uws, self.uws_job_id)
            )
            if status_now == J.STOPPING.value:
                end = (J.COMPLETE.value, "Stopped.", jobctx.now(), None)
            else:
                end = (J.FAILED.value, message, jobctx.now(), None)
            await asyncio.shield(self.record(end=end))
        except Exception:
            self.log.exception("job %s: could not record the failure", self.uws_job_id)

    def server_url_path(self) -> str:
        """The path of the job's server on the hub (its base URL and default URL)."""
        return self.server.base_url.rstrip("/") + self.default_url if self.server else ""

    def _prepare_log_dir(self) -> None:
        """<workspace>/.jobs/, made as the owner (hidden: not listed, not copied by shares)."""
        from ..workspaces import fsops

        with fsops.acting_as(fsops.Owner(self._job.account.uid, self._job.account.gid)):
            os.makedirs(self._job.log_dir, mode=0o700, exist_ok=True)

    def _private_path(self, name: str) -> str:
        return os.path.join(self._job.log_dir, f"job-{self._job.job_id}.{name}")

    def _write_private_files(self) -> dict[str, str]:
        """Write `uws_private_files` as the owner, mode 0600, never through a link."""
        from ..workspaces import fsops

        env = {}
        with fsops.acting_as(fsops.Owner(self._job.account.uid, self._job.account.gid)):
            for name, (var, content) in self.uws_private_files.items():
                path = self._private_path(name)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
                )
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                env[var] = path
        return env

    def _remove_private_files(self) -> None:
        from ..workspaces import fsops

        if self._job is None or not self.uws_private_files:
            return
        with fsops.acting_as(fsops.Owner(self._job.account.uid, self._job.account.gid)):
            for name in self.uws_private_files:
                try:
                    os.unlink(self._private_path(name))
                except OSError:
                    pass

    def log_path(self) -> str:
        """``<workspace>/.jobs/job-<id>.log``: the job's output."""
        return os.path.join(self._job.log_dir, f"job-{self._job.job_id}.log")

    async def log_tail(self, lines: int = 12) -> str:
        """The end of the job's log, for failure messages.

        Read as the owner (the log lives in a directory the owner controls), never through a
        symlink, and only if it is a regular file: a log replaced by a link to a secret shows
        nothing.
        """
        if self._job is None:
            return ""
        return await asyncio.to_thread(self._read_log_tail, lines)

    def _read_log_tail(self, lines: int) -> str:
        import stat

        from ..workspaces import fsops

        try:
            with fsops.acting_as(fsops.Owner(self._job.account.uid, self._job.account.gid)):
                fd = os.open(
                    self.log_path(), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                )
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return ""
                f.seek(max(0, st.st_size - 8192))
                text = f.read(8192).decode("utf-8", "replace")
        except (OSError, UWSError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    answer_check_interval = Float(
        0.025,
        min=0.005,
        config=True,
        help="""Seconds between the checks, while a job's server starts, of whether its port
        takes connections (a TCP connect, not an HTTP request: a refused connect costs the hub
        a fraction of a millisecond). Once it does, one HTTP request to the server's /api waits
        for its answer, so the hub routes the server within this long of it starting to
        listen. Whether the job is still alive is checked every job_alive_interval.""",
    )

    job_alive_interval = Float(
        0.2,
        min=0.05,
        config=True,
        help="""Seconds between the checks, while a job's server starts, of whether the job
        still runs (a job that dies before its server answers fails the start at once, with
        the end of its log). A Slurm job's state is read at most once a second then, either
        way into the cluster; a local process is looked at each time.""",
    )

    async def wait_until_answering(self, url: str) -> None:
        """Wait until the server's /api answers; fail at once if the job dies first.

        Its port is tried every `answer_check_interval` (a TCP connect); once it takes the
        connection, an HTTP request waits for the answer (a server that has bound its port
        answers as soon as its event loop runs)."""
        client = AsyncHTTPClient()
        api = url.rstrip("/") + self.server.base_url + "api"
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = await _address_of(parts.hostname or "127.0.0.1", port)
        deadline = time.monotonic() + max(5.0, float(self.http_timeout))
        next_alive = 0.0
        while True:
            if time.monotonic() >= next_alive:
                alive, reason = await self.job_alive()
                if not alive:
                    tail = await self.log_tail()
                    raise SpawnException(
                        f"The server stopped before answering: {reason}"
                        + (f"\n--- end of the job log ---\n{tail}" if tail else ""),
                        reason="died",
                        status_code=500,
                    )
                next_alive = time.monotonic() + self.job_alive_interval
            if await _takes_connections(host, port):
                try:
                    await client.fetch(
                        HTTPRequest(
                            api, request_timeout=2, connect_timeout=2, follow_redirects=False
                        )
                    )
                    return
                except HTTPClientError as e:
                    if e.code != 599:
                        return  # it answered (with an error page): it is up
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise SpawnException(
                    f"The server did not answer within {self.http_timeout} seconds.",
                    reason="timeout",
                    status_code=500,
                )
            await asyncio.sleep(self.answer_check_interval)

    # ---- the end ------------------------------------------------------------------------------------

    async def note_stop_request(self) -> None:
        """At the start of ``stop()``: if a hub request asked for it (`hub_stop_requester`),
        the job becomes ``stopping`` and the audit log gets a ``job.stop`` by that person or
        service, together (a stop already asked through uws, or an ended job, is left alone)."""
        self._stop_requester = None
        requester = hub_stop_requester()
        if requester is not None and self.uws_job_id:
            # (the uws service's own stops come through the hub API too: the row is already
            # stopping then, and nothing is marked)
            if await asyncio.shield(
                asyncio.to_thread(jobctx.mark_hub_stop, self.uws, self.uws_job_id, requester)
            ):
                self._stop_requester = requester

    async def record_end(self, exit_info: Any = None, *, via_stop: bool = False) -> None:
        """Record how the job ended (once). Stopped by its owner (the row says stopping) or by
        the hub (admin page, hub API): complete. Ended by itself: as the subclass judges."""
        if self._ended_recorded or not self.uws_job_id:
            return
        self._ended_recorded = True
        try:
            await asyncio.to_thread(self._remove_private_files)
        except Exception:
            self.log.exception("job %s: could not remove its private files", self.uws_job_id)
        status_now = await asyncio.to_thread(jobctx.job_status, self.uws, self.uws_job_id)
        if status_now in (J.COMPLETE.value, J.FAILED.value, None):
            return
        requester = getattr(self, "_stop_requester", None)
        if status_now == J.STOPPING.value:
            status = J.COMPLETE.value
            message = f"Stopped from the hub by {requester.name}." if requester else "Stopped."
            core = await self.job_core_seconds(exit_info)
        elif via_stop:  # a stop the hub made by itself (after a failed start, at shutdown)
            status, message = J.COMPLETE.value, "Stopped by the hub."
            core = await self.job_core_seconds(exit_info)
        else:
            status, message, core = await self.job_end_facts(exit_info)
        await self.record(end=(status, message, jobctx.now(), core))
        SPAWNER_ENDS.labels(self.uws_kind, status).inc()

    async def job_end_facts(self, exit_info: Any) -> tuple[str, str, int | None]:
        """How a job that ended by itself ended: (status, message, core-seconds or None to
        compute them from the start and end times)."""
        return J.FAILED.value, "The server ended.", None

    async def job_core_seconds(self, exit_info: Any) -> int | None:
        """Core-seconds from the resource manager, if it reports them (else from the times)."""
        return None
