"""`make run` on this machine: it sets up what is missing, serves the hub, prints the URL and the
password; a first login creates the system account; a token from the hub manages workspaces
whose files belong to that account. And the same as an ordinary user."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from hubtest import REPO, ensure_system_user, free_port, hub_login, world_dir

USER = "uwst-maker"


def start_make_run(data, *, as_user: str | None = None):
    port = free_port()
    env = {
        **os.environ,
        "UWS_DATA_DIR": str(data),
        "UWS_HUB_PORT": str(port),
        "UWS_HUB_API_PORT": str(free_port()),
        "UWS_PROXY_API_PORT": str(free_port()),
        "UWS_SERVICE_PORT": str(free_port()),
        "UWS_VENV": sys.prefix,  # the suite's venv: nothing to install
    }
    env.pop("UWS_DEV_PASSWORD", None)
    cmd = ["make", "-C", str(REPO), "run"]
    if as_user:
        env.update(HOME=pwd.getpwnam(as_user).pw_dir, USER=as_user, LOGNAME=as_user)
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    log = open(data / "make-run.log", "wb")  # noqa: SIM115 - closed by stop_make_run
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/services/uws/api/status", timeout=2).status_code == 200:
                return proc, log, url
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    stop_make_run(proc, log, data)
    raise AssertionError((data / "make-run.log").read_text())


def stop_make_run(proc, log, data) -> None:
    pidfile = data / "hub" / "jupyterhub.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    for pid in _pids_with_env(f"UWS_DATA_DIR={data}"):
        os.kill(pid, signal.SIGKILL)
    if not os.environ.get("UWS_TEST_KEEP"):
        shutil.rmtree(data, ignore_errors=True)


def _pids_with_env(marker: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker.encode() in f.read().split(b"\0"):
                        out.append(int(entry))
            except OSError:
                pass
    return out


def login(url: str, name: str, password: str) -> requests.Response:
    s, r = hub_login(url, name, password)
    r.session = s
    return r


def token_from_hub(url: str, name: str, password: str) -> str:
    """Log in through the hub's form, then ask for a token the way the hub's token page does."""
    r = login(url, name, password)
    assert r.status_code == 302, r.text
    s = r.session
    r = s.post(
        f"{url}/hub/api/users/{name}/tokens",
        json={"note": "scripts"},
        headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/")},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


def create_workspace(url: str, token: str, name: str):
    r = requests.post(
        f"{url}/services/uws/api/workspaces/",
        headers={"Authorization": f"token {token}"},
        json={
            "name": name,
            "description": "made by make run",
            "workspace_details": {"files": [{"name": "hello/world.txt", "content": name}]},
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]["workspace"]


def test_make_run_end_to_end():
    subprocess.run(["userdel", "--remove", USER], capture_output=True)
    data = world_dir("uws-makerun-")
    proc, log, url = start_make_run(data)
    try:
        out = (data / "make-run.log").read_text()
        assert f"Open:      {url}/hub/login" in out
        password = re.search(r"and the password:\s+(\S+)", out).group(1)
        assert (data / "hub" / "dev-password").read_text().strip() == password
        assert oct((data / "hub" / "dev-password").stat().st_mode & 0o777) == "0o600"

        assert "Invalid username or password" in login(url, USER, "wrong").text
        with pytest.raises(KeyError):
            pwd.getpwnam(USER)
        # a person logs in: the system account is created at first login ...
        token = token_from_hub(url, USER, password)
        account = pwd.getpwnam(USER)
        # ... and manages workspaces through the API with a token from the hub
        ws = create_workspace(url, token, "first")
        f = data / "workspaces" / USER / str(ws["id"]) / "hello" / "world.txt"
        assert f.read_text() == "first"
        assert (os.stat(f).st_uid, os.stat(f).st_gid) == (account.pw_uid, account.pw_gid)
        r = requests.get(
            f"{url}/services/uws/api/workspaces/",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert [w["name"] for w in r.json()["data"]["workspaces"]] == ["first"]
        # a system account cannot be used as a login
        assert "Invalid username or password" in login(url, "daemon", password).text
    finally:
        stop_make_run(proc, log, data)


def test_make_run_as_an_ordinary_user():
    """Without root: no system accounts; every login works as the account running the hub."""
    runner = ensure_system_user("uwst-runner")
    data = world_dir("uws-makerun-user-")
    os.chown(data, runner.pw_uid, runner.pw_gid)
    proc, log, url = start_make_run(data, as_user="uwst-runner")
    try:
        password = (data / "hub" / "dev-password").read_text().strip()
        for name in ("carol-nonroot", "dave-nonroot"):
            ws = create_workspace(url, token_from_hub(url, name, password), name)
            f = data / "workspaces" / "uwst-runner" / str(ws["id"]) / "hello" / "world.txt"
            assert f.read_text() == name
            assert os.stat(f).st_uid == runner.pw_uid
            with pytest.raises(KeyError):
                pwd.getpwnam(name)  # no system account was created
        # the hub, proxy and service run as that user (only the runuser wrapper is root)
        procs = {
            pid: open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]
            for pid in _pids_with_env(f"UWS_DATA_DIR={data}")
        }
        served = [pid for pid, exe in procs.items() if not exe.endswith(b"runuser")]
        assert len(served) >= 3, procs
        assert all(os.stat(f"/proc/{pid}").st_uid == runner.pw_uid for pid in served), procs
    finally:
        stop_make_run(proc, log, data)
