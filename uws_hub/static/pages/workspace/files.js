// The files panel: a file browser over the workspace (folders, breadcrumbs, sorting, paging,
// download, zip of a folder, move or rename, delete with confirmation — all without a job,
// through GET/DELETE /workspaces/<id>/files/, GET .../files/download and the renames of
// PUT /workspaces/<id>/), uploading and rescanning.
import { api, busy, bytes, clear, el, errorText, keepFocus, noteRow, notify, page, uploadForm, when, xsrf } from "../../uws.js";
import { loadWorkspace } from "./details.js";
import { refreshQuota, state, wsId } from "./state.js";

const PAGE = 200;
const view = { path: "", sort: "name", order: "asc", entries: [], total: 0 };

function filesUrl(params) {
  return `workspaces/${wsId}/files/?${new URLSearchParams(params)}`;
}

/** A link that downloads `path` (a file, or a folder as a zip) with the page's login. */
function downloadHref(path) {
  return `${page.api}workspaces/${wsId}/files/download?${new URLSearchParams({ path, _xsrf: xsrf() })}`;
}

function crumbs() {
  const parts = view.path ? view.path.split("/") : [];
  const items = [{ name: state.ws ? state.ws.name : "Workspace", path: "" }];
  parts.forEach((name, i) => items.push({ name, path: parts.slice(0, i + 1).join("/") }));
  return items.map((c, i) => {
    const last = i === items.length - 1;
    const body = last ? c.name : el("button", { type: "button", class: "btn btn-link btn-sm p-0 align-baseline", dataset: { focusKey: `crumb-${c.path}` } }, c.name);
    if (!last) body.addEventListener("click", () => openFolder(c.path));
    return el("li", { class: `breadcrumb-item${last ? " active" : ""}`, "aria-current": last ? "location" : null }, body);
  });
}

function removeButton(entry) {
  const what = entry.type === "directory" ? `the folder ${entry.path} and everything in it` : entry.path;
  const b = el("button", { type: "button", class: "btn btn-sm btn-outline-danger", "aria-label": `Delete ${entry.name}`, dataset: { focusKey: `del-${entry.path}` } }, "Delete");
  b.addEventListener("click", () => {
    if (!window.confirm(`Delete ${what}? This cannot be undone.`)) return;
    busy(b, async () => {
      const r = await api("DELETE", filesUrl({ path: entry.path }));
      notify(r._message || `Deleted ${entry.path}.`, "success");
      await loadWorkspace(); // its size, then this folder again
      refreshQuota();
    });
  });
  return b;
}

function moveButton(entry) {
  const b = el("button", { type: "button", class: "btn btn-sm btn-outline-secondary", "aria-label": `Move or rename ${entry.name}`, dataset: { focusKey: `mv-${entry.path}` } }, "Move");
  b.addEventListener("click", () => {
    const answer = window.prompt(`Move or rename ${entry.path} to (a path in the workspace; missing folders are made):`, entry.path);
    const dest = (answer || "").trim().replace(/^\/+|\/+$/g, "");
    if (!dest || dest === entry.path) return;
    busy(b, async () => {
      await api("PUT", `workspaces/${wsId}/`, { workspace_details: { renames: [{ name: entry.path, new_name: dest }] } });
      notify(`Moved ${entry.path} to ${dest}.`, "success");
      await loadWorkspace(); // its file list, then this folder again
    });
  });
  return b;
}

function nameCell(entry) {
  if (entry.utf8 === false) {
    const why = "This name is not valid UTF-8 (its odd bytes are shown as \\xNN): download its folder as a zip, or rename it from a job.";
    return el("span", { class: "text-break text-body-secondary", title: why }, entry.name, " ", el("span", { class: "badge text-bg-warning" }, "name not UTF-8"));
  }
  if (entry.type === "directory") {
    const b = el("button", { type: "button", class: "btn btn-link btn-sm p-0 text-start text-break", dataset: { focusKey: `dir-${entry.path}` } }, `${entry.name}/`);
    b.addEventListener("click", () => openFolder(entry.path));
    return b;
  }
  if (entry.type === "file") return el("a", { href: downloadHref(entry.path), download: entry.name, class: "text-break" }, entry.name);
  if (entry.type === "link") return el("span", { class: "text-break" }, `${entry.name} → ${entry.target || "?"}`);
  return el("span", { class: "text-break text-body-secondary" }, entry.name);
}

function row(entry) {
  const zip = entry.type === "directory" ? el("a", { class: "btn btn-sm btn-outline-secondary", href: downloadHref(entry.path), "aria-label": `Download ${entry.name} as a zip` }, "Zip") : null;
  return el(
    "tr",
    { dataset: { path: entry.path, type: entry.type } },
    el("td", {}, nameCell(entry)),
    el("td", { class: "text-end text-nowrap" }, entry.type === "file" ? bytes(entry.size) : entry.type === "link" ? "link" : ""),
    el("td", { class: "d-none d-sm-table-cell small text-nowrap" }, when(entry.modified)),
    el("td", { class: "text-end text-nowrap" }, entry.utf8 === false ? "" : el("div", { class: "d-inline-flex gap-1" }, zip, moveButton(entry), removeButton(entry))),
  );
}

function render() {
  const body = document.getElementById("files-body");
  keepFocus(document.getElementById("files-table"), () => clear(body, view.entries.length ? view.entries.map(row) : noteRow(4, view.path ? "This folder is empty." : "No files yet.")));
  keepFocus(document.getElementById("files-crumbs"), () => clear(document.getElementById("files-crumbs"), crumbs()));
  for (const th of document.querySelectorAll("#files-table th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === view.sort ? (view.order === "asc" ? "ascending" : "descending") : "none");
  }
  const more = document.getElementById("files-more");
  more.hidden = view.entries.length >= view.total;
  more.textContent = `Show more (${view.total - view.entries.length} left)`;
  document.getElementById("files-zip").href = downloadHref(view.path);
  const ws = state.ws;
  const scanned = ws && ws.datetime_scanned ? `Size and quota read from disk ${when(ws.datetime_scanned)}; they follow jobs' files when a job ends, and every few minutes while one runs.` : "";
  const note = document.getElementById("files-note");
  note.textContent = `${view.total} item${view.total === 1 ? "" : "s"} here. ${scanned}`;
  note.setAttribute("data-scanned", (ws && ws.datetime_scanned) || "");
}

async function load(append = false) {
  const params = { path: view.path, sort: view.sort, order: view.order, offset: append ? view.entries.length : 0, limit: PAGE };
  try {
    const data = await api("GET", filesUrl(params));
    view.entries = append ? view.entries.concat(data.entries) : data.entries;
    view.total = data.total;
  } catch (e) {
    if (view.path && !append) {
      notify(`${errorText(e)} Showing the workspace's top folder.`);
      view.path = "";
      return load();
    }
    clear(document.getElementById("files-body"), noteRow(4, errorText(e), "danger"));
    return;
  }
  render();
}

function openFolder(path) {
  view.path = path;
  return load();
}

/** Redraw the panel for the workspace as `state.ws` now has it (the current folder again). */
export function renderFiles() {
  return load();
}

export function initFiles() {
  for (const key of ["name", "size", "modified"]) {
    document.getElementById(`sort-${key}`).addEventListener("click", () => {
      view.order = view.sort === key && view.order === "asc" ? "desc" : "asc";
      view.sort = key;
      load();
    });
  }
  const more = document.getElementById("files-more");
  more.addEventListener("click", () => busy(more, () => load(true)));
  const scan = document.getElementById("scan-button");
  scan.addEventListener("click", () =>
    busy(scan, async () => {
      const data = await api("PUT", `workspaces/${wsId}/scan/`);
      state.ws = data.workspace;
      await load();
      refreshQuota();
    }),
  );
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
      for (const f of input.files) fd.append("files", f, view.path ? `${view.path}/${f.name}` : f.name);
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
        state.ws = data.workspace;
        await load();
        refreshQuota();
      } catch (e) {
        status.textContent = "";
        throw e;
      } finally {
        bar.hidden = true;
      }
    });
  });
}
