"""A local stand-in for Globus Auth and the Globus Groups API, for tests of the Globus login.

It speaks the protocol documented at https://docs.globus.org/api/auth/reference/ (section 3,
"User Authorization and Authentication with OAuth2/OIDC") and the Groups API's
``GET /v2/groups/my_groups``, on one real HTTP server on 127.0.0.1. Response shapes follow
the Globus SDK's recorded responses (``globus_sdk._testing.data``): e.g. an authorization-code
exchange answers ``{access_token, expires_in, resource_server, token_type, scope, state,
id_token, other_tokens: [...]}`` with one token per resource server, and a bad grant answers
``401 {"error": "invalid_grant"}``.

Endpoints (all under :attr:`GlobusStandin.url`):

================================  ===================================================
``GET  /v2/oauth2/authorize``     authorization-code grant, auto-consent (no UI)
``POST /v2/oauth2/token``         authorization_code, refresh_token, client_credentials,
                                  ``urn:globus:auth:grant_type:dependent_token``
``GET  /v2/oauth2/userinfo``      OIDC userinfo (Bearer auth.globus.org token)
``POST /v2/oauth2/token/introspect``  RFC 7662 introspection, Globus fields
``POST /v2/oauth2/token/revoke``  RFC 7009 revocation
``GET  /v2/groups/my_groups``     Groups API (Bearer groups.api.globus.org token)
``GET  /.well-known/openid-configuration``  OIDC discovery document
================================  ===================================================

Tests drive it with Python methods (in-process) or, when it runs as a subprocess
(``python -m standins.globus --client ID:SECRET:REDIRECT_URI``), with
``POST /_standin/<method>`` and a JSON body ``{"args": [...], "kwargs": {...}}``.

Deliberate simplifications: codes and tokens are opaque random strings; the ``id_token`` is an
HS256 JWT keyed with the client's secret (Globus signs RS512 with published keys; no JupyterHub
authenticator here verifies the signature); identities and groups are whatever the test sets.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._server import (
    Request,
    Response,
    StandinServer,
    json_response,
    now,
    redirect_response,
    text_response,
)

AUTH_RS = "auth.globus.org"
GROUPS_RS = "groups.api.globus.org"
TRANSFER_RS = "transfer.api.globus.org"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
GROUPS_SCOPE = "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"
GROUPS_ALL_SCOPE = "urn:globus:auth:scope:groups.api.globus.org:all"
VIEW_IDENTITY_SET_SCOPE = "urn:globus:auth:scope:auth.globus.org:view_identity_set"
OIDC_SCOPES = ("openid", "profile", "email")
DEPENDENT_TOKEN_GRANT = "urn:globus:auth:grant_type:dependent_token"
#: the identity provider id of Globus ID (the default identity provider of an identity)
GLOBUS_ID_IDP = "41143743-f3c8-4d60-bbdb-eeecaba85bd9"
DEFAULT_TOKEN_LIFETIME = 172800
CODE_LIFETIME = 600

PATH_AUTHORIZE = "/v2/oauth2/authorize"
PATH_TOKEN = "/v2/oauth2/token"
PATH_USERINFO = "/v2/oauth2/userinfo"
PATH_INTROSPECT = "/v2/oauth2/token/introspect"
PATH_REVOKE = "/v2/oauth2/token/revoke"
PATH_MY_GROUPS = "/v2/groups/my_groups"


def scope_resource_server(scope: str) -> str | None:
    """The resource server a Globus scope string belongs to, or None if it is not one.

    ``openid``/``profile``/``email`` and ``urn:globus:auth:scope:auth.globus.org:*`` belong to
    ``auth.globus.org``; ``urn:globus:auth:scope:<rs>:<name>`` to ``<rs>``;
    ``https://auth.globus.org/scopes/<rs>/<name>`` to ``<rs>`` (a client id).
    """
    if scope in OIDC_SCOPES:
        return AUTH_RS
    if scope.startswith("urn:globus:auth:scope:"):
        parts = scope[len("urn:globus:auth:scope:") :].split(":", 1)
        if len(parts) == 2 and parts[0] and parts[1]:
            return parts[0]
        return None
    if scope.startswith("https://auth.globus.org/scopes/"):
        parts = scope[len("https://auth.globus.org/scopes/") :].split("/", 1)
        if len(parts) == 2 and parts[0] and parts[1]:
            return parts[0]
    return None


def group_scopes(scopes: list[str]) -> dict[str, list[str]]:
    """Scopes by resource server, auth.globus.org first, otherwise in request order."""
    by_rs: dict[str, list[str]] = {}
    for scope in scopes:
        rs = scope_resource_server(scope)
        if rs is None:
            raise ValueError(scope)
        by_rs.setdefault(rs, [])
        if scope not in by_rs[rs]:
            by_rs[rs].append(scope)
    if AUTH_RS in by_rs:
        by_rs = {AUTH_RS: by_rs.pop(AUTH_RS), **by_rs}
    return by_rs


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims: dict[str, Any], key: str) -> str:
    """An HS256 JWT (stdlib only)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = hmac.new(key.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


def decode_jwt(token: str, key: str | None = None) -> dict[str, Any]:
    """The claims of a JWT from :func:`make_jwt`; checks the signature when ``key`` is given."""
    header, payload, sig = token.split(".")
    if key is not None:
        expected = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64url(expected), sig):
            raise ValueError("bad JWT signature")
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _add_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class Client:
    """A registered OAuth client (a confidential client: it has a secret)."""

    client_id: str
    secret: str
    redirect_uris: list[str]
    name: str
    #: scopes the dependent-token grant hands out to this client
    dependent_scopes: list[str]


@dataclass
class IssuedToken:
    """An access or refresh token the stand-in issued."""

    token: str
    kind: str  # "access" | "refresh"
    client_id: str
    sub: str
    resource_server: str
    scopes: list[str]
    audience: list[str]
    issued_at: float
    expires_at: float | None  # None: does not expire (refresh tokens)
    refresh_token: str | None = None  # access tokens: the refresh token of the same grant
    grant: str = ""  # how it was issued: authorization_code, refresh_token, ...
    revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def active(self, at: float | None = None) -> bool:
        at = now() if at is None else at
        return not self.revoked and (self.expires_at is None or self.expires_at > at)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["active"] = self.active()
        return d


class GlobusStandin(StandinServer):
    """Globus Auth + Groups API stand-in. See the module docstring for the endpoints.

    Args:
        token_lifetime: ``expires_in`` of access tokens, seconds (Globus: 172800).
        refresh_tokens: ``"offline"`` (like Globus: only when the authorize request had
            ``access_type=offline``, or the dependent grant ``access_type=offline``),
            ``"always"`` or ``"never"``.
        issuer: the ``iss`` of id_tokens and introspection (default ``https://auth.globus.org``).
    """

    name = "globus"
    control_methods = StandinServer.control_methods + (
        "add_client",
        "set_login",
        "set_login_error",
        "add_identity",
        "add_group",
        "set_groups",
        "set_membership",
        "remove_membership",
        "expire_token",
        "expire_all",
        "revoke_all",
        "tokens_for",
        "token_info",
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        refresh_tokens: str = "offline",
        issuer: str = "https://auth.globus.org",
        verbose: bool = False,
    ):
        super().__init__(host, port, verbose=verbose)
        if refresh_tokens not in ("offline", "always", "never"):
            raise ValueError("refresh_tokens must be 'offline', 'always' or 'never'")
        self.token_lifetime = token_lifetime
        self.refresh_tokens = refresh_tokens
        self.issuer = issuer
        self._clients: dict[str, Client] = {}
        self._identities: dict[str, dict[str, Any]] = {}
        self._linked: dict[str, list[str]] = {}  # primary sub -> linked subs (identity set)
        self._login_sub: str | None = None
        self._login_error: tuple[str, str | None, int | None] | None = None
        self._groups: dict[str, dict[str, Any]] = {}
        self._memberships: dict[str, dict[str, dict[str, str]]] = {}  # gid -> sub -> membership
        self._codes: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, IssuedToken] = {}
        #: the query parameters of every authorize request, oldest first
        self.authorize_requests: list[dict[str, str]] = []

    # ---- URLs to configure -----------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return self.url + PATH_AUTHORIZE

    @property
    def token_url(self) -> str:
        return self.url + PATH_TOKEN

    @property
    def userinfo_url(self) -> str:
        return self.url + PATH_USERINFO

    @property
    def introspect_url(self) -> str:
        return self.url + PATH_INTROSPECT

    @property
    def revocation_url(self) -> str:
        return self.url + PATH_REVOKE

    @property
    def groups_url(self) -> str:
        return self.url + PATH_MY_GROUPS

    def authenticator_config(self) -> dict[str, str]:
        """Trait values pointing oauthenticator's GlobusOAuthenticator at this stand-in."""
        return {
            "authorize_url": self.authorize_url,
            "token_url": self.token_url,
            "userdata_url": self.userinfo_url,
            "revocation_url": self.revocation_url,
            "globus_groups_url": self.groups_url,
        }

    # ---- test controls ---------------------------------------------------------------------

    def add_client(
        self,
        client_id: str | None = None,
        secret: str | None = None,
        redirect_uris: list[str] | tuple[str, ...] = (),
        *,
        name: str | None = None,
        dependent_scopes: list[str] | tuple[str, ...] = (TRANSFER_SCOPE, GROUPS_SCOPE),
    ) -> dict[str, Any]:
        """Register (or re-register) a confidential client; returns it as a dict.

        ``redirect_uris`` must match the authorize request's ``redirect_uri`` exactly, as in
        Globus. ``dependent_scopes``: what the dependent-token grant returns for this client.
        """
        client = Client(
            client_id=client_id or str(uuid.uuid4()),
            secret=secret or secrets.token_urlsafe(24),
            redirect_uris=list(redirect_uris),
            name=name or "standin client",
            dependent_scopes=list(dependent_scopes),
        )
        with self.lock:
            self._clients[client.client_id] = client
        return asdict(client)

    def add_identity(self, identity: dict[str, Any]) -> dict[str, Any]:
        """Register an identity (see :meth:`set_login` for the keys) without making it log in next."""
        ident = self._normalize_identity(identity)
        with self.lock:
            self._identities[ident["sub"]] = ident
            linked = []
            for other in identity.get("identity_set") or []:
                o = self.add_identity(other)
                if o["sub"] != ident["sub"]:
                    linked.append(o["sub"])
            if "identity_set" in identity:
                self._linked[ident["sub"]] = linked
            if "groups" in identity:
                self._set_groups_from_identity(ident["sub"], identity["groups"] or [])
        return dict(ident)

    def set_login(self, identity: dict[str, Any] | None) -> dict[str, Any] | None:
        """The identity that "logs in" at the next authorize requests (until changed).

        Keys: ``sub`` (uuid; generated if missing), ``username`` (e.g. ``alice@uni-a.edu``,
        required), ``name``, ``email``, ``identity_provider`` (uuid), ``identity_provider_display_name``,
        ``organization``; optional ``groups`` (group ids, or dicts ``{id, name, role, status}``:
        replaces this identity's memberships) and ``identity_set`` (linked identities, dicts of
        the same keys). Returns the identity as stored (with its ``sub``); ``None`` clears it.
        """
        if identity is None:
            with self.lock:
                self._login_sub = None
            return None
        ident = self.add_identity(identity)
        with self.lock:
            self._login_sub = ident["sub"]
        return ident

    def set_login_error(
        self,
        error: str | None = "access_denied",
        description: str | None = None,
        times: int | None = None,
    ) -> None:
        """Make authorize redirect back with ``error=<error>&state=...`` (``times`` times; None: until
        cleared with ``set_login_error(None)``), as Globus does when the user declines consent."""
        with self.lock:
            self._login_error = None if error is None else (error, description, times)

    def add_group(
        self,
        group_id: str | None = None,
        name: str | None = None,
        *,
        description: str = "",
        group_type: str = "regular",
        enforce_session: bool = False,
        parent_id: str | None = None,
    ) -> dict[str, Any]:
        """Create (or update) a Globus group; returns it."""
        gid = group_id or str(uuid.uuid4())
        group = {
            "id": gid,
            "name": name or gid,
            "description": description,
            "parent_id": parent_id,
            "group_type": group_type,
            "enforce_session": enforce_session,
            "session_limit": 28800,
            "session_timeouts": {},
            "policies": {
                "group_visibility": "private",
                "group_members_visibility": "managers",
            },
        }
        with self.lock:
            self._groups[gid] = group
            self._memberships.setdefault(gid, {})
        return dict(group)

    def set_membership(
        self, group_id: str, sub: str, role: str = "member", status: str = "active"
    ) -> None:
        """Set one identity's membership of a group (role member/manager/admin; status active,
        invited, pending, rejected, left, removed...). Creates the group if unknown."""
        if role not in ("member", "manager", "admin"):
            raise ValueError(f"bad role {role!r}")
        with self.lock:
            if group_id not in self._groups:
                self.add_group(group_id)
            self._memberships[group_id][sub] = {"role": role, "status": status}

    def remove_membership(self, group_id: str, sub: str) -> None:
        with self.lock:
            self._memberships.get(group_id, {}).pop(sub, None)

    def set_groups(self, sub: str, group_ids: list[str], role: str = "member") -> None:
        """Replace an identity's memberships: active ``role`` in each of ``group_ids``."""
        with self.lock:
            for members in self._memberships.values():
                members.pop(sub, None)
            for gid in group_ids:
                self.set_membership(gid, sub, role)

    def expire_token(self, token: str) -> None:
        """Make one access or refresh token expired from now on."""
        with self.lock:
            self._tokens[token].expires_at = now() - 1

    def expire_all(self, *, include_refresh: bool = False) -> None:
        """Expire every access token (and refresh tokens too with ``include_refresh``)."""
        with self.lock:
            for tok in self._tokens.values():
                if tok.kind == "access" or include_refresh:
                    tok.expires_at = now() - 1

    def revoke_all(self, sub: str | None = None) -> None:
        """Revoke every token (of one identity), as when a user revokes consent in Globus."""
        with self.lock:
            for tok in self._tokens.values():
                if sub is None or tok.sub == sub:
                    tok.revoked = True

    def tokens_for(
        self,
        sub: str,
        resource_server: str | None = None,
        kind: str | None = "access",
        active_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Tokens issued for an identity, oldest first, as dicts (see :class:`IssuedToken`)."""
        with self.lock:
            return [
                t.as_dict()
                for t in self._tokens.values()
                if t.sub == sub
                and (resource_server is None or t.resource_server == resource_server)
                and (kind is None or t.kind == kind)
                and (not active_only or t.active())
            ]

    def token_info(self, token: str) -> dict[str, Any] | None:
        """What the stand-in knows about a token, or None."""
        with self.lock:
            tok = self._tokens.get(token)
            return tok.as_dict() if tok else None

    def identity(self, sub: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._identities[sub])

    @property
    def login_identity(self) -> dict[str, Any] | None:
        with self.lock:
            return dict(self._identities[self._login_sub]) if self._login_sub else None

    # ---- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _normalize_identity(identity: dict[str, Any]) -> dict[str, Any]:
        if not identity.get("username"):
            raise ValueError("an identity needs a username, e.g. alice@uni-a.edu")
        username = identity["username"]
        return {
            "sub": str(identity.get("sub") or identity.get("id") or uuid.uuid4()),
            "username": username,
            "name": identity.get("name", username.split("@")[0]),
            "email": identity.get("email"),
            "identity_provider": identity.get("identity_provider", GLOBUS_ID_IDP),
            "identity_provider_display_name": identity.get(
                "identity_provider_display_name", "Globus ID"
            ),
            "organization": identity.get("organization"),
        }

    def _set_groups_from_identity(self, sub: str, groups: list[Any]) -> None:
        for members in self._memberships.values():
            members.pop(sub, None)
        for g in groups:
            if isinstance(g, dict):
                gid = str(g["id"])
                if gid not in self._groups or "name" in g:
                    self.add_group(
                        gid,
                        g.get("name"),
                        description=g.get("description", ""),
                        group_type=g.get("group_type", "regular"),
                        enforce_session=g.get("enforce_session", False),
                    )
                self.set_membership(gid, sub, g.get("role", "member"), g.get("status", "active"))
            else:
                self.set_membership(str(g), sub)

    def _identity_set(self, sub: str) -> list[str]:
        return [sub] + [s for s in self._linked.get(sub, []) if s != sub]

    def _client_auth(self, req: Request, form: dict[str, str]) -> Client | None:
        """HTTP Basic ``client_id:secret``, or ``client_id``/``client_secret`` in the form."""
        cid = secret = None
        auth = req.header("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                return None
        elif "client_id" in form:
            cid, secret = form.get("client_id"), form.get("client_secret")
        client = self._clients.get(cid or "")
        if client is None or secret is None or not hmac.compare_digest(client.secret, secret):
            return None
        return client

    def _bearer(self, req: Request) -> IssuedToken | None:
        auth = req.header("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return None
        tok = self._tokens.get(auth[7:].strip())
        if tok is None or tok.kind != "access" or not tok.active():
            return None
        return tok

    def _mint(
        self,
        *,
        client: Client,
        sub: str,
        rs: str,
        scopes: list[str],
        offline: bool,
        grant: str,
        state: str | None = None,
        refresh_token: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Issue an access token (and a refresh token when asked); its response dict."""
        t = now()
        audience = [client.client_id] + ([rs] if rs != client.client_id else [])
        if refresh_token is None and (
            self.refresh_tokens == "always" or (offline and self.refresh_tokens != "never")
        ):
            refresh_token = secrets.token_urlsafe(36)
            self._tokens[refresh_token] = IssuedToken(
                token=refresh_token,
                kind="refresh",
                client_id=client.client_id,
                sub=sub,
                resource_server=rs,
                scopes=list(scopes),
                audience=audience,
                issued_at=t,
                expires_at=None,
                grant=grant,
                extra=dict(extra or {}),
            )
        access = secrets.token_urlsafe(36)
        self._tokens[access] = IssuedToken(
            token=access,
            kind="access",
            client_id=client.client_id,
            sub=sub,
            resource_server=rs,
            scopes=list(scopes),
            audience=audience,
            issued_at=t,
            expires_at=t + self.token_lifetime,
            refresh_token=refresh_token,
            grant=grant,
            extra=dict(extra or {}),
        )
        resp: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.token_lifetime,
            "resource_server": rs,
            "token_type": "Bearer",
            "scope": " ".join(scopes),
        }
        if refresh_token:
            resp["refresh_token"] = refresh_token
        if state is not None:
            resp["state"] = state
        return resp

    def _id_token(
        self, client: Client, sub: str, scopes: list[str], access_token: str, nonce: str | None
    ) -> str:
        t = int(now())
        at_hash = _b64url(hashlib.sha256(access_token.encode()).digest()[:16])
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": client.client_id,
            "iat": t,
            "exp": t + self.token_lifetime,
            "at_hash": at_hash,
            "last_authentication": t,
        }
        if nonce:
            claims["nonce"] = nonce
        claims.update(self._userinfo_claims(sub, scopes))
        return make_jwt(claims, client.secret)

    def _userinfo_claims(self, sub: str, scopes: list[str]) -> dict[str, Any]:
        ident = self._identities[sub]
        out: dict[str, Any] = {"sub": sub}
        if "profile" in scopes:
            for key in (
                "name",
                "organization",
                "identity_provider",
                "identity_provider_display_name",
            ):
                out[key] = ident[key]
            out["preferred_username"] = ident["username"]
        if "email" in scopes:
            out["email"] = ident["email"]
        if VIEW_IDENTITY_SET_SCOPE in scopes:
            out["identity_set"] = [
                {
                    "sub": s,
                    "username": self._identities[s]["username"],
                    "name": self._identities[s]["name"],
                    "email": self._identities[s]["email"],
                    "identity_provider": self._identities[s]["identity_provider"],
                    "identity_provider_display_name": self._identities[s][
                        "identity_provider_display_name"
                    ],
                    "organization": self._identities[s]["organization"],
                }
                for s in self._identity_set(sub)
            ]
        return out

    @staticmethod
    def _oauth_error(error: str, description: str, status: int) -> Response:
        return json_response({"error": error, "error_description": description}, status)

    @staticmethod
    def _unauthorized(detail: str = "Call must be authenticated", status: int = 401) -> Response:
        code = "UNAUTHORIZED" if status == 401 else "FORBIDDEN"
        return json_response(
            {
                "errors": [
                    {
                        "status": str(status),
                        "id": str(uuid.uuid4()),
                        "code": code,
                        "detail": detail,
                        "title": "Unauthorized" if status == 401 else "Forbidden",
                    }
                ],
                "error_description": detail,
                "error": "unauthorized" if status == 401 else "forbidden",
            },
            status,
            {"WWW-Authenticate": 'Bearer realm="auth.globus.org"'} if status == 401 else None,
        )

    # ---- routing ---------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        routes = {
            ("GET", PATH_AUTHORIZE): self._authorize,
            ("POST", PATH_TOKEN): self._token,
            ("GET", PATH_USERINFO): self._userinfo,
            ("POST", PATH_USERINFO): self._userinfo,
            ("POST", PATH_INTROSPECT): self._introspect,
            ("POST", PATH_REVOKE): self._revoke,
            ("GET", PATH_MY_GROUPS): self._my_groups,
            ("GET", "/.well-known/openid-configuration"): self._discovery,
            ("GET", "/jwk.json"): lambda req: json_response({"keys": []}),
        }
        path = req.path.rstrip("/") if req.path != "/" else req.path
        handler = routes.get((req.method, path))
        if handler is None:
            if any(p == path for _, p in routes):
                return json_response({"error": "method not allowed"}, 405)
            return json_response({"error": "not found", "path": req.path}, 404)
        with self.lock:
            return handler(req)

    def _discovery(self, req: Request) -> Response:
        """OIDC discovery, like ``https://auth.globus.org/.well-known/openid-configuration``."""
        return json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.authorize_url,
                "token_endpoint": self.token_url,
                "userinfo_endpoint": self.userinfo_url,
                "revocation_endpoint": self.revocation_url,
                "introspection_endpoint": self.introspect_url,
                "jwks_uri": self.url + "/jwk.json",
                "response_types_supported": ["code"],
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                    DEPENDENT_TOKEN_GRANT,
                ],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["HS256"],
                "scopes_supported": ["openid", "profile", "email"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "claims_supported": [
                    "sub",
                    "iss",
                    "at_hash",
                    "aud",
                    "exp",
                    "iat",
                    "name",
                    "email",
                    "preferred_username",
                    "identity_provider",
                    "identity_provider_display_name",
                    "organization",
                    "identity_set",
                    "last_authentication",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
            }
        )

    def _authorize(self, req: Request) -> Response:
        """Globus Auth reference 3.3, Authorization Code Grant: ``GET /v2/oauth2/authorize``.

        Globus shows a login and consent page; the stand-in consents at once as the identity
        :meth:`set_login` named and redirects to ``redirect_uri?code=...&state=...``. An unknown
        client or unregistered redirect_uri gets a 400 page (no redirect, per RFC 6749 4.1.2.1).
        """
        q = req.query
        self.authorize_requests.append(dict(q))
        client = self._clients.get(q.get("client_id", ""))
        if client is None:
            return text_response(f"Unknown client_id {q.get('client_id')!r}", 400, "text/html")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return text_response(
                f"redirect_uri {redirect_uri!r} is not registered for client {client.client_id}",
                400,
                "text/html",
            )
        state = q.get("state")

        def error(err: str, desc: str | None = None) -> Response:
            params = {"error": err}
            if desc:
                params["error_description"] = desc
            if state is not None:
                params["state"] = state
            return redirect_response(_add_query(redirect_uri, params))

        if q.get("response_type") != "code":
            return error("unsupported_response_type", "response_type must be code")
        scopes = (q.get("scope") or "").split()
        if not scopes:
            return error("invalid_scope", "scope is required")
        bad = [s for s in scopes if scope_resource_server(s) is None]
        if bad:
            return error("invalid_scope", f"unknown scope(s): {' '.join(bad)}")
        if self._login_error is not None:
            err, desc, times = self._login_error
            if times is not None:
                self._login_error = (err, desc, times - 1) if times > 1 else None
            return error(err, desc)
        if self._login_sub is None:
            return text_response(
                "standin: no identity to log in as; the test must call set_login()",
                400,
                "text/html",
            )
        challenge = q.get("code_challenge")
        method = q.get("code_challenge_method", "plain") if challenge else None
        if challenge and method not in ("plain", "S256"):
            return error("invalid_request", "unsupported code_challenge_method")
        code = secrets.token_urlsafe(24)
        self._codes[code] = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "sub": self._login_sub,
            "scopes": scopes,
            "state": state,
            "nonce": q.get("nonce"),
            "offline": q.get("access_type") == "offline",
            "code_challenge": challenge,
            "code_challenge_method": method,
            "expires_at": now() + CODE_LIFETIME,
            "used": False,
            "authorize_params": dict(q),
        }
        params = {"code": code}
        if state is not None:
            params["state"] = state
        return redirect_response(_add_query(redirect_uri, params))

    def _token(self, req: Request) -> Response:
        """``POST /v2/oauth2/token``: the grants of Globus Auth reference 3.3, 3.6 and 3.10."""
        form = req.form()
        client = self._client_auth(req, form)
        if client is None:
            return self._oauth_error("invalid_client", "client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._grant_code(client, form)
        if grant == "refresh_token":
            return self._grant_refresh(client, form)
        if grant == DEPENDENT_TOKEN_GRANT:
            return self._grant_dependent(client, form)
        if grant == "client_credentials":
            return self._grant_client_credentials(client, form)
        return self._oauth_error("unsupported_grant_type", f"grant_type {grant!r}", 400)

    def _grant_code(self, client: Client, form: dict[str, str]) -> Response:
        code = self._codes.get(form.get("code", ""))
        if code is None or code["used"] or code["expires_at"] < now():
            return self._oauth_error("invalid_grant", "unknown, used or expired code", 401)
        if code["client_id"] != client.client_id:
            return self._oauth_error("invalid_grant", "code was issued to another client", 401)
        if form.get("redirect_uri") != code["redirect_uri"]:
            return self._oauth_error("invalid_grant", "redirect_uri does not match", 401)
        if code["code_challenge"]:
            verifier = form.get("code_verifier", "")
            if code["code_challenge_method"] == "S256":
                computed = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
            else:
                computed = verifier
            if not verifier or not hmac.compare_digest(computed, code["code_challenge"]):
                return self._oauth_error("invalid_grant", "PKCE code_verifier mismatch", 401)
        code["used"] = True
        sub = code["sub"]
        pieces = [
            self._mint(
                client=client,
                sub=sub,
                rs=rs,
                scopes=scopes,
                offline=code["offline"],
                grant="authorization_code",
                state=code["state"],
                extra={"authorize_params": code["authorize_params"]},
            )
            for rs, scopes in group_scopes(code["scopes"]).items()
        ]
        top = pieces[0]
        top["other_tokens"] = pieces[1:]
        if top["resource_server"] == AUTH_RS and "openid" in code["scopes"]:
            top["id_token"] = self._id_token(
                client, sub, code["scopes"], top["access_token"], code["nonce"]
            )
        return json_response(top)

    def _grant_refresh(self, client: Client, form: dict[str, str]) -> Response:
        rt = self._tokens.get(form.get("refresh_token", ""))
        if rt is None or rt.kind != "refresh" or not rt.active():
            return self._oauth_error(
                "invalid_grant", "unknown, revoked or expired refresh_token", 401
            )
        if rt.client_id != client.client_id:
            return self._oauth_error("invalid_grant", "refresh_token of another client", 401)
        piece = self._mint(
            client=client,
            sub=rt.sub,
            rs=rt.resource_server,
            scopes=rt.scopes,
            offline=True,
            grant="refresh_token",
            refresh_token=rt.token,
        )
        piece["other_tokens"] = []
        return json_response(piece)

    def _grant_dependent(self, client: Client, form: dict[str, str]) -> Response:
        """Globus Auth reference 3.10: exchange a token whose audience is this client for tokens of
        the scopes this client's scope depends on (here: the client's ``dependent_scopes``).
        Answers a JSON *list* of token dicts, one per resource server."""
        tok = self._tokens.get(form.get("token", ""))
        if tok is None or tok.kind != "access" or not tok.active():
            return self._oauth_error("invalid_grant", "token is not active", 401)
        if client.client_id not in tok.audience:
            return self._oauth_error("invalid_grant", "token is not for this client", 401)
        wanted = (form.get("scope") or "").split() or list(client.dependent_scopes)
        not_allowed = [s for s in wanted if s not in client.dependent_scopes]
        if not_allowed:
            return self._oauth_error(
                "invalid_scope",
                f"not dependent scopes of this client: {' '.join(not_allowed)}",
                400,
            )
        offline = form.get("access_type") == "offline"
        return json_response(
            [
                self._mint(
                    client=client,
                    sub=tok.sub,
                    rs=rs,
                    scopes=scopes,
                    offline=offline,
                    grant=DEPENDENT_TOKEN_GRANT,
                    extra={"from_token": tok.token},
                )
                for rs, scopes in group_scopes(wanted).items()
            ]
        )

    def _grant_client_credentials(self, client: Client, form: dict[str, str]) -> Response:
        """Globus Auth reference 3.6: tokens for the client's own identity."""
        scopes = (form.get("scope") or "").split()
        if not scopes:
            return self._oauth_error("invalid_scope", "scope is required", 400)
        try:
            by_rs = group_scopes(scopes)
        except ValueError as exc:
            return self._oauth_error("invalid_scope", f"unknown scope {exc}", 400)
        if client.client_id not in self._identities:
            self._identities[client.client_id] = self._normalize_identity(
                {
                    "sub": client.client_id,
                    "username": f"{client.client_id}@clients.auth.globus.org",
                    "name": client.name,
                }
            )
        pieces = [
            self._mint(
                client=client,
                sub=client.client_id,
                rs=rs,
                scopes=sc,
                offline=False,
                grant="client_credentials",
            )
            for rs, sc in by_rs.items()
        ]
        top = pieces[0]
        top["other_tokens"] = pieces[1:]
        return json_response(top)

    def _userinfo(self, req: Request) -> Response:
        """Globus Auth reference 3.8, OIDC userinfo: claims by the token's scopes
        (``profile``: name, preferred_username, organization, identity_provider[_display_name];
        ``email``: email; ``view_identity_set``: identity_set)."""
        tok = self._bearer(req)
        if tok is None:
            return self._unauthorized()
        if tok.resource_server != AUTH_RS or "openid" not in tok.scopes:
            return self._unauthorized("the token needs the openid scope of auth.globus.org", 403)
        return json_response(self._userinfo_claims(tok.sub, tok.scopes))

    def _introspect(self, req: Request) -> Response:
        """Globus Auth reference 3.9: ``POST /v2/oauth2/token/introspect`` (client Basic auth,
        ``token``, optional ``include=identity_set,identity_set_detail,session_info``).

        ``identity_set`` is a list of identity ids, ``identity_set_detail`` a list of identity
        records, as in Globus. A token the caller is not an audience of is reported inactive.
        """
        form = req.form()
        client = self._client_auth(req, form)
        if client is None:
            return self._unauthorized()
        tok = self._tokens.get(form.get("token", ""))
        if tok is None or not tok.active() or client.client_id not in tok.audience:
            return json_response({"active": False})
        ident = self._identities.get(tok.sub, {})
        out: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            "scope": " ".join(tok.scopes),
            "client_id": tok.client_id,
            "sub": tok.sub,
            "username": ident.get("username"),
            "name": ident.get("name"),
            "email": ident.get("email"),
            "exp": int(tok.expires_at) if tok.expires_at else None,
            "iat": int(tok.issued_at),
            "nbf": int(tok.issued_at),
            "aud": list(tok.audience),
            "iss": self.issuer,
        }
        include = {x.strip() for x in form.get("include", "").split(",") if x.strip()}
        ids = self._identity_set(tok.sub)
        if "identity_set" in include:
            out["identity_set"] = ids
        if "identity_set_detail" in include:
            out["identity_set_detail"] = [
                {
                    "id": s,
                    "username": self._identities[s]["username"],
                    "name": self._identities[s]["name"],
                    "email": self._identities[s]["email"],
                    "identity_provider": self._identities[s]["identity_provider"],
                    "identity_provider_display_name": self._identities[s][
                        "identity_provider_display_name"
                    ],
                    "organization": self._identities[s]["organization"],
                    "status": "used",
                }
                for s in ids
            ]
        if "session_info" in include:
            out["session_info"] = {
                "session_id": tok.extra.get("session_id")
                or str(uuid.uuid5(uuid.NAMESPACE_URL, tok.sub)),
                "authentications": {
                    tok.sub: {
                        "idp": ident.get("identity_provider"),
                        "auth_time": int(tok.issued_at),
                        "acr": None,
                        "amr": None,
                        "custom_claims": {},
                    }
                },
            }
        return json_response(out)

    def _revoke(self, req: Request) -> Response:
        """Globus Auth reference 3.11 / RFC 7009: ``POST /v2/oauth2/token/revoke`` (client auth).

        Revoking a refresh token also revokes the access tokens issued with it. An unknown token,
        or one of another client, is answered 200 like a success (RFC 7009 2.2).
        """
        form = req.form()
        client = self._client_auth(req, form)
        if client is None:
            return self._unauthorized()
        tok = self._tokens.get(form.get("token", ""))
        if tok is not None and tok.client_id == client.client_id:
            tok.revoked = True
            if tok.kind == "refresh":
                for other in self._tokens.values():
                    if other.refresh_token == tok.token:
                        other.revoked = True
        return json_response({"active": False})

    def _my_groups(self, req: Request) -> Response:
        """Groups API ``GET /v2/groups/my_groups``: the groups in which any identity of the
        caller's identity set has a membership of one of ``statuses`` (default ``active``), each
        with ``my_memberships``. Needs a groups.api.globus.org token with
        ``view_my_groups_and_memberships`` (or ``all``)."""
        tok = self._bearer(req)
        if tok is None:
            return json_response(
                {"code": "AUTHENTICATION_ERROR", "detail": "missing, invalid or expired token"},
                401,
            )
        if tok.resource_server != GROUPS_RS or not (
            {GROUPS_SCOPE, GROUPS_ALL_SCOPE} & set(tok.scopes)
        ):
            return json_response(
                {"code": "PERMISSION_DENIED", "detail": "token is not for groups.api.globus.org"},
                403,
            )
        statuses = {s for s in req.query.get("statuses", "active").split(",") if s}
        ids = self._identity_set(tok.sub)
        out = []
        for gid, group in self._groups.items():
            mine = [
                {
                    "group_id": gid,
                    "identity_id": s,
                    "username": self._identities[s]["username"],
                    "role": m["role"],
                    "status": m["status"],
                }
                for s, m in self._memberships.get(gid, {}).items()
                if s in ids and m["status"] in statuses
            ]
            if mine:
                out.append({**group, "my_memberships": mine})
        return json_response(out)

    # ---- command line ----------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--client",
            action="append",
            default=[],
            metavar="ID:SECRET:REDIRECT_URI[,REDIRECT_URI...]",
            help="register a client (repeatable)",
        )
        parser.add_argument("--login", help="JSON identity to log in as (see set_login)")
        parser.add_argument("--token-lifetime", type=int, default=DEFAULT_TOKEN_LIFETIME)
        parser.add_argument(
            "--refresh-tokens", choices=("offline", "always", "never"), default="offline"
        )

    def configure(self, args: argparse.Namespace) -> None:
        self.token_lifetime = args.token_lifetime
        self.refresh_tokens = args.refresh_tokens
        for spec in args.client:
            cid, secret, uris = (
                spec.split(":", 2) if spec.count(":") >= 2 else (*spec.split(":"), "")
            )
            self.add_client(cid, secret, [u for u in uris.split(",") if u])
        if args.login:
            self.set_login(json.loads(args.login))


if __name__ == "__main__":
    GlobusStandin.main()
