// The "Share a copy" panel: finding people, inviting them, and the invitations sent for this
// workspace (with the copy's progress; cancelling one not yet accepted).
import { api, busy, bytes, clear, el, errorText, notify, page } from "../../uws.js";
import { showPanel, wsId } from "./state.js";

let searchTimer = null;
let searchSeq = 0;

export function initSharing() {
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
  document.getElementById("share-search").addEventListener("input", (ev) => {
    clearTimeout(searchTimer);
    const term = ev.target.value.trim();
    searchTimer = setTimeout(() => search(term), 250);
  });
}

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
