"""The job server's side of the JupyterLab extension (``labext/uws-hub-session``): a
jupyter_server extension, enabled for uws job servers only (`uws_hub.spawners.mixin` points
``JUPYTER_CONFIG_PATH`` at ``uws_hub/labextension/config``), that lets the lab page ask about its
own job without a token of its own:

- ``GET <base_url>uws/session``: ``{status, time_left, end, warnings, idle, extend}`` from the
  uws API's ``GET /jobs/<id>/`` (the time-limit warning, what an extension may add);
- ``POST <base_url>uws/session/extend`` ``{"minutes": n}``: ``PUT /jobs/<id>/extend/``, the
  answer's message relayed.

Both are the lab's own authenticated API handlers (the person's login to their server, or a
live share of it); only the job's owner may extend. The uws API is called with the server's
token (``JUPYTERHUB_API_TOKEN``, which the spawner asks to carry only the owner's
``custom:uws:read:jobs`` and ``custom:uws:jobs:extend`` scopes).

It also keeps **busy kernels counted as activity**: every few seconds, if a kernel is busy, it
sets a ``*_last_activity`` time that jupyter_server's ``last_activity()`` includes, so the job
server's activity reports to the hub say the server is in use while a cell computes silently
(the hub's record alone would call it idle; the idle shutdown reads that record).

Without ``UWS_API_URL`` and ``UWS_JOB_ID`` (a server not started by uws_hub) nothing is added and
the page's extension stays silent.
"""

from __future__ import annotations

import json
import os
from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import PeriodicCallback

#: above c.UWS.slurm_command_timeout (20 s): an extension's scontrol must be able to finish
TIMEOUT = 60.0
#: how often busy kernels are looked for (milliseconds)
BUSY_CHECK_MS = 5000


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "uws_hub.labserver"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    api, job = os.environ.get("UWS_API_URL", ""), os.environ.get("UWS_JOB_ID", "")
    if not api or not job:
        serverapp.log.info("uws session: not a uws_hub job server; nothing added")
        return
    args = {"api": api.rstrip("/") + "/", "job_id": job}
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "uws/session"), SessionHandler, args),
            (url_path_join(base, "uws/session/extend"), ExtendHandler, args),
        ],
    )
    serverapp.log.info("uws session: job %s, asking %s", job, api)
    PeriodicCallback(lambda: mark_busy_kernels(serverapp), BUSY_CHECK_MS).start()


def mark_busy_kernels(serverapp: Any) -> bool:
    """If a kernel is busy, record now as activity (``uws_busy_kernel_last_activity``, which
    jupyter_server's ``last_activity()`` counts); True if one was."""
    km = serverapp.kernel_manager
    busy = False
    for kid in list(km.list_kernel_ids()):
        try:
            busy = busy or getattr(km.get_kernel(kid), "execution_state", None) == "busy"
        except KeyError:  # shut down meanwhile
            continue
    if busy:
        serverapp.web_app.settings["uws_busy_kernel_last_activity"] = utcnow()
    return busy


class _UWSHandler(APIHandler):
    def initialize(self, api: str, job_id: str) -> None:
        self.api, self.job_id = api, job_id

    async def uws(self, method: str, path: str, body: Any = None) -> tuple[int, dict]:
        """(status, JSON answer) of the uws API; a failure to reach it is 502 saying so."""
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        req = HTTPRequest(
            self.api + path,
            method=method,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            request_timeout=TIMEOUT,
            connect_timeout=TIMEOUT,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req)
            return resp.code, json.loads(resp.body or b"{}")
        except HTTPClientError as e:
            if e.response is None:
                return 502, {"message": f"The workspace service did not answer ({e})."}
            try:
                return e.code, json.loads(e.response.body or b"{}")
            except ValueError:
                return e.code, {"message": f"The workspace service answered {e.code}."}
        except OSError as e:
            return 502, {"message": f"The workspace service cannot be reached ({e})."}

    def answer(self, status: int, data: dict) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))


class SessionHandler(_UWSHandler):
    @web.authenticated
    async def get(self) -> None:
        status, body = await self.uws("GET", f"jobs/{self.job_id}/")
        jobs = (body.get("data") or {}).get("jobs") or []
        if status != 200 or not jobs:
            self.answer(502 if status == 200 else status, {"message": body.get("message", "")})
            return
        self.answer(200, session_of(jobs[0]))


def session_of(job: dict) -> dict:
    """What the lab page shows of a job answer of the uws API."""
    current = (job.get("job_details") or {}).get("current_job_details") or {}
    warning = current.get("time_warning")
    ext = current.get("extension") or {}
    idle = current.get("idle_warning") or {}
    return {
        "status": job.get("status"),
        "time_left": current.get("time_left") if job.get("status") == "running" else None,
        "end": (warning or {}).get("ends_at"),
        "warnings": [warning] if warning else [],
        "idle": {"warning": idle.get("message")},
        "extend": {
            "allowed": bool(ext.get("allowed")),
            "minutes": int(ext.get("max_minutes") or 0),
            "used": int(ext.get("used") or 0),
            "why_not": ext.get("why_not"),
        },
    }


class ExtendHandler(_UWSHandler):
    @web.authenticated
    async def post(self) -> None:
        owner = os.environ.get("JUPYTERHUB_USER", "")
        who = getattr(self.current_user, "username", None)
        if owner and who != owner:  # someone the session is shared with
            self.answer(403, {"message": f"Only {owner} can extend this session."})
            return
        body = self.get_json_body()
        body = body if isinstance(body, dict) else {}
        ask = {"minutes": body.get("minutes")}
        if "used" in body:  # the extensions the page saw: a repeated click is not a second one
            ask["used"] = body["used"]
        status, answer = await self.uws("PUT", f"jobs/{self.job_id}/extend/", ask)
        self.answer(status, {"message": answer.get("message", ""), "detail": answer.get("detail")})
