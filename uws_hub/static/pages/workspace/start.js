// The start form: generated from the configured job types, resources and parameters (each
// parameter bounded by the chosen resource's limits), its cost line, and starting a job.
import { api, ApiError, busy, clear, el, errorText, hours, invalid, minutes, valid } from "../../uws.js";
import { loadJobs } from "./history.js";
import { showJob } from "./job.js";
import { state, wsId } from "./state.js";

const LIMIT_OF = { num_cpus: "max_cpus", memory_mb: "max_memory_mb", time_limit_min: "max_time_limit_min", gpus: "max_gpus" };

/** Read the job types, resources and parameters (and offer the job types in the edit panel). */
export async function loadCatalog() {
  const [jt, rs, ps] = await Promise.all([api("GET", "job_types/"), api("GET", "resources/"), api("GET", "parameters/")]);
  const catalog = { job_types: jt.job_types, resources: rs.resources, parameters: ps.parameters };
  state.catalog = catalog;
  const sel = document.getElementById("edit-job-type");
  for (const t of Object.values(catalog.job_types)) sel.append(el("option", { value: t.id }, t.name));
}

export function buildStartForm() {
  const { catalog, ws } = state;
  const box = document.getElementById("start-fields");
  const types = Object.values(catalog.job_types);
  const typeSel = el("select", { class: "form-select", id: "start-job-type", name: "job_type" }, types.map((t) => el("option", { value: t.id }, t.name)));
  const preferred = ws.default_job_type && catalog.job_types[ws.default_job_type] ? ws.default_job_type : types.length ? types[0].id : "";
  typeSel.value = preferred;
  const resBox = el("fieldset", { class: "col-12", id: "start-resources" });
  const paramBox = el("div", { class: "row g-3", id: "start-params" });
  clear(box, el("div", { class: "col-md-6" }, el("label", { class: "form-label", for: "start-job-type" }, "Job type"), typeSel), resBox, el("div", { class: "col-12" }, paramBox));

  function renderResources() {
    const t = catalog.job_types[typeSel.value];
    const ids = (t && t.resources) || [];
    const current = (box.querySelector("input[name=resource]:checked") || {}).value;
    clear(
      resBox,
      el("legend", { class: "form-label fs-6" }, "Where to run"),
      ids.map((id, i) => {
        const r = catalog.resources[id];
        const input = el("input", { class: "form-check-input", type: "radio", name: "resource", id: `res-${id}`, value: id, checked: current ? current === id : i === 0 });
        input.addEventListener("change", renderParams);
        return el("div", { class: "form-check form-check-inline" }, input, el("label", { class: "form-check-label", for: `res-${id}` }, r ? `${r.name}${r.kind === "slurm" ? " (Slurm)" : ""}` : id));
      }),
    );
    renderParams();
  }

  function renderParams() {
    const rid = (box.querySelector("input[name=resource]:checked") || {}).value;
    const r = catalog.resources[rid] || { limits: {} };
    const old = Object.fromEntries([...paramBox.querySelectorAll("input")].map((i) => [i.name, i.type === "checkbox" ? i.checked : i.value]));
    clear(
      paramBox,
      shownParameters(catalog.parameters, r).map((p) => {
          const v = p.validation || {};
          const type = v.type || "int";
          let max = v.max ?? null;
          const min = v.min ?? null;
          const lim = r.limits && r.limits[LIMIT_OF[(r.parameter_mapping || {})[p.variable_name] || p.variable_name]];
          if (lim !== undefined && lim !== null) max = max === null ? lim : Math.min(max, lim);
          const id = `param-${p.variable_name}`;
          const described = `${id}-help ${id}-error`;
          let value = old[p.variable_name] !== undefined ? old[p.variable_name] : p.default_value;
          let input;
          if (type === "bool") {
            input = el("input", { class: "form-check-input", type: "checkbox", id, name: p.variable_name, checked: Boolean(value), dataset: { kind: type }, "aria-describedby": described });
          } else if (type === "str") {
            input = el("input", { class: "form-control", type: "text", id, name: p.variable_name, value: value ?? "", dataset: { kind: type }, "aria-describedby": described, required: v.required });
          } else {
            if (value !== null && value !== undefined && value !== "" && max !== null) value = Math.min(Number(value), max);
            input = el("input", { class: "form-control", type: "number", id, name: p.variable_name, min: min ?? undefined, max: max ?? undefined, step: type === "float" ? "any" : 1, value: value ?? "", dataset: { kind: type }, "aria-describedby": described, required: v.required });
          }
          input.addEventListener("input", () => {
            valid(input);
            updateCost();
          });
          const range = type === "int" || type === "float" ? [min !== null ? `at least ${min}` : null, max !== null ? `at most ${max}` : null].filter(Boolean).join(", ") : "";
          const help = el("div", { class: "form-text", id: `${id}-help` }, `${p.description}${range ? ` (${range})` : ""}`);
          const error = el("div", { class: "invalid-feedback", id: `${id}-error` });
          if (type === "bool") return el("div", { class: "col-sm-6 col-md-3" }, el("div", { class: "form-check mt-4" }, input, el("label", { class: "form-check-label", for: id }, p.display_name)), help, error);
          return el("div", { class: "col-sm-6 col-md-3" }, el("label", { class: "form-label", for: id }, p.display_name), input, help, error);
        }),
    );
    updateCost();
  }

  typeSel.addEventListener("change", renderResources);
  renderResources();
}

// One field per option the resource takes: a parameter its parameter_mapping leaves out has no
// effect there, and of several mapped to one option (the portal's time_limit_minutes beside
// time_limit_min) the first declared is shown; GPU fields only where the resource has GPUs.
function shownParameters(parameters, r) {
  const mapping = r.parameter_mapping || null;
  const seen = new Set();
  return parameters.filter((p) => {
    const option = mapping ? mapping[p.variable_name] : p.variable_name;
    if (!option || seen.has(option)) return false;
    seen.add(option);
    return !(option === "gpus" && !(r.limits && r.limits.max_gpus));
  });
}

function updateCost() {
  const f = document.getElementById("start-form");
  const cpus = Number((f.elements.num_cpus || {}).value || 1);
  const mins = Number((f.elements.time_limit_min || {}).value || 0);
  const out = document.getElementById("start-cost");
  if (!mins) {
    out.textContent = "";
    return;
  }
  const cost = (cpus * mins) / 60;
  let text = `${cpus} core${cpus === 1 ? "" : "s"} × ${minutes(mins)} = ${hours(cost)} core-hours`;
  const c = state.quota && state.quota.core_hours;
  if (c && c.limit !== null) text += `; you have ${hours(c.left)} of ${hours(c.limit)} left${c.period && c.period.end ? ` this ${c.period.name}` : ""}`;
  out.textContent = text;
}

function checkFields(form) {
  let ok = true;
  let first = null;
  for (const input of form.querySelectorAll("#start-params input")) {
    valid(input);
    if (!input.checkValidity()) {
      ok = false;
      input.classList.add("is-invalid");
      input.setAttribute("aria-invalid", "true");
      document.getElementById(`${input.id}-error`).textContent = input.validationMessage;
      first = first || input;
    }
  }
  if (first) first.focus();
  return ok;
}

export function initStartForm() {
  document.getElementById("start-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const errBox = document.getElementById("start-error");
    errBox.hidden = true;
    if (!checkFields(form)) return;
    const resource_options = {};
    for (const input of form.querySelectorAll("#start-params input")) {
      const kind = input.dataset.kind;
      if (kind === "bool") resource_options[input.name] = input.checked;
      else if (input.value !== "") resource_options[input.name] = kind === "str" ? input.value : Number(input.value);
    }
    const body = { job_type: form.elements.job_type.value, resource_options };
    const res = form.querySelector("input[name=resource]:checked");
    if (res) body.resource = res.value;
    await busy(document.getElementById("start-submit"), async () => {
      try {
        const { job } = await api("PUT", `workspaces/${wsId}/start/`, body);
        showJob(job);
        loadJobs();
        document.getElementById("stop-button")?.focus(); // the start button is gone: focus what follows
      } catch (e) {
        // a message naming a parameter goes next to it; everything else above the button
        const names = (p) => new RegExp(`\\b${p.variable_name}\\b`).test(e.message) || e.message.includes(p.display_name);
        const named = e instanceof ApiError && state.catalog.parameters.find((p) => names(p) && document.getElementById(`param-${p.variable_name}`));
        const input = named && document.getElementById(`param-${named.variable_name}`);
        if (input) {
          invalid(input, e.message);
        } else {
          errBox.textContent = errorText(e);
          errBox.hidden = false;
          errBox.focus();
        }
      }
    });
  });
}
