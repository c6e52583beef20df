"""Start-up of the uws service: read the hub's config file, validate, migrate, serve.

    python -m uws_hub.service --config /path/to/jupyterhub_config.py [--check-config]

The hub starts it (see `uws_hub.setup`) with JUPYTERHUB_* variables describing where to listen
and how to reach the hub. A configuration that cannot work stops it with one line naming the
setting to fix; the hub then stops too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import secrets
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import yaml
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.log import LogFormatter

from .. import scopes
from .._version import __version__
from ..config import UWS, load_config_file
from ..db import migrate
from ..db.session import make_engine, make_sessionmaker
from ..domain import build_domain
from ..errors import ConfigError
from ..idempotency import IdempotencyStore
from ..workspaces.browse import WorkspaceFiles
from ..workspaces.upload import clear_staging
from . import metrics
from .auth import UWSHubAuth
from .cache import ListingCache
from .handlers import audit, base, files, info, jobs, pages, shares, tokens, users, workspaces
from .hubclient import HubClient
from .ratelimit import RateLimiter
from .reconciler import Reconciler
from .tokenrenew import JobTokenRenewer

log = logging.getLogger("uws_hub.service")
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
#: on SIGTERM, how long requests being served may take to finish (the hub kills a service that
#: has not exited 5 s after SIGTERM)
DRAIN_SECONDS = 4.0


def _build_id() -> str:
    """The git commit the package runs from, when it runs from a checkout; else 'release'."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "release"
    except (OSError, subprocess.SubprocessError):
        return "release"


def _rate_limits(settings: UWS) -> dict[str, RateLimiter]:
    """Per-token and per-address request limits (c.UWS.rate_limit_*)."""
    return {
        "token": RateLimiter(
            settings.rate_limit_per_token, settings.rate_limit_token_burst, "token"
        ),
        "address": RateLimiter(
            settings.rate_limit_per_address, settings.rate_limit_address_burst, "address"
        ),
    }


class ServiceContext:
    """Everything handlers share: settings, database, domain managers, hub access."""

    def __init__(self, settings: UWS, prefix: str, hub_prefix: str):
        self.settings = settings
        self.prefix = prefix
        self.hub_prefix = hub_prefix
        self.engine = make_engine(settings.db_url, **settings.db_kwargs)
        self.db = make_sessionmaker(self.engine)
        self.idempotency = IdempotencyStore(self.db, settings.idempotency_window_hours)
        #: requests being served now (a stop lets them finish), and whether it is stopping
        self.in_flight = 0
        self.stopping = False
        #: hub users a service or operator has named with ?user= and the hub confirmed
        self.known_users: set[str] = set()
        self.executor = ThreadPoolExecutor(settings.fs_workers, thread_name_prefix="uws-fs")
        self.listings = ListingCache()
        self.hub = HubClient(timeout=settings.hub_api_timeout)
        # the domain, each manager given what it uses (the unit tests build it the same way)
        domain = build_domain(settings, self.db, self.executor, self.hub)
        self.quotas, self.notifier, self.work = domain.quotas, domain.notifier, domain.work
        self.share_copies, self.workspaces = domain.share_copies, domain.workspaces
        self.shares, self.jobs = domain.shares, domain.jobs
        self.rescans, self.diskwatch = domain.rescans, domain.diskwatch
        self.sessions = domain.sessions
        self.files = WorkspaceFiles(self.workspaces)  # browsing and downloads without a job
        self.reconciler = Reconciler(
            self.workspaces,
            self.work,
            settings.reconcile_interval,
            settings.fs_workers,
            jobs=self.jobs,
            job_interval=settings.job_sync_interval,
            audit_retention_days=settings.audit_retention_days,
            db=self.db,
            idempotency=self.idempotency,
            rescans=self.rescans,
            diskwatch=(self.diskwatch, settings.disk_quota_check_interval),
            user_deletions=(domain.user_deletions, settings.user_sync_interval),
            session_watch=(domain.session_watch, settings.session_check_interval),
        )
        self.hub_auth = UWSHubAuth(cache_max_age=settings.token_cache_seconds)
        self.limits = _rate_limits(settings)
        # workspaces and jobs by status, read from the database at each scrape
        self.metrics = metrics.register(self.db, settings.job_type_map)
        self.build = _build_id()
        self.openapi_yaml = OPENAPI_PATH.read_text()
        self.openapi = yaml.safe_load(self.openapi_yaml)


def _cookie_secret(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read().strip()
        if data:
            return data
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


def _raise_open_file_limit() -> None:
    """Walking deep trees holds a descriptor per level: use the hard limit, not the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _drop_supplementary_groups() -> None:
    """Run without root's supplementary groups: acting as a workspace's owner switches only the
    filesystem uid and gid (`fsops.acting_as`), so a group root belongs to would still open a
    group-readable file of root's inside a workspace (a download, a zip) for its owner."""
    if os.geteuid() == 0 and os.getgroups():
        os.setgroups([])


class UWSApplication(web.Application):
    """The service's tornado application: a method no handler serves is routed to a handler
    that reads the request to its end before answering 405 (see `base.MethodNotAllowedHandler`)."""

    def find_handler(self, request, **kwargs):
        delegate = super().find_handler(request, **kwargs)
        target = delegate.handler_class
        if request.method not in target.SUPPORTED_METHODS and issubclass(target, base.BaseHandler):
            return self.get_handler_delegate(
                request,
                base.MethodNotAllowedHandler,
                {"target": target},
                delegate.path_args,
                delegate.path_kwargs,
            )
        return delegate


_WS_ACTIONS = {
    "scope": scopes.WORKSPACES,
    "actions": "PUT /workspaces/<id>/start/ starts a job, PUT /workspaces/<id>/upload/ uploads "
    "files, PUT /workspaces/<id>/scan/ rescans it, GET /workspaces/<id>/files/ lists its "
    "files, PUT /workspaces/<id>/ updates it.",
}
_JOB_ACTIONS = {"scope": scopes.JOBS, "actions": "PUT /jobs/<id>/stop/ stops a job."}
_SHARE_ACTIONS = {
    "scope": scopes.SHARES,
    "actions": "PUT /shared_workspaces/<id>/accept/ accepts an invitation; DELETE "
    "/shared_workspaces/<id>/ declines or cancels it.",
}


def routes(prefix: str) -> list:
    """Every URL of the service, in one table: the REST API (under ``api/``), the metrics, the
    pages and their static files. Tornado takes the first pattern that matches."""
    api = prefix + "api/"
    return [
        (rf"{api}job_types/?", info.JobTypesHandler),
        (rf"{api}parameters/?", info.ParametersHandler),
        (rf"{api}resources/?", info.ResourcesHandler),
        (rf"{api}status/?", info.StatusHandler),
        (rf"{api}openapi\.(json|yaml)", info.OpenAPIHandler),
        (rf"{prefix}metrics", info.MetricsHandler),
        (rf"{api}audit/?", audit.AuditHandler),
        (rf"{api}jobs/([^/]+)/shares/?", jobs.JobSharesHandler),
        (rf"{api}workspaces/([^/]+)/start/?", jobs.StartHandler),
        (rf"{api}jobs/?", jobs.JobsHandler),
        (rf"{api}jobs/([^/]+)/stop/?", jobs.StopHandler),
        (rf"{api}jobs/([^/]+)/extend/?", jobs.ExtendHandler),
        (rf"{api}jobs/([^/]+)/events/?", jobs.EventsHandler),
        (rf"{api}jobs/([^/]+)/([^/]+)/?", base.UnknownActionHandler, _JOB_ACTIONS),
        (rf"{api}jobs/([^/]+)/?", jobs.JobsHandler),
        (rf"{api}tokens/?", tokens.TokensHandler),
        (rf"{api}shared_workspaces/([^/]+)/accept/?", shares.AcceptHandler),
        (rf"{api}shared_workspaces/?", shares.SharesHandler),
        (rf"{api}shared_workspaces/([^/]+)/?", shares.SharesHandler),
        (
            rf"{api}shared_workspaces/([^/]+)/([^/]+)/?",
            base.UnknownActionHandler,
            _SHARE_ACTIONS,
        ),
        (rf"{api}users/?", users.UserSearchHandler),
        (rf"{api}users/([^/]+)/quota/?", users.QuotaHandler),
        (rf"{api}quotas/?", users.QuotasHandler),
        (rf"{api}usage/?", users.UsageHandler),
        (rf"{api}workspaces/?", workspaces.WorkspacesHandler),
        (rf"{api}workspaces/([^/]+)/upload/?", workspaces.UploadHandler),
        (rf"{api}workspaces/([^/]+)/scan/?", workspaces.ScanHandler),
        (rf"{api}workspaces/([^/]+)/files/download/?", files.DownloadHandler),
        (rf"{api}workspaces/([^/]+)/files/?", files.FilesHandler),
        (rf"{api}workspaces/([^/]+)/([^/]+)/?", base.UnknownActionHandler, _WS_ACTIONS),
        (rf"{api}workspaces/([^/]+)/?", workspaces.WorkspacesHandler),
        (rf"{prefix}?", pages.HomeHandler),
        (rf"{prefix}workspaces/([^/]+)/?", pages.WorkspacePageHandler),
        (rf"{prefix}shares/?", pages.SharesPageHandler),
        (rf"{prefix}admin/?", pages.AdminPageHandler),
        (rf"{prefix}static/(.*)", pages.StaticHandler, {"path": pages.STATIC}),
        (rf"{prefix}oauth_callback", pages.OAuthCallbackHandler),
    ]


def make_app(ctx: ServiceContext) -> web.Application:
    handlers = routes(ctx.prefix)
    return UWSApplication(
        handlers,
        uws=ctx,
        cookie_secret=_cookie_secret(ctx.settings.cookie_secret_file),
        default_handler_class=base.NotFoundHandler,
        xsrf_cookies=False,  # HubOAuth checks XSRF for cookie-authenticated requests itself
        login_url=ctx.hub_prefix + "login",
    )


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        LogFormatter(
            fmt="%(color)s[%(levelname)1.1s %(asctime)s.%(msecs).03d uws %(module)s:%(lineno)d]%(end_color)s %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)


def load_settings(config_file: str) -> tuple[UWS, list[str]]:
    """Load and validate the c.UWS section of `config_file`; raise ConfigError."""
    try:
        cfg = load_config_file(config_file)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {config_file} not found") from e
    except SystemExit as e:  # uws_hub.setup(c) in the file found a bad setting
        raise ConfigError(str(e.code).removeprefix("uws_hub: configuration error: ")) from e
    settings = UWS(config=cfg)
    try:
        warnings = settings.validate()
    except ConfigError:
        raise
    except Exception as e:  # a trait error while reading a setting
        raise ConfigError(str(e).splitlines()[0]) from e
    return settings, warnings


def _check_schema(engine, *, upgrade: bool) -> None:
    """Bring the database to this version's schema (c.UWS.upgrade_db), or refuse to start."""
    if upgrade:
        migrate.upgrade(engine)
        return
    current, head = migrate.current_revision(engine), migrate.head_revision()
    if current != head:
        raise ConfigError(
            f"the uws database is at schema {current}, this version needs {head}: run `uws-hub db upgrade -f <config>`"
        )


async def _drain(ctx: ServiceContext) -> None:
    """Let requests already being served finish (their answers go out) before the
    file-system threads and the database they may need are shut down; at most DRAIN_SECONDS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    while ctx.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if ctx.in_flight:
        log.warning(
            "%d request(s) still running after %gs; stopping anyway", ctx.in_flight, DRAIN_SECONDS
        )


async def serve(settings: UWS, warnings: list[str]) -> None:
    """Run the service until SIGTERM/SIGINT: check the schema, listen, start the
    reconciler, token renewal and mail outbox; on a stop, drain and shut down in order."""
    for w in warnings:
        log.warning("config: %s", w)
    name = settings.service_name
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{name}/")
    hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
    ctx = ServiceContext(settings, prefix, hub_prefix)
    _check_schema(ctx.engine, upgrade=settings.upgrade_db)
    _raise_open_file_limit()
    _drop_supplementary_groups()
    clear_staging(settings.root_dir)
    app = make_app(ctx)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", settings.service_url))
    server = HTTPServer(
        app,
        xheaders=True,
        max_body_size=max(settings.max_upload_size, settings.max_json_body_size),
        idle_connection_timeout=settings.header_timeout,
    )
    server.listen(url.port, url.hostname)
    ctx.reconciler.start()
    renewer = JobTokenRenewer.for_service(settings, ctx.db, ctx.hub)  # Globus hubs only
    if renewer is not None:
        renewer.start()
    ctx.notifier.start()
    log.info(
        "uws service %s listening on %s (prefix %s, db %s)",
        __version__,
        url.geturl(),
        prefix,
        ctx.engine.url.render_as_string(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("uws service stopping")
    ctx.stopping = True  # requests arriving on open connections from now on: 503, retry
    server.stop()
    await _drain(ctx)
    ctx.share_copies.stopping = True  # copies under way stop at their next progress report
    await ctx.reconciler.stop()
    if renewer is not None:
        await renewer.stop()
    await ctx.notifier.stop()
    ctx.share_copies.stop()
    ctx.executor.shutdown(wait=True, cancel_futures=True)
    ctx.engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m uws_hub.service", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", "-f", required=True, help="the hub's jupyterhub_config.py")
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging(args.debug)
    try:
        settings, warnings = load_settings(args.config)
        if args.check_config:
            for w in warnings:
                print(f"uws_hub: warning: {w}", file=sys.stderr)
            print(
                json.dumps({"ok": True, "root_dir": settings.root_dir, "db_url": settings.db_url})
            )
            return
        asyncio.run(serve(settings, warnings))
    except ConfigError as e:
        print(f"uws_hub: configuration error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
