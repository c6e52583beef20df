"""Jobs through the real hub: local processes and real Slurm jobs, as real test accounts."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import empty_answer, workspace_dir
from hubtest import ensure_system_user
from jobutil import (
    SLURM_RESOURCES,
    ensure_slurm,
    job,
    open_url,
    scontrol,
    server_base,
    slurm_env,
    start,
    started,
    stop_and_wait,
    wait_job,
)

#: local, and Slurm both ways on both clusters: the first cluster through its commands and its
#: slurmrestd, the second through its slurmrestd and its commands (its own slurm.conf)
RESOURCES = ["local", *SLURM_RESOURCES]


@pytest.fixture(scope="module", autouse=True)
def _slurm():
    ensure_slurm()


@pytest.fixture
def ws(make_workspace):
    return make_workspace(
        name="jobs", workspace_details={"files": [{"name": "data.csv", "content": "1,2\n"}]}
    )


def whoami(alice, j: dict) -> dict:
    r = requests.get(server_base(j) + "whoami", headers=alice.session.headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("resource", RESOURCES)
def test_start_reach_stop(hub, alice, ws, resource):
    j = started(
        alice, ws["id"], job_type="test_job", resource=resource, resource_options={"num_cpus": 2}
    )
    assert j["resource"] == resource and j["job_type"] == "test_job"
    assert j["resource_options"] == {
        "num_cpus": 2,
        "memory_mb": 2048,
        "time_limit_min": 240,
        "gpus": 0,
    }
    cur = j["job_details"]["current_job_details"]
    assert cur["message"] == "Ready."
    assert cur["connection_details"]["url_path"] == f"/user/uwst-alice/job-{j['id']}/lab"
    assert cur["connection_details"]["url_domain"] == hub.url
    assert 0 < cur["time_left"] <= 240 * 60
    metrics = j["job_details"]["metrics"]
    assert metrics["time_pending"] >= 0 and metrics["time_init"] >= 0
    # the server runs as the owner, in the workspace, with the job type's environment
    info = whoami(alice, j)
    account = pwd.getpwnam("uwst-alice")
    assert info["uid"] == account.pw_uid and info["gid"] == account.pw_gid
    assert info["cwd"] == str(workspace_dir(hub, "uwst-alice", ws["id"]))
    assert info["home"] == account.pw_dir and info["job_id"] == str(j["id"])
    if resource in SLURM_RESOURCES:
        cluster, _, partition = SLURM_RESOURCES[resource]
        assert j["cluster"] == cluster  # the record says which cluster runs it
        assert info["slurm_job_id"] == str(j["resource_job_id"])
        sc = scontrol(j["resource_job_id"], resource)
        assert sc["JobState"] == "RUNNING" and sc["UserId"].startswith("uwst-alice(")
        assert sc["NumCPUs"] == "2" and sc["Partition"] == partition
        assert sc["TimeLimit"] == "04:00:00" and sc["StdOut"].endswith(f"{j['id']}.log")
        assert sc["WorkDir"] == info["cwd"] and sc["JobName"] == f"uws-job-{j['id']}"
        if resource == "slurm-rest":  # the resource's extra directive, as a job property
            assert sc["Comment"] == "uws-rest-test"
    else:
        assert j["resource_job_id"] > 0 and j["cluster"] is None  # the process id
    # the workspace is active while the job runs
    assert alice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]["status"] == "active"
    # another user cannot use the job's server
    bob = requests.get(
        server_base(j) + "whoami", headers={"Authorization": "token nope"}, timeout=30
    )
    assert bob.status_code in (302, 403)

    time.sleep(1.2)
    done = stop_and_wait(alice, j["id"])
    assert done["status"] == "complete"
    assert done["job_details"]["current_job_details"]["message"] == "Stopped."
    assert done["datetime_end"] and float(done["core_hours"]) >= 2 / 3600  # >= 1 s x 2 CPUs
    if resource in SLURM_RESOURCES:  # the cancel seen in Slurm
        assert scontrol(j["resource_job_id"], resource)["JobState"] == "CANCELLED"
    deadline = time.monotonic() + 20
    while alice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]["status"] != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.25)
    # the ended job's named server is removed from the hub
    while time.monotonic() < deadline:
        servers = hub.hub_api("GET", "users/uwst-alice").json()["servers"]
        if f"job-{j['id']}" not in servers:
            break
        time.sleep(0.25)
    assert f"job-{j['id']}" not in hub.hub_api("GET", "users/uwst-alice").json()["servers"]


@pytest.mark.parametrize("resource", RESOURCES)
def test_jupyterlab_in_the_workspace(hub, alice, ws, resource):
    j = started(alice, ws["id"], job_type="jupyter_lab", resource=resource, timeout=180)
    base = server_base(j)
    h = alice.session.headers
    lab = requests.get(open_url(j), headers=h, timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    # the file browser shows the workspace; a file saved there belongs to the owner
    listing = requests.get(base + "api/contents", headers=h, timeout=30).json()
    assert "data.csv" in [c["name"] for c in listing["content"]]
    r = requests.put(
        base + "api/contents/made-in-lab.txt",
        headers=h,
        json={"type": "file", "format": "text", "content": "hi"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    f = workspace_dir(hub, "uwst-alice", ws["id"]) / "made-in-lab.txt"
    assert f.read_text() == "hi" and f.stat().st_uid == pwd.getpwnam("uwst-alice").pw_uid
    assert stop_and_wait(alice, j["id"])["status"] == "complete"


@pytest.mark.parametrize(
    "body,status,message",
    [
        (
            {"job_type": "test_job", "resource_options": {"num_cpus": 0}},
            422,
            "Invalid resource options found: [\"num_cpus: Value '0' not above minimum of 1.\"]",
        ),
        (
            {"job_type": "test_job", "resource_options": {"num_cpus": "two"}},
            422,
            "does not match required type int",
        ),
        (
            {"job_type": "test_job", "resource": "local", "resource_options": {"num_cpus": 6}},
            422,
            "num_cpus: Value '6' above maximum of 4 for resource local.",
        ),
        (
            {"job_type": "test_job", "resource": "local", "resource_options": {"gpus": 1}},
            422,
            "gpus: Value '1' above maximum of 0 for resource local.",
        ),
        (
            {
                "job_type": "test_job",
                "resource": "slurm-short",
                "resource_options": {"time_limit_min": 60},
            },
            422,
            "time_limit_min: Value '60' above maximum of 30 for resource slurm-short.",
        ),
        ({"job_type": "matlab"}, 400, "matlab is not in the list of available job types."),
        ({}, 400, "Missing job_type and no default job type set on workspace."),
        (
            {"job_type": "local_only", "resource": "slurm"},
            400,
            "Resource 'slurm' cannot run job type 'local_only'",
        ),
        ({"job_type": "test_job", "job_details": "x"}, 400, "Job details not JSON."),
        ({"job_type": "test_job", "resource_options": [1]}, 400, "Resource options not JSON."),
    ],
)
def test_refused_starts_create_no_job(alice, ws, body, status, message):
    before = alice.get("jobs/").json()["data"]["jobs"]
    r = start(alice, ws["id"], **body)
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert alice.get("jobs/").json()["data"]["jobs"] == before
    assert alice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]["status"] == "idle"


def test_unknown_options_are_ignored_and_defaults_used(alice, make_workspace):
    ws = make_workspace(default_job_type="test_job")
    j = started(alice, ws["id"], resource_options={"colour": "blue"})
    assert j["job_type"] == "test_job" and j["resource"] == "local"
    assert j["resource_options"] == {
        "num_cpus": 1,
        "memory_mb": 2048,
        "time_limit_min": 240,
        "gpus": 0,
    }
    stop_and_wait(alice, j["id"])


def test_one_job_per_workspace_and_stop_then_start(alice, ws):
    j = started(alice, ws["id"], job_type="test_job")
    r = start(alice, ws["id"], job_type="test_job")
    assert r.status_code == 400
    assert f"already has a running job (job {j['id']})" in r.json()["message"]
    # renewing a session: stop, then start at once (the old job is still stopping)
    assert alice.put(f"jobs/{j['id']}/stop/").status_code == 200
    r = start(alice, ws["id"], job_type="test_job")
    assert r.status_code == 200, r.text
    new = wait_job(alice, r.json()["data"]["job"]["id"], ("running",))
    assert wait_job(alice, j["id"], ("complete",))["status"] == "complete"
    r = alice.put(f"jobs/{j['id']}/stop/")
    assert r.status_code == 400 and r.json()["message"] == "This job is not running or pending."
    stop_and_wait(alice, new["id"])


def test_jobs_of_others_are_404_and_listing_filters(alice, bob, ws):
    j = started(alice, ws["id"], job_type="test_job")
    assert empty_answer(bob.get(f"jobs/{j['id']}/"), "jobs")  # as UWS: nothing of bob's
    assert bob.put(f"jobs/{j['id']}/stop/").status_code == 404
    assert bob.get(f"jobs/{j['id']}/events").status_code == 404
    assert (
        bob.put(f"workspaces/{ws['id']}/start/", json={"job_type": "test_job"}).status_code == 404
    )
    mine = alice.get("jobs/", params={"workspace_id": ws["id"], "status": "running"}).json()[
        "data"
    ]["jobs"]
    assert [x["id"] for x in mine] == [j["id"]]
    none = alice.get("jobs/", params={"job_type": "jupyter_lab", "workspace_id": ws["id"]}).json()
    assert (
        none["data"]["jobs"] == []
        and none["message"] == "Job matching given parameters could not be found."
    )
    # a workspace with a running job cannot be deleted
    r = alice.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 400 and "jobs are running" in r.json()["message"]
    stop_and_wait(alice, j["id"])


@pytest.mark.parametrize("resource", RESOURCES)
def test_dies_before_answering_fails_fast_with_reason(alice, ws, resource):
    """A job that dies before its server answers fails within moments, saying why."""
    t0 = time.monotonic()
    r = start(alice, ws["id"], job_type="broken_job", resource=resource)
    assert r.status_code == 200, r.text  # as UWS: a start is answered with its job
    job_id = r.json()["data"]["job"]["id"]
    j = wait_job(alice, job_id, ("failed", "complete", "running"), timeout=60)
    assert j["status"] == "failed", j
    assert time.monotonic() - t0 < 30  # not the 600 s start timeout
    assert "uws test: failing on purpose" in j["status_message"]
    if resource in SLURM_RESOURCES:
        assert (
            "before the server reported its port" in j["status_message"]
            or "before it started" in j["status_message"]
        )
    # a server that crashes right after starting
    r = start(alice, ws["id"], job_type="crashing_job", resource=resource)
    assert r.status_code == 200, r.text
    job_id = r.json()["data"]["job"]["id"]
    j = wait_job(alice, job_id, ("failed", "complete", "running"), timeout=60)
    assert j["status"] == "failed" and j["status_message"], j
    assert alice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]["status"] in (
        "idle",
        "active",
    )


def test_sbatch_error_fails_the_job_with_slurms_words(alice, ws):
    r = start(alice, ws["id"], job_type="test_job", resource="slurm", resource_options={"gpus": 1})
    job_id = (
        r.json()["data"]["job"]["id"]
        if r.status_code == 200
        else alice.get("jobs/").json()["data"]["jobs"][-1]["id"]
    )
    j = wait_job(alice, job_id, ("failed", "running"), timeout=60)
    assert j["status"] == "failed"
    assert "Slurm refused the job" in j["status_message"]
    assert (
        "gres" in j["status_message"].lower() or "generic resource" in j["status_message"].lower()
    )


@pytest.mark.parametrize("resource", RESOURCES)
def test_killed_outside_the_hub_is_reflected(alice, ws, resource):
    j = started(alice, ws["id"], job_type="test_job", resource=resource)
    if resource in SLURM_RESOURCES:
        subprocess.run(["scancel", str(j["resource_job_id"])], check=True, env=slurm_env(resource))
    else:
        os.kill(j["resource_job_id"], signal.SIGKILL)
    end = wait_job(alice, j["id"], ("failed", "complete"), timeout=60)
    assert end["status"] == "failed"
    if resource in SLURM_RESOURCES:
        assert "cancelled outside the hub" in end["status_message"]
    else:
        assert "exited with status -9" in end["status_message"]


@pytest.mark.parametrize("resource", ["slurm2", "slurm2-commands"])
def test_a_queued_job_says_when_slurm_expects_to_start_it(alice, ws, resource):
    """Someone else's job holds the second cluster's 8 CPUs for ten minutes: a job waiting
    behind it says when Slurm expects to start it (squeue's start time, or slurmrestd's),
    in its message and as ``start_estimate``, and its place in the queue (for a job read
    alone in its first seconds: tests/unit/test_slurm_clusters.py); once it runs, the
    estimate is gone."""
    ensure_system_user("uwst-blocker")
    blocker = (
        subprocess.run(
            ["runuser", "-u", "uwst-blocker", "--", "sbatch", "--parsable", "--cpus-per-task=8"]
            + ["--time=10", "--partition=batch", "--output=/dev/null", "--wrap", "sleep 600"],
            env=slurm_env(resource),
            capture_output=True,
            text=True,
            check=True,
            cwd="/",
        )
        .stdout.strip()
        .split(";")[0]
    )
    job_id = None
    try:
        r = start(alice, ws["id"], job_type="test_job", resource=resource)
        assert r.status_code == 200, r.text
        job_id = r.json()["data"]["job"]["id"]
        # Slurm gives a new job its reason ("None" until a scheduling pass has looked at it,
        # every 2 s here; not shown) and its estimate separately: wait for both
        deadline = time.monotonic() + 30
        while "start_estimate" not in (
            cur := job(alice, job_id)["job_details"]["current_job_details"]
        ) or not cur["message"].startswith(
            "Waiting in the Slurm queue (Resources, position 1 in batch)."
        ):
            assert time.monotonic() < deadline, cur
            time.sleep(0.5)
        estimate = dt.datetime.fromisoformat(cur["start_estimate"].replace("Z", "+00:00"))
        ahead = (estimate - dt.datetime.now(dt.timezone.utc)).total_seconds()
        assert 8 * 60 < ahead <= 10 * 60 + 5, cur  # when the blocker's time is up
        assert f"Slurm expects to start it by {estimate:%Y-%m-%d %H:%M} UTC." in cur["message"]
        assert job(alice, job_id)["status"] == "pending"
    except BaseException:
        if job_id is not None:  # (not left waiting behind the blocker for the next tests)
            alice.put(f"jobs/{job_id}/stop/")
            with contextlib.suppress(AssertionError):  # (the first failure is the one to read)
                wait_job(alice, job_id, ("failed", "complete"), timeout=60)
        raise
    finally:
        subprocess.run(["scancel", blocker], env=slurm_env(resource), check=True)
    j = wait_job(alice, job_id, ("running", "failed", "complete"), timeout=60)
    assert j["status"] == "running", j
    assert "start_estimate" not in j["job_details"]["current_job_details"]
    assert stop_and_wait(alice, job_id)["status"] == "complete"


def hub_stops(admin, job_id) -> list[dict]:
    r = admin.get("audit/", params={"action": "job.stop", "limit": 1000})
    return [e for e in r.json()["data"]["events"] if e["target_id"] == str(job_id)]


def test_stopped_from_the_hub_admin_side(hub, alice, ws, admin):
    j = started(alice, ws["id"], job_type="test_job", resource="slurm")
    r = hub.hub_api("DELETE", f"users/uwst-alice/servers/job-{j['id']}")
    assert r.status_code in (202, 204)
    end = wait_job(alice, j["id"], ("failed", "complete"), timeout=60)
    assert end["status"] == "complete"
    # who asked: the hub's admin service (the tests' own), as the hub request said
    assert end["job_details"]["current_job_details"]["message"] == (
        "Stopped from the hub by test-admin."
    )
    (stop,) = hub_stops(admin, j["id"])
    assert (stop["actor"], stop["actor_kind"], stop["user"]) == (
        "test-admin",
        "service",
        "uwst-alice",
    )
    assert stop["details"] == {"workspace_id": ws["id"], "via": "hub"} and stop["ip"]
    # a person stopping their own job from the hub's pages (the same API, their login)
    k = started(alice, ws["id"], job_type="test_job", resource="local")
    r = requests.delete(
        f"{hub.url}/hub/api/users/uwst-alice/servers/job-{k['id']}",
        headers={"Authorization": alice.session.headers["Authorization"]},
        timeout=30,
    )
    assert r.status_code in (202, 204), r.text
    end = wait_job(alice, k["id"], ("failed", "complete"), timeout=60)
    assert end["job_details"]["current_job_details"]["message"] == (
        "Stopped from the hub by uwst-alice."
    )
    assert [(e["actor"], e["actor_kind"]) for e in hub_stops(admin, k["id"])] == [
        ("uwst-alice", "user")
    ]
    # a stop through uws is recorded once, as its caller's
    k = started(alice, ws["id"], job_type="test_job", resource="local")
    assert stop_and_wait(alice, k["id"])["status"] == "complete"
    assert [(e["actor"], e["actor_kind"]) for e in hub_stops(admin, k["id"])] == [
        ("uwst-alice", "user")
    ]


@pytest.mark.parametrize("resource", ["slurm", "slurm2"])
def test_stopped_from_the_hub_while_queued(hub, alice, ws, admin, resource):
    """The hub's Stop on a job still starting (in the queue, or its server coming up) ends it
    as a stop, not as a failed start, and cancels the Slurm job (scancel as its owner, or
    slurmrestd with the owner's token)."""
    r = start(alice, ws["id"], job_type="slow_job", resource=resource)  # 6 s before the server
    assert r.status_code == 200, r.text
    job_id = r.json()["data"]["job"]["id"]
    deadline = time.monotonic() + 60
    while not (slurm_id := job(alice, job_id)["resource_job_id"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    r = hub.hub_api("DELETE", f"users/uwst-alice/servers/job-{job_id}")
    assert r.status_code in (202, 204), r.text
    end = wait_job(alice, job_id, ("failed", "complete"), timeout=60)
    assert end["status"] == "complete", end
    assert end["job_details"]["current_job_details"]["message"] == (
        "Stopped from the hub by test-admin."
    )
    assert [e["actor"] for e in hub_stops(admin, job_id)] == ["test-admin"]
    assert scontrol(slurm_id, resource).get("JobState") in (None, "CANCELLED")


def test_hub_api_refuses_bad_or_foreign_jobs(hub, alice, client_for, make_workspace):
    bob = client_for("uwst-bob")
    bws = make_workspace(bob, name="bobs")
    bjob = started(bob, bws["id"], job_type="test_job")
    a_tok = alice.session.headers["Authorization"]
    cases = [
        ("job-999999", {"job_id": 999999}, 404, "There is no job 999999"),
        (
            f"job-{bjob['id']}",
            {"job_id": bjob["id"]},
            403,
            f"Job {bjob['id']} does not belong to uwst-alice",
        ),
        ("job-5", {"job_id": 6}, 400, "Server job-5 is for job 5, not job 6"),
        ("notes", {}, 400, "uws_hub runs servers as jobs in workspaces"),
    ]
    for server, options, status, message in cases:
        r = requests.post(
            f"{hub.url}/hub/api/users/uwst-alice/servers/{server}",
            headers={"Authorization": a_tok},
            json=options,
            timeout=30,
        )
        assert r.status_code == status, (server, r.text)
        assert message in r.json()["message"]
    r = requests.post(
        f"{hub.url}/hub/api/users/uwst-alice/server", headers={"Authorization": a_tok}, timeout=30
    )
    assert r.status_code == 400 and "Workspaces page" in r.json()["message"]
    # an ended job cannot be started again
    stop_and_wait(bob, bjob["id"])
    time.sleep(1)
    r = requests.post(
        f"{hub.url}/hub/api/users/uwst-bob/servers/job-{bjob['id']}",
        headers={"Authorization": bob.session.headers["Authorization"]},
        json={"job_id": bjob["id"]},
        timeout=30,
    )
    assert r.status_code == 409 and "is complete; start a new job" in r.json()["message"]


def test_event_stream(hub, alice, ws, anon):
    r = start(alice, ws["id"], job_type="test_job", resource="slurm")
    job_id = r.json()["data"]["job"]["id"]
    assert anon.get(f"jobs/{job_id}/events").status_code == 401
    events = []
    with requests.get(
        f"{hub.url}/services/uws/api/jobs/{job_id}/events",
        headers=alice.session.headers,
        stream=True,
        timeout=90,
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                ev = json.loads(line[6:])
                events.append(ev)
                if ev["status"] == "running" and not any(e["status"] == "stopping" for e in events):
                    alice.put(f"jobs/{job_id}/stop/")
    statuses = [e["status"] for e in events]
    assert statuses[0] in ("pending", "running") and statuses[-1] == "complete"
    assert "running" in statuses and "stopping" in statuses
    messages = [e["job_details"]["current_job_details"].get("message") for e in events]
    assert (
        any(m and m.startswith("Submitted Slurm job") or m and "queue" in m for m in messages)
        or "Ready." in messages
    )
    assert messages[-1] == "Stopped."


def test_local_time_limit_is_enforced(hub, alice, ws):
    from uws_hub.db.models import Job
    from uws_hub.db.session import make_engine, make_sessionmaker

    j = started(alice, ws["id"], job_type="test_job", resource="local")
    Session = make_sessionmaker(make_engine(f"sqlite:///{hub.dir}/uws.sqlite"))
    with Session() as s:  # as if the job had asked for 2 seconds
        s.get(Job, j["id"]).time_limit_s = 2
        s.commit()
    end = wait_job(alice, j["id"], ("complete", "failed"), timeout=30)
    assert end["status"] == "complete"


def test_local_limits(alice, ws, make_workspace):
    one = started(
        alice, ws["id"], job_type="test_job", resource="local", resource_options={"num_cpus": 1}
    )
    info = whoami(alice, one)
    assert len(info["cpus_allowed"]) == 1  # pinned to as many CPUs as asked for
    assert info["rlimit_as"] == -1  # memory advisory here (MEM_LIMIT) ...
    assert info["mem_limit"] == str(2048 * 1024 * 1024)
    stop_and_wait(alice, one["id"])
    capped = started(
        alice,
        ws["id"],
        job_type="test_job",
        resource="local-capped",
        resource_options={"memory_mb": 1024},
    )
    assert (
        whoami(alice, capped)["rlimit_as"] == 1024 * 1024 * 1024
    )  # ... and enforced where configured
    stop_and_wait(alice, capped["id"])


def test_progress_on_the_hubs_own_stream(hub, alice, ws):
    """The hub's progress API (what its spawn page shows) carries the job's messages."""
    r = start(
        alice, ws["id"], job_type="slow_job", resource="slurm"
    )  # 6 s before the server starts
    job_id = r.json()["data"]["job"]["id"]
    url = f"{hub.url}/hub/api/users/uwst-alice/servers/job-{job_id}/progress"
    events = []
    # meanwhile, what the job record says (the web page's progress bar shows its percentage)
    recorded: list[tuple[str, int | None]] = []
    done = threading.Event()

    def read_record():
        cur = job(alice, job_id)["job_details"]["current_job_details"]
        if not recorded or recorded[-1] != (cur.get("message"), cur.get("progress")):
            recorded.append((cur.get("message"), cur.get("progress")))

    def watch_record():
        while not done.is_set():
            read_record()
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_record)
    watcher.start()
    try:
        with requests.get(url, headers=alice.session.headers, stream=True, timeout=60) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        wait_job(alice, job_id, ("running",), timeout=30)
    finally:
        done.set()
        watcher.join()
    read_record()  # as it is now that the job runs
    messages = [e.get("message", "") for e in events]
    assert any(m.startswith("Submitted Slurm job") for m in messages), messages
    assert any(m.startswith("Running on") for m in messages), messages
    assert "Waiting for the server to answer." in messages
    assert events[-1].get("ready") is True
    # the record carries the hub's percentage with each message, rising to 100 when ready
    hub_progress = {e["message"]: e["progress"] for e in events if "progress" in e}
    seen = [(m, p) for m, p in recorded if m in hub_progress]
    assert len(seen) >= 2, recorded
    assert all(p == hub_progress[m] for m, p in seen), (recorded, hub_progress)
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    assert recorded[-1] == ("Ready.", 100)
    stop_and_wait(alice, job_id)


def test_open_jupyterlab_with_a_browser_login(hub, alice, ws):
    from hubtest import hub_login

    j = started(alice, ws["id"], job_type="jupyter_lab", resource="local", timeout=180)
    browser, _ = hub_login(hub.url, "uwst-alice", "test-password")
    lab = browser.get(open_url(j), timeout=60)  # the hub's OAuth for the server, then the lab
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    assert any("oauth2/authorize" in (h.headers.get("Location") or "") for h in lab.history)
    # someone else's browser login is refused by the server
    other, _ = hub_login(hub.url, "uwst-bob", "test-password")
    denied = other.get(open_url(j), timeout=60)
    assert denied.status_code in (403, 404) or "JupyterLab" not in denied.text
    stop_and_wait(alice, j["id"])


def test_listing_shows_each_workspaces_last_job(alice, admin, make_workspace):
    """GET /workspaces/ carries each workspace's most recent job and follows its status — the
    listing is cached, and the job's changes (written by the spawner in the hub) renew it."""
    ws = make_workspace(name="with-last-job")

    def listed() -> dict:
        r = alice.get("workspaces/")
        assert r.status_code == 200, r.text
        (mine,) = [w for w in r.json()["data"]["workspaces"] if w["id"] == ws["id"]]
        return mine

    assert listed()["last_job"] is None
    first = started(alice, ws["id"], job_type="test_job", resource="local")
    assert listed()["last_job"]["id"] == first["id"]
    assert listed()["last_job"]["status"] == "running"  # set in the hub, seen through the cache
    stop_and_wait(alice, first["id"])
    last = listed()["last_job"]
    assert (last["id"], last["status"], last["job_type"]) == (first["id"], "complete", "test_job")
    assert last["datetime_end"]
    second = started(alice, ws["id"], job_type="test_job", resource="local")
    assert listed()["last_job"]["id"] == second["id"]
    # one workspace, and everyone's (operators), say the same
    r = alice.get(f"workspaces/{ws['id']}")
    assert r.json()["data"]["workspaces"][0]["last_job"]["id"] == second["id"]
    r = admin.get("workspaces/", params={"all_users": "true", "name": "with-last-job"})
    everyone = {w["id"]: w for w in r.json()["data"]["workspaces"]}
    assert everyone[ws["id"]]["last_job"]["id"] == second["id"]
    stop_and_wait(alice, second["id"])
    assert listed()["last_job"]["status"] == "complete"
