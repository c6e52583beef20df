"""The HTTP plumbing the stand-ins share: a real server on 127.0.0.1, a request log, failure injection.

Each stand-in subclasses :class:`StandinServer` and implements :meth:`StandinServer.handle`, which
turns a :class:`Request` into a :class:`Response`. The base class owns the socket and the thread
(``start()`` / ``stop()`` / ``url``), records every request for assertions, applies the failures
a test asked for (an error status, a delay, a dropped connection) before the stand-in sees the
request, and serves a small control API under ``/_standin/`` so a stand-in run as a subprocess
(``python -m standins.globus``) can be driven over HTTP as well.

Only the standard library is used: ``http.server.ThreadingHTTPServer``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

#: a failure's ``status`` that closes the connection without any answer
DROP = "drop"


class LoggedRequest(NamedTuple):
    """One request as the stand-in received it: ``(method, path, headers, body)``.

    ``path`` includes the query string; ``headers`` is a plain dict (the last value wins for a
    repeated header); ``body`` is the body decoded as UTF-8.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: str

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (first value of each)."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (first value of each)."""
        return {k: v[0] for k, v in parse_qs(self.body, keep_blank_values=True).items()}

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header, looked up without regard to case."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return default


@dataclass
class Request:
    """What a stand-in's :meth:`StandinServer.handle` receives."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    logged: LoggedRequest

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.logged.header(name, default)

    def form(self) -> dict[str, str]:
        return self.logged.form()


@dataclass
class Response:
    """What a stand-in's :meth:`StandinServer.handle` returns."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    hdrs = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}
    hdrs.update(headers or {})
    return Response(status, json.dumps(obj).encode(), hdrs)


def text_response(text: str, status: int = 200, content_type: str = "text/plain") -> Response:
    return Response(status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8"})


def redirect_response(location: str, status: int = 302) -> Response:
    return Response(status, b"", {"Location": location})


@dataclass
class FailureRule:
    """A failure a test injected: requests matching ``match`` get it, ``times`` times (None: always).

    ``status``: an HTTP status to answer with (``body`` is then sent as JSON, or a default error
    body), ``None`` to answer normally after ``delay`` seconds (a slow service), or :data:`DROP`
    to close the connection without answering.
    """

    match: str | None
    status: int | str | None = 500
    delay: float = 0.0
    times: int | None = None
    body: Any = None
    hits: int = 0

    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class _Handler(BaseHTTPRequestHandler):
    server_version = "standin/1"
    standin: StandinServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        if self.standin.verbose:
            sys.stderr.write(f"[{self.standin.name}] {format % args}\n")

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            self._respond(self.standin._process(self.command, self.path, dict(self.headers), body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout was shorter than an injected delay)

    def _respond(self, resp: Response | None) -> None:
        if resp is None:  # DROP
            self.close_connection = True
            return
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class StandinServer:
    """Base of the stand-ins: a threaded HTTP server on ``host`` (default 127.0.0.1), ephemeral port.

    In-process use (pytest)::

        srv = SomeStandin().start()
        ... srv.url ...
        srv.stop()

    or ``with SomeStandin() as srv: ...``. State is kept in memory behind one lock.
    """

    name = "standin"
    #: methods the ``/_standin/<method>`` control API may call (subclasses extend it)
    control_methods: tuple[str, ...] = ("clear_requests", "clear_failures", "set_failure")

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, verbose: bool = False):
        self.host = host
        self.port = port
        self.verbose = verbose
        self.lock = threading.RLock()
        self._log: list[LoggedRequest] = []
        self._failures: list[FailureRule] = []
        #: exceptions raised inside handle(): tests can assert this stays empty
        self.errors: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self):
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"standin": self})
        self._stopping.clear()
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (requests still sleeping in a delay are cut short)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://{self.host}:{self.port}"

    # ---- request log -----------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request received so far (a copy), oldest first; control calls are not logged."""
        with self.lock:
            return list(self._log)

    def requests_to(self, prefix: str, method: str | None = None) -> list[LoggedRequest]:
        """The logged requests whose path (without query) starts with ``prefix``."""
        return [
            r
            for r in self.requests
            if r.route.startswith(prefix) and (method is None or r.method == method.upper())
        ]

    def clear_requests(self) -> None:
        with self.lock:
            self._log.clear()

    # ---- failure injection -----------------------------------------------------------------

    def set_failure(
        self,
        match: str | None = None,
        status: int | str | None = 500,
        delay: float = 0.0,
        times: int | None = None,
        body: Any = None,
    ) -> FailureRule:
        """Make matching requests fail or be slow; see :class:`FailureRule`. Newest rule wins."""
        rule = FailureRule(match=match, status=status, delay=float(delay), times=times, body=body)
        with self.lock:
            self._failures.insert(0, rule)
        return rule

    def clear_failures(self) -> None:
        with self.lock:
            self._failures.clear()

    def _failure_key(self, req: Request) -> str | None:
        """What a FailureRule's ``match`` is compared with (subclasses decide)."""
        return req.path

    def _rule_matches(self, rule: FailureRule, key: str | None) -> bool:
        """A path prefix; a ``match`` ending in ``$`` is an exact path (``/v2/oauth2/token$``
        fails the token endpoint but not ``/v2/oauth2/token/introspect``)."""
        if rule.match is None:
            return True
        if key is None:
            return False
        if rule.match.endswith("$"):
            return key == rule.match[:-1]
        return key.startswith(rule.match)

    def _failure_body(self, rule: FailureRule) -> Response:
        body = rule.body if rule.body is not None else {"error": "injected failure"}
        return json_response(body, int(rule.status))  # type: ignore[arg-type]

    # ---- request processing ----------------------------------------------------------------

    def _process(self, method: str, raw_path: str, headers: dict[str, str], body: bytes):
        parts = urlsplit(raw_path)
        logged = LoggedRequest(method, raw_path, headers, body.decode("utf-8", "replace"))
        req = Request(
            method=method,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers=headers,
            body=body,
            logged=logged,
        )
        if req.path.startswith("/_standin/"):
            return self._control(req)
        with self.lock:
            self._log.append(logged)
            key = self._failure_key(req)
            rule = next(
                (r for r in self._failures if not r.exhausted() and self._rule_matches(r, key)),
                None,
            )
            if rule is not None:
                rule.hits += 1
        if rule is not None:
            if rule.delay:
                self._stopping.wait(rule.delay)
            if rule.status == DROP:
                return None
            if rule.status is not None:
                return self._failure_body(rule)
        try:
            return self.handle(req)
        except Exception:
            tb = traceback.format_exc()
            with self.lock:
                self.errors.append(tb)
            sys.stderr.write(f"[{self.name}] internal error:\n{tb}")
            return json_response({"error": "standin internal error", "detail": tb}, 500)

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def _control(self, req: Request) -> Response:
        """``POST /_standin/<method>`` with ``{"args": [...], "kwargs": {...}}`` → ``{"result": ...}``."""
        name = req.path[len("/_standin/") :]
        if req.method != "POST" or name not in self.control_methods:
            return json_response({"error": f"unknown control {req.method} {name}"}, 404)
        try:
            payload = json.loads(req.body or b"{}")
            result = getattr(self, name)(*payload.get("args", []), **payload.get("kwargs", {}))
        except Exception as exc:
            return json_response({"error": repr(exc)}, 400)
        return Response(
            200,
            json.dumps({"result": result}, default=_jsonable).encode(),
            {"Content-Type": "application/json"},
        )

    # ---- command line ----------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Subclasses add their own options."""

    def configure(self, args: argparse.Namespace) -> None:
        """Subclasses apply their own options."""

    @classmethod
    def main(cls, argv: list[str] | None = None) -> None:
        """Run as a subprocess: prints one JSON line ``{"url": ...}`` when ready, serves until signalled."""
        parser = argparse.ArgumentParser(prog=f"python -m standins.{cls.name}")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0: an ephemeral port")
        parser.add_argument("-v", "--verbose", action="store_true")
        cls.add_arguments(parser)
        args = parser.parse_args(argv)
        srv = cls(host=args.host, port=args.port, verbose=args.verbose)
        srv.configure(args)
        srv.start()
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        print(json.dumps({"url": srv.url, "port": srv.port}), flush=True)
        try:
            while not done.wait(0.5):
                pass
        finally:
            srv.stop()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    return str(obj)


def now() -> float:
    return time.time()
