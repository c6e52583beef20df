"""Rescans in a child process: `fsops.scan` of a workspace run by ``python -m
uws_hub.workspaces.scanproc``, at a lower CPU and I/O priority.

A rescan walks a whole tree (tens of thousands of entries for a big workspace), and the
service rescans workspaces with running jobs periodically (`workspaces.rescans`). Done in the
service's own threads, that walk holds the interpreter lock for most of its time, and the API's
requests wait behind it (measured: bench P10). In a child the walk competes only for a CPU
core, and at ``nice`` 10 and the lowest best-effort I/O priority it yields to the API. The child gets the
workspace's open directory descriptor (opened by the service, link-safe, as every operation
opens it), runs as the service does (root: disk usage counts everything, like ``du``), and
prints the result as JSON.

Changes made through the API still scan in the service (small, and the answer needs the result
at once); only rescans come here. A periodic rescan of a workspace whose job is still running
first asks ``du`` alone (`du_total`, about a seventh of a full scan's CPU): when the total is
the one recorded, nothing was written since and the listing is not read again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import asdict

from . import fsops

#: seconds a child may take before it is killed (and the rescan retried later)
TIMEOUT = 3600
_IONICE = "/usr/bin/ionice"
#: the children running now (each the leader of its own process group, with its du)
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def _low_priority(cmd: list[str]) -> list[str]:
    """`cmd` at the lowest best-effort I/O priority (not the idle class: a disk kept busy by
    a job must not starve the rescan that counts what the job writes)."""
    return [_IONICE, "-c", "2", "-n", "7", *cmd] if os.access(_IONICE, os.X_OK) else cmd


def _run_child(cmd: list[str], ws_fd: int, env: dict | None = None) -> tuple[int, bytes, bytes]:
    """Run `cmd` with `ws_fd` passed, in a process group of its own; the whole group is
    killed on timeout, on any failure here and by `kill_all` (the service stopping)."""
    proc = subprocess.Popen(
        cmd,
        pass_fds=(ws_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    with _children_lock:
        _children.add(proc)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out, err
    except BaseException:
        _kill(proc)
        raise
    finally:
        with _children_lock:
            _children.discard(proc)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()


def kill_all() -> None:
    """Kill every scan child still running, with its du (the service is stopping)."""
    with _children_lock:
        running = list(_children)
    for proc in running:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def scan_in_child(ws_fd: int, list_limit: int, owner_uid: int | None) -> fsops.ScanResult:
    """`fsops.scan(ws_fd, list_limit, owner_uid)`, done by a child process (blocking: call
    from a thread). Raises fsops.StorageError when the child fails."""
    cmd = [sys.executable, "-m", __name__, str(ws_fd), str(list_limit), str(owner_uid or -1)]
    try:
        code, out, err = _run_child(_low_priority(cmd), ws_fd)
    except subprocess.TimeoutExpired as e:
        raise fsops.StorageError(f"Reading the workspace took longer than {TIMEOUT} s.") from e
    except OSError as e:  # the child could not start
        raise fsops.StorageError(f"Reading the workspace failed: {e}") from e
    if code != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise fsops.StorageError(f"Reading the workspace failed: {last}")
    return fsops.ScanResult(**json.loads(out))


def du_total(ws_fd: int) -> int | None:
    """Allocated bytes of the tree under `ws_fd` as GNU ``du -s`` counts them (what a scan
    records as ``disk_space``), at the same low priority; None when du gives no clean total.
    Blocking: call from a thread."""
    cmd = ["nice", "-n", "10", fsops.DU or "du", "-s", "-D", "--block-size=1"]
    cmd.append(f"/proc/self/fd/{ws_fd}")
    try:
        code, out, _ = _run_child(
            _low_priority(cmd), ws_fd, {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}
        )
        return int(out.split()[0]) if code == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
        return None


def main(argv: list[str]) -> int:
    fd, list_limit, owner_uid = (int(a) for a in argv)
    os.nice(10)  # the API first (du, started by the scan for big trees, inherits it)
    result = fsops.scan(fd, list_limit, None if owner_uid < 0 else owner_uid)
    json.dump(asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
