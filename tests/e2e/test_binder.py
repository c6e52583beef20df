"""The Binder demo (binder/, docs/binder.md), built and started the way Binder does it.

As on Binder, an unprivileged account (``uwst-binder``, standing in for ``jovyan``) gets a copy
of the repository as its home, builds a Python environment from Debian's python3 with
``pip install -r binder/requirements.txt`` (from the repository's root, like repo2docker), runs
``binder/postBuild``, and starts JupyterLab under a base URL (``/user/demo/``) with a token and a
Binder-like environment. Everything the person does then goes through that server: its
jupyter-server-proxy starts the demo hub at ``/user/demo/uws-demo/``; the login page answers, the
development login works, the sample workspaces and the invitation are there for alice and bob,
and a job starts and runs as the account. Stopping the JupyterLab server must stop everything
else.

The environment is kept between runs under /var/tmp, keyed by the files that decide what pip
installs (binder/requirements.txt, binder/runtime.txt, pyproject.toml), with pip's cache beside
it; each run reinstalls only uws_hub itself from the current checkout (``--no-deps``). A fresh
build takes about a minute and a half with a warm cache; a run with a kept environment about
35 seconds.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import check_openapi
from hubtest import REPO, ensure_system_user, free_port, world_dir

ACCOUNT = "uwst-binder"
PREFIX = "/user/demo/"
CACHE = Path("/var/tmp")
#: bump when the way the environment is built changes
RECIPE = "1"
ENV_KEY_FILES = ("binder/requirements.txt", "binder/runtime.txt", "pyproject.toml")
#: what the Binder session's own hub puts in its server's environment; must not reach the demo
BINDER_ENV = {
    "JUPYTERHUB_API_TOKEN": "binder-session-token",
    "JPY_API_TOKEN": "binder-session-token",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
    "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
    "JUPYTERHUB_USER": "demo",
}


# ---- building the environment as Binder does --------------------------------------------------


def run_as(acct: pwd.struct_passwd, cmd: list[str], *, cwd: Path, env: dict, timeout: float):
    """Run `cmd` as `acct` with exactly `env` (plus its identity); fail with its output."""
    full = {**env, "HOME": env.get("HOME", acct.pw_dir), "USER": acct.pw_name}
    full["LOGNAME"] = acct.pw_name
    proc = subprocess.run(
        ["runuser", "-u", acct.pw_name, "--", "env", "-i", *(f"{k}={v}" for k, v in full.items())]
        + cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def copy_checkout(home: Path) -> None:
    """The repository as repo2docker copies it: the tracked and new (not ignored) files."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / os.fsdecode(name)
        if src.is_file():
            dst = home / os.fsdecode(name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def build_env(acct: pwd.struct_passwd, home: Path, base_env: dict) -> Path:
    """The environment binder/requirements.txt describes, built by `acct` (kept between runs)."""
    digest = hashlib.sha256(RECIPE.encode())
    for name in ENV_KEY_FILES:
        path = REPO / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    key = digest.hexdigest()[:16]
    root = CACHE / f"uws-binder-{key}"
    env = root / "env"
    pip_cache = CACHE / "uws-binder-pip-cache"
    pip_env = {**base_env, "PIP_CACHE_DIR": str(pip_cache)}
    for old in CACHE.glob("uws-binder-*"):
        if old.is_dir() and old not in (root, pip_cache):
            shutil.rmtree(old, ignore_errors=True)  # an environment for other binder files
    for d in (root, pip_cache):
        if d.exists() and d.stat().st_uid != acct.pw_uid:  # the account was made anew
            shutil.rmtree(d)
        d.mkdir(mode=0o755, exist_ok=True)
        os.chown(d, acct.pw_uid, acct.pw_gid)
    if not (root / "built").exists():
        shutil.rmtree(env, ignore_errors=True)
        run_as(
            acct, ["/usr/bin/python3", "-m", "venv", str(env)], cwd=home, env=base_env, timeout=120
        )
        # what repo2docker runs, from the repository's root
        run_as(
            acct,
            [f"{env}/bin/pip", "install", "-q", "-r", "binder/requirements.txt"],
            cwd=home,
            env=pip_env,
            timeout=900,
        )
        (root / "built").write_text(key + "\n")
    else:
        # the environment's other packages are what the key says; uws_hub is this checkout
        run_as(
            acct,
            [f"{env}/bin/pip", "install", "-q", "--no-deps", "--force-reinstall", "."],
            cwd=home,
            env=pip_env,
            timeout=300,
        )
    return env


# ---- processes ----------------------------------------------------------------------------------


def account_pids(uid: int) -> list[int]:
    """Live processes of `uid` (not zombies: they have ended, their parent has yet to look)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                out.append(int(entry))
    return out


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(e.split("=", 1) for e in raw.decode(errors="replace").split("\0") if "=" in e)


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


# ---- the person's side ---------------------------------------------------------------------------


class Browser:
    """A person's browser session with the Binder server (cookies, as a browser keeps them)."""

    def __init__(self, server: str, token: str):
        self.server = server  # http://127.0.0.1:<port>/user/demo/
        self.hub = server + "uws-demo/"
        self.s = requests.Session()
        r = self.s.get(f"{server}lab?token={token}", timeout=60)  # the Binder link's token
        assert r.status_code == 200, r.text[:500]

    def xsrf(self) -> str:
        return next(
            c.value
            for c in self.s.cookies
            if c.name == "_xsrf" and c.path.endswith("/uws-demo/hub/")
        )

    def login(self, name: str, password: str) -> requests.Response:
        self.s.get(f"{self.hub}hub/login", timeout=60)
        return self.s.post(
            f"{self.hub}hub/login",
            data={"username": name, "password": password, "_xsrf": self.xsrf()},
            allow_redirects=False,
            timeout=60,
        )

    def hub_token(self, name: str) -> str:
        """A token the way the hub's token page makes one."""
        r = self.s.post(
            f"{self.hub}hub/api/users/{name}/tokens",
            json={"note": "test_binder"},
            headers={"X-XSRFToken": self.xsrf()},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def api(self, token: str, method: str, path: str, **kw) -> dict:
        """The uws API with a hub token (through the Binder server, whose cookie comes along)."""
        r = self.s.request(
            method,
            f"{self.hub}services/uws/api/{path}",
            headers={"Authorization": f"token {token}"},
            timeout=60,
            **kw,
        )
        # the shipped OpenAPI document describes the API at /services/uws/api (no prefix)
        seen = copy.copy(r)
        seen.request = r.request.copy()
        seen.request.url = r.request.url.replace(f"{PREFIX}uws-demo/", "/", 1)
        check_openapi(seen)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json()["data"]


def wait_job(b: Browser, token: str, job_id: int, until: tuple, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        j = b.api(token, "GET", f"jobs/{job_id}/")["jobs"][0]
        if j["status"] in until:
            return j
        assert time.monotonic() < deadline, f"job {job_id} still {j['status']}: {j}"
        time.sleep(0.3)


def run_notebook_code(b: Browser, token: str, server: str, notebook: str) -> str:
    """Run the code cells of `notebook` in a new kernel of the Jupyter server at `server`
    (through the proxies, as JupyterLab in a browser does); return what they printed."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    auth = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + 60
    while True:  # the hub adds the job's route a moment after the job says it runs
        r = b.s.get(f"{server}api/contents/{notebook}", headers=auth, timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    code = "\n".join(
        "".join(c["source"]) for c in r.json()["content"]["cells"] if c["cell_type"] == "code"
    )
    r = b.s.post(f"{server}api/kernels", json={"name": "python3"}, headers=auth, timeout=60)
    assert r.status_code == 201, r.text[:500]
    kernel = r.json()["id"]
    ws_url = f"{server}api/kernels/{kernel}/channels".replace("http://", "ws://", 1)
    cookie = b.s.prepare_request(requests.Request("GET", server)).headers.get("Cookie", "")

    async def execute() -> str:
        conn = await websocket_connect(
            HTTPRequest(ws_url, headers={**auth, "Cookie": cookie}, request_timeout=60)
        )
        msg_id = secrets.token_hex(8)
        conn.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "session": secrets.token_hex(8),
                        "username": "test",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        out = []
        while True:
            raw = await asyncio.wait_for(conn.read_message(), 60)
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError(msg["content"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                conn.close()
                return "".join(out)

    try:
        return asyncio.run(execute())
    finally:
        b.s.delete(f"{server}api/kernels/{kernel}", headers=auth, timeout=30)


# ---- the tests ------------------------------------------------------------------------------------


def test_demo_files_are_consistent():
    """What Binder reads is where Binder looks, and the demo names what it seeds."""
    assert os.access(REPO / "binder" / "postBuild", os.X_OK)
    reqs = (REPO / "binder" / "requirements.txt").read_text().split("\n")
    assert "." in reqs and any(r.startswith("jupyter-server-proxy") for r in reqs)
    assert (REPO / "binder" / "runtime.txt").read_text().startswith("python-3.")
    sys.path.insert(0, str(REPO / "binder"))
    try:
        import uws_demo
    finally:
        sys.path.remove(str(REPO / "binder"))
    for sender, ws_name, recipient in uws_demo.INVITATIONS:
        assert (
            ws_name in {w["name"] for w in uws_demo.SAMPLES[sender]}
            and recipient in uws_demo.SAMPLES
        )
    for workspaces in uws_demo.SAMPLES.values():
        for ws in workspaces:
            for f in ws["workspace_details"]["files"]:
                if f["name"].endswith(".ipynb"):
                    assert json.loads(f["content"])["nbformat"] == 4


def test_binder_demo_end_to_end():
    t0 = time.monotonic()
    acct = ensure_system_user(ACCOUNT)
    leftovers = account_pids(acct.pw_uid)
    for pid in leftovers:  # a previous run that was killed before it could clean up
        if cmdline(pid):
            os.kill(pid, signal.SIGKILL)
    home = world_dir("uws-binder-home-")
    copy_checkout(home)
    subprocess.run(["chown", "-R", f"{acct.pw_uid}:{acct.pw_gid}", str(home)], check=True)
    base_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
    }
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):  # as scripts/bootstrap.sh does
        base_env["NODE_EXTRA_CA_CERTS"] = "/etc/ssl/certs/ca-certificates.crt"
    env = build_env(acct, home, base_env)
    t_build = time.monotonic() - t0
    session_env = {**base_env, "PATH": f"{env}/bin:{base_env['PATH']}"}
    run_as(acct, ["bash", "binder/postBuild"], cwd=home, env=session_env, timeout=300)

    port, token = free_port(), secrets.token_hex(16)
    log_path = home / "binder-session.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
    full = {**session_env, **BINDER_ENV, "USER": ACCOUNT, "LOGNAME": ACCOUNT}
    server = subprocess.Popen(
        ["runuser", "-u", ACCOUNT, "--", "env", "-i", *(f"{k}={v}" for k, v in full.items())]
        + [f"{env}/bin/jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
        + [f"--ServerApp.base_url={PREFIX}", f"--IdentityProvider.token={token}"],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}api/status", timeout=2)
                break
            except requests.RequestException:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
        b = Browser(url, token)

        # the launcher tile
        r = b.s.get(f"{url}server-proxy/servers-info", timeout=30)
        tiles = {p["name"]: p for p in r.json()["server_processes"]}
        assert tiles["uws-demo"]["launcher_entry"]["title"] == "uws_hub demo"

        # the first visit starts the demo hub; it answers once the samples are in place
        t1 = time.monotonic()
        r = b.s.get(f"{b.hub}hub/login", timeout=200)
        t_start = time.monotonic() - t1
        assert r.status_code == 200, log_path.read_text()[-5000:]
        assert "uws_hub demo" in r.text and "<code>demo</code>" in r.text
        assert 'name="username"' in r.text

        r = b.login("alice", "wrong")
        assert r.status_code == 403 or "Invalid username or password" in r.text
        r = b.login("alice", "demo")
        assert r.status_code == 302, r.text[:500]
        assert r.headers["Location"] == f"{PREFIX}uws-demo/services/uws/"
        # where the person lands: the workspaces page, through the hub's OAuth, under the prefix
        r = b.s.get(f"{url}uws-demo/", timeout=60)
        assert r.status_code == 200 and r.url == f"{b.hub}services/uws/", (r.url, r.text[:500])
        assert "Workspaces" in r.text
        alice = b.hub_token("alice")

        workspaces = b.api(alice, "GET", "workspaces/")["workspaces"]
        assert [w["name"] for w in workspaces] == ["ocean-temperatures"]
        ws = workspaces[0]
        assert ws["status"] in ("idle", "active")
        data = home / ".uws-demo"
        ws_dir = data / "workspaces" / ACCOUNT / str(ws["id"])
        nb = ws_dir / "analysis.ipynb"
        assert json.loads(nb.read_text())["nbformat"] == 4
        assert (ws_dir / "data" / "sst_anomalies.csv").read_text().startswith("year,")
        assert os.stat(nb).st_uid == acct.pw_uid  # single-account mode: the account owns it

        # bob has his own workspace and alice's invitation
        b2 = Browser(url, token)
        assert b2.login("bob", "demo").status_code == 302
        bob = b2.hub_token("bob")
        assert [w["name"] for w in b2.api(bob, "GET", "workspaces/")["workspaces"]] == [
            "paper-draft"
        ]
        inbox = b2.api(bob, "GET", "shared_workspaces/")["shared_workspaces"]
        assert len(inbox) == 1 and inbox[0]["is_accepted"] is False
        assert inbox[0]["original_workspace_id"]["user_id"]["username"] == "alice"

        # a job starts, as the account, and is reached through both proxies
        j = b.api(alice, "PUT", f"workspaces/{ws['id']}/start/", json={"job_type": "test_job"})
        job_id = j["job"]["id"]
        j = wait_job(b, alice, job_id, ("running", "failed", "complete"))
        assert j["status"] == "running", j
        job_pids = [
            p for p in account_pids(acct.pw_uid) if environ(p).get("UWS_JOB_ID") == str(job_id)
        ]
        assert job_pids, "no process of the job runs as the account"
        info = None
        deadline = time.monotonic() + 30
        while info is None:
            r = b.s.get(
                f"{b.hub}user/alice/job-{job_id}/whoami",
                headers={"Authorization": f"token {alice}"},
                timeout=30,
            )
            if r.status_code == 200:
                info = r.json()
            else:
                assert time.monotonic() < deadline, (r.status_code, r.text[:500])
                time.sleep(0.3)
        assert info["uid"] == acct.pw_uid and info["cwd"] == str(ws_dir)
        assert info["requester"] == "alice"
        # the Binder session's hub settings did not leak into the demo hub or its job
        hub_pids = [
            p for p in account_pids(acct.pw_uid) if "binder/jupyterhub_config.py" in cmdline(p)
        ]
        assert hub_pids
        for pid in hub_pids + job_pids:
            assert "binder-session-token" not in environ(pid).values()
        b.api(alice, "PUT", f"jobs/{job_id}/stop/")
        assert wait_job(b, alice, job_id, ("complete", "failed"))["status"] == "complete"

        # JupyterLab in the workspace: the sample notebook runs in a kernel (websockets through
        # the Binder server's proxy and the hub's)
        j = b.api(alice, "PUT", f"workspaces/{ws['id']}/start/", json={"job_type": "jupyter_lab"})
        lab_id = j["job"]["id"]
        j = wait_job(b, alice, lab_id, ("running", "failed", "complete"), timeout=120)
        assert j["status"] == "running", j
        output = run_notebook_code(b, alice, f"{b.hub}user/alice/job-{lab_id}/", "analysis.ipynb")
        assert output.startswith("14 years, warmest: 1998"), output
        b.api(alice, "PUT", f"jobs/{lab_id}/stop/")
        assert wait_job(b, alice, lab_id, ("complete", "failed"))["status"] == "complete"
        t_demo = time.monotonic() - t1
    finally:
        # stop the JupyterLab server (Binder's end of session); it must take everything along
        for pid in children(server.pid) or [server.pid]:
            os.kill(pid, signal.SIGTERM)
        try:
            server.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        deadline = time.monotonic() + 30
        while (left := account_pids(acct.pw_uid)) and time.monotonic() < deadline:
            time.sleep(0.3)
        left = {p: cmdline(p) for p in account_pids(acct.pw_uid)}
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        kept = os.environ.get("UWS_TEST_KEEP")
        if not kept:
            shutil.rmtree(home, ignore_errors=True)
    assert not left, f"still running after the session stopped: {left}"
    print(
        f"binder demo: environment {t_build:.0f} s, demo ready {t_start:.0f} s, "
        f"demo checks {t_demo:.0f} s, total {time.monotonic() - t0:.0f} s"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_single_account_mode_is_refused_as_root(tmp_path):
    """Demo mode maps every login to the hub's own account: as root that would be root."""
    from traitlets.config import Config

    from uws_hub.config import UWS
    from uws_hub.errors import ConfigError

    c = Config()
    c.UWS.root_dir = str(tmp_path)
    c.UWS.single_account = True
    with pytest.raises(ConfigError, match="single_account"):
        UWS(config=c).validate()
    c.UWS.single_account = False
    UWS(config=c).validate()
