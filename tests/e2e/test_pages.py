"""The web pages in a real browser: Playwright driving Debian's Chromium (headless, no download)
against a real hub, real accounts and real JupyterLab servers.

One story, as people would live it: alice logs in, creates a workspace with a file, uploads
another, starts a local JupyterLab and reaches it, stops it; she shares the workspace with bob,
who accepts it and sees the copied files (owned by his account); an operator lowers alice's
core-hour limit on the admin page and her next start is refused with the numbers. Screenshots of
every page go to ``$UWS_ARTIFACTS`` (default ``test-artifacts/pages/``); the docs use them.
"""

from __future__ import annotations

import csv
import os
import pwd
import re
import zipfile
from pathlib import Path

import pytest

from conftest import Client
from hubtest import REPO, HubProcess

CHROMIUM = os.environ.get("UWS_CHROMIUM", "/usr/lib/chromium/chromium")
# `make test` as root installs chromium and sets this: then a missing browser is a failure
REQUIRED = os.environ.get("UWS_REQUIRE_BROWSER") == "1"
if REQUIRED:
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api")
ARTIFACTS = Path(os.environ.get("UWS_ARTIFACTS", REPO / "test-artifacts" / "pages"))
ALICE, BOB, ADMIN = "uwsp-alice", "uwsp-bob", "uwst-admin"
PASSWORD = "test-password"

pytestmark = pytest.mark.skipif(
    not REQUIRED and not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} missing: apt-get install chromium (make test installs it)",
)


@pytest.fixture(scope="module")
def phub(hub_factory):
    # the hub's log goes with the screenshots, for when it fails
    return hub_factory("pages", system_users=(ALICE, BOB), keep_log=ARTIFACTS / "hub.log")


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


class Person:
    """One browser context (cookies) logged in as one user; records every request it makes."""

    def __init__(self, browser, hub: HubProcess, name: str, width: int = 1280):
        self.hub, self.name = hub, name
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.context.set_default_timeout(30_000)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def login(self) -> None:
        pg = self.page
        pg.goto(f"{self.hub.url}/hub/login")
        pg.fill("#username_input", self.name)
        pg.fill("#password_input", PASSWORD)
        pg.click("#login_submit")
        pg.wait_for_url(re.compile(r".*/services/uws/$"))  # the hub's home leads to workspaces
        playwright_api.expect(pg.locator("#username")).to_have_text(self.name)

    def shot(self, name: str) -> None:
        self.page.wait_for_timeout(300)  # let the last fetch render
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def expect(locator):
    return playwright_api.expect(locator)


def js_hours(h: str) -> str:
    """Core-hours as the pages print them (uws.js `hours`)."""
    n = float(h)
    return f"{n:.0f}" if n >= 100 else f"{n:.1f}" if n >= 10 else f"{n:.2f}"


# every visible form control has a label a screen reader can read; every button has a name
UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea, main button')]
  .filter((e) => e.offsetParent !== null && e.type !== 'hidden')
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map((e) => e.outerHTML.slice(0, 120))"""


def assert_labelled(page) -> None:
    assert page.evaluate(UNLABELLED) == []


def test_people_do_everything_from_the_pages(phub, browser, tmp_path):
    hub = phub
    admin_api = Client.of(hub, ADMIN)
    bob = Person(browser, hub, BOB)
    bob.login()  # bob and the operator have logged in once, so alice can find them
    op = Person(browser, hub, ADMIN)
    op.login()

    alice = Person(browser, hub, ALICE)
    alice.login()
    pg = alice.page
    expect(pg.locator("#workspaces-body")).to_contain_text("No workspaces yet")
    expect(pg.locator("#quota-disk")).to_contain_text("used")
    # the hub's navbar (the hub's own look) with our link in it
    expect(pg.locator("nav.navbar a.nav-link", has_text="Workspaces")).to_be_visible()
    alice.shot("01-workspaces-empty")

    # ---- create a workspace with an initial file, by keyboard where it matters -----------
    pg.locator("#new-workspace-toggle").focus()
    pg.keyboard.press("Enter")
    expect(pg.locator("#ws-name")).to_be_focused()
    pg.locator("#create-submit").click()  # no name: an inline message, nothing created
    expect(pg.locator("#ws-name-error")).to_have_text("Give the workspace a name.")
    notes = tmp_path / "notes.txt"
    notes.write_text("first results\n")
    pg.fill("#ws-name", "analysis")
    pg.fill("#ws-description", "Spectra of run 7")
    pg.select_option("#ws-job-type", "jupyter_lab")
    pg.set_input_files("#ws-files", str(notes))
    alice.shot("02-create-workspace")
    assert_labelled(alice.page)
    pg.locator("#create-submit").click()
    pg.wait_for_url(re.compile(r".*/services/uws/workspaces/\d+$"))
    ws_id = int(pg.url.rsplit("/", 1)[1])
    expect(pg.locator("#ws-title")).to_have_text("analysis")
    expect(pg.locator("#files-body")).to_contain_text("notes.txt")

    # ---- upload a file ---------------------------------------------------------------------
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n" * 1000)
    pg.set_input_files("#upload-files", str(data))
    pg.locator("#upload-submit").click()
    expect(pg.locator("#upload-status")).to_contain_text("Uploaded 1 file: data.csv")
    expect(pg.locator("#files-body")).to_contain_text("data.csv")
    wdir = hub.root / ALICE / str(ws_id)
    alice_uid = pwd.getpwnam(ALICE).pw_uid
    assert (wdir / "data.csv").read_text() == data.read_text()
    assert (wdir / "data.csv").stat().st_uid == alice_uid
    assert (wdir / "notes.txt").stat().st_uid == alice_uid
    # a file written behind the service's back (as a job does) shows after "Rescan"
    (wdir / "from-a-job.txt").write_text("made elsewhere")
    os.chown(wdir / "from-a-job.txt", alice_uid, alice_uid)
    expect(pg.locator("#files-body")).not_to_contain_text("from-a-job.txt")
    pg.locator("#scan-button").click()
    expect(pg.locator("#files-body")).to_contain_text("from-a-job.txt")
    expect(pg.locator("#files-note")).to_contain_text("read from disk")

    # ---- rename ----------------------------------------------------------------------------
    pg.locator("#edit-toggle").click()
    pg.fill("#edit-name", "analysis-run7")
    pg.locator("#edit-submit").click()
    expect(pg.locator("#ws-title")).to_have_text("analysis-run7")

    # ---- the start form comes from the configuration; bad values are refused inline ------------
    expect(pg.locator("#start-job-type")).to_have_value("jupyter_lab")  # the default job type
    pg.check("#res-local")
    cpus = pg.locator("#param-num_cpus")
    expect(cpus).to_have_attribute("max", "4")  # the resource's limit, not the parameter's 16
    # one field per option: the portal's aliases (time_limit_minutes, gpu_enabled: the same
    # options through the resource's parameter_mapping) are not offered twice
    expect(pg.locator("#param-time_limit_min")).to_be_visible()
    expect(pg.locator("#param-time_limit_minutes")).to_have_count(0)
    expect(pg.locator("#param-gpu_enabled")).to_have_count(0)
    cpus.fill("9")
    pg.locator("#start-submit").click()
    expect(cpus).to_have_class(re.compile("is-invalid"))
    expect(pg.locator("#param-num_cpus-error")).not_to_be_empty()
    cpus.fill("1")
    pg.fill("#param-time_limit_min", "30")
    expect(pg.locator("#start-cost")).to_contain_text("1 core × 30 min = 0.50 core-hours")
    alice.shot("03-workspace")
    assert_labelled(alice.page)

    # ---- start a local JupyterLab, follow its progress, reach it -------------------------------
    # every percentage the start bar shows, as it shows them
    pg.evaluate(
        """() => {
        window.uwsPercents = [];
        new MutationObserver(() => {
          const bar = document.querySelector("#job-start-progress[aria-valuenow]");
          const v = bar && Number(bar.getAttribute("aria-valuenow"));
          if (bar && window.uwsPercents.at(-1) !== v) window.uwsPercents.push(v);
        }).observe(document.body, { subtree: true, childList: true, attributes: true });
      }"""
    )
    pg.locator("#start-submit").click()
    expect(pg.locator("#job-progress li").first).to_be_visible(timeout=30_000)
    alice.shot("04-job-starting")
    expect(pg.locator("#open-lab")).to_have_text("Open JupyterLab", timeout=120_000)
    expect(pg.locator("#job-start-progress")).to_have_count(0)  # gone once running
    # the hub's spawn percentages for a local job (30: starting, 80: waiting for it to answer)
    percents = pg.evaluate("window.uwsPercents")
    assert percents and set(percents) <= {30, 80} and percents == sorted(percents), percents
    expect(pg.locator("#time-left")).to_contain_text("Time left")
    expect(pg.locator("#stop-button")).to_be_enabled()
    expect(pg.locator("#jobs-body tr").first.locator(".uws-status")).to_have_text("running")
    alice.shot("05-job-running")
    assert_labelled(alice.page)
    with alice.context.expect_page() as lab_info:
        pg.locator("#open-lab").click()
    lab = lab_info.value
    expect(lab.locator("#jp-main-dock-panel")).to_be_visible(timeout=120_000)
    # JupyterLab runs in the workspace: its file browser shows the workspace's files
    expect(lab.locator(".jp-DirListing-content")).to_contain_text("data.csv", timeout=60_000)
    expect(lab.locator(".jp-DirListing-content")).to_contain_text("notes.txt")
    lab.screenshot(path=str(ARTIFACTS / "06-jupyterlab.png"))
    lab.close()

    # ---- live sharing of the running job (JupyterHub shares) -----------------------------------
    pg.fill("#live-share-user", BOB)
    pg.locator("#live-share-submit").click()
    expect(pg.locator("#live-share-list")).to_contain_text(BOB)
    pg.locator("#live-share-list button", has_text="Revoke").click()
    expect(pg.locator("#live-share-list")).not_to_contain_text(BOB)

    # ---- stop; the history shows the job with its core-hours -----------------------------------
    pg.locator("#stop-button").click()
    expect(pg.locator("#start-form")).to_be_visible(timeout=60_000)
    row = pg.locator("#jobs-body tr").first
    expect(row.locator(".uws-status")).to_have_text(re.compile("complete"), timeout=30_000)
    job_id = int(row.get_attribute("data-job-id"))
    recorded = admin_api.get(f"jobs/{job_id}/", params={"user": ALICE}).json()["data"]["jobs"][0]
    assert recorded["status"] == "complete" and recorded["datetime_end"]
    expect(row.locator("td").nth(5)).to_have_text(js_hours(recorded["core_hours"]))
    expect(row.locator("td").nth(4)).not_to_have_text("—")  # an end time
    alice.shot("07-job-history")

    # ---- on Slurm: the same form, a job in the queue, a countdown of its time limit --------------
    if os.environ.get("UWS_TEST_SLURM") == "1":
        pg.select_option("#start-job-type", "test_job")
        pg.check("#res-slurm")
        pg.fill("#param-num_cpus", "1")
        pg.fill("#param-time_limit_min", "10")
        pg.locator("#start-submit").click()
        expect(pg.locator("#current-job")).to_contain_text("Cluster (debug)")
        left = pg.locator("#time-left")
        expect(left).to_have_text(re.compile(r"Time left: (9 min|10 min)"), timeout=120_000)
        first = left.inner_text()
        pg.wait_for_timeout(2200)
        assert left.inner_text() != first  # it counts down
        alice.shot("07b-slurm-job")
        pg.locator("#stop-button").click()
        expect(pg.locator("#start-form")).to_be_visible(timeout=60_000)
        pg.select_option("#start-job-type", "jupyter_lab")

    # ---- share a copy with bob ---------------------------------------------------------------
    pg.locator("#share-toggle").click()
    pg.locator("#share-search").press_sequentially("uwsp-b", delay=20)
    invite = pg.locator("#share-results button", has_text="Invite")
    expect(invite).to_have_count(1)
    invite.click()
    expect(pg.locator("#sent-list")).to_contain_text(BOB)
    # an invitation sent by mistake is cancelled; sent again, the other person declines it
    search = pg.locator("#share-search")
    search.fill("")
    search.press_sequentially("uwst-adm", delay=20)
    invite_op = pg.locator("#share-results li", has_text=ADMIN).locator("button", has_text="Invite")
    invite_op.click()
    sent_to_op = pg.locator("#sent-list li", has_text=ADMIN)
    expect(sent_to_op).to_contain_text("waiting")
    sent_to_op.locator("button", has_text="Cancel").click()
    expect(pg.locator("#sent-list")).not_to_contain_text(ADMIN)
    invite_op.click()
    expect(sent_to_op).to_contain_text("waiting")
    alice.shot("08-share-dialog")
    op.page.goto(f"{hub.url}/services/uws/shares")
    offer = op.page.locator("#received-list li", has_text="analysis-run7")
    offer.locator("button", has_text="Decline").click()
    expect(op.page.locator("#uws-alerts")).to_contain_text("Declined")
    expect(op.page.locator("#received-list")).to_contain_text("Nothing shared with you")
    pg.locator("#share-toggle").click()  # closed and opened again: the list is read anew
    pg.locator("#share-toggle").click()
    expect(pg.locator("#sent-list")).not_to_contain_text(ADMIN)
    expect(pg.locator("#sent-list")).to_contain_text(BOB)

    # ---- bob accepts and sees the copied files, owned by his account ---------------------------
    bpg = bob.page
    bpg.goto(f"{hub.url}/services/uws/")
    expect(bpg.locator("#uws-invitations-banner")).to_contain_text("1 workspace invitation")
    bpg.locator("#uws-invitations-banner a").click()
    item = bpg.locator("#received-list li").first
    expect(item).to_contain_text("analysis-run7")
    expect(item).to_contain_text("Copy ready", timeout=60_000)
    bob.shot("09-invitations")
    assert_labelled(bob.page)
    # the invitation is addressed by its copy's id; an e-mail's link marks it on the page, also
    # the links of e-mails sent before (by the invitation's old number)
    share_id, old_number = (
        item.get_attribute("data-share-id"),
        item.get_attribute("data-invitation-id"),
    )
    for query in (f"workspace={share_id}", f"invitation={old_number}"):
        bpg.goto(f"{hub.url}/services/uws/shares?{query}")
        marked = bpg.locator("#pointed-invitation")
        expect(marked).to_contain_text("analysis-run7")
        expect(marked).to_have_attribute("aria-current", "true")
    bpg.goto(f"{hub.url}/services/uws/shares?invitation=999999")
    expect(bpg.locator("#uws-alerts")).to_contain_text("no longer open")
    bpg.goto(f"{hub.url}/services/uws/shares")
    item = bpg.locator("#received-list li").first
    expect(item).to_contain_text("Copy ready")
    item.locator("button", has_text="Accept").focus()
    bpg.keyboard.press("Enter")  # by keyboard
    expect(item.locator("a", has_text="Open")).to_be_visible()
    item.locator("a", has_text="Open").click()
    expect(bpg.locator("#files-body")).to_contain_text("data.csv")
    expect(bpg.locator("#files-body")).to_contain_text("notes.txt")
    bob.shot("10-bob-copy")
    copy_id = int(bpg.url.rsplit("/", 1)[1])
    assert copy_id == int(share_id)
    copy = hub.root / BOB / str(copy_id) / "data.csv"
    assert copy.read_text() == data.read_text()
    assert copy.stat().st_uid == pwd.getpwnam(BOB).pw_uid

    # ---- the operator lowers alice's core-hours; her next start is refused with the numbers -----
    expect(op.page.locator("nav.navbar a", has_text="Workspace admin")).to_be_visible()
    op.page.goto(f"{hub.url}/services/uws/admin")
    row = op.page.locator(f'#quotas-body tr[data-user="{ALICE}"]')
    expect(row).to_be_visible()
    op.page.fill(f"#core-{ALICE}", "0.1")
    op.page.locator(f"#save-{ALICE}").click()
    expect(op.page.locator("#uws-alerts")).to_contain_text(f"Limits of {ALICE} saved.")
    expect(op.page.locator("#report-body")).to_contain_text(ALICE)
    audit_row = op.page.locator("#audit-body tr", has_text="quota").first
    expect(audit_row).to_contain_text(ALICE)
    expect(audit_row.locator("td").nth(4)).to_contain_text("0.1")  # what changed
    expect(op.page.locator("#all-jobs-body")).to_contain_text(ALICE)  # everyone's jobs
    expect(op.page.locator("#all-ws-body")).to_contain_text("analysis-run7")
    with op.page.expect_download() as download:
        op.page.locator("#report-csv").click()
    with open(download.value.path(), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["user"] == ALICE]
    span = {k: op.page.input_value(f"#report-{k}") for k in ("from", "to")}
    report = admin_api.get("usage/", params={**span, "user": ALICE}).json()["data"]["usage"]
    assert [(r["workspace_name"], int(r["jobs"]), r["core_hours"]) for r in rows] == [
        (r["workspace_name"], r["jobs"], r["core_hours"]) for r in report
    ]
    assert rows[0]["workspace_name"] == "analysis-run7" and int(rows[0]["jobs"]) >= 1
    op.shot("11-admin")
    assert_labelled(op.page)
    q = admin_api.get(f"users/{ALICE}/quota").json()["data"]
    assert float(q["core_hours"]["limit"]) == 0.1
    assert q["overrides"]["disk_limit"] is None  # the untouched field was not sent

    pg.reload()
    expect(pg.locator("#quota-core-hours")).to_contain_text("of 0.10 core-hours")
    pg.check("#res-local")
    pg.fill("#param-num_cpus", "2")
    pg.fill("#param-time_limit_min", "60")
    pg.locator("#start-submit").click()
    refusal = pg.locator("#start-error")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("2 cores × 1 h = 2 core-hours; you have")
    expect(refusal).to_contain_text("of 0.1 left")
    alice.shot("12-quota-refusal")

    # ---- delete with confirmation ------------------------------------------------------------
    pg.once("dialog", lambda d: d.dismiss())
    pg.locator("#delete-button").click()
    expect(pg.locator("#ws-title")).to_have_text("analysis-run7")  # dismissed: still there
    pg.once("dialog", lambda d: d.accept())
    pg.locator("#delete-button").click()
    pg.wait_for_url(re.compile(r".*/services/uws/$"))
    expect(pg.locator("#workspaces-body")).not_to_contain_text("analysis-run7", timeout=30_000)

    # nothing came from outside the hub, and no page threw
    for who in (alice, bob, op):
        outside = [u for u in who.requests if not u.startswith(hub.url)]
        assert outside == [], outside
        assert who.errors == [], who.errors
        who.close()


def test_narrow_screen_and_refusals(phub, browser):
    """A phone-sized screen shows the same page without sideways scrolling; a page asked for
    without a login leads to the hub's login and back; a non-operator gets a page saying no."""
    hub = phub
    p = Person(browser, hub, BOB, width=375)
    try:
        p.page.goto(f"{hub.url}/services/uws/shares")
        expect(p.page.locator("#username_input")).to_be_visible()  # the hub's login first
        p.page.fill("#username_input", BOB)
        p.page.fill("#password_input", PASSWORD)
        p.page.click("#login_submit")
        p.page.wait_for_url(re.compile(r".*/services/uws/shares$"))  # and back to the page
        p.page.goto(f"{hub.url}/services/uws/")
        expect(p.page.locator("#workspaces-table")).to_be_visible()
        p.page.wait_for_timeout(500)
        width = p.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375 + 1, width
        p.shot("13-narrow")
        own = p.page.locator(".uws-ws-link").first.get_attribute("href")  # bob's copy
        for path in (own, "/services/uws/shares"):
            p.page.goto(f"{hub.url}{path}")
            p.page.wait_for_timeout(800)
            width = p.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375 + 1, (path, width)
        resp = p.page.goto(f"{hub.url}/services/uws/admin")
        assert resp.status == 403
        expect(p.page.locator("#uws-error-message")).to_contain_text("administrators")
        expect(p.page.locator("nav.navbar a", has_text="Workspace admin")).to_have_count(0)
        p.page.goto(f"{hub.url}/services/uws/workspaces/999999")
        expect(p.page.locator("#workspace")).to_contain_text("does not exist or is not yours")
    finally:
        p.close()


def test_the_disk_quota_banner_shows_at_90_and_100_percent(phub, browser):
    """The banner over every page says where the person stands against their disk limit, in
    the quota answer's words, and goes away once they are under 90 % again."""
    hub = phub
    admin_api, me = Client.of(hub, ADMIN), Client.of(hub, BOB)
    r = me.post(
        "workspaces/",
        json={
            "name": "banner",
            "description": "d",
            "workspace_details": {"files": [{"name": "a.txt", "content": "x" * 50_000}]},
        },
    )
    assert r.status_code == 200, r.text
    used = me.get("users/me/quota/").json()["data"]["disk"]["used"]
    p = Person(browser, hub, BOB)
    try:
        p.login()
        banner = p.page.locator("#uws-quota-banner")
        expect(p.page.locator("#quota-disk")).to_be_visible()
        expect(banner).to_be_hidden()
        for limit, level, words in (
            (used * 100 // 95, "warning", "Disk quota nearly full."),
            (used // 2, "exceeded", "Over your disk quota."),
        ):
            r = admin_api.put(f"users/{BOB}/quota/", json={"disk_limit": limit})
            assert r.status_code == 200, r.text
            notice = me.get("users/me/quota/").json()["data"]["disk"]["notice"]
            p.page.reload()
            expect(banner).to_be_visible()
            expect(banner).to_have_attribute("data-level", level)
            expect(banner).to_contain_text(words)
            expect(banner).to_contain_text(notice)
            p.shot(f"14-disk-{level}")
        expect(banner).to_have_class(re.compile("alert-danger"))
        expect(banner).to_contain_text("uploads and new workspaces are refused")
        p.page.goto(f"{hub.url}/services/uws/shares")  # on every page
        expect(banner).to_be_visible()
        r = admin_api.put(f"users/{BOB}/quota/", json={"disk_limit": None})
        assert r.status_code == 200, r.text
        p.page.reload()
        expect(p.page.locator("#quota-disk")).to_contain_text("used")
        expect(banner).to_be_hidden()
        assert p.errors == [], p.errors
    finally:
        admin_api.put(f"users/{BOB}/quota/", json={"disk_limit": None})
        p.close()


def test_the_file_browser_works_without_a_job(phub, browser):
    """Folders, breadcrumbs, sorting, downloading a file and a folder (zip), deleting with a
    confirmation, moving — from the workspace page, with no job running."""
    hub = phub
    me = Client.of(hub, ALICE)
    files = [
        {"name": "top.txt", "content": "top\n"},
        {"name": "results/run1.csv", "content": "a,b\n1,2\n"},
        {"name": "results/big.dat", "content": "x" * 20_000},
    ]
    r = me.post(
        "workspaces/",
        json={"name": "browse", "description": "d", "workspace_details": {"files": files}},
    )
    assert r.status_code == 200, r.text
    ws_id = r.json()["data"]["workspace"]["id"]
    p = Person(browser, hub, ALICE)
    try:
        p.login()
        pg = p.page
        pg.goto(f"{hub.url}/services/uws/workspaces/{ws_id}")
        body = pg.locator("#files-body")
        expect(body.locator("tr").first).to_have_attribute("data-path", "results")  # folders first
        expect(pg.locator("#files-crumbs")).to_have_text("browse")
        body.get_by_role("button", name="results/").click()
        expect(pg.locator("#files-crumbs")).to_contain_text("results")
        expect(body).to_contain_text("run1.csv")
        pg.locator("#sort-size").click()  # by size, smallest first; again: largest first
        expect(body.locator("tr").first).to_have_attribute("data-path", "results/run1.csv")
        pg.locator("#sort-size").click()
        expect(body.locator("tr").first).to_have_attribute("data-path", "results/big.dat")
        expect(pg.locator('th[data-sort="size"]')).to_have_attribute("aria-sort", "descending")
        with pg.expect_download() as dl:
            body.get_by_role("link", name="run1.csv").click()
        assert dl.value.suggested_filename == "run1.csv"
        assert Path(dl.value.path()).read_text() == "a,b\n1,2\n"
        with pg.expect_download() as dl:
            pg.locator("#files-zip").click()
        assert dl.value.suggested_filename == "results.zip"
        with zipfile.ZipFile(dl.value.path()) as z:
            assert sorted(z.namelist()) == ["results/", "results/big.dat", "results/run1.csv"]
        p.shot("15-file-browser")
        pg.locator("#files-crumbs button", has_text="browse").click()  # back to the top
        expect(body).to_contain_text("top.txt")
        row = body.locator('tr[data-path="top.txt"]')
        pg.once("dialog", lambda d: d.dismiss())
        row.get_by_role("button", name="Delete top.txt").click()
        expect(row).to_be_visible()  # dismissed: kept
        pg.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name="Delete top.txt").click()
        expect(pg.locator("#uws-alerts")).to_contain_text("Deleted top.txt.")
        expect(row).to_have_count(0)
        top = hub.root / ALICE / str(ws_id)
        assert not (top / "top.txt").exists()
        # move (and rename) into a folder that does not exist yet
        pg.once("dialog", lambda d: d.accept("archive/results-2026"))
        body.locator('tr[data-path="results"]').get_by_role("button", name="Move").click()
        expect(pg.locator("#uws-alerts")).to_contain_text("Moved results to archive/results-2026.")
        expect(body.locator("tr").first).to_have_attribute("data-path", "archive")
        assert (top / "archive" / "results-2026" / "run1.csv").read_text() == "a,b\n1,2\n"
        assert (top / "archive").stat().st_uid == (top / "archive" / "results-2026").stat().st_uid
        assert (top / "archive").stat().st_uid == top.stat().st_uid  # the owner's, not root's
        # a name that is not UTF-8 is shown, marked, and offers nothing that cannot work
        odd = os.path.join(os.fsencode(top), b"odd-\xff.txt")
        with open(odd, "wb") as f:
            f.write(b"x")
        os.chown(odd, top.stat().st_uid, top.stat().st_gid)
        pg.reload()
        row = body.locator("tr", has_text="odd-")
        expect(row).to_have_attribute("data-path", "odd-\\xff.txt")  # the odd byte escaped
        expect(row).to_contain_text("name not UTF-8")
        expect(row.get_by_role("button")).to_have_count(0)
        expect(row.get_by_role("link")).to_have_count(0)
        assert_labelled(pg)
        assert p.errors == [], p.errors
    finally:
        p.close()
