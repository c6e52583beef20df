"""Slurm through slurmrestd (issue 16; `uws_hub.slurm.rest`), against the project's real
cluster and its real slurmrestd (scripts/slurm.sh: ``auth/jwt``, the key in its state
directory): a job submitted with a person's own token runs as that person; the service
account's one request lists every job; a person lowers their own job's time limit and cancels
it; Slurm's refusals (raising a limit without being an operator, a job it does not know) are
errors that say so, and no token is ever made for root; a slurmrestd that does not answer is an error, never an
answer."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from hubtest import REPO, ensure_system_user
from jobutil import ensure_slurm, scontrol
from uws_hub.slurm.monitor import GONE, UNKNOWN, SlurmMonitor
from uws_hub.slurm.rest import JWTTokens, RestSource, SlurmRest, SlurmRestError

PERSON, READER = "uwsr-sam", "uwsr-reader"


def slurm_sh(*args: str) -> str:
    return subprocess.run(
        [str(REPO / "scripts" / "slurm.sh"), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def rest():
    ensure_slurm()
    for name in (PERSON, READER):
        ensure_system_user(name)
    return SlurmRest(
        slurm_sh("rest-url"), JWTTokens(slurm_sh("jwt-key"), lifespan=120), read_user=READER
    )


def run(coro):
    return asyncio.run(coro)


def job_props(name: str, minutes: int) -> dict:
    return {
        "name": name,
        "current_working_directory": "/tmp",
        "environment": {"PATH": "/usr/bin:/bin"},
        "partition": "debug",
        "time_limit": minutes,
    }


def until_state(rest: SlurmRest, job_id: str, states: set[str], timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        job = run(rest.jobs()).get(job_id)
        if job is not None and job.state in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id}: {job}"
        time.sleep(0.3)


def test_a_persons_job_runs_as_them_and_is_theirs_to_change(rest):
    job_id = run(rest.submit(PERSON, "#!/bin/bash\nsleep 300\n", job_props("uws-rest-test", 10)))
    job = until_state(rest, job_id, {"RUNNING"})
    assert job.running and job.partition == "debug" and job.cpus == 1
    assert 0 < job.time_left_s <= 600  # (its 10-minute limit)
    sc = scontrol(job_id)
    assert sc["UserId"].startswith(f"{PERSON}(") and sc["TimeLimit"] == "00:10:00"
    # they may lower their own job's limit; raising it is for Slurm's operators
    run(rest.update(PERSON, job_id, {"time_limit": 5}))
    assert scontrol(job_id)["TimeLimit"] == "00:05:00"
    with pytest.raises(SlurmRestError, match="Access/permission denied"):
        run(rest.update(PERSON, job_id, {"time_limit": 20}))
    assert scontrol(job_id)["TimeLimit"] == "00:05:00"
    # someone else cannot cancel it; they can
    with pytest.raises(SlurmRestError, match="Access/permission denied"):
        run(rest.cancel(READER, job_id))
    assert scontrol(job_id)["JobState"] == "RUNNING"
    run(rest.cancel(PERSON, job_id))
    assert until_state(rest, job_id, {"CANCELLED"}).ended
    assert run(rest.job(job_id)).state == "CANCELLED"


def test_what_slurm_refuses_is_an_error_and_silence_is_not_an_answer(rest):
    # slurmrestd 22.05 would run a request with a valid root token as root: none is made
    with pytest.raises(SlurmRestError, match="no request is made as root"):
        run(rest.submit("root", "#!/bin/bash\ntrue\n", job_props("uws-rest-root", 1)))
    assert (
        "uws-rest-root"
        not in subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    )
    assert run(rest.job("999999")) is None  # a job Slurm does not know
    silent = SlurmRest("http://127.0.0.1:9", rest.tokens, read_user=READER, timeout=2)
    with pytest.raises(SlurmRestError, match="did not answer"):
        run(silent.jobs())


def test_the_monitor_reads_the_queue_through_slurmrestd(rest):
    """The shared monitor, fed by slurmrestd: one request per refresh for every job, a job
    gone from the queue looked up alone, and a slurmrestd that does not answer is "unknown"
    — a job is never called ended for it."""

    async def scenario():
        monitor = SlurmMonitor(interval=0.2, source=RestSource(rest))
        job_id = await rest.submit(PERSON, "#!/bin/bash\nsleep 300\n", job_props("uws-mon", 5))
        for _ in range(100):
            job = await monitor.status(job_id, max_age=0.2)
            if job.running:
                break
            await asyncio.sleep(0.2)
        assert job.running and job.node and 0 < job.time_left_s <= 300
        before = monitor.refreshes
        await asyncio.gather(*(monitor.status(job_id, max_age=0) for _ in range(5)))
        assert monitor.refreshes == before + 1  # five callers, one request
        # slurmrestd silent: unknown, and still live for everyone asking
        monitor.source = RestSource(
            SlurmRest("http://127.0.0.1:9", rest.tokens, read_user=READER, timeout=2)
        )
        silent = await monitor.status(job_id, max_age=0)
        assert silent.state == UNKNOWN and silent.live and "did not answer" in silent.reason
        monitor.source = RestSource(rest)
        await rest.cancel(PERSON, job_id)
        for _ in range(100):
            job = await monitor.status(job_id, max_age=0.2)
            if job.ended:
                break
            await asyncio.sleep(0.2)
        assert job.state == "CANCELLED"
        # a job the controller never had: asked alone, then accounting; none here: gone
        assert (await monitor.status("999998", max_age=0)).state == GONE

    run(scenario())
