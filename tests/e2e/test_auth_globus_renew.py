"""The Globus tokens of a running job are renewed by the uws service before they expire.

A real hub logs in against the Globus stand-in, which issues access tokens that live
`LIFETIME` seconds (and refresh tokens); a job gets its transfer token in its owner-only file.
The service's renewal pass must replace the file's token before it expires, with one Globus
accepts after the original has expired, keeping the file's path, owner and mode, never writing
through a link, and carrying on after the service restarts."""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import time

import pytest
from test_auth_globus import globus_login, globus_login_settings, person, userdel

from conftest import Client
from jobutil import started, stop_and_wait
from standins.globus import TRANSFER_RS, GlobusStandin

#: its token lifetimes pass alongside the other tests (make test's background pytest)
pytestmark = pytest.mark.background

LIFETIME = 12  # seconds an access token lives at the stand-in
MARGIN = 8  # renew when it expires within this many seconds
INTERVAL = 1  # seconds between the service's passes
NAME = "uwsr-rita"


@pytest.fixture(scope="module")
def globus():
    g = GlobusStandin(token_lifetime=LIFETIME).start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def rhub(globus, hub_factory):
    userdel(NAME)
    settings = f"""
c.JupyterHub.authenticator_class = "uws-globus"
c.UWSGlobusAuthenticator.token_refresh_margin = {MARGIN}
c.UWSGlobusAuthenticator.job_token_renew_interval = {INTERVAL}
c.UWSGlobusAuthenticator.allow_all = True
c.AccountMapping.create_accounts = True
c.AccountMapping.home_domains = ["uni-a.edu"]
"""
    h = hub_factory(
        "globus-renew",
        auth_state=True,
        extra_config=lambda h: globus_login_settings(globus, h) + settings,
    )
    yield h
    hub_factory.release(h)
    userdel(NAME)


def tokens_file(job: dict) -> str:
    environ = open(f"/proc/{job['resource_job_id']}/environ", "rb").read().split(b"\0")
    var = next(v for v in environ if v.startswith(b"UWS_GLOBUS_TOKENS_FILE="))
    return var.split(b"=", 1)[1].decode()


def read_token(path: str) -> dict:
    with open(path) as f:
        return json.load(f)[TRANSFER_RS]


def wait_for_new_token(path: str, old: str, timeout: float) -> tuple[dict, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            tok = read_token(path)
        except (OSError, ValueError):  # never seen: the file is replaced in one rename
            raise AssertionError(f"{path} could not be read while renewed") from None
        if tok["access_token"] != old:
            return tok, time.time()
        time.sleep(0.2)
    raise AssertionError(f"the job's token was not renewed within {timeout}s")


def test_job_tokens_are_renewed_before_they_expire(rhub, globus):
    _, r = globus_login(rhub, globus, person(f"{NAME}@uni-a.edu"))
    assert r.status_code == 302, r.text[-500:]
    rita = Client.of(rhub, NAME)
    ws = rita.post("workspaces/", json={"name": "long", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(rita, ws["id"], job_type="test_job", resource="local")
    path = tokens_file(j)
    uid = pwd.getpwnam(NAME).pw_uid
    first = read_token(path)
    issued = globus.token_info(first["access_token"])
    assert issued["active"] and issued["resource_server"] == TRANSFER_RS
    # the file says when its token expires (the stand-in's clock is this machine's)
    assert abs(first["expires_at"] - issued["expires_at"]) <= 2

    # renewed while the job runs, before the token expires
    second, seen = wait_for_new_token(path, first["access_token"], LIFETIME)
    assert seen < first["expires_at"]
    info = globus.token_info(second["access_token"])
    assert info["active"] and info["grant"] == "refresh_token" and info["sub"] == issued["sub"]
    assert second["expires_at"] > first["expires_at"]
    assert "refresh_token" not in json.dumps(json.load(open(path)))
    st = os.lstat(path)  # the same owner-only file
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == uid
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]

    # after the original expired, the file's token still works at Globus
    time.sleep(max(0.0, first["expires_at"] - time.time()) + 1)
    assert not globus.token_info(first["access_token"])["active"]
    assert globus.token_info(read_token(path)["access_token"])["active"]

    # restart-safe: the service dies, the hub starts it again, the renewal carries on
    old_pid = rhub.service_pids()[0]
    os.kill(old_pid, signal.SIGKILL)
    rhub.wait_service_restarted(old_pid)
    # (the token may have lapsed while the service was down: the first pass renews it at once)
    current = read_token(path)
    if current["expires_at"] - time.time() > MARGIN:
        renewed = current
    else:
        renewed, _ = wait_for_new_token(path, current["access_token"], LIFETIME)
    assert globus.token_info(renewed["access_token"])["active"]
    third, seen = wait_for_new_token(path, renewed["access_token"], LIFETIME)
    assert seen < renewed["expires_at"] and globus.token_info(third["access_token"])["active"]

    # a link put in the file's place is never followed (the file is left alone)
    decoy = os.path.join(pwd.getpwnam(NAME).pw_dir, "decoy.json")
    with open(decoy, "w") as f:
        f.write("decoy")
    os.chown(decoy, uid, -1)
    os.unlink(path)
    os.symlink(decoy, path)
    time.sleep(max(0.0, third["expires_at"] - MARGIN - time.time()) + 3 * INTERVAL)
    assert open(decoy).read() == "decoy" and os.path.islink(path)
    log = rhub.log_path.read_text(errors="replace")
    assert "is a link; left alone" in log
    os.unlink(path)

    stop_and_wait(rita, j["id"])
    time.sleep(2 * INTERVAL)
    assert not os.path.lexists(path)  # removed with the job, never written again
