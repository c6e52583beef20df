"""Identity mapping: one person, one POSIX account — against a real database and real
`useradd` (the accounts are created on this machine and checked with `pwd`)."""

from __future__ import annotations

import pwd
import subprocess

import pytest
from sqlalchemy import select

from uws_hub.db import migrate
from uws_hub.db.models import ExternalIdentity, User
from uws_hub.db.session import make_engine, make_sessionmaker
from uws_hub.users.mapping import (
    AccountMapping,
    Identity,
    IdentityRefused,
    canonical_name,
    map_identity,
)

NAMES = [
    "uwsi-alice",
    "uwsi-alice-gmail",
    "uwsi-alice-gmail-2",
    "uwsi-carol",
    "uwsi-dave",
    "uwsi-erin",
    "uwsi-frank",
]


def userdel(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/uws.sqlite")
    migrate.upgrade(engine)
    for n in NAMES:
        userdel(n)
    yield make_sessionmaker(engine)
    for n in NAMES:
        userdel(n)


def settings(**kw) -> AccountMapping:
    return AccountMapping(create_accounts=True, home_domains=["uni-a.edu"], **kw)


def globus(sub: str, username: str, **kw) -> Identity:
    return Identity("globus", sub, username, **kw)


def test_canonical_names():
    assert canonical_name("Alice@uni-a.edu", ["uni-a.edu"]) == "alice"
    assert canonical_name("alice@gmail.com", ["uni-a.edu"]) == "alice-gmail"
    assert canonical_name("o'brien.j@x.org", []) == "o-brien-j-x"
    assert canonical_name("1234@x.org", []) == "u1234-x"
    assert len(canonical_name("a" * 60 + "@example.org", [])) <= 32


def test_same_local_part_different_domains_never_share_an_account(db):
    """Globus's default strips the domain: alice@uni-a.edu and alice@gmail.com would be one
    user. Here they are two users with two accounts, and each returns to their own."""
    s = settings()
    a = map_identity(db, s, globus("sub-a", "uwsi-alice@uni-a.edu"))
    g = map_identity(db, s, globus("sub-g", "uwsi-alice@gmail.com"))
    g2 = map_identity(db, s, globus("sub-g2", "uwsi-alice@gmail.org"))  # same canonical name
    assert (a.name, g.name, g2.name) == ("uwsi-alice", "uwsi-alice-gmail", "uwsi-alice-gmail-2")
    uids = {pwd.getpwnam(n).pw_uid for n in (a.name, g.name, g2.name)}
    assert len(uids) == 3 and {a.uid, g.uid, g2.uid} == uids
    # the same person (same sub) lands on the same account, whatever their username says now
    again = map_identity(db, s, globus("sub-g", "renamed@gmail.com"))
    assert (again.name, again.uid, again.created) == (g.name, g.uid, False)
    with db() as session:
        rows = session.scalars(select(ExternalIdentity).order_by(ExternalIdentity.id)).all()
        assert [(r.source, r.external_id) for r in rows] == [
            ("globus", "sub-a"),
            ("globus", "sub-g"),
            ("globus", "sub-g2"),
        ]
        assert rows[1].external_username == "renamed@gmail.com"


def test_authoritative_source_sets_uid_and_gid_and_refuses_a_second_identity(db):
    s = settings()
    m = map_identity(
        db,
        s,
        Identity(
            "ldap", "uwsi-carol", "uid=uwsi-carol", posix_name="uwsi-carol", uid=42001, gid=42001
        ),
    )
    pw = pwd.getpwnam("uwsi-carol")
    assert (pw.pw_uid, pw.pw_gid, m.uid, m.gid) == (42001, 42001, 42001, 42001)
    with db() as session:
        user = session.scalar(select(User).where(User.name == "uwsi-carol"))
        assert (user.posix_name, user.uid, user.gid) == ("uwsi-carol", 42001, 42001)
    # another directory identity naming the same account: refused, nothing recorded
    with pytest.raises(IdentityRefused, match="already linked to a different ldap identity"):
        map_identity(
            db, s, Identity("ldap", "other-dn", posix_name="uwsi-carol", uid=42001, gid=42001)
        )
    with db() as session:
        assert (
            session.scalar(
                select(ExternalIdentity).where(ExternalIdentity.external_id == "other-dn")
            )
            is None
        )


def test_uid_mismatch_with_the_system_is_refused(db):
    subprocess.run(["useradd", "-u", "42010", "uwsi-dave"], check=True)
    with pytest.raises(IdentityRefused, match="has uid 42010 on this system but 42011"):
        map_identity(
            db,
            settings(),
            Identity("ldap", "uwsi-dave", posix_name="uwsi-dave", uid=42011, gid=42011),
        )
    with db() as session:
        assert session.scalar(select(User).where(User.name == "uwsi-dave")) is None


def test_no_account_and_no_creation_tells_whom_to_ask(db):
    s = AccountMapping(create_accounts=False, admin_contact="help@uni-a.edu")
    with pytest.raises(IdentityRefused, match="ask help@uni-a.edu to create it"):
        map_identity(db, s, globus("sub-e", "uwsi-erin@uni-a.edu"))
    assert "uwsi-erin" not in {p.pw_name for p in pwd.getpwall()}


def test_system_accounts_are_never_claimed(db):
    m = map_identity(db, settings(), globus("sub-root", "root@uni-a.edu"))
    assert m.name == "root-2" or m.name.startswith("root-")
    userdel(m.name)
    with pytest.raises(IdentityRefused, match="system uid"):
        map_identity(db, settings(), Identity("ldap", "x", posix_name="uwsi-frank", uid=5, gid=5))


def test_home_domain_login_reaches_the_same_account_as_the_directory(db):
    """alice in LDAP and alice@uni-a.edu (the site's own domain) through Globus are one person."""
    s = settings()
    d = map_identity(
        db, s, Identity("ldap", "uwsi-alice", posix_name="uwsi-alice", uid=42020, gid=42020)
    )
    g = map_identity(db, s, globus("sub-home", "uwsi-alice@uni-a.edu"))
    assert g.name == d.name and g.uid == 42020
    # but a foreign domain's alice is someone else
    other = map_identity(db, s, globus("sub-foreign", "uwsi-alice@gmail.com"))
    assert other.name == "uwsi-alice-gmail" and other.uid != 42020


def test_single_account_mode_records_the_service_account_and_logs_in_again(db):
    """Single-account mode (a hub run by an ordinary user: `make run`, the Binder demo): every
    login works as the service's own account, so that is the account recorded — and a second
    login after the workspace code recorded it too is the same person, not a refusal."""
    import os

    s = AccountMapping(create_accounts=False)
    me = pwd.getpwuid(os.geteuid())
    dev = Identity("dev", "uwsi-solo", "uwsi-solo", posix_name="uwsi-solo")
    first = map_identity(db, s, dev, single_account=True)
    assert first.name == "uwsi-solo" and first.created
    assert (first.posix_name, first.uid, first.gid) == (me.pw_name, me.pw_uid, me.pw_gid)
    assert "uwsi-solo" not in {p.pw_name for p in pwd.getpwall()}  # no account made
    with db() as session:  # what creating a workspace records (workspaces.manager)
        user = session.scalar(select(User).where(User.name == "uwsi-solo"))
        assert (user.posix_name, user.uid) == (me.pw_name, me.pw_uid)
    again = map_identity(db, s, dev, single_account=True)
    assert (again.name, again.user_id, again.created) == ("uwsi-solo", first.user_id, False)
