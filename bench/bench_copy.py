#!/usr/bin/env python3
"""bench P5, share copy: the service's copier (sender → recipient account) against `cp -a`.

Builds a tree of N files (default 100,000 files, 2 GiB in all, in directories of 1,000) owned by
one real account, then copies it into another account's directory three times each way,
alternating:

- `cp -a SRC DST` as root (GNU coreutils; it preserves owners rather than setting them, so it
  does less than a share copy),
- `copier.copy_tree` exactly as the service runs it (reads as the sender, writes as the
  recipient, O_NOFOLLOW everywhere, data through copy_file_range).

With ``--xfs`` it also builds a loop-mounted XFS image with reflink and times the copier there:
each file's data is cloned (FICLONE), so a copy costs metadata only.

Prints the median seconds of each, their ratio (goal <= 1.2) and, with --xfs, the clone
speed-up. Needs root.

    python bench/bench_copy.py [--files 100000] [--total-mb 2048] [--rounds 3] [--xfs]
    python bench/bench_copy.py --quick    # short form (tests/e2e/test_benches.py)
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchnames import heading  # noqa: E402
from uws_hub.shares import copier  # noqa: E402
from uws_hub.workspaces import fsops  # noqa: E402

SENDER, RECIPIENT = "uwsb-sender", "uwsb-recipient"


def account(name: str) -> fsops.Owner:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", name], check=True)
        pw = pwd.getpwnam(name)
    return fsops.Owner(pw.pw_uid, pw.pw_gid)


def build(src: Path, files: int, total: int, owner: fsops.Owner) -> None:
    size = max(1, total // files)
    block = os.urandom(size)
    per_dir = 1000
    src.mkdir(parents=True)
    for d in range((files + per_dir - 1) // per_dir):
        sub = src / f"d{d:04d}"
        sub.mkdir()
        for f in range(min(per_dir, files - d * per_dir)):
            fd = os.open(sub / f"f{f:04d}", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, block[f % 7 :] + block[: f % 7])  # not all identical
            os.close(fd)
    subprocess.run(["chown", "-R", f"{owner.uid}:{owner.gid}", str(src)], check=True)
    subprocess.run(["sync"], check=True)


def time_cp(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    subprocess.run(["sync", "-f", str(dst)], check=True)
    return time.perf_counter() - t0


def time_copier(
    src: Path, dst_parent: Path, name: str, sender, recipient
) -> tuple[float, copier.CopyStats]:
    t0 = time.perf_counter()
    with (
        fsops.closing_fd(os.open(src, os.O_RDONLY | os.O_DIRECTORY)) as sfd,
        fsops.closing_fd(os.open(dst_parent, os.O_RDONLY | os.O_DIRECTORY)) as pfd,
    ):
        with fsops.acting_as(recipient):
            dfd = fsops.mkdir_open(pfd, name, 0o700)
        with fsops.closing_fd(dfd):
            stats = copier.copy_tree(sfd, dfd, sender, recipient, [])
    subprocess.run(["sync", "-f", str(dst_parent)], check=True)
    return time.perf_counter() - t0, stats


def run(base: Path, args, sender, recipient, label: str) -> tuple[float, float]:
    src = base / "src"
    print(f"[{label}] building {args.files} files, {args.total_mb} MiB in {src} ...", flush=True)
    build(src, args.files, args.total_mb * 1024 * 1024, sender)
    out = base / "out"
    out.mkdir()
    os.chown(out, recipient.uid, recipient.gid)
    cp_t, cop_t = [], []
    for i in range(args.rounds):
        t = time_cp(src, out / f"cp{i}")
        cp_t.append(t)
        c, stats = time_copier(src, out, f"copy{i}", sender, recipient)
        cop_t.append(c)
        print(
            f"[{label}] round {i + 1}: cp -a {t:.2f} s, copier {c:.2f} s "
            f"({stats.files} files, {stats.bytes / 2**20:.0f} MiB, {stats.cloned} cloned)",
            flush=True,
        )
        shutil.rmtree(out / f"cp{i}")
        shutil.rmtree(out / f"copy{i}")
    return statistics.median(cp_t), statistics.median(cop_t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--total-mb", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--xfs", action="store_true", help="also on a loop-mounted XFS with reflink")
    ap.add_argument(
        "--quick", action="store_true", help="short form (tests): 500 files, 4 MiB, 1 round"
    )
    args = ap.parse_args()
    if args.quick:
        args.files, args.total_mb, args.rounds = 500, 4, 1
    sender, recipient = account(SENDER), account(RECIPIENT)
    print(
        heading(
            "P5",
            f"{args.files} files, {args.total_mb} MiB, copier against cp -a, {args.rounds} rounds",
        ),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="uws-bench-copy-", dir="/var/tmp") as tmp:
        os.chmod(tmp, 0o755)
        cp_m, cop_m = run(Path(tmp), args, sender, recipient, "ext4")
    print(
        f"P5 copy ({args.files} files, {args.total_mb} MiB): cp -a {cp_m:.2f} s, copier {cop_m:.2f} s, "
        f"ratio {cop_m / cp_m:.2f} (goal <= 1.2)"
    )
    if args.xfs:
        xdir = Path(tempfile.mkdtemp(prefix="uws-bench-xfs-", dir="/var/tmp"))
        img, mnt = xdir / "xfs.img", xdir / "mnt"
        size = max(4, 3 * args.total_mb // 1024 + 2)
        subprocess.run(["truncate", "-s", f"{size}G", str(img)], check=True)
        try:
            subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(img)], check=True)
            mnt.mkdir(exist_ok=True)
            subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
            try:
                os.chmod(mnt, 0o755)
                cp_x, cop_x = run(mnt, args, sender, recipient, "xfs")
            finally:
                subprocess.run(["umount", str(mnt)], check=True)
        finally:
            img.unlink(missing_ok=True)
            shutil.rmtree(xdir, ignore_errors=True)
        print(
            f"P5 on XFS with reflink: cp -a {cp_x:.2f} s, copier (clones) {cop_x:.2f} s, "
            f"ratio {cop_x / cp_x:.2f}; clone speed-up over the ext4 copy {cop_m / cop_x:.1f}x"
        )


if __name__ == "__main__":
    main()
