"""The LDAP test fixture itself: scripts/ldap.sh's slapd and the tests/e2e/ldaputil.py helpers."""

from __future__ import annotations

import subprocess
import time

import pytest
from ldap3 import NONE, Connection, Server
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError

import ldaputil


@pytest.fixture(scope="module", autouse=True)
def ldap():
    ldaputil.ensure_ldap()


def test_slapd_answers_anonymously_without_passwords():
    with ldaputil.connection(user=None, password=None) as conn:
        conn.search(ldaputil.BASE_DN, "(objectClass=organizationalUnit)", attributes=["ou"])
        assert {str(e.ou) for e in conn.entries} >= {"people", "groups"}
    ldaputil.add_user("fixt-anon", "pw-anon", 41000, 41000)
    with ldaputil.connection(user=None, password=None) as conn:
        conn.search(ldaputil.PEOPLE_DN, "(uid=fixt-anon)", attributes=["uid", "userPassword"])
        (entry,) = conn.entries
        assert entry.uid.value == "fixt-anon"
        assert not entry.userPassword.values  # anonymous may search, never read passwords
    ldaputil.delete(ldaputil.user_dn("fixt-anon"))


def test_user_binds_with_own_password_only():
    dn = ldaputil.add_user(
        "fixt-alice", "s3cret pw", 41001, 41001, mail="alice@uws.test", cn="Alice Fixture"
    )
    assert dn == f"uid=fixt-alice,{ldaputil.PEOPLE_DN}"
    assert ldaputil.can_bind(dn, "s3cret pw")
    with ldaputil.connection() as conn:  # admin reads the stored hash
        conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["userPassword", "mail"])
        (entry,) = conn.entries
        assert entry.userPassword.raw_values[0].startswith(b"{SSHA}")
        assert entry.mail.value == "alice@uws.test"
    assert not ldaputil.can_bind(dn, "wrong")
    # DN + empty password would be an "unauthenticated bind": ldap3 refuses to send it, slapd
    # refuses it too (unwillingToPerform, 53)
    empty = subprocess.run(
        ["ldapwhoami", "-x", "-H", ldaputil.LDAP_URL, "-D", dn, "-w", ""],
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 53, empty

    # idempotent: adding again replaces the entry (and the password)
    ldaputil.add_user("fixt-alice", "second", 41001, 41001)
    assert not ldaputil.can_bind(dn, "s3cret pw")
    assert ldaputil.can_bind(dn, "second")

    ldaputil.set_password("fixt-alice", "third")
    assert ldaputil.can_bind(dn, "third")
    assert not ldaputil.can_bind(dn, "second")

    ldaputil.delete(dn)
    ldaputil.delete(dn)  # already gone: fine
    assert not ldaputil.can_bind(dn, "third")


def test_groups_are_searchable():
    ldaputil.add_user("fixt-bob", "pw", 41002, 41002)
    ldaputil.add_user("fixt-carol", "pw", 41003, 41003)
    posix = ldaputil.add_group("fixt-posix", 42000, ["fixt-bob"])
    posix = ldaputil.add_group("fixt-posix", 42000, ["fixt-bob", "fixt-carol"])  # replaces
    names = ldaputil.add_group_of_names("fixt-names", [ldaputil.user_dn("fixt-carol")])
    empty = ldaputil.add_group_of_names("fixt-empty", [])

    with ldaputil.connection(user=None, password=None) as conn:
        conn.search(
            ldaputil.GROUPS_DN,
            "(&(objectClass=posixGroup)(memberUid=fixt-carol))",
            attributes=["cn", "gidNumber", "memberUid"],
        )
        (entry,) = conn.entries
        assert entry.entry_dn == posix
        assert int(entry.gidNumber.value) == 42000
        assert sorted(entry.memberUid.values) == ["fixt-bob", "fixt-carol"]

        carol = ldaputil.user_dn("fixt-carol")
        conn.search(
            ldaputil.GROUPS_DN, f"(&(objectClass=groupOfNames)(member={carol}))", attributes=["cn"]
        )
        assert [e.entry_dn for e in conn.entries] == [names]

        conn.search(ldaputil.GROUPS_DN, "(cn=fixt-empty)", attributes=["member"])
        (entry,) = conn.entries
        assert entry.member.values == [empty]

    for dn in (posix, names, empty, ldaputil.user_dn("fixt-bob"), ldaputil.user_dn("fixt-carol")):
        ldaputil.delete(dn)


def test_blackhole_accepts_but_never_answers():
    with ldaputil.blackhole_ldap() as url:
        assert url.startswith("ldap://127.0.0.1:")
        conn = Connection(
            Server(url, connect_timeout=1, get_info=NONE),
            user=f"uid=nobody,{ldaputil.PEOPLE_DN}",
            password="pw",
            receive_timeout=1,
        )
        t0 = time.monotonic()
        with pytest.raises(LDAPException) as err:
            conn.bind()
        elapsed = time.monotonic() - t0
        # the connect succeeded (not refused): the bind waited for an answer that never came
        assert not isinstance(err.value, LDAPSocketOpenError), err.value
        assert 0.9 <= elapsed < 5, elapsed
    # closed on exit: now the port refuses
    with pytest.raises(LDAPSocketOpenError):
        Connection(Server(url, connect_timeout=1, get_info=NONE), receive_timeout=1).open()
