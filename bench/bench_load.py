#!/usr/bin/env python3
"""bench P12, mixed load: N clients for T s on the uws API against the hub's GET /hub/api/user.

A real hub (npm proxy, uws service on SQLite, the production token cache of 60 s) is started.
N clients (default 200), each with its own token, spread over U users (default 20), run a mix of
uws requests through the proxy for T seconds (default 60), back to back, no think time:

- list their workspaces (``GET /workspaces/``) — weight 40;
- get their own workspace (``GET /workspaces/<id>/``) — weight 25;
- get another user's workspace (``GET /workspaces/<id>/``, an empty answer expected) — weight 5;
- create a workspace, then delete it (``POST /workspaces/`` then ``DELETE /workspaces/<id>/``)
  — weight 15;
- a job cycle on their own workspace (``test_job`` on resource ``local``): start
  (``PUT /workspaces/<id>/start/``), follow (``GET /jobs/<id>/``) until running with connection
  details, stop after ``--hold`` seconds (``PUT /jobs/<id>/stop/``), follow until it has ended
  — weight 15; at most ``--max-jobs`` jobs live at once (beyond that a client lists instead).

Then the same N clients with the same tokens call the hub's own ``GET /hub/api/user`` for T
seconds (with ``--rounds R`` the two phases alternate R times, the order alternating too).

Printed for each: requests/s, p50/p95/p99 latency, errors (a status the mix did not expect, a
connection error or timeout, a job that failed or ended unasked; 429s are also counted on their
own), per-operation latencies for uws, the CPU time the hub, the uws service, the proxy and this
script spent per request in each phase, and the ratio p99(uws) / p99(hub) (goal <= 1.5; goal:
0 errors). Exits 1 if there were errors. Jobs still live after the uws phase are stopped and
awaited outside the timed figures. Otherwise the hub runs tests/e2e/hub_config.py's settings (e.g.
``job_orphan_grace`` 5 s). Traffic goes to 127.0.0.1 only; the number of clients, the duration
and the live jobs are bounded.

    python bench/bench_load.py [--clients 200] [--users 20] [--duration 60] [--rounds 1]
                               [--max-jobs 20] [--hold 2] [--mix job=0,...] [--quick]

``--quick`` (tests/e2e/test_benches.py): 20 clients, 5 users, 5 s, 4 jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import HubProcess  # noqa: E402

API = "/services/uws/api"
MIX = {"list": 40, "get": 25, "get_other": 5, "create_delete": 15, "job": 15}


@dataclass
class Phase:
    """What one target's clients saw."""

    latencies: list[float] = field(default_factory=list)
    by_op: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    too_many: int = 0  # 429s (also counted as errors)
    seconds: float = 0.0
    jobs_started: int = 0
    jobs_ended: int = 0
    cpu: Counter = field(default_factory=Counter)  # CPU seconds of the hub's processes


@dataclass
class ClientState:
    index: int
    user: str
    token: str
    home: int  # the client's own workspace id
    other: int = 0  # a workspace of another user (an empty answer expected)
    job: int | None = None
    job_status: str = ""
    running_since: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hub_processes(hub: HubProcess) -> dict[str, int]:
    """The processes serving the requests: the hub, the uws service, the proxy."""
    procs = {"hub": hub.proc.pid}
    for pid in hub.service_pids():
        procs["uws service"] = pid
    try:
        procs["proxy"] = int((hub.dir / "proxy.pid").read_text())
    except (OSError, ValueError):
        pass
    return procs


class Load:
    def __init__(self, base: str, clients: list[ClientState], args, procs: dict[str, int]) -> None:
        self.procs = procs
        self.base = base
        self.clients = clients
        self.args = args
        self.http = AsyncHTTPClient(force_instance=True, max_clients=len(clients) + 8)
        self.live_jobs = 0
        self.rng = random.Random(12)
        self.mix = {**MIX, **args.mix}

    async def call(
        self,
        phase: Phase,
        c: ClientState,
        op: str,
        method: str,
        path: str,
        expect: tuple[int, ...] = (200,),
        body: dict | None = None,
    ) -> dict | None:
        """One timed request; returns the JSON answer when the status was expected."""
        req = HTTPRequest(
            self.base + path,
            method=method,
            headers={"Authorization": f"token {c.token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else (b"{}" if method == "PUT" else None),
            allow_nonstandard_methods=True,
            connect_timeout=60,
            request_timeout=60,
        )
        t0 = time.perf_counter()
        resp = await self.http.fetch(req, raise_error=False)
        dt = time.perf_counter() - t0
        phase.latencies.append(dt)
        phase.by_op[op].append(dt)
        phase.statuses[resp.code] += 1
        if resp.code not in expect:
            if resp.code == 429:
                phase.too_many += 1
            what = str(resp.error) if resp.code == 599 else (resp.body or b"")[:200].decode()
            phase.errors.append(f"{method} {path} -> {resp.code} (client {c.index}): {what}")
            return None
        try:
            return json.loads(resp.body) if resp.body else {}
        except ValueError:
            phase.errors.append(f"{method} {path} -> {resp.code}: not JSON")
            return None

    # ---- the uws mix ----------------------------------------------------------------

    async def job_step(self, phase: Phase, c: ClientState) -> None:
        if c.job is None:
            if self.live_jobs >= self.args.max_jobs:
                await self.call(phase, c, "list", "GET", f"{API}/workspaces/")
                return
            self.live_jobs += 1
            ans = await self.call(
                phase,
                c,
                "job_start",
                "PUT",
                f"{API}/workspaces/{c.home}/start/",
                body={"job_type": "test_job", "resource": "local"},
            )
            if ans is None:
                self.live_jobs -= 1
                return
            c.job, c.job_status = ans["data"]["job"]["id"], ans["data"]["job"]["status"]
            phase.jobs_started += 1
            return
        if c.job_status == "running" and time.monotonic() - c.running_since >= self.args.hold:
            if await self.call(phase, c, "job_stop", "PUT", f"{API}/jobs/{c.job}/stop/"):
                c.job_status = "stopping"
            return
        ans = await self.call(phase, c, "job_get", "GET", f"{API}/jobs/{c.job}/")
        if ans is None:
            return
        job = ans["data"]["jobs"][0]
        status = job["status"]
        if status == "running" and c.job_status != "running":
            details = (job.get("job_details") or {}).get("current_job_details") or {}
            if not details.get("connection_details"):
                phase.errors.append(f"job {c.job} running without connection details: {job}")
            c.running_since = time.monotonic()
        if status in ("complete", "failed"):
            if status == "failed" or c.job_status != "stopping":
                phase.errors.append(f"job {c.job} ended unasked ({status}): {job}")
            c.job, c.job_status = None, ""
            self.live_jobs -= 1
            phase.jobs_ended += 1
            return
        c.job_status = status

    async def uws_op(self, phase: Phase, c: ClientState) -> None:
        op = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        if op == "list":
            await self.call(phase, c, op, "GET", f"{API}/workspaces/")
        elif op == "get":
            await self.call(phase, c, op, "GET", f"{API}/workspaces/{c.home}/")
        elif op == "get_other":
            # as UWS: 200 with an empty list (nothing of the caller's has that id)
            ans = await self.call(phase, c, op, "GET", f"{API}/workspaces/{c.other}/")
            if ans is not None and ans.get("data", {}).get("workspaces"):
                phase.errors.append(f"GET workspaces/{c.other}/: another user's workspace shown")
        elif op == "create_delete":
            ans = await self.call(
                phase,
                c,
                "create",
                "POST",
                f"{API}/workspaces/",
                body={"name": f"load-{c.index}", "description": "bench_load"},
            )
            if ans is not None:
                ws = ans["data"]["workspace"]["id"]
                await self.call(phase, c, "delete", "DELETE", f"{API}/workspaces/{ws}/")
        else:
            await self.job_step(phase, c)

    async def hub_op(self, phase: Phase, c: ClientState) -> None:
        await self.call(phase, c, "hub_user", "GET", "/hub/api/user")

    async def run(self, target: str, seconds: float) -> Phase:
        phase = Phase()
        op = self.uws_op if target == "uws" else self.hub_op
        t0 = time.perf_counter()
        end = t0 + seconds
        cpu0 = {name: cpu_seconds(pid) for name, pid in self.procs.items()}
        cpu0["bench client"] = time.process_time()

        async def client(c: ClientState) -> None:
            while time.perf_counter() < end:
                try:
                    await op(phase, c)
                except Exception as e:  # a bug of the mix or a malformed answer: an error
                    phase.errors.append(f"client {c.index}: {type(e).__name__}: {e}")
                if self.args.think:
                    await asyncio.sleep(self.args.think)

        await asyncio.gather(*(client(c) for c in self.clients))
        phase.seconds = time.perf_counter() - t0
        for name, pid in self.procs.items():
            phase.cpu[name] = cpu_seconds(pid) - cpu0[name]
        phase.cpu["bench client"] = time.process_time() - cpu0["bench client"]
        return phase

    async def end_jobs(self, phase: Phase, timeout: float = 120) -> None:
        """Stop the jobs still live and wait until they have ended. Not timed into the figures:
        only the errors and ended jobs are added to the phase."""
        after = Phase()
        deadline = time.monotonic() + timeout

        async def finish(c: ClientState) -> None:
            if c.job is None:
                return
            if c.job_status in ("pending", "running"):
                if await self.call(after, c, "job_stop", "PUT", f"{API}/jobs/{c.job}/stop/"):
                    c.job_status = "stopping"
                return
            await self.job_step(after, c)

        while any(c.job is not None for c in self.clients):
            if time.monotonic() > deadline:
                left = [c.job for c in self.clients if c.job is not None]
                after.errors.append(f"jobs not ended {timeout}s after the phase: {left}")
                break
            await asyncio.gather(*(finish(c) for c in self.clients))
            await asyncio.sleep(0.25)
        phase.errors += after.errors
        phase.too_many += after.too_many
        phase.jobs_ended += after.jobs_ended

    async def warm(self) -> None:
        """One request per client and target first: tokens checked and cached, code paths warm."""
        phase = Phase()
        await asyncio.gather(*(self.hub_op(phase, c) for c in self.clients))
        await asyncio.gather(
            *(self.call(phase, c, "list", "GET", f"{API}/workspaces/") for c in self.clients)
        )
        if phase.errors:
            raise RuntimeError("warm-up failed: " + "; ".join(phase.errors[:5]))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else 0.0


def merge(phases: list[Phase]) -> Phase:
    out = Phase()
    for p in phases:
        out.latencies += p.latencies
        for k, v in p.by_op.items():
            out.by_op[k] += v
        out.statuses.update(p.statuses)
        out.errors += p.errors
        out.too_many += p.too_many
        out.seconds += p.seconds
        out.jobs_started += p.jobs_started
        out.jobs_ended += p.jobs_ended
        out.cpu.update(p.cpu)
    return out


def setup_clients(hub: HubProcess, n: int, users: int) -> list[ClientState]:
    names = [f"uwst-load{u:02d}" for u in range(users)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hub.ensure_user, names))

    def one(i: int) -> ClientState:
        user = names[i % users]
        token = hub.token_for(user, note=f"bench_load client {i}")
        r = requests.post(
            f"{hub.url}{API}/workspaces/",
            headers={"Authorization": f"token {token}"},
            json={"name": f"home-{i}", "description": "bench_load client's own workspace"},
            timeout=60,
        )
        r.raise_for_status()
        return ClientState(i, user, token, r.json()["data"]["workspace"]["id"])

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(one, range(n)))
    for c in clients:  # a workspace of another user (the next user's first client)
        c.other = next(o.home for o in clients if o.user != c.user) if users > 1 else 10**9
    return clients


def describe(name: str, p: Phase) -> str:
    n = len(p.latencies)
    return (
        f"  {name}: {n} requests in {p.seconds:.1f} s = {n / p.seconds if p.seconds else 0:7.1f} req/s"
        f"   p50 {pct(p.latencies, 0.5) * 1000:7.1f} ms   p95 {pct(p.latencies, 0.95) * 1000:7.1f} ms"
        f"   p99 {pct(p.latencies, 0.99) * 1000:7.1f} ms   errors {len(p.errors)}"
        f" (429s: {p.too_many})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60, help="seconds per target per round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-jobs", type=int, default=20, help="live jobs at most at once")
    ap.add_argument("--hold", type=float, default=2.0, help="seconds a running job is kept")
    ap.add_argument("--think", type=float, default=0.0, help="seconds between a client's calls")
    ap.add_argument(
        "--mix",
        type=lambda v: {k: int(w) for k, w in (kv.split("=") for kv in v.split(",") if kv)},
        default={},
        help="change weights, e.g. job=0 (default: "
        + ",".join(f"{k}={w}" for k, w in MIX.items())
        + ")",
    )
    ap.add_argument("--quick", action="store_true", help="20 clients, 5 users, 5 s, 4 jobs")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.users, args.duration, args.max_jobs = 20, 5, 5.0, 4
    # bounded: this runs against a hub on this machine only
    if not (1 <= args.clients <= 1000 and 0 < args.duration <= 600 and 1 <= args.rounds <= 10):
        ap.error("--clients 1..1000, --duration up to 600 s, --rounds 1..10")
    args.users = max(1, min(args.users, args.clients))

    hub = HubProcess(name="benchload", env={"UWS_TEST_TOKEN_CACHE": "60"}).start()
    try:
        t0 = time.perf_counter()
        clients = setup_clients(hub, args.clients, args.users)
        t_setup = time.perf_counter() - t0

        async def go() -> tuple[Phase, Phase]:
            load = Load(hub.url, clients, args, hub_processes(hub))
            await load.warm()
            uws, hubp = [], []
            for r in range(args.rounds):
                for target in ("uws", "hub") if r % 2 == 0 else ("hub", "uws"):
                    phase = await load.run(target, args.duration)
                    if target == "uws":
                        await load.end_jobs(phase)
                        uws.append(phase)
                    else:
                        hubp.append(phase)
            load.http.close()
            return merge(uws), merge(hubp)

        uws, hubp = asyncio.run(go())
    finally:
        hub.stop()
        hub.cleanup()

    print(
        heading(
            "P12",
            f"{args.clients} clients ({args.users} users, a token each) for "
            f"{args.duration:g} s per target x {args.rounds} round(s), through the proxy "
            f"(setup {t_setup:.1f} s)",
        )
    )
    print(describe("uws mix          ", uws))
    print(describe("hub GET /api/user", hubp))
    for op in ("list", "get", "get_other", "create", "delete", "job_start", "job_get", "job_stop"):
        v = uws.by_op.get(op, [])
        if v:
            print(
                f"    uws {op:<10} {len(v):6d} requests   p50 {pct(v, 0.5) * 1000:7.1f} ms"
                f"   p95 {pct(v, 0.95) * 1000:7.1f} ms   p99 {pct(v, 0.99) * 1000:7.1f} ms"
            )
    print(
        f"  jobs: {uws.jobs_started} started, {uws.jobs_ended} ended; statuses: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(uws.statuses.items()))
    )
    for name, p in (("uws mix", uws), ("hub /api/user", hubp)):
        n = max(1, len(p.latencies))
        print(
            f"  CPU per request during {name}: "
            + ", ".join(f"{k} {v / n * 1000:.2f} ms" for k, v in p.cpu.items())
            + f"   (machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} now)"
        )
    r99 = pct(uws.latencies, 0.99) / pct(hubp.latencies, 0.99)
    r50 = pct(uws.latencies, 0.5) / pct(hubp.latencies, 0.5)
    print(f"  ratio: p99 {r99:.2f}   p50 {r50:.2f}   (uws / hub; goal p99 <= 1.5)")
    # job starts and stops wait for the hub to accept the spawn or stop: without them
    quick = [x for op, v in uws.by_op.items() if op not in ("job_start", "job_stop") for x in v]
    q99 = pct(quick, 0.99) / pct(hubp.latencies, 0.99)
    q50 = pct(quick, 0.5) / pct(hubp.latencies, 0.5)
    print(
        f"  ratio without job start/stop requests: p99 {q99:.2f}   p50 {q50:.2f}"
        f"   (uws p99 {pct(quick, 0.99) * 1000:.1f} ms over {len(quick)} requests)"
    )
    errors = uws.errors + hubp.errors
    print(f"  errors: {len(errors)}   (goal 0)")
    for e in errors[:10]:
        print(f"    {e}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "clients": args.clients,
                    "users": args.users,
                    "duration": args.duration,
                    "rounds": args.rounds,
                    "uws": {
                        "requests": len(uws.latencies),
                        "rps": len(uws.latencies) / uws.seconds,
                        **{f"p{q}_ms": pct(uws.latencies, q / 100) * 1000 for q in (50, 95, 99)},
                        "errors": len(uws.errors),
                        "too_many": uws.too_many,
                        "by_op_p99_ms": {k: pct(v, 0.99) * 1000 for k, v in uws.by_op.items()},
                    },
                    "hub": {
                        "requests": len(hubp.latencies),
                        "rps": len(hubp.latencies) / hubp.seconds,
                        **{f"p{q}_ms": pct(hubp.latencies, q / 100) * 1000 for q in (50, 95, 99)},
                        "errors": len(hubp.errors),
                    },
                    "ratio_p99": r99,
                    "ratio_p50": r50,
                    "ratio_p99_without_job_start_stop": q99,
                },
                indent=2,
            )
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
