"""Disk quotas that hold while jobs run (issue 13, part 2), end to end: a real JupyterLab fills
its workspace; rescans see it; the person is told at 90 % and at 100 % — by e-mail through a
real SMTP server (once per crossing), in the job's event stream and in the quota answer the
pages' banner shows — API writes are refused, and after the grace the operator's action
(``stop`` here) stops the job with the reason, recorded in the audit log. The banner in a
browser: tests/e2e/test_pages.py; every rule on its own: tests/unit/test_diskwatch.py."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
import requests
from test_rescans import lab_write, until

from conftest import Client
from hubtest import HubProcess
from jobutil import started, wait_job

ME = "uwst-diskfull"
ADMIN = "uwst-admin"
MiB = 1024 * 1024
LIMIT = 10 * MiB


@pytest.fixture(scope="module")
def qhub(smtp, hub_factory):
    ctl, _ = smtp

    def settings(h: HubProcess) -> str:
        return f"""
c.UWS.rescan_interval = 2
c.UWS.disk_quota_check_interval = 1
c.UWS.disk_quota_grace = 6
c.UWS.disk_quota_action = "stop"
c.UWS.smtp_host = "127.0.0.1"
c.UWS.smtp_port = {ctl.port}
c.UWS.smtp_poll_interval = 1.0
c.UWS.site_name = "Test Workspaces"
c.UWS.public_url = "{h.url}"
"""

    h = hub_factory("diskquota", system_users=[ME], extra_config=settings)
    Client.of(h, ME).get("users/me/quota")  # known to uws, then given an address
    with sqlite3.connect(h.dir / "uws.sqlite") as db:
        db.execute("UPDATE uws_users SET email=? WHERE name=?", (f"{ME}@uni-a.edu", ME))
    r = Client.of(h, ADMIN).put(f"users/{ME}/quota/", json={"disk_limit": LIMIT})
    assert r.status_code == 200, r.text
    return h


class Stream:
    """A job's event stream read in a thread: (event name, data) as they come."""

    def __init__(self, hub: HubProcess, me: Client, job_id: int):
        self.events: list[tuple[str, dict]] = []
        self.resp = requests.get(
            f"{hub.url}/services/uws/api/jobs/{job_id}/events",
            headers=me.session.headers,
            stream=True,
            timeout=120,
        )
        assert self.resp.status_code == 200, self.resp.text
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        name = "message"
        for line in self.resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                self.events.append((name, json.loads(line[6:])))

    def quota_levels(self) -> list[str]:
        return [d["level"] for name, d in self.events if name == "quota"]


def quota(me: Client) -> dict:
    return me.get("users/me/quota/").json()["data"]["disk"]


def test_a_job_filling_the_disk_is_told_refused_and_stopped(qhub, smtp):
    _, inbox = smtp
    me, admin = Client.of(qhub, ME), Client.of(qhub, ADMIN)
    to = f"{ME}@uni-a.edu"
    ws = me.post("workspaces/", json={"name": "filling", "description": "d"}).json()["data"][
        "workspace"
    ]
    j = started(me, ws["id"], job_type="jupyter_lab", resource="local", timeout=180)
    stream = Stream(qhub, me, j["id"])
    assert quota(me)["level"] == "ok" and stream.quota_levels() == []

    lab_write(j, me, "part1.bin", int(9.3 * MiB))  # past 90 %, through JupyterLab
    until("the warning level", lambda: quota(me)["level_since"] and quota(me)["level"] == "warning")
    mail = inbox.wait_for(to, "of your disk quota")
    assert (
        mail["Subject"].startswith("Your workspaces use 9") and "Test Workspaces" in mail["Subject"]
    )
    body = mail.get_payload(decode=True).decode()
    assert "of your 10.0 MiB disk quota" in body and f"{qhub.url}/services/uws/workspaces" in body
    until("a quota event in the job's stream", lambda: stream.quota_levels() == ["warning"])

    lab_write(j, me, "part2.bin", 1 * MiB)  # past 100 %
    until(
        "the exceeded level", lambda: quota(me)["level"] == "exceeded" and quota(me)["action"]["at"]
    )
    disk = quota(me)
    assert disk["notice"].startswith("You use 10.")
    assert "Running jobs are stopped after 6 seconds over the limit." in disk["notice"]
    inbox.wait_for(to, "over your disk quota")
    until("the exceeded event", lambda: stream.quota_levels() == ["warning", "exceeded"])
    # API writes are refused over the limit, with the numbers
    r = me.put(
        f"workspaces/{ws['id']}/",
        json={"workspace_details": {"files": [{"name": "more.txt", "content": "x"}]}},
    )
    assert r.status_code == 403 and "disk quota" in r.json()["message"], r.text

    # the grace passes: the job is stopped, with the reason, and the person is told
    end = wait_job(me, j["id"], ("complete", "failed"), timeout=60)
    current = end["job_details"]["current_job_details"]
    assert current["disk_quota"]["action"] == "stop"
    assert current["disk_quota"]["message"].startswith(
        "Stopped: your workspaces stayed over your disk quota (10."
    )
    stopped = inbox.wait_for(to, "Jobs stopped")
    assert f"running job {j['id']} was stopped" in stopped.get_payload(decode=True).decode()
    stream.thread.join(timeout=30)
    assert not stream.thread.is_alive()  # the stream ended with the job
    assert [d["status"] for name, d in stream.events if name == "status"][-1] == "complete"
    # one mail per crossing: checks every second did not repeat them
    subjects = [m["Subject"] for m in inbox.messages if m["To"] == to]
    assert len(subjects) == 3, subjects

    log = admin.get("audit/", params={"user": ME, "limit": 100}).json()["data"]["events"]
    actions = [e["action"] for e in reversed(log)]
    assert actions.count("quota.disk_level") == 2 and "quota.disk_action" in actions
    stop = next(e for e in log if e["action"] == "job.stop")
    assert stop["actor_kind"] == "system" and stop["target_id"] == str(j["id"])

    # freeing space clears the notice (a rescan after the delete through the API)
    r = me.delete(f"workspaces/{ws['id']}/")
    assert r.status_code == 200, r.text
    until("back under the limit", lambda: quota(me)["level"] == "ok", timeout=60)
