"""Helpers for tests against the project's OpenLDAP server (scripts/ldap.sh), through ldap3.

Entries are written as the directory admin. People go under ou=people, groups under ou=groups.
Every writer is idempotent: an existing entry is replaced, so a rerun on the same server works.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from ldap3 import MODIFY_REPLACE, NONE, Connection, Server
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.dn import escape_rdn

REPO = Path(__file__).resolve().parents[2]

LDAP_PORT = int(os.environ.get("UWS_LDAP_PORT", "3890"))
LDAP_URL = f"ldap://127.0.0.1:{LDAP_PORT}"
BASE_DN = "dc=uws,dc=test"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = os.environ.get("UWS_LDAP_ADMIN_PASSWORD", "uws-admin-pw")

#: seconds: these helpers never wait longer for the server
TIMEOUT = 5


def ensure_ldap() -> None:
    """The project's slapd (make test starts it; a bare pytest run starts it here)."""
    if os.environ.get("UWS_TEST_LDAP") != "1":
        subprocess.run([str(REPO / "scripts" / "ldap.sh"), "start"], check=True)
        os.environ["UWS_TEST_LDAP"] = "1"


def user_dn(uid: str) -> str:
    return f"uid={escape_rdn(uid)},{PEOPLE_DN}"


def group_dn(cn: str) -> str:
    return f"cn={escape_rdn(cn)},{GROUPS_DN}"


@contextlib.contextmanager
def connection(
    user: str | None = ADMIN_DN, password: str | None = ADMIN_PASSWORD, url: str = LDAP_URL
) -> Iterator[Connection]:
    """A bound connection (admin by default; ``user=None`` for anonymous) that raises on errors;
    unbound when the block ends."""
    server = Server(url, connect_timeout=TIMEOUT, get_info=NONE)
    conn = Connection(
        server,
        user=user,
        password=password,
        auto_bind=True,
        raise_exceptions=True,
        receive_timeout=TIMEOUT,
    )
    try:
        yield conn
    finally:
        conn.unbind()


def hash_password(password: str) -> str:
    """``{SSHA}…`` as slappasswd makes it: base64(sha1(password + salt) + salt), 8-byte salt."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def delete(dn: str) -> None:
    """Delete one entry; a missing entry is fine."""
    with connection() as conn:
        _delete(conn, dn)


def _delete(conn: Connection, dn: str) -> None:
    with contextlib.suppress(LDAPNoSuchObjectResult):
        conn.delete(dn)


def _replace(dn: str, object_class: list[str], attributes: dict) -> str:
    with connection() as conn:
        _delete(conn, dn)
        conn.add(dn, object_class, {k: v for k, v in attributes.items() if v not in (None, [])})
    return dn


def add_user(
    uid: str,
    password: str,
    uid_number: int,
    gid_number: int,
    *,
    mail: str | None = None,
    cn: str | None = None,
    sn: str | None = None,
    home: str | None = None,
    shell: str = "/bin/bash",
) -> str:
    """An inetOrgPerson + posixAccount + shadowAccount under ou=people; returns its DN."""
    return _replace(
        user_dn(uid),
        ["inetOrgPerson", "posixAccount", "shadowAccount"],
        {
            "uid": uid,
            "cn": cn or uid,
            "sn": sn or uid,
            "mail": mail,
            "uidNumber": uid_number,
            "gidNumber": gid_number,
            "homeDirectory": home or f"/home/{uid}",
            "loginShell": shell,
            "userPassword": hash_password(password),
        },
    )


def set_password(uid: str, password: str) -> None:
    with connection() as conn:
        conn.modify(user_dn(uid), {"userPassword": [(MODIFY_REPLACE, [hash_password(password)])]})


def add_group(cn: str, gid_number: int, members: Iterable[str] = ()) -> str:
    """A posixGroup under ou=groups with ``memberUid`` = the given uids; returns its DN."""
    return _replace(
        group_dn(cn),
        ["posixGroup"],
        {"cn": cn, "gidNumber": gid_number, "memberUid": list(members)},
    )


def add_group_of_names(cn: str, member_dns: Iterable[str]) -> str:
    """A groupOfNames under ou=groups with ``member`` = the given DNs; returns its DN.

    groupOfNames needs at least one member: an empty group gets the group's own DN as its only
    member (a DN no user has).
    """
    dn = group_dn(cn)
    return _replace(dn, ["groupOfNames"], {"cn": cn, "member": list(member_dns) or [dn]})


def can_bind(dn: str, password: str, url: str = LDAP_URL) -> bool:
    """True when a simple bind as ``dn`` with ``password`` succeeds."""
    server = Server(url, connect_timeout=TIMEOUT, get_info=NONE)
    conn = Connection(server, user=dn, password=password, receive_timeout=TIMEOUT)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


@contextlib.contextmanager
def blackhole_ldap() -> Iterator[str]:
    """An "LDAP server" that accepts TCP connections and never answers; yields its ldap:// URL.

    For tests that a login against a hanging directory fails in bounded time. Connections are
    accepted (so a client's connect succeeds and its first request waits forever) and kept open,
    unread, until the block ends.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_forever() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept_forever, name=f"blackhole-ldap-{port}", daemon=True)
    thread.start()
    try:
        yield f"ldap://127.0.0.1:{port}"
    finally:
        done.set()
        thread.join(timeout=2)
        listener.close()
        for conn in held:
            conn.close()
