"""The machine's own accounts (PAM), mapped to themselves."""

from __future__ import annotations

import asyncio
import pwd

from jupyterhub.auth import PAMAuthenticator
from traitlets import default

from ..users.mapping import Identity
from .mixin import UWSIdentityMixin


class UWSLocalAuthenticator(UWSIdentityMixin, PAMAuthenticator):
    """PAM login for system accounts: the account is the login.

    With ``c.UWSLocalAuthenticator.create_system_users = True`` an administrator who adds a
    user on the hub's admin page also creates the account (``useradd``), as with JupyterHub's
    LocalAuthenticator; people still need a password set before they can log in.
    """

    @default("identity_source")
    def _default_source(self):
        return "local"

    async def identities_for(self, handler, authenticated):
        name = authenticated["name"]
        try:
            pw = await asyncio.to_thread(pwd.getpwnam, name)
            uid, gid = pw.pw_uid, pw.pw_gid
        except KeyError:
            uid = gid = None
        groups = await asyncio.to_thread(self._groups, name) if self.manage_groups else []
        return Identity(
            self.identity_source, name, name, posix_name=name, uid=uid, gid=gid, groups=groups
        ), []

    def _groups(self, name: str) -> list[str]:
        import grp

        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return []
        return sorted(
            g.gr_name for g in grp.getgrall() if name in g.gr_mem or g.gr_gid == pw.pw_gid
        )
