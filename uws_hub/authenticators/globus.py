"""Globus login (oauthenticator's GlobusOAuthenticator), mapped to cluster accounts."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from oauthenticator.globus import GlobusOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Float, Integer, List, Set, Unicode, default

from ..globus_tokens import job_tokens
from ..users.mapping import Identity
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
      line or in the job's environment. The uws service renews them while the job runs
      (`uws_hub.service.tokenrenew`).
    """

    #: how the service recognises this login without importing it (`globus_tokens.is_globus_login`)
    uws_globus_login = True

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

    job_token_renew_interval = Float(
        60.0,
        help="""Seconds between the uws service's passes over running jobs' Globus token files:
        a token that expires within `token_refresh_margin` is renewed with the person's refresh
        token and the file rewritten in place. Keep it well below `token_refresh_margin`. 0:
        job tokens are not renewed while jobs run.""",
    ).tag(config=True)

    @default("identity_source")
    def _default_source(self):
        return "globus"

    @default("enable_auth_state")
    def _default_enable_auth_state(self):
        return True

    @default("auth_refresh_strict")
    def _default_refresh_strict(self):
        # with a group allow-list, a session whose refresh fails (removed from the group,
        # tokens revoked) ends even on API and cross-user requests (e.g. a job start the uws
        # service asks for): upstream would keep using the stale authorization
        return bool(self.allowed_globus_groups)

    @default("extra_authorize_params")
    def _default_extra_authorize_params(self):
        return {"access_type": "offline"}  # refresh tokens, so sessions and jobs keep working

    def _scope_default(self):
        # e-mail: identity records and the account service's lookups need it; groups: also
        # when only manage_groups asks for them (upstream then crashes reading the groups)
        scopes = list(super()._scope_default())
        groups = "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"
        if self.manage_groups and groups not in scopes:
            scopes.append(groups)
        if "email" not in scopes:
            scopes.append("email")
        return scopes

    # ---- who the person is -------------------------------------------------------------------------

    def user_info_to_username(self, user_info):
        # the full Globus username (never its ambiguous local part); `update_auth_model`
        # replaces it with the account name before any allow/block/admin check
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

    @default("auth_state_groups_key")
    def _default_groups_key(self):
        return "globus_groups"

    async def update_auth_model(self, auth_model):
        # from here on the person is called by their account name (allow/block/admin lists
        # name accounts, as everywhere in JupyterHub); upstream's admin check used the raw name
        ident, _ = await UWSGlobusAuthenticator.identities_for(self, None, auth_model)
        auth_model["name"] = await self.predicted_name(ident)
        auth_model["admin"] = True if auth_model["name"] in self.admin_users else None
        try:
            auth_model = await super().update_auth_model(auth_model)
        except (HTTPClientError, OSError, KeyError, ValueError, UnboundLocalError) as e:
            # groups could not be read: the allow-list cannot be checked -> refuse (fail closed)
            self.log.warning("Globus groups could not be read at login: %s", e)
            raise web.HTTPError(
                503,
                "Globus did not tell us your group memberships just now, so your access cannot "
                "be checked; try again in a few minutes.",
            ) from e
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
        """Keep every Globus token of the session usable, and re-check the groups.

        Globus issues one token per resource server, each with its own refresh token (with
        ``access_type=offline``); upstream refreshes only the login token and loses the others.
        Here each token that Globus no longer accepts (introspected), or that expires within
        `token_refresh_margin` seconds, is refreshed with its own refresh token. A token that
        cannot be refreshed, or a person no longer in an allowed group, ends the session (they
        log in again, where the checks give them a message). Runs before every job start
        (``refresh_pre_spawn``) and every ``auth_refresh_age`` seconds."""
        if not self.enable_auth_state:
            return True
        state = await user.get_auth_state()
        if not state or not state.get("token_response"):
            # never logged in through the browser (a token from POST /api/tokens/, checked
            # when it was issued): nothing to refresh
            return True
        response = state["token_response"]
        entries = [response, *(response.get("other_tokens") or [])]
        try:
            for entry in entries:
                if not await self._token_usable(entry):
                    if not entry.get("refresh_token") or not await self._refresh_entry(entry):
                        self.log.info(
                            "%s: the %s token could not be refreshed; a new login is needed",
                            user.name,
                            entry.get("resource_server"),
                        )
                        return False
            groups = None
            if self.allowed_globus_groups or self.admin_globus_groups or self.manage_groups:
                groups = await self._fetch_users_groups(self.get_globus_tokens(response))
        except (HTTPClientError, OSError, ValueError, KeyError, UnboundLocalError) as e:
            self.log.warning("%s: Globus refresh failed (%s); a new login is needed", user.name, e)
            return False
        model: dict[str, Any] = {}
        if groups is not None:
            state["globus_groups"] = sorted(groups)
            admitted = (
                user.name in self.admin_users
                or user.name in self.allowed_users
                or bool(groups & (self.allowed_globus_groups | self.admin_globus_groups))
            )
            if self.allowed_globus_groups and not self.allow_all and not admitted:
                self.log.info("%s is no longer in an allowed Globus group", user.name)
                return False
            if self.admin_globus_groups and user.name not in self.admin_users:
                model["admin"] = bool(groups & self.admin_globus_groups)
            if self.manage_groups:
                model["groups"] = sorted(groups)
        info = state.get(self.user_auth_state_key) or {}
        rebuilt = self.build_auth_state_dict(response, info)
        state["tokens"] = rebuilt["tokens"]
        model["auth_state"] = state
        return model

    token_refresh_margin = Integer(
        600,
        help="""Refresh a Globus token this many seconds before it expires (at a job start or an
        auth refresh), so a job never starts with a token about to lapse.""",
    ).tag(config=True)

    async def _token_usable(self, entry: dict) -> bool:
        obtained = entry.get("uws_obtained_at")
        expires_in = entry.get("expires_in")
        if (
            obtained
            and expires_in
            and time.time() > obtained + expires_in - self.token_refresh_margin
        ):
            return False
        base = self.token_url.rsplit("/token", 1)[0] + "/token"
        resp = await self.httpfetch(
            f"{base}/introspect",
            method="POST",
            headers={
                **self.get_client_credential_headers(),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=urllib.parse.urlencode({"token": entry["access_token"]}),
        )
        return bool(resp.get("active"))

    async def _refresh_entry(self, entry: dict) -> bool:
        try:
            fresh = await self.httpfetch(
                self.token_url,
                method="POST",
                headers={
                    **self.get_client_credential_headers(),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                body=urllib.parse.urlencode(
                    {"grant_type": "refresh_token", "refresh_token": entry["refresh_token"]}
                ),
            )
        except HTTPClientError as e:
            if e.code in (400, 401):
                return False  # refresh token revoked or expired
            raise
        entry["access_token"] = fresh["access_token"]
        entry["expires_in"] = fresh.get("expires_in", entry.get("expires_in"))
        entry["refresh_token"] = fresh.get("refresh_token") or entry["refresh_token"]
        entry["uws_obtained_at"] = time.time()
        return True

    def build_auth_state_dict(self, token_info, user_info):
        now = time.time()
        for entry in [token_info, *(token_info.get("other_tokens") or [])]:
            entry.setdefault("uws_obtained_at", now)
        return super().build_auth_state_dict(token_info, user_info)

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

    async def check_token_login(
        self, authenticated: dict[str, Any], groups: list[str]
    ) -> tuple[Identity, list[Identity]]:
        """Apply this login's rules to a person who presents a Globus access token instead of
        logging in (the service's token exchange, `users.tokens`): the same account name, the
        same block, allow and admin lists. `authenticated` is built from the token's
        introspection; its name and admin flag are filled in here. A refusal is an HTTPError,
        as at login."""
        # the allow/block/admin lists name accounts: the first identity's, before any
        # subclass (the account API) looks further
        first, _ = await UWSGlobusAuthenticator.identities_for(self, None, authenticated)
        authenticated["name"] = await self.predicted_name(first)
        is_admin = authenticated["name"] in self.admin_users or bool(
            set(groups) & self.admin_globus_groups
        )
        authenticated["admin"] = True if is_admin else None
        if not await self.check_blocked_users(authenticated["name"], authenticated):
            raise web.HTTPError(403, "This Globus identity is blocked on this hub.")
        allowed = self.allow_all or await self.check_allowed(authenticated["name"], authenticated)
        if not allowed:
            raise web.HTTPError(
                403, "This Globus identity may not use this hub; ask the administrators."
            )
        return await self.identities_for(None, authenticated)

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
