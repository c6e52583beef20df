#!/usr/bin/env python3
"""bench P4, disk usage: a 1M-file workspace (the service's scan) against GNU `du -s`.

Builds a tree of N small files (default 1,000,000, in directories of 1,000), then times, warm
cache, alternating, `du -s --block-size=1 TREE` and `fsops.scan` as the service runs it (the
owner's fsuid, descriptor-relative, links never followed, hard links counted once, plus the
listing up to c.UWS.max_listed_entries). Checks both report the same bytes.

Prints the median seconds of each and their ratio (goal <= 1.5).

    python bench/bench_du.py [--files 1000000] [--rounds 3] [--list-limit 10000]
    python bench/bench_du.py --quick    # short form (tests/e2e/test_benches.py)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchnames import heading  # noqa: E402
from uws_hub.workspaces import fsops  # noqa: E402


def build(root: Path, files: int) -> None:
    per_dir = 1000
    data = b"x" * 100
    for d in range((files + per_dir - 1) // per_dir):
        sub = root / f"d{d:04d}"
        sub.mkdir()
        dfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for f in range(min(per_dir, files - d * per_dir)):
                fd = os.open(f"f{f:04d}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd)
                os.write(fd, data)
                os.close(fd)
        finally:
            os.close(dfd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--list-limit", type=int, default=10_000)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="short form (tests): 25,000 files (past the du hand-over), 1 round",
    )
    args = ap.parse_args()
    if args.quick:
        args.files, args.rounds = 25_000, 1
    with tempfile.TemporaryDirectory(prefix="uws-bench-du-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        t0 = time.perf_counter()
        build(root, args.files)
        print(f"built {args.files} files in {time.perf_counter() - t0:.1f} s", flush=True)
        print(
            heading("P4", f"{args.files} files, scan against du -s, {args.rounds} rounds"),
            flush=True,
        )
        du_t, scan_t = [], []
        du_bytes = scan_bytes = 0
        subprocess.run(["du", "-s", str(root)], capture_output=True, check=True)  # warm the cache
        for i in range(args.rounds):
            t0 = time.perf_counter()
            out = subprocess.run(
                ["du", "-s", "--block-size=1", str(root)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            du_t.append(time.perf_counter() - t0)
            du_bytes = int(out.split()[0])
            t0 = time.perf_counter()
            with fsops.closing_fd(os.open(root, os.O_RDONLY | os.O_DIRECTORY)) as fd:
                res = fsops.scan(fd, args.list_limit, os.geteuid())
            scan_t.append(time.perf_counter() - t0)
            scan_bytes = res.disk_space
            print(f"round {i + 1}: du -s {du_t[-1]:.2f} s, scan {scan_t[-1]:.2f} s", flush=True)
        assert du_bytes == scan_bytes, (du_bytes, scan_bytes)
        du_m, scan_m = statistics.median(du_t), statistics.median(scan_t)
        print(
            f"P4 disk usage of {args.files} files ({du_bytes / 2**20:.0f} MiB allocated, both agree): "
            f"du -s {du_m:.2f} s, scan {scan_m:.2f} s, ratio {scan_m / du_m:.2f} (goal <= 1.5)"
        )


if __name__ == "__main__":
    main()
