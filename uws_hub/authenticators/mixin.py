"""What every uws authenticator does after its identity source has said who the person is.

`UWSIdentityMixin` goes before a JupyterHub authenticator class. The authenticator's own
checks (password, OAuth, allow/block lists, group allow-lists) run first; only a person who
passed them is mapped (`mapping.map_identity`, off the event loop), so nobody gets an account
created by failing a login. The hub user is then named after the POSIX account, the account
(name, uid, gid) is recorded in uws's database where spawners and storage read it, and groups
from the source become JupyterHub groups when ``manage_groups`` is on. A refusal is a 403 page
with a message the person can act on.

When an administrator deletes a person in the hub, ``delete_user`` stops their job servers
(JupyterHub refuses to delete someone whose named server is active) and records the request
in ``c.UWS.user_deletions_dir`` for the uws service, which settles the rest
(`uws_hub.users.deletions`); it never writes the uws database, which may be down then.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from tornado import web
from traitlets import HasTraits, Unicode

from ..config import UWS
from ..db.session import shared_sessions
from ..users.deletions import record_request
from ..users.mapping import (
    AccountMapping,
    Identity,
    IdentityRefused,
    MappedUser,
    map_identity,
    predict_name,
)


class UWSIdentityMixin(HasTraits):
    identity_source = Unicode(
        help="""Name under which identities from this login method are recorded (``source`` of
        the external identity). Keep it stable: it is half of the key that makes the same person
        land on the same account."""
    ).tag(config=True)

    _uws: UWS | None = None
    _accounts: AccountMapping | None = None

    @property
    def uws(self) -> UWS:
        if self._uws is None:
            self._uws = UWS(config=self.config)
        return self._uws

    @property
    def accounts(self) -> AccountMapping:
        if self._accounts is None:
            self._accounts = AccountMapping(config=self.config)
            if getattr(self, "create_system_users", False):
                # a LocalAuthenticator told to create system accounts does so at first login
                self._accounts.create_accounts = True
        return self._accounts

    # ---- hooks for the subclasses ------------------------------------------------------------

    async def identities_for(
        self, handler, authenticated: dict[str, Any]
    ) -> tuple[Identity, list[Identity]]:
        """The identity this login proved (and others of the same person seen on the way)."""
        raise NotImplementedError

    # ---- the mapping -----------------------------------------------------------------------------

    async def _in_db(self, fn, ident: Identity, **kwargs: Any):
        """Run mapping function `fn` on the uws database off the event loop; a refusal is
        the HTTP error the login page shows."""
        db = shared_sessions(self.uws.db_url, self.uws.db_kwargs)
        try:
            return await asyncio.to_thread(fn, db, self.accounts, ident, **kwargs)
        except IdentityRefused as e:
            self.log.warning(
                "login of %s identity %r refused: %s",
                ident.source,
                ident.external_username or ident.external_id,
                e.message,
            )
            raise web.HTTPError(e.status_code, e.message) from e

    async def map_identities(
        self, ident: Identity, also: list[Identity] | None = None
    ) -> MappedUser:
        """The hub user (and POSIX account) of this identity, created or linked as needed."""
        return await self._in_db(
            map_identity, ident, also=also or [], single_account=self.uws.single_account
        )

    async def predicted_name(self, ident: Identity) -> str:
        """The account name this identity maps to (nothing is created)."""
        return await self._in_db(predict_name, ident)

    async def run_post_auth_hook(self, handler, authenticated):
        ident, also = await self.identities_for(handler, authenticated)
        mapped = await self.map_identities(ident, also)
        authenticated["name"] = mapped.name
        state = dict(authenticated.get("auth_state") or {})
        state["uws_account"] = {
            "name": mapped.posix_name,
            "uid": mapped.uid,
            "gid": mapped.gid,
            "source": ident.source,
            "external_id": str(ident.external_id),
        }
        authenticated["auth_state"] = state
        if getattr(self, "manage_groups", False):
            authenticated["groups"] = sorted(set(ident.groups))
        return await super().run_post_auth_hook(handler, authenticated)

    # ---- a person deleted in the hub ------------------------------------------------------------

    async def delete_user(self, user):
        """JupyterHub calls this when an administrator deletes `user` (its admin page, or
        ``DELETE /hub/api/users/<name>``), before it removes them. Their running job servers
        are stopped first (JupyterHub stops only the default server itself and refuses to
        delete a user whose named server is still active); then the request is recorded for the
        uws service (`users.deletions.record_request`), which settles their jobs, invitations,
        workspaces, quota and identities on its next pass. Never fails the hub's delete because
        of uws: a failure to record is logged (the service also notices people missing from
        the hub's user list)."""
        result = super().delete_user(user)
        if inspect.isawaitable(result):
            await result
        stopped = await self._stop_job_servers(user)
        directory = self.uws.user_deletions_dir
        try:
            path = await asyncio.to_thread(
                record_request, directory, user.name, servers_stopped=stopped
            )
        except Exception:  # noqa: BLE001 - the hub's delete goes on; the service's sync catches it
            self.log.exception(
                "could not record the deletion of %s in %s; the uws service settles it once it "
                "sees them missing from the hub's user list",
                user.name,
                directory,
            )
        else:
            self.log.info("deletion of %s recorded for the uws service: %s", user.name, path)

    async def _stop_job_servers(self, user) -> list[str]:
        """Stop `user`'s active named servers (their jobs), as the hub's stop API does: the
        proxy route goes, then the server; returns the names of those stopped."""
        proxy = (getattr(user, "settings", None) or {}).get("proxy")
        # an active server's spawner is loaded (looking others up would build them)
        loaded = {n: sp for n, sp in dict(user.spawners).items() if n}

        async def stop(name: str) -> str | None:
            spawner = loaded[name]
            if not spawner.active:
                return None
            if spawner.pending:
                self.log.warning(
                    "deleting %s: server %s is %s; the hub cannot delete them until it settles",
                    user.name,
                    name,
                    spawner.pending,
                )
                return None
            try:
                if proxy is not None:
                    await proxy.delete_user(user, name)
                await user.stop(name)
            except Exception:  # noqa: BLE001 - logged; the uws service stops what is left
                self.log.exception("deleting %s: stopping server %s failed", user.name, name)
                return None
            return name

        done = await asyncio.gather(*(stop(n) for n in sorted(loaded)))
        return [n for n in done if n]
