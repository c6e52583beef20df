"""Slurm's REST API as uws_hub reads it (`uws_hub.slurm.rest`): the tokens it mints per person
(what slurmrestd's ``auth/jwt`` checks: HS256 with the cluster's key, ``sun``, ``iat``, ``exp``)
and the job entries of ``/slurm/v0.0.38/jobs`` and ``/slurmdb/v0.0.38/job`` as the monitor keeps
jobs. The entries are what a real slurmrestd 22.05 answered (tests/unit/data/, captured on this
project's test cluster); the requests themselves run against a real slurmrestd in
tests/e2e/test_slurm_rest.py."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import jwt
import pytest

from uws_hub.slurm.monitor import UNKNOWN, SlurmMonitor
from uws_hub.slurm.rest import (
    JWTTokens,
    RestSource,
    SlurmRest,
    SlurmRestError,
    job_from_accounting,
    job_from_rest,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "jwt_hs256.key"
    path.write_bytes(b"k" * 32)
    return str(path)


def test_a_token_names_its_person_and_lives_briefly(key_file):
    tokens = JWTTokens(key_file, lifespan=300)
    t0 = int(time.time())
    claims = jwt.decode(tokens.token("alice"), b"k" * 32, algorithms=["HS256"])
    assert claims["sun"] == "alice"
    assert t0 - 1 <= claims["iat"] <= t0 + 1 and claims["exp"] == claims["iat"] + 300
    # one per person, reused while it has more than a third of its life left
    assert tokens.token("alice") == tokens.token("alice") != tokens.token("bob")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tokens.token("alice"), b"another key", algorithms=["HS256"])


def test_no_token_for_root_or_a_privileged_account(key_file):
    tokens = JWTTokens(key_file, refused=frozenset({"slurm"}))
    for name in ("root", "slurm"):
        with pytest.raises(ValueError, match=f"no Slurm token is made for {name}"):
            tokens.token(name)


def test_an_empty_key_is_refused(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        JWTTokens(str(tmp_path / "empty"))


def test_a_running_job_entry():
    entry = json.loads((DATA / "slurmrestd-v0.0.38-job-example.json").read_text())
    now = entry["start_time"] + 90
    job = job_from_rest(entry, now)
    assert (job.job_id, job.state, job.node, job.cpus, job.partition) == (
        "3",
        "RUNNING",
        "vm",
        1,
        "debug",
    )
    assert job.running and job.live and job.elapsed_s == 90
    # no time limit (null; its end_time is a year away): no time left to tell
    assert entry["time_limit"] is None and job.time_left_s is None
    assert job.name == "resttest" and job.reason == "None"
    limited = job_from_rest({**entry, "time_limit": 10}, now)
    assert limited.time_left_s == 600 - 90


def test_pending_ended_and_later_shapes():
    entry = json.loads((DATA / "slurmrestd-v0.0.38-job-example.json").read_text())
    pending = job_from_rest(
        {
            **entry,
            "job_state": "PENDING",
            "state_reason": "Resources",
            "start_time": 2000,  # Slurm's estimates, not times that passed
            "end_time": 2600,
        },
        1000,
    )
    assert pending.pending and pending.elapsed_s is None and pending.time_left_s is None
    assert pending.extra["start_estimate"] == 2000 and pending.reason == "Resources"
    done = job_from_rest(
        {**entry, "job_state": "COMPLETED", "start_time": 100, "end_time": 160}, 999
    )
    assert done.ended and done.elapsed_s == 60 and done.time_left_s is None
    # v0.0.39 and later: states as lists, times as {"set", "number"}
    later = job_from_rest(
        {
            **entry,
            "job_state": ["RUNNING"],
            "start_time": {"set": True, "number": 100},
            "end_time": {"set": True, "number": 700},
            "time_limit": {"set": True, "infinite": False, "number": 10},
        },
        400,
    )
    assert later.running and later.elapsed_s == 300 and later.time_left_s == 300
    endless = job_from_rest(
        {**entry, "time_limit": {"set": True, "infinite": True, "number": 0}}, 1
    )
    assert endless.time_left_s is None


def test_an_accounting_entry():
    entry = json.loads((DATA / "slurmrestd-dbv0.0.38-job-example.json").read_text())
    job = job_from_accounting(entry)
    assert (job.job_id, job.state, job.node, job.cpus, job.elapsed_s) == (
        "6",
        "COMPLETED",
        "vm",
        1,
        1,
    )
    assert job.ended and job.exit_code == "0"
    cancelled = job_from_accounting(
        {**entry, "state": {"current": "CANCELLED by 1004", "reason": "None"}}
    )
    assert cancelled.state == "CANCELLED"


@pytest.fixture
def hung_server():
    """A server that accepts connections and never answers (a slurmrestd stuck on its
    controller): a real listening socket."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


def test_a_slurmrestd_that_never_answers_is_unknown_never_ended(key_file, hung_server):
    rest = SlurmRest(hung_server, JWTTokens(key_file), read_user="reader", timeout=1)

    async def ask():
        with pytest.raises(SlurmRestError, match="did not answer") as e:
            await rest.jobs()
        assert e.value.status == 599 and not e.value.gone
        job = await RestSource(rest).look_up("42")
        assert job.state == UNKNOWN and job.live
        monitor = SlurmMonitor(source=RestSource(rest))
        assert (await monitor.status("42", max_age=0)).state == UNKNOWN

    asyncio.run(ask())
