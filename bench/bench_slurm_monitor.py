#!/usr/bin/env python3
"""bench P3, scheduler queries per cycle: uws's shared monitor against batchspawner, and CPU.

N real Slurm jobs (held, so they stay pending) are tracked. One poll cycle asks the status of
every one of them:

- uws: every spawner's poll reads the shared `SlurmMonitor`, which refreshes with one ``squeue``;
- batchspawner 1.3.0: every spawner runs its own ``squeue -h -j <id> -o '%T %B'`` (through a
  shell, as its ``run_command`` does).

Printed for N = 1, 100, 1,000: scheduler queries per cycle and CPU time per cycle (this process
plus the commands it ran). Goal: 1 query per cycle for every N. Needs root and the project's Slurm.

    python bench/bench_slurm_monitor.py [--sizes 1,100,1000]
    python bench/bench_slurm_monitor.py --quick    # short form (tests/e2e/test_benches.py)
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import ensure_system_user  # noqa: E402
from uws_hub.slurm.monitor import SLURM_QUERIES, SlurmMonitor  # noqa: E402

USER = "uwst-bench"


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def submit_held(n: int) -> list[str]:
    sem = asyncio.Semaphore(16)

    async def one() -> str:
        async with sem:
            proc = await asyncio.create_subprocess_exec(
                "runuser",
                "-u",
                USER,
                "--",
                "sbatch",
                "--parsable",
                "--hold",
                "--output=/dev/null",
                "--job-name=uws-bench",
                "--wrap",
                "sleep 1",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd="/",
            )
            out, err = await proc.communicate()
            if proc.returncode:
                raise RuntimeError(err.decode())
            return out.decode().strip().split(";")[0]

    return list(await asyncio.gather(*(one() for _ in range(n))))


def squeue_count() -> float:
    return (
        SLURM_QUERIES.labels("squeue")._value.get() + SLURM_QUERIES.labels("scontrol")._value.get()
    )


async def uws_cycle(ids: list[str]) -> tuple[int, float]:
    monitor = SlurmMonitor(interval=10, timeout=60)
    q0, c0 = squeue_count(), cpu()
    infos = await asyncio.gather(*(monitor.status(i) for i in ids))
    assert all(info.state == "PENDING" for info in infos), {i.state for i in infos}
    return int(squeue_count() - q0), cpu() - c0


async def batchspawner_cycle(ids: list[str]) -> tuple[int, float]:
    sem = asyncio.Semaphore(32)
    c0 = cpu()

    async def one(job_id: str) -> str:
        async with sem:  # batchspawner's run_command: a shell per query
            proc = await asyncio.create_subprocess_shell(
                f"squeue -h -j {job_id} -o '%T %B'",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            return out.decode().strip()

    states = await asyncio.gather(*(one(i) for i in ids))
    assert all(s.startswith("PENDING") for s in states)
    return len(ids), cpu() - c0


async def main_async(sizes: list[int]) -> None:
    ensure_system_user(USER)
    t0 = time.perf_counter()
    ids = await submit_held(max(sizes))
    print(f"(submitted {len(ids)} held jobs in {time.perf_counter() - t0:.1f} s)")
    try:
        print(heading("P3", "one poll cycle over N tracked Slurm jobs"))
        print(
            f"  {'N':>6}  {'uws queries':>11}  {'uws CPU ms':>10}  {'batchspawner queries':>20}  {'batchspawner CPU ms':>19}  {'CPU ratio':>9}"
        )
        for n in sizes:
            uq, uc = await uws_cycle(ids[:n])
            bq, bc = await batchspawner_cycle(ids[:n])
            print(
                f"  {n:>6}  {uq:>11}  {uc * 1000:>10.1f}  {bq:>20}  {bc * 1000:>19.1f}  {bc / uc if uc else float('inf'):>8.1f}x"
            )
        print("  goal: 1 uws query per cycle for every N")
    finally:
        for i in range(0, len(ids), 500):
            subprocess.run(["scancel", *ids[i : i + 500]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,100,1000")
    ap.add_argument("--quick", action="store_true", help="short form (tests): sizes 1,10")
    args = ap.parse_args()
    if args.quick:
        args.sizes = "1,10"
    asyncio.run(main_async([int(x) for x in args.sizes.split(",")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
