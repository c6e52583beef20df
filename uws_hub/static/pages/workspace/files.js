// The files panel: the workspace's files and links, and uploading more.
import { api, busy, bytes, clear, el, noteRow, uploadForm, when } from "../../uws.js";
import { refreshQuota, state, wsId } from "./state.js";

export function renderFiles() {
  const ws = state.ws;
  const cur = (ws.workspace_details && ws.workspace_details.current_workspace_details) || {};
  const rows = [];
  for (const f of cur.files || []) rows.push(el("tr", {}, el("td", { class: "text-break" }, f.name), el("td", { class: "text-end text-nowrap" }, bytes(f.size))));
  for (const l of cur.symlinks || []) rows.push(el("tr", {}, el("td", { class: "text-break" }, `${l.name} → ${l.source_path || "?"}`), el("td", { class: "text-end small text-body-secondary" }, "link")));
  clear(document.getElementById("files-body"), rows.length ? rows : noteRow(2, "No files yet."));
  const scanned = ws.datetime_scanned ? ` Read from disk ${when(ws.datetime_scanned)}; jobs' files show when a job ends, and every few minutes while one runs.` : "";
  const note = document.getElementById("files-note");
  note.textContent = (cur.truncated ? "Only the first files are listed." : "") + scanned;
  note.setAttribute("data-scanned", ws.datetime_scanned || "");
}

export function initFiles() {
  const scan = document.getElementById("scan-button");
  scan.addEventListener("click", () =>
    busy(scan, async () => {
      const data = await api("PUT", `workspaces/${wsId}/scan/`);
      state.ws = data.workspace;
      renderFiles();
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
      for (const f of input.files) fd.append("files", f, f.name);
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
        renderFiles();
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
