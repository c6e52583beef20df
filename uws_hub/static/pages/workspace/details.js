// The workspace itself: its name, description and status at the top of the page, the
// "Rename / edit" panel and "Delete…".
import { api, ApiError, badge, busy, bytes, clear, el, errorText, invalid, notify, page, valid, when } from "../../uws.js";
import { renderFiles } from "./files.js";
import { showPanel, state, wsId } from "./state.js";

/** Load the workspace and show it; false when there is none to show (the page says why). */
export async function loadWorkspace() {
  const missing = () => {
    clear(document.getElementById("workspace"), el("div", { class: "alert alert-warning", role: "alert" }, "This workspace does not exist or is not yours. ", el("a", { href: page.prefix }, "Back to your workspaces")));
    return false;
  };
  try {
    const data = await api("GET", `workspaces/${wsId}/`);
    state.ws = data.workspaces[0]; // none (as UWS: an empty list) when it is not the caller's
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return missing();
    notify(errorText(e));
    return false;
  }
  if (!state.ws) return missing();
  const ws = state.ws;
  document.title = `${ws.name} · ${document.title.split(" · ").slice(1).join(" · ")}`;
  document.getElementById("ws-title").textContent = ws.name;
  document.getElementById("crumb-name").textContent = ws.name;
  document.getElementById("ws-description").textContent = ws.description || "";
  clear(document.getElementById("ws-status-line"), badge(ws.status), " ", el("span", { class: "small text-body-secondary" }, `${bytes(ws.disk_space)} · created ${when(ws.datetime_created)}`), ws.status_message && ["error", "deleting", "initializing"].includes(ws.status) ? el("div", { class: "small" }, ws.status_message) : null);
  renderFiles();
  return true;
}

export function initDetails() {
  const editPanel = document.getElementById("edit-panel");
  const editToggle = document.getElementById("edit-toggle");
  const editForm = document.getElementById("edit-form");

  editToggle.addEventListener("click", () => {
    const open = editPanel.hidden;
    const ws = state.ws;
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
    const ws = state.ws;
    if (!ws) return;
    if (!window.confirm(`Delete the workspace “${ws.name}” and all its files? This cannot be undone.`)) return;
    await busy(ev.currentTarget, async () => {
      await api("DELETE", `workspaces/${wsId}/`);
      window.location.href = page.prefix;
    });
  });
}
