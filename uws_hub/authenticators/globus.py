"""Globus login (oauthenticator's GlobusOAuthenticator), mapped to cluster accounts."""

from __future__ import annotations

import json
from typing import Any

from oauthenticator.globus import GlobusOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import List, Set, Unicode, default

from .mapping import Identity
from .mixin import UWSIdentityMixin


class UWSGlobusAuthenticator(UWSIdentityMixin, GlobusOAuthenticator):
    """GlobusOAuthenticator with uws's account mapping and safe token hand-off.

    Differences from upstream:

    - **No collisions.** Upstream names users by the part of the Globus username before the
      ``@``, so ``alice@uni-a.edu`` and ``alice@gmail.com`` become one user. Here identities are
      keyed by Globus's ``sub`` and the account name keeps the domain unless it is one of
      ``c.AccountMapping.home_domains``.
    - **Identity providers**: `identity_providers` restricts logins to a set of providers
      (domains or Globus identity-provider ids), checked at every login.
    - **Groups fail closed**: with ``allowed_globus_groups`` (or admin groups, or
      ``manage_groups``) the groups are read at every login and token refresh; if Globus's groups
      API does not answer, the login is refused (503) instead of letting the person in
      unchecked. A refresh that finds the person no longer in an allowed group ends their
      session.
    - **No GLOBUS_DATA.** Upstream pickles the whole auth state (every token, refresh tokens
      included) into each job's environment, where any process — and Slurm's job records —
      can read it. Here a job gets only the access tokens of `job_token_resource_servers`, in a
      file readable only by its owner (``UWS_GLOBUS_TOKENS_FILE`` names it), never on a command
      line or in the job's environment.
    """

    identity_providers = Set(
        Unicode(),
        help="""Identity providers people may log in with: domains (``uni-a.edu``, the part of the
        Globus username after ``@``) or Globus identity-provider ids (UUIDs). Empty: any. Set
        the same restriction on the Globus app (developers.globus.org) as well.""",
    ).tag(config=True)

    job_token_resource_servers = List(
        Unicode(),
        ["transfer.api.globus.org"],
        help="""Resource servers whose access tokens a job receives (in a file only its owner can
        read). Empty: jobs get no Globus tokens.""",
    ).tag(config=True)

    @default("identity_source")
    def _default_source(self):
        return "globus"

    @default("enable_auth_state")
    def _default_enable_auth_state(self):
        return True

    # ---- who the person is -------------------------------------------------------------------------

    def user_info_to_username(self, user_info):
        # the full Globus username: allow/block lists stay unambiguous; the account name is
        # chosen by the mapping afterwards
        return (user_info.get(self.username_claim) or "").lower()

    async def check_blocked_users(self, username, authentication):
        if self.identity_providers:
            info = authentication["auth_state"][self.user_auth_state_key]
            domain = (info.get(self.username_claim) or "").split("@", 1)[-1].lower()
            idp = (info.get("identity_provider") or "").lower()
            allowed = {p.lower() for p in self.identity_providers}
            if domain not in allowed and idp not in allowed:
                shown = info.get("identity_provider_display_name") or domain or idp
                raise web.HTTPError(
                    403,
                    f"You logged in through {shown}, which this hub does not accept; log in with "
                    f"an account from {', '.join(sorted(self.identity_providers))} (you can link "
                    "one at app.globus.org/account).",
                )
        return await super().check_blocked_users(username, authentication)

    async def update_auth_model(self, auth_model):
        try:
            auth_model = await super().update_auth_model(auth_model)
        except (HTTPClientError, OSError, KeyError, ValueError, UnboundLocalError) as e:
            # groups could not be read: the allow-list cannot be checked -> refuse (fail closed)
            self.log.warning("Globus groups could not be read at login: %s", e)
            raise web.HTTPError(
                503,
                "Globus did not tell us your group memberships just now, so your access cannot "
                "be checked; try again in a few minutes.",
            ) from None
        state = auth_model["auth_state"]
        token_info = state.get("token_response") or {}
        if token_info.get("refresh_token"):
            state["refresh_token"] = token_info["refresh_token"]
        return auth_model

    async def check_allowed(self, username, auth_model):
        allowed = await super().check_allowed(username, auth_model)
        if not allowed and self.allowed_globus_groups:
            raise web.HTTPError(
                403,
                "Your Globus identity is not a member of a group that may use this hub; ask the "
                "group's managers to add you (the hub's administrators know which group).",
            )
        return allowed

    async def refresh_user(self, user, handler=None, **kwargs):
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        except web.HTTPError:
            return False  # groups unreadable: check again at a fresh login
        if isinstance(refreshed, dict) and self.allowed_globus_groups:
            groups = set(refreshed.get("auth_state", {}).get("globus_groups") or [])
            if not groups & self.allowed_globus_groups and user.name not in self.admin_users:
                self.log.info("%s is no longer in an allowed Globus group", user.name)
                return False
        if isinstance(refreshed, dict):
            refreshed.pop("name", None)  # the hub name is the mapped account, never the raw one
            if "uws_account" not in refreshed.get("auth_state", {}):
                old = await user.get_auth_state() or {}
                if "uws_account" in old:
                    refreshed["auth_state"]["uws_account"] = old["uws_account"]
        return refreshed

    async def identities_for(self, handler, authenticated):
        state = authenticated["auth_state"]
        info = state[self.user_auth_state_key]
        username = info.get(self.username_claim) or info.get("preferred_username") or ""
        name = info.get("name") or ""
        first, _, last = name.partition(" ")
        return Identity(
            self.identity_source,
            external_id=info["sub"],
            external_username=username,
            email=info.get("email"),
            first_name=first or None,
            last_name=last or None,
            groups=list(state.get("globus_groups") or []),
            details={
                "identity_provider": info.get("identity_provider"),
                "identity_provider_display_name": info.get("identity_provider_display_name"),
                "organization": info.get("organization"),
            },
        ), []

    # ---- what a job gets ---------------------------------------------------------------------------

    async def pre_spawn_start(self, user, spawner):
        """Instead of upstream's GLOBUS_DATA: the chosen access tokens, as a private file."""
        if self.globus_local_endpoint:
            spawner.environment["GLOBUS_LOCAL_ENDPOINT"] = self.globus_local_endpoint
        state = await user.get_auth_state()
        tokens = job_tokens(state, self.job_token_resource_servers)
        if tokens:
            spawner.uws_private_files = {
                "globus-tokens.json": (
                    "UWS_GLOBUS_TOKENS_FILE",
                    json.dumps(tokens, indent=1).encode(),
                )
            }


def job_tokens(state: dict | None, resource_servers: list[str]) -> dict[str, Any]:
    """The access tokens (never refresh tokens) of `resource_servers` from an auth state."""
    if not state or not resource_servers:
        return {}
    out = {}
    for rs, tok in (state.get("tokens") or {}).items():
        if rs in resource_servers and tok.get("access_token"):
            out[rs] = {
                "access_token": tok["access_token"],
                "expires_in": tok.get("expires_in"),
                "scope": tok.get("scope"),
                "token_type": tok.get("token_type") or "Bearer",
            }
    return out
