#!/usr/bin/env python3
"""bench P3, scheduler queries per cycle: uws's shared monitor against batchspawner, and CPU.

N real Slurm jobs (held, so they stay pending) are tracked. One poll cycle asks the status of
every one of them:

- uws (commands): every spawner's poll reads the shared `SlurmMonitor`, which refreshes with one
  ``squeue``;
- uws (slurmrestd): the same monitor reading the cluster's slurmrestd: one ``GET jobs`` as the
  service account (the hub host runs no Slurm command);
- batchspawner 1.3.0: every spawner runs its own ``squeue -h -j <id> -o '%T %B'`` (through a
  shell, as its ``run_command`` does).

Printed for N = 1, 100, 1,000: scheduler queries per cycle and CPU time per cycle (this process
plus the commands it ran: the hub host's CPU; slurmrestd's own CPU is the cluster's, shown apart).
Then two clusters (the project's second one, scripts/slurm.sh): N jobs on each, one cycle over
both: the queries grow with clusters, not with jobs. Goal: 1 query per cycle and cluster for
every N. Needs root and the project's Slurm clusters.

    python bench/bench_slurm_monitor.py [--sizes 1,100,1000]
    python bench/bench_slurm_monitor.py --quick    # short form (tests/e2e/test_benches.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import ensure_system_user  # noqa: E402
from uws_hub.slurm.monitor import SLURM_QUERIES, SlurmMonitor  # noqa: E402
from uws_hub.slurm.rest import JWTTokens, RestSource, SlurmRest  # noqa: E402

USER = "uwst-bench"
READER = "uwst-slurmread"
SLURM_SH = str(Path(__file__).resolve().parent.parent / "scripts" / "slurm.sh")
CONF2 = "/etc/slurm-uws2/slurm.conf"


def slurm_sh(*args: str) -> str:
    return subprocess.run(
        [SLURM_SH, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def rest_monitor(second: bool = False) -> SlurmMonitor:
    which = ("2",) if second else ()
    rest = SlurmRest(
        slurm_sh("rest-url", *which),
        JWTTokens(slurm_sh("jwt-key", *which)),
        READER,
        timeout=60,
        cluster="bench-rest2" if second else "bench-rest",
    )
    return SlurmMonitor(interval=10, timeout=60, source=RestSource(rest), cluster=rest.cluster)


def slurmrestd_cpu(second: bool = False) -> float:
    """CPU seconds slurmrestd (the cluster side) has used so far."""
    state = os.environ.get("UWS_SLURM2_DIR" if second else "UWS_SLURM_DIR") or (
        "/tmp/uws-slurm2" if second else "/tmp/uws-slurm"  # noqa: S108 (scripts/slurm.sh's)
    )
    pid = open(f"{state}/slurmrestd.pid").read().strip()
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def submit_held(n: int, conf: str | None = None) -> list[str]:
    sem = asyncio.Semaphore(16)
    env = {**os.environ, "SLURM_CONF": conf} if conf else None

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
                env=env,
            )
            out, err = await proc.communicate()
            if proc.returncode:
                raise RuntimeError(err.decode())
            return out.decode().strip().split(";")[0]

    return list(await asyncio.gather(*(one() for _ in range(n))))


def squeue_count(monitor: SlurmMonitor) -> float:
    """Every scheduler query the monitor's cluster was asked (all, one per job, accounting)."""
    way = monitor.source.way
    return sum(
        SLURM_QUERIES.labels(monitor.cluster, way, cmd)._value.get()
        for cmd in ("squeue", "scontrol", "sacct")
    )


async def uws_cycle(ids: list[str], monitor: SlurmMonitor | None = None) -> tuple[int, float]:
    monitor = monitor or SlurmMonitor(interval=10, timeout=60, cluster="bench")
    q0, c0 = squeue_count(monitor), cpu()
    infos = await asyncio.gather(*(monitor.status(i) for i in ids))
    assert all(info.state == "PENDING" for info in infos), {i.state for i in infos}
    return int(squeue_count(monitor) - q0), cpu() - c0


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
    ensure_system_user(READER)
    t0 = time.perf_counter()
    ids = await submit_held(max(sizes))
    ids2 = await submit_held(max(sizes), CONF2)
    print(f"(submitted {len(ids)} held jobs on each cluster in {time.perf_counter() - t0:.1f} s)")
    try:
        print(heading("P3", "one poll cycle over N tracked Slurm jobs"))
        print(
            f"  {'N':>6}  {'cmds queries':>12}  {'cmds CPU ms':>11}  {'rest queries':>12}  "
            f"{'rest CPU ms':>11}  {'slurmrestd CPU ms':>17}  {'batchspawner queries':>20}  "
            f"{'batchspawner CPU ms':>19}  {'rest/cmds CPU':>13}"
        )
        for n in sizes:
            uq, uc = await uws_cycle(ids[:n])
            s0 = slurmrestd_cpu()
            rq, rc = await uws_cycle(ids[:n], rest_monitor())
            sc = slurmrestd_cpu() - s0
            bq, bc = await batchspawner_cycle(ids[:n])
            print(
                f"  {n:>6}  {uq:>12}  {uc * 1000:>11.1f}  {rq:>12}  {rc * 1000:>11.1f}  "
                f"{sc * 1000:>17.0f}  {bq:>20}  {bc * 1000:>19.1f}  {rc / uc if uc else 0:>12.2f}x"
            )
        print("  goal: 1 uws query per cycle for every N, both ways")
        print(heading("P13", "one cycle over N jobs on each"))
        print(f"  {'N per cluster':>13}  {'queries':>7}  {'hub CPU ms':>10}")
        for n in sizes:
            c0 = cpu()
            counts = await asyncio.gather(
                uws_cycle(ids[:n], rest_monitor()), uws_cycle(ids2[:n], rest_monitor(True))
            )
            print(f"  {n:>13}  {sum(q for q, _ in counts):>7}  {(cpu() - c0) * 1000:>10.1f}")
        print("  goal: 2 queries per cycle (one per cluster) for every N")
    finally:
        for i in range(0, len(ids), 500):
            subprocess.run(["scancel", *ids[i : i + 500]])
        env2 = {**os.environ, "SLURM_CONF": CONF2}
        for i in range(0, len(ids2), 500):
            subprocess.run(["scancel", *ids2[i : i + 500]], env=env2)


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
