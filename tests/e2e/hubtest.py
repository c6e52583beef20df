"""A real JupyterHub for tests and benchmarks: subprocess, npm proxy, the uws service, free ports.

The pattern of jupyterhub-idle-culler's tests: start ``jupyterhub -f tests/e2e/hub_config.py`` with
settings in the environment, wait until the hub and the uws service answer, talk HTTP to it,
stop it (and anything it left) by PID.

Tests get their hubs from `HubFactory` (conftest.py's ``hub_factory`` fixture, and the session's
shared ``hub``), which also stops them and removes what they left.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import requests

from uws_hub.job_wrapper import free_port as wrapper_free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]  # tests/e2e/ -> the repository
BIN = Path(sys.executable).parent


_given_ports: set[int] = set()


def free_port() -> int:
    """A free port below the ephemeral range (see uws_hub.job_wrapper.free_port), never the
    same one twice in a test run: a port from bind(0) was taken by an outgoing connection
    before the test hub's service could listen on it."""
    for _ in range(20):
        if (port := wrapper_free_port("127.0.0.1", _given_ports)) not in _given_ports:
            _given_ports.add(port)
            return port
    raise OSError("no free port left for the tests")


def world_dir(prefix: str) -> Path:
    """A temporary directory other accounts can traverse (pytest's tmp dirs are mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """A real system account for a test user (idempotent; CI reuses the machine)."""
    for _ in range(40):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        r = subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", name],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            return pwd.getpwnam(name)
        # another pytest (make test runs two) holds a lock on /etc/passwd, /etc/shadow or
        # /etc/group (exit 1 or 10, "cannot lock"), or made the account meanwhile (9)
        if r.returncode != 9 and "cannot lock" not in r.stderr:
            raise RuntimeError(f"useradd {name}: {r.stderr.strip()}")
        time.sleep(0.25)
    return pwd.getpwnam(name)


def pids_with_cmdline(*needles: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if all(n in cmd for n in needles):
            out.append(int(entry))
    return out


def hub_login(url: str, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Log in through the hub's login form, as a browser does; returns the session and answer."""
    s = requests.Session()
    s.get(f"{url}/hub/login", timeout=30)
    r = s.post(
        f"{url}/hub/login",
        data={
            "username": name,
            "password": password,
            "_xsrf": s.cookies.get("_xsrf", path="/hub/"),
        },
        allow_redirects=False,
        timeout=30,
    )
    return s, r


class HubProcess:
    """One JupyterHub (with proxy and uws service) in its own directories and ports."""

    def __init__(
        self,
        *,
        config: Path = HERE / "hub_config.py",
        env: dict[str, str] | None = None,
        name: str = "hub",
    ):
        self.dir = world_dir(f"uws-{name}-")
        self.root = self.dir / "workspaces"
        self.root.mkdir(mode=0o755)
        self.root.chmod(0o755)
        self.datasets = self.dir / "datasets"
        self.datasets.mkdir()
        self.datasets.chmod(0o755)
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        self.env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "UWS_TEST_DIR": str(self.dir),
            "UWS_TEST_ROOT": str(self.root),
            "UWS_TEST_PORT": str(self.port),
            "UWS_TEST_HUB_PORT": str(free_port()),
            "UWS_TEST_PROXY_API_PORT": str(free_port()),
            "UWS_TEST_SERVICE_PORT": str(free_port()),
            "UWS_TEST_ADMIN_TOKEN": self.admin_token,
            "UWS_TEST_SYMLINK_ROOTS": json.dumps([str(self.datasets)]),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "hub.log"

    # ---- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 60) -> HubProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(self.config)],
            cwd=self.dir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if (
                    requests.get(self.url + "/services/uws/api/status", timeout=2).status_code
                    == 200
                ):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"hub did not come up in {timeout}s:\n{self.log_tail()}")

    def run_to_exit(self, timeout: float = 60) -> tuple[int, str]:
        """Run a hub expected to stop by itself (bad configuration); return exit code and output."""
        with open(self.log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "jupyterhub"), "-f", str(self.config)],
                cwd=self.dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                self.stop()  # the proxy it started, if it left it behind
        return code, self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # the proxy and service run in their own sessions: stop any the hub left, by PID
        for pid in self.our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if hasattr(self, "_log"):
            self._log.close()

    def cleanup(self) -> None:
        """Stop job servers the hub left running (cleanup_servers = False keeps them across hub
        restarts; a failed test may leave some) and remove the hub's directory (set
        UWS_TEST_KEEP=1 to keep it for a post-mortem)."""
        api = (
            f"JUPYTERHUB_API_URL=http://127.0.0.1:{self.env['UWS_TEST_HUB_PORT']}/hub/api".encode()
        )
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if api in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        if not os.environ.get("UWS_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def our_pids(self) -> list[int]:
        """Processes started for this hub: their environment carries our UWS_TEST_DIR."""
        marker = f"UWS_TEST_DIR={self.dir}".encode()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in env:
                out.append(int(entry))
        return out

    def wait_service_restarted(self, old_pid: int, timeout: float = 120) -> None:
        """After the uws service died: wait until the hub has started a new one and it answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.service_pids() and self.service_pids() != [old_pid]:
                try:
                    if (
                        requests.get(self.url + "/services/uws/api/status", timeout=2).status_code
                        == 200
                    ):
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.5)
        raise AssertionError(
            f"the hub did not restart the uws service within {timeout}s:\n{self.log_tail()}"
        )

    def service_pids(self) -> list[int]:
        svc = set(pids_with_cmdline("uws_hub.service"))
        return [p for p in self.our_pids() if p in svc]

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # ---- hub API as admin ---------------------------------------------------------------

    def hub_api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", f"token {self.admin_token}")
        return requests.request(
            method, f"{self.url}/hub/api/{path.lstrip('/')}", headers=headers, **kw
        )

    def ensure_user(self, name: str) -> None:
        ensure_system_user(name)
        r = self.hub_api("GET", f"users/{name}")
        if r.status_code == 404:
            r = self.hub_api("POST", f"users/{name}")
            r.raise_for_status()

    def token_for(self, name: str, scopes: list[str] | None = None, note: str = "test") -> str:
        self.ensure_user(name)
        body: dict = {"note": note}
        if scopes is not None:
            body["scopes"] = scopes
        r = self.hub_api("POST", f"users/{name}/tokens", json=body)
        r.raise_for_status()
        return r.json()["token"]


class HubFactory:
    """Starts test hubs, and stops them (last started first) and removes their directories
    when closed: conftest.py's ``hub_factory`` fixture closes at the end of the test module
    that asked for it, the shared ``hub`` at the end of the session."""

    def __init__(self) -> None:
        self._hubs: list[HubProcess] = []
        self._keep_log: dict[HubProcess, Path] = {}

    def __call__(
        self,
        name: str,
        *,
        env: dict[str, str] | None = None,
        extra_config: str | Callable[[HubProcess], str] | None = None,
        auth_state: bool = False,
        system_users: Iterable[str] = (),
        before_start: Callable[[HubProcess], None] | None = None,
        users: Iterable[str] = (),
        start: bool = True,
        keep_log: Path | None = None,
    ) -> HubProcess:
        """A hub named `name` (its directory is /tmp/uws-<name>-*), started unless `start` is
        False, in this order:

        - `system_users`: system accounts made before the hub starts;
        - `env`: settings for hub_config.py (UWS_TEST_* variables) on top of the defaults;
        - `extra_config`: Python statements hub_config.py runs (UWS_TEST_EXTRA_CONFIG), or a
          function of the (not yet started) hub returning them, for settings that name its URL
          or directory;
        - `auth_state`: give the hub a JUPYTERHUB_CRYPT_KEY (authenticators keeping tokens);
        - `before_start`: a function called with the hub before it starts (files in its
          directory, clients registered for its URL at a stand-in);
        - `users`: hub users (and their system accounts) made once it answers;
        - `keep_log`: where the hub's log is copied when it stops (before its directory goes).
        """
        for user in system_users:
            ensure_system_user(user)
        env = dict(env or {})
        if auth_state:
            env["JUPYTERHUB_CRYPT_KEY"] = secrets.token_hex(32)
        hub = HubProcess(name=name, env=env)
        self._hubs.append(hub)  # from here on closing stops it, even if it fails to start
        if keep_log is not None:
            self._keep_log[hub] = keep_log
        if extra_config is not None:
            hub.env["UWS_TEST_EXTRA_CONFIG"] = (
                extra_config(hub) if callable(extra_config) else extra_config
            )
        if before_start is not None:
            before_start(hub)
        if start:
            hub.start()
            for user in users:
                hub.ensure_user(user)
        return hub

    def release(self, hub: HubProcess) -> None:
        """Stop `hub` now and remove its directory (for steps that must follow, e.g. deleting
        its accounts or its database)."""
        if hub in self._hubs:
            self._hubs.remove(hub)
        hub.stop()
        if (dest := self._keep_log.pop(hub, None)) is not None and hub.log_path.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(hub.log_path, dest)
        hub.cleanup()

    def close(self) -> None:
        while self._hubs:
            self.release(self._hubs[-1])
