#!/usr/bin/env python3
"""bench P6, workspace listing: workspaces listed against the hub's own user endpoint, same run.

A real hub (npm proxy, uws service on SQLite) is started; one user gets 1,000 workspaces (each
with a file), another gets 10. Then 50 concurrent clients call, through the proxy,
``GET /services/uws/api/workspaces`` (the 1,000-workspace user) and the hub's
``GET /hub/api/users/<name>``, interleaved in rounds so both see the same machine state.

Prints median and p95 latency of each, their ratio (goal <= 1.5), and SQL statements per
listing for 10 and 1,000 workspaces (goal: the same number).

    python bench/bench_workspaces.py [--workspaces 1000] [--concurrency 50] [--requests 400] [--rounds 5]
    python bench/bench_workspaces.py --quick    # short form (tests/e2e/test_benches.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import requests
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import HubProcess  # noqa: E402


def create_workspaces(hub: HubProcess, token: str, n: int) -> None:
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    for i in range(n):
        r = s.post(
            f"{hub.url}/services/uws/api/workspaces/",
            json={
                "name": f"ws-{i:04d}",
                "description": f"benchmark workspace {i}",
                "workspace_details": {
                    "files": [{"name": "notes.md", "content": f"workspace {i}\n"}]
                },
            },
            timeout=60,
        )
        r.raise_for_status()


def sql_queries(hub: HubProcess, metrics_token: str) -> float:
    text = requests.get(
        f"{hub.url}/services/uws/metrics",
        headers={"Authorization": f"token {metrics_token}"},
        timeout=30,
    ).text
    for line in text.splitlines():
        if line.startswith("uws_db_queries_total "):
            return float(line.split()[1])
    raise RuntimeError("uws_db_queries_total not found in /metrics")


def queries_per_listing(hub: HubProcess, token: str, metrics_token: str, n: int = 20) -> float:
    h = {"Authorization": f"token {token}"}
    requests.get(
        f"{hub.url}/services/uws/api/workspaces/", headers=h, timeout=60
    )  # warm the token cache
    before = sql_queries(hub, metrics_token)
    for _ in range(n):
        requests.get(
            f"{hub.url}/services/uws/api/workspaces/", headers=h, timeout=60
        ).raise_for_status()
    return (sql_queries(hub, metrics_token) - before) / n


async def load(url: str, token: str, n: int, concurrency: int) -> list[float]:
    client = AsyncHTTPClient(force_instance=True, max_clients=concurrency)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker():
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            resp = await client.fetch(
                HTTPRequest(url, headers={"Authorization": f"token {token}"}, request_timeout=120)
            )
            latencies.append(time.perf_counter() - t0)
            assert resp.code == 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    client.close()
    return latencies


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspaces", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--requests", type=int, default=400, help="per target per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="short form (tests): 30 workspaces, 10 clients, 50 requests, 1 round",
    )
    args = ap.parse_args()
    if args.quick:
        args.workspaces, args.concurrency, args.requests, args.rounds = 30, 10, 50, 1

    hub = HubProcess(name="bench", env={"UWS_TEST_TOKEN_CACHE": "300"}).start()
    try:
        big = hub.token_for("uwst-bench")
        small = hub.token_for("uwst-bench-small")
        metrics = hub.token_for("uwst-admin")
        t0 = time.perf_counter()
        create_workspaces(hub, big, args.workspaces)
        t_create = time.perf_counter() - t0
        create_workspaces(hub, small, 10)
        body = requests.get(
            f"{hub.url}/services/uws/api/workspaces/",
            headers={"Authorization": f"token {big}"},
            timeout=60,
        )
        assert len(body.json()["data"]["workspaces"]) == args.workspaces

        # the cost when the cache cannot help: every listing follows a change
        s = requests.Session()
        s.headers["Authorization"] = f"token {big}"
        first = body.json()["data"]["workspaces"][0]["id"]
        cold = []
        for i in range(20):
            s.put(
                f"{hub.url}/services/uws/api/workspaces/{first}/",
                json={"description": f"change {i}"},
                timeout=60,
            ).raise_for_status()
            t = time.perf_counter()
            s.get(f"{hub.url}/services/uws/api/workspaces/", timeout=60).raise_for_status()
            cold.append(time.perf_counter() - t)

        q_small = queries_per_listing(hub, small, metrics)
        q_big = queries_per_listing(hub, big, metrics)

        uws_url = f"{hub.url}/services/uws/api/workspaces/"
        hub_url = f"{hub.url}/hub/api/users/uwst-bench"
        uws_lat: list[float] = []
        hub_lat: list[float] = []
        asyncio.run(load(uws_url, big, 50, args.concurrency))  # warm-up
        asyncio.run(load(hub_url, big, 50, args.concurrency))
        for _ in range(args.rounds):
            hub_lat += asyncio.run(load(hub_url, big, args.requests, args.concurrency))
            uws_lat += asyncio.run(load(uws_url, big, args.requests, args.concurrency))

        res = {
            "workspaces": args.workspaces,
            "concurrency": args.concurrency,
            "requests_each": len(uws_lat),
            "response_bytes": len(body.content),
            "create_seconds_per_workspace": t_create / args.workspaces,
            "uws_median_ms": statistics.median(uws_lat) * 1000,
            "uws_p95_ms": pct(uws_lat, 0.95) * 1000,
            "hub_median_ms": statistics.median(hub_lat) * 1000,
            "hub_p95_ms": pct(hub_lat, 0.95) * 1000,
            "uncached_listing_median_ms": statistics.median(cold) * 1000,
            "sql_per_listing_10": q_small,
            "sql_per_listing_big": q_big,
        }
        res["ratio_median"] = res["uws_median_ms"] / res["hub_median_ms"]
        res["ratio_p95"] = res["uws_p95_ms"] / res["hub_p95_ms"]
    finally:
        hub.stop()
        hub.cleanup()

    print(
        heading(
            "P6",
            f"GET /services/uws/api/workspaces ({args.workspaces} workspaces, {res['response_bytes']} bytes) "
            f"vs GET /hub/api/users/<name>, {args.concurrency} concurrent clients, {res['requests_each']} requests each",
        )
    )
    print(f"  uws  : median {res['uws_median_ms']:7.1f} ms   p95 {res['uws_p95_ms']:7.1f} ms")
    print(f"  hub  : median {res['hub_median_ms']:7.1f} ms   p95 {res['hub_p95_ms']:7.1f} ms")
    print(f"  ratio: median {res['ratio_median']:.2f}   p95 {res['ratio_p95']:.2f}   (goal <= 1.5)")
    print(
        f"  SQL statements per listing: {res['sql_per_listing_10']:.1f} with 10 workspaces, "
        f"{res['sql_per_listing_big']:.1f} with {args.workspaces} (goal: equal)"
    )
    print(
        f"  a listing right after a change (not cached), one client: median {res['uncached_listing_median_ms']:.1f} ms"
    )
    print(
        f"  (creating a workspace with one file through the API: {res['create_seconds_per_workspace'] * 1000:.1f} ms each)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
