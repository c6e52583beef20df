// Live sharing of the running job: colleagues (users or groups) given access to the running
// JupyterLab, and revoking that access.
import { api, busy, clear, el, errorText } from "../../uws.js";

/** Show the live-access box under the current job while it runs (removed when it does not). */
export async function renderLiveShares(job) {
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
