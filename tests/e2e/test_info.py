"""Public resources (job_types, parameters, status), the OpenAPI document, the hub template."""

from __future__ import annotations

import os
import time

import pytest
import requests
import yaml
from openapi_spec_validator import validate

from conftest import SPEC_PATH, Client
from hubtest import hub_login
from jobutil import ensure_slurm, scontrol, started, stop_and_wait

#: the test hub's resources (hub_config.py), in their configured order
RESOURCES = [
    "local",
    "local-capped",
    "slurm",
    "slurm-short",
    "slurm-rest",
    "slurm2",
    "slurm2-commands",
]


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
        "resources": RESOURCES,
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


UWS_KEYS = {
    "main_resource",
    "api_user_authentication",
    "resources",
    "storage_methods",
    "user_authentication_methods",
}
RESOURCE_IDS = set(RESOURCES)
#: the Slurm clusters of the test hub (hub_config.py): one each way into each of the two
CLUSTER_IDS = {"default", "uws-rest", "uws2", "uws2-commands"}


def fresh_status(client: Client, after: str | None = None, timeout: float = 20) -> dict:
    """The status from a round of checks run after `after` (a ``checked_at``): answers within
    c.UWS.status_cache_seconds repeat the last round."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("status/")
        assert r.status_code == 200, r.text
        body = r.json()
        if after is None or body["checked_at"] > after or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_status_shows_anyone_whether_each_part_is_connected(anon, alice, hub):
    ensure_slurm()
    body = anon.get("status/").json()
    assert body["version"] == "0.1.0" and body["build"]
    deps = body["dependencies"]
    assert UWS_KEYS | {"database", "storage", "hub", "slurm_clusters"} == set(deps)
    assert set(deps["resources"]) == RESOURCE_IDS
    assert set(deps["slurm_clusters"]) == CLUSTER_IDS
    assert set(deps["storage_methods"]) == {"main_storage"}
    assert set(deps["user_authentication_methods"]) == {"dev"}  # the hub's login: uws-dev
    assert body["success"] is True, body
    assert body["message"] == "All dependencies connected."
    # the booleans only: no hosts, paths, versions or errors for strangers
    flat = [
        deps[k]
        for k in deps
        if k
        not in ("resources", "storage_methods", "user_authentication_methods", "slurm_clusters")
    ]
    for group in ("resources", "storage_methods", "user_authentication_methods", "slurm_clusters"):
        flat += deps[group].values()
    assert all(d == {"connected": True, "message": ""} for d in flat), deps
    # a person who is not an operator, and a token the hub does not know: the same
    assert alice.get("status/").json()["dependencies"] == deps
    stranger = Client(hub, "not-a-token")
    r = stranger.get("status/")
    assert r.status_code == 200 and r.json()["dependencies"] == deps


def test_status_tells_operators_what_each_check_found(admin):
    ensure_slurm()
    body = admin.get("status/").json()
    deps = body["dependencies"]
    assert deps["database"] == {"connected": True, "message": "sqlite"}
    assert deps["storage"]["connected"] and "bytes free" in deps["storage"]["message"]
    assert deps["storage_methods"] == {"main_storage": deps["storage"]}
    assert deps["hub"] == {"connected": True, "message": "JupyterHub 6.1.1"}
    assert deps["api_user_authentication"] == deps["hub"]  # POST /tokens/: client tokens
    res = deps["resources"]
    assert res["local"]["connected"] and res["local"]["message"].endswith("CPUs on this host")
    # the Slurm controller answers scontrol ping, and each resource's partition is up
    assert " is UP" in res["slurm"]["message"] and res["slurm"]["message"].endswith(
        "partition debug UP"
    ), res["slurm"]
    assert res["slurm-short"]["message"].endswith("partition short UP")
    # the same through slurmrestd, and the second cluster both ways
    assert res["slurm-rest"]["message"] == (
        "slurmctld vm is UP (slurmrestd http://127.0.0.1:6820); partition debug UP"
    ).replace("vm", os.uname().nodename.split(".")[0])
    assert res["slurm2"]["message"].endswith(
        "(slurmrestd http://127.0.0.1:6821); partition batch UP"
    )
    assert " is UP" in res["slurm2-commands"]["message"]
    assert res["slurm2-commands"]["message"].endswith("partition batch UP")
    clusters = deps["slurm_clusters"]
    assert clusters["uws2"]["message"].startswith("uws2 (rest): slurmctld ")
    assert clusters["uws2-commands"]["message"].startswith("uws2 (commands): Slurmctld")
    assert clusters["default"]["connected"] and clusters["uws-rest"]["connected"]
    assert deps["main_resource"] == res["local"]  # where a start naming no resource runs
    assert deps["user_authentication_methods"] == {
        "dev": {"connected": True, "message": "development login: no outside service"}
    }


def test_status_checks_are_kept_a_few_seconds(anon):
    first = anon.get("status/").json()
    second = anon.get("status/").json()
    assert second["checked_at"] == first["checked_at"]  # the same round of checks
    time.sleep(5.2)  # c.UWS.status_cache_seconds (5 by default) later: checked again
    third = anon.get("status/").json()
    assert third["checked_at"] > first["checked_at"]


def test_status_when_storage_is_gone(hub, anon, admin):
    before = anon.get("status/").json()["checked_at"]
    hub.root.rename(hub.root.with_name("workspaces-away"))
    try:
        body = fresh_status(anon, after=before)
        operator = fresh_status(admin, after=before)
    finally:
        hub.root.with_name("workspaces-away").rename(hub.root)
    assert body["success"] is False
    assert body["message"] == "Not connected: storage."
    deps = body["dependencies"]
    assert deps["storage"] == {"connected": False, "message": ""}
    assert deps["storage_methods"]["main_storage"] == {"connected": False, "message": ""}
    assert deps["database"]["connected"] is True
    message = operator["dependencies"]["storage"]["message"]
    assert message.startswith(f"{hub.root} is missing or not writable")


@pytest.fixture(scope="module")
def broken_hub(hub_factory):
    """A hub whose LDAP server is not there (a port nobody listens on) and one of whose
    resources names a Slurm partition the cluster does not have."""
    ensure_slurm()
    extra = """
c.JupyterHub.authenticator_class = "uws-ldap"
c.UWSLDAPAuthenticator.server_address = "127.0.0.1"
c.UWSLDAPAuthenticator.server_port = 1
c.UWSLDAPAuthenticator.tls_strategy = "insecure"
c.UWSLDAPAuthenticator.bind_dn_template = ["uid={username},ou=people,dc=uws,dc=test"]
c.UWS.resources = {**c.UWS.resources, "gone": {"kind": "slurm", "name": "Gone", "partition": "nosuch"}}
"""
    h = hub_factory("status-down", extra_config=extra)
    yield h
    hub_factory.release(h)


def test_status_when_the_login_server_and_a_partition_are_down(broken_hub):
    body = Client(broken_hub).get("status/").json()
    assert body["success"] is False
    assert body["message"] == "Not connected: resources.gone, user_authentication_methods.ldap."
    deps = body["dependencies"]
    assert deps["user_authentication_methods"] == {"ldap": {"connected": False, "message": ""}}
    assert deps["resources"]["gone"] == {"connected": False, "message": ""}
    assert deps["resources"]["slurm"]["connected"] is True
    assert deps["main_resource"]["connected"] is True  # "local"
    deps = Client.of(broken_hub, "uwst-admin").get("status/").json()["dependencies"]
    ldap = deps["user_authentication_methods"]["ldap"]
    assert ldap["connected"] is False
    assert ldap["message"].startswith("ldap://127.0.0.1:1: LDAPSocketOpenError"), ldap
    assert deps["resources"]["gone"]["message"] == "partition nosuch: Partition nosuch not found"


@pytest.fixture(scope="module")
def globus_hub(hub_factory):
    """A hub logging in with Globus and the account service (both local stand-ins speaking
    their protocols), whose LDAP confirmation server is not there."""
    from test_auth_globus import globus_login_settings

    from standins.accountapi import AccountAPIStandin
    from standins.globus import GlobusStandin

    g = GlobusStandin().start()
    a = AccountAPIStandin(jwt_token="jwt-status").start()
    settings = f"""
c.JupyterHub.authenticator_class = "uws-account-api"
A = c.UWSAccountAPIAuthenticator
A.account_api_url = "{a.root_url}"
A.account_api_token = "jwt-status"
A.account_api_name = "the cluster's user database"
A.confirm_ldap_url = "ldap://127.0.0.1:1"
"""
    h = hub_factory(
        "status-globus",
        auth_state=True,
        extra_config=lambda h: globus_login_settings(g, h, "UWSAccountAPIAuthenticator") + settings,
    )
    yield h, g
    hub_factory.release(h)
    g.stop()
    a.stop()


def test_status_of_a_globus_hub_follows_globus(globus_hub):
    hub, globus = globus_hub
    operator = Client.of(hub, "uwst-admin")
    body = operator.get("status/").json()
    methods = body["dependencies"]["user_authentication_methods"]
    assert set(methods) == {"globus", "account_api", "account_ldap"}
    assert methods["globus"] == {
        "connected": True,
        "message": f"{globus.url}/.well-known/openid-configuration answered 200",
    }
    assert methods["account_api"]["connected"] is True, methods
    assert methods["account_api"]["message"].startswith("the cluster's user database at http")
    assert methods["account_ldap"]["connected"] is False
    assert methods["account_ldap"]["message"].startswith("ldap://127.0.0.1:1: ")
    assert body["message"] == "Not connected: user_authentication_methods.account_ldap."
    # POST /tokens/ introspects Globus tokens at Globus: it needs the hub and Globus
    api = body["dependencies"]["api_user_authentication"]
    assert api["connected"] is True and api["message"].startswith("hub: JupyterHub ")
    globus.stop()
    body = fresh_status(operator, after=body["checked_at"])
    deps = body["dependencies"]
    assert deps["user_authentication_methods"]["globus"]["connected"] is False
    assert deps["api_user_authentication"]["connected"] is False
    assert "Globus: " in deps["api_user_authentication"]["message"]
    assert body["message"] == (
        "Not connected: user_authentication_methods.globus, "
        "user_authentication_methods.account_ldap."
    )


@pytest.mark.parametrize("resource", ["local", "slurm"])
def test_a_running_job_has_uws_proxy_details(alice, make_workspace, resource):
    """UWS's proxy_details: the host and port the job's server listens on, its path."""
    if resource == "slurm":
        ensure_slurm()
    ws = make_workspace(name=f"proxy-{resource}")
    j = started(alice, ws["id"], job_type="test_job", resource=resource)
    try:
        cur = j["job_details"]["current_job_details"]
        proxy = cur["proxy_details"]
        assert set(proxy) == {"hostname", "port", "path"}
        assert proxy["path"] == cur["connection_details"]["url_path"]
        if resource == "local":
            assert proxy["hostname"] in ("127.0.0.1", "localhost")
        else:
            assert proxy["hostname"] == scontrol(j["resource_job_id"])["NodeList"]
        # the job's server itself answers there (the hub's proxy routes the path to it)
        r = requests.get(
            f"http://{proxy['hostname']}:{proxy['port']}{proxy['path']}",
            timeout=30,
            allow_redirects=False,
        )
        assert r.status_code < 500
    finally:
        stop_and_wait(alice, j["id"])


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
        ("put", "/jobs/{job_id}/extend/"): lambda: alice.put(
            f"jobs/{live['job']['id']}/extend/", json={"minutes": 5}
        ),
        ("get", "/workspaces/"): lambda: alice.get("workspaces/"),
        ("post", "/workspaces/"): lambda: alice.post(
            "workspaces/", json={"name": "spec2", "description": "d"}
        ),
        ("get", "/workspaces/{workspace_id}/"): lambda: alice.get(f"workspaces/{ws['id']}/"),
        ("put", "/workspaces/{workspace_id}/scan/"): lambda: alice.put(
            f"workspaces/{ws['id']}/scan/"
        ),
        ("get", "/workspaces/{workspace_id}/files/"): lambda: alice.get(
            f"workspaces/{ws['id']}/files/", params={"sort": "size", "order": "desc"}
        ),
        ("get", "/workspaces/{workspace_id}/files/download"): lambda: alice.get(
            f"workspaces/{ws['id']}/files/download", params={"path": ""}
        ),
        ("put", "/workspaces/{workspace_id}/"): lambda: alice.put(
            f"workspaces/{ws['id']}/", json={"description": "e"}
        ),
        ("put", "/workspaces/{workspace_id}/upload/"): lambda: alice.put(
            f"workspaces/{ws['id']}/upload/", files={"f": ("u.txt", b"u")}
        ),
        ("delete", "/workspaces/{workspace_id}/files/"): lambda: alice.delete(
            f"workspaces/{ws['id']}/files/", params={"path": "u.txt"}
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
