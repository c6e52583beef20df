#!/usr/bin/env python3
"""bench P11, downloads: a big file and a folder of many files as a zip, through the hub.

A real hub (npm proxy, uws service) is started. In one workspace, written as the owner: a file
of S MiB (default 2048, random bytes) and a folder of N files (default 100,000, 1–4 KiB of
text each, in 100 subfolders). Each is then fetched R times (default 3), alternating with its
baseline, and the best of each is kept:

- the file: ``GET /workspaces/<id>/files/download?path=big.bin`` through the proxy, read in
  1 MiB chunks, against ``cat big.bin > /dev/null``-style reading of the same file (1 MiB reads
  in this process) — both from disk (the page cache emptied first, as root can) and both from
  the cache;
- the folder: ``GET …/files/download?path=many`` (a zip made as it is sent, deflate level 6)
  against ``zip -r -6 -q - many > /dev/null`` of the same tree.

Printed: seconds, MB/s and the ratio download / baseline (goal <= 1.5), and that the zip lists
every file. ``--level 0`` compares stored zips (``zip -0``).

    python bench/bench_download.py [--size-mib 2048] [--files 100000] [--rounds 3] [--level 6]
                                   [--quick]

``--quick`` (tests/e2e/test_benches.py): 64 MiB, 2,000 files, 1 round.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from benchnames import heading  # noqa: E402
from hubtest import HubProcess, ensure_system_user  # noqa: E402

API = "/services/uws/api"
USER = "uwsb-download"

FILL = """
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = [w.encode() for w in "alpha beta gamma delta sample run value error mean spectrum".split()]
for d in range(100):
    os.mkdir(os.path.join(root, f"d{d:02}"))
for i in range(n):
    size = rng.randint(1024, 4096)
    text = b" ".join(rng.choice(words) for _ in range(size // 5))[:size]
    with open(os.path.join(root, f"d{i % 100:02}", f"f{i:06}.txt"), "wb") as f:
        f.write(text)
"""


def args_parsed():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=2048)
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--level", type=int, default=6)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.size_mib, a.files, a.rounds = 64, 2000, 1
    return a


def as_owner(*cmd: str, **kw) -> None:
    subprocess.run(["runuser", "-u", USER, "--", *cmd], check=True, **kw)


def setup(hub: HubProcess, a) -> tuple[requests.Session, int, Path]:
    s = requests.Session()
    s.headers["Authorization"] = f"token {hub.token_for(USER)}"
    r = s.post(f"{hub.url}{API}/workspaces/", json={"name": "downloads", "description": "b"})
    r.raise_for_status()
    ws_id = r.json()["data"]["workspace"]["id"]
    path = hub.root / USER / str(ws_id)
    t = time.monotonic()
    as_owner("sh", "-c", f"head -c {a.size_mib}M /dev/urandom > {path}/big.bin")
    as_owner("mkdir", str(path / "many"))
    as_owner("/usr/bin/python3", "-c", FILL, str(path / "many"), str(a.files))
    print(f"  {a.size_mib} MiB file and {a.files} files written in {time.monotonic() - t:.1f} s")
    return s, ws_id, path


def timed_download(s: requests.Session, url: str, path: str, keep: bool = False):
    """(seconds, bytes, the body if `keep`) of one download read in 1 MiB chunks."""
    t = time.perf_counter()
    n, kept = 0, io.BytesIO() if keep else None
    with s.get(url, params={"path": path}, stream=True, timeout=3600) as r:
        r.raise_for_status()
        for chunk in r.iter_content(1 << 20):
            n += len(chunk)
            if kept is not None:
                kept.write(chunk)
    return time.perf_counter() - t, n, kept


def drop_caches(allowed: bool) -> bool:
    """Empty the page cache (root; False where the kernel does not allow it, or not
    `allowed`: the short form under `make test` leaves the machine's cache alone)."""
    if not allowed:
        return False
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def read_file(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
    return time.perf_counter() - t


def zip_r(folder: Path, level: int) -> float:
    t = time.perf_counter()
    subprocess.run(
        ["zip", "-r", f"-{level}", "-q", "-", folder.name],
        cwd=folder.parent,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - t


def measure(hub: HubProcess, s: requests.Session, ws_id: int, path: Path, a) -> None:
    url = f"{hub.url}{API}/workspaces/{ws_id}/files/download"
    file_dl, file_base, zip_dl, zip_base = [], [], [], []
    warm: dict[bool, list[float]] = {True: [], False: []}  # (download, reading) from the cache
    size = zsize = 0
    for r in range(a.rounds):
        cold = drop_caches(not a.quick)
        file_base.append(read_file(path / "big.bin"))
        warm[False].append(read_file(path / "big.bin"))
        drop_caches(not a.quick)
        took, size, _ = timed_download(s, url, "big.bin")
        file_dl.append(took)
        warm[True].append(timed_download(s, url, "big.bin")[0])
        zip_base.append(zip_r(path / "many", a.level))
        took, zsize, body = timed_download(s, url, "many", keep=r == 0)
        zip_dl.append(took)
        if body is not None:
            names = [n for n in zipfile.ZipFile(body).namelist() if not n.endswith("/")]
            assert len(names) == a.files, (len(names), a.files)
    print(heading("P11", f"{a.size_mib} MiB file, {a.files} files as a zip (level {a.level})"))
    mb = size / 1e6
    for what, dl, base in (
        ("from disk" if cold else "from the cache (not emptied first)", file_dl, file_base),
        ("from the cache", warm[True], warm[False]),
    ):
        print(
            f"  file {what}: download {min(dl):.2f} s ({mb / min(dl):.0f} MB/s), cat "
            f"{min(base):.2f} s ({mb / min(base):.0f} MB/s): ratio {min(dl) / min(base):.2f}"
        )
    print(
        f"  zip: download {min(zip_dl):.2f} s ({zsize / 1e6:.0f} MB zip, every one of {a.files} "
        f"files listed), zip -r -{a.level} {min(zip_base):.2f} s: "
        f"ratio {min(zip_dl) / min(zip_base):.2f}  (goal <= 1.5)"
    )


def main() -> None:
    a = args_parsed()
    ensure_system_user(USER)
    extra = f"c.UWS.zip_compression_level = {a.level}\nc.UWS.download_zip_max_bytes = 0\n"
    hub = HubProcess(name="bench-download", env={"UWS_TEST_EXTRA_CONFIG": extra})
    try:
        hub.start()
        s, ws_id, path = setup(hub, a)
        measure(hub, s, ws_id, path, a)
    finally:
        hub.stop()
        hub.cleanup()


if __name__ == "__main__":
    main()
