// uws_hub pages: shared helpers. Everything goes through the REST API with the browser's hub
// login (cookie) and the XSRF token the page was rendered with; no data is put into the DOM as
// HTML (el() builds nodes, text is text).

export const page = JSON.parse(document.getElementById("uws-page").textContent);

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function xsrf() {
  return (window.jhdata && window.jhdata.xsrf_token) || "";
}

/** Call the uws API: resolves to the envelope's `data` (and `message`), throws ApiError. */
export async function api(method, path, body, { raw = false } = {}) {
  const headers = { "X-XSRFToken": xsrf(), Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(page.api + path, init);
  } catch (e) {
    throw new ApiError(0, "The workspace service did not answer; check your connection and try again.");
  }
  if (raw) return resp;
  let payload = null;
  try {
    payload = await resp.json();
  } catch (e) {
    payload = null;
  }
  if (resp.status === 401 || resp.status === 403) {
    if (resp.status === 401) {
      window.location.href = page.prefix; // log in again through the hub
    }
  }
  if (!resp.ok || (payload && payload.success === false)) {
    throw new ApiError(resp.status, envelopeText(payload, `${resp.status} ${resp.statusText}`), payload);
  }
  const data = (payload && payload.data) || {};
  Object.defineProperty(data, "_message", { value: payload && payload.message, enumerable: false });
  return data;
}

/** An error answer's words: UWS's `message`, then uws_hub's `detail` (what to do next) if any. */
function envelopeText(payload, fallback) {
  const message = (payload && payload.message) || fallback;
  return payload && payload.detail ? `${message} ${payload.detail}` : message;
}

/** Upload a FormData with progress (XMLHttpRequest: fetch has no upload progress). */
export function uploadForm(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", page.api + path);
    xhr.setRequestHeader("X-XSRFToken", xsrf());
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      let payload = null;
      try {
        payload = JSON.parse(xhr.responseText);
      } catch (e) {
        payload = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && payload && payload.success !== false) {
        resolve(payload.data || {});
      } else {
        reject(new ApiError(xhr.status, envelopeText(payload, `${xhr.status} ${xhr.statusText}`), payload));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "The upload was interrupted; check your connection and try again."));
    xhr.send(form);
  });
}

/** Build a DOM node: el("a", {href: "/x", class: "btn"}, "text", otherNode). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** A table row with one cell across `colspan` columns: "nothing yet", or an error (kind "danger"). */
export function noteRow(colspan, text, kind) {
  return el("tr", {}, el("td", { colspan, class: kind === "danger" ? "text-danger" : "text-body-secondary" }, text));
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  n = Number(n);
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = -1;
  do {
    n /= 1024;
    i++;
  } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function hours(h) {
  if (h === null || h === undefined) return "—";
  const n = Number(h);
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A time limit in minutes as people say it: "30 min", "1 h", "2 h 30 min". */
export function minutes(m) {
  m = Math.round(Number(m));
  const h = Math.floor(m / 60);
  const r = m % 60;
  return h ? (r ? `${h} h ${r} min` : `${h} h`) : `${r} min`;
}

export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
}

const STATUS_CLASS = {
  idle: "text-bg-light",
  active: "text-bg-success",
  initializing: "text-bg-info",
  ready: "text-bg-success",
  running: "text-bg-success",
  complete: "text-bg-secondary",
  pending: "text-bg-warning",
  stopping: "text-bg-warning",
  creating: "text-bg-info",
  copying: "text-bg-info",
  deleting: "text-bg-warning",
  failed: "text-bg-danger",
  error: "text-bg-danger",
  done: "text-bg-success",
};

export function badge(status, label) {
  return el("span", { class: `badge ${STATUS_CLASS[status] || "text-bg-light"} uws-status`, dataset: { status } }, label || status);
}

/** A message at the top of the page (errors stay until closed; others fade). */
export function notify(message, kind = "danger") {
  const box = document.getElementById("uws-alerts");
  const close = el("button", { type: "button", class: "btn-close", "aria-label": "Close" });
  const alert = el("div", { class: `alert alert-${kind} alert-dismissible d-flex align-items-start gap-2`, role: kind === "danger" ? "alert" : "status" }, el("div", { class: "flex-grow-1" }, message), close);
  close.addEventListener("click", () => alert.remove());
  box.append(alert);
  if (kind !== "danger") setTimeout(() => alert.remove(), 8000);
  return alert;
}

/** A message for the next page (shown by it with notify): for actions that navigate away. */
export function notifyNext(message, kind = "danger") {
  try {
    sessionStorage.setItem("uws-notice", JSON.stringify({ message, kind }));
  } catch (e) {
    /* private mode: the message is lost, the action still happened */
  }
}

function showPending() {
  try {
    const raw = sessionStorage.getItem("uws-notice");
    if (raw) {
      sessionStorage.removeItem("uws-notice");
      const { message, kind } = JSON.parse(raw);
      notify(message, kind);
    }
  } catch (e) {
    /* nothing to show */
  }
}
document.addEventListener("DOMContentLoaded", showPending);
if (document.readyState !== "loading") showPending();

/** Mark a form field invalid (visually and for screen readers) with a message, and focus it. */
export function invalid(input, message) {
  input.classList.add("is-invalid");
  input.setAttribute("aria-invalid", "true");
  const box = document.getElementById(`${input.id}-error`);
  if (box) box.textContent = message;
  input.focus();
}

export function valid(input) {
  input.classList.remove("is-invalid");
  input.removeAttribute("aria-invalid");
}

/** Re-render `container` with `render()` without losing the keyboard focus: the element with
 * the same `data-focus-key` gets it back. */
export function keepFocus(container, render) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.focusKey : null;
  render();
  if (key) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

export function errorText(e) {
  return e instanceof ApiError ? e.message : String(e && e.message ? e.message : e);
}

/** Run an action from a button: disabled while it runs, errors shown with the API's words. */
export async function busy(button, fn) {
  const old = button.disabled;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } catch (e) {
    notify(errorText(e));
    return undefined;
  } finally {
    button.disabled = old;
    button.removeAttribute("aria-busy");
  }
}

function bar(id, label, used, limit, text, extra) {
  const pct = limit ? Math.min(100, (Number(used) / Number(limit)) * 100) : 0;
  const level = pct >= 100 ? "bg-danger" : pct >= 90 ? "bg-warning" : "bg-success";
  return el(
    "div",
    { class: "col-md-6 uws-quota-item", id },
    el("div", { class: "d-flex justify-content-between small" }, el("span", { class: "fw-semibold", id: `${id}-label` }, label), el("span", { class: "uws-quota-text" }, text)),
    limit === null || limit === undefined
      ? el("div", { class: "small text-body-secondary" }, "no limit")
      : el(
          "div",
          { class: "progress", role: "progressbar", "aria-labelledby": `${id}-label`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(pct)), "aria-valuetext": text },
          el("div", { class: `progress-bar ${level}`, style: `width: ${pct.toFixed(1)}%` }),
        ),
    extra ? el("div", { class: "small text-body-secondary" }, extra) : null,
  );
}

const JOB_ACTIONS = { warn: "flagged", stop: "stopped" };

/** The banner over every page when the signed-in user's disk usage is at 90 % or more: the
 * quota's `disk` object (from the quota API or a job's `quota` event). */
export function showQuotaBanner(disk) {
  const box = document.getElementById("uws-quota-banner");
  if (!box) return;
  if (!disk || disk.level === "ok" || !disk.notice) {
    box.hidden = true;
    clear(box);
    return;
  }
  const at = disk.action && disk.action.at && JOB_ACTIONS[disk.action.policy];
  box.className = `alert ${disk.level === "exceeded" ? "alert-danger" : "alert-warning"}`;
  box.dataset.level = disk.level;
  clear(box, el("strong", {}, disk.level === "exceeded" ? "Over your disk quota. " : "Disk quota nearly full. "), disk.notice, at ? ` Jobs that were running when you passed the limit will be ${at} at ${when(disk.action.at)}; jobs started since get the same time from their start.` : "");
  box.hidden = false;
}

/** "X of Y" bars for disk and core-hours (the signed-in user's, or `user`'s for admins), and
 * the banner when the signed-in user's disk is nearly full or over. */
export async function showQuota(user) {
  const box = document.getElementById("uws-quota");
  if (!box) return null;
  try {
    const q = await api("GET", `users/${encodeURIComponent(user || "me")}/quota/`);
    const d = q.disk;
    const c = q.core_hours;
    const diskText = d.limit === null ? `${bytes(d.used)} used` : `${bytes(d.used)} of ${bytes(d.limit)}`;
    const coreText = c.limit === null ? `${hours(c.used)} core-hours used` : `${hours(c.used)} of ${hours(c.limit)} core-hours`;
    const period = c.period && c.period.end ? c.period : null; // an accounting period: month, quarter, year
    const notes = [Number(c.running) > 0 ? `${hours(c.running)} of it by running jobs` : null, period ? `renew on ${period.end.slice(0, 10)}` : null].filter(Boolean);
    clear(box, bar("quota-disk", "Disk", d.used, d.limit, diskText), bar("quota-core-hours", period ? `Core-hours this ${period.name}` : "Core-hours", c.used, c.limit, coreText, notes.join("; ") || null));
    if (!user) showQuotaBanner(d);
    return q;
  } catch (e) {
    clear(box, el("div", { class: "col text-body-secondary small" }, `Quota not available: ${errorText(e)}`));
    return null;
  }
}

export function field(label, input, help) {
  const id = input.id;
  return el("div", { class: "mb-3" }, el("label", { class: "form-label", for: id }, label), input, help ? el("div", { class: "form-text", id: `${id}-help` }, help) : null);
}
