"""UWS-REFERENCE §1.6 (start), §1.10 (GET jobs), §1.11 (stop), and the job rows of §1.9 and §2,
with the portal's launch options and its session renewal (§1.10, §10)."""

from __future__ import annotations

import decimal

import pytest

from .conftest import portal_start_body
from .uws import (
    JOB_FIELDS,
    JOB_STATUSES,
    NO_JOB,
    describe,
    empty,
    eventually,
    iso,
    job,
    ok,
    refused,
    wait_gone,
    wait_job,
    workspace,
)

LIVE = ("pending", "running")


def start(who, ws_id: int, body, slash: bool = True):
    return who.api.put(f"workspaces/{ws_id}/start" + ("/" if slash else ""), json=body)


def running(who, ws_id: int, body) -> dict:
    """Start a job and wait until it runs (the portal's "please wait" page, §1.10)."""
    j = ok(start(who, ws_id, body), "Successful start.")["data"]["job"]
    return wait_job(who.api, j["id"], ("running", "complete", "failed"))


def check_job_shape(j: dict) -> None:
    """UWS-REFERENCE §1.10: `{id, workspace_id, resource_job_id, job_type, status,
    datetime_created, datetime_start, datetime_end, core_hours, job_details}`; core_hours a
    string (§1.1); `job_details = {metrics, request_job_details, current_job_details}`."""
    assert JOB_FIELDS <= set(j), sorted(j)
    assert isinstance(j["id"], int) and isinstance(j["resource_job_id"], int)
    assert j["status"] in JOB_STATUSES, j["status"]
    assert isinstance(j["core_hours"], str), j["core_hours"]
    decimal.Decimal(j["core_hours"])
    iso(j["datetime_created"])
    for key in ("datetime_start", "datetime_end"):
        assert j[key] is None or iso(j[key])
    details = j["job_details"]
    assert {"metrics", "request_job_details", "current_job_details"} <= set(details), details
    assert all(isinstance(details[k], dict) for k in ("metrics", "current_job_details"))


# ---- §1.6 start ----------------------------------------------------------------------------


def test_start_answers_the_pending_job(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.6: 200 `{"message": "Successful start.", "data": {"job": {...}}}`, the
    job `pending`, `request_job_details` = the body's `job_details`; the workspace → `active`
    with `datetime_last_job_launch` set."""
    ws = make_workspace(alice, name="start")
    body = {"job_type": job_type, "job_details": {"note": "from the contract"}}
    j = ok(start(alice, ws["id"], body), "Successful start.")["data"]["job"]
    check_job_shape(j)
    assert (j["workspace_id"], j["job_type"], j["status"]) == (ws["id"], job_type, "pending")
    assert j["job_details"]["request_job_details"] == {"note": "from the contract"}
    w = workspace(alice.api, ws["id"])
    assert w["status"] == "active", w
    assert iso(w["datetime_last_job_launch"]) >= iso(ws["datetime_created"])
    wait_job(alice.api, j["id"], ("running", "complete", "failed"))
    alice.api.put(f"jobs/{j['id']}/stop/")


def test_start_uses_the_default_job_type(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.6: "If absent, the workspace's `default_job_type` is used"."""
    ws = make_workspace(alice, name="default-type", default_job_type=job_type)
    j = ok(start(alice, ws["id"], {}), "Successful start.")["data"]["job"]
    assert j["job_type"] == job_type
    wait_job(alice.api, j["id"], ("running", "complete", "failed"))
    alice.api.put(f"jobs/{j['id']}/stop/")


@pytest.mark.parametrize("default", [None, ""])
def test_start_without_any_job_type_is_400(alice, make_workspace, default):
    """UWS-REFERENCE §1.6: "If neither exists → 400 "Missing job_type and no default job type
    set on workspace."" (an empty default is none, §1.4)."""
    extra = {} if default is None else {"default_job_type": default}
    ws = make_workspace(alice, name="no-type", **extra)
    r = start(alice, ws["id"], {"job_details": {}})
    refused(r, 400, "Missing job_type and no default job type set on workspace.")
    assert workspace(alice.api, ws["id"])["status"] == "idle"


def test_start_unknown_job_type_is_400(alice, make_workspace):
    """UWS-REFERENCE §1.6: unknown → 400 "<x> is not in the list of available job types."."""
    ws = make_workspace(alice, name="bad-type")
    r = start(alice, ws["id"], {"job_type": "warp_drive"})
    refused(r, 400, "warp_drive is not in the list of available job types.")


@pytest.mark.parametrize(
    "field, message",
    [("job_details", "Job details not JSON."), ("resource_options", "Resource options not JSON.")],
)
def test_start_with_non_object_details_is_400(alice, make_workspace, job_type, field, message):
    """UWS-REFERENCE §1.6: `job_details` / `resource_options` must be dicts."""
    ws = make_workspace(alice, name="bad-details")
    refused(start(alice, ws["id"], {"job_type": job_type, field: "x"}), 400, message)
    refused(start(alice, ws["id"], {"job_type": job_type, field: [1]}), 400, message)


def test_start_missing_body_is_400(alice, make_workspace):
    """UWS-REFERENCE §9 (Workspaces PUT start: missing body 400), §1.1 "Invalid JSON: …"."""
    ws = make_workspace(alice, name="start-no-body")
    r = alice.api.put(f"workspaces/{ws['id']}/start/", data=b"")
    refused(r, 400, prefix="Invalid JSON: ")


def int_parameter(parameters: list[dict]) -> dict:
    for p in parameters:
        v = p["validation"]
        if v.get("type") == "int" and v.get("min") is not None and v.get("max") is not None:
            return p
    pytest.skip("no int parameter with min and max configured")


def bad_options(parameters: list[dict]) -> list[tuple[dict, list[str]]]:
    """Options ParamValidator refuses, with its messages (UWS-REFERENCE §1.6)."""
    p = int_parameter(parameters)
    name, lo, hi = p["variable_name"], p["validation"]["min"], p["validation"]["max"]
    type_msg = (
        f"{name}: Value 'many' of type str does not match required type int. "
        f"Skipping further validation of parameter {name}."
    )
    return [
        ({name: lo - 1}, [f"{name}: Value '{lo - 1}' not above minimum of {lo}."]),
        ({name: hi + 1}, [f"{name}: Value '{hi + 1}' above maximum of {hi}."]),
        ({name: "many"}, [type_msg]),
    ]


def test_start_refuses_bad_options_with_422(alice, make_workspace, job_type, parameters):
    """UWS-REFERENCE §1.6: "Any error → 422 "Invalid resource options found: [<list of
    messages>]"" with ParamValidator's texts (min: `value < min`, max, type); no job is made."""
    ws = make_workspace(alice, name="options-422")
    for options, messages in bad_options(parameters):
        r = start(alice, ws["id"], {"job_type": job_type, "resource_options": options})
        refused(r, 422, f"Invalid resource options found: {messages}")
    empty(alice.api.get("jobs/", params={"workspace_id": ws["id"]}), "jobs", NO_JOB)
    assert workspace(alice.api, ws["id"])["status"] == "idle"


def test_start_reports_a_missing_required_parameter(alice, make_workspace, job_type, parameters):
    """UWS-REFERENCE §1.6: missing required parameters are reported: "Missing required: <p>"."""
    required = [p["variable_name"] for p in parameters if p["validation"].get("required")]
    if not required:
        pytest.skip("no required parameter configured")
    ws = make_workspace(alice, name="options-required")
    r = start(alice, ws["id"], {"job_type": job_type, "resource_options": {}})
    body = refused(r, 422, prefix="Invalid resource options found: [")
    for name in required:
        assert f"Missing required: {name}" in body["message"], body


def test_start_ignores_unknown_options(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.6: "unknown keys are dropped silently" (§9: an unknown key → 200)."""
    ws = make_workspace(alice, name="options-unknown")
    j = running(alice, ws["id"], {"job_type": job_type, "resource_options": {"colour": "blue"}})
    assert j["status"] == "running", j
    ok(alice.api.put(f"jobs/{j['id']}/stop/"))


def test_portal_launch_with_its_options(alice, make_workspace, job_type):
    """The portal's launch (UWS-REFERENCE §1.1: `PUT {endpoint}/workspaces/{id}/start` without
    the slash; §1.18: it sends `time_limit_minutes`; §3.3 `gpu_enabled`; UWS-API.md PUT start:
    "translated by the resource's `parameter_mapping` (generic names such as the portal's
    `time_limit_minutes`, `gpu_enabled` → resource options)"). It polls `/jobs` until
    `connection_details` appears and opens `url_domain + url_path` (§1.10); it shows
    `time_left` (§1.10), which the portal's 30 minutes bound."""
    ws = make_workspace(alice, name="portal-launch")
    r = start(alice, ws["id"], portal_start_body(job_type), slash=False)
    j = ok(r, "Successful start.")["data"]["job"]

    def connected():
        now = ok(alice.api.get(f"jobs/{j['id']}"))["data"]["jobs"][0]  # as the portal: no slash
        cd = now["job_details"]["current_job_details"].get("connection_details")
        return now if cd or now["status"] in ("complete", "failed") else None

    now = eventually(connected, "connection_details of the portal's job", 90)
    assert now["status"] == "running", now
    check_job_shape(now)
    current = now["job_details"]["current_job_details"]
    cd = current["connection_details"]
    assert cd["url_domain"].startswith(("http://", "https://")), cd
    assert cd["url_path"].startswith("/"), cd
    assert isinstance(current.get("time_left"), (int, float)), current
    assert 0 < current["time_left"] <= 30 * 60, current
    opened = alice.api.session.get(cd["url_domain"] + cd["url_path"], timeout=30)
    assert opened.status_code != 404 and opened.status_code < 500, describe(opened)
    ok(alice.api.put(f"jobs/{j['id']}/stop"), "Job queued to stop.")


# ---- §1.10 GET jobs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(alice, job_type):
    """One job run to its end in its own workspace: (workspace, job)."""
    r = alice.api.post("workspaces/", json={"name": "jobs-list", "description": "d"})
    ws = ok(r)["data"]["workspace"]
    j = running(alice, ws["id"], {"job_type": job_type})
    ok(alice.api.put(f"jobs/{j['id']}/stop/"))
    return ws, wait_job(alice.api, j["id"], ("complete", "failed"))


def test_jobs_list_and_get(alice, finished):
    """UWS-REFERENCE §1.10: `data.jobs` with the job fields; GET by id is a list of one;
    `core_hours` a string (§1.1)."""
    ws, j = finished
    check_job_shape(j)
    assert j["workspace_id"] == ws["id"]
    assert j["datetime_end"] is not None
    listed = ok(alice.api.get("jobs/"))["data"]["jobs"]
    assert j["id"] in [x["id"] for x in listed]
    for x in listed:
        check_job_shape(x)


@pytest.mark.parametrize("field", ["workspace_id", "resource_job_id", "job_type", "status"])
def test_jobs_filters(alice, finished, field):
    """UWS-REFERENCE §1.10: filters `workspace_id`, `resource_job_id`, `job_type`, `status`
    (exact match)."""
    _, j = finished
    found = ok(alice.api.get("jobs/", params={field: j[field]}))["data"]["jobs"]
    assert j["id"] in [x["id"] for x in found]
    assert all(x[field] == j[field] for x in found), found


def test_jobs_of_others_are_not_found(bob, finished):
    """UWS-REFERENCE §1.10: scope "jobs whose workspace belongs to the caller"; another's id is
    an empty result (§1.1)."""
    _, j = finished
    empty(bob.api.get(f"jobs/{j['id']}/"), "jobs", NO_JOB)
    assert j["id"] not in [x["id"] for x in ok(bob.api.get("jobs/"))["data"]["jobs"]]


def test_workspace_idle_again_after_its_job(alice, finished):
    """UWS-REFERENCE §2: `active` → `idle` when a job reaches complete/failed and no other job
    of that workspace is pending/running."""
    ws, _ = finished
    eventually(lambda: workspace(alice.api, ws["id"])["status"] == "idle", "workspace idle")


# ---- §1.11 stop ----------------------------------------------------------------------------


def test_stop_running_then_again(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.11: a running job → 200 "Job queued to stop.", status `stopping` until
    the resource confirms (§2), then complete/failed; stopping it again → 400 "This job is not
    running or pending."."""
    ws = make_workspace(alice, name="stop")
    j = running(alice, ws["id"], {"job_type": job_type})
    assert j["status"] == "running", j
    ok(alice.api.put(f"jobs/{j['id']}/stop/"), "Job queued to stop.")
    now = job(alice.api, j["id"])
    assert now["status"] in ("stopping", "complete"), now
    done = wait_job(alice.api, j["id"], ("complete", "failed"))
    assert done["datetime_end"] is not None
    refused(alice.api.put(f"jobs/{j['id']}/stop/"), 400, "This job is not running or pending.")


def test_stop_unknown_or_foreign_job_is_404(bob, finished):
    """UWS-REFERENCE §1.11: 404 "Job <id> not found for user."."""
    _, j = finished
    for job_id in (j["id"], 987654321):
        refused(bob.api.put(f"jobs/{job_id}/stop/"), 404, f"Job {job_id} not found for user.")


def test_unknown_job_put_type_is_400(alice, finished):
    """UWS-REFERENCE §1.11: "Any other put type: 400 "Invalid PUT type passed.""."""
    _, j = finished
    refused(alice.api.put(f"jobs/{j['id']}/restart/"), 400, "Invalid PUT type passed.")


def test_renew_session_is_stop_then_start(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.10: "Renewal means stop plus start again with the same
    `default_job_type` and resource options"; UWS-API.md PUT stop: "a start while the
    previous job is `stopping` is accepted"."""
    ws = make_workspace(alice, name="renew", default_job_type=job_type)
    body = portal_start_body(job_type)
    first = running(alice, ws["id"], body)
    ok(alice.api.put(f"jobs/{first['id']}/stop"), "Job queued to stop.")
    second = running(alice, ws["id"], body)
    assert second["id"] != first["id"] and second["status"] == "running", second
    ok(alice.api.put(f"jobs/{second['id']}/stop"), "Job queued to stop.")
    wait_job(alice.api, second["id"], ("complete", "failed"))


# ---- §1.9 DELETE and jobs ------------------------------------------------------------------


def test_delete_refused_while_a_job_runs(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.9: 400 "Cannot delete workspace, jobs are running for this workspace."
    when any job is pending or running; "Jobs in `stopping` do not block"."""
    ws = make_workspace(alice, name="busy")
    j = running(alice, ws["id"], {"job_type": job_type})
    assert j["status"] == "running", j
    r = alice.api.delete(f"workspaces/{ws['id']}/")
    refused(r, 400, "Cannot delete workspace, jobs are running for this workspace.")
    assert workspace(alice.api, ws["id"])["status"] == "active"
    ok(alice.api.put(f"jobs/{j['id']}/stop/"), "Job queued to stop.")
    ok(alice.api.delete(f"workspaces/{ws['id']}/"), f"Workspace {ws['id']} queued for deletion.")
    wait_gone(alice.api, ws["id"])


def test_jobs_of_a_deleted_workspace_drop_out(alice, make_workspace, job_type):
    """UWS-REFERENCE §1.9 deletion task: "Job rows keep `workspace_id = NULL`, so they drop out
    of `/jobs/`" (§1.10 scope: jobs whose workspace belongs to the caller)."""
    ws = make_workspace(alice, name="deleted-with-jobs")
    j = running(alice, ws["id"], {"job_type": job_type})
    ok(alice.api.put(f"jobs/{j['id']}/stop/"))
    wait_job(alice.api, j["id"], ("complete", "failed"))
    ok(alice.api.delete(f"workspaces/{ws['id']}/"), f"Workspace {ws['id']} queued for deletion.")
    wait_gone(alice.api, ws["id"])
    empty(alice.api.get(f"jobs/{j['id']}/"), "jobs", NO_JOB)
    assert j["id"] not in [x["id"] for x in ok(alice.api.get("jobs/"))["data"]["jobs"]]
