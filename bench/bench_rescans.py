#!/usr/bin/env python3
"""bench P10, periodic rescans: what keeping workspaces with running jobs true to disk costs.

A real hub (npm proxy, uws service on SQLite) is started with the default
``c.UWS.rescan_interval`` (300 s) and ``c.UWS.rescan_concurrency`` (2). W workspaces (default
100, spread over U real accounts) each get F files (default 10,000, in 100 folders, written as
the owner) and a running job (``test_job`` on ``local``). Then, for T seconds each:

- **idle**: C clients (default 8) call the API back to back — ``GET /workspaces/<id>/`` (their
  own) and ``GET /workspaces/`` in turn — while no scan is due;
- **rescan cycle**: the same load while every workspace is due for its periodic rescan (their
  ``datetime_scanned`` is set back in the database: the service's own rescans loop finds them
  within 5 s and scans them as when the interval passes: a few per pass, spread over the
  interval, at most 2 at once). Latencies count from the first scan to the last.

Every workspace is scanned once before the clock starts (its listing holds its files), so the
cycle is the steady state: jobs running, files unchanged since the last scan.

Printed: p50/p95 latency of each phase and the ratio p95(cycle) / p95(idle) (goal <= 1.2), how
long the cycle took, how many workspaces it scanned, and the uws service's CPU seconds per
cycle (and per workspace) against ``du -s`` of the same trees. The load runs in this process's
threads, the scans in the service: on 2 cores they compete for the CPU, not for the service's
GIL, as long as the byte counting of large trees stays in ``du`` (see workspaces/fsops.scan).

    python bench/bench_rescans.py [--workspaces 100] [--files 10000] [--users 10]
                                  [--clients 8] [--duration 20] [--concurrency 2] [--quick]

``--quick`` (tests/e2e/test_benches.py): 4 workspaces of 300 files, 2 users, 3 s.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from benchnames import heading  # noqa: E402
from hubtest import HubProcess, ensure_system_user  # noqa: E402

API = "/services/uws/api"

FILL = """
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(100):
    os.mkdir(os.path.join(root, f"d{d:02}"))
for i in range(n):
    with open(os.path.join(root, f"d{i % 100:02}", f"f{i:05}.dat"), "wb") as f:
        f.write(b"x" * (100 + i % 3000))
"""


def args_parsed():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workspaces", type=int, default=100)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=2, help="c.UWS.rescan_concurrency")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.workspaces, a.files, a.users, a.duration = 4, 300, 2, 3.0
    return a


def session(hub: HubProcess, user: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {hub.token_for(user)}"
    return s


def setup(hub: HubProcess, a) -> list[tuple[requests.Session, int]]:
    """W workspaces with F files each and a running job; returns (the owner's session, id)."""
    users = [f"uwsb-scan{i}" for i in range(a.users)]
    for u in users:
        ensure_system_user(u)
    sessions = {u: session(hub, u) for u in users}
    made: list[tuple[requests.Session, int]] = []
    t0 = time.monotonic()
    for i in range(a.workspaces):
        u = users[i % len(users)]
        r = sessions[u].post(
            hub.url + API + "/workspaces/", json={"name": f"w{i}", "description": "b"}
        )
        r.raise_for_status()
        ws = r.json()["data"]["workspace"]
        path = hub.root / u / str(ws["id"])
        subprocess.run(
            ["runuser", "-u", u, "--", "/usr/bin/python3", "-c", FILL, str(path), str(a.files)],
            check=True,
        )
        made.append((sessions[u], ws["id"]))
    print(f"  {a.workspaces} workspaces × {a.files} files written in {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    for s, ws_id in made:
        r = s.put(
            f"{hub.url}{API}/workspaces/{ws_id}/start/",
            json={"job_type": "test_job", "resource": "local"},
        )
        r.raise_for_status()
    for s, ws_id in made:
        wait_running(hub, s, ws_id)
    print(f"  {a.workspaces} jobs running after {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    for s, ws_id in made:  # what the files hold is known before the clock starts
        s.put(f"{hub.url}{API}/workspaces/{ws_id}/scan/").raise_for_status()
    print(f"  first scans (10,000-entry listings recorded) in {time.monotonic() - t0:.1f} s")
    return made


def wait_running(hub: HubProcess, s: requests.Session, ws_id: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = s.get(f"{hub.url}{API}/jobs/", params={"workspace_id": ws_id}).json()["data"]["jobs"]
        if jobs and jobs[-1]["status"] == "running":
            return
        if jobs and jobs[-1]["status"] in ("failed", "complete"):
            raise SystemExit(f"the job of workspace {ws_id} ended: {jobs[-1]}")
        time.sleep(0.5)
    raise SystemExit(f"the job of workspace {ws_id} did not start within {timeout} s")


def load(hub: HubProcess, made, clients: int, until: callable) -> list[tuple[float, float]]:
    """(when it began, latency) of back-to-back API calls by `clients` threads while
    `until()` is false (monotonic seconds)."""
    lat: list[tuple[float, float]] = []
    errors: list[str] = []

    def client(k: int) -> None:
        s, ws_id = made[k % len(made)]
        n = 0
        while not until():
            url = (
                f"{hub.url}{API}/workspaces/{ws_id}/"
                if n % 2 == 0
                else f"{hub.url}{API}/workspaces/"
            )
            began, t = time.monotonic(), time.perf_counter()
            r = s.get(url)
            lat.append((began, time.perf_counter() - t))
            if r.status_code != 200:
                errors.append(f"{r.status_code} {url}")
            n += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} errors, e.g. {errors[:3]}")
    return lat


def scanned_after(db: Path, ids: list[int], t0_text: str) -> int:
    with sqlite3.connect(db) as c:
        q = f"SELECT count(*) FROM uws_workspaces WHERE id IN ({','.join('?' * len(ids))}) AND datetime_scanned > ?"
        return c.execute(q, (*ids, t0_text)).fetchone()[0]


def cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of process `pid` itself, of its children that ended: its scans and their
    du), user + system."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) >= 2 else values[0]


def du_seconds(hub: HubProcess, made) -> float:
    t = time.perf_counter()
    for _, ws_id in made:
        subprocess.run(
            ["du", "-s", *[str(p) for p in hub.root.glob(f"*/{ws_id}")]],
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - t


def measure(hub: HubProcess, made, a) -> None:
    service = hub.service_pids()[0]
    cpu_before, start = cpu(service), time.monotonic()
    end = start + a.duration
    idle = [lat for _, lat in load(hub, made, a.clients, lambda: time.monotonic() > end)]
    idle_cpu, idle_len = cpu(service)[0] - cpu_before[0], time.monotonic() - start
    ids = [ws_id for _, ws_id in made]
    db = hub.dir / "uws.sqlite"
    with sqlite3.connect(db) as c:  # every workspace due for its periodic rescan
        t0_text = c.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").fetchone()[0]
        c.execute(
            f"UPDATE uws_workspaces SET datetime_scanned = '2000-01-01 00:00:00' WHERE id IN ({','.join('?' * len(ids))})",
            ids,
        )
    cpu0, t0 = cpu(service), time.monotonic()
    marks: dict[str, float] = {}  # first: the first scan recorded; done: the last one

    def watch() -> None:  # the cycle's start and end, from the database
        while "done" not in marks:
            n = scanned_after(db, ids, t0_text)
            if n and "first" not in marks:
                marks["first"] = time.monotonic()
            if n == len(ids):
                marks["done"] = time.monotonic()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    recs = load(
        hub, made, a.clients, lambda: "done" in marks and time.monotonic() > marks["done"] + 1
    )
    watcher.join()
    cpu1, busy_len = cpu(service), time.monotonic() - t0
    # only the requests made while the scans ran (not the wait for the loop to find them due)
    busy = [lat for began, lat in recs if marks["first"] - 0.5 <= began <= marks["done"]]
    own_cpu, scans_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    took = marks["done"] - marks["first"]
    du = du_seconds(hub, made)
    print(
        heading(
            "P10",
            f"{len(made)} workspaces × {a.files} files with running jobs, {a.clients} clients",
        )
    )
    for name, lat in (("idle", idle), ("rescan cycle", busy)):
        print(
            f"  {name:13s} {len(lat):6d} requests  p50 {pct(lat, 50) * 1000:7.1f} ms  p95 {pct(lat, 95) * 1000:7.1f} ms"
        )
    print(f"  p95 ratio (cycle / idle): {pct(busy, 95) / pct(idle, 95):.2f}  (goal <= 1.2)")
    print(
        f"  cycle: {len(ids)} workspaces rescanned in {took:.1f} s (found due "
        f"{marks['first'] - t0:.1f} s after they became due; latencies above: while it ran)"
    )
    print(
        f"  service CPU: {idle_cpu / idle_len:.2f} s/s idle ({len(idle) / idle_len:.0f} requests/s), "
        f"{own_cpu / busy_len:.2f} s/s during the cycle phase ({len(recs) / busy_len:.0f} requests/s)"
    )
    print(
        f"  the cycle's scans (child processes, with their du): {scans_cpu:.2f} s CPU, "
        f"{scans_cpu / len(ids) * 1000:.0f} ms per workspace"
    )
    print(f"  du -s of the same trees, one after another: {du:.2f} s")


def stop_jobs(hub: HubProcess, made) -> None:
    """Stop every job of the bench and wait for them to end (outside the figures)."""
    live = []
    for s, ws_id in made:
        for j in s.get(f"{hub.url}{API}/jobs/", params={"workspace_id": ws_id}).json()["data"][
            "jobs"
        ]:
            if j["status"] in ("pending", "running"):
                s.put(f"{hub.url}{API}/jobs/{j['id']}/stop/")
                live.append((s, j["id"]))
    deadline = time.monotonic() + 120
    for s, job_id in live:
        while time.monotonic() < deadline:
            status = s.get(f"{hub.url}{API}/jobs/{job_id}/").json()["data"]["jobs"][0]["status"]
            if status in ("complete", "failed"):
                break
            time.sleep(0.5)


def main() -> None:
    a = args_parsed()
    extra = f"c.UWS.rescan_interval = 300\nc.UWS.rescan_concurrency = {a.concurrency}\n"
    hub = HubProcess(name="bench-rescans", env={"UWS_TEST_EXTRA_CONFIG": extra})
    try:
        hub.start()
        made = setup(hub, a)
        try:
            measure(hub, made, a)
        finally:
            stop_jobs(hub, made)
    finally:
        hub.stop()
        hub.cleanup()


if __name__ == "__main__":
    main()
