"""Workspaces kept true to disk (`workspaces.rescans.Rescans`): a workspace is rescanned when a
job of it ends and, while a job runs, every interval; never two scans at once for one
workspace, at most `concurrency` in all; a failing scan is retried later, not at every pass.
End to end, with a real JupyterLab writing the files: tests/e2e/test_rescans.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import time

import pytest

from uws_hub.db.models import Job, User, Workspace, utcnow
from uws_hub.errors import BadRequest
from uws_hub.workspaces import fsops, scanproc
from uws_hub.workspaces.rescans import Rescans

from .domain import Domain


def set_job(domain: Domain, job_id: int, **facts) -> None:
    with domain.db() as session:
        job = session.get(Job, job_id)
        for key, value in facts.items():
            setattr(job, key, value)
        session.commit()


def listed_files(domain: Domain, ws: Workspace) -> list[str]:
    row = domain.fresh(Workspace, ws.id)
    return sorted(f["name"] for f in row.workspace_details["current_workspace_details"]["files"])


def rescans(domain: Domain, interval: float = 300.0, concurrency: int = 2) -> Rescans:
    return Rescans(domain.workspaces, domain.db, interval=interval, concurrency=concurrency)


def test_a_job_that_ended_gets_its_workspace_rescanned_once(domain, alice):
    ws = domain.create_workspace(alice, {"in.txt": "1"})
    job = domain.start_job(alice, ws)
    r = rescans(domain)
    assert r.due() == []  # pending: nothing written yet, nothing due
    set_job(domain, job.id, status="running", datetime_start=utcnow())
    (domain.path(ws) / "result.csv").write_text("a,b\n1,2\n")  # what the job writes
    assert r.due() == []  # scanned at creation, less than an interval ago
    set_job(domain, job.id, status="complete", datetime_end=utcnow())
    assert r.due() == [ws.id]
    before = domain.fresh(Workspace, ws.id)

    async def scenario():
        assert await r.run_pass() == 1
        await asyncio.gather(*r._running.values())

    domain.run(scenario())
    after = domain.fresh(Workspace, ws.id)
    assert listed_files(domain, ws) == ["/in.txt", "/result.csv"]
    assert after.disk_space > before.disk_space and after.file_count == 2
    assert after.datetime_scanned > before.datetime_scanned
    assert after.datetime_last_modified == after.datetime_scanned  # the files changed
    assert r.due() == [] and r.scans == 1  # once


def test_a_running_job_gets_its_workspace_rescanned_every_interval(domain, alice):
    ws = domain.create_workspace(alice)
    job = domain.start_job(alice, ws)
    set_job(domain, job.id, status="running", datetime_start=utcnow())
    r = rescans(domain, interval=60)
    assert r.due() == []
    later = utcnow() + dt.timedelta(seconds=61)
    assert r.due(later) == [ws.id]
    assert rescans(domain, interval=0).due(later) == []  # 0: only when jobs end
    # a scan that finds nothing new leaves datetime_last_modified alone
    modified = domain.fresh(Workspace, ws.id).datetime_last_modified
    domain.run(r.scan_now(ws.id))
    assert domain.fresh(Workspace, ws.id).datetime_last_modified == modified


def test_never_two_scans_of_one_workspace_and_at_most_the_limit(domain, alice):
    spaces = [domain.create_workspace(alice, name=f"w{i}") for i in range(4)]
    r = rescans(domain, concurrency=2)
    running = 0
    most = 0
    calls: list[int] = []
    real = domain.workspaces.rescan

    async def slow_rescan(session, ws, **kw):
        nonlocal running, most
        running += 1
        most = max(most, running)
        calls.append(ws.id)
        await asyncio.sleep(0.05)
        try:
            return await real(session, ws, **kw)
        finally:
            running -= 1

    domain.workspaces.rescan = slow_rescan

    async def scenario():
        # three requests for one workspace while its scan runs: one scan
        await asyncio.gather(*(r.scan_now(spaces[0].id) for _ in range(3)))
        await asyncio.gather(*(r.scan_now(ws.id) for ws in spaces))

    domain.run(scenario())
    assert calls.count(spaces[0].id) == 2  # once for the three, once in the second round
    assert sorted(calls[1:]) == sorted(ws.id for ws in spaces)
    assert most == 2


def test_a_failing_scan_is_retried_later_not_at_every_pass(domain, alice):
    ws = domain.create_workspace(alice)
    job = domain.start_job(alice, ws)
    set_job(domain, job.id, status="failed", datetime_end=utcnow())
    r = rescans(domain)
    domain.path(ws).rename(domain.path(ws).with_name("moved-away"))  # the directory is gone

    async def scenario():
        await r.run_pass()
        await asyncio.gather(*r._running.values(), return_exceptions=True)

    domain.run(scenario())
    assert r.scans == 0
    assert r.due() == []  # not again at the next pass: after the retry delay
    r._failed.clear()
    assert r.due() == [ws.id]  # (still due, once the delay is over)


def test_only_idle_or_active_workspaces_are_scanned(domain, alice):
    ws = domain.create_workspace(alice)
    with domain.db() as session:
        domain.workspaces.request_delete(session, session.get(Workspace, ws.id))
    r = rescans(domain)
    with pytest.raises(BadRequest) as e:
        domain.run(r.scan_now(ws.id))
    assert e.value.message == f"Workspace {ws.id} cannot be changed: it is being deleted."


def test_a_rescan_reads_the_tree_in_a_child_process(domain, alice):
    """The same figures and listing as a scan in the service, read by a child process (so a
    big tree does not hold the service's interpreter lock); a child that fails says so."""
    ws = domain.create_workspace(alice, {"a.txt": "1", "d/b.txt": "22"})
    (domain.path(ws) / "d" / "link").symlink_to("/etc/passwd")
    fd = fsops.open_workspace(domain.settings.root_dir, domain.fresh(Workspace, ws.id).file_path)
    try:
        here = fsops.scan(fd, 1000, None)
        there = scanproc.scan_in_child(fd, 1000, None)
    finally:
        os.close(fd)
    assert there == here and there.file_count == 3
    assert [s["name"] for s in there.symlinks] == ["/d/link"]
    with pytest.raises(fsops.StorageError, match="Reading the workspace failed: .*Bad file"):
        scanproc.scan_in_child(999, 1000, None)  # not an open descriptor


def test_a_rescan_that_finds_nothing_new_keeps_the_cached_listing(domain, alice):
    """The owner's listing cache is keyed by their workspaces_version: an unchanged workspace's
    periodic rescan records its time without invalidating it; a change does invalidate it."""
    ws = domain.create_workspace(alice, {"a.txt": "1"})

    def scan() -> tuple[int, Workspace]:
        async def run():
            with domain.db() as session:
                await domain.workspaces.rescan(session, session.get(Workspace, ws.id))

        domain.run(run())
        return domain.fresh(User, alice.id).workspaces_version, domain.fresh(Workspace, ws.id)

    version, first = scan()
    again_version, again = scan()
    assert again_version == version and again.datetime_scanned > first.datetime_scanned
    assert again.datetime_last_modified == first.datetime_last_modified
    (domain.path(ws) / "new.txt").write_text("written by a job")
    changed_version, changed = scan()
    assert changed_version > version and changed.file_count == 2


def test_a_running_jobs_periodic_rescan_asks_du_first(domain, alice):
    """While a job runs, a rescan whose du total is the recorded size does not walk the tree
    (a seventh of the CPU); when the size moved, or when a job ended, the tree is read."""
    ws = domain.create_workspace(alice, {"a.txt": "1"})
    job = domain.start_job(alice, ws)
    set_job(domain, job.id, status="running", datetime_start=utcnow())
    r = rescans(domain, interval=0.001)
    walks: list[int] = []
    real = domain.workspaces._rescan_fs

    def counted(file_path, owner):
        walks.append(1)
        return real(file_path, owner)

    domain.workspaces._rescan_fs = counted

    async def cycle():
        await asyncio.sleep(0.01)
        assert r.due_kinds() == [(ws.id, True)]  # only the interval passed: quick
        await r.run_pass()
        await asyncio.gather(*r._running.values())

    first = domain.fresh(Workspace, ws.id)
    domain.run(cycle())
    unchanged = domain.fresh(Workspace, ws.id)
    assert walks == [] and unchanged.datetime_scanned > first.datetime_scanned
    (domain.path(ws) / "more.bin").write_bytes(b"x" * 50_000)  # the job writes
    domain.run(cycle())
    assert walks == [1] and listed_files(domain, ws) == ["/a.txt", "/more.bin"]
    set_job(domain, job.id, status="complete", datetime_end=utcnow())
    assert r.due_kinds() == [(ws.id, False)]  # a job ended: a full rescan


def test_a_scan_child_that_hangs_is_killed_with_its_children(monkeypatch, tmp_path):
    """A scan child past its time limit goes with everything it started (its du), so no
    orphan keeps reading the disk; `kill_all` does the same when the service stops."""
    monkeypatch.setattr(scanproc, "TIMEOUT", 0.5)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            scanproc._run_child(["sh", "-c", "sleep 31.7 & sleep 31.7"], fd)
    finally:
        os.close(fd)
    time.sleep(0.3)
    left = [p for p in os.listdir("/proc") if p.isdigit() and b"31.7" in _cmdline(p)]
    assert left == [] and scanproc._children == set()


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_periodic_rescans_are_spread_over_the_interval(domain, alice):
    """Ten workspaces with running jobs, all due: a pass starts only a few periodic rescans
    (enough to get through the rest within the interval), a workspace whose job ended at once
    whatever that budget says."""
    spaces = [domain.create_workspace(alice, name=f"w{i}") for i in range(10)]
    for ws in spaces:
        job = domain.start_job(alice, ws)
        set_job(domain, job.id, status="running", datetime_start=utcnow())
    r = rescans(domain, interval=0.001, concurrency=2)  # 0.001 s: everything due at once
    r.interval = 10.0  # ...and spread as if the interval were 10 s: 10 × 5 / 10 = 5 per pass
    ended = domain.create_workspace(alice, name="ended")
    job = domain.start_job(alice, ended)
    set_job(domain, job.id, status="complete", datetime_end=utcnow())

    async def passes() -> list[int]:
        counts = []
        for _ in range(3):
            counts.append(await r.run_pass())
            await asyncio.gather(*r._running.values())
        return counts

    with domain.db() as session:  # all of them last scanned long ago
        for ws in spaces:
            session.get(Workspace, ws.id).datetime_scanned = utcnow() - dt.timedelta(hours=1)
        session.commit()
    # the ended one and 5 of the 10 periodic ones (10 × 5 s / 10 s); then 3 of the 5 left,
    # then the last 2 (never fewer than rescan_concurrency)
    assert domain.run(passes()) == [1 + 5, 3, 2]
    assert r.due() == []
