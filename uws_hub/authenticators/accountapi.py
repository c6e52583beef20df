"""Accounts from an HTTP account-provisioning service (the seed's "PSC API" pattern).

After a primary login (Globus by default) proves who the person is, the account service says
which cluster account they have: looked up by username, then by e-mail; added to the site's
allocation (grant) when missing from it; created when allowed; optionally confirmed in LDAP
before first use (new accounts take a while to reach the cluster's directory). The account
service is authoritative for the account: its username, uid and the allocation's gid.

The HTTP contract is configuration. The default is the seed's: GraphQL over ``POST`` to one URL
with ``Authorization: JWT <token>`` and the operations ``GetUserAndAllocationUsers``,
``GetAllocationAndAllocationUsers``, ``AddUserToAllocation`` and ``AddUserWithAllocations``.
"""

from __future__ import annotations

import asyncio
import json

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, HasTraits, Integer, Unicode

from ..users.mapping import Identity
from .globus import UWSGlobusAuthenticator

USER_QUERY = """query GetUserAndAllocationUsers($pscId: String, $username: String, $email: String) {
  user(pscId: $pscId, username: $username, email: $email) {
    uid pscId username name { first last } email { primary }
    allocationUsers { allocation { gid grant { number } resource { name } startDate endDate active } }
  }
}"""

ALLOCATION_QUERY = """query GetAllocationAndAllocationUsers($components: AllocationComponentsInput!) {
  allocation(components: $components) {
    id startDate endDate active grant { number } resource { name active }
  }
}"""

ADD_TO_ALLOCATION = """mutation AddUserToAllocation($input: AddAllocationUserInput!) {
  addAllocationUser(input: $input) {
    allocationUser { user { name { first last } } allocation { gid grant { number } } }
  }
}"""

ADD_USER = """mutation AddUserWithAllocations($input: AddUserInput!) {
  addUser(input: $input) {
    user {
      uid pscId username name { first last }
      allocationUsers { startDate endDate active allocation { gid grant { number } } }
    }
  }
}"""


class AccountServiceError(Exception):
    """The account service failed or said no; `message` is for the person."""

    def __init__(self, message: str, status: int = 503):
        super().__init__(message)
        self.message, self.status = message, status


class AccountAPIMixin(HasTraits):
    """Adds the account-service lookup to a primary login (see the module docs)."""

    account_api_url = Unicode(
        "", help="URL of the account service (the GraphQL endpoint, for the default contract)."
    ).tag(config=True)
    account_api_token = Unicode(
        "", help="Credential sent to the account service (default: $UWS_ACCOUNT_API_TOKEN)."
    ).tag(config=True)
    account_api_auth_header = Unicode(
        "Authorization", help="Header that carries the credential."
    ).tag(config=True)
    account_api_auth_format = Unicode(
        "JWT {token}", help="How the credential is written in that header."
    ).tag(config=True)
    account_api_name = Unicode(
        "the account service",
        help='What people call the account service, used in messages (e.g. "PSC\'s user database").',
    ).tag(config=True)
    account_api_signup_url = Unicode(
        "", help="Where a person without an account can apply for one (shown when they have none)."
    ).tag(config=True)
    grant_number = Unicode(
        "", help="The allocation's grant number every user must be on (e.g. ``ABC123456P``)."
    ).tag(config=True)
    resource_name = Unicode("", help="The allocation's resource name (e.g. ``BRIDGES2-RM``).").tag(
        config=True
    )
    affiliation_code = Unicode(
        "WS_API", help="Affiliation recorded on accounts this hub creates."
    ).tag(config=True)
    create_api_accounts = Bool(
        False,
        help="""Create an account in the account service for a person who has none (on the
        allocation). Off: they are told to apply for one.""",
    ).tag(config=True)
    add_to_allocation = Bool(
        True,
        help="Add a person whose account is not on the allocation to it (else refuse them).",
    ).tag(config=True)
    lookup_username_from = Unicode(
        "home",
        help="""How the primary login's name is looked up in the account service before the
        e-mail is tried: ``home`` (the part before ``@`` — ``alice`` of ``alice@psc.edu`` — but
        only for the site's own domains, ``c.AccountMapping.home_domains``; other identities are
        looked up by e-mail only, so ``alice@gmail.com`` never gets the site's ``alice``),
        ``local`` (the part before ``@`` for every domain: only with an ``identity_providers``
        restriction to the site's own provider), ``full`` (the whole name) or ``none``.""",
    ).tag(config=True)
    account_api_timeout = Float(10.0, help="Seconds per request to the account service.").tag(
        config=True
    )
    account_api_retries = Integer(
        2, help="Retries of a request that failed with a network error, a timeout or a 5xx."
    ).tag(config=True)
    user_query = Unicode(USER_QUERY, help="GraphQL document of the user lookup.").tag(config=True)
    allocation_query = Unicode(
        ALLOCATION_QUERY, help="GraphQL document of the allocation lookup."
    ).tag(config=True)
    add_to_allocation_query = Unicode(
        ADD_TO_ALLOCATION, help="GraphQL document that adds a user to the allocation."
    ).tag(config=True)
    add_user_query = Unicode(ADD_USER, help="GraphQL document that creates a user.").tag(
        config=True
    )
    confirm_ldap_url = Unicode(
        "",
        help="""If set (``ldap://host:port``), an account must be visible in this directory
        (searched by ``uidNumber``) at every login; new accounts take a while to get there, and
        the person is told to try again shortly. While the directory is down, nobody can log
        in (503).""",
    ).tag(config=True)
    confirm_ldap_base = Unicode("", help="Search base for the LDAP confirmation.").tag(config=True)
    confirm_ldap_bind_dn = Unicode(
        "", help="Bind DN for the LDAP confirmation (empty: anonymous)."
    ).tag(config=True)
    confirm_ldap_password = Unicode("", help="Password of that bind DN.").tag(config=True)

    def _default_token(self):
        import os

        return os.environ.get("UWS_ACCOUNT_API_TOKEN", "")

    # ---- the HTTP contract ---------------------------------------------------------------------

    async def _graphql(self, operation: str, query: str, variables: dict) -> dict:
        """The ``data`` of one GraphQL operation. Network errors, timeouts, 5xx and answers that
        are not JSON are retried (`account_api_retries`); AccountServiceError when the service
        refuses, answers with errors, or every try failed."""
        body = json.dumps({"operationName": operation, "query": query, "variables": variables})
        last = ""
        for attempt in range(self.account_api_retries + 1):
            if attempt:
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5))
            try:
                resp = await self._post(body)
            except HTTPClientError as e:
                self._raise_unless_retryable(e)
                last = f"{e.code} {e.message}"
            except OSError as e:
                last = str(e)
            else:
                try:
                    data = json.loads(resp.body)
                except ValueError:
                    last = "an answer that is not JSON"
                    continue
                return self._graphql_data(data)
            self.log.warning(
                "%s %s failed (attempt %s): %s", self.account_api_name, operation, attempt + 1, last
            )
        raise AccountServiceError(
            f"{self.account_api_name} did not answer ({last}); try again in a few minutes."
        )

    async def _post(self, body: str):
        token = self.account_api_token or self._default_token()
        return await AsyncHTTPClient().fetch(
            HTTPRequest(
                self.account_api_url,
                method="POST",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    self.account_api_auth_header: self.account_api_auth_format.format(token=token),
                },
                request_timeout=self.account_api_timeout,
                connect_timeout=self.account_api_timeout,
            )
        )

    def _raise_unless_retryable(self, e: HTTPClientError) -> None:
        """AccountServiceError for an HTTP error that a retry cannot mend (a 4xx)."""
        if e.code in (401, 403):
            self.log.error("%s refused our credential (%s)", self.account_api_name, e.code)
            raise AccountServiceError(
                f"This hub cannot reach {self.account_api_name} right now (it refused the "
                "hub's credential); the administrators have been told in the hub log."
            ) from e
        if e.code != 599 and e.code < 500:
            raise AccountServiceError(
                f"{self.account_api_name} rejected a request ({e.code}); tell the administrators."
            ) from e

    def _graphql_data(self, answer: dict) -> dict:
        if answer.get("errors"):
            messages = "; ".join(str(x.get("message", x)) for x in answer["errors"])
            raise AccountServiceError(f"{self.account_api_name} said: {messages}", status=403)
        return answer.get("data") or {}

    async def _find_user(self, **by: str) -> dict | None:
        data = await self._graphql("GetUserAndAllocationUsers", self.user_query, by)
        return data.get("user") or None

    def _home_domains(self) -> set[str]:
        from ..users.mapping import AccountMapping

        return {d.lower() for d in AccountMapping(config=self.config).home_domains}

    def _gid_on_grant(self, user: dict) -> int | None:
        for au in user.get("allocationUsers") or []:
            alloc = au.get("allocation") or {}
            resource = (alloc.get("resource") or {}).get("name")
            if resource and self.resource_name and resource != self.resource_name:
                continue
            if (alloc.get("grant") or {}).get("number") == self.grant_number:
                if alloc.get("active", True) is False or au.get("active", True) is False:
                    continue
                gid = alloc.get("gid")
                if gid is not None:
                    return int(gid)
        return None

    def _components(self) -> dict:
        return {"grant": {"number": self.grant_number}, "resource": {"name": self.resource_name}}

    async def _allocation(self) -> dict:
        data = await self._graphql(
            "GetAllocationAndAllocationUsers",
            self.allocation_query,
            {"components": self._components()},
        )
        alloc = data.get("allocation")
        if not alloc:
            raise AccountServiceError(
                f"The allocation for grant {self.grant_number} on {self.resource_name} was not found "
                f"at {self.account_api_name}; tell the administrators.",
                status=503,
            )
        return alloc

    # ---- the flow ------------------------------------------------------------------------------------

    async def account_for(self, primary: Identity) -> dict:
        """The account-service user for the person behind `primary` (on the allocation).

        Looked up by login name (`lookup_username_from`), then by e-mail; created when
        `create_api_accounts` allows; added to the allocation when missing from it and
        `add_to_allocation` allows. AccountServiceError says why there is none.
        """
        name = self._lookup_name(primary)
        user = await self._find_user(username=name) if name else None
        if user is None and primary.email:
            user = await self._find_user(email=primary.email)
        if user is None:
            user = await self._create_account(primary, name)
        if self._gid_on_grant(user) is None:
            user = await self._add_to_allocation(user)
        return user

    def _lookup_name(self, primary: Identity) -> str:
        """The name `primary` is looked up by before the e-mail ("": by e-mail only)."""
        login = primary.external_username or ""
        local, _, domain = login.partition("@")
        mode = self.lookup_username_from
        if mode == "full":
            return login
        if mode == "local" or (
            mode == "home" and (not domain or domain.lower() in self._home_domains())
        ):
            return local
        return ""

    async def _create_account(self, primary: Identity, name: str) -> dict:
        """Create the person's account on the allocation, if this hub may."""
        if not self.create_api_accounts:
            where = (
                f" Apply at {self.account_api_signup_url}." if self.account_api_signup_url else ""
            )
            raise AccountServiceError(
                f"You have no account at {self.account_api_name} (looked up as {name!r}"
                + (f" and {primary.email}" if primary.email else "")
                + f").{where} Ask the administrators if you think you have one.",
                status=403,
            )
        if not primary.email:
            raise AccountServiceError(
                "An account can only be created for you with an e-mail address; share your "
                "e-mail with this hub (it is part of the login consent) and log in again.",
                status=403,
            )
        alloc = await self._allocation()
        data = await self._graphql(
            "AddUserWithAllocations",
            self.add_user_query,
            {
                "input": {
                    "name": {
                        "first": primary.first_name or name,
                        "last": primary.last_name or name,
                    },
                    "affiliation": {"affiliationCode": self.affiliation_code},
                    "email": {"primary": primary.email},
                    "allocations": [{"allocation": {"id": str(alloc.get("id"))}}],
                }
            },
        )
        user = (data.get("addUser") or {}).get("user")
        if not user:
            raise AccountServiceError(
                f"{self.account_api_name} did not create your account; tell the administrators."
            )
        self.log.info("created account %s at %s", user.get("username"), self.account_api_name)
        return user

    async def _add_to_allocation(self, user: dict) -> dict:
        """Add `user`, who is not on the allocation, to it, if this hub may; the user as the
        account service then describes them."""
        if not self.add_to_allocation:
            raise AccountServiceError(
                f"Your account {user.get('username')!r} is not on the allocation for grant "
                f"{self.grant_number}; ask the grant's PI to add you.",
                status=403,
            )
        await self._graphql(
            "AddUserToAllocation",
            self.add_to_allocation_query,
            {
                "input": {
                    "user": {"username": user["username"]},
                    "allocation": {"components": self._components()},
                }
            },
        )
        user = await self._find_user(username=user["username"]) or user
        if self._gid_on_grant(user) is None:
            raise AccountServiceError(
                f"Your account {user.get('username')!r} could not be added to the allocation for "
                f"grant {self.grant_number}; ask the grant's PI or the administrators.",
                status=403,
            )
        return user

    async def confirm_in_ldap(self, uid: int, username: str) -> None:
        if not self.confirm_ldap_url:
            return

        def search() -> bool:
            import ldap3

            server = ldap3.Server(self.confirm_ldap_url, connect_timeout=self.account_api_timeout)
            with ldap3.Connection(
                server,
                user=self.confirm_ldap_bind_dn or None,
                password=self.confirm_ldap_password or None,
                auto_bind=True,
                receive_timeout=max(1, int(round(self.account_api_timeout))),
            ) as conn:
                conn.search(self.confirm_ldap_base, f"(uidNumber={int(uid)})", attributes=["uid"])
                return bool(conn.entries)

        from ldap3.core.exceptions import LDAPException

        try:
            found = await asyncio.wait_for(asyncio.to_thread(search), self.account_api_timeout + 1)
        except Exception as e:
            # a directory that is down or slow is expected; anything else gets its traceback
            expected = isinstance(e, (asyncio.TimeoutError, OSError, LDAPException))
            self.log.warning(
                "LDAP confirmation of %s failed: %s", username, e, exc_info=not expected
            )
            raise AccountServiceError(
                "The cluster's directory did not answer; try again in a few minutes."
            ) from e
        if not found:
            raise AccountServiceError(
                f"Your account {username!r} is not on the cluster yet (new accounts take a few "
                "minutes to arrive); try again shortly.",
                status=403,
            )

    async def identities_for(self, handler, authenticated):
        primary, also = await super().identities_for(handler, authenticated)
        try:
            user = await self.account_for(primary)
            gid = self._gid_on_grant(user)
            await self.confirm_in_ldap(int(user["uid"]), user["username"])
        except AccountServiceError as e:
            self.log.warning("account lookup for %s: %s", primary.external_username, e.message)
            raise web.HTTPError(e.status, e.message) from e
        name = user.get("name") or {}
        ident = Identity(
            "account-api",
            external_id=str(user.get("pscId") or user["username"]),
            external_username=user["username"],
            email=((user.get("email") or {}).get("primary")) or primary.email,
            first_name=name.get("first"),
            last_name=name.get("last"),
            posix_name=user["username"],
            uid=int(user["uid"]),
            gid=gid,
            groups=primary.groups,
            details={"grant": self.grant_number, "resource": self.resource_name},
        )
        return ident, [primary, *also]


class UWSAccountAPIAuthenticator(AccountAPIMixin, UWSGlobusAuthenticator):
    """Globus login, account from the account service (the seed's deployment)."""
