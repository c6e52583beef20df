"""Shared handler machinery: authentication, scope checks, the JSON envelope, errors, CORS.

Handlers parse, authorize, call a domain function and serialize; domain errors (`UWSError`)
become ``{"success": false, "message": ...}`` here, in one place.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import weakref
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed, check_scopes
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from tornado import netutil, web
from tornado.ioloop import IOLoop

from ... import audit, idempotency, scopes
from ...db.models import User
from ...errors import (
    BadRequest,
    Forbidden,
    HubAPIError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UWSError,
)
from ...users.accounts import user_for
from .. import jsonbody, ratelimit
from ..serialize import dumps

log = logging.getLogger("uws_hub.service")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@web.stream_request_body
class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Base for every uws handler.

    Bodies are streamed (``stream_request_body``). Tornado closes the connection when a handler
    answers before the request is fully read — even a GET — and the proxy, still writing, gets
    a reset and answers a bare 503. So an error found before the body (no token, oversized
    upload) is kept, the body is read and dropped, and the error is answered once the request
    has arrived (see `endpoint`, which every HTTP method carries). Nothing answers from
    `prepare`.
    """

    _deferred_error: Exception | None = None
    _deferred_redirect: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, at import, a handler whose HTTP methods are not marked `endpoint`."""
        super().__init_subclass__(**kwargs)
        for name in ("get", "post", "put", "delete", "patch"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_uws_endpoint", False):
                raise TypeError(
                    f"{cls.__name__}.{name} must be decorated with @endpoint "
                    "(uws_hub.service.handlers.base): it answers errors found before the body "
                    "and replays idempotent calls."
                )

    #: set False on handlers anyone may call (job_types, parameters, status)
    auth_required = True

    @classmethod
    def allowed_methods(cls, path_args: list[str]) -> list[str]:
        """The methods this resource answers (the ``Allow`` header of a 405). Handlers whose
        methods depend on the path (a collection or one item) override it."""
        return [
            m
            for m in ("GET", "POST", "PUT", "DELETE", "PATCH")
            if getattr(cls, m.lower()) is not getattr(web.RequestHandler, m.lower())
        ] + ["OPTIONS"]

    def initialize(self) -> None:
        self._chunks: list[bytes] | None = []
        self._body_size = 0

    @property
    def ctx(self):
        return self.settings["uws"]

    def data_received(self, chunk: bytes) -> Any:
        self._last_byte = IOLoop.current().time()
        if self._request_hash is not None and self.hash_raw_body:
            self._request_hash.update(chunk)
        pending = self.receive(chunk)
        return None if pending is None else self._receiving(pending)

    async def _receiving(self, pending: Any) -> None:
        # a chunk being stored (an upload writing to disk) is progress, not a stalled client
        self._in_receive = True
        try:
            await pending
        finally:
            self._in_receive = False
            self._last_byte = IOLoop.current().time()

    def receive(self, chunk: bytes) -> Any:
        """Keep a piece of the request body (a JSON body, up to its size limit); subclasses
        that stream bodies elsewhere (uploads) override it."""
        self._body_size += len(chunk)
        if self._chunks is not None:
            if self._body_size > self.ctx.settings.max_json_body_size:
                self._chunks = None  # too large: keep reading, keep nothing, answer 413
            else:
                self._chunks.append(chunk)

    @property
    def hub_auth(self):
        return self.ctx.hub_auth

    @property
    def db(self):
        if not hasattr(self, "_db"):
            # the audit log records the caller of this request for changes made in this session
            # (looked up when an event is recorded: after authentication; through a weak
            # reference, so the session holds no cycle that would keep its connection open)
            handler = weakref.ref(self)
            self._db = audit.bind(
                self.ctx.db(), lambda: h.audit_actor() if (h := handler()) else audit.SYSTEM
            )
        return self._db

    @property
    def request_id(self) -> str:
        """The client's ``X-Request-Id`` if it sent a sane one, else a new one; answered in the
        ``X-Request-Id`` header and kept with audit events, so a report can be traced."""
        if getattr(self, "_request_id", None) is None:
            given = self.request.headers.get("X-Request-Id", "")
            self._request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        return self._request_id

    @property
    def client_ip(self) -> str:
        """The caller's address: the last ``X-Forwarded-For`` entry, the one the proxy added
        (it appends to whatever the client sent). Not ``X-Real-Ip``, which the proxy passes on
        from the client unchanged (tornado's ``xheaders`` would believe it)."""
        forwarded = self.request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        return last if last and netutil.is_valid_ip(last) else self.request.remote_ip

    def audit_actor(self) -> audit.Actor:
        """Who this request acts as, for the audit log."""
        model = getattr(self, "_hub_user", None) or {}
        return audit.Actor(
            name=model.get("name") or "anonymous",
            kind=model.get("kind", "user") if model else "anonymous",
            ip=self.client_ip,
            request_id=self.request_id,
        )

    def on_finish(self) -> None:
        self._done()
        self._stop_body_watch()
        if hasattr(self, "_db"):
            self._db.close()

    def on_connection_close(self) -> None:
        self._done()
        self._stop_body_watch()
        super().on_connection_close()

    # ---- request bodies that do not arrive -----------------------------------------------

    #: False on handlers whose bodies may take long but keep arriving (uploads)
    body_time_bounded = True
    _body_timer: Any = None
    _in_receive = False

    def _watch_body(self) -> None:
        """Answer 408 if the body stops arriving (`body_idle_timeout`) or, for JSON bodies,
        is not complete in `body_timeout`: a client that declares a body and never sends it
        must not hold a connection and a handler."""
        now = IOLoop.current().time()
        self._last_byte = now
        limits = self.ctx.settings
        self._body_deadline = now + limits.body_timeout if self.body_time_bounded else None
        self._schedule_body_check()

    def _schedule_body_check(self) -> None:
        due = self._last_byte + self.ctx.settings.body_idle_timeout
        if self._body_deadline is not None:
            due = min(due, self._body_deadline)
        loop = IOLoop.current()
        self._body_timer = loop.call_at(max(due, loop.time() + 0.25), self._check_body)

    def _stop_body_watch(self) -> None:
        if self._body_timer is not None:
            IOLoop.current().remove_timeout(self._body_timer)
            self._body_timer = None

    def _check_body(self) -> None:
        self._body_timer = None
        if self._finished:
            return
        limits, now = self.ctx.settings, IOLoop.current().time()
        if self._in_receive:
            why = None
        elif now >= self._last_byte + limits.body_idle_timeout:
            why = f"no part of it arrived for {limits.body_idle_timeout:g} seconds"
        elif self._body_deadline is not None and now >= self._body_deadline:
            why = f"it did not arrive in full within {limits.body_timeout:g} seconds"
        else:
            why = None
        if why is None:
            self._schedule_body_check()
            return
        log.info("%s %s: request body timed out (%s)", self.request.method, self.request.path, why)
        error = UWSError(
            f"Request body not received: {why}. Send the whole body at once (check "
            "Content-Length), then retry.",
            status_code=408,
            headers={"Connection": "close"},  # the rest of the body is not read
        )
        self.send_error(408, exc_info=(UWSError, error, None))

    # ---- CORS --------------------------------------------------------------------------

    def set_default_headers(self) -> None:
        self.set_header("X-Request-Id", self.request_id)
        origin = self.request.headers.get("Origin")
        if origin and origin in self.ctx.settings.cors_allowed_origins:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header(
                "Access-Control-Expose-Headers", "Retry-After, Idempotent-Replayed, X-Request-Id"
            )
            self.set_header("Vary", "Origin")

    async def options(self, *args: Any) -> None:
        """CORS preflight: answered directly (no redirect), only for configured origins."""
        origin = self.request.headers.get("Origin")
        if origin and origin in self.ctx.settings.cors_allowed_origins:
            self.set_header("Access-Control-Allow-Methods", ", ".join(self._allow()))
            self.set_header(
                "Access-Control-Allow-Headers",
                "Authorization, UWS-Authorization, Content-Type, X-XSRFToken, "
                "Idempotency-Key, X-Request-Id",
            )
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    # ---- authentication ----------------------------------------------------------------

    # ---- idempotency keys (uws_hub.idempotency) -------------------------------------------

    #: the creating calls that honour ``Idempotency-Key``: method -> route name
    idempotent_routes: dict[str, str] = {}
    _request_hash: Any = None
    _idempotency_row: int | None = None
    #: False where the body's bytes vary between tries of the same request (multipart
    #: boundaries): the handler gives `content_digest` instead
    hash_raw_body = True

    def content_digest(self) -> str:
        """What the request carries, for handlers that do not hash the raw body."""
        return ""

    def _start_request_hash(self) -> None:
        """Hash what makes a request itself (method, path, query, body) when it carries an
        ``Idempotency-Key`` for a route that honours one; the body is added as it arrives."""
        if self.request.method in self.idempotent_routes and (
            "Idempotency-Key" in self.request.headers
        ):
            h = hashlib.sha256()
            query = sorted(self.request.query_arguments.items())
            h.update(f"{self.request.method} {self.request.path.rstrip('/')} {query}\n".encode())
            self._request_hash = h

    def idempotency_scope(self) -> str:
        """Whose keys these are: the caller (a person or a service)."""
        model = self._hub_user or {}
        return f"{model.get('kind', 'user')}:{model.get('name')}"

    async def _idempotency_begin(self) -> bool:
        """Record the call under its key, or answer it again from the record (True)."""
        if self._request_hash is None:
            return False
        store = self.ctx.idempotency
        found = store.begin(
            self.idempotency_scope(),
            self.idempotent_routes[self.request.method],
            self.request.headers["Idempotency-Key"],
            hashlib.sha256(
                (self._request_hash.hexdigest() + self.content_digest()).encode()
            ).hexdigest(),
        )
        if isinstance(found, (int, idempotency.Takeover)):
            row = found if isinstance(found, int) else found.row
            self._idempotency_row = row
            idempotency.track(self.db, row)
            if isinstance(found, idempotency.Takeover) and found.effect:
                # the first try changed something, then its process died: answer from that
                self.set_header("Idempotent-Replayed", "true")
                return await self.answer_from_effect(found.effect)
            return False
        self.set_status(found.status)
        if found.content_type:
            self.set_header("Content-Type", found.content_type)
        self.set_header("Idempotent-Replayed", "true")
        self.finish(self.unseal_answer(found.body))
        return True

    async def answer_from_effect(self, effect: list[dict]) -> bool:
        """Answer a call whose first try made the changes `effect` (its audit events) and was
        cut short: True if answered, False to carry the call out again (handlers whose calls
        are safe to repeat, such as uploads, which write the same files again)."""
        return False

    def seal_answer(self, body: bytes) -> bytes:
        """The answer as kept for replays; handlers whose answers are secrets encrypt it."""
        return body

    def unseal_answer(self, kept: bytes) -> bytes:
        return kept

    def finish(self, chunk: Any = None) -> Any:
        if self._idempotency_row is not None:
            row, self._idempotency_row = self._idempotency_row, None
            body = chunk.encode() if isinstance(chunk, str) else bytes(chunk or b"")
            if hasattr(self, "_db"):
                # whatever this request left uncommitted (a refused call) is dropped now rather
                # than at close: on SQLite its write lock would hold up the record's own session
                self._db.rollback()
            try:
                self.ctx.idempotency.finish(
                    row,
                    self.get_status(),
                    self._headers.get("Content-Type"),
                    self.seal_answer(body),
                )
            except Exception as e:  # the answer still goes out; a retry carries the call out
                log.error(
                    "idempotency key of %s %s not recorded: %s",
                    self.request.method,
                    self.request.path,
                    e,
                )
        return super().finish(chunk)

    _counted = False

    def _done(self) -> None:
        if self._counted:
            self._counted = False
            self.ctx.in_flight -= 1

    async def prepare(self) -> None:
        self._counted = True
        self.ctx.in_flight += 1
        if self.ctx.stopping:
            # the proxy still sends on connections it holds open: tell it to retry elsewhere
            self._deferred_error = UWSError(
                "The uws service is restarting; nothing was changed. Retry in a few seconds.",
                status_code=503,
                headers={"Retry-After": "2", "Connection": "close"},
            )
            self._chunks = None
            self._watch_body()
            return
        self._start_request_hash()
        try:
            if not self._credential() or not self.auth_required:
                self._limit("address", self.client_ip)
            await self.before()
        except Exception as e:
            self._deferred_error = e
            self._chunks = None
        self._watch_body()  # the body is read from now on

    async def before(self) -> None:
        """Work before the body arrives (authentication); subclasses extend it."""
        if self.request.method == "OPTIONS" or not self.auth_required:
            return
        await self.authenticate()
        await self.check_named_user()

    #: False where ``?user=`` filters what is read (the audit log) rather than naming whose
    #: resources a call is about
    user_arg_names_person = True

    async def check_named_user(self) -> None:
        """``?user=<name>`` (a service or operator acting for someone) must name a person the
        hub knows: a name that is nobody is a 404, and no record is made for it."""
        name = self.get_query_argument("user", None)
        if not name or not self.user_arg_names_person or name == self._hub_user.get("name"):
            return
        known = self.ctx.known_users
        if name in known or self.db.scalar(select(User.id).where(User.name == name)):
            known.add(name)
            return
        try:
            await self.ctx.hub.request("GET", f"/users/{quote(name, safe='')}")
        except HubAPIError as e:
            if e.status == 404:
                raise NotFound(f"User {name} not found.") from e
            raise UWSError(
                f"The hub cannot be reached to look up user {name} right now; nothing was "
                "changed. Retry in a few seconds.",
                status_code=503,
                headers={"Retry-After": "5"},
            ) from e
        known.add(name)

    async def authenticate(self) -> dict:
        """Identify the caller (token, UWS-Authorization, or OAuth cookie) or raise 401/403."""
        if getattr(self, "_hub_user", None) is not None:
            return self._hub_user
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError as e:
            if e.status_code < 500:
                raise
            # the hub could not be asked about the token (restarting, overloaded)
            raise UWSError(
                "The hub cannot be reached to check your token right now; nothing was changed. "
                "Retry in a few seconds.",
                status_code=503,
                headers={"Retry-After": "5"},
            ) from e
        if model:
            self._limit("token", self._credential())
        elif self._credential():  # a refused credential: its sender's address pays
            self._limit("address", self.client_ip)
        if not model:
            if self._cookie_without_xsrf():
                self.check_xsrf_cookie()  # raises 403 saying what is missing
            raise self._unauthenticated()
        try:
            self.check_hub_user(model)
        except UserNotAllowed as e:
            raise Forbidden(
                f"{model.get('kind', 'user')} {model['name']} may not use this service: the token lacks "
                f"access:services!service={self.ctx.settings.service_name}."
            ) from e
        self._hub_user = model
        return model

    def _unauthenticated(self) -> Unauthorized:
        """The 401 of a caller the hub did not recognise, in UWS's words (§1.1): no credential,
        a ``UWS-Authorization`` header that is not two words, or a token nobody issued."""
        how = (
            "Send a JupyterHub API token as 'Authorization: token <token>' or "
            "'UWS-Authorization: Token <token>' (create one at /hub/token, or exchange a "
            "credential at POST /api/tokens/), or log in through the hub."
        )
        uws_header = self.request.headers.get("UWS-Authorization")
        if uws_header and len(uws_header.split(" ")) != 2:
            return Unauthorized("Invalid auth header format.", detail=how)
        if self.request.headers.get("Authorization") or uws_header:
            return Unauthorized(
                "Invalid token provided.",
                detail="The hub does not know this token (mistyped, expired or revoked). " + how,
            )
        return Unauthorized("Authentication credentials were not provided.", detail=how)

    def _credential(self) -> str:
        """What identifies the caller for rate limits: the token or login cookie sent ("" if
        none). The hub checks it; here it only keys the caller's allowance."""
        for header in ("Authorization", "UWS-Authorization"):
            if value := self.request.headers.get(header):
                return value
        return self.get_cookie(self.hub_auth.cookie_name) or ""

    def _limit(self, kind: str, key: str) -> None:
        """Spend one call of the caller's allowance, or refuse with 429 and Retry-After."""
        if self._limited:
            return  # one charge per request
        self._limited = True
        limiter = self.ctx.limits[kind]
        wait = limiter.take(hashlib.sha256(key.encode("utf-8", "replace")).hexdigest())
        if wait:
            who = (
                "this token" if kind == "token" else "calls without a valid token from this address"
            )
            seconds = ratelimit.retry_after(wait)
            raise UWSError(
                f"Too many requests: {who} may make {limiter.describe()}. Retry after {seconds} s.",
                status_code=429,
                headers={"Retry-After": str(seconds)},
            )

    _limited = False

    def _cookie_without_xsrf(self) -> bool:
        auth = self.hub_auth
        return bool(self.get_cookie(auth.cookie_name)) and self.request.method not in (
            "GET",
            "HEAD",
            "OPTIONS",
        )

    def get_current_user(self):
        return getattr(self, "_hub_user", None)

    def has_scope(self, scope: str, owner: str | None = None) -> bool:
        model = self._hub_user
        required = scopes.for_user(scope, owner) if owner else scope
        return bool(check_scopes({required}, set(model.get("scopes", []))))

    def require_scope(self, scope: str, owner: str | None = None) -> None:
        if not self.has_scope(scope, owner):
            needed = scopes.for_user(scope, owner) if owner else scope
            raise Forbidden(
                f"This token lacks the scope {needed}. Create a token that includes it on the hub's token page "
                "(/hub/token), or ask an administrator."
            )

    def acting_username(self) -> str:
        """Whose resources this request is about: ``?user=`` (for admins and services) or the caller."""
        model = self._hub_user
        name = self.get_query_argument("user", None)
        if name:
            return name
        if model.get("kind") == "service":
            raise BadRequest(
                f"Service {model['name']} must say which user it acts for: add ?user=<name>."
            )
        return model["name"]

    def everyone(self, scope: str) -> bool:
        """``?all_users=true``: a listing of everyone's resources, for operators (`scope` without
        a user filter, e.g. the uws-admin role's); 403 for anyone else."""
        value = self.get_query_argument("all_users", "")
        if value.lower() not in ("1", "true", "yes"):
            if value.lower() in ("", "0", "false", "no"):
                return False
            raise BadRequest("all_users must be true or false.")
        if not self.has_scope(scope):
            raise Forbidden(f"Listing everyone's resources needs the scope {scope} (operators).")
        return True

    def query_filters(self, *names: str) -> dict[str, str]:
        """The query arguments among `names` that were given (a listing's filters)."""
        return {k: v for k in names if (v := self.get_query_argument(k, None)) is not None}

    def paging(self, default: int = 200, most: int = 1000) -> tuple[int, int]:
        """``limit`` (1..most) and ``offset`` (0 or more) query arguments, checked."""
        try:
            limit = int(self.get_query_argument("limit", str(default)))
            offset = int(self.get_query_argument("offset", "0"))
        except ValueError as e:
            raise BadRequest("limit and offset must be whole numbers.") from e
        if not 1 <= limit <= most or offset < 0:
            raise BadRequest(f"limit must be 1 to {most} and offset 0 or more.")
        return limit, offset

    def acting_user(self, scope: str) -> User:
        """The uws user row whose resources are read or changed, after checking `scope` for them."""
        name = self.acting_username()
        self.require_scope(scope, name)
        return user_for(self.db, name)

    # ---- request bodies and responses ---------------------------------------------------

    def has_body(self) -> bool:
        """Whether the request carried a body (also one too large to keep)."""
        return self._body_size > 0

    def json_body(self) -> Any:
        limit = self.ctx.settings.max_json_body_size
        if self._chunks is None:
            raise PayloadTooLarge(
                f"Request body of {self._body_size} bytes is larger than {limit} bytes; upload big files with "
                "PUT /workspaces/<id>/upload/ instead."
            )
        # parsed as JSON whatever the Content-Type says, as UWS did (curl -d sends form-encoded)
        return jsonbody.parse(b"".join(self._chunks))

    def compute_etag(self) -> str | None:
        return None  # no per-request hashing of bodies; listings set their own tag

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(dumps(payload))

    def ok(self, message: str, data: Any = None, status: int = 200, **extra: Any) -> None:
        payload: dict[str, Any] = {"success": True, "message": message}
        if data is not None:
            payload["data"] = data
        payload.update(extra)
        self.write_json(payload, status)

    # ---- errors ---------------------------------------------------------------------------

    def log_exception(self, typ, value, tb) -> None:
        if _database_unreachable(value):
            log.error(
                "%s %s -> 503: database unreachable: %s",
                self.request.method,
                self.request.path,
                str(value).splitlines()[0][:300],
            )
        elif isinstance(value, UWSError):
            log.info(
                "%s %s -> %s: %s",
                self.request.method,
                self.request.path,
                value.status_code,
                value.message,
            )
        else:
            super().log_exception(typ, value, tb)

    def _allow(self) -> list[str]:
        return self.allowed_methods([a for a in getattr(self, "path_args", []) if a is not None])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        detail = None
        if isinstance(exc, UWSError):
            status_code, message, detail = exc.status_code, exc.message, exc.detail
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif _database_unreachable(exc):
            status_code = 503
            message = (
                "The uws database cannot be reached right now; nothing was changed. "
                "Retry in a few seconds."
            )
            self.set_header("Retry-After", "5")
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message or self._reason
            if exc.log_message and exc.args:
                message = exc.log_message % exc.args
        else:
            message = "Internal error; it has been logged. Please retry, and report it to an administrator if it persists."
        self.clear_header("Content-Type")
        if status_code == 405:
            self.set_header("Allow", ", ".join(self._allow()))
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        answer = {"success": False, "message": message}
        if detail:
            answer["detail"] = detail
        self.finish(dumps(answer))


def _database_unreachable(exc: BaseException | None) -> bool:
    """A database that is down, restarting or busy (not a bad query): worth a retry."""
    return isinstance(exc, sa_exc.OperationalError) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    )


def endpoint(method):
    """Mark a handler's HTTP method (``get``, ``post``…); every one must carry it.

    Runs before the method, once the request body has arrived: answers an error found
    before the body (no token, an oversized upload: see `BaseHandler`), follows a deferred
    redirect, and answers a repeated ``Idempotency-Key`` from the first call's record instead
    of running the method again."""

    @functools.wraps(method)
    async def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        self._stop_body_watch()  # the body has arrived
        if self._deferred_error is not None:
            raise self._deferred_error
        if self._deferred_redirect is not None:
            return self.redirect(self._deferred_redirect)
        if await self._idempotency_begin():
            return None  # answered again from the first call's record
        return await method(self, *args, **kwargs)

    wrapper._uws_endpoint = True
    return wrapper


class _AnyMethod(frozenset):
    """Every method name: a method a resource does not serve is answered by a handler."""

    def __contains__(self, item: object) -> bool:
        return True


class MethodNotAllowedHandler(BaseHandler):
    """405 (with ``Allow``) for a method no uws handler serves (TRACE, CONNECT, made-up ones).

    Tornado refuses such methods before the request body is read, and a handler that answers
    before the request has arrived closes the connection: the proxy may already be reusing it
    for someone else's request, which then fails with 503. Routed here instead
    (`UWSApplication.find_handler`), the request is read to its end first, like any other."""

    SUPPORTED_METHODS = _AnyMethod()  # type: ignore[assignment]
    auth_required = False

    def initialize(self, target: type[BaseHandler]) -> None:  # type: ignore[override]
        super().initialize()
        self.target = target

    def __getattr__(self, name: str) -> Any:
        # tornado dispatches to getattr(self, method.lower()): any method name lands here
        request = self.__dict__.get("request")
        if request is not None and name == request.method.lower():
            return self._refuse
        raise AttributeError(name)

    async def _refuse(self, *args: Any) -> None:
        raise web.HTTPError(405, f"Method {self.request.method} is not allowed here.")

    def _allow(self) -> list[str]:
        args = [a for a in getattr(self, "path_args", []) if a is not None]
        return self.target.allowed_methods(args)


class NotFoundHandler(BaseHandler):
    """JSON 404 for any unknown path under the service."""

    auth_required = False

    @endpoint
    async def get(self, *args: Any) -> None:
        raise web.HTTPError(404, f"Not found: {self.request.path}")

    post = put = delete = patch = get


class UnknownActionHandler(NotFoundHandler):
    """``PUT /<things>/<id>/<action>/`` for an action UWS does not have: 400 "Invalid PUT type
    passed." (UWS-REFERENCE §1.8, §1.11, §1.15), once the caller is known; other methods: 404.
    The route gives the scope the caller needs and the actions there are (`detail`)."""

    auth_required = True

    def initialize(self, scope: str, actions: str) -> None:  # type: ignore[override]
        super().initialize()
        self.scope, self.actions = scope, actions

    @endpoint
    async def put(self, thing_id: str, action: str) -> None:
        self.acting_user(self.scope)
        raise BadRequest(
            "Invalid PUT type passed.", detail=f"{action!r} is not an action here: {self.actions}"
        )
