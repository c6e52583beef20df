// The workspace page's shared state: which workspace, what the panels know of it, and the little
// they share (the quota bars, opening and closing a panel).
import { showQuota } from "../../uws.js";

export const wsId = Number(document.getElementById("workspace").dataset.workspaceId);

/** A job in one of these states is followed live. */
export const LIVE = new Set(["pending", "running", "stopping"]);

export const state = {
  ws: null, // the workspace, as the API gives it
  quota: null, // the signed-in user's quota (for the start form's cost line)
  catalog: null, // {job_types, resources, parameters}
};

/** Redraw the quota bars and keep what they show for the cost line. */
export function refreshQuota() {
  return showQuota().then((q) => (state.quota = q));
}

export function showPanel(panel, toggle, open) {
  panel.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
}
