"""Sessions people can plan around (`uws_hub.jobs.sessions`): the policy that bounds extending a
running job (the stricter of its resource's and job type's settings, the site's defaults
otherwise), the extension itself (time limit, record, audit, refusals with the numbers) and the
time-limit warnings (each point once per end time, re-armed by an extension). On real jobs,
Slurm and JupyterLab: tests/e2e/test_sessions.py."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from uws_hub.db.models import AuditEvent, Job, User, utcnow
from uws_hub.errors import BadRequest, Forbidden, HubAPIError, UWSError
from uws_hub.jobs import sessions
from uws_hub.jobs.sessions import SessionManager, left_text, policy_for
from uws_hub.jobs.state import end_job

from .domain import Domain

RESOURCES = {
    "local": {"kind": "local", "name": "This server", "max_cpus": 8},
    "strict": {
        "kind": "local",
        "name": "Strict",
        "max_extensions": 1,
        "max_extension_min": 30,
        "max_total_time_min": 150,
        "idle_timeout_min": 20,
    },
    "cluster": {
        "kind": "slurm",
        "name": "Cluster",
        "partition": "debug",
        "max_time_limit_min": 600,
    },
}
JOB_TYPES = {
    "jupyter_lab": {"name": "JupyterLab"},
    "long": {"name": "Long", "max_total_time_min": 1440},
    "no_idle": {"name": "Never idle", "idle_timeout_min": 0},
    "short": {
        "name": "Short",
        "max_extensions": 3,
        "max_extension_min": 15,
        "idle_timeout_min": 45,
    },
}


@pytest.fixture
def domain(tmp_path):
    with Domain(tmp_path, resources=RESOURCES, job_types=JOB_TYPES) as d:
        yield d


def running(
    d: Domain, owner: User, *, resource="local", job_type="jupyter_lab", minutes=120, ago=0
):
    """A running job of `owner` with a time limit of `minutes`, started `ago` minutes ago."""
    ws = d.create_workspace(owner)
    job = d.start_job(owner, ws, resource=resource, job_type=job_type)
    with d.db() as session:
        row = session.get(Job, job.id)
        row.status = "running"
        row.datetime_start = utcnow() - dt.timedelta(minutes=ago)
        row.time_limit_s = minutes * 60
        session.commit()
    return job.id


def extend(d: Domain, owner: User, job_id: int, minutes: int, used: int | None = None) -> Job:
    async def main():
        with d.db() as session:
            user = session.get(User, owner.id)
            job = session.get(Job, job_id)
            return await d.sessions.extend(session, user, job, minutes, used)

    return d.run(main())


def test_the_stricter_policy_applies_and_the_sites_defaults_elsewhere(domain):
    s = domain.settings
    plain = policy_for(s, "local", "jupyter_lab")
    assert (plain.max_extensions, plain.max_extension_min) == (2, 60)  # c.UWS defaults
    assert plain.max_total_time_min is None and plain.idle_timeout_min == 0
    strict = policy_for(s, "strict", "short")
    assert (strict.max_extensions, strict.max_extension_min) == (1, 15)
    assert (strict.max_total_time_min, strict.idle_timeout_min) == (150, 20)
    assert policy_for(s, "cluster", "jupyter_lab").max_total_time_min == 600  # the resource's max
    # a job type cannot lift the resource's hard maximum; 0 turns idle shutdown off there
    assert policy_for(s, "cluster", "long").max_total_time_min == 600
    s.idle_timeout_min = 30  # a site-wide idle limit ...
    assert policy_for(s, "local", "jupyter_lab").idle_timeout_min == 30
    assert policy_for(s, "local", "no_idle").idle_timeout_min == 0  # ... a job type opts out
    assert policy_for(s, "strict", "no_idle").idle_timeout_min == 20  # the resource's still holds


def test_an_extension_moves_the_limit_and_is_recorded(domain, alice):
    job_id = running(domain, alice, minutes=120, ago=100)
    job = extend(domain, alice, job_id, 45)
    assert job.time_limit_s == 165 * 60
    row = domain.fresh(Job, job_id)
    assert [e["minutes"] for e in row.job_details["extensions"]] == [45]
    with domain.db() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.extend"))
    assert event.details["minutes"] == 45 and event.details["time_limit_min"] == 165
    offer = sessions.offer(domain.settings, row)
    assert offer == {"allowed": True, "max_minutes": 60, "used": 1, "max": 2, "why_not": None}


@pytest.mark.parametrize(
    "resource, job_type, minutes, asked, message",
    [
        (
            "local",
            "jupyter_lab",
            120,
            90,
            "One extension may add at most 60 minutes; 90 were asked for.",
        ),
        (
            "strict",
            "jupyter_lab",
            130,
            25,
            "Extending by 25 minutes would make this job's time limit 155 minutes; the most "
            "allowed is 150 minutes, so at most 20 more can be added.",
        ),
        (
            "strict",
            "jupyter_lab",
            150,
            5,
            "This job already has the longest time allowed here (150 minutes).",
        ),
    ],
    ids=["per-extension", "total", "at-the-total"],
)
def test_refusals_name_the_numbers(domain, alice, resource, job_type, minutes, asked, message):
    job_id = running(domain, alice, resource=resource, job_type=job_type, minutes=minutes)
    with pytest.raises(Forbidden) as e:
        extend(domain, alice, job_id, asked)
    assert e.value.message == message
    assert domain.fresh(Job, job_id).time_limit_s == minutes * 60  # nothing changed


def test_the_number_of_extensions_is_bounded(domain, alice):
    job_id = running(domain, alice, resource="strict", minutes=60)
    extend(domain, alice, job_id, 30)
    with pytest.raises(Forbidden, match=r"extended 1 time, the most allowed \(1\)"):
        extend(domain, alice, job_id, 10)
    assert domain.fresh(Job, job_id).time_limit_s == 90 * 60


def test_the_core_hour_quota_counts_the_added_time(domain, alice):
    job_id = running(domain, alice, minutes=60)  # 1 core: 1 core-hour held by the job
    with domain.db() as session:
        domain.quotas.set_limits(session, session.get(User, alice.id), {"core_hours_limit": 1.5})
        session.commit()
    with pytest.raises(UWSError) as e:
        extend(domain, alice, job_id, 60)
    assert e.value.status_code == 403
    assert e.value.message.startswith(
        f"Extending job {job_id} by 60 minutes asks for 1 core × 1 h = 1 core-hour; you have "
        "0.5 of 1.5 left (1 more is held by your running jobs)."
    )
    extend(domain, alice, job_id, 30)  # half an hour fits
    assert domain.fresh(Job, job_id).time_limit_s == 90 * 60


def test_only_a_running_job_and_a_whole_number_of_minutes(domain, alice):
    job_id = running(domain, alice)
    for body in ({}, {"minutes": 0}, {"minutes": "10"}, {"minutes": 1.5}, [], {"minutes": True}):
        with pytest.raises(BadRequest, match=r'\{"minutes": n\}'):
            SessionManager.parse_request(body)
    with pytest.raises(BadRequest, match='"used" must be the number of extensions seen'):
        SessionManager.parse_request({"minutes": 5, "used": -1})
    assert SessionManager.parse_request({"minutes": 5, "used": 1}) == (5, 1)
    with domain.db() as session:
        session.get(Job, job_id).status = "stopping"
        session.commit()
    with pytest.raises(
        BadRequest, match=f"Only a running job can be extended. Job {job_id} is stopping."
    ):
        extend(domain, alice, job_id, 10)


def test_a_repeated_extension_is_not_applied_twice(domain, alice):
    job_id = running(domain, alice, minutes=60)
    extend(domain, alice, job_id, 30, used=0)
    with pytest.raises(UWSError) as e:  # the same click again (its answer was lost, say)
        extend(domain, alice, job_id, 30, used=0)
    assert e.value.status_code == 409 and "your extension was already made" in e.value.message
    assert domain.fresh(Job, job_id).time_limit_s == 90 * 60


def test_a_job_that_ends_while_slurm_extends_it_stays_as_it_ended(domain, alice, monkeypatch):
    job_id = running(domain, alice, resource="cluster", minutes=60)
    with domain.db() as session:
        session.get(Job, job_id).resource_job_id = 4711
        session.commit()
    asked = []

    async def slurm_then_the_job_ends(cluster: str | None, slurm_id: str, minutes: int) -> None:
        asked.append((cluster, slurm_id, minutes))
        with domain.db() as session:  # the spawner records the end meanwhile
            job = session.get(Job, job_id)
            end_job(job, "complete", "The job ended.")
            session.commit()

    monkeypatch.setattr(domain.sessions, "_raise_slurm_limit", slurm_then_the_job_ends)
    with pytest.raises(UWSError) as e:
        extend(domain, alice, job_id, 30)
    assert e.value.status_code == 409 and "it is complete now" in e.value.message
    assert asked == [("default", "4711", 90)]  # (a row naming no cluster: its resource's)
    row = domain.fresh(Job, job_id)
    assert row.status == "complete" and row.time_limit_s == 60 * 60
    assert row.job_details["current_job_details"]["message"] == "The job ended."
    assert "extensions" not in row.job_details


def test_warnings_come_once_per_point_and_an_extension_rearms_them(domain, alice):
    job_id = running(domain, alice, minutes=60)
    start = domain.fresh(Job, job_id).datetime_start
    watch = domain.session_watch

    def at(minutes: float) -> list[int]:
        return watch.warn_due(start + dt.timedelta(minutes=minutes))

    def warning() -> dict | None:
        return domain.fresh(Job, job_id).job_details["current_job_details"].get("time_warning")

    assert at(20) == [] and warning() is None  # 40 minutes left: before the first point
    assert at(31) == [job_id]
    assert warning()["point"] == 1800
    assert warning()["message"].startswith("This session ends in 29 minutes, at ")
    assert "Save your work, or extend it (up to 60 minutes more)." in warning()["message"]
    assert at(32) == []  # told at this point already
    assert at(55) == [job_id] and warning()["point"] == 600  # 5 minutes left: the 10-minute point
    assert at(58.5) == [job_id] and warning()["point"] == 120
    assert at(59.5) == []
    extend(domain, alice, job_id, 60)
    assert warning() is None  # the end moved
    assert at(59.5) == []  # 60.5 minutes left
    assert at(100) == [job_id] and warning()["message"].startswith(
        "This session ends in 20 minutes"
    )
    assert at(121) == []  # past the end: nothing more to say


def test_the_last_warning_says_when_no_more_time_can_be_added(domain, alice):
    job_id = running(domain, alice, resource="strict", minutes=150)
    start = domain.fresh(Job, job_id).datetime_start
    domain.session_watch.warn_due(start + dt.timedelta(minutes=145))
    told = domain.fresh(Job, job_id).job_details["current_job_details"]["time_warning"]
    assert told["message"].endswith(
        "Save your work: This job already has the longest time allowed here (150 minutes)."
    )


def test_time_is_said_as_people_say_it():
    assert [left_text(s) for s in (1, 45, 89, 90, 600, 3599, 3600, 3900, 7260)] == [
        "1 second",
        "45 seconds",
        "89 seconds",
        "2 minutes",
        "10 minutes",
        "60 minutes",
        "1 h 00 min",
        "1 h 05 min",
        "2 h 01 min",
    ]


# ---- idle shutdown ----------------------------------------------------------------------------


def idle_job(d: Domain, owner: User, *, started_ago: int = 60) -> tuple[int, str]:
    """A running job on the "strict" resource (idle limit 20 minutes, warned 10 minutes
    before); the hub lists its server."""
    job_id = running(d, owner, resource="strict", minutes=240, ago=started_ago)
    name = d.fresh(Job, job_id).server_name
    d.hub.servers[(owner.name, name)] = {"name": name, "url": f"/user/{owner.name}/{name}/"}
    return job_id, name


def active(d: Domain, owner: User, name: str, minutes_ago: float) -> None:
    when = utcnow() - dt.timedelta(minutes=minutes_ago)
    d.hub.servers[(owner.name, name)]["last_activity"] = when.isoformat().replace("+00:00", "Z")


def check(d: Domain, later_min: float = 0) -> dict[str, int]:
    return d.run(d.session_watch.check_idle(utcnow() + dt.timedelta(minutes=later_min)))


def idle_warning(d: Domain, job_id: int) -> dict | None:
    return d.fresh(Job, job_id).job_details["current_job_details"].get("idle_warning")


NOTHING = {"warned": 0, "stopped": 0, "cleared": 0}


def test_an_idle_job_is_warned_then_stopped_and_ends_saying_why(domain, alice):
    d = domain
    job_id, name = idle_job(d, alice)
    active(d, alice, name, 5)  # recently used: nothing to say
    assert check(d) == NOTHING
    active(d, alice, name, 12)
    assert check(d)["warned"] == 1
    told = idle_warning(d, job_id)
    assert told["message"].startswith("This session has had no activity for 12 minutes: it will")
    assert "after 20 minutes without activity. Use it (open it, run something)" in told["message"]
    assert check(d) == NOTHING  # once
    active(d, alice, name, 21)  # past the limit, but warned only just now: not yet
    assert check(d) == NOTHING and d.fresh(Job, job_id).status == "running"
    assert check(d, later_min=10)["stopped"] == 1  # the warning has stood its 10 minutes
    row = d.fresh(Job, job_id)
    assert row.status == "stopping" and d.hub.stopped() == [(alice.name, name, False)]
    with d.db() as session:
        (stop,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.stop"))
        assert stop.details["reason"] == "Stopped after 20 minutes idle."
        end_job(session.get(Job, job_id), "complete", "Stopped.")  # as the spawner records it
        session.commit()
    assert d.fresh(Job, job_id).job_details["current_job_details"]["message"] == (
        "Stopped after 20 minutes idle."
    )


def test_a_job_found_long_idle_is_warned_before_it_is_stopped(domain, alice):
    d = domain
    job_id, name = idle_job(d, alice)
    active(d, alice, name, 50)  # (the service was down meanwhile, say)
    assert check(d)["warned"] == 1 and d.fresh(Job, job_id).status == "running"


def test_activity_after_the_warning_cancels_it(domain, alice):
    d = domain
    job_id, name = idle_job(d, alice)
    active(d, alice, name, 15)
    assert check(d)["warned"] == 1
    active(d, alice, name, 0.5)  # they came back
    assert check(d)["cleared"] == 1 and idle_warning(d, job_id) is None
    assert check(d, later_min=5) == NOTHING and d.fresh(Job, job_id).status == "running"


def test_nothing_is_concluded_when_the_hub_does_not_answer(domain, alice):
    d = domain
    job_id, name = idle_job(d, alice)
    active(d, alice, name, 50)
    d.hub.refuse_listing = HubAPIError(503, "hub down")
    assert check(d) == NOTHING and check(d, later_min=30) == NOTHING
    assert d.fresh(Job, job_id).status == "running" and idle_warning(d, job_id) is None


def test_jobs_without_an_idle_limit_are_left_alone(domain, alice):
    d = domain
    job_id = running(d, alice, minutes=240, ago=200)  # "local": no idle limit
    d.hub.servers[(alice.name, d.fresh(Job, job_id).server_name)] = {"url": "/x/"}
    assert check(d, later_min=500) == NOTHING
    assert d.hub.calls.count(("list",)) == 0  # not even the hub asked


class FakeKernel:
    def __init__(self, state: str):
        self.execution_state = state


class FakeServerApp:
    """What `uws_hub.labserver.mark_busy_kernels` reads of a jupyter_server ServerApp."""

    def __init__(self, states: list[str]):
        kernels = {f"k{i}": FakeKernel(st) for i, st in enumerate(states)}
        self.kernel_manager = SimpleNamespace(
            list_kernel_ids=lambda: list(kernels), get_kernel=lambda k: kernels[k]
        )
        self.web_app = SimpleNamespace(settings={})


def test_the_job_server_counts_a_busy_kernel_as_activity():
    """A kernel computing silently sends nothing the hub would see: the job server's extension
    records it as activity, under a key jupyter_server's last_activity() counts (*_last_activity),
    so its activity reports to the hub keep the job from being called idle."""
    from uws_hub.labserver import mark_busy_kernels

    app = FakeServerApp(["idle", "busy"])
    assert mark_busy_kernels(app) is True
    (key,) = app.web_app.settings
    assert key.endswith("_last_activity")
    assert (utcnow() - app.web_app.settings[key]).total_seconds() < 5
    quiet = FakeServerApp(["idle", "starting"])
    assert mark_busy_kernels(quiet) is False and quiet.web_app.settings == {}


def test_the_lab_page_gets_the_warnings_and_what_it_may_add():
    from uws_hub.labserver import session_of

    warning = {"kind": "time", "at": "2026-12-06T10:00:00Z", "ends_at": "2026-12-06T10:10:00Z"}
    job = {
        "status": "running",
        "job_details": {
            "current_job_details": {
                "time_left": 600,
                "time_warning": {**warning, "message": "This session ends in 10 minutes."},
                "idle_warning": {"message": "No activity."},
                "extension": {"allowed": True, "max_minutes": 45, "why_not": None},
            }
        },
    }
    out = session_of(job)
    assert out["time_left"] == 600 and out["end"] == "2026-12-06T10:10:00Z"
    assert [w["message"] for w in out["warnings"]] == ["This session ends in 10 minutes."]
    assert out["idle"] == {"warning": "No activity."}
    assert out["extend"] == {"allowed": True, "minutes": 45, "used": 0, "why_not": None}
    ended = session_of({"status": "complete", "job_details": {"current_job_details": {}}})
    assert ended["time_left"] is None and ended["warnings"] == []
    assert ended["extend"] == {"allowed": False, "minutes": 0, "used": 0, "why_not": None}
