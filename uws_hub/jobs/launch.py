"""From a launch request to what a spawner runs: validated numbers only.

The well-known resource parameters are ``num_cpus``, ``memory_mb``, ``time_limit_min`` and ``gpus``
(any of them may be left out of ``c.UWS.parameters``; other parameters are validated and passed
to the job as ``UWS_PARAM_<NAME>`` environment variables). The resource sets the partition,
account, QoS and GPU mapping; the job type sets command and environment. Nothing a user sends
reaches a batch script except numbers that passed validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .params import Parameter, invalid_options, validate_options
from .types import JobType, Resource

DEFAULT_TIME_LIMIT_MIN = 240
WELL_KNOWN = ("num_cpus", "memory_mb", "time_limit_min", "gpus")


@dataclass(frozen=True)
class LaunchPlan:
    job_type: str
    resource: str
    kind: str
    cpus: int
    memory_mb: int | None
    time_limit_min: int
    gpus: int
    partition: str | None = None
    gres: str | None = None
    options: dict = field(default_factory=dict)  # the validated options, as stored on the job
    extra_env: dict = field(default_factory=dict)

    def slurm_directives(self, res: Resource) -> list[str]:
        """``#SBATCH`` options for this plan (values from configuration or validated numbers)."""
        out = [f"--cpus-per-task={self.cpus}", f"--time={self.time_limit_min}"]
        if self.memory_mb:
            out.append(f"--mem={self.memory_mb}M")
        if self.partition:
            out.append(f"--partition={self.partition}")
        if self.gres:
            out.append(f"--gres={self.gres}")
        for key in ("account", "qos", "reservation"):
            val = getattr(res, key)
            if val:
                out.append(f"--{key}={val}")
        out.extend(res.extra_directives)
        return out


def _check_limits(
    resource: Resource, cpus: int, memory_mb: int | None, time_limit: int, gpus: int
) -> None:
    """Raise 422 naming every number over the resource's limit for it."""
    limits = (
        ("num_cpus", cpus, resource.max_cpus),
        ("memory_mb", memory_mb, resource.max_memory_mb),
        ("time_limit_min", time_limit, resource.max_time_limit_min),
        ("gpus", gpus, resource.max_gpus),
    )
    errors = [
        f"{name}: Value '{value}' above maximum of {limit} for resource {resource.id}."
        for name, value, limit in limits
        if value is not None and limit is not None and value > limit
    ]
    if errors:
        raise invalid_options(errors)


def slurm_placement(resource: Resource, gpus: int) -> tuple[str | None, str | None]:
    """(partition, gres) of a job on `resource` with `gpus` GPUs: with GPUs, the resource's GPU
    partition (if it has one) and ``<gpu_gres>:<gpus>``."""
    if not gpus:
        return resource.partition, None
    return resource.gpu_partition or resource.partition, f"{resource.gpu_gres}:{gpus}"


def plan_launch(
    job_type: JobType,
    resource: Resource,
    params: list[Parameter],
    options: Any,
) -> LaunchPlan:
    """Validate `options` against the parameters and the resource's limits; raise 422."""
    cleaned = validate_options(params, options)
    cpus = int(cleaned.get("num_cpus", 1))
    memory_mb = cleaned.get("memory_mb")
    time_limit = int(cleaned.get("time_limit_min") or job_type.time_limit or DEFAULT_TIME_LIMIT_MIN)
    gpus = int(cleaned.get("gpus", 0))
    if "time_limit_min" not in cleaned and job_type.time_limit:
        cleaned["time_limit_min"] = job_type.time_limit

    _check_limits(resource, cpus, memory_mb, time_limit, gpus)
    partition, gres = slurm_placement(resource, gpus)
    extra_env = {
        f"UWS_PARAM_{re.sub(r'[^A-Z0-9_]', '_', k.upper())}": str(v)
        for k, v in cleaned.items()
        if k not in WELL_KNOWN
    }
    return LaunchPlan(
        job_type=job_type.id,
        resource=resource.id,
        kind=resource.kind,
        cpus=cpus,
        memory_mb=int(memory_mb) if memory_mb else None,
        time_limit_min=time_limit,
        gpus=gpus,
        partition=partition,
        gres=gres,
        options=cleaned,
        extra_env=extra_env,
    )
