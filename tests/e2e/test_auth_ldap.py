"""LDAP login against the project's own slapd: uid/gid from the directory, groups, refusals,
and a directory that hangs does not freeze the hub."""

from __future__ import annotations

import os
import pwd
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import Client
from hubtest import hub_login
from ldaputil import (
    BASE_DN,
    LDAP_PORT,
    add_group,
    add_group_of_names,
    add_user,
    ensure_ldap,
    user_dn,
)

PW = "lena-secret-1"


def userdel(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture(scope="module")
def lhub(hub_factory):
    ensure_ldap()
    for n in ("uwsl-lena", "uwsl-nouid"):
        userdel(n)
    add_user("uwsl-lena", PW, 43001, 43001, mail="lena@uni-a.edu", cn="Lena L", sn="L")
    add_group("uwsl-physics", 43100, ["uwsl-lena"])
    add_group_of_names("uwsl-gpu-users", [user_dn("uwsl-lena")])
    add_group("uwsl-chemistry", 43101, ["someone-else"])
    extra = f"""
c.JupyterHub.authenticator_class = "uws-ldap"
c.UWSLDAPAuthenticator.server_address = "127.0.0.1"
c.UWSLDAPAuthenticator.server_port = {LDAP_PORT}
c.UWSLDAPAuthenticator.tls_strategy = "insecure"
c.UWSLDAPAuthenticator.bind_dn_template = ["uid={{username}},ou=people,{BASE_DN}"]
c.UWSLDAPAuthenticator.group_search_base = "ou=groups,{BASE_DN}"
c.UWSLDAPAuthenticator.manage_groups = True
c.UWSLDAPAuthenticator.allow_all = True
c.UWSLDAPAuthenticator.ldap_timeout = 3.0
c.AccountMapping.create_accounts = True
"""
    h = hub_factory("ldap", extra_config=extra)
    yield h
    hub_factory.release(h)
    for n in ("uwsl-lena", "uwsl-nouid"):
        userdel(n)


def test_login_maps_to_the_directorys_account(lhub):
    s, r = hub_login(lhub.url, "uwsl-lena", PW)
    assert r.status_code == 302, r.text[-500:]
    pw = pwd.getpwnam("uwsl-lena")
    assert (pw.pw_uid, pw.pw_gid) == (43001, 43001)  # created with the directory's numbers
    user = lhub.hub_api("GET", "users/uwsl-lena").json()
    assert {"uwsl-physics", "uwsl-gpu-users"} <= set(user["groups"])
    assert "uwsl-chemistry" not in user["groups"]
    with sqlite3.connect(lhub.dir / "uws.sqlite") as db:
        row = db.execute(
            "SELECT i.source, i.external_id, i.uid, i.gid, u.posix_name, u.uid, u.email "
            "FROM uws_external_identities i JOIN uws_users u ON u.id = i.user_id"
        ).fetchall()
    assert row == [("ldap", "uwsl-lena", 43001, 43001, "uwsl-lena", 43001, "lena@uni-a.edu")]
    # the account owns what the person creates
    lena = Client.of(lhub, "uwsl-lena")
    r = lena.post("workspaces/", json={"name": "from-ldap", "description": "d"})
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    st = os.stat(lhub.root / "uwsl-lena" / str(ws["id"]))
    assert (st.st_uid, st.st_gid) == (43001, 43001)
    # a second login is the same user, no second identity
    _, r = hub_login(lhub.url, "uwsl-lena", PW)
    assert r.status_code == 302
    with sqlite3.connect(lhub.dir / "uws.sqlite") as db:
        assert db.execute("SELECT count(*) FROM uws_external_identities").fetchone()[0] == 1


def test_wrong_password_and_unknown_user_are_refused(lhub):
    for name, password in (("uwsl-lena", "wrong"), ("uwsl-nobody", PW)):
        _, r = hub_login(lhub.url, name, password)
        assert r.status_code == 403, r.status_code
        assert "Invalid username or password" in r.text


def test_entry_without_posix_numbers_gets_a_message(lhub):
    from ldaputil import connection, delete

    dn = f"uid=uwsl-nouid,ou=people,{BASE_DN}"
    delete(dn)
    with connection() as conn:
        conn.add(
            dn,
            ["inetOrgPerson"],
            {"uid": "uwsl-nouid", "cn": "n", "sn": "n", "userPassword": "nouid-pw-1"},
        )
    _, r = hub_login(lhub.url, "uwsl-nouid", "nouid-pw-1")
    assert r.status_code == 403
    assert "no uidNumber/gidNumber" in r.text
    assert "Traceback" not in r.text


def test_a_hanging_directory_does_not_freeze_the_hub(lhub):
    pid = int(open("/tmp/uws-ldap/slapd.pid").read())
    os.kill(pid, signal.SIGSTOP)  # accepts connections (kernel backlog), never answers
    try:
        result = {}

        def login():
            t0 = time.monotonic()
            _, r = hub_login(lhub.url, "uwsl-lena", PW)
            result.update(status=r.status_code, text=r.text, seconds=time.monotonic() - t0)

        t = threading.Thread(target=login)
        t.start()
        time.sleep(0.5)
        # meanwhile the hub keeps serving others
        latencies = []
        while t.is_alive():
            t0 = time.monotonic()
            assert requests.get(f"{lhub.url}/hub/api/", timeout=5).status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
        t.join()
        assert latencies and max(latencies) < 1.0, latencies
        assert result["status"] == 503, result
        assert "did not answer in time" in result["text"]
        assert result["seconds"] < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    _, r = hub_login(lhub.url, "uwsl-lena", PW)
    assert r.status_code == 302
