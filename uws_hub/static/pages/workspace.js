// One workspace: files (upload), edit, delete, start a job (form generated from the configured
// job types, resources and parameters), the job's live progress, open/stop, countdown, the jobs
// history, sharing by copy (people search, sent invitations) and live sharing of a running job.
// Each panel is a module in ./workspace/ (state.js holds what they share); this one wires them
// up and loads the page.
import { errorText, notify, showQuota } from "../uws.js";
import { initDetails, loadWorkspace } from "./workspace/details.js";
import { initFiles } from "./workspace/files.js";
import { loadJobs } from "./workspace/history.js";
import { showJob } from "./workspace/job.js";
import { initSharing } from "./workspace/sharing.js";
import { buildStartForm, initStartForm, loadCatalog } from "./workspace/start.js";
import { LIVE, state } from "./workspace/state.js";

initDetails();
initFiles();
initStartForm();
initSharing();

async function main() {
  const [ok, q] = await Promise.all([loadWorkspace(), showQuota()]);
  state.quota = q;
  if (!ok) return;
  try {
    await loadCatalog();
  } catch (e) {
    notify(`Job types not available: ${errorText(e)}`);
    return;
  }
  buildStartForm();
  const jobs = await loadJobs();
  showJob(jobs.find((j) => LIVE.has(j.status)) || jobs[0] || null);
}

main();
