// The workspaces list: status, size, last job; create a workspace (with initial files).
import { api, badge, busy, bytes, clear, el, errorText, invalid, noteRow, notify, notifyNext, page, showQuota, uploadForm, valid, when } from "../uws.js";

const body = document.getElementById("workspaces-body");
const form = document.getElementById("create-form");
const panel = document.getElementById("new-workspace");
const toggle = document.getElementById("new-workspace-toggle");

function openPanel(open) {
  panel.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  if (open) document.getElementById("ws-name").focus();
}
toggle.addEventListener("click", () => openPanel(panel.hidden));
document.getElementById("create-cancel").addEventListener("click", () => {
  form.reset();
  openPanel(false);
  toggle.focus();
});

async function loadJobTypes() {
  const sel = document.getElementById("ws-job-type");
  try {
    const { job_types } = await api("GET", "job_types/");
    for (const jt of Object.values(job_types)) sel.append(el("option", { value: jt.id }, jt.name));
  } catch (e) {
    notify(`Job types not available: ${errorText(e)}`);
  }
}

async function loadList() {
  let workspaces;
  try {
    ({ workspaces } = await api("GET", "workspaces/")); // each with its last_job
  } catch (e) {
    clear(body, noteRow(5, errorText(e), "danger"));
    return;
  }
  if (!workspaces || !workspaces.length) {
    clear(body, noteRow(5, "No workspaces yet. Create one with “New workspace”."));
    return;
  }
  clear(
    body,
    workspaces.map((ws) => {
      const j = ws.last_job;
      return el(
        "tr",
        { dataset: { workspaceId: ws.id } },
        el("th", { scope: "row" }, el("a", { href: `${page.prefix}workspaces/${ws.id}`, class: "uws-ws-link" }, ws.name), ws.description ? el("div", { class: "small text-body-secondary text-truncate uws-desc" }, ws.description) : null),
        el("td", {}, badge(ws.status), ws.status_message && ["error", "deleting", "initializing"].includes(ws.status) ? el("div", { class: "small text-body-secondary" }, ws.status_message) : null),
        el("td", { class: "text-end" }, bytes(ws.disk_space)),
        el("td", {}, j ? [badge(j.status), " ", el("span", { class: "small" }, `${j.job_type} · ${when(j.datetime_created)}`)] : el("span", { class: "text-body-secondary" }, "none")),
        el("td", { class: "small d-none d-md-table-cell" }, when(ws.datetime_last_modified)),
      );
    }),
  );
}

async function loadInvitations() {
  const box = document.getElementById("uws-invitations-banner");
  try {
    const data = await api("GET", "shared_workspaces/?is_accepted=false");
    const n = (data.shared_workspaces || []).length;
    clear(box, n ? el("div", { class: "alert alert-info d-flex justify-content-between align-items-center", role: "status" }, `You have ${n} workspace invitation${n > 1 ? "s" : ""} waiting.`, el("a", { class: "btn btn-sm btn-primary", href: `${page.prefix}shares` }, "See invitations")) : null);
  } catch (e) {
    clear(box);
  }
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = form.elements.name;
  const status = document.getElementById("create-status");
  valid(name);
  if (!name.value.trim()) {
    invalid(name, "Give the workspace a name.");
    return;
  }
  await busy(document.getElementById("create-submit"), async () => {
    status.textContent = "Creating the workspace…";
    const payload = { name: name.value.trim(), description: form.elements.description.value };
    if (form.elements.default_job_type.value) payload.default_job_type = form.elements.default_job_type.value;
    let ws;
    try {
      ({ workspace: ws } = await api("POST", "workspaces/", payload));
    } catch (e) {
      status.textContent = "";
      if (/name/i.test(e.message) && e.status === 400) {
        invalid(name, e.message);
        return;
      }
      throw e;
    }
    const files = form.elements.files.files;
    if (files.length) {
      const fd = new FormData();
      for (const f of files) fd.append("files", f, f.name);
      try {
        await uploadForm(`workspaces/${ws.id}/upload/`, fd, (done, total) => {
          status.textContent = `Uploading ${bytes(done)} of ${bytes(total)}…`;
        });
      } catch (e) {
        notifyNext(`The workspace was created, but the files were not uploaded: ${errorText(e)} Upload them here.`);
      }
    }
    window.location.href = `${page.prefix}workspaces/${ws.id}`;
  });
});

showQuota();
loadJobTypes();
loadList();
loadInvitations();
