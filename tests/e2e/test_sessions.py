"""Sessions people can plan around (issue 14), end to end: a time-limit warning reaches the job
record, its event stream, the workspace page and — through the package's JupyterLab extension and
its server side in the job server — JupyterLab itself, where "Extend" works; an extension raises
a Slurm job's TimeLimit (as ``scontrol show job`` says) and moves a local job's timer; refusals
name the numbers; only the owner and operators may extend. Every rule on its own:
tests/unit/test_sessions.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket
from test_disk_quota_jobs import Stream
from test_pages import ARTIFACTS, PASSWORD, Person, browser, expect  # noqa: F401 (a fixture)
from test_rescans import until

from conftest import Client
from hubtest import HubProcess
from jobutil import server_base, slurm_env, started, stop_and_wait, wait_job
from metricsutil import Scrape
from uws_hub.slurm.rest import JWTTokens, SlurmRest, SlurmRestError

ME, OTHER, ADMIN = "uwsp-carol", "uwsp-dave", "uwst-admin"
assert PASSWORD  # the hub's test login, as the pages' tests use it
#: the first point is due as soon as a job of the default 4 hours runs; the next at 10 minutes
WARNINGS = [14_500, 600]


#: a JupyterLab with an idle limit of one minute (warned after 30 s), whose server tells the hub
#: of its activity every 5 s; the hub reads the proxy's activity every 5 s
IDLE_CONFIG = """
c.UWS.job_types["lab_idle"] = {
    "name": "JupyterLab (idle limit)",
    "idle_timeout_min": 1,
    "environment": {"JUPYTERHUB_ACTIVITY_INTERVAL": "5"},
}
c.UWS.idle_warning = 30
c.JupyterHub.last_activity_interval = 5
"""


@pytest.fixture(scope="module")
def shub(hub_factory):
    extra = f"c.UWS.time_warnings = {WARNINGS}\nc.UWS.session_check_interval = 1.0\n"
    return hub_factory("sessions", system_users=(ME, OTHER), extra_config=extra + IDLE_CONFIG)


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


@pytest.mark.parametrize("resource", ["slurm", "slurm2"])
def test_an_extension_raises_the_slurm_time_limit(shub: HubProcess, resource: str):
    """Through the commands (scontrol as the service's account) and through slurmrestd (as
    the cluster's operator_user; the owner's own token may not raise it either)."""
    me, admin, other = Client.of(shub, ME), Client.of(shub, ADMIN), Client.of(shub, OTHER)
    ws = workspace(me, f"{resource}-session")
    j = started(me, ws["id"], job_type="test_job", resource=resource, timeout=180)
    slurm_id = str(j["resource_job_id"])
    env = slurm_env(resource)

    def time_limit() -> str:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", slurm_id],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        return next(f for f in out.split() if f.startswith("TimeLimit="))

    assert time_limit() == "TimeLimit=04:00:00"
    # Slurm lets only root, the SlurmUser or an operator raise a limit (docs/jobs.md): the owner's
    # own account may not, which is why the service (root here, as it runs) does it
    mine = subprocess.run(
        ["runuser", "-u", ME, "--", "scontrol", "update", f"JobId={slurm_id}", "TimeLimit=300"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert mine.returncode != 0 and "denied" in mine.stderr.lower(), mine
    if resource == "slurm2":  # nor through slurmrestd with a token of their own
        rest = SlurmRest(
            "http://127.0.0.1:6821", JWTTokens("/tmp/uws-slurm2/state/jwt_hs256.key"), ME
        )
        with pytest.raises(SlurmRestError, match="denied"):  # (a loop of its own: the
            # browser's is running in this thread)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, rest.update(ME, slurm_id, {"time_limit": 300})).result()
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


def run_in_kernel(j: dict, me: Client, code: str) -> None:
    """Start a kernel in the job's JupyterLab and have it run `code`; returns once the kernel
    says it is busy, and closes the connection (nobody watches it compute)."""
    base = server_base(j)
    r = requests.post(base + "api/kernels", headers=me.session.headers, json={}, timeout=60)
    assert r.status_code == 201, r.text
    ws = websocket.create_connection(
        "ws" + base[4:] + f"api/kernels/{r.json()['id']}/channels",
        header=[f"Authorization: {me.session.headers['Authorization']}"],
        timeout=60,
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": ME,
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {"code": code, "silent": False, "allow_stdin": False},
                }
            )
        )
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") == msg_id and (
                msg["msg_type"] == "status" and msg["content"]["execution_state"] == "busy"
            ):
                return
    finally:
        ws.close()


@pytest.mark.background  # (its minutes of idleness pass alongside the other tests)
def test_an_idle_job_is_stopped_and_a_busy_one_is_not(shub: HubProcess):
    me, admin = Client.of(shub, ME), Client.of(shub, ADMIN)
    idle_ws, busy_ws = workspace(me, "idle"), workspace(me, "busy")
    idle = started(me, idle_ws["id"], job_type="lab_idle", resource="local", timeout=180)
    busy = started(me, busy_ws["id"], job_type="lab_idle", resource="local", timeout=180)
    run_in_kernel(busy, me, "import time; time.sleep(240)")  # computes silently for 4 minutes
    silent_since = time.monotonic()
    stream = Stream(shub, me, idle["id"])
    # the idle one: warned (in its record and stream), then stopped, ending with the reason
    until("the idle warning", lambda: current(me, idle["id"]).get("idle_warning"), timeout=120)
    told = current(me, idle["id"])["idle_warning"]["message"]
    assert told.startswith("This session has had no activity for ")
    assert "after 1 minute without activity." in told
    end = wait_job(me, idle["id"], ("complete", "failed"), timeout=120)
    assert end["status"] == "complete", end
    assert end["job_details"]["current_job_details"]["message"] == "Stopped after 1 minute idle."
    assert any(n == "warning" and d["kind"] == "idle" for n, d in stream.events)
    # the busy one: its kernel is busy although nothing has reached the hub for 1.25 times its
    # idle limit (its warning would have come at 30 s, its stop at 60 s)
    time.sleep(max(0.0, silent_since + 75 - time.monotonic()))
    busy_now = me.get(f"jobs/{busy['id']}/").json()["data"]["jobs"][0]
    assert busy_now["status"] == "running", busy_now
    assert "idle_warning" not in busy_now["job_details"]["current_job_details"]
    scrape = Scrape(admin.get(f"{shub.url}/services/uws/metrics").text)
    assert scrape.value("uws_idle_stops_total", resource="local") == 1
    saved = scrape.value("uws_idle_stop_core_hours_saved_total", resource="local")
    assert 3.9 < saved < 4.0  # 1 core × the rest of its 4 hours
    stop = admin.get("audit/", params={"action": "job.stop", "user": ME}).json()["data"]["events"]
    assert stop[0]["details"]["reason"] == "Stopped after 1 minute idle."
    stop_and_wait(me, busy["id"])
