"""Spawners for uws jobs.

`UWSJobSpawner` (entry point ``uws``) is the hub's spawner: it builds, for each job, the spawner
of the job's resource — `UWSLocalSpawner` (a local process) or `UWSSlurmSpawner` (a Slurm job) —
which share `UWSJobMixin`. Importing this package imports batchspawner, which registers the hub
API handler Slurm jobs report their port to; `uws_hub.setup(c)` imports it early enough.
"""

from .chooser import UWSJobSpawner
from .local import UWSLocalSpawner
from .mixin import UWSJobMixin
from .slurm import UWSSlurmSpawner

__all__ = ["UWSJobMixin", "UWSJobSpawner", "UWSLocalSpawner", "UWSSlurmSpawner"]
