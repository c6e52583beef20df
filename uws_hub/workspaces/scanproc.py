"""Rescans in a child process: `fsops.scan` of a workspace run by ``python -m
uws_hub.workspaces.scanproc``, at a lower CPU and I/O priority.

A rescan walks a whole tree (tens of thousands of entries for a big workspace), and the
service rescans workspaces with running jobs periodically (`workspaces.rescans`). Done in the
service's own threads, that walk holds the interpreter lock for most of its time, and the API's
requests wait behind it (measured: bench P10). In a child the walk competes only for a CPU
core, and at ``nice`` 10 and the ``idle`` I/O class it yields to the API. The child gets the
workspace's open directory descriptor (opened by the service, link-safe, as every operation
opens it), runs as the service does (root: disk usage counts everything, like ``du``), and
prints the result as JSON.

Changes made through the API still scan in the service (small, and the answer needs the result
at once); only rescans come here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

from . import fsops

#: seconds a child may take before it is killed (and the rescan retried later)
TIMEOUT = 3600
_IONICE = "/usr/bin/ionice"


def scan_in_child(ws_fd: int, list_limit: int, owner_uid: int | None) -> fsops.ScanResult:
    """`fsops.scan(ws_fd, list_limit, owner_uid)`, done by a child process (blocking: call
    from a thread). Raises fsops.StorageError when the child fails."""
    cmd = [sys.executable, "-m", __name__, str(ws_fd), str(list_limit), str(owner_uid or -1)]
    if os.access(_IONICE, os.X_OK):
        cmd = [_IONICE, "-c", "3", *cmd]  # idle I/O class: the API's reads go first
    try:
        proc = subprocess.run(
            cmd,
            pass_fds=(ws_fd,),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise fsops.StorageError(f"Reading the workspace took longer than {TIMEOUT} s.") from e
    except OSError as e:  # the child could not start
        raise fsops.StorageError(f"Reading the workspace failed: {e}") from e
    if proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise fsops.StorageError(f"Reading the workspace failed: {last}")
    return fsops.ScanResult(**json.loads(proc.stdout))


def main(argv: list[str]) -> int:
    fd, list_limit, owner_uid = (int(a) for a in argv)
    os.nice(10)  # the API first (du, started by the scan for big trees, inherits it)
    result = fsops.scan(fd, list_limit, None if owner_uid < 0 else owner_uid)
    json.dump(asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
