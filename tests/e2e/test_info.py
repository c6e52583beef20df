"""Public resources (job_types, parameters, status), the OpenAPI document, the hub template."""

from __future__ import annotations

import time

import requests
import yaml
from openapi_spec_validator import validate

from conftest import SPEC_PATH, Client
from hubtest import hub_login


def test_job_types_and_resources(anon):
    r = anon.get("job_types/")
    assert r.status_code == 200
    types = r.json()["data"]["job_types"]
    assert list(types) == [
        "jupyter_lab",
        "test_job",
        "broken_job",
        "crashing_job",
        "slow_job",
        "local_only",
    ]
    assert types["jupyter_lab"] == {
        "id": "jupyter_lab",
        "name": "JupyterLab",
        "description": "",
        "resources": ["local", "local-capped", "slurm", "slurm-short"],
    }
    assert types["local_only"]["resources"] == ["local"]
    r = anon.get("resources")
    assert r.status_code == 200
    res = r.json()["data"]["resources"]
    assert res["local"] == {
        "id": "local",
        "kind": "local",
        "name": "This server",
        "description": "",
        "limits": {"max_cpus": 4, "max_memory_mb": 8192, "max_time_limit_min": None, "max_gpus": 0},
        # the portal's names onto this resource's options (pages show one field per option)
        "parameter_mapping": {
            "num_cpus": "num_cpus",
            "memory_mb": "memory_mb",
            "time_limit_min": "time_limit_min",
            "gpus": "gpus",
            "time_limit_minutes": "time_limit_min",
            "gpu_enabled": "gpus",
        },
    }
    assert (
        res["slurm-short"]["kind"] == "slurm"
        and res["slurm-short"]["limits"]["max_time_limit_min"] == 30
    )


def test_parameters(anon):
    r = anon.get("parameters")
    assert r.status_code == 200
    body = r.json()
    assert body["parameters"] == body["data"]["parameters"]
    cpus = next(p for p in body["parameters"] if p["variable_name"] == "num_cpus")
    assert cpus == {
        "display_name": "CPUs",
        "description": "Number of CPU cores for the job.",
        "variable_name": "num_cpus",
        "default_value": 1,
        "validation": {"type": "int", "min": 1, "max": 16, "required": False},
    }


def test_status_reports_each_dependency(anon):
    r = anon.get("status/")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert body["version"] == "0.1.0"
    assert body["build"]
    deps = body["dependencies"]
    assert deps["database"] == {"connected": True, "message": "sqlite"}
    assert deps["storage"]["connected"] and "bytes free" in deps["storage"]["message"]
    assert deps["hub"] == {"connected": True, "message": "JupyterHub 6.1.1"}


def test_status_when_storage_is_gone(hub, anon):
    hub.root.rename(hub.root.with_name("workspaces-away"))
    try:
        body = anon.get("status").json()
    finally:
        hub.root.with_name("workspaces-away").rename(hub.root)
    assert body["success"] is False
    assert body["dependencies"]["storage"]["connected"] is False
    assert "missing or not writable" in body["dependencies"]["storage"]["message"]
    assert body["message"] == "Not connected: storage."


def test_openapi_document_is_valid_and_served(hub):
    spec = yaml.safe_load(SPEC_PATH.read_text())
    validate(spec)
    served_json = requests.get(f"{hub.url}/services/uws/api/openapi.json", timeout=30).json()
    served_yaml = requests.get(f"{hub.url}/services/uws/api/openapi.yaml", timeout=30).text
    assert served_json == spec == yaml.safe_load(served_yaml)


def test_every_documented_operation_answers_as_documented(hub, client_for, anon):
    """One successful call per operation in the OpenAPI document (each answer is validated
    against it by the client)."""
    alice: Client = client_for("uwst-alice")

    def new_ws(name):
        return alice.post("workspaces/", json={"name": name, "description": "d"}).json()["data"][
            "workspace"
        ]

    ws, job_ws, job_ws2 = new_ws("spec"), new_ws("spec-jobs"), new_ws("spec-jobs2")
    job_id = {}

    def start_job():
        r = alice.put(f"workspaces/{job_ws['id']}/start/", json={"job_type": "test_job"})
        job_id["first"] = r.json()["data"]["job"]["id"]
        return r

    def events():  # the stream ends once the job has ended: stop it first
        alice.put(f"jobs/{job_id['first']}/stop/")
        return alice.get(f"jobs/{job_id['first']}/events")

    def stop_another():
        r = alice.put(f"workspaces/{job_ws2['id']}/start/", json={"job_type": "test_job"})
        return alice.put(f"jobs/{r.json()['data']['job']['id']}/stop/")

    bob: Client = client_for("uwst-bob")
    admin: Client = client_for("uwst-admin")
    assert bob.get("users/me/quota").status_code == 200  # bob is known to uws from now on
    bob_id = None
    share = {}

    def share_ws():
        nonlocal bob_id
        found = alice.get("users/", params={"search": "uwst-bob"}).json()["data"]["users"]
        bob_id = next(u["id"] for u in found if u["username"] == "uwst-bob")
        r = alice.post(
            "shared_workspaces/",
            json={"original_workspace_id": ws["id"], "shared_user_ids": [bob_id]},
        )
        share["first"] = r.json()["data"]["shared_workspaces"][0]["id"]
        r2 = alice.post(
            "shared_workspaces/",
            json={"original_workspace_id": job_ws["id"], "shared_user_ids": [str(bob_id)]},
        )
        share["second"] = r2.json()["data"]["shared_workspaces"][0]["id"]
        return r

    def accept():
        for _ in range(200):  # the copy is made in the background
            got = bob.get(f"shared_workspaces/{share['first']}/").json()["data"]
            if got["shared_workspaces"][0]["copy"]["status"] == "done":
                break
            time.sleep(0.1)
        return bob.put(f"shared_workspaces/{share['first']}/accept/")

    live = {}

    def live_share():
        from jobutil import started

        live_ws = new_ws("spec-live")
        live["job"] = started(alice, live_ws["id"], job_type="test_job")
        return alice.post(f"jobs/{live['job']['id']}/shares/", json={"user": "uwst-bob"})

    calls = {
        ("get", "/users/"): lambda: alice.get("users/", params={"search": "uwst"}),
        ("post", "/shared_workspaces/"): share_ws,
        ("get", "/shared_workspaces/"): lambda: alice.get("shared_workspaces/"),
        ("get", "/shared_workspaces/{share_id}/"): lambda: alice.get(
            f"shared_workspaces/{share['first']}/"
        ),
        ("put", "/shared_workspaces/{share_id}/accept/"): accept,
        ("delete", "/shared_workspaces/{share_id}/"): lambda: bob.delete(
            f"shared_workspaces/{share['second']}/"
        ),
        ("get", "/users/{username}/quota/"): lambda: alice.get("users/me/quota"),
        ("put", "/users/{username}/quota/"): lambda: admin.put(
            "users/uwst-bob/quota", json={"core_hours_limit": None, "disk_limit": None}
        ),
        ("get", "/quotas/"): lambda: admin.get("quotas/"),
        ("get", "/usage/"): lambda: admin.get("usage/", params={"from": "2020-01-01"}),
        ("get", "/audit/"): lambda: admin.get(
            "audit/", params={"user": "uwst-alice", "action": "workspace", "limit": 5}
        ),
        ("post", "/jobs/{job_id}/shares/"): live_share,
        ("get", "/jobs/{job_id}/shares/"): lambda: alice.get(f"jobs/{live['job']['id']}/shares/"),
        ("delete", "/jobs/{job_id}/shares/"): lambda: alice.delete(
            f"jobs/{live['job']['id']}/shares/", json={"user": "uwst-bob"}
        ),
        ("get", "/workspaces/"): lambda: alice.get("workspaces/"),
        ("post", "/workspaces/"): lambda: alice.post(
            "workspaces/", json={"name": "spec2", "description": "d"}
        ),
        ("get", "/workspaces/{workspace_id}/"): lambda: alice.get(f"workspaces/{ws['id']}/"),
        ("put", "/workspaces/{workspace_id}/"): lambda: alice.put(
            f"workspaces/{ws['id']}/", json={"description": "e"}
        ),
        ("put", "/workspaces/{workspace_id}/upload/"): lambda: alice.put(
            f"workspaces/{ws['id']}/upload/", files={"f": ("u.txt", b"u")}
        ),
        ("put", "/workspaces/{workspace_id}/start/"): start_job,
        ("get", "/jobs/"): lambda: alice.get("jobs/"),
        ("get", "/jobs/{job_id}/"): lambda: alice.get(f"jobs/{job_id['first']}/"),
        ("get", "/jobs/{job_id}/events"): events,
        ("put", "/jobs/{job_id}/stop/"): stop_another,
        ("delete", "/workspaces/{workspace_id}/"): lambda: alice.delete(f"workspaces/{ws['id']}/"),
        ("get", "/job_types/"): lambda: anon.get("job_types/"),
        ("get", "/parameters/"): lambda: anon.get("parameters/"),
        ("get", "/resources/"): lambda: anon.get("resources/"),
        ("get", "/status/"): lambda: anon.get("status/"),
        ("post", "/tokens/"): lambda: anon.post(
            "tokens/",
            json={
                "client_token": hub.admin_token[::-1],  # the test-portal service
                "user_info": {"username": "spec-person", "email": "spec@portal.example.org"},
            },
        ),
    }
    spec = yaml.safe_load(SPEC_PATH.read_text())
    documented = {
        (m, p)
        for p, ops in spec["paths"].items()
        for m in ops
        if m in ("get", "post", "put", "delete")
    }
    assert documented == set(calls)
    for op, call in calls.items():
        r = call()
        assert r.status_code == 200, (op, r.text)
    alice.put(f"jobs/{live['job']['id']}/stop/")


def test_hub_navbar_links_workspaces(hub):
    s, _ = hub_login(hub.url, "uwst-alice", "test-password")
    home = s.get(f"{hub.url}/hub/home", timeout=30)
    assert home.status_code == 200
    assert 'href="/services/uws/">Workspaces</a>' in home.text
    # the hub's home leads to the workspaces; only operators get the admin link
    assert 'id="uws-home-banner"' in home.text
    assert 'href="/services/uws/">Go to your workspaces</a>' in home.text
    assert "Workspace admin" not in home.text
    s, _ = hub_login(hub.url, "uwst-admin", "test-password")
    home = s.get(f"{hub.url}/hub/home", timeout=30)
    assert 'href="/services/uws/admin">Workspace admin</a>' in home.text
