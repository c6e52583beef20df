"""The benchmarks' numbers and names: every script prints its figures under ``bench <number>:
<name>``, and docs/benchmarks.md uses the same numbers and names (one section each)."""

from __future__ import annotations

NAMES = {
    "P1": "local job start",  # bench_jobs.py --only local
    "P2": "Slurm job start",  # bench_jobs.py --only slurm
    "P3": "scheduler queries per cycle",  # bench_slurm_monitor.py
    "P4": "disk usage",  # bench_du.py
    "P5": "share copy",  # bench_copy.py
    "P6": "workspace listing",  # bench_workspaces.py
    "P7": "re-adoption after a hub restart",  # bench_readopt.py
    "P8": "everyone's quotas",  # bench_quotas.py
    "P10": "periodic rescans",  # bench_rescans.py
    "P11": "downloads",  # bench_download.py
    "P12": "mixed load",  # bench_load.py
    "P13": "two clusters",  # bench_slurm_monitor.py (after P3)
}


def heading(number: str, details: str = "") -> str:
    """``bench P6: workspace listing, <details>``: the line a bench's figures stand under."""
    return f"bench {number}: {NAMES[number]}" + (f", {details}" if details else "")
