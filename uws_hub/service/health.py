"""``GET /api/status/``: each part uws depends on, really checked, the results kept a few seconds.

One round of checks asks every part once, all at the same time, each within
``c.UWS.status_check_timeout``: the database (``SELECT 1``), the storage (a file written and
removed under ``root_dir``), the hub's API, each resource (local: the CPUs; Slurm: its
cluster's controller once per round — ``scontrol ping`` or slurmrestd's ping — and the
resource's partition), each Slurm cluster (``slurm_clusters``: its controller), and the
servers of the hub's login method (LDAP answering, Globus Auth's discovery document, the
account service answering, a passwd database with entries). Calls within
``c.UWS.status_cache_seconds`` get the last round's results; calls that arrive while a round runs share it. A check that blocks (a hung file
system, a database that does not answer) runs in a thread of its own pool, and is not started
again while its previous run still hangs, so probes never pile up threads.

The report has UWS's keys (``main_resource``, ``api_user_authentication``, ``resources{}``,
``storage_methods{}``, ``user_authentication_methods{}``) and uws_hub's (``database``,
``storage``, ``hub``), each ``{connected, message}``. Messages name hosts and errors: only
operators see them (`redacted` gives everyone else the booleans).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import pwd
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..globus_tokens import is_globus_login
from ..jobs.types import Resource
from ..slurm.spec import job_cluster
from .serialize import isoformat

log = logging.getLogger("uws_hub.service.health")

#: the name UWS gave its one storage method; uws_hub has one storage, ``root_dir``
STORAGE_NAME = "main_storage"
#: the groups of the report that hold one entry per configured thing
GROUPS = ("resources", "storage_methods", "user_authentication_methods", "slurm_clusters")


def ok(message: str) -> dict:
    return {"connected": True, "message": message}


def down(message: str) -> dict:
    return {"connected": False, "message": message}


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]


def redacted(deps: dict) -> dict:
    """The report for callers who are not operators: whether each part is connected, no
    messages (they name hosts, paths and errors)."""
    out: dict[str, Any] = {}
    for key, value in deps.items():
        if key in GROUPS:
            out[key] = {
                name: {"connected": d["connected"], "message": ""} for name, d in value.items()
            }
        else:
            out[key] = {"connected": value["connected"], "message": ""}
    return out


def not_connected(deps: dict) -> list[str]:
    """Names of the parts not connected (``resources.slurm``); the aliases ``main_resource``,
    ``api_user_authentication`` and ``storage_methods`` are not named twice."""
    names = [k for k in ("database", "storage", "hub") if not deps[k]["connected"]]
    for group in ("resources", "user_authentication_methods", "slurm_clusters"):
        names += [f"{group}.{n}" for n, d in deps.get(group, {}).items() if not d["connected"]]
    return names


class HealthChecks:
    """The checks of one service; `report` answers from the last round or runs a new one."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.settings = ctx.settings
        #: rounds of checks run so far (the unit tests and the cache's tests count them)
        self.rounds = 0
        self._report: dict | None = None
        self._at = float("-inf")
        self._round: asyncio.Future | None = None
        self._running: dict[str, asyncio.Future] = {}
        self._login: list[tuple[str, Callable[[], Awaitable[dict]]]] | None = None

    @classmethod
    def of(cls, ctx: Any) -> HealthChecks:
        """The service's checks (made at the first status call)."""
        found = getattr(ctx, "_health_checks", None)
        if found is None:
            found = cls(ctx)
            ctx._health_checks = found
        return found

    @property
    def timeout(self) -> float:
        return float(self.settings.status_check_timeout)

    async def report(self) -> dict:
        """``{"checked_at": ISO time, "dependencies": {...}}``, at most
        ``status_cache_seconds`` old (calls during a round share it)."""
        age = time.monotonic() - self._at
        if self._report is not None and age < self.settings.status_cache_seconds:
            return self._report
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._round)

    async def _run(self) -> dict:
        checked_at = isoformat(dt.datetime.now(dt.timezone.utc))
        s = self.settings
        pings = {
            cid: asyncio.ensure_future(self._bounded(self._slurm_ping(cid)))
            for cid in self._clusters_used()
        }
        login = self._login_checks()
        checks: dict[Any, Awaitable[dict]] = {
            "database": self._bounded(self._threaded("database", self._database)),
            "storage": self._bounded(self._threaded("storage", self._storage)),
            "hub": self._bounded(self._hub()),
        }
        for rid, resource in s.resource_map.items():
            checks["resources", rid] = self._bounded(self._resource(resource, pings))
        for cid in pings:
            checks["slurm_clusters", cid] = self._bounded(self._cluster(cid, pings[cid]))
        for name, check in login:
            checks["user_authentication_methods", name] = self._bounded(check())
        done = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        deps: dict[str, Any] = {k: done[k] for k in ("database", "storage", "hub")}
        resources = {rid: done["resources", rid] for rid in s.resource_map}
        methods = {name: done["user_authentication_methods", name] for name, _ in login}
        deps["main_resource"] = resources.get(self.main_resource(), down("no resource"))
        deps["api_user_authentication"] = self._api_auth(deps["hub"], methods)
        deps["resources"] = resources
        deps["storage_methods"] = {STORAGE_NAME: deps["storage"]}
        deps["user_authentication_methods"] = methods
        if pings:
            deps["slurm_clusters"] = {cid: done["slurm_clusters", cid] for cid in pings}
        self._report = {"checked_at": checked_at, "dependencies": deps}
        self._at = time.monotonic()
        self.rounds += 1
        return self._report

    async def _bounded(self, check: Awaitable[dict]) -> dict:
        """The check's answer, or not connected if it fails or takes too long."""
        try:
            return await asyncio.wait_for(check, self.timeout)
        except asyncio.TimeoutError:
            return down(f"no answer within {self.timeout:g} s")
        except Exception as e:  # report, never raise: this is a health check
            return down(_error(e))

    async def _threaded(self, key: str, fn: Callable[[], dict]) -> dict:
        """Run blocking `fn` in a thread of its own (a daemon: a hung file system never holds
        up the service's exit); while an earlier run of the same check still hangs, say so
        instead of starting another."""
        running = self._running.get(key)
        if running is not None and not running.done():
            return down("the previous check has not finished yet (it hangs)")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
        self._running[key] = fut

        def settle(result: Any, error: BaseException | None) -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        def work() -> None:
            try:
                result, error = fn(), None
            except BaseException as e:  # noqa: BLE001 - handed to the waiting check
                result, error = None, e
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:  # the loop has closed: nobody waits any more
                pass

        threading.Thread(target=work, name=f"uws-health-{key}", daemon=True).start()
        return await asyncio.shield(fut)  # a timeout leaves `fut` pending until the thread ends

    # ---- the service's own parts ------------------------------------------------------------

    def main_resource(self) -> str:
        """The resource a start that names none runs on (the default job type's first; else
        the first configured): UWS's ``main_resource``."""
        s = self.settings
        job_type = s.job_type_map.get(s.default_job_type or "")
        if job_type is not None and job_type.resources:
            return job_type.resources[0]
        return next(iter(s.resource_map), "")

    def _database(self) -> dict:
        engine = self.ctx.engine
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return ok(engine.dialect.name)

    def _storage(self) -> dict:
        root = self.settings.root_dir
        if not os.path.isdir(root):
            return down(f"{root} is missing or not writable (not a directory)")
        try:  # a real write: access() says yes on a file system that refuses writes
            fd, path = tempfile.mkstemp(prefix=".uws-status-", dir=root)
            os.close(fd)
            os.unlink(path)
        except OSError as e:
            return down(f"{root} is missing or not writable ({e.strerror or e})")
        st = os.statvfs(root)
        return ok(f"{st.f_bavail * st.f_frsize} bytes free")

    async def _hub(self) -> dict:
        info = await self.ctx.hub.info()
        return ok(f"JupyterHub {info.get('version')}")

    # ---- resources --------------------------------------------------------------------------

    def _clusters_used(self) -> list[str]:
        """The Slurm clusters the resources run on (each checked once per round)."""
        found = {job_cluster(self.settings, rid) for rid in self.settings.resource_map}
        return sorted(c for c in found if c)

    def _cluster_of(self, cluster_id: str):
        from ..slurm.clusters import cluster_of  # (its metrics only where Slurm is used)

        return cluster_of(self.settings, cluster_id)

    async def _resource(self, resource: Resource, pings: dict[str, asyncio.Future]) -> dict:
        if resource.kind != "slurm":
            cpus = os.cpu_count() or 0
            return ok(f"{cpus} CPUs on this host") if cpus else down("no CPU found")
        cid = job_cluster(self.settings, resource.id)
        controller = await asyncio.shield(pings[cid])
        if not controller["connected"] or not resource.partition:
            return controller
        up, message = await self._cluster_of(cid).partition_state(resource.partition)
        if not up:
            return down(message)
        return ok(f"{controller['message']}; {message}")

    async def _slurm_ping(self, cluster_id: str) -> dict:
        up, message = await self._cluster_of(cluster_id).ping()
        return ok(message) if up else down(message)

    async def _cluster(self, cluster_id: str, ping: asyncio.Future) -> dict:
        """A cluster: its controller answering (while it does not, its jobs' states are
        unknown; the hub's uws_slurm_queue_up says the same of its last queue read)."""
        spec = self.settings.cluster_map[cluster_id]
        controller = await asyncio.shield(ping)
        way = f"{spec.name} ({spec.way})"
        if not controller["connected"]:
            return down(f"{way}: {controller['message']}")
        return ok(f"{way}: {controller['message']}")

    # ---- the hub's login method ---------------------------------------------------------------

    def _api_auth(self, hub: dict, methods: dict) -> dict:
        """What ``POST /tokens/`` relies on: the hub (client tokens), and Globus Auth where
        the hub logs in with Globus (Globus tokens are introspected there)."""
        globus = self._globus_method()
        if globus is None or globus not in methods:
            return hub
        g = methods[globus]
        return {
            "connected": hub["connected"] and g["connected"],
            "message": f"hub: {hub['message']}; Globus: {g['message']}",
        }

    def _globus_method(self) -> str | None:
        login = self._login_checks()
        return next((name for name, check in login if getattr(check, "globus", False)), None)

    def _login_checks(self) -> list[tuple[str, Callable[[], Awaitable[dict]]]]:
        """(name, check) for each server the hub's login method relies on (loaded once)."""
        if self._login is None:
            self._login = login_checks(self.settings, self)
        return self._login


def _authenticator(settings: Any) -> Any:
    """The hub's authenticator, built from the hub's config file as the hub builds it (the
    service reads the same file); raises what loading raises."""
    cls = settings.hub_authenticator_class()
    if cls is None:
        from jupyterhub.auth import PAMAuthenticator  # JupyterHub's default

        cls = PAMAuthenticator
    return cls(config=settings.config)


def _mro_names(obj: Any) -> set[str]:
    return {c.__name__ for c in type(obj).__mro__}


def login_checks(settings: Any, checks: HealthChecks) -> list[tuple[str, Callable]]:
    """The checks of the hub's login method, named as its identities are recorded
    (``identity_source``: ``ldap``, ``globus``, ``local``, ``dev``); the account service
    adds ``account_api`` (and ``account_ldap`` when it confirms accounts in LDAP)."""
    try:
        auth = _authenticator(settings)
    except Exception as e:  # the hub reports its own authenticator's errors; so do we
        err = _error(e)

        async def broken() -> dict:
            return down(f"the hub's authenticator did not load: {err}")

        return [("authenticator", broken)]
    names = _mro_names(auth)
    name = getattr(auth, "identity_source", "") or type(auth).__name__.lower()
    if "UWSDevAuthenticator" in names:
        return [(name, _const(ok("development login: no outside service")))]
    if is_globus_login(type(auth)):
        out = [(name, _globus_check(auth, checks))]
        if getattr(auth, "account_api_url", ""):
            out.append(("account_api", _account_api_check(auth, checks)))
            if getattr(auth, "confirm_ldap_url", ""):
                url = auth.confirm_ldap_url
                out.append(("account_ldap", _ldap_check(checks, url, None, False, {})))
        return out
    if hasattr(auth, "server_address") and hasattr(auth, "bind_dn_template"):
        tls = getattr(auth.tls_strategy, "name", str(auth.tls_strategy))
        use_ssl = tls == "on_connect"
        check = _ldap_check(checks, auth.server_address, auth.server_port, use_ssl, auth.tls_kwargs)
        return [(name if name != type(auth).__name__.lower() else "ldap", check)]
    if "PAMAuthenticator" in names:
        return [(name if "UWSIdentityMixin" in names else "pam", _passwd_check(checks))]
    return [(name, _const(ok(f"{type(auth).__name__}: not checked (no check for it)")))]


def _const(answer: dict) -> Callable[[], Awaitable[dict]]:
    async def check() -> dict:
        return answer

    return check


def _passwd_check(checks: HealthChecks) -> Callable[[], Awaitable[dict]]:
    def count() -> dict:
        n = len(pwd.getpwall())
        return ok(f"{n} accounts in the passwd database") if n else down("no passwd entries")

    async def check() -> dict:
        return await checks._threaded("passwd", count)

    return check


def _ldap_check(
    checks: HealthChecks, address: str, port: int | None, use_ssl: bool, tls_kwargs: dict
) -> Callable[[], Awaitable[dict]]:
    """An LDAP server that answers an anonymous bind (accepted or refused: it answered)."""

    def probe() -> dict:
        import ldap3
        from ldap3.core.exceptions import LDAPException

        timeout = checks.timeout
        tls = ldap3.Tls(**tls_kwargs) if tls_kwargs else None
        server = ldap3.Server(
            address,
            port=port,
            use_ssl=use_ssl,
            tls=tls,
            connect_timeout=timeout,
            get_info=ldap3.NONE,
        )
        where = f"{'ldaps' if server.ssl else 'ldap'}://{server.host}:{server.port}"
        conn = ldap3.Connection(server, receive_timeout=max(1, int(timeout)))
        try:
            conn.open()
            conn.bind()  # anonymous: accepted or refused, the server answered
        except LDAPException as e:
            return down(f"{where}: {_error(e)}")
        finally:
            try:
                conn.unbind()
            except LDAPException:
                pass
        return ok(f"{where} answered")

    async def check() -> dict:
        return await checks._threaded(f"ldap {address}:{port}", probe)

    return check


async def _http_answer(
    method: str, url: str, timeout: float, headers: dict | None = None, body: str | None = None
) -> int:
    """The HTTP status `url` answers with (raises when nothing answers)."""
    req = HTTPRequest(
        url,
        method=method,
        headers=headers,
        body=body,
        request_timeout=timeout,
        connect_timeout=timeout,
        follow_redirects=False,
    )
    try:
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    except HTTPClientError as e:  # 599: no connection, a timeout
        raise ConnectionError(str(e)) from e
    if resp.code == 599:
        raise ConnectionError(str(resp.error))
    return resp.code


def _globus_check(auth: Any, checks: HealthChecks) -> Callable[[], Awaitable[dict]]:
    """Globus Auth answers its OIDC discovery document (on the host of the token URL)."""
    parts = urlsplit(auth.token_url)
    url = f"{parts.scheme}://{parts.netloc}/.well-known/openid-configuration"

    async def check() -> dict:
        code = await _http_answer("GET", url, checks.timeout)
        return ok(f"{url} answered {code}") if code == 200 else down(f"{url} answered {code}")

    check.globus = True  # type: ignore[attr-defined]
    return check


def _account_api_check(auth: Any, checks: HealthChecks) -> Callable[[], Awaitable[dict]]:
    """The account service answers (any answer but a server error or a refused credential:
    a GraphQL endpoint may refuse the probe's query and still be up)."""
    url = auth.account_api_url
    name = getattr(auth, "account_api_name", "the account service")

    async def check() -> dict:
        token = auth.account_api_token or os.environ.get("UWS_ACCOUNT_API_TOKEN", "")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            auth.account_api_auth_header: auth.account_api_auth_format.format(token=token),
        }
        body = '{"query": "{ __typename }"}'
        code = await _http_answer("POST", url, checks.timeout, headers, body)
        if code in (401, 403):
            return down(f"{name} at {url} refused the hub's credential ({code})")
        if code >= 500:
            return down(f"{name} at {url} answered {code}")
        return ok(f"{name} at {url} answered {code}")

    return check
