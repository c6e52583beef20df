"""POST /api/tokens/: JupyterHub API tokens for portals and scripts (the UWS token exchange).

Three ways in, as in UWS:

- **Trusted client**: ``{"client_token": ..., "user_info": {"username", "email", "first_name"?,
  "last_name"?}}``. The client token is an ordinary JupyterHub token whose owner (a service or
  user, usually a portal) holds ``custom:uws:admin:tokens`` (e.g. through the ``uws-token-client``
  role). The person is mapped like a login — identity ``portal`` keyed by the client's name and
  the portal's username, so two portals' "alice" are two people and a portal user never takes
  over a site account (unless the site lists the client's name in
  ``c.AccountMapping.home_domains``) — and gets a token.
- **Globus token**: ``{"auth_token": <Globus access token>}``. The token is introspected with the
  hub's Globus client credentials; the person's groups are read with a dependent token; the
  identity-provider restriction, group allow-list and account lookup are those of the hub's
  Globus login, so the same person gets the same hub user as when they log in.
- **Globus browser mode** (UWS's ``authentication_type: oauth``; a body with ``redirect_url`` or
  ``code``), for redirect URLs listed in `c.UWS.globus_redirect_urls`: ``{"redirect_url",
  "state"?}`` answers ``{"auth_uri": <Globus authorize URL>}`` as it is (no envelope, as UWS);
  Globus sends the person back to ``redirect_url?code=...&state=...``, and ``{"redirect_url",
  "code"}`` exchanges the code (server-side, with the hub's client secret) for a hub token, the
  person checked as for a Globus token.

The answer is ``{"success": true, "message": "Successful authentication.", "token": ...}`` (UWS's) with a JupyterHub API token of
that user (expiry `c.UWS.token_expires_in`; listed and revocable on the hub's token page). The
token is for the uws API only (``access:services!service=<uws>`` and the person's ``custom:uws:*``
scopes) unless `c.UWS.token_client_scopes` / `c.UWS.globus_token_scopes` say otherwise: it cannot
use the hub's own API, reach the person's servers or mint more tokens. A credential that cannot
be a token (e.g. non-ASCII characters) is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from cryptography.fernet import Fernet

from ...errors import BadRequest, UWSError
from ...users.tokens import TokenIssuer
from .base import BaseHandler, endpoint

#: a portal's own ``state`` for the Globus authorize URL
_STATE = re.compile(r"[\x21-\x7e]{1,500}")


def _browser_mode(body: dict) -> bool:
    """Whether a body asks for the Globus browser mode (UWS's oauth): it names a redirect_url
    or a code (and no auth_token, which `post` looks at first)."""
    return "redirect_url" in body or "code" in body


class TokensHandler(BaseHandler):
    auth_required = False  # the credential is in the body (UWS's contract)
    idempotent_routes = {"POST": "POST /tokens/"}

    def _body(self) -> dict:
        try:
            body = self.json_body()
        except UWSError:
            body = None
        return body if isinstance(body, dict) else {}

    def _credential(self) -> Any:
        """What the request authenticates with, in the order `post` reads the body."""
        body = self._body()
        if "auth_token" in body:
            return body["auth_token"]
        if _browser_mode(body):
            return body.get("code")
        return body.get("client_token") or self._header_token()

    def _exchange_credential(self) -> bytes:
        return str(self._credential()).encode("utf-8", "replace")

    async def _idempotency_begin(self) -> bool:
        # the browser mode's first call changes nothing and names no credential (so no caller
        # whose keys these could be): it is answered afresh, never from a record
        if (
            self._request_hash is not None
            and not self._credential()
            and _browser_mode(self._body())
        ):
            self._request_hash = None
        return await super()._idempotency_begin()

    def idempotency_scope(self) -> str:
        """Whose keys: the credential presented (a portal's client token, or a Globus token)."""
        return "credential:" + hashlib.sha256(self._exchange_credential()).hexdigest()

    def _fernet(self) -> Fernet:
        # the issued token is kept for replays encrypted with a key only a client presenting
        # the same credential and Idempotency-Key can derive (neither is stored)
        secret = hashlib.sha256(
            b"uws-idempotency-v1\0"
            + self._exchange_credential()
            + b"\0"
            + self.request.headers.get("Idempotency-Key", "").encode()
        ).digest()
        return Fernet(base64.urlsafe_b64encode(secret))

    def seal_answer(self, body: bytes) -> bytes:
        return self._fernet().encrypt(body)

    def unseal_answer(self, kept: bytes) -> bytes:
        return self._fernet().decrypt(kept)

    @endpoint
    async def post(self) -> None:
        # no body: the "Missing …" answers say what to send
        body = self.json_body() if self.has_body() else {}
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        issuer = TokenIssuer(self.ctx, origin=self.audit_actor())
        if "auth_token" not in body and _browser_mode(body):
            return await self._browser_mode(issuer, body)
        if "auth_token" in body:
            token = body["auth_token"]
            if not isinstance(token, str) or not token.strip():
                raise BadRequest(
                    "Missing auth_token.",
                    detail="auth_token must be a Globus access token (a string).",
                )
            name, token = await issuer.for_globus_token(token.strip())
        else:
            client_token = body.get("client_token") or self._header_token()
            if not client_token:
                raise BadRequest(
                    "Missing client_token. Please have admin generate a token for you.",
                    detail="Ask an administrator to give your portal a token with the "
                    "uws-token-client role.",
                )
            if "user_info" not in body:
                raise BadRequest("Missing user_info. Please provide user_info to get user_token.")
            name, token = await issuer.for_trusted_client(client_token, body["user_info"])
        self.ok("Successful authentication.", {"username": name}, token=token)

    async def _browser_mode(self, issuer: TokenIssuer, body: dict) -> None:
        redirect_url = body.get("redirect_url")
        if not isinstance(redirect_url, str) or not redirect_url.strip():
            raise BadRequest(
                "Missing redirect url.",
                detail="Send redirect_url: the portal page Globus sends the person back to (the "
                "same in both calls).",
            )
        redirect_url = redirect_url.strip()
        if "code" not in body:
            state = body.get("state")
            if state is not None and not (isinstance(state, str) and _STATE.fullmatch(state)):
                raise BadRequest(
                    "state must be 1 to 500 printable ASCII characters (letters, digits and "
                    "punctuation), without spaces."
                )
            # UWS's answer as it is: no success/message envelope
            self.write_json({"auth_uri": issuer.globus_authorize_url(redirect_url, state)})
            return
        code = body["code"]
        if not isinstance(code, str) or not code.strip():
            raise BadRequest(
                "Missing code.",
                detail="code must be the code Globus sent to redirect_url (a string).",
            )
        name, token = await issuer.for_globus_code(code.strip(), redirect_url)
        self.ok("Successful authentication.", {"username": name}, token=token)

    def _header_token(self) -> str | None:
        auth = self.request.headers.get("Authorization", "")
        kind, _, value = auth.partition(" ")
        return value.strip() if kind.lower() in ("token", "bearer") and value else None
