// The current job: its live progress (followed with server-sent events, or polled when the
// stream is refused), "Open" and "Stop", the countdown of its time limit, its time-limit
// warning and "Extend" (PUT /jobs/<id>/extend/, within the site's policy).
import { api, badge, busy, clear, duration, el, errorText, keepFocus, notify, page, showQuotaBanner, xsrf } from "../../uws.js";
import { loadWorkspace } from "./details.js";
import { loadJobs } from "./history.js";
import { renderLiveShares } from "./live-shares.js";
import { LIVE, refreshQuota, state } from "./state.js";

let stream = null;
let countdown = null;
let liveJobId = null;
const seenMessages = [];
let shownSig = null; // what the job box shows: re-rendered only when that changes
let countdownEnd = null;
let pollTimer = null;

function jobUrl(job) {
  const conn = (job.job_details && job.job_details.current_job_details && job.job_details.current_job_details.connection_details) || null;
  return conn && conn.url_path ? conn.url_path : null;
}

function tick() {
  const t = document.getElementById("time-left");
  if (t && countdownEnd !== null) t.textContent = `Time left: ${duration((countdownEnd - Date.now()) / 1000)}`;
}

// the hub's spawn progress (the percentage its own progress page shows), while a job starts
function startBar(percent) {
  const known = typeof percent === "number";
  const value = known ? Math.max(0, Math.min(100, percent)) : 100;
  const attrs = { class: "progress mb-2", id: "job-start-progress", role: "progressbar", "aria-label": "Starting" };
  if (known) Object.assign(attrs, { "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(value) });
  return el("div", attrs, el("div", { class: "progress-bar progress-bar-striped progress-bar-animated", style: `width: ${value}%` }, known ? `${value}%` : ""));
}

/** Show `job` (or the last one, or none) in the job box; a live job is followed until it ends. */
export function showJob(job) {
  const box = document.getElementById("current-job");
  const form = document.getElementById("start-form");
  if (!job || !LIVE.has(job.status)) {
    if (stream) stream.close();
    stream = null;
    clearInterval(countdown);
    clearTimeout(pollTimer);
    countdownEnd = null;
    liveJobId = null;
    shownSig = null;
    seenMessages.length = 0;
    const flag = (job && job.job_details?.current_job_details?.disk_quota) || {};
    const why = job && (job.status_message || (flag.action === "stop" ? flag.message : null));
    clear(box, job ? el("p", { class: "small text-body-secondary", id: "last-job" }, "Last job: ", badge(job.status), why ? ` ${why}` : "") : null);
    document.getElementById("live-shares")?.remove();
    form.hidden = false;
    return;
  }
  form.hidden = true;
  const cur = (job.job_details && job.job_details.current_job_details) || {};
  if (cur.message && seenMessages[seenMessages.length - 1] !== cur.message) seenMessages.push(cur.message);
  const url = job.status === "running" ? jobUrl(job) : null;
  const timeLeft = job.status === "running" && typeof cur.time_left === "number" ? cur.time_left : null;
  countdownEnd = timeLeft === null ? null : Date.now() + timeLeft * 1000;
  if (liveJobId !== job.id) follow(job.id);
  const flagged = cur.disk_quota ? cur.disk_quota.message : null; // the disk quota action
  const warned = cur.time_warning ? cur.time_warning.message : null;
  const idle = cur.idle_warning ? cur.idle_warning.message : null;
  const ext = (job.status === "running" && cur.extension) || null;
  const sig = JSON.stringify([job.id, job.status, url, seenMessages.length, timeLeft === null, cur.progress, flagged, warned, idle, ext]);
  if (sig === shownSig) {
    tick(); // only the clock moved: nothing is rebuilt, focus and screen readers stay put
    return;
  }
  shownSig = sig;
  const catalog = state.catalog;
  const resource = catalog && catalog.resources[job.resource];
  const stopBtn = el("button", { type: "button", class: "btn btn-outline-danger", id: "stop-button", disabled: job.status === "stopping", dataset: { focusKey: "stop" } }, job.status === "stopping" ? "Stopping…" : "Stop");
  stopBtn.addEventListener("click", () =>
    busy(stopBtn, async () => {
      const { job: j } = await api("PUT", `jobs/${job.id}/stop/`);
      showJob(j);
    }),
  );
  keepFocus(box, () =>
    clear(
      box,
      el("div", { class: "d-flex flex-wrap align-items-center gap-2 mb-2" }, el("span", {}, `Job ${job.id} · ${job.job_type}${resource ? ` on ${resource.name}` : ""}`), badge(job.status)),
      job.status === "pending" ? startBar(cur.progress) : null,
      flagged ? el("div", { class: "alert alert-danger py-2", id: "job-disk-quota", role: "alert" }, flagged) : null,
      warned ? el("div", { class: "alert alert-warning py-2", id: "time-warning", role: "alert" }, warned) : null,
      idle ? el("div", { class: "alert alert-warning py-2", id: "idle-warning", role: "alert" }, idle) : null,
      // while it starts, every step so far; once it runs (or stops), only where it is now
      job.status === "pending"
        ? el("ol", { class: "uws-progress-log list-unstyled mb-2", id: "job-progress", "aria-label": "Progress" }, seenMessages.map((m, i) => el("li", { class: i === seenMessages.length - 1 ? "current" : "" }, m)))
        : el("p", { class: "small mb-2", id: "job-message" }, cur.message || ""),
      el(
        "div",
        { class: "d-flex flex-wrap align-items-center gap-2" },
        url ? el("a", { class: "btn btn-success", id: "open-lab", href: url, target: "_blank", rel: "noopener", dataset: { focusKey: "open" } }, `Open ${(catalog && catalog.job_types[job.job_type] && catalog.job_types[job.job_type].name) || "the server"}`) : null,
        stopBtn,
        extendButton(job, ext),
        timeLeft !== null ? el("span", { class: "uws-countdown small", id: "time-left" }, "") : null,
        ext && !ext.allowed && warned ? el("span", { class: "small text-body-secondary", id: "extend-why" }, ext.why_not) : null,
      ),
    ),
  );
  tick();
  clearInterval(countdown);
  if (timeLeft !== null) countdown = setInterval(tick, 1000);
  renderLiveShares(job);
}

/** "Extend by N min" while the policy allows it (its title says how many are left). */
function extendButton(job, ext) {
  if (!ext || !ext.allowed) return null;
  const b = el("button", { type: "button", class: "btn btn-outline-primary", id: "extend-button", title: `Extensions used: ${ext.used} of ${ext.max}`, dataset: { focusKey: "extend" } }, `Extend by ${ext.max_minutes} min`);
  b.addEventListener("click", () =>
    busy(b, async () => {
      // `used`: a second click (or one whose answer was lost) is refused, not applied twice
      const r = await api("PUT", `jobs/${job.id}/extend/`, { minutes: ext.max_minutes, used: ext.used });
      notify(r._message || "Extended.", "success");
      showJob(r.job);
    }),
  );
  return b;
}

function ended(job) {
  loadJobs();
  refreshQuota();
}

function follow(jobId) {
  if (stream) stream.close();
  clearTimeout(pollTimer);
  liveJobId = jobId;
  // EventSource cannot send headers: the XSRF token goes in the URL (a GET, changes nothing)
  const es = new EventSource(`${page.api}jobs/${jobId}/events?_xsrf=${encodeURIComponent(xsrf())}`);
  stream = es;
  let lastStatus = null;
  es.addEventListener("status", (e) => {
    const job = JSON.parse(e.data);
    if (job.status !== lastStatus) {
      lastStatus = job.status;
      loadJobs(); // the history shows the new status too
      loadWorkspace(); // and the workspace's badge (active while a job is live)
    }
    showJob(job);
    if (!LIVE.has(job.status)) {
      es.close();
      ended(job);
    }
  });
  // the owner's disk level changed (or is 90 % or more when the stream opens)
  es.addEventListener("quota", (e) => showQuotaBanner(JSON.parse(e.data)));
  es.onerror = () => {
    // a dropped connection is retried by the browser; a refused one (too many streams, logged
    // out) is not: then ask for the job every few seconds instead
    if (es.readyState === EventSource.CLOSED && stream === es && liveJobId === jobId) {
      stream = null;
      poll(jobId);
    }
  };
}

async function poll(jobId) {
  try {
    const { jobs } = await api("GET", `jobs/${jobId}/`);
    if (!jobs.length) {
      notify("The job is gone (its workspace was deleted). Reload the page.");
      return;
    }
    showJob(jobs[0]);
    if (!LIVE.has(jobs[0].status)) return ended(jobs[0]);
  } catch (e) {
    notify(`Following the job failed: ${errorText(e)} Reload the page to try again.`);
    return;
  }
  if (liveJobId === jobId) pollTimer = setTimeout(() => poll(jobId), 3000);
}
