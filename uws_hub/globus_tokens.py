"""Globus tokens as both sides handle them: the hub's Globus login puts the access tokens of
chosen resource servers into a job's token file, and the service renews that file
(`service.tokenrenew`) and exchanges Globus tokens for hub tokens (`users.tokens`). Pure
functions over an auth state (oauthenticator's ``token_response`` layout); no hub code."""

from __future__ import annotations

from typing import Any


def is_globus_login(cls: Any) -> bool:
    """Whether authenticator class `cls` is uws_hub's Globus login (`uws-globus`,
    `uws-account-api` or a subclass): it marks itself with ``uws_globus_login = True``, so the
    service can tell without importing hub-side code."""
    return isinstance(cls, type) and bool(getattr(cls, "uws_globus_login", False))


def job_tokens(state: dict | None, resource_servers: list[str]) -> dict[str, Any]:
    """The access tokens (never refresh tokens) of `resource_servers` from an auth state, with
    ``expires_at`` (seconds since the epoch) when it is known."""
    if not state or not resource_servers:
        return {}
    out = {}
    for rs, tok in (state.get("tokens") or {}).items():
        if rs in resource_servers and tok.get("access_token"):
            entry = token_entry(state, rs) or {}
            obtained = entry.get("uws_obtained_at")
            if entry.get("access_token") != tok["access_token"]:
                obtained = None
            out[rs] = job_token(tok, obtained)
    return out


def job_token(tok: dict, obtained_at: float | None) -> dict[str, Any]:
    """One resource server's entry of a job's token file."""
    out = {
        "access_token": tok["access_token"],
        "expires_in": tok.get("expires_in"),
        "scope": tok.get("scope"),
        "token_type": tok.get("token_type") or "Bearer",
    }
    if obtained_at and tok.get("expires_in"):
        out["expires_at"] = int(obtained_at + int(tok["expires_in"]))
    return out


def token_entry(state: dict | None, resource_server: str) -> dict | None:
    """The token-response entry (with its refresh token and ``uws_obtained_at``) of one
    resource server in an auth state, or None."""
    response = (state or {}).get("token_response") or {}
    for entry in [response, *(response.get("other_tokens") or [])]:
        if isinstance(entry, dict) and entry.get("resource_server") == resource_server:
            return entry
    return None
