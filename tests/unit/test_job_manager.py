"""Jobs on the service side (`JobManager`) against a fake hub: what a start records and asks
the hub, the refusals (the hub's, the workspace's one running job, the core-hour quota), stops,
and the sync that settles jobs the hub no longer runs. Only local jobs without a process id and
Slurm jobs the fake hub "runs" are used: nothing is signalled, no Slurm command is run. End to
end (a real hub, spawners, Slurm): tests/e2e/test_jobs.py, tests/e2e/test_job_recovery.py,
tests/e2e/test_shares.py::test_quotas_refuse_with_the_numbers."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect

import pytest
from sqlalchemy import select

from uws_hub.db.models import Job, User, Workspace, utcnow
from uws_hub.errors import BadRequest, HubAPIError, NotFound, UWSError, ValidationFailed
from uws_hub.jobs.specs import StartSpec
from uws_hub.quotas import QuotaExceeded
from uws_hub.service.hubclient import HubClient

from .domain import Domain, FakeHub, audit_actions

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def domain(tmp_path):
    with Domain(tmp_path, job_orphan_grace=0) as d:
        yield d


@pytest.fixture
def ws(domain, alice):
    return domain.create_workspace(alice, {"run.py": "print(1)\n"})


def jobs_of(domain: Domain) -> list[Job]:
    with domain.db() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def as_the_spawner(domain: Domain, job_id: int, **facts) -> None:
    """Write what the hub's spawner learns about a job (running, its start time, ...)."""
    with domain.db() as session:
        job = session.get(Job, job_id)
        for key, value in facts.items():
            setattr(job, key, value)
        session.commit()


def stop(domain: Domain, owner: User, job_id: int) -> Job:
    with domain.db() as session:
        user = session.get(User, owner.id)
        return domain.run(domain.jobs.stop(session, user, session.get(Job, job_id)))


def message_of(job: Job) -> str:
    return job.job_details["current_job_details"]["message"]


def test_the_fake_hub_has_the_real_clients_methods():
    """What the managers call on the fake is what they call on the real client."""
    for name, method in inspect.getmembers(HubClient, inspect.iscoroutinefunction):
        if name == "request" or name.startswith("_"):  # HTTP itself, its helpers: no wire
            continue
        fake = getattr(FakeHub, name, None)
        assert fake is not None, f"FakeHub lacks {name}"
        assert inspect.iscoroutinefunction(fake), name
        real_params = list(inspect.signature(method).parameters.values())
        fake_params = list(inspect.signature(fake).parameters.values())
        assert [(p.name, p.kind, p.default) for p in fake_params] == [
            (p.name, p.kind, p.default) for p in real_params
        ], name


# ---- start ------------------------------------------------------------------------------------


def test_a_start_records_a_pending_job_and_asks_the_hub(domain, alice, ws):
    job = domain.start_job(alice, ws, job_details={"notebook": "run.ipynb"})

    assert job.status == "pending" and job.server_name == f"job-{job.id}"
    assert domain.hub.started() == [("alice", f"job-{job.id}", {"job_id": job.id})]
    row = domain.fresh(Job, job.id)
    assert (row.job_type, row.resource, row.cpus, row.memory_mb, row.gpus) == (
        "jupyter_lab",
        "local",
        1,
        2048,
        0,
    )
    assert row.time_limit_s == 240 * 60
    assert row.resource_options == {
        "num_cpus": 1,
        "memory_mb": 2048,
        "time_limit_min": 240,
        "gpus": 0,
    }
    assert row.job_details["request_job_details"] == {"notebook": "run.ipynb"}
    assert message_of(row) == "Starting."
    w = domain.fresh(Workspace, ws.id)
    assert w.status == "active" and w.datetime_last_job_launch is not None
    with domain.db() as session:
        assert audit_actions(session)[-1] == "job.start"


def test_a_start_uses_the_workspaces_default_job_type_and_the_chosen_options(domain, alice):
    ws = domain.create_workspace(alice, default_job_type="batch")
    job = domain.start_job(alice, ws, resource_options={"num_cpus": 4, "time_limit_min": 30})
    row = domain.fresh(Job, job.id)
    assert (row.job_type, row.resource, row.cpus, row.time_limit_s) == ("batch", "cluster", 4, 1800)


@pytest.mark.parametrize(
    "body, error, message",
    [
        ({"job_type": "spark"}, BadRequest, "spark is not in the list of available job types."),
        (
            {"job_type": "batch", "resource": "local"},
            BadRequest,
            "Resource 'local' cannot run job type 'batch'; choose one of ['cluster'].",
        ),
        (
            {"resource_options": {"num_cpus": 12}},
            ValidationFailed,
            "Invalid resource options found: [\"num_cpus: Value '12' above maximum of 8 for "
            'resource local."]',
        ),
    ],
)
def test_refused_starts_record_nothing(domain, alice, ws, body, error, message):
    with pytest.raises(error) as e:
        domain.start_job(alice, ws, **body)
    assert e.value.message == message
    assert jobs_of(domain) == [] and domain.hub.calls == []
    assert domain.fresh(Workspace, ws.id).status == "idle"


def test_without_any_default_job_type_the_start_must_name_one(tmp_path):
    with Domain(tmp_path, default_job_type=None) as domain:
        alice = domain.user("alice")
        ws = domain.create_workspace(alice)
        with pytest.raises(BadRequest) as e:
            domain.start_job(alice, ws)
        assert e.value.message == "Missing job_type and no default job type set on workspace."
        assert domain.start_job(alice, ws, job_type="jupyter_lab").status == "pending"


def test_jobs_start_only_in_idle_or_active_workspaces(domain, alice, ws):
    with domain.db() as session:
        domain.workspaces.request_delete(session, session.get(Workspace, ws.id))
    with pytest.raises(BadRequest) as e:
        domain.start_job(alice, ws)
    assert (
        e.value.message
        == f"Workspace {ws.id} is deleting; jobs start in idle or active workspaces."
    )


def test_a_hub_refusal_ends_the_job_failed_with_the_reason(domain, alice, ws):
    domain.hub.refuse_start = HubAPIError(400, "Invalid user_options for this server")
    with pytest.raises(UWSError) as e:
        domain.start_job(alice, ws)
    assert e.value.status_code == 400
    assert e.value.message == "Job 1 could not be started: Invalid user_options for this server"
    [job] = jobs_of(domain)
    assert (job.status, job.status_message) == (
        "failed",
        "The hub did not start the job: Invalid user_options for this server",
    )
    assert job.datetime_end is not None
    assert domain.fresh(Workspace, ws.id).status == "idle"  # free for the next start


def test_too_many_starts_at_the_hub_is_a_429_that_says_to_retry(domain, alice, ws):
    domain.hub.refuse_start = HubAPIError(429, "Too many users trying to log in right now.")
    with pytest.raises(UWSError) as e:
        domain.start_job(alice, ws)
    assert e.value.status_code == 429
    assert e.value.message == (
        "Job 1 could not be started: The hub is starting too many jobs at once right now; try "
        "again in a minute."
    )
    assert jobs_of(domain)[0].status == "failed"


def test_a_spawn_that_failed_inside_the_hub_is_settled_by_the_sync(domain, alice, ws):
    """A 500: the spawn began and failed; the spawner records why. Here no spawner does, so
    the sync finds a pending job the hub has no server for."""
    domain.hub.refuse_start = HubAPIError(500, "Spawner failed to start")
    job = domain.start_job(alice, ws)
    assert job.status == "pending"
    counts = domain.run(domain.jobs.sync())
    assert counts["settled"] == 1
    row = domain.fresh(Job, job.id)
    assert (row.status, row.status_message) == (
        "failed",
        "The server did not start; the hub has no record of it.",
    )
    assert domain.fresh(Workspace, ws.id).status == "idle"


def test_a_slow_hub_is_answered_with_the_job_pending(tmp_path):
    """The caller waits at most c.UWS.hub_answer_wait; the start goes on, and the sync does not
    take the job for an orphan while the hub has not answered."""
    with Domain(tmp_path, hub_answer_wait=0.05, job_orphan_grace=0) as domain:
        alice = domain.user("alice")
        ws = domain.create_workspace(alice)

        async def scenario():
            domain.hub.hold_start = asyncio.Event()
            with domain.db() as session:
                job = await domain.jobs.start(
                    session,
                    session.get(User, alice.id),
                    session.get(Workspace, ws.id),
                    StartSpec(),
                )
            assert job.status == "pending"
            assert (await domain.jobs.sync())["settled"] == 0
            domain.hub.hold_start.set()
            for _ in range(100):
                if domain.hub.servers:
                    break
                await asyncio.sleep(0.01)
            return job

        job = domain.run(scenario())
        assert domain.hub.servers.keys() == {("alice", f"job-{job.id}")}
        assert domain.fresh(Job, job.id).status == "pending"


# ---- limits -----------------------------------------------------------------------------------


def test_one_running_job_per_workspace(domain, alice, ws):
    first = domain.start_job(alice, ws)
    with pytest.raises(BadRequest) as e:
        domain.start_job(alice, ws)
    assert e.value.message == (
        f"Workspace {ws.id} already has a running job (job {first.id}); stop it first or wait "
        "for it to end."
    )
    assert len(jobs_of(domain)) == 1
    # a job that is stopping does not count: stop, then start again at once
    stop(domain, alice, first.id)
    second = domain.start_job(alice, ws)
    assert [j.status for j in jobs_of(domain)] == ["stopping", "pending"]
    assert second.id != first.id


def test_max_jobs_per_workspace(tmp_path):
    with Domain(tmp_path, max_jobs_per_workspace=2) as domain:
        alice = domain.user("alice")
        ws = domain.create_workspace(alice)
        domain.start_job(alice, ws)
        domain.start_job(alice, ws)
        with pytest.raises(BadRequest):
            domain.start_job(alice, ws)
        assert len(jobs_of(domain)) == 2


def test_the_core_hour_quota_refuses_a_start_and_counts_running_jobs(tmp_path):
    with Domain(tmp_path, default_core_hours_quota=1.5) as domain:
        alice = domain.user("alice")
        ws1 = domain.create_workspace(alice, name="one")
        ws2 = domain.create_workspace(alice, name="two")
        with pytest.raises(QuotaExceeded) as e:
            domain.start_job(alice, ws1)  # 1 core × the default 240 minutes
        assert e.value.status_code == 403
        assert e.value.message == (
            "This job asks for 1 core × 4 h = 4 core-hours; you have 1.5 of 1.5 left. Ask for "
            "fewer cores or a shorter time limit, or ask an administrator for more core-hours."
        )
        assert jobs_of(domain) == [] and domain.hub.calls == []

        domain.start_job(alice, ws1, resource_options={"time_limit_min": 60})
        # the first job holds its hour: half an hour is what is left
        with pytest.raises(QuotaExceeded) as e:
            domain.start_job(alice, ws2, resource_options={"time_limit_min": 60})
        assert e.value.message.startswith(
            "This job asks for 1 core × 1 h = 1 core-hour; you have 0.5 of 1.5 left (1 more is "
            "held by your running jobs)."
        )
        domain.start_job(alice, ws2, resource_options={"time_limit_min": 30})
        assert len(jobs_of(domain)) == 2


# ---- stop and sync ----------------------------------------------------------------------------


def test_stop_then_the_sync_completes_the_job_and_removes_its_server(domain, alice, ws):
    job = domain.start_job(alice, ws)
    as_the_spawner(domain, job.id, status="running", datetime_start=utcnow())
    stopped = stop(domain, alice, job.id)
    assert stopped.status == "stopping"
    assert domain.hub.stopped() == [("alice", f"job-{job.id}", False)]
    with pytest.raises(BadRequest) as e:
        stop(domain, alice, job.id)
    assert e.value.message == "This job is not running or pending."

    counts = domain.run(domain.jobs.sync())
    assert counts["settled"] == 1
    row = domain.fresh(Job, job.id)
    assert (row.status, row.status_message, message_of(row)) == ("complete", None, "Stopped.")
    assert row.datetime_end is not None and not row.server_removed
    assert domain.fresh(Workspace, ws.id).status == "idle"

    # the next pass removes the ended job's named server from the hub
    assert domain.run(domain.jobs.sync())["removed"] == 1
    assert domain.hub.stopped()[-1] == ("alice", f"job-{job.id}", True)
    assert domain.fresh(Job, job.id).server_removed
    assert domain.hub.named == set()
    with domain.db() as session:
        assert audit_actions(session)[-2:] == ["job.start", "job.stop"]


def test_a_running_job_whose_server_is_gone_ends_failed(domain, alice, ws):
    job = domain.start_job(alice, ws)
    as_the_spawner(domain, job.id, status="running", datetime_start=utcnow())
    assert domain.run(domain.jobs.sync())["settled"] == 0  # listed by the hub: left alone

    domain.hub.lose("alice", job.server_name)
    assert domain.run(domain.jobs.sync())["settled"] == 1
    row = domain.fresh(Job, job.id)
    assert (row.status, row.status_message) == (
        "failed",
        "The server is gone; the hub no longer runs it.",
    )
    assert domain.fresh(Workspace, ws.id).status == "idle"


def test_a_new_job_missing_from_the_hub_gets_its_grace(domain, alice, ws):
    job = domain.start_job(alice, ws)
    domain.hub.lose("alice", job.server_name)
    domain.settings.job_orphan_grace = 3600
    assert domain.run(domain.jobs.sync())["settled"] == 0
    assert domain.fresh(Job, job.id).status == "pending"
    domain.settings.job_orphan_grace = 0
    assert domain.run(domain.jobs.sync())["settled"] == 1
    assert domain.fresh(Job, job.id).status == "failed"


def test_a_hub_that_does_not_answer_settles_nothing(domain, alice, ws):
    job = domain.start_job(alice, ws)
    domain.hub.lose("alice", job.server_name)
    domain.hub.refuse_listing = HubAPIError(599, "cannot reach the hub: Connection refused")
    counts = domain.run(domain.jobs.sync())
    assert not any(counts.values())
    assert domain.fresh(Job, job.id).status == "pending"
    assert domain.fresh(Workspace, ws.id).status == "active"


def test_a_local_job_past_its_time_limit_is_stopped(domain, alice, ws):
    job = domain.start_job(alice, ws, resource_options={"time_limit_min": 5})
    as_the_spawner(
        domain, job.id, status="running", datetime_start=utcnow() - dt.timedelta(minutes=6)
    )
    counts = domain.run(domain.jobs.sync())
    assert counts["timeouts"] == 1
    row = domain.fresh(Job, job.id)
    assert row.status == "stopping"
    assert message_of(row) == "Time limit of 5 minutes reached; stopping."
    assert domain.hub.stopped() == [("alice", job.server_name, False)]


def test_slurm_jobs_keep_their_own_time_limits(domain, alice):
    ws = domain.create_workspace(alice, default_job_type="batch")
    job = domain.start_job(alice, ws, resource_options={"time_limit_min": 5})
    as_the_spawner(
        domain, job.id, status="running", datetime_start=utcnow() - dt.timedelta(minutes=6)
    )
    assert not any(domain.run(domain.jobs.sync()).values())
    assert domain.fresh(Job, job.id).status == "running"


# ---- queries and live shares ------------------------------------------------------------------


def test_listing_and_getting_jobs(domain, alice, ws):
    bob = domain.user("bob")
    other = domain.create_workspace(alice, name="other", default_job_type="batch")
    first = domain.start_job(alice, ws)
    second = domain.start_job(alice, other)
    bobs = domain.start_job(bob, domain.create_workspace(bob))

    with domain.db() as session:
        me = session.get(User, alice.id)

        def ids(**filters):
            return [j.id for j in session.scalars(domain.jobs.list_query(me, filters))]

        assert ids() == [first.id, second.id]
        assert ids(workspace_id=str(other.id)) == [second.id]
        assert ids(job_type="jupyter_lab") == [first.id]
        assert ids(status="pending") == [first.id, second.id]
        assert ids(workspace_id="abc") == []
        assert domain.jobs.get(session, me, str(first.id)).id == first.id
        for other_id in (bobs.id, "x"):
            with pytest.raises(NotFound) as e:
                domain.jobs.get(session, me, other_id)
            assert e.value.message == f"Job {other_id} not found for user."


def test_deleting_while_a_job_stops_waits_for_it_and_hides_its_jobs(domain, alice, ws):
    """As UWS: a stopping job does not refuse the delete; the directory goes once the job has
    ended; the jobs of a deleted workspace leave the listings (their rows stay)."""
    job = domain.start_job(alice, ws)
    as_the_spawner(domain, job.id, status="running", datetime_start=utcnow())
    with domain.db() as session, pytest.raises(BadRequest) as e:
        domain.workspaces.request_delete(session, session.get(Workspace, ws.id))
    assert e.value.message == "Cannot delete workspace, jobs are running for this workspace."
    stop(domain, alice, job.id)
    with domain.db() as session:
        domain.workspaces.request_delete(session, session.get(Workspace, ws.id))
        session.commit()
    directory = domain.path(domain.fresh(Workspace, ws.id))
    domain.run(domain.workspaces.drive(ws.id))  # the job is still stopping: nothing removed
    waiting = domain.fresh(Workspace, ws.id)
    assert (waiting.status, waiting.status_message) == (
        "deleting",
        f"Deleted once job {job.id} has stopped.",
    )
    assert directory.is_dir()
    domain.run(domain.jobs.sync())  # the job ends
    domain.run(domain.workspaces.drive(ws.id))
    assert domain.fresh(Workspace, ws.id).status == "deleted" and not directory.exists()
    with domain.db() as session:
        me = session.get(User, alice.id)
        assert list(session.scalars(domain.jobs.list_query(me, {}))) == []
        with pytest.raises(NotFound):
            domain.jobs.get(session, me, job.id)
        assert session.get(Job, job.id).status == "complete"  # kept for the usage report


def test_live_shares_go_through_the_hub(domain, alice, ws):
    job = domain.start_job(alice, ws)
    with domain.db() as session:
        me, row = session.get(User, alice.id), session.get(Job, job.id)
        domain.run(domain.jobs.grant_live_share(session, me, row, {"user": "bob"}))
        assert domain.run(domain.hub.list_shares("alice", job.server_name)) == [{"user": "bob"}]
        domain.run(domain.jobs.revoke_live_share(session, me, row, {"user": "bob"}))
        assert domain.run(domain.hub.list_shares("alice", job.server_name)) == []
        assert audit_actions(session)[-2:] == ["job.share", "job.unshare"]
