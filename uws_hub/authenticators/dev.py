"""A development login for `make run`: any POSIX-style name, one shared password.

As root it creates the matching system account at first login (``useradd``), so workspaces
and jobs belong to a real user; as an ordinary user everyone maps to that user's account
(c.UWS.single_account). Never use it on a shared system.
"""

from __future__ import annotations

import os
import pwd
import re
from hmac import compare_digest

from jupyterhub.auth import Authenticator, LocalAuthenticator
from traitlets import Bool, Unicode, default

from ..identity import MIN_UID
from ..users.mapping import Identity
from .mixin import UWSIdentityMixin

NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class UWSDevAuthenticator(UWSIdentityMixin, LocalAuthenticator):
    """Shared-password login for development and demos."""

    @default("identity_source")
    def _default_source(self):
        return "dev"

    async def identities_for(self, handler, authenticated):
        name = authenticated["name"]
        return Identity(self.identity_source, name, name, posix_name=name), []

    password = Unicode(
        config=True,
        help="The password every user logs in with (default: $UWS_DEV_PASSWORD). Empty: nobody can log in.",
    )

    @default("password")
    def _default_password(self):
        return os.environ.get("UWS_DEV_PASSWORD", "")

    create_system_users = Bool(
        config=True, help="Create the system account at first login (default: when root)."
    )

    @default("create_system_users")
    def _default_create(self):
        return os.geteuid() == 0

    @default("add_user_cmd")
    def _default_add_user_cmd(self):
        return ["useradd", "--create-home", "--shell", "/bin/bash"]

    @default("allow_all")
    def _default_allow_all(self):
        return True

    def normalize_username(self, username):
        return super().normalize_username(username).strip()

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if not self.password:
            self.log.error(
                "UWSDevAuthenticator: no password set (UWS_DEV_PASSWORD); nobody can log in"
            )
            return None
        if not compare_digest(password.encode(), self.password.encode()):
            return None
        if not NAME.match(name):
            self.log.warning(
                "dev login refused for %r: use lower-case letters, digits, '-' and '_'", name
            )
            return None
        try:
            if pwd.getpwnam(name).pw_uid < MIN_UID:
                self.log.warning("dev login refused for %r: that is a system account", name)
                return None
        except KeyError:
            pass
        return {"name": name, "admin": name in self.admin_users}

    async def add_user(self, user):
        if os.geteuid() != 0:
            # single-account mode: everyone works as the account the hub runs as, so there is
            # no system account to check or create
            return Authenticator.add_user(self, user)
        return await super().add_user(user)
