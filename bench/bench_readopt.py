#!/usr/bin/env python3
"""bench P7, re-adoption after a hub restart: time and scheduler queries with 200 Slurm jobs.

200 ``test_job`` jobs run on the project's Slurm cluster (restarted with enough CPUs). The hub is
stopped (jobs keep running: ``cleanup_servers = False``) and started again. Printed: time until
the hub answers, time until every job's server is ready again, and the scheduler queries the
hub made meanwhile — against the 200 per-job queries batchspawner would make (timed in the same
run). Needs root, the project's Slurm and about 10 GB of memory.

    python bench/bench_readopt.py [--jobs 200]
    python bench/bench_readopt.py --quick    # short form (tests/e2e/test_benches.py): 3 jobs, Slurm as it is

Slurm is restarted with more CPUs (and back afterwards) only when it has fewer than jobs + 8.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import REPO, HubProcess  # noqa: E402

USER = "uwst-bench"


def slurm(cpus: int | None) -> None:
    env = {**os.environ}
    if cpus:
        env["UWS_SLURM_CPUS"] = str(cpus)
    else:
        env.pop("UWS_SLURM_CPUS", None)
    subprocess.run([str(REPO / "scripts" / "slurm.sh"), "start"], env=env, check=True)


def slurm_cpus() -> int:
    """CPUs the project's Slurm node advertises now (0 if it does not answer)."""
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True).stdout
    return max((int(x.rstrip("+")) for x in out.split() if x.rstrip("+").isdigit()), default=0)


def metric(hub: HubProcess, name: str, command: str) -> float:
    """The hub's count of `command` on its one cluster (``default``, through the commands)."""
    want = {"cluster": "default", "way": "commands", "command": command}
    for family in text_string_to_metric_families(hub.hub_api("GET", "metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == want:
                return sample.value
    return 0.0


def ready_count(hub: HubProcess) -> int:
    servers = hub.hub_api("GET", f"users/{USER}").json().get("servers", {})
    return sum(1 for s in servers.values() if s.get("ready"))


async def per_job_queries(ids: list[str]) -> float:
    """What batchspawner does at a restart: one squeue per server (timed)."""
    sem = asyncio.Semaphore(32)

    async def one(job_id: str) -> None:
        async with sem:
            p = await asyncio.create_subprocess_shell(
                f"squeue -h -j {job_id} -o '%T %B'", stdout=asyncio.subprocess.PIPE
            )
            await p.communicate()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in ids))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="short form (tests): 3 jobs")
    args = ap.parse_args()
    if args.quick:
        args.jobs = 3
    n = args.jobs
    # restart Slurm with more CPUs only when the cluster has too few for n jobs (and some room
    # for others' tests); the short form runs on the cluster as it is
    resized = slurm_cpus() < n + 8
    if resized:
        slurm(cpus=max(256, n + 16))
    hub = HubProcess(
        name="readopt",
        env={
            "UWS_TEST_SLURM_POLL": "30",
            "UWS_TEST_POLL_INTERVAL": "60",
            "UWS_TEST_EXTRA_CONFIG": f"c.JupyterHub.concurrent_spawn_limit = {n + 50}",
        },
    ).start()
    try:
        token = hub.token_for(USER)
        api = f"{hub.url}/services/uws/api"
        h = {"Authorization": f"token {token}"}

        def start_one(i: int) -> int:
            s = requests.Session()
            s.headers.update(h)
            ws = s.post(
                f"{api}/workspaces/", json={"name": f"w{i}", "description": "d"}, timeout=120
            ).json()["data"]["workspace"]
            for _attempt in range(30):
                r = s.put(
                    f"{api}/workspaces/{ws['id']}/start/",
                    json={
                        "job_type": "test_job",
                        "resource": "slurm",
                        "resource_options": {"memory_mb": 256},
                    },
                    timeout=300,
                )
                if r.status_code == 200:
                    return r.json()["data"]["job"]["id"]
                if r.status_code != 429:  # 429: the hub's concurrent-spawn limit: wait, retry
                    raise RuntimeError(r.text)
                time.sleep(2)
            raise RuntimeError(r.text)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            job_ids = list(pool.map(start_one, range(n)))
        while ready_count(hub) < n:
            if time.perf_counter() - t0 > 900:
                raise RuntimeError(f"only {ready_count(hub)} of {n} jobs became ready")
            time.sleep(1)
        t_start_all = time.perf_counter() - t0
        slurm_ids = subprocess.run(
            ["squeue", "-h", "-u", USER, "-t", "RUNNING", "-o", "%i"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert len(slurm_ids) >= n, len(slurm_ids)

        hub.stop()
        t0 = time.perf_counter()
        hub.start(timeout=600)
        t_up = time.perf_counter() - t0
        while ready_count(hub) < n:
            time.sleep(0.2)
        t_adopted = time.perf_counter() - t0
        queries = metric(hub, "uws_slurm_queries_total", "squeue") + metric(
            hub, "uws_slurm_queries_total", "scontrol"
        )
        statuses = [
            requests.get(f"{api}/jobs/{j}/", headers=h, timeout=60).json()["data"]["jobs"][0][
                "status"
            ]
            for j in job_ids
        ]
        baseline = asyncio.run(per_job_queries(slurm_ids[:n]))
    finally:
        subprocess.run(["scancel", "-u", USER])
        hub.stop()
        hub.cleanup()
        if resized:
            slurm(cpus=None)
    print(heading("P7", f"{n} running Slurm jobs (started in {t_start_all:.0f} s)"))
    print(f"  hub answering again after   {t_up:6.2f} s")
    print(
        f"  all {n} jobs re-adopted after {t_adopted:6.2f} s ({statuses.count('running')} still running in the uws API)"
    )
    print(
        f"  scheduler queries by the hub since its start: {queries:.0f}  (batchspawner: one per server = {n})"
    )
    print(f"  those {n} per-job squeue queries alone take {baseline:.2f} s here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
