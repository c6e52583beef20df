"""Spawners for uws jobs.

`UWSJobSpawner` (entry point ``uws``) is the hub's spawner: it builds, for each job, the spawner
of the job's resource — `UWSLocalSpawner` (a local process) or `UWSSlurmSpawner` (a Slurm job) —
which share `UWSJobMixin`. Importing this package registers the hub API handler Slurm jobs report
their port to (a strict replacement of batchspawner's, see `portapi`); `uws_hub.setup(c)` imports
it before the hub builds its URL table.
"""

from . import portapi
from .chooser import UWSJobSpawner
from .local import UWSLocalSpawner
from .mixin import UWSJobMixin
from .slurm import UWSSlurmSpawner

portapi.install()

__all__ = ["UWSJobMixin", "UWSJobSpawner", "UWSLocalSpawner", "UWSSlurmSpawner"]
