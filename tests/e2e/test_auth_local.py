"""Local login (PAM) for the machine's own accounts, and the development login's identities."""

from __future__ import annotations

import pwd
import sqlite3
import subprocess

import pytest

from conftest import Client
from hubtest import hub_login

PW = "paula-Secret-7"


def userdel(name: str) -> None:
    subprocess.run(["userdel", "-r", name], capture_output=True)


@pytest.fixture(scope="module")
def phub(hub_factory):
    userdel("uwsp-paula")
    subprocess.run(["useradd", "--create-home", "uwsp-paula"], check=True)
    subprocess.run(["chpasswd"], input=f"uwsp-paula:{PW}", text=True, check=True)
    subprocess.run(["groupadd", "-f", "uwsp-lab"], check=True)
    subprocess.run(["usermod", "-aG", "uwsp-lab", "uwsp-paula"], check=True)
    extra = """
c.JupyterHub.authenticator_class = "uws-local"
c.UWSLocalAuthenticator.allow_all = True
c.UWSLocalAuthenticator.manage_groups = True
"""
    h = hub_factory("pam", extra_config=extra)
    yield h
    hub_factory.release(h)
    userdel("uwsp-paula")
    subprocess.run(["groupdel", "uwsp-lab"], capture_output=True)


def test_pam_login_is_the_system_account(phub):
    _, r = hub_login(phub.url, "uwsp-paula", PW)
    assert r.status_code == 302, r.text[-500:]
    pw = pwd.getpwnam("uwsp-paula")
    with sqlite3.connect(phub.dir / "uws.sqlite") as db:
        rows = db.execute(
            "SELECT i.source, i.external_id, i.uid, u.posix_name, u.uid, u.gid "
            "FROM uws_external_identities i JOIN uws_users u ON u.id = i.user_id"
        ).fetchall()
    assert rows == [("local", "uwsp-paula", pw.pw_uid, "uwsp-paula", pw.pw_uid, pw.pw_gid)]
    assert "uwsp-lab" in phub.hub_api("GET", "users/uwsp-paula").json()["groups"]
    c = Client.of(phub, "uwsp-paula")
    ws = c.post("workspaces/", json={"name": "pam", "description": "d"}).json()["data"]["workspace"]
    assert (phub.root / "uwsp-paula" / str(ws["id"])).stat().st_uid == pw.pw_uid


def test_pam_wrong_password(phub):
    _, r = hub_login(phub.url, "uwsp-paula", "not-it")
    assert r.status_code == 403 and "Invalid username or password" in r.text


def test_dev_login_records_its_identity(hub):
    """The suite's shared hub uses the development login."""
    _, r = hub_login(hub.url, "uwst-devlogin", "test-password")
    assert r.status_code == 302
    with sqlite3.connect(hub.dir / "uws.sqlite") as db:
        row = db.execute(
            "SELECT i.source, u.posix_name, u.uid FROM uws_external_identities i "
            "JOIN uws_users u ON u.id = i.user_id WHERE u.name = 'uwst-devlogin'"
        ).fetchone()
    assert row == ("dev", "uwst-devlogin", pwd.getpwnam("uwst-devlogin").pw_uid)
