"""Jobs: what a workspace can run, where, with what, and the life of each job.

- `types`: job types (``c.UWS.job_types``: command, environment, modules) and resources
  (``c.UWS.resources``: local or a Slurm partition, with their limits), parsed and checked;
- `params`: the resource parameters (``c.UWS.parameters``) and validation of the options a
  launch asks for;
- `launch`: from a launch request to a `LaunchPlan`, the validated numbers a spawner runs;
- `state`: a job row's transitions (current details, a stop asked for, the end), shared by the
  service and the hub's spawners;
- `manager`: the service side, `JobManager` — start, stop, list, and the periodic sync that keeps
  job rows in line with the hub's servers.
"""
