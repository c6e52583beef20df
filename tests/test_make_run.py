"""`make run` on this machine: it sets up what is missing, serves the hub, prints the URL and the
password; a first login creates the system account; a token from the hub manages workspaces
whose files belong to that account."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import time

import requests

from hubtest import REPO, free_port, world_dir

USER = "uwst-maker"


def test_make_run_end_to_end():
    subprocess.run(["userdel", "--remove", USER], capture_output=True)
    data = world_dir("uws-makerun-")
    port = free_port()
    env = {
        **os.environ,
        "UWS_DATA_DIR": str(data),
        "UWS_HUB_PORT": str(port),
        "UWS_HUB_API_PORT": str(free_port()),
        "UWS_PROXY_API_PORT": str(free_port()),
        "UWS_SERVICE_PORT": str(free_port()),
    }
    env.pop("UWS_DEV_PASSWORD", None)
    log = open(data / "make-run.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["make", "-C", str(REPO), "run"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/services/uws/api/status", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (data / "make-run.log").read_text()
            time.sleep(0.3)
        out = (data / "make-run.log").read_text()
        assert f"Open:      {url}/hub/login" in out
        password = re.search(r"and the password:\s+(\S+)", out).group(1)
        assert (data / "hub" / "dev-password").read_text().strip() == password
        assert oct((data / "hub" / "dev-password").stat().st_mode & 0o777) == "0o600"

        # a person logs in: the system account is created at first login
        s = requests.Session()
        s.get(f"{url}/hub/login", timeout=30)
        bad = s.post(
            f"{url}/hub/login",
            data={
                "username": USER,
                "password": "wrong",
                "_xsrf": s.cookies.get("_xsrf", path="/hub/"),
            },
            timeout=30,
        )
        assert "Invalid username or password" in bad.text
        r = s.post(
            f"{url}/hub/login",
            data={
                "username": USER,
                "password": password,
                "_xsrf": s.cookies.get("_xsrf", path="/hub/"),
            },
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 302
        account = pwd.getpwnam(USER)
        # ... gets an API token the way the hub's token page asks for one
        r = s.post(
            f"{url}/hub/api/users/{USER}/tokens",
            json={"note": "scripts"},
            headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/")},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        # ... and manages workspaces through the API with it
        api = f"{url}/services/uws/api"
        h = {"Authorization": f"token {token}"}
        r = requests.post(
            f"{api}/workspaces/",
            headers=h,
            json={
                "name": "first",
                "description": "made by make run",
                "workspace_details": {"files": [{"name": "hello/world.txt", "content": "hi"}]},
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        ws = r.json()["data"]["workspace"]
        f = data / "workspaces" / USER / str(ws["id"]) / "hello" / "world.txt"
        assert f.read_text() == "hi"
        assert os.stat(f).st_uid == account.pw_uid and os.stat(f).st_gid == account.pw_gid
        r = requests.get(f"{api}/workspaces/", headers=h, timeout=30)
        assert [w["name"] for w in r.json()["data"]["workspaces"]] == ["first"]
        # a system account cannot be used as a login
        r = requests.Session()
        r.get(f"{url}/hub/login", timeout=30)
        denied = r.post(
            f"{url}/hub/login",
            data={
                "username": "daemon",
                "password": password,
                "_xsrf": r.cookies.get("_xsrf", path="/hub/"),
            },
            timeout=30,
        )
        assert "Invalid username or password" in denied.text
    finally:
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


def _pids_with_env(marker: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if marker.encode() in open(f"/proc/{entry}/environ", "rb").read().split(b"\0"):
                    out.append(int(entry))
            except OSError:
                pass
    return out
