"""LDAP login (ldapauthenticator), off the event loop, with the directory's uid/gid and groups."""

from __future__ import annotations

import asyncio

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldapauthenticator import LDAPAuthenticator
from tornado import web
from traitlets import Float, List, Unicode, default

from ..users.mapping import Identity
from .mixin import UWSIdentityMixin


class UWSLDAPAuthenticator(UWSIdentityMixin, LDAPAuthenticator):
    """ldapauthenticator, fixed and mapped.

    Upstream runs every LDAP call (bind, searches) on the hub's event loop, so one slow or
    unreachable directory server freezes the whole hub. Here the whole exchange runs in a worker
    thread, each connection has connect and receive timeouts, and a login that takes longer than
    `ldap_timeout` is refused with a message (503) while the hub keeps serving everyone else.

    The account is the directory's: the name is the entry's ``uid`` attribute, uid/gid
    come from ``uidNumber``/``gidNumber``, and the person's groups (``posixGroup`` via
    ``memberUid`` and ``groupOfNames``/``groupOfUniqueNames`` via ``member``) become JupyterHub
    groups with ``manage_groups``.
    """

    ldap_timeout = Float(
        15.0,
        help="""Seconds a whole LDAP login (connect, bind, searches) may take before it is refused
        with "the directory did not answer". Each connection also gets this as its connect and
        receive timeout.""",
    ).tag(config=True)

    group_search_base = Unicode(
        "",
        help="""Where to look for the person's groups (e.g. ``ou=groups,dc=example,dc=org``).
        Empty: no groups are read (``allowed_groups`` still works, by DN).""",
    ).tag(config=True)

    group_member_filter = Unicode(
        "(|(&(objectClass=posixGroup)(memberUid={uid}))"
        "(&(objectClass=groupOfNames)(member={userdn}))"
        "(&(objectClass=groupOfUniqueNames)(uniqueMember={userdn})))",
        help="""Filter for the groups a person belongs to; ``{uid}`` and ``{userdn}`` are
        replaced (escaped).""",
    ).tag(config=True)

    group_name_attribute = Unicode(
        "cn", help="Attribute of a group entry that becomes the JupyterHub group name."
    ).tag(config=True)

    @default("identity_source")
    def _default_source(self):
        return "ldap"

    @default("auth_state_attributes")
    def _default_auth_state_attributes(self):
        return ["uid", "uidNumber", "gidNumber", "mail", "cn", "givenName", "sn"]

    @default("use_lookup_dn_username")
    def _default_use_lookup_dn_username(self):
        return False

    search_as = List(
        Unicode(),
        [],
        help="""Optional ``[bind DN, password]`` to search the person's groups with (under
        `group_search_base`), when groups cannot be read anonymously. Default: an anonymous
        search, with the same TLS settings as the login.""",
    ).tag(config=True)

    @property
    def _receive_timeout(self) -> int:
        return max(1, int(round(self.ldap_timeout)))  # ldap3 packs it as a C int

    # ---- off the event loop -----------------------------------------------------------------------

    async def authenticate(self, handler, data):
        parent = super().authenticate

        def run():
            # upstream's authenticate is a coroutine that only ever blocks: run it to completion
            # on a private loop in this worker thread
            return asyncio.run(self._authenticate_blocking(parent, data))

        try:
            return await asyncio.wait_for(asyncio.to_thread(run), self.ldap_timeout)
        except (asyncio.TimeoutError, LDAPException, OSError) as e:
            self.log.warning("LDAP login of %r failed: %s", data.get("username"), e)
            raise web.HTTPError(
                503,
                "The directory (LDAP) did not answer in time; try again in a few minutes. If it "
                "keeps happening, tell the administrators.",
            ) from e

    async def _authenticate_blocking(self, parent, data):
        result = await parent(None, data)
        if not result:
            return result
        state = result.setdefault("auth_state", {}) or {}
        attrs = state.get("user_attributes") or {}
        state["ldap_user_dn"] = self._userdn_for(result["name"])
        if self.group_search_base:
            state["ldap_group_names"] = self._group_names(result["name"], state["ldap_user_dn"])
        state["user_attributes"] = attrs
        result["auth_state"] = state
        return result

    def _userdn_for(self, username: str) -> str:
        if self.lookup_dn:
            return self.resolve_username(username)[1] or ""
        return self.bind_dn_template[0].format(username=ldap3.utils.dn.escape_rdn(username))

    def _group_names(self, username: str, userdn: str) -> list[str]:
        user, password = (self.search_as + [None, None])[:2] if self.search_as else (None, None)
        use_ssl, auto_bind = self._tls_mode()
        if user is None:
            auto_bind = (
                ldap3.AUTO_BIND_TLS_BEFORE_BIND
                if auto_bind == ldap3.AUTO_BIND_TLS_BEFORE_BIND
                else ldap3.AUTO_BIND_NO_TLS
            )
        with self._connection(use_ssl, auto_bind, user, password) as conn:
            conn.search(
                self.group_search_base,
                self.group_member_filter.format(
                    uid=escape_filter_chars(username), userdn=escape_filter_chars(userdn)
                ),
                attributes=[self.group_name_attribute],
            )
            names = []
            for entry in conn.entries:
                value = entry.entry_attributes_as_dict.get(self.group_name_attribute) or []
                if value:
                    names.append(str(value[0]))
            return sorted(set(names))

    def _tls_mode(self):
        """(use_ssl, auto_bind) for the configured tls_strategy, as upstream does."""
        from ldapauthenticator.ldapauthenticator import TlsStrategy

        if self.tls_strategy == TlsStrategy.on_connect:
            return True, ldap3.AUTO_BIND_NO_TLS
        if self.tls_strategy == TlsStrategy.before_bind:
            return False, ldap3.AUTO_BIND_TLS_BEFORE_BIND
        return False, ldap3.AUTO_BIND_NO_TLS

    def _server(self, use_ssl: bool):
        return ldap3.Server(
            self.server_address,
            port=self.server_port,
            use_ssl=use_ssl,
            tls=ldap3.Tls(**self.tls_kwargs),
            connect_timeout=self.ldap_timeout,
        )

    def _connection(self, use_ssl: bool, auto_bind, user, password) -> ldap3.Connection:
        """A connection to the directory, bound as `user` (None: anonymously) per `auto_bind`,
        with connect and receive timeouts."""
        return ldap3.Connection(
            self._server(use_ssl),
            user=user,
            password=password,
            auto_bind=auto_bind,
            receive_timeout=self._receive_timeout,
        )

    def get_connection(self, userdn, password):
        """Upstream's bind, with connect and receive timeouts (upstream has none: an unreachable
        or hanging server holds the login forever). None when the bind is refused."""
        from ldap3.core.exceptions import LDAPBindError

        use_ssl, auto_bind = self._tls_mode()
        try:
            return self._connection(use_ssl, auto_bind, userdn, password)
        except LDAPBindError:
            self.log.debug("LDAP bind of %s refused", userdn)
            return None

    # ---- the identity ------------------------------------------------------------------------------

    async def identities_for(self, handler, authenticated):
        state = authenticated.get("auth_state") or {}
        attrs = state.get("user_attributes") or {}

        def first(key):
            value = attrs.get(key)
            if isinstance(value, list):
                value = value[0] if value else None
            return value

        name = str(first("uid") or authenticated["name"])
        uid, gid = first("uidNumber"), first("gidNumber")
        if uid is None or gid is None:
            raise web.HTTPError(
                403,
                f"Your directory entry ({name}) has no uidNumber/gidNumber, so there is no cluster "
                "account to run your work; ask the administrators to make it a POSIX account.",
            )
        return Identity(
            self.identity_source,
            external_id=name,
            external_username=state.get("ldap_user_dn") or name,
            email=first("mail"),
            first_name=first("givenName"),
            last_name=first("sn"),
            posix_name=name,
            uid=int(uid),
            gid=int(gid),
            groups=list(state.get("ldap_group_names") or []),
            details={"dn": state.get("ldap_user_dn"), "cn": first("cn")},
        ), []
