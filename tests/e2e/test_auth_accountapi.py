"""Account-API login (the seed's "PSC API" pattern): a Globus login, then the account from an
account service that speaks the seed's GraphQL contract, confirmed in the project's slapd.
Both services are local stand-ins speaking the real protocols; the hub's client is real."""

from __future__ import annotations

import asyncio
import html
import pwd
import secrets
import sqlite3
import subprocess
import uuid

import pytest
from test_auth_globus import globus_login, globus_login_settings, person, userdel

from ldaputil import add_user as ldap_add_user
from ldaputil import ensure_ldap
from standins.accountapi import AccountAPIStandin
from standins.globus import GlobusStandin
from uws_hub.authenticators.accountapi import UWSAccountAPIAuthenticator
from uws_hub.users.mapping import Identity

GROUP = str(uuid.uuid4())
NAMES = ["uwsa-ann", "uwsa-ben", "uwsacleo", "uwsa-dan"]
JWT = "jwt-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def services():
    ensure_ldap()
    g = GlobusStandin().start()
    g.add_group(GROUP, "uws users")
    a = AccountAPIStandin(jwt_token=JWT).start()
    a.add_allocation("A1", "GRANT1", "CLUSTER-RM", 45000)
    a.add_user("uwsa-ann", "ann@uni-a.edu", uid=45001, first="Ann", allocations=["A1"])
    a.add_user("uwsa-ben", "ben@uni-a.edu", uid=45002, first="Ben")  # not on the allocation
    from ldaputil import delete, user_dn

    for n in NAMES:
        delete(user_dn(n))  # earlier runs
    ldap_add_user("uwsa-ann", "x-pw-1", 45001, 45000)
    ldap_add_user("uwsa-ben", "x-pw-1", 45002, 45000)
    yield g, a
    g.stop()
    a.stop()


@pytest.fixture(scope="module")
def ahub(services, hub_factory):
    g, a = services
    for n in NAMES:
        userdel(n)
    subprocess.run(["groupdel", "uwsa-ann-45000"], capture_output=True)
    from ldaputil import BASE_DN, LDAP_URL

    settings = f"""
c.JupyterHub.authenticator_class = "uws-account-api"
A = c.UWSAccountAPIAuthenticator
A.allowed_globus_groups = {{"{GROUP}"}}
A.account_api_url = "{a.root_url}"
A.account_api_token = "{JWT}"
A.account_api_name = "the cluster's user database"
A.grant_number = "GRANT1"
A.resource_name = "CLUSTER-RM"
A.create_api_accounts = True
A.account_api_timeout = 2.0
A.account_api_retries = 2
A.confirm_ldap_url = "{LDAP_URL}"
A.confirm_ldap_base = "{BASE_DN}"
c.AccountMapping.create_accounts = True
c.AccountMapping.home_domains = ["uni-a.edu"]
"""
    h = hub_factory(
        "accountapi",
        auth_state=True,
        extra_config=lambda h: globus_login_settings(g, h, "UWSAccountAPIAuthenticator") + settings,
    )
    yield h
    hub_factory.release(h)
    for n in NAMES:
        userdel(n)
    subprocess.run(["groupdel", "uwsa-ann-45000"], capture_output=True)


def rows(hub):
    with sqlite3.connect(hub.dir / "uws.sqlite") as db:
        return db.execute(
            "SELECT i.source, i.external_id, u.name, u.uid, u.gid FROM uws_external_identities i "
            "JOIN uws_users u ON u.id = i.user_id ORDER BY i.id"
        ).fetchall()


def test_existing_account_on_the_allocation(ahub, services):
    g, a = services
    who = person("uwsa-ann@uni-a.edu", groups=[GROUP], email="ann@uni-a.edu")
    _, r = globus_login(ahub, g, who)
    assert r.status_code == 302, r.text[-600:]
    pw = pwd.getpwnam("uwsa-ann")
    assert (pw.pw_uid, pw.pw_gid) == (45001, 45000)  # the account service's numbers
    ann = [x for x in rows(ahub) if x[2] == "uwsa-ann"]
    assert {x[0] for x in ann} == {"account-api", "globus"}  # both identities, one user
    assert all(x[3:] == (45001, 45000) for x in ann)
    # looked up by username first, with the seed's credential header
    # (GET /status/ also asks the service whether it answers: not a GraphQL operation)
    graphql = [(r, op) for r, op in zip(a.requests, a.operations, strict=True) if op[0]]
    assert graphql[0][1] == ("GetUserAndAllocationUsers", {"username": "uwsa-ann"})
    assert graphql[0][0].header("Authorization") == f"JWT {JWT}"


def test_account_not_on_the_allocation_is_added(ahub, services):
    g, a = services
    a.clear_requests()
    _, r = globus_login(
        ahub, g, person("uwsa-ben@uni-a.edu", groups=[GROUP], email="ben@uni-a.edu")
    )
    assert r.status_code == 302, r.text[-600:]
    assert "AddUserToAllocation" in [op for op, _ in a.operations]
    assert pwd.getpwnam("uwsa-ben").pw_gid == 45000


def test_new_person_gets_an_account_once_it_reaches_the_directory(ahub, services):
    g, a = services
    who = person("uwsa-cleo@gmail.com", groups=[GROUP], email="uwsa-cleo@gmail.com", name="Cleo C")
    _, r = globus_login(ahub, g, who)
    # created at the account service, but not yet on the cluster's directory
    created = a.find_user(email="uwsa-cleo@gmail.com")
    assert created is not None  # named by the service (from the e-mail: "uwsacleo")
    name = created["username"]
    assert r.status_code == 403, r.text[-600:]
    assert "not on the cluster yet" in r.text
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    ldap_add_user(name, "x-pw-1", int(created["uid"]), 45000)
    _, r = globus_login(ahub, g, None)
    assert r.status_code == 302, r.text[-600:]
    assert pwd.getpwnam(name).pw_uid == int(created["uid"])
    creates = [op for op, _ in a.operations if op == "AddUserWithAllocations"]
    assert len(creates) == 1  # the second login found the account


def test_account_service_down(ahub, services):
    g, a = services
    a.clear_requests()
    a.set_failure(None, status=503)
    try:
        _, r = globus_login(
            ahub, g, person("uwsa-dan@uni-a.edu", groups=[GROUP], email="dan@uni-a.edu")
        )
    finally:
        a.clear_failures()
    assert r.status_code == 503
    assert "the cluster's user database did not answer" in html.unescape(r.text)
    assert len(a.requests) == 3  # one try and two retries
    with pytest.raises(KeyError):
        pwd.getpwnam("uwsa-dan")


def test_no_account_and_no_creation(services):
    """The same client code, in-process, with account creation off: a message to act on."""
    _, a = services
    auth = UWSAccountAPIAuthenticator(
        account_api_url=a.root_url,
        account_api_token=JWT,
        account_api_name="the cluster's user database",
        account_api_signup_url="https://example.org/apply",
        grant_number="GRANT1",
        resource_name="CLUSTER-RM",
        create_api_accounts=False,
    )
    from uws_hub.authenticators.accountapi import AccountServiceError

    with pytest.raises(AccountServiceError) as e:
        asyncio.run(
            auth.account_for(Identity("globus", "s", "zed@gmail.com", email="zed@gmail.com"))
        )
    assert e.value.status == 403
    assert "You have no account at the cluster's user database" in e.value.message
    assert "https://example.org/apply" in e.value.message
    # a wrong credential is the administrators' problem, and says so
    auth.account_api_token = "wrong"
    with pytest.raises(AccountServiceError, match="refused the hub's credential"):
        asyncio.run(
            auth.account_for(Identity("globus", "s", "uwsa-ann@uni-a.edu", email="ann@uni-a.edu"))
        )
