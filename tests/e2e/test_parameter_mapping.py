"""Per-resource ``parameter_mapping`` (as UWS), on a real hub and real Slurm: the test
configuration declares the portal's ``time_limit_minutes`` and ``gpu_enabled`` beside uws_hub's
own parameters and maps them on every resource (tests/e2e/hub_config.py). A start with the
portal's names gets that time limit and one GPU (on the resource's GPU partition) from Slurm,
a local job is stopped at that time limit, a GPU is refused where a resource has none, and the
job's record shows the translated options. The mapping's rules: tests/unit/test_parameter_mapping.py."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from jobutil import (
    ensure_slurm,
    job,
    scontrol,
    server_base,
    start,
    started,
    stop_and_wait,
    wait_job,
)


@pytest.fixture(scope="module", autouse=True)
def _slurm():
    ensure_slurm()


def job_params(client, j: dict) -> dict:
    """The ``UWS_PARAM_*`` variables the job's server runs with."""
    r = requests.get(server_base(j) + "whoami", headers=client.session.headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["params"]


@pytest.fixture
def minute_job(alice):
    """A local job started with the portal's one-minute time limit (its minute passes in make
    test's background pytest, alongside the other tests)."""
    r = alice.post("workspaces/", json={"name": "portal-local", "description": "d"})
    assert r.status_code == 200, r.text
    return started(
        alice,
        r.json()["data"]["workspace"]["id"],
        job_type="test_job",
        resource="local",
        resource_options={"time_limit_minutes": 1, "gpu_enabled": False},
    )


def test_the_portals_parameters_are_offered(anon):
    params = {p["variable_name"]: p for p in anon.get("parameters/").json()["parameters"]}
    assert params["time_limit_minutes"]["validation"]["type"] == "int"
    assert params["gpu_enabled"]["validation"]["type"] == "bool"
    assert params["gpu_enabled"]["default_value"] is False
    assert {"num_cpus", "memory_mb", "time_limit_min", "gpus"} <= set(params)


@pytest.mark.parametrize(
    "gpu, partition, tres", [(True, "gpu", "gres:gpu:1"), (False, "short", None)]
)
def test_slurm_gets_the_time_limit_and_a_gpu_from_the_portals_names(
    alice, make_workspace, gpu, partition, tres
):
    ws = make_workspace(name="portal-options")
    options = {"time_limit_minutes": 17, "gpu_enabled": gpu, "colour": "blue"}
    j = started(
        alice, ws["id"], job_type="test_job", resource="slurm-short", resource_options=options
    )
    translated = {"num_cpus": 1, "memory_mb": 2048, "time_limit_min": 17, "gpus": int(gpu)}
    # the record shows what the resource was given, under its names
    assert j["resource_options"] == translated
    assert job(alice, j["id"])["resource_options"] == translated
    assert 0 < j["job_details"]["current_job_details"]["time_left"] <= 17 * 60
    sc = scontrol(j["resource_job_id"])
    assert sc["JobState"] == "RUNNING"
    assert sc["TimeLimit"] == "00:17:00"
    assert sc["Partition"] == partition
    assert sc.get("TresPerNode") == tres
    # the portal's names were translated, not passed on (nor the unknown colour)
    assert job_params(alice, j) == {}
    stop_and_wait(alice, j["id"])


@pytest.mark.parametrize(
    "resource, options, message",
    [
        (
            "local",
            {"gpu_enabled": True, "time_limit_minutes": 17},
            "Invalid resource options found: ['gpu_enabled: Resource local (This server) has no "
            "GPUs. Set gpu_enabled to false, or start the job on a resource with GPUs.']",
        ),
        (
            "slurm-short",
            {"time_limit_minutes": 45},
            "Invalid resource options found: [\"time_limit_minutes: Value '45' above maximum of "
            '30 for resource slurm-short."]',
        ),
        (
            "slurm-short",
            {"time_limit_min": 20, "time_limit_minutes": 17},
            "Invalid resource options found: [\"time_limit_minutes: Value '17' and "
            "time_limit_min: Value '20' both set time_limit_min on resource slurm-short; send "
            'only one of them."]',
        ),
        (
            "slurm-short",
            {"gpu_enabled": "yes"},
            "Invalid resource options found: [\"gpu_enabled: Value 'yes' of type str does not "
            'match required type bool. Skipping further validation of parameter gpu_enabled."]',
        ),
    ],
)
def test_refused_portal_options_start_nothing(alice, make_workspace, resource, options, message):
    ws = make_workspace(name="portal-refused")
    before = alice.get("jobs/").json()["data"]["jobs"]
    r = start(alice, ws["id"], job_type="test_job", resource=resource, resource_options=options)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == message
    assert alice.get("jobs/").json()["data"]["jobs"] == before
    assert alice.get(f"workspaces/{ws['id']}").json()["data"]["workspaces"][0]["status"] == "idle"


@pytest.mark.background
def test_a_local_job_ends_at_the_portals_time_limit(alice, minute_job):
    j = minute_job
    assert j["resource_options"] == {
        "num_cpus": 1,
        "memory_mb": 2048,
        "time_limit_min": 1,
        "gpus": 0,
    }
    assert 0 < j["job_details"]["current_job_details"]["time_left"] <= 60
    end = wait_job(alice, j["id"], ("complete", "failed"), timeout=150)
    ran = dt.datetime.fromisoformat(end["datetime_end"]) - dt.datetime.fromisoformat(
        end["datetime_start"]
    )
    # stopped by the service's job sync once the minute had passed, not before
    assert 58 <= ran.total_seconds() <= 90, (ran, end)
    assert end["status"] == "complete", end
