"""Start the uws_hub demo hub for jupyter-server-proxy (see docs/binder.md).

    python binder/uws_demo.py --port PORT --base-url /user/<binder id>/uws-demo/

jupyter-server-proxy runs this when the person first opens ``<server>/uws-demo/`` and proxies
that path to PORT once PORT accepts connections. So PORT opens only when the demo is ready:

1. the hub (binder/jupyterhub_config.py, i.e. `make run`'s configuration under the proxy's
   prefix) starts on internal ports, data under $UWS_DEMO_DATA (default ~/.uws-demo);
2. once the hub and the uws service answer, the sample workspaces are created the way a person
   would make them — through the hub's login form and the uws REST API (once per data
   directory): alice and bob each get a workspace with files, and alice invites bob to a copy
   of hers;
3. PORT is opened and forwards every connection to the hub's proxy.

SIGTERM (jupyter-server-proxy stopping it) stops the hub, which stops its jobs. The hub runs as
the account running this script, never root: every demo login works as that one account
(uws_hub's single-account mode). For demonstrations only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from uws_hub.job_wrapper import free_ports

HERE = Path(__file__).resolve().parent
DEFAULT_PASSWORD = "demo"

# ---- the sample content -------------------------------------------------------------------------


def notebook(cells: list[tuple[str, str]]) -> str:
    """A small nbformat 4 notebook from (cell type, source) pairs."""
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
            "cells": [
                {
                    "cell_type": kind,
                    "id": f"cell-{i}",
                    "metadata": {},
                    "source": source,
                    **({"outputs": [], "execution_count": None} if kind == "code" else {}),
                }
                for i, (kind, source) in enumerate(cells)
            ],
        },
        indent=1,
    )


SST = "year,sea_surface_temperature_anomaly_c\n" + "".join(
    f"{1990 + i},{t}\n"
    for i, t in enumerate(
        [0.25, 0.28, 0.17, 0.19, 0.23, 0.31, 0.27, 0.45, 0.53, 0.33, 0.32, 0.41, 0.46, 0.48]
    )
)

SAMPLES: dict[str, list[dict]] = {
    "alice": [
        {
            "name": "ocean-temperatures",
            "description": "Sea surface temperature anomalies: a first look",
            "default_job_type": "jupyter_lab",
            "workspace_details": {
                "files": [
                    {
                        "name": "README.md",
                        "content": "# Ocean temperatures\n\nOpen `analysis.ipynb` in a JupyterLab "
                        "job (Start → JupyterLab). The data is in `data/`.\n",
                    },
                    {"name": "data/sst_anomalies.csv", "content": SST},
                    {
                        "name": "analysis.ipynb",
                        "content": notebook(
                            [
                                (
                                    "markdown",
                                    "# Sea surface temperature anomalies\n\nA sample notebook "
                                    "of the uws_hub demo: it runs in a job started from this "
                                    "workspace, as the workspace's owner.",
                                ),
                                (
                                    "code",
                                    "import csv\n\nwith open('data/sst_anomalies.csv') as f:\n"
                                    "    rows = [(int(r['year']), float(r['sea_surface_"
                                    "temperature_anomaly_c'])) for r in csv.DictReader(f)]\n"
                                    "warmest = max(rows, key=lambda r: r[1])\n"
                                    "print(f'{len(rows)} years, warmest: {warmest[0]} "
                                    "(+{warmest[1]} °C)')",
                                ),
                            ]
                        ),
                    },
                ]
            },
        }
    ],
    "bob": [
        {
            "name": "paper-draft",
            "description": "Draft of the methods section",
            "default_job_type": "jupyter_lab",
            "workspace_details": {
                "files": [
                    {
                        "name": "draft.md",
                        "content": "# Methods\n\nWe compare yearly anomalies against the "
                        "1990–2003 mean.\n",
                    },
                    {
                        "name": "figures/plot.py",
                        "content": "# make the figures of the paper\nprint('figure 1: done')\n",
                    },
                ]
            },
        }
    ],
}
#: (sender, workspace name, recipient): invitations left pending for the recipient to answer
INVITATIONS = [("alice", "ocean-temperatures", "bob")]


# ---- talking to the hub as a person would ----------------------------------------------------------


class DemoUser:
    """A person logged in through the hub's form, with a short-lived API token."""

    def __init__(self, hub: str, name: str, password: str):
        self.hub, self.name = hub.rstrip("/"), name
        self.session = requests.Session()
        self.session.get(f"{self.hub}/hub/login", timeout=30)
        r = self.session.post(
            f"{self.hub}/hub/login",
            data={"username": name, "password": password, "_xsrf": self._xsrf()},
            allow_redirects=False,
            timeout=30,
        )
        if r.status_code != 302:
            raise RuntimeError(f"demo login of {name} failed: {r.status_code}")
        r = self.session.post(
            f"{self.hub}/hub/api/users/{name}/tokens",
            json={"note": "uws demo: sample workspaces", "expires_in": 600},
            headers={"X-XSRFToken": self._xsrf()},
            timeout=30,
        )
        r.raise_for_status()
        self.token, self.token_id = r.json()["token"], r.json()["id"]

    def _xsrf(self) -> str:
        for cookie in self.session.cookies:
            if cookie.name == "_xsrf" and cookie.path.endswith("/hub/"):
                return cookie.value
        return ""

    def api(self, method: str, path: str, **kw) -> dict:
        r = requests.request(
            method,
            f"{self.hub}/services/uws/api/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
            **kw,
        )
        if r.status_code != 200:
            raise RuntimeError(f"{method} {path} as {self.name}: {r.status_code} {r.text[:300]}")
        return r.json()["data"]

    def close(self) -> None:
        """Revoke the seeding token: the token page shows only what the person made."""
        self.session.delete(
            f"{self.hub}/hub/api/users/{self.name}/tokens/{self.token_id}",
            headers={"X-XSRFToken": self._xsrf()},
            timeout=30,
        )


def seed(hub: str, password: str, marker: Path) -> None:
    """Create the sample workspaces and invitations (once: `marker` records that it was done)."""
    if marker.exists():
        return
    users = {name: DemoUser(hub, name, password) for name in SAMPLES}
    made: dict[tuple[str, str], int] = {}
    for name, workspaces in SAMPLES.items():
        existing = {w["name"]: w["id"] for w in users[name].api("GET", "workspaces/")["workspaces"]}
        for ws in workspaces:
            ws_id = existing.get(ws["name"])
            if ws_id is None:
                ws_id = users[name].api("POST", "workspaces/", json=ws)["workspace"]["id"]
            made[name, ws["name"]] = ws_id
    for sender, ws_name, recipient in INVITATIONS:
        found = users[sender].api("GET", "users/", params={"search": recipient})["users"]
        rid = next(u["id"] for u in found if u["username"] == recipient)
        users[sender].api(
            "POST",
            "shared_workspaces/",
            json={"original_workspace_id": made[sender, ws_name], "shared_user_ids": [rid]},
        )
    for user in users.values():
        user.close()
    marker.write_text(json.dumps({f"{u}/{w}": i for (u, w), i in made.items()}) + "\n")


# ---- the hub process and the port jupyter-server-proxy waits for -------------------------------------


def wait_until_ready(hub: str, proc: subprocess.Popen, timeout: float) -> None:
    """Until the hub and the uws service answer (or the hub exits)."""
    deadline = time.monotonic() + timeout
    urls = [f"{hub}/hub/api", f"{hub}/services/uws/api/status"]
    while urls:
        if proc.poll() is not None:
            raise SystemExit(f"uws demo: the hub exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"uws demo: {urls[0]} did not answer within {timeout:.0f} s")
        try:
            if requests.get(urls[0], timeout=5).status_code == 200:
                urls.pop(0)
                continue
        except requests.RequestException:
            pass
        time.sleep(0.3)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def forward(port: int, target: int, hub: subprocess.Popen) -> int:
    """Serve `port` (localhost), piping each connection to the hub's proxy on `target`, until
    the hub exits or SIGTERM/SIGINT; then stop the hub. Returns the exit status."""

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(_pipe(cr, uw), _pipe(ur, cw))
        for w in (uw, cw):
            w.close()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # jupyter-server-proxy connects to "localhost": IPv4, and IPv6 where the machine has it
    servers = [await asyncio.start_server(handle, "127.0.0.1", port)]
    try:
        servers.append(await asyncio.start_server(handle, "::1", port))
    except OSError:
        pass
    print(f"uws demo: ready on port {port}", flush=True)
    while not stop.is_set() and hub.poll() is None:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    for server in servers:
        server.close()
    return stop_hub(hub)


def stop_hub(hub: subprocess.Popen) -> int:
    if hub.poll() is None:
        hub.terminate()  # the hub stops its jobs (cleanup_servers), the uws service and its proxy
        try:
            hub.wait(60)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()
    return hub.returncode or 0


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True, help="the port to serve the demo on")
    p.add_argument(
        "--base-url", default="/uws-demo/", help="the path prefix the demo is reached at"
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the hub")
    args = p.parse_args(argv)
    if os.geteuid() == 0:
        raise SystemExit("uws demo: refusing to run as root (it is a single-account demo)")
    base_url = "/" + args.base_url.strip("/") + "/"
    data = Path(os.environ.get("UWS_DEMO_DATA") or Path.home() / ".uws-demo").resolve()
    data.mkdir(parents=True, exist_ok=True)
    password = os.environ.get("UWS_DEV_PASSWORD") or DEFAULT_PASSWORD
    # until the forwarding loop takes over, SIGTERM must still stop the hub (SystemExit below)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    hub_port, api_port, proxy_api_port, service_port = free_ports(4, "127.0.0.1")
    bindir = os.path.dirname(sys.executable)
    # the Binder session's own JupyterHub settings (its server is a hub's single-user server)
    # must not leak into the demo hub, its service or its jobs
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}
    env.update(
        PATH=bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        UWS_DATA_DIR=str(data),
        UWS_DEMO_BASE_URL=base_url,
        UWS_DEV_PASSWORD=password,
        UWS_HUB_IP="127.0.0.1",
        UWS_HUB_PORT=str(hub_port),
        UWS_HUB_API_PORT=str(api_port),
        UWS_PROXY_API_PORT=str(proxy_api_port),
        UWS_SERVICE_PORT=str(service_port),
    )
    hub = subprocess.Popen(
        [os.path.join(bindir, "jupyterhub"), "-f", str(HERE / "jupyterhub_config.py")],
        cwd=data,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{hub_port}{base_url}".rstrip("/")
        wait_until_ready(url, hub, args.timeout)
        try:
            seed(url, password, data / "hub" / "demo-seeded.json")
        except Exception as e:  # the demo still works without its samples: say so, go on
            print(f"uws demo: could not create the sample workspaces: {e}", file=sys.stderr)
    except BaseException:
        stop_hub(hub)
        raise
    return asyncio.run(forward(args.port, hub_port, hub))


if __name__ == "__main__":
    sys.exit(main())
