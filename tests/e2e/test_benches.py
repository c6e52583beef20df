"""Every bench under bench/ runs in its short form, so none of them can rot unnoticed.

Each test runs the script as a subprocess (as `python bench/<script>` would), checks it exits 0
and prints its figure lines. Benches needing Slurm run with UWS_TEST_SLURM=1 (make test), those
needing PostgreSQL with UWS_TEST_PG_URL set. Together 77-83 s on the development
machine (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from hubtest import REPO

SLURM = os.environ.get("UWS_TEST_SLURM") == "1"
PG_URL = os.environ.get("UWS_TEST_PG_URL")
needs_slurm = pytest.mark.skipif(not SLURM, reason="needs the project's Slurm (UWS_TEST_SLURM=1)")
needs_pg = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (UWS_TEST_PG_URL)")

BENCHES = {p.name for p in (REPO / "bench").glob("bench_*.py")}


def run_bench(script: str, *args: str, timeout: float = 240) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout
    assert proc.returncode == 0, (
        f"{script} {' '.join(args)} exited {proc.returncode}\n{out}\n{proc.stderr[-4000:]}"
    )
    return out


def figures(out: str, *patterns: str) -> None:
    """Each pattern must match a line of the output (the figures the bench exists to print)."""
    for pat in patterns:
        assert re.search(pat, out, re.M), f"no line matching {pat!r} in:\n{out}"


def test_every_bench_has_a_test():
    tested = {
        "bench_workspaces.py",
        "bench_jobs.py",
        "bench_load.py",
        "bench_du.py",
        "bench_copy.py",
        "bench_quotas.py",
        "bench_slurm_monitor.py",
        "bench_readopt.py",
        "bench_rescans.py",
        "bench_download.py",
    }
    assert BENCHES == tested, f"benches without a short-form test: {BENCHES - tested}"


def test_bench_workspaces():
    out = run_bench("bench_workspaces.py", "--quick")
    figures(
        out,
        r"^  uws  : median +\d+\.\d ms +p95 +\d+\.\d ms",
        r"^  hub  : median +\d+\.\d ms +p95 +\d+\.\d ms",
        r"^  ratio: median \d+\.\d\d +p95 \d+\.\d\d",
        r"SQL statements per listing: \d+\.\d with 10 workspaces, \d+\.\d with 30",
    )


WAYS = ("the commands", "through slurmrestd")


def test_bench_jobs():
    """P1 (local) and, with Slurm, P2 both ways (commands, slurmrestd) in the same hub."""
    out = run_bench("bench_jobs.py", "--quick", *([] if SLURM else ["--only", "local"]))
    heads = ["bench P1:"]
    if SLURM:
        heads += [f"bench P2: Slurm job start, 1 rounds, {way}" for way in WAYS]
    for head in heads:
        block = out[out.index(head) :]
        figures(
            block,
            r"^bench P\d: (local|Slurm) job start, 1 rounds",
            r"API says running with connection details : median +\d+\.\d\d s",
            r"JupyterLab answering through the proxy +: median +\d+\.\d\d s",
            r"^  bare, JupyterLab answering .*: median +\d+\.\d\d s",
            r"^  ratio: \d+\.\d\d +\(API running / bare",
            r"^  ratio: \d+\.\d\d +\(answering through the proxy / bare\)",
        )


def test_bench_load():
    # exits 1 on any error (unexpected status, connection error): the test demands 0 errors
    out = run_bench("bench_load.py", "--quick")
    figures(
        out,
        r"^bench P12: mixed load, 20 clients \(5 users, a token each\) for 5 s",
        r"^  uws mix +: \d+ requests in .* req/s +p50 .* p99 +\d+\.\d ms +errors 0 ",
        r"^  hub GET /api/user: \d+ requests in .* req/s +p50 .* p99 +\d+\.\d ms +errors 0 ",
        r"^    uws list +\d+ requests",
        r"^    uws create +\d+ requests",
        r"^    uws job_start +\d+ requests",
        r"^  jobs: [1-9]\d* started, [1-9]\d* ended",
        r"^  ratio: p99 \d+\.\d\d +p50 \d+\.\d\d",
        r"^  ratio without job start/stop requests: p99 \d+\.\d\d",
        r"^  CPU per request during uws mix: hub \d+\.\d\d ms, uws service \d+\.\d\d ms",
        r"^  errors: 0 ",
    )


def test_bench_du():
    out = run_bench("bench_du.py", "--quick")
    figures(out, r"^P4 disk usage of 25000 files .*both agree.*ratio \d+\.\d\d")


def test_bench_copy():
    out = run_bench("bench_copy.py", "--quick")
    figures(out, r"^\[ext4\] round 1: .*\(500 files", r"^P5 copy \(500 files.*ratio \d+\.\d\d")


def test_bench_quotas_sqlite():
    out = run_bench("bench_quotas.py", "--quick")
    figures(
        out,
        r"^SQLite: 50 people",
        r"period all .*x faster \(same answers for 50 people\)",
        r"period month .*x faster \(same answers for 50 people\)",
    )


@needs_pg
def test_bench_quotas_postgres():
    out = run_bench("bench_quotas.py", "--quick", "--pg-url", PG_URL)
    figures(
        out,
        r"^PostgreSQL: 50 people",
        r"period all .*x faster \(same answers for 50 people\)",
        r"period month .*x faster \(same answers for 50 people\)",
    )


@needs_slurm
def test_bench_slurm_monitor():
    out = run_bench("bench_slurm_monitor.py", "--quick")
    # N, commands: 1 query, CPU; slurmrestd: 1 request, CPU, its own CPU; batchspawner: N
    figures(
        out,
        r"^ +1 +1 +\d+\.\d +1 +\d+\.\d +\d+ +1 +\d+\.\d",
        r"^ +10 +1 +\d+\.\d +1 +\d+\.\d +\d+ +10 +\d+\.\d",
        # two clusters: one query each, whatever N
        r"^bench P13: two clusters",
        r"^ +10 +2 +\d+\.\d",
    )


@needs_slurm
def test_bench_readopt():
    out = run_bench("bench_readopt.py", "--quick")
    figures(
        out,
        r"^bench P7: re-adoption after a hub restart, 3 running Slurm jobs",
        r"hub answering again after +\d+\.\d\d s",
        r"all 3 jobs re-adopted after +\d+\.\d\d s \(3 still running in the uws API\)",
        # one query re-adopts them all (two if a poll cycle passed meanwhile), not one per job
        r"scheduler queries by the hub since its start: [12] +\(batchspawner: one per server = 3\)",
    )


def test_bench_rescans():
    out = run_bench("bench_rescans.py", "--quick")
    figures(
        out,
        r"^bench P10: periodic rescans, 4 workspaces × 300 files with running jobs",
        r"^  idle +\d+ requests  p50 +\d+\.\d ms  p95 +\d+\.\d ms",
        r"^  p95 ratio \(cycle / idle\): \d+\.\d\d",
        r"^  cycle: 4 workspaces rescanned in \d+\.\d s",
        r"^  the cycle's scans \(child processes, with their du\): \d+\.\d\d s CPU",
    )


def test_bench_download():
    out = run_bench("bench_download.py", "--quick")
    figures(
        out,
        r"^bench P11: downloads, 64 MiB file, 2000 files as a zip \(level 6\)",
        r"^  file from .*: download \d+\.\d\d s \(\d+ MB/s\), cat .*ratio \d+\.\d\d",
        r"^  zip: download \d+\.\d\d s .*every one of 2000 files listed.*ratio \d+\.\d\d",
    )
