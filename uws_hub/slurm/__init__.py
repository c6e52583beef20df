"""The Slurm scheduler as both sides see it: one shared, cached view of the queue
(`monitor`), used by the hub's spawners and by the service's job sync."""
