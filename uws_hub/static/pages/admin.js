// Operators: everyone's usage and limits (edit), one person's workspaces and jobs, the usage
// report over a date range (table and CSV), recent actions from the audit log.
import { api, badge, busy, bytes, clear, el, errorText, hours, notify, page, when } from "../uws.js";

const GiB = 1024 ** 3;

function limitInput(id, value, label) {
  return el("input", { class: "form-control form-control-sm", type: "number", min: 0, step: "any", id, value: value === null || value === undefined ? "" : value, placeholder: "default", "aria-label": label });
}

async function loadQuotas() {
  const body = document.getElementById("quotas-body");
  let quotas;
  try {
    ({ quotas } = await api("GET", "quotas/"));
  } catch (e) {
    clear(body, el("tr", {}, el("td", { colspan: 6, class: "text-danger" }, errorText(e))));
    return;
  }
  clear(
    body,
    quotas.map((q) => {
      const u = q.username;
      const disk = limitInput(`disk-${u}`, q.disk.limit === null ? null : +(q.disk.limit / GiB).toFixed(3), `Disk limit of ${u} in GiB`);
      const core = limitInput(`core-${u}`, q.core_hours.limit, `Core-hour limit of ${u}`);
      const save = el("button", { type: "button", class: "btn btn-sm btn-primary", id: `save-${u}` }, "Save");
      const show = el("button", { type: "button", class: "btn btn-sm btn-outline-secondary" }, "Workspaces");
      save.addEventListener("click", () =>
        busy(save, async () => {
          const body = {
            disk_limit: disk.value === "" ? null : Math.round(Number(disk.value) * GiB),
            core_hours_limit: core.value === "" ? null : Number(core.value),
          };
          await api("PUT", `users/${encodeURIComponent(u)}/quota/`, body);
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
    }),
  );
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
      el(
        "div",
        { class: "table-responsive" },
        el(
          "table",
          { class: "table table-sm" },
          el("thead", {}, el("tr", {}, ["Id", "Name", "Status", "Size", "Modified"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, (workspaces || []).map((w) => el("tr", {}, el("td", {}, String(w.id)), el("td", {}, w.name), el("td", {}, badge(w.status)), el("td", {}, bytes(w.disk_space)), el("td", { class: "small" }, when(w.datetime_last_modified))))),
        ),
      ),
      el("h3", { class: "h6" }, "Jobs"),
      el(
        "div",
        { class: "table-responsive" },
        el(
          "table",
          { class: "table table-sm" },
          el("thead", {}, el("tr", {}, ["Job", "Workspace", "Type", "Status", "Started", "Ended", "Core-hours"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, (jobs || []).sort((a, b) => b.id - a.id).map((j) => el("tr", {}, el("td", {}, String(j.id)), el("td", {}, String(j.workspace_id)), el("td", {}, j.job_type), el("td", {}, badge(j.status)), el("td", { class: "small" }, when(j.datetime_start)), el("td", { class: "small" }, when(j.datetime_end)), el("td", {}, hours(j.core_hours))))),
        ),
      ),
    );
    section.scrollIntoView({ behavior: "smooth", block: "start" });
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
function updateCsvLink() {
  document.getElementById("report-csv").href = `${page.api}usage/${reportQuery(reportForm, { format: "csv" })}`;
}
reportForm.addEventListener("input", updateCsvLink);
reportForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  busy(document.getElementById("report-submit"), loadReport);
});

async function loadReport() {
  const body = document.getElementById("report-body");
  const { usage } = await api("GET", `usage/${reportQuery(reportForm)}`);
  clear(
    body,
    usage.length
      ? usage.map((r) => el("tr", {}, el("td", {}, r.user), el("td", {}, `${r.workspace_name} (${r.workspace_id})`), el("td", { class: "text-end" }, String(r.jobs)), el("td", { class: "text-end" }, hours(r.core_hours)), el("td", { class: "text-end" }, bytes(r.disk_space))))
      : el("tr", {}, el("td", { colspan: 5, class: "text-body-secondary" }, "No jobs ran in this period.")),
  );
}

async function loadAudit() {
  const body = document.getElementById("audit-body");
  let data;
  try {
    data = await api("GET", "audit/?limit=50");
  } catch (e) {
    clear(body, el("tr", {}, el("td", { colspan: 5, class: "text-body-secondary" }, `Audit log not available: ${errorText(e)}`)));
    return;
  }
  const events = data.events || data.audit || [];
  clear(
    body,
    events.length
      ? events.map((a) => el("tr", {}, el("td", { class: "small text-nowrap" }, when(a.time || a.datetime)), el("td", {}, a.actor || ""), el("td", {}, el("code", {}, a.action)), el("td", {}, a.user || ""), el("td", { class: "small" }, [a.object_type, a.object_id].filter((x) => x !== null && x !== undefined).join(" "))))
      : el("tr", {}, el("td", { colspan: 5, class: "text-body-secondary" }, "Nothing recorded yet.")),
  );
}

const today = new Date();
reportForm.elements.to.value = new Date(today.getTime() + 86400000).toISOString().slice(0, 10);
reportForm.elements.from.value = new Date(today.getFullYear(), today.getMonth(), 1, 12).toISOString().slice(0, 10);
updateCsvLink();
loadQuotas();
loadReport().catch((e) => notify(errorText(e)));
loadAudit();
