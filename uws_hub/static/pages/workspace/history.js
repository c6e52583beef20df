// The jobs panel: every job run in this workspace, newest first.
import { api, badge, clear, el, errorText, hours, noteRow, when } from "../../uws.js";
import { wsId } from "./state.js";

/** Show the workspace's jobs; resolves to them (newest first), [] when they could not be read. */
export async function loadJobs() {
  const bodyEl = document.getElementById("jobs-body");
  let jobs = [];
  try {
    ({ jobs } = await api("GET", `jobs/?workspace_id=${wsId}`));
  } catch (e) {
    clear(bodyEl, noteRow(7, errorText(e), "danger"));
    return [];
  }
  jobs = (jobs || []).sort((a, b) => b.id - a.id);
  clear(
    bodyEl,
    jobs.length
      ? jobs.map((j) =>
          el(
            "tr",
            { dataset: { jobId: j.id } },
            el("td", {}, String(j.id)),
            el("td", {}, j.job_type, el("div", { class: "small text-body-secondary" }, j.resource || "")),
            el("td", {}, badge(j.status)),
            el("td", { class: "small text-nowrap" }, when(j.datetime_start)),
            el("td", { class: "small text-nowrap" }, when(j.datetime_end)),
            el("td", { class: "text-end" }, hours(j.core_hours)),
            el("td", { class: "small" }, j.status === "failed" ? j.status_message || "" : ""),
          ),
        )
      : noteRow(7, "No jobs yet."),
  );
  return jobs;
}
