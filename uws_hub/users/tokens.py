"""The token exchange behind ``POST /api/tokens/`` (see `service.handlers.tokens`): check a
portal's client token, a Globus access token or a Globus authorization code (the browser mode:
the authorize URL is made here too), map the person like a login, and issue an ordinary
JupyterHub API token through the hub's REST API. No HTTP request handling here. Globus tokens
and codes are never logged, stored or answered."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .. import audit, scopes
from ..errors import BadRequest, HubAPIError, UWSError
from ..globus_tokens import is_globus_login
from .mapping import AccountMapping, Identity, IdentityRefused, map_identity

log = logging.getLogger(__name__)
#: revocations under way (a reference keeps each task alive until it ends)
_REVOKING: set[asyncio.Task] = set()

#: what a credential sent on to the hub or to Globus may contain (it travels in an HTTP header)
_CREDENTIAL = re.compile(r"[\x21-\x7e]{1,4096}")


def check_credential(value: Any, what: str) -> str:
    """`value` if it can be a token (visible ASCII, no spaces), else a 400 that says so. A
    JupyterHub or Globus token never holds anything else; other characters cannot even be put
    into the HTTP header that carries it."""
    if not isinstance(value, str) or not _CREDENTIAL.fullmatch(value.strip()):
        raise BadRequest(
            f"{what} must be a token: a string of printable ASCII characters (letters, digits "
            "and punctuation), without spaces or other characters."
        )
    return value.strip()


def _user_info(info: dict, username_claim: str) -> dict[str, Any]:
    """What a Globus login's userinfo would say, from a token's introspection."""
    username = info.get("username") or ""
    detail = next(
        (
            i
            for i in info.get("identity_set_detail") or info.get("identity_set") or []
            if isinstance(i, dict) and i.get("sub", i.get("id")) == info.get("sub")
        ),
        {},
    )
    return {
        "sub": info.get("sub"),
        "preferred_username": username,
        username_claim: info.get(username_claim) or username,
        "name": info.get("name"),
        "email": info.get("email"),
        "identity_provider": info.get("identity_provider") or detail.get("identity_provider"),
        "identity_provider_display_name": detail.get("identity_provider_display_name"),
    }


def _refusal(e: HubAPIError, name: str, setting: str) -> UWSError:
    """Why the hub did not issue `name` a token, and who can do what about it."""
    if e.status == 400 and "expires_in" in e.message:
        why = (
            f"The hub refused the token's lifetime ({e.message}); an administrator must lower "
            "c.UWS.token_expires_in to the hub's token_expires_in_max_seconds."
        )
        return UWSError(why, status_code=500)
    if e.status == 400 and "not held by" in e.message:
        # the hub gives a token only scopes its owner holds
        why = (
            f"{name} may not get a token with the scopes this hub configures for it "
            f"({setting}): {e.message}. Ask an administrator."
        )
        return UWSError(why, status_code=403)
    if e.status == 400 and "does not exist" in e.message:
        why = f"The hub refused the token's scopes ({e.message}); an administrator must fix {setting}."
        return UWSError(why, status_code=500)
    why = f"The hub did not issue the token ({e.message}); try again shortly."
    return UWSError(why, status_code=503 if e.status >= 500 else 500)


#: UWS's texts (UWS-REFERENCE §1.2): a credential that does not authenticate anyone, ...
INVALID_CREDENTIALS = "Incorrect authentication credentials."
#: ... a person outside the hub's Globus groups, and a login that cannot show its groups
NOT_IN_GROUPS = (
    "User is not a member of any allowed Globus groups. Please contact your administrator for "
    "access."
)
NO_GROUPS_TOKEN = "Groups token not available for authentication."
GLOBUS_DOWN = "Globus did not answer; try again in a few minutes."


def _oauth_error(e: HTTPClientError) -> str | None:
    """The OAuth ``error`` code of an error answer (``invalid_grant``...), if it names one."""
    try:
        err = json.loads(e.response.body).get("error") if e.response is not None else None
    except (ValueError, AttributeError):
        return None
    return err if isinstance(err, str) else None


def _login_refusal(auth, e: web.HTTPError, groups: list[str]) -> UWSError:
    """The answer to a refusal by the hub's Globus login rules: UWS's text for someone outside
    the allowed groups (the login's own reason beside it), the login's reason otherwise."""
    reason = e.log_message or "Refused."
    in_groups = set(groups) & (set(auth.allowed_globus_groups) | set(auth.admin_globus_groups))
    if e.status_code == 403 and auth.allowed_globus_groups and not in_groups:
        return UWSError(NOT_IN_GROUPS, status_code=403, detail=reason)
    return UWSError(reason, status_code=e.status_code)


async def _fetch_json(
    req: HTTPRequest,
    *,
    refused: tuple[int, ...],
    refusal: str,
    down: str,
    refusal_detail: str | None = None,
):
    """The JSON answer of `req`; a 401 saying `refusal` (and `refusal_detail`) if the server
    answered one of `refused`, a 503 saying `down` if it did not answer (or not with JSON)."""
    try:
        resp = await AsyncHTTPClient().fetch(req)
        return json.loads(resp.body)
    except HTTPClientError as e:
        if e.code in refused:
            raise UWSError(refusal, status_code=401, detail=refusal_detail) from e
        raise UWSError(down, status_code=503) from e
    except (OSError, ValueError) as e:
        raise UWSError(down, status_code=503) from e


class TokenIssuer:
    def __init__(self, ctx, origin: audit.Actor | None = None):
        self.ctx = ctx
        self.settings = ctx.settings
        #: the request (ip, id) for the audit log; the actor is the client or the person
        self.origin = origin or audit.SYSTEM
        self._client_kind = "user"

    # ---- trusted clients ---------------------------------------------------------------------

    async def for_trusted_client(self, client_token: Any, user_info: Any) -> tuple[str, str]:
        """(hub user, new API token) for a person a trusted portal vouches for: the portal's
        client token must hold custom:uws:admin:tokens; the person is mapped in the portal's
        namespace (``alice@<portal>``) like a login."""
        client = await self._client(check_credential(client_token, "client_token"))
        if not isinstance(user_info, dict):
            raise BadRequest("user_info must be an object with username and email.")
        username, email = user_info.get("username"), user_info.get("email")
        if not isinstance(username, str) or not username.strip() or not isinstance(email, str):
            # UWS's text (§1.2); a defect turned UWS's 400 into a 401, uws_hub answers the 400
            raise BadRequest("Missing username or email in user_info.")
        if "@" not in email or len(email) > 320:
            raise BadRequest(f"user_info.email {email!r} is not an e-mail address.")
        for key in ("first_name", "last_name"):
            if key in user_info and not isinstance(user_info[key], (str, type(None))):
                raise BadRequest(f"user_info.{key} must be a string.")
        username = username.strip()
        if len(username) > 200:
            raise BadRequest("user_info.username is too long (200 characters at most).")
        # always the portal's namespace: "alice" (or "alice@uni-a.edu") of portal "hubmap" is
        # alice@hubmap (alice-uni-a.edu@hubmap), never the site's own account "alice" — unless
        # the site lists the portal's name in c.AccountMapping.home_domains
        external = f"{username.replace('@', '-')}@{client}"
        ident = Identity(
            "portal",
            external_id=f"{client}:{username}",
            external_username=external,
            email=email,
            first_name=user_info.get("first_name") or None,
            last_name=user_info.get("last_name") or None,
            details={"client": client},
        )
        mapped = await self._map(ident, [])
        token = await self._issue(
            mapped,
            f"uws token for {client}",
            self.origin.as_(client, self._client_kind),
            self._scopes(client),
            f"c.UWS.token_client_scopes[{client!r}]",
        )
        return mapped, token

    def _scopes(self, client: str | None) -> list[str]:
        """The scopes of a token issued for `client` (None: for a Globus token): the uws API
        only, unless the site configured more (`c.UWS.token_client_scopes`,
        `c.UWS.globus_token_scopes`)."""
        if client is None:
            configured = self.settings.globus_token_scopes or None
        else:
            configured = self.settings.token_client_scopes.get(client)
        if configured is None:
            return scopes.token_api_scopes(self.settings.service_name)
        return list(configured)

    async def _client(self, client_token: str) -> str:
        """The name of the client token's owner, if it may exchange tokens (else 401/403)."""
        hub = self.ctx.hub
        req = HTTPRequest(
            f"{hub.api_url}/user",
            headers={"Authorization": f"token {client_token}"},
            request_timeout=hub.timeout,
        )
        model = await _fetch_json(
            req,
            refused=(401, 403),
            refusal=INVALID_CREDENTIALS,  # UWS's 401 (§1.2)
            refusal_detail="The client token is not valid (unknown, expired or revoked); ask an "
            "administrator for a new one.",
            down="The hub did not answer; try again shortly.",
        )
        self._client_kind = "service" if model.get("kind") == "service" else "user"
        held = set(model.get("scopes") or [])
        if scopes.ADMIN_TOKENS not in held:
            # UWS's text (§1.2); a defect turned UWS's 403 into a 401, uws_hub answers the 403
            raise UWSError(
                "Token is invalid for api_authentication. Please contact administrator to "
                "generate valid token.",
                status_code=403,
                detail=f"The client token of {model.get('name')} may not obtain tokens for users "
                f"(it lacks the {scopes.ADMIN_TOKENS} scope; give its owner the "
                "uws-token-client role).",
            )
        return str(model.get("name"))

    # ---- Globus -------------------------------------------------------------------------------------

    def _globus(self):
        """The hub's Globus login (configured by name, loaded here: no hub-side import)."""
        cls = self.settings.hub_authenticator_class()
        if not is_globus_login(cls):
            raise UWSError(
                "This hub does not use Globus logins, so Globus tokens cannot be exchanged; use a "
                "client token.",
                status_code=400,
            )
        return cls(config=self.settings.config)

    @staticmethod
    def _client_headers(auth) -> dict[str, str]:
        """Headers of a call to Globus Auth as the hub's confidential client."""
        basic = base64.b64encode(f"{auth.client_id}:{auth.client_secret}".encode()).decode()
        return {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }

    async def for_globus_token(self, token: Any) -> tuple[str, str]:
        """(hub user, new API token) for a Globus access token: introspected with the hub's
        Globus client credentials, the person's groups read with a dependent token, then the
        hub's Globus login rules applied and the identity mapped as at a login."""
        token = check_credential(token, "auth_token")
        auth = self._globus()
        mapped = await self._globus_person(auth, token, None)
        token = await self._issue(
            mapped,
            "uws token for a Globus token",
            self.origin.as_(mapped, "user"),
            self._scopes(None),
            "c.UWS.globus_token_scopes",
        )
        return mapped, token

    # the browser mode (UWS's authentication_type "oauth"): authorize URL, then code exchange

    def _check_redirect(self, redirect_url: str) -> None:
        allowed = self.settings.globus_redirect_urls
        if not allowed:
            raise BadRequest(
                "This hub does not offer the Globus browser login through its API.",
                detail="Send a Globus access token as auth_token instead, or ask the "
                "administrators to list your portal's redirect URL in c.UWS.globus_redirect_urls "
                "(and register it with the hub's Globus app).",
            )
        if redirect_url not in allowed:
            raise BadRequest(
                "The redirect url is not allowed.",
                detail=f"{redirect_url[:300]!r} is not one of the redirect URLs this hub lets "
                "Globus send people back to; ask the administrators to add it to "
                "c.UWS.globus_redirect_urls (and register it with the hub's Globus app).",
            )

    def globus_authorize_url(self, redirect_url: str, state: str | None = None) -> str:
        """The Globus authorize URL (UWS's ``auth_uri``) that sends the person back to
        `redirect_url` with a code: the hub's Globus client, `c.UWS.globus_oauth_scopes`, no
        refresh tokens (the hub keeps no Globus token) and `state` (a random one when the
        portal sends none; the portal should check it comes back)."""
        self._check_redirect(redirect_url)
        auth = self._globus()
        params = {
            "client_id": auth.client_id,
            "redirect_uri": redirect_url,
            "scope": " ".join(self.settings.globus_oauth_scopes),
            "state": state or secrets.token_urlsafe(16),
            "response_type": "code",
            "access_type": "online",
        }
        sep = "&" if "?" in auth.authorize_url else "?"
        return f"{auth.authorize_url}{sep}{urlencode(params)}"

    async def for_globus_code(self, code: Any, redirect_url: str) -> tuple[str, str]:
        """(hub user, new API token) for the code Globus sent to `redirect_url`: exchanged by
        the hub with its client secret, then the person checked and mapped as for a Globus
        access token (the groups read with the groups token of the exchange)."""
        self._check_redirect(redirect_url)
        code = check_credential(code, "code")
        auth = self._globus()
        tokens = await self._exchange_code(auth, code, redirect_url)
        try:
            mapped = await self._person_of_code(auth, tokens)
        finally:  # the hub keeps no Globus token: those of the exchange are revoked once read
            self._revoke_soon(auth, tokens)
        token = await self._issue(
            mapped,
            "uws token for a Globus login",
            self.origin.as_(mapped, "user"),
            self._scopes(None),
            "c.UWS.globus_token_scopes",
        )
        return mapped, token

    async def _person_of_code(self, auth, tokens: dict) -> str:
        """The hub user the tokens of a code exchange are for."""
        by_rs = {
            t.get("resource_server"): t.get("access_token")
            for t in [tokens, *(tokens.get("other_tokens") or [])]
            if isinstance(t, dict)
        }
        if not by_rs.get("auth.globus.org"):
            raise UWSError(
                "Globus answered the code without a token for auth.globus.org, which says who "
                "logged in; an administrator must add openid, profile and email to "
                "c.UWS.globus_oauth_scopes.",
                status_code=500,
            )
        groups_token = by_rs.get("groups.api.globus.org") or ""
        return await self._globus_person(auth, by_rs["auth.globus.org"], groups_token)

    async def _exchange_code(self, auth, code: str, redirect_url: str) -> dict:
        """Globus's answer to the authorization code (one token per resource server)."""
        body = urlencode(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_url}
        )
        req = HTTPRequest(
            auth.token_url,
            method="POST",
            body=body,
            headers=self._client_headers(auth),
            request_timeout=15,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req)
            tokens = json.loads(resp.body)
        except HTTPClientError as e:
            if e.code in (400, 401) and _oauth_error(e) == "invalid_client":
                raise UWSError(
                    "Globus refused the hub's client id or secret; an administrator must fix "
                    "c.UWSGlobusAuthenticator.client_id / client_secret.",
                    status_code=500,
                ) from e
            if e.code in (400, 401, 403):
                raise UWSError(
                    INVALID_CREDENTIALS,
                    status_code=401,
                    detail=f"Globus did not accept the code ({_oauth_error(e) or e.code}): it is "
                    "unknown, used already, expired, or was sent to another redirect url; log in "
                    "again with a new auth_uri.",
                ) from e
            raise UWSError(GLOBUS_DOWN, status_code=503) from e
        except (OSError, ValueError) as e:
            raise UWSError(GLOBUS_DOWN, status_code=503) from e
        if not isinstance(tokens, dict):
            raise UWSError(GLOBUS_DOWN, status_code=503)
        return tokens

    def _revoke_soon(self, auth, tokens: dict) -> None:
        """Revoke (RFC 7009, at the hub's Globus client's revocation_url) every token Globus
        gave for a code, in the background: they were needed only to learn who logged in."""
        found = [
            t.get(kind)
            for t in [tokens, *(tokens.get("other_tokens") or [])]
            if isinstance(t, dict)
            for kind in ("access_token", "refresh_token")
        ]
        found = [t for t in found if isinstance(t, str) and t]
        if not found:
            return
        task = asyncio.ensure_future(self._revoke(auth, found))
        _REVOKING.add(task)
        task.add_done_callback(_REVOKING.discard)

    async def _revoke(self, auth, tokens: list[str]) -> None:
        """One at a time: a slow Globus must not fill the HTTP client that logins wait on."""
        for token in tokens:
            req = HTTPRequest(
                auth.revocation_url,
                method="POST",
                body=urlencode({"token": token}),
                headers=self._client_headers(auth),
                request_timeout=15,
            )
            try:
                await AsyncHTTPClient().fetch(req)
            except Exception as e:  # (they expire on their own; never the token in the log)
                log.warning("Globus did not revoke a token of a code exchange: %s", e)

    # who the person is, as at a Globus login

    async def _globus_person(self, auth, token: str, groups_token: str | None) -> str:
        """The hub user of the person a Globus access token (of the hub's client) is for: the
        token introspected, the groups read (with `groups_token`, or None: a dependent token)
        when the hub checks them, the hub's Globus login rules applied, the identity mapped."""
        headers = self._client_headers(auth)
        base = auth.token_url.rsplit("/token", 1)[0] + "/token"
        info = await self._post_json(
            f"{base}/introspect",
            urlencode({"token": token, "include": "identity_set_detail"}),
            headers,
        )
        if not info.get("active"):
            raise UWSError(
                INVALID_CREDENTIALS,
                status_code=401,
                detail="The Globus token is not active (expired, revoked or not issued for this "
                "hub); get a new one.",
            )
        user_info = _user_info(info, auth.username_claim)
        groups: list[str] = []
        if auth.allowed_globus_groups or auth.admin_globus_groups or auth.manage_groups:
            if groups_token is None:
                groups_token = await self._dependent_groups_token(token, headers, base)
            if not groups_token:
                raise UWSError(
                    NO_GROUPS_TOKEN,
                    status_code=403,
                    detail="This hub checks Globus groups, and the Globus login or token does not "
                    "allow reading them: it needs the groups scope "
                    "(urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"
                    " or :all).",
                )
            groups = await self._read_groups(auth, groups_token)
        authenticated = {
            "name": auth.normalize_username(auth.user_info_to_username(user_info)),
            "admin": None,
            "auth_state": {auth.user_auth_state_key: user_info, "globus_groups": groups},
        }
        try:
            ident, also = await auth.check_token_login(authenticated, groups)
        except web.HTTPError as e:
            raise _login_refusal(auth, e, groups) from e
        return await self._map(ident, also)

    async def _dependent_groups_token(self, token: str, headers: dict, base: str) -> str | None:
        """A groups.api.globus.org token obtained with `token` (Globus's dependent-token
        grant), or None when the token's scope does not depend on the groups scope."""
        tokens = await self._post_json(
            base,
            urlencode({"grant_type": "urn:globus:auth:grant_type:dependent_token", "token": token}),
            headers,
        )
        if isinstance(tokens, dict):
            tokens = tokens.get("other_tokens", []) + [tokens]
        return next(
            (
                t.get("access_token")
                for t in tokens
                if isinstance(t, dict) and t.get("resource_server") == "groups.api.globus.org"
            ),
            None,
        )

    async def _read_groups(self, auth, groups_token: str) -> list[str]:
        """The ids of the person's Globus groups (a 503 if Globus does not say: fail closed)."""
        try:
            resp = await AsyncHTTPClient().fetch(
                HTTPRequest(
                    auth.globus_groups_url,
                    headers={
                        "Authorization": f"Bearer {groups_token}",
                        "Accept": "application/json",
                    },
                    request_timeout=15,
                )
            )
            return [g["id"] for g in json.loads(resp.body)]
        except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as e:
            raise UWSError(
                "Globus did not tell us your group memberships just now; try again in a few minutes.",
                status_code=503,
            ) from e

    async def _post_json(self, url: str, body: str, headers: dict) -> Any:
        return await _fetch_json(
            HTTPRequest(url, method="POST", body=body, headers=headers, request_timeout=15),
            refused=(400, 401),
            refusal=INVALID_CREDENTIALS,
            refusal_detail="Globus refused the token exchange (the hub's Globus client may be "
            "misconfigured, or the token is not for this hub).",
            down=GLOBUS_DOWN,
        )

    # ---- mapping and issuing ----------------------------------------------------------------------

    async def _map(self, ident: Identity, also: list[Identity]) -> str:
        try:
            mapped = await asyncio.to_thread(
                map_identity,
                self.ctx.db,
                AccountMapping(config=self.settings.config),
                ident,
                also=also,
                single_account=self.settings.single_account,
            )
        except IdentityRefused as e:
            raise UWSError(e.message, status_code=e.status_code) from e
        return mapped.name

    async def _issue(
        self, name: str, note: str, actor: audit.Actor, token_scopes: list[str], setting: str
    ) -> str:
        """A new hub API token of `name` with `token_scopes` (from `setting`), recorded in the
        audit log as created by `actor` (after the hub issued it: the token lives in the hub's
        database, not in ours)."""
        hub = self.ctx.hub
        try:
            if await hub.get_user(name) is None:
                try:
                    await hub.request("POST", f"/users/{name}")
                except HubAPIError as e:
                    if e.status != 409:  # created meanwhile
                        raise
            body: dict[str, Any] = {"note": note, "scopes": token_scopes}
            if self.settings.token_expires_in:
                body["expires_in"] = int(self.settings.token_expires_in)
            out = await hub.request("POST", f"/users/{name}/tokens", body)
        except HubAPIError as e:
            raise _refusal(e, name, setting) from e
        with self.ctx.db() as session:
            audit.record(
                session,
                "token.create",
                user=name,
                target_id=out.get("id"),
                details={
                    "note": note,
                    "expires_at": out.get("expires_at"),
                    "scopes": token_scopes,
                },
                actor=actor,
            )
            session.commit()
        return out["token"]
