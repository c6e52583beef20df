// One workspace: files (upload), edit, delete, start a job (form generated from the configured
// job types, resources and parameters), the job's live progress, open/stop, countdown, the jobs
// history, sharing by copy (people search, sent invitations) and live sharing of a running job.
import { api, ApiError, badge, busy, bytes, clear, duration, el, errorText, hours, invalid, keepFocus, minutes, noteRow, notify, page, showQuota, uploadForm, valid, when, xsrf } from "../uws.js";

const wsId = Number(document.getElementById("workspace").dataset.workspaceId);
const LIVE = new Set(["pending", "running", "stopping"]);
let ws = null;
let quota = null;
let catalog = null; // {job_types, resources, parameters}
let stream = null;
let countdown = null;
let liveJobId = null;

// ---- the workspace -------------------------------------------------------------------------

async function loadWorkspace() {
  try {
    const data = await api("GET", `workspaces/${wsId}/`);
    ws = data.workspaces[0];
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      clear(document.getElementById("workspace"), el("div", { class: "alert alert-warning", role: "alert" }, "This workspace does not exist or is not yours. ", el("a", { href: page.prefix }, "Back to your workspaces")));
      return false;
    }
    notify(errorText(e));
    return false;
  }
  document.title = `${ws.name} · ${document.title.split(" · ").slice(1).join(" · ")}`;
  document.getElementById("ws-title").textContent = ws.name;
  document.getElementById("crumb-name").textContent = ws.name;
  document.getElementById("ws-description").textContent = ws.description || "";
  clear(document.getElementById("ws-status-line"), badge(ws.status), " ", el("span", { class: "small text-body-secondary" }, `${bytes(ws.disk_space)} · created ${when(ws.datetime_created)}`), ws.status_message && ["error", "deleting", "initializing"].includes(ws.status) ? el("div", { class: "small" }, ws.status_message) : null);
  renderFiles();
  return true;
}

function renderFiles() {
  const cur = (ws.workspace_details && ws.workspace_details.current_workspace_details) || {};
  const rows = [];
  for (const f of cur.files || []) rows.push(el("tr", {}, el("td", { class: "text-break" }, f.name), el("td", { class: "text-end text-nowrap" }, bytes(f.size))));
  for (const l of cur.symlinks || []) rows.push(el("tr", {}, el("td", { class: "text-break" }, `${l.name} → ${l.source_path || "?"}`), el("td", { class: "text-end small text-body-secondary" }, "link")));
  clear(document.getElementById("files-body"), rows.length ? rows : noteRow(2, "No files yet."));
  document.getElementById("files-note").textContent = cur.truncated ? "Only the first files are listed." : "";
}

// ---- edit / delete -------------------------------------------------------------------------

const editPanel = document.getElementById("edit-panel");
const editToggle = document.getElementById("edit-toggle");
const editForm = document.getElementById("edit-form");

function showPanel(panel, toggle, open) {
  panel.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
}

editToggle.addEventListener("click", () => {
  const open = editPanel.hidden;
  if (open && ws) {
    editForm.elements.name.value = ws.name;
    editForm.elements.description.value = ws.description || "";
    editForm.elements.default_job_type.value = ws.default_job_type || "";
  }
  showPanel(editPanel, editToggle, open);
  if (open) editForm.elements.name.focus();
});
document.getElementById("edit-cancel").addEventListener("click", () => {
  showPanel(editPanel, editToggle, false);
  editToggle.focus();
});
editForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = editForm.elements.name;
  valid(name);
  if (!name.value.trim()) {
    invalid(name, "A workspace needs a name.");
    return;
  }
  await busy(document.getElementById("edit-submit"), async () => {
    await api("PUT", `workspaces/${wsId}/`, { name: name.value.trim(), description: editForm.elements.description.value, default_job_type: editForm.elements.default_job_type.value || null });
    showPanel(editPanel, editToggle, false);
    notify("Saved.", "success");
    await loadWorkspace();
  });
});

document.getElementById("delete-button").addEventListener("click", async (ev) => {
  if (!ws) return;
  if (!window.confirm(`Delete the workspace “${ws.name}” and all its files? This cannot be undone.`)) return;
  await busy(ev.currentTarget, async () => {
    await api("DELETE", `workspaces/${wsId}/`);
    window.location.href = page.prefix;
  });
});

// ---- upload --------------------------------------------------------------------------------

const uploadFormEl = document.getElementById("upload-form");
uploadFormEl.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = uploadFormEl.elements.files;
  const status = document.getElementById("upload-status");
  if (!input.files.length) {
    status.textContent = "Choose one or more files first.";
    input.focus();
    return;
  }
  const bar = document.getElementById("upload-progress");
  const fill = bar.querySelector(".progress-bar");
  await busy(document.getElementById("upload-submit"), async () => {
    const fd = new FormData();
    for (const f of input.files) fd.append("files", f, f.name);
    bar.hidden = false;
    try {
      const data = await uploadForm(`workspaces/${wsId}/upload/`, fd, (done, total) => {
        const pct = Math.round((done / total) * 100);
        fill.style.width = `${pct}%`;
        bar.setAttribute("aria-valuenow", String(pct));
        status.textContent = `Uploading: ${bytes(done)} of ${bytes(total)}`;
      });
      status.textContent = `Uploaded ${data.files.length} file${data.files.length === 1 ? "" : "s"}: ${data.files.join(", ")}`;
      uploadFormEl.reset();
      ws = data.workspace;
      renderFiles();
      showQuota().then((q) => (quota = q));
    } catch (e) {
      status.textContent = "";
      throw e;
    } finally {
      bar.hidden = true;
    }
  });
});

// ---- the start form ------------------------------------------------------------------------

async function loadCatalog() {
  const [jt, rs, ps] = await Promise.all([api("GET", "job_types/"), api("GET", "resources/"), api("GET", "parameters/")]);
  catalog = { job_types: jt.job_types, resources: rs.resources, parameters: ps.parameters };
  const sel = document.getElementById("edit-job-type");
  for (const t of Object.values(catalog.job_types)) sel.append(el("option", { value: t.id }, t.name));
}

const LIMIT_OF = { num_cpus: "max_cpus", memory_mb: "max_memory_mb", time_limit_min: "max_time_limit_min", gpus: "max_gpus" };

function buildStartForm() {
  const box = document.getElementById("start-fields");
  const types = Object.values(catalog.job_types);
  const typeSel = el("select", { class: "form-select", id: "start-job-type", name: "job_type" }, types.map((t) => el("option", { value: t.id }, t.name)));
  const preferred = ws.default_job_type && catalog.job_types[ws.default_job_type] ? ws.default_job_type : types.length ? types[0].id : "";
  typeSel.value = preferred;
  const resBox = el("fieldset", { class: "col-12", id: "start-resources" });
  const paramBox = el("div", { class: "row g-3", id: "start-params" });
  clear(box, el("div", { class: "col-md-6" }, el("label", { class: "form-label", for: "start-job-type" }, "Job type"), typeSel), resBox, el("div", { class: "col-12" }, paramBox));

  function renderResources() {
    const t = catalog.job_types[typeSel.value];
    const ids = (t && t.resources) || [];
    const current = (box.querySelector("input[name=resource]:checked") || {}).value;
    clear(
      resBox,
      el("legend", { class: "form-label fs-6" }, "Where to run"),
      ids.map((id, i) => {
        const r = catalog.resources[id];
        const input = el("input", { class: "form-check-input", type: "radio", name: "resource", id: `res-${id}`, value: id, checked: current ? current === id : i === 0 });
        input.addEventListener("change", renderParams);
        return el("div", { class: "form-check form-check-inline" }, input, el("label", { class: "form-check-label", for: `res-${id}` }, r ? `${r.name}${r.kind === "slurm" ? " (Slurm)" : ""}` : id));
      }),
    );
    renderParams();
  }

  function renderParams() {
    const rid = (box.querySelector("input[name=resource]:checked") || {}).value;
    const r = catalog.resources[rid] || { limits: {} };
    const old = Object.fromEntries([...paramBox.querySelectorAll("input")].map((i) => [i.name, i.type === "checkbox" ? i.checked : i.value]));
    clear(
      paramBox,
      catalog.parameters
        .filter((p) => !(p.variable_name === "gpus" && !(r.limits && r.limits.max_gpus)))
        .map((p) => {
          const v = p.validation || {};
          const type = v.type || "int";
          let max = v.max ?? null;
          const min = v.min ?? null;
          const lim = r.limits && r.limits[LIMIT_OF[p.variable_name]];
          if (lim !== undefined && lim !== null) max = max === null ? lim : Math.min(max, lim);
          const id = `param-${p.variable_name}`;
          const described = `${id}-help ${id}-error`;
          let value = old[p.variable_name] !== undefined ? old[p.variable_name] : p.default_value;
          let input;
          if (type === "bool") {
            input = el("input", { class: "form-check-input", type: "checkbox", id, name: p.variable_name, checked: Boolean(value), dataset: { kind: type }, "aria-describedby": described });
          } else if (type === "str") {
            input = el("input", { class: "form-control", type: "text", id, name: p.variable_name, value: value ?? "", dataset: { kind: type }, "aria-describedby": described, required: v.required });
          } else {
            if (value !== null && value !== undefined && value !== "" && max !== null) value = Math.min(Number(value), max);
            input = el("input", { class: "form-control", type: "number", id, name: p.variable_name, min: min ?? undefined, max: max ?? undefined, step: type === "float" ? "any" : 1, value: value ?? "", dataset: { kind: type }, "aria-describedby": described, required: v.required });
          }
          input.addEventListener("input", () => {
            valid(input);
            updateCost();
          });
          const range = type === "int" || type === "float" ? [min !== null ? `at least ${min}` : null, max !== null ? `at most ${max}` : null].filter(Boolean).join(", ") : "";
          const help = el("div", { class: "form-text", id: `${id}-help` }, `${p.description}${range ? ` (${range})` : ""}`);
          const error = el("div", { class: "invalid-feedback", id: `${id}-error` });
          if (type === "bool") return el("div", { class: "col-sm-6 col-md-3" }, el("div", { class: "form-check mt-4" }, input, el("label", { class: "form-check-label", for: id }, p.display_name)), help, error);
          return el("div", { class: "col-sm-6 col-md-3" }, el("label", { class: "form-label", for: id }, p.display_name), input, help, error);
        }),
    );
    updateCost();
  }

  typeSel.addEventListener("change", renderResources);
  renderResources();
}

function updateCost() {
  const f = document.getElementById("start-form");
  const cpus = Number((f.elements.num_cpus || {}).value || 1);
  const mins = Number((f.elements.time_limit_min || {}).value || 0);
  const out = document.getElementById("start-cost");
  if (!mins) {
    out.textContent = "";
    return;
  }
  const cost = (cpus * mins) / 60;
  let text = `${cpus} core${cpus === 1 ? "" : "s"} × ${minutes(mins)} = ${hours(cost)} core-hours`;
  const c = quota && quota.core_hours;
  if (c && c.limit !== null) text += `; you have ${hours(c.left)} of ${hours(c.limit)} left${c.period && c.period.end ? ` this ${c.period.name}` : ""}`;
  out.textContent = text;
}

function checkFields(form) {
  let ok = true;
  let first = null;
  for (const input of form.querySelectorAll("#start-params input")) {
    valid(input);
    if (!input.checkValidity()) {
      ok = false;
      input.classList.add("is-invalid");
      input.setAttribute("aria-invalid", "true");
      document.getElementById(`${input.id}-error`).textContent = input.validationMessage;
      first = first || input;
    }
  }
  if (first) first.focus();
  return ok;
}

document.getElementById("start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const errBox = document.getElementById("start-error");
  errBox.hidden = true;
  if (!checkFields(form)) return;
  const resource_options = {};
  for (const input of form.querySelectorAll("#start-params input")) {
    const kind = input.dataset.kind;
    if (kind === "bool") resource_options[input.name] = input.checked;
    else if (input.value !== "") resource_options[input.name] = kind === "str" ? input.value : Number(input.value);
  }
  const body = { job_type: form.elements.job_type.value, resource_options };
  const res = form.querySelector("input[name=resource]:checked");
  if (res) body.resource = res.value;
  await busy(document.getElementById("start-submit"), async () => {
    try {
      const { job } = await api("PUT", `workspaces/${wsId}/start/`, body);
      showJob(job);
      loadJobs();
      document.getElementById("stop-button")?.focus(); // the start button is gone: focus what follows
    } catch (e) {
      // a message naming a parameter goes next to it; everything else above the button
      const named = e instanceof ApiError && catalog.parameters.find((p) => e.message.includes(p.variable_name) || e.message.includes(p.display_name));
      const input = named && document.getElementById(`param-${named.variable_name}`);
      if (input) {
        invalid(input, e.message);
      } else {
        errBox.textContent = errorText(e);
        errBox.hidden = false;
        errBox.focus();
      }
    }
  });
});

// ---- the live job --------------------------------------------------------------------------

function jobUrl(job) {
  const conn = (job.job_details && job.job_details.current_job_details && job.job_details.current_job_details.connection_details) || null;
  return conn && conn.url_path ? conn.url_path : null;
}

const seenMessages = [];
let shownSig = null; // what the job box shows: re-rendered only when that changes
let countdownEnd = null;
let pollTimer = null;

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

function showJob(job) {
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
    clear(box, job ? el("p", { class: "small text-body-secondary" }, "Last job: ", badge(job.status), job.status_message ? ` ${job.status_message}` : "") : null);
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
  const sig = JSON.stringify([job.id, job.status, url, seenMessages.length, timeLeft === null, cur.progress]);
  if (sig === shownSig) {
    tick(); // only the clock moved: nothing is rebuilt, focus and screen readers stay put
    return;
  }
  shownSig = sig;
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
      el("ol", { class: "uws-progress-log list-unstyled mb-2", id: "job-progress", "aria-label": "Progress" }, seenMessages.map((m, i) => el("li", { class: i === seenMessages.length - 1 ? "current" : "" }, m))),
      el(
        "div",
        { class: "d-flex flex-wrap align-items-center gap-2" },
        url ? el("a", { class: "btn btn-success", id: "open-lab", href: url, target: "_blank", rel: "noopener", dataset: { focusKey: "open" } }, `Open ${(catalog && catalog.job_types[job.job_type] && catalog.job_types[job.job_type].name) || "the server"}`) : null,
        stopBtn,
        timeLeft !== null ? el("span", { class: "uws-countdown small", id: "time-left" }, "") : null,
      ),
    ),
  );
  tick();
  clearInterval(countdown);
  if (timeLeft !== null) countdown = setInterval(tick, 1000);
  renderLiveShares(job);
}

function ended(job) {
  loadJobs();
  showQuota().then((q) => (quota = q));
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
    }
    showJob(job);
    if (!LIVE.has(job.status)) {
      es.close();
      ended(job);
    }
  });
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
    showJob(jobs[0]);
    if (!LIVE.has(jobs[0].status)) return ended(jobs[0]);
  } catch (e) {
    notify(`Following the job failed: ${errorText(e)} Reload the page to try again.`);
    return;
  }
  if (liveJobId === jobId) pollTimer = setTimeout(() => poll(jobId), 3000);
}

// ---- live sharing of the running job -------------------------------------------------------

async function renderLiveShares(job) {
  let box = document.getElementById("live-shares");
  if (job.status !== "running") {
    if (box) box.remove();
    return;
  }
  if (!box) {
    box = el("div", { id: "live-shares", class: "mt-3 border-top pt-3" });
    document.getElementById("current-job").after(box);
  }
  if (box.dataset.jobId === String(job.id)) return; // already shown
  box.dataset.jobId = String(job.id);
  const input = el("input", { class: "form-control", id: "live-share-user", placeholder: "user name", autocomplete: "off" });
  const kind = el("select", { class: "form-select", id: "live-share-kind", "aria-label": "Share with a user or a group" }, el("option", { value: "user" }, "user"), el("option", { value: "group" }, "group"));
  const list = el("ul", { class: "list-group mt-2", id: "live-share-list", "aria-live": "polite" });
  const form = el(
    "form",
    { class: "mt-2", novalidate: true },
    el("label", { class: "form-label", for: "live-share-user" }, "Give a colleague access to this running JupyterLab"),
    el("div", { class: "input-group" }, kind, input, el("button", { class: "btn btn-outline-primary", type: "submit", id: "live-share-submit" }, "Grant access")),
    el("div", { class: "form-text" }, "They work inside your server, as you (your account, your files). To give them their own copy, use “Share a copy”."),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!input.value.trim()) return input.focus();
    busy(document.getElementById("live-share-submit"), async () => {
      await api("POST", `jobs/${job.id}/shares/`, { [kind.value]: input.value.trim() });
      input.value = "";
      await loadLive();
    });
  });
  async function loadLive() {
    try {
      const { shares } = await api("GET", `jobs/${job.id}/shares/`);
      clear(
        list,
        shares.map((s) => {
          const who = s.user ? { user: s.user } : { group: s.group };
          const btn = el("button", { type: "button", class: "btn btn-sm btn-outline-danger", "aria-label": `Revoke access for ${s.user || s.group}` }, "Revoke");
          btn.addEventListener("click", () =>
            busy(btn, async () => {
              await api("DELETE", `jobs/${job.id}/shares/`, who);
              await loadLive();
            }),
          );
          return el("li", { class: "list-group-item d-flex justify-content-between align-items-center" }, s.user ? s.user : `group ${s.group}`, btn);
        }),
      );
    } catch (e) {
      clear(list, el("li", { class: "list-group-item text-body-secondary" }, errorText(e)));
    }
  }
  clear(box, el("h3", { class: "h6" }, "Live access"), form, list);
  loadLive();
}

// ---- jobs history --------------------------------------------------------------------------

async function loadJobs() {
  const bodyEl = document.getElementById("jobs-body");
  let jobs = [];
  try {
    ({ jobs } = await api("GET", `jobs/?workspace_id=${wsId}`));
  } catch (e) {
    clear(bodyEl, noteRow(7, errorText(e), "danger"));
    return [];
  }
  jobs = (jobs || []).sort((a, b) => b.id - a.id);
  clear(
    bodyEl,
    jobs.length
      ? jobs.map((j) =>
          el(
            "tr",
            { dataset: { jobId: j.id } },
            el("td", {}, String(j.id)),
            el("td", {}, j.job_type, el("div", { class: "small text-body-secondary" }, j.resource || "")),
            el("td", {}, badge(j.status)),
            el("td", { class: "small text-nowrap" }, when(j.datetime_start)),
            el("td", { class: "small text-nowrap" }, when(j.datetime_end)),
            el("td", { class: "text-end" }, hours(j.core_hours)),
            el("td", { class: "small" }, j.status === "failed" ? j.status_message || "" : ""),
          ),
        )
      : noteRow(7, "No jobs yet."),
  );
  return jobs;
}

// ---- share by copy -------------------------------------------------------------------------

const sharePanel = document.getElementById("share-panel");
const shareToggle = document.getElementById("share-toggle");
shareToggle.addEventListener("click", () => {
  const open = sharePanel.hidden;
  showPanel(sharePanel, shareToggle, open);
  if (open) {
    document.getElementById("share-search").focus();
    loadSent();
  }
});

let searchTimer = null;
let searchSeq = 0;
document.getElementById("share-search").addEventListener("input", (ev) => {
  clearTimeout(searchTimer);
  const term = ev.target.value.trim();
  searchTimer = setTimeout(() => search(term), 250);
});

async function search(term) {
  const status = document.getElementById("share-search-status");
  const results = document.getElementById("share-results");
  if (term.length < 2) {
    status.textContent = term ? "Type at least 2 characters." : "";
    clear(results);
    return;
  }
  const seq = ++searchSeq;
  try {
    const { users } = await api("GET", `users/?search=${encodeURIComponent(term)}`);
    if (seq !== searchSeq) return;
    const others = users.filter((u) => u.username !== page.user);
    status.textContent = others.length ? `${others.length} found` : "Nobody found.";
    clear(
      results,
      others.map((u) => {
        const full = [u.first_name, u.last_name].filter(Boolean).join(" ");
        const btn = el("button", { type: "button", class: "btn btn-sm btn-primary", "aria-label": `Invite ${u.username}` }, "Invite");
        btn.addEventListener("click", () =>
          busy(btn, async () => {
            await api("POST", "shared_workspaces/", { original_workspace_id: wsId, shared_user_ids: [u.id] });
            notify(`Invitation sent to ${u.username}.`, "success");
            await loadSent();
          }),
        );
        return el("li", { class: "list-group-item d-flex justify-content-between align-items-center" }, el("span", {}, el("strong", {}, u.username), full ? ` (${full})` : ""), btn);
      }),
    );
  } catch (e) {
    status.textContent = errorText(e);
  }
}

function copyText(c) {
  if (!c) return "";
  if (c.status === "failed") return `copy failed: ${c.error}`;
  if (c.status === "done") return "copy ready";
  if (c.files_total) return `copying: ${c.files_done} of ${c.files_total} files, ${bytes(c.bytes_done)} of ${bytes(c.bytes_total)}`;
  return `copy ${c.status}`;
}

async function loadSent() {
  const list = document.getElementById("sent-list");
  try {
    const data = await api("GET", "shared_workspaces/");
    const mine = (data.original_workspaces || []).filter((s) => s.original_workspace_id && s.original_workspace_id.id === wsId);
    clear(
      list,
      mine.length
        ? mine.map((s) => {
            const to = s.shared_workspace_id ? s.shared_workspace_id.user_id.username : "?";
            const cancel = s.is_accepted ? null : el("button", { type: "button", class: "btn btn-sm btn-outline-danger", "aria-label": `Cancel the invitation to ${to}` }, "Cancel");
            if (cancel)
              cancel.addEventListener("click", () =>
                busy(cancel, async () => {
                  await api("DELETE", `shared_workspaces/${s.id}/`);
                  notify(`The invitation to ${to} was cancelled.`, "info");
                  await loadSent();
                }),
              );
            return el("li", { class: "list-group-item d-flex justify-content-between align-items-center gap-2", dataset: { shareId: s.id } }, el("span", {}, el("strong", {}, to), " · ", s.is_accepted ? "accepted" : "waiting", el("div", { class: "small text-body-secondary" }, copyText(s.copy))), cancel);
          })
        : el("li", { class: "list-group-item text-body-secondary" }, "None yet."),
    );
  } catch (e) {
    clear(list, el("li", { class: "list-group-item text-danger" }, errorText(e)));
  }
}

// ---- start ---------------------------------------------------------------------------------

async function main() {
  const [ok, q] = await Promise.all([loadWorkspace(), showQuota()]);
  quota = q;
  if (!ok) return;
  try {
    await loadCatalog();
  } catch (e) {
    notify(`Job types not available: ${errorText(e)}`);
    return;
  }
  buildStartForm();
  const jobs = await loadJobs();
  showJob(jobs.find((j) => LIVE.has(j.status)) || jobs[0] || null);
}

main();
