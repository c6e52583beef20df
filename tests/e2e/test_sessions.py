"""Sessions people can plan around (issue 14), end to end: a time-limit warning reaches the job
record, its event stream, the workspace page and — through the package's JupyterLab extension and
its server side in the job server — JupyterLab itself, where "Extend" works; an extension raises
a Slurm job's TimeLimit (as ``scontrol show job`` says) and moves a local job's timer; refusals
name the numbers; only the owner and operators may extend. Every rule on its own:
tests/unit/test_sessions.py."""

from __future__ import annotations

import subprocess

import pytest
from test_disk_quota_jobs import Stream
from test_pages import ARTIFACTS, PASSWORD, Person, browser, expect  # noqa: F401 (a fixture)
from test_rescans import until

from conftest import Client
from hubtest import HubProcess
from jobutil import started, stop_and_wait

ME, OTHER, ADMIN = "uwsp-carol", "uwsp-dave", "uwst-admin"
assert PASSWORD  # the hub's test login, as the pages' tests use it
#: the first point is due as soon as a job of the default 4 hours runs; the next at 10 minutes
WARNINGS = [14_500, 600]


@pytest.fixture(scope="module")
def shub(hub_factory):
    extra = f"c.UWS.time_warnings = {WARNINGS}\nc.UWS.session_check_interval = 1.0\n"
    return hub_factory("sessions", system_users=(ME, OTHER), extra_config=extra)


def workspace(me: Client, name: str) -> dict:
    r = me.post("workspaces/", json={"name": name, "description": "d"})
    assert r.status_code == 200, r.text
    return r.json()["data"]["workspace"]


def current(me: Client, job_id: int) -> dict:
    return me.get(f"jobs/{job_id}/").json()["data"]["jobs"][0]["job_details"]["current_job_details"]


def test_the_warning_and_extend_inside_jupyterlab(shub: HubProcess, browser):  # noqa: F811
    me = Client.of(shub, ME)
    ws = workspace(me, "lab-session")
    j = started(me, ws["id"], job_type="jupyter_lab", resource="local", timeout=180)
    stream = Stream(shub, me, j["id"])
    until("the warning in the job record", lambda: current(me, j["id"]).get("time_warning"))
    warning = current(me, j["id"])["time_warning"]
    assert warning["point"] == 14_500 and warning["message"].startswith(
        "This session ends in 4 h 00 min, at "
    )
    assert "or extend it (up to 60 minutes more)." in warning["message"]
    until("the warning in the event stream", lambda: any(n == "warning" for n, _ in stream.events))
    assert [d for n, d in stream.events if n == "warning"][0]["message"] == warning["message"]

    p = Person(browser, shub, ME)
    try:
        p.login()
        pg = p.page
        # the workspace page: one true state (active, the job's current step only) and the banner
        pg.goto(f"{shub.url}/services/uws/workspaces/{ws['id']}")
        expect(pg.locator("#time-warning")).to_have_text(warning["message"])
        expect(pg.locator("#ws-status-line .uws-status")).to_have_text("active")
        expect(pg.locator("#job-progress")).to_have_count(0)  # the start's steps are over
        expect(pg.locator("#job-message")).to_have_text("Ready.")
        expect(pg.locator("#extend-button")).to_have_text("Extend by 60 min")
        # inside JupyterLab: the notification, with its Extend action
        lab = pg.context.new_page()
        lab.goto(
            f"{shub.url}{j['job_details']['current_job_details']['connection_details']['url_path']}"
        )
        toast = lab.locator(".Toastify__toast", has_text="This session ends in 4 h 00 min")
        expect(toast).to_be_visible(timeout=120_000)
        expect(lab.locator(".jp-uws-session-status")).to_contain_text("left")
        toast.get_by_role("button", name="Extend by 60 minutes").click()
        done = lab.locator(".Toastify__toast", has_text="Job extended by 60 minutes; it now has")
        expect(done).to_be_visible(timeout=30_000)
        expect(toast).to_have_count(0, timeout=30_000)  # withdrawn: the end moved
        expect(lab.locator(".jp-uws-session-status")).to_contain_text("Session: 4 h 5")
        lab.screenshot(path=str(ARTIFACTS / "17-jupyterlab-session-warning.png"))
        lab.close()
        # the page follows: the warning is gone (the end moved), one extension left
        expect(pg.locator("#time-warning")).to_have_count(0, timeout=15_000)
        expect(pg.locator("#extend-button")).to_have_attribute("title", "Extensions used: 1 of 2")
        pg.locator("#extend-button").click()  # the second, from the page
        expect(pg.locator("#uws-alerts")).to_contain_text("Job extended by 60 minutes")
        expect(pg.locator("#extend-button")).to_have_count(0)  # none left
        assert p.errors == [], p.errors
    finally:
        p.close()
    cur = current(me, j["id"])
    assert cur["time_left"] > 6 * 3600 - 120 and cur["extension"]["allowed"] is False
    assert (
        cur["extension"]["why_not"] == "This job has been extended 2 times, the most allowed (2)."
    )
    r = me.put(f"jobs/{j['id']}/extend/", json={"minutes": 10})
    assert r.status_code == 403 and r.json()["message"] == cur["extension"]["why_not"]
    stop_and_wait(me, j["id"])


def test_an_extension_raises_the_slurm_time_limit(shub: HubProcess):
    me, admin, other = Client.of(shub, ME), Client.of(shub, ADMIN), Client.of(shub, OTHER)
    ws = workspace(me, "slurm-session")
    j = started(me, ws["id"], job_type="test_job", resource="slurm", timeout=180)
    slurm_id = str(j["resource_job_id"])

    def time_limit() -> str:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True, check=True
        ).stdout
        return next(f for f in out.split() if f.startswith("TimeLimit="))

    assert time_limit() == "TimeLimit=04:00:00"
    before = current(me, j["id"])["time_left"]
    r = me.put(f"jobs/{j['id']}/extend/", json={"minutes": 30})
    assert r.status_code == 200, r.text
    assert r.json()["message"].startswith("Job extended by 30 minutes; it now has 4 h 3")
    assert time_limit() == "TimeLimit=04:30:00"
    assert (
        r.json()["data"]["job"]["job_details"]["current_job_details"]["time_left"] >= before + 1700
    )
    # another person cannot; an operator can, for the owner
    assert other.put(f"jobs/{j['id']}/extend/", json={"minutes": 5}).status_code == 404
    r = admin.put(f"jobs/{j['id']}/extend/", params={"user": ME}, json={"minutes": 61})
    assert r.status_code == 403
    assert r.json()["message"] == "One extension may add at most 60 minutes; 61 were asked for."
    r = admin.put(f"jobs/{j['id']}/extend/", params={"user": ME}, json={"minutes": 15})
    assert r.status_code == 200, r.text
    assert time_limit() == "TimeLimit=04:45:00"
    events = admin.get("audit/", params={"action": "job.extend", "user": ME}).json()["data"]
    assert [e["details"]["minutes"] for e in events["events"]][:2] == [15, 30]
    assert me.put(f"jobs/{j['id']}/extend/", json={"minutes": "soon"}).status_code == 400
    stop_and_wait(me, j["id"])
    r = me.put(f"jobs/{j['id']}/extend/", json={"minutes": 5})
    assert r.status_code == 400 and "Only a running job can be extended." in r.json()["message"]
