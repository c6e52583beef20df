"""``uws-job-singleuser``: start a job's server on a free port and tell the hub which.

batchspawner's ``batchspawner-singleuser`` does the same, but imports ``requests`` and
JupyterHub's auth module first (about a second on a busy node) and then runs the command with
``runpy`` — which only works for Python scripts. This wrapper uses only the standard library
and ``exec``s the command, so any job type command works and the server starts sooner.

    uws-job-singleuser jupyterhub-singleuser [args...]
"""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse, urlunparse


def _candidate_ports() -> range:
    """The ports below the kernel's ephemeral range (from 10000, or 1024 if it starts low)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return range(10000 if low > 12000 else 1024, low)


def free_port(host: str = "", exclude: frozenset[int] | set[int] = frozenset()) -> int:
    """A port nothing is bound to, chosen below the kernel's ephemeral port range.

    A port from ``bind(0)`` comes from the range the kernel also hands to outgoing
    connections, so in the moment between choosing it and the server binding it any
    connection on the host can take it, and the server then cannot start (seen with busy
    test hubs). Ports below that range are only ever taken by servers asking for them, and
    the check below skips those, and those in `exclude`. Falls back to ``bind(0)`` when no
    such port is found.
    """
    candidates = _candidate_ports()
    for port in random.SystemRandom().sample(candidates, min(200, len(candidates))):
        if port in exclude:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(count: int, host: str = "") -> list[int]:
    """``count`` different free ports (see free_port)."""
    ports: list[int] = []
    for _ in range(count + 20):
        if (port := free_port(host, set(ports))) not in ports:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise OSError(f"could not find {count} free ports")


def report_port(port: int) -> None:
    """POST {"port": port} to the hub's batchspawner API with the server's own token."""
    url = os.environ["JUPYTERHUB_API_URL"].rstrip("/") + "/batchspawner"
    req = urllib.request.Request(
        url,
        data=json.dumps({"port": port}).encode(),
        headers={
            "Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    context = None
    if os.environ.get("JUPYTERHUB_SSL_CERTFILE"):  # internal_ssl
        context = ssl.create_default_context(cafile=os.environ.get("JUPYTERHUB_SSL_CLIENT_CA"))
        context.load_cert_chain(
            os.environ["JUPYTERHUB_SSL_CERTFILE"], os.environ["JUPYTERHUB_SSL_KEYFILE"]
        )
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as resp:
                resp.read()
                return
        except urllib.error.HTTPError as e:
            sys.exit(
                f"uws-job-singleuser: the hub refused the port report ({e.code}): {e.read()[:200]!r}"
            )
        except OSError as e:
            if attempt == 4:
                sys.exit(f"uws-job-singleuser: cannot reach the hub at {url}: {e}")
            time.sleep(1 + attempt)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: uws-job-singleuser COMMAND [ARGS...]")
    port = free_port()
    report_port(port)
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if service_url:
        url = urlparse(service_url)
        os.environ["JUPYTERHUB_SERVICE_URL"] = urlunparse(
            url._replace(netloc=f"{url.hostname}:{port}")
        )
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
