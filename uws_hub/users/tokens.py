"""The token exchange behind ``POST /api/tokens/`` (see `service.handlers.tokens`): check a
portal's client token or a Globus access token, map the person like a login, and issue an
ordinary JupyterHub API token through the hub's REST API. No HTTP request handling here."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any
from urllib.parse import urlencode

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .. import audit, scopes
from ..errors import BadRequest, HubAPIError, UWSError
from ..globus_tokens import is_globus_login
from .mapping import AccountMapping, Identity, IdentityRefused, map_identity

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


async def _fetch_json(req: HTTPRequest, *, refused: tuple[int, ...], refusal: str, down: str):
    """The JSON answer of `req`; a 401 saying `refusal` if the server answered one of
    `refused`, a 503 saying `down` if it did not answer (or not with JSON)."""
    try:
        resp = await AsyncHTTPClient().fetch(req)
        return json.loads(resp.body)
    except HTTPClientError as e:
        if e.code in refused:
            raise UWSError(refusal, status_code=401) from e
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
            refusal="The client token is not valid (unknown, expired or revoked); ask an "
            "administrator for a new one.",
            down="The hub did not answer; try again shortly.",
        )
        self._client_kind = "service" if model.get("kind") == "service" else "user"
        held = set(model.get("scopes") or [])
        if scopes.ADMIN_TOKENS not in held:
            raise UWSError(
                f"The client token of {model.get('name')} may not obtain tokens for users (it "
                f"lacks the {scopes.ADMIN_TOKENS} scope; give its owner the uws-token-client role).",
                status_code=403,
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

    async def for_globus_token(self, token: Any) -> tuple[str, str]:
        """(hub user, new API token) for a Globus access token: introspected with the hub's
        Globus client credentials, the person's groups read with a dependent token, then the
        hub's Globus login rules applied and the identity mapped as at a login."""
        token = check_credential(token, "auth_token")
        auth = self._globus()
        basic = base64.b64encode(f"{auth.client_id}:{auth.client_secret}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        base = auth.token_url.rsplit("/token", 1)[0] + "/token"
        info = await self._post_json(
            f"{base}/introspect",
            urlencode({"token": token, "include": "identity_set_detail"}),
            headers,
        )
        if not info.get("active"):
            raise UWSError(
                "The Globus token is not active (expired, revoked or not issued for this hub); "
                "get a new one.",
                status_code=401,
            )
        user_info = _user_info(info, auth.username_claim)
        groups: list[str] = []
        if auth.allowed_globus_groups or auth.admin_globus_groups or auth.manage_groups:
            groups = await self._globus_groups(auth, token, headers, base)
        authenticated = {
            "name": auth.normalize_username(auth.user_info_to_username(user_info)),
            "admin": None,
            "auth_state": {auth.user_auth_state_key: user_info, "globus_groups": groups},
        }
        try:
            ident, also = await auth.check_token_login(authenticated, groups)
        except web.HTTPError as e:
            raise UWSError(e.log_message or "Refused.", status_code=e.status_code) from e
        mapped = await self._map(ident, also)
        token = await self._issue(
            mapped,
            "uws token for a Globus token",
            self.origin.as_(mapped, "user"),
            self._scopes(None),
            "c.UWS.globus_token_scopes",
        )
        return mapped, token

    async def _globus_groups(self, auth, token: str, headers: dict, base: str) -> list[str]:
        tokens = await self._post_json(
            base,
            urlencode({"grant_type": "urn:globus:auth:grant_type:dependent_token", "token": token}),
            headers,
        )
        if isinstance(tokens, dict):
            tokens = tokens.get("other_tokens", []) + [tokens]
        groups_token = next(
            (
                t.get("access_token")
                for t in tokens
                if isinstance(t, dict) and t.get("resource_server") == "groups.api.globus.org"
            ),
            None,
        )
        if not groups_token:
            raise UWSError(
                "The Globus token does not allow reading your Globus groups, which this hub "
                "checks; request it with the groups scope "
                "(urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships).",
                status_code=403,
            )
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
            refusal="Globus refused the token exchange (the hub's Globus client may be "
            "misconfigured, or the token is not for this hub).",
            down="Globus did not answer; try again in a few minutes.",
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
