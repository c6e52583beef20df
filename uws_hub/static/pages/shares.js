// Invitations: received (accept / decline, with copy progress) and sent (cancel).
import { api, busy, bytes, clear, el, errorText, keepFocus, notify, page, showQuota, when } from "../uws.js";

function copyLine(c) {
  if (!c) return "";
  if (c.status === "failed") return `The copy failed: ${c.error}`;
  if (c.status === "done") return `Copy ready (${c.files_total} files, ${bytes(c.bytes_total)}).`;
  if (c.files_total) return `Copying: ${c.files_done} of ${c.files_total} files, ${bytes(c.bytes_done)} of ${bytes(c.bytes_total)}…`;
  return c.status === "pending" ? "The copy is waiting its turn…" : `Copy ${c.status}…`;
}

function person(u) {
  if (!u) return "?";
  const full = [u.first_name, u.last_name].filter(Boolean).join(" ");
  return full ? `${full} (${u.username})` : u.username;
}

let timer = null;

async function load() {
  let data;
  try {
    data = await api("GET", "shared_workspaces/");
  } catch (e) {
    notify(errorText(e));
    return;
  }
  const received = (data.shared_workspaces || []).sort((a, b) => b.id - a.id);
  const sent = (data.original_workspaces || []).sort((a, b) => b.id - a.id);
  let copying = false;
  const receivedList = document.getElementById("received-list");
  const sentList = document.getElementById("sent-list");
  keepFocus(receivedList, () => clear(
    receivedList,
    received.length
      ? received.map((s) => {
          const orig = s.original_workspace_id;
          const name = orig ? orig.name : s.shared_workspace_id ? s.shared_workspace_id.name : `invitation ${s.id}`;
          const from = orig ? person(orig.user_id) : "someone";
          const actions = [];
          if (!s.is_accepted) {
            if (s.copy && (s.copy.status === "pending" || s.copy.status === "copying")) copying = true;
            const accept = el("button", { type: "button", class: "btn btn-sm btn-success", "aria-label": `Accept ${name} from ${from}`, disabled: s.copy && s.copy.status === "failed", dataset: { focusKey: `accept-${s.id}` } }, "Accept");
            const decline = el("button", { type: "button", class: "btn btn-sm btn-outline-danger", "aria-label": `Decline ${name} from ${from}`, dataset: { focusKey: `decline-${s.id}` } }, "Decline");
            accept.addEventListener("click", () =>
              busy(accept, async () => {
                await api("PUT", `shared_workspaces/${s.id}/accept/`);
                notify(`“${name}” is now one of your workspaces.`, "success");
                await load();
                showQuota();
              }),
            );
            decline.addEventListener("click", () =>
              busy(decline, async () => {
                await api("DELETE", `shared_workspaces/${s.id}/`);
                notify(`Declined “${name}”.`, "info");
                await load();
              }),
            );
            actions.push(accept, decline);
          } else if (s.shared_workspace_id) {
            actions.push(el("a", { class: "btn btn-sm btn-outline-primary", href: `${page.prefix}workspaces/${s.shared_workspace_id.id}` }, "Open"));
          }
          return el(
            "li",
            { class: "list-group-item d-flex flex-wrap justify-content-between align-items-center gap-2", dataset: { shareId: s.id, invitationId: s.invitation_id } },
            el("div", {}, el("strong", {}, name), ` from ${from}`, el("div", { class: "small text-body-secondary" }, `${s.is_accepted ? `Accepted ${when(s.datetime_share_accepted)}` : `Sent ${when(s.datetime_share_created)}`} · ${copyLine(s.copy)}`)),
            el("div", { class: "d-flex gap-2" }, actions),
          );
        })
      : el("li", { class: "list-group-item text-body-secondary" }, "Nothing shared with you."),
  ));
  keepFocus(sentList, () => clear(
    sentList,
    sent.length
      ? sent.map((s) => {
          const name = s.original_workspace_id ? s.original_workspace_id.name : `invitation ${s.id}`;
          const to = s.shared_workspace_id ? person(s.shared_workspace_id.user_id) : "?";
          let cancel = null;
          if (!s.is_accepted) {
            cancel = el("button", { type: "button", class: "btn btn-sm btn-outline-danger", "aria-label": `Cancel ${name} to ${to}`, dataset: { focusKey: `cancel-${s.id}` } }, "Cancel");
            cancel.addEventListener("click", () =>
              busy(cancel, async () => {
                await api("DELETE", `shared_workspaces/${s.id}/`);
                await load();
              }),
            );
          }
          return el(
            "li",
            { class: "list-group-item d-flex flex-wrap justify-content-between align-items-center gap-2", dataset: { shareId: s.id, invitationId: s.invitation_id } },
            el("div", {}, el("strong", {}, name), ` to ${to}`, el("div", { class: "small text-body-secondary" }, `${s.is_accepted ? "accepted" : "waiting for an answer"} · ${copyLine(s.copy)}`)),
            cancel,
          );
        })
      : el("li", { class: "list-group-item text-body-secondary" }, "You have not shared any workspace."),
  ));
  clearTimeout(timer);
  if (copying) timer = setTimeout(load, 2000); // follow copy progress
  if (!pointed) {
    pointed = true;
    pointAt();
  }
}

// An e-mail's link names one invitation: ?workspace=<copy id> (as the API addresses it), or
// ?invitation=<number> in e-mails sent before invitations were addressed by their copy.
let pointed = false;
function pointAt() {
  const q = new URLSearchParams(location.search);
  const key = q.has("workspace") ? ["shareId", q.get("workspace")] : q.has("invitation") ? ["invitationId", q.get("invitation")] : null;
  if (!key) return;
  const item = [...document.querySelectorAll("#received-list li, #sent-list li")].find((li) => li.dataset[key[0]] === key[1]);
  if (!item) {
    notify("That invitation is no longer open: it was accepted, declined or cancelled. Your workspaces are on the Workspaces page.", "info");
    return;
  }
  item.classList.add("list-group-item-primary");
  item.setAttribute("aria-current", "true");
  item.id = "pointed-invitation";
  item.scrollIntoView({ block: "center" });
}

showQuota();
load();
