// Operators: everyone's usage and limits (edit a person's own limits), everyone's jobs and
// workspaces, one person's workspaces and jobs, the usage report over a date range (table and
// CSV), recent actions from the audit log.
import { api, badge, busy, bytes, clear, el, errorText, hours, keepFocus, noteRow, notify, page, when } from "../uws.js";

const GiB = 1024 ** 3;

function gib(n) {
  return n === null || n === undefined ? "" : String(+(Number(n) / GiB).toFixed(3));
}

function limitInput(id, value, placeholder, label) {
  return el("input", { class: "form-control form-control-sm", type: "number", min: 0, step: "any", id, value: value ?? "", placeholder, "aria-label": label, "aria-describedby": "limits-help", dataset: { focusKey: id, initial: value ?? "" } });
}

/** GET `path` for the table body `body`: its answer, or null once `failed(error)` shows there. */
async function fetchFor(body, path, failed) {
  try {
    return await api("GET", path);
  } catch (e) {
    clear(body, failed(e));
    return null;
  }
}

async function loadQuotas() {
  const body = document.getElementById("quotas-body");
  const data = await fetchFor(body, "quotas/", (e) => noteRow(6, errorText(e), "danger"));
  if (!data) return;
  const rows = data.quotas.map((q) => {
    const u = q.username;
    const own = q.overrides || {};
    const dflt = q.defaults || {};
    const disk = limitInput(`disk-${u}`, gib(own.disk_limit), dflt.disk_limit ? `default ${gib(dflt.disk_limit)}` : "default: none", `Disk limit of ${u} in GiB`);
    const core = limitInput(`core-${u}`, own.core_hours_limit ?? "", dflt.core_hours_limit ? `default ${dflt.core_hours_limit}` : "default: none", `Core-hour limit of ${u}`);
    const save = el("button", { type: "button", class: "btn btn-sm btn-primary", id: `save-${u}`, "aria-label": `Save the limits of ${u}`, dataset: { focusKey: `save-${u}` } }, "Save");
    const show = el("button", { type: "button", class: "btn btn-sm btn-outline-secondary", "aria-label": `Workspaces and jobs of ${u}`, dataset: { focusKey: `show-${u}` } }, "Workspaces");
    save.addEventListener("click", () =>
      busy(save, async () => {
        // only what the operator changed is sent: an untouched field keeps its value exactly
        const changes = {};
        if (disk.value !== disk.dataset.initial) changes.disk_limit = disk.value === "" ? null : Math.round(Number(disk.value) * GiB);
        if (core.value !== core.dataset.initial) changes.core_hours_limit = core.value === "" ? null : Number(core.value);
        if (!Object.keys(changes).length) {
          notify(`Nothing changed for ${u}.`, "info");
          return;
        }
        await api("PUT", `users/${encodeURIComponent(u)}/quota/`, changes);
        notify(`Limits of ${u} saved.`, "success");
        await loadQuotas();
        loadAudit();
      }),
    );
    show.addEventListener("click", () => showPerson(u));
    return el(
      "tr",
      { dataset: { user: u } },
      el("th", { scope: "row" }, u),
      el("td", { class: "text-end" }, bytes(q.disk.used)),
      el("td", {}, disk),
      el("td", { class: "text-end" }, hours(q.core_hours.used)),
      el("td", {}, core),
      el("td", { class: "text-nowrap" }, save, " ", show),
    );
  });
  keepFocus(body, () => clear(body, rows));
}

function jobsTable(jobs, withUser) {
  return jobs.map((j) =>
    el(
      "tr",
      { dataset: { jobId: j.id } },
      el("td", {}, String(j.id)),
      withUser ? el("td", {}, j.username) : null,
      el("td", {}, String(j.workspace_id)),
      el("td", {}, j.job_type, el("div", { class: "small text-body-secondary" }, j.resource || "")),
      el("td", {}, badge(j.status)),
      el("td", { class: "small text-nowrap" }, when(j.datetime_start)),
      el("td", { class: "text-end" }, hours(j.core_hours)),
    ),
  );
}

async function loadEveryone() {
  const jobsBody = document.getElementById("all-jobs-body");
  const wsBody = document.getElementById("all-ws-body");
  try {
    const [{ jobs }, { workspaces }] = await Promise.all([api("GET", "jobs/?all_users=true&limit=200"), api("GET", "workspaces/?all_users=true&limit=200")]);
    clear(jobsBody, jobs.length ? jobsTable(jobs, true) : noteRow(7, "No jobs yet."));
    clear(
      wsBody,
      workspaces.length
        ? workspaces.map((w) => el("tr", { dataset: { workspaceId: w.id } }, el("td", {}, String(w.id)), el("td", {}, w.username), el("td", {}, w.name), el("td", {}, badge(w.status)), el("td", { class: "text-end" }, bytes(w.disk_space)), el("td", { class: "small text-nowrap" }, when(w.datetime_last_modified))))
        : noteRow(6, "No workspaces yet."),
    );
  } catch (e) {
    clear(jobsBody, noteRow(7, errorText(e), "danger"));
    clear(wsBody);
  }
}

/** A small table with column headings `headers` and body rows `rows`. */
function smallTable(headers, rows) {
  return el("div", { class: "table-responsive" }, el("table", { class: "table table-sm" }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)));
}

async function showPerson(u) {
  const section = document.getElementById("person-section");
  const box = document.getElementById("person-detail");
  section.hidden = false;
  document.getElementById("person-title").textContent = `Workspaces and jobs of ${u}`;
  clear(box, el("p", {}, "Loading…"));
  try {
    const q = encodeURIComponent(u);
    const [{ workspaces }, { jobs }] = await Promise.all([api("GET", `workspaces/?user=${q}`), api("GET", `jobs/?user=${q}`)]);
    clear(
      box,
      el("h3", { class: "h6" }, "Workspaces"),
      smallTable(
        ["Id", "Name", "Status", "Size", "Modified"],
        (workspaces || []).map((w) => el("tr", {}, el("td", {}, String(w.id)), el("td", {}, w.name), el("td", {}, badge(w.status)), el("td", {}, bytes(w.disk_space)), el("td", { class: "small" }, when(w.datetime_last_modified)))),
      ),
      el("h3", { class: "h6" }, "Jobs"),
      smallTable(["Job", "Workspace", "Type", "Status", "Started", "Core-hours"], jobsTable((jobs || []).sort((a, b) => b.id - a.id), false)),
    );
    document.getElementById("person-title").setAttribute("tabindex", "-1");
    document.getElementById("person-title").focus();
  } catch (e) {
    clear(box, el("p", { class: "text-danger" }, errorText(e)));
  }
}

function reportQuery(form, extra = {}) {
  const params = new URLSearchParams();
  if (form.elements.from.value) params.set("from", form.elements.from.value);
  if (form.elements.to.value) params.set("to", form.elements.to.value);
  if (form.elements.user.value.trim()) params.set("user", form.elements.user.value.trim());
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : "";
}

const reportForm = document.getElementById("report-form");
reportForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  busy(document.getElementById("report-submit"), loadReport);
});

// the CSV is fetched first, so a refused range is said on the page (not saved as a file)
document.getElementById("report-csv").addEventListener("click", (ev) =>
  busy(ev.currentTarget, async () => {
    const resp = await api("GET", `usage/${reportQuery(reportForm, { format: "csv" })}`, undefined, { raw: true });
    if (!resp.ok) {
      let message = `${resp.status} ${resp.statusText}`;
      try {
        message = (await resp.json()).message || message;
      } catch (e) {
        /* keep the status line */
      }
      throw new Error(message);
    }
    const url = URL.createObjectURL(await resp.blob());
    const a = el("a", { href: url, download: `uws-usage-${reportForm.elements.from.value || "start"}-${reportForm.elements.to.value || "now"}.csv`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }),
);

async function loadReport() {
  const body = document.getElementById("report-body");
  const { usage } = await api("GET", `usage/${reportQuery(reportForm)}`);
  clear(
    body,
    usage.length
      ? usage.map((r) => el("tr", {}, el("td", {}, r.user), el("td", {}, `${r.workspace_name} (${r.workspace_id})`), el("td", { class: "text-end" }, String(r.jobs)), el("td", { class: "text-end" }, hours(r.core_hours)), el("td", { class: "text-end" }, bytes(r.disk_space))))
      : noteRow(5, "No jobs ran in this period."),
  );
}

function what(a) {
  const target = [a.target_type, a.target_id].filter((x) => x !== null && x !== undefined && x !== "").join(" ");
  const details = a.details && Object.keys(a.details).length ? Object.entries(a.details).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ") : "";
  return [target, details].filter(Boolean).join(" — ");
}

async function loadAudit() {
  const body = document.getElementById("audit-body");
  const data = await fetchFor(body, "audit/?limit=50", (e) => noteRow(5, `Audit log not available: ${errorText(e)}`));
  if (!data) return;
  const { events } = data;
  clear(
    body,
    events.length
      ? events.map((a) => el("tr", { dataset: { auditId: a.id } }, el("td", { class: "small text-nowrap" }, when(a.time)), el("td", {}, a.actor || ""), el("td", {}, el("code", {}, a.action)), el("td", {}, a.user || ""), el("td", { class: "small text-break" }, what(a))))
      : noteRow(5, "Nothing recorded yet."),
  );
}

const today = new Date();
reportForm.elements.to.value = new Date(today.getTime() + 86400000).toISOString().slice(0, 10);
reportForm.elements.from.value = new Date(today.getFullYear(), today.getMonth(), 1, 12).toISOString().slice(0, 10);
loadQuotas();
loadEveryone();
loadReport().catch((e) => notify(errorText(e)));
loadAudit();
