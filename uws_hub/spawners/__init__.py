"""Spawners for uws jobs.

`UWSLocalSpawner` (a local process) and `UWSSlurmSpawner` (a Slurm job, via batchspawner)
share `UWSSpawnerMixin`: JupyterLab as the default URL and an explicit PATH (JupyterHub 5.2+
no longer passes the hub's PATH to non-local spawners). The workspace/job logic — loading the
Job row named in user_options, running inside the workspace as its owner — joins the mixin with
the jobs capability.
"""

from __future__ import annotations

import os
import sys

from batchspawner import SlurmSpawner
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

STANDARD_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


class UWSSpawnerMixin:
    default_url = Unicode("/lab", config=True, help="URL a job opens at (JupyterLab by default).")

    job_path = Unicode(
        config=True,
        help="PATH for the job's server; default: the hub's Python environment, then the system directories.",
    )

    @default("job_path")
    def _default_job_path(self):
        return os.pathsep.join([os.path.dirname(sys.executable), STANDARD_PATH])

    def get_env(self):
        env = super().get_env()
        env.setdefault("PATH", self.job_path)
        return env


class UWSLocalSpawner(UWSSpawnerMixin, LocalProcessSpawner):
    """A job as a local process, set-uid to the workspace owner's account."""


class UWSSlurmSpawner(UWSSpawnerMixin, SlurmSpawner):
    """A job as a Slurm batch job (batchspawner's SlurmSpawner); commands run via runuser."""

    exec_prefix = Unicode(
        "/usr/sbin/runuser -u {username} --",
        config=True,
        help="How Slurm commands run as the user (there is no sudo here).",
    )
