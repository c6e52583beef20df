"""From a launch request to what a spawner runs: validated numbers only.

A launch's options are validated against ``c.UWS.parameters``, then translated by the resource's
``parameter_mapping`` (generic name -> option, as UWS): only mapped names survive, and a
resource without a mapping takes every parameter under its own name. The well-known options are
``num_cpus``, ``memory_mb``, ``time_limit_min`` and ``gpus`` (a bool parameter mapped to ``gpus``,
such as the portal's ``gpu_enabled``, asks for one GPU when true); other options reach the job as
``UWS_PARAM_<NAME>`` environment variables. The translated options are what the job records. The
resource sets the partition, account, QoS and GPU mapping; the job type sets command and
environment. Nothing a user sends reaches a batch script except numbers that passed validation.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .params import Parameter, invalid_options, validate_options
from .types import JobType, Resource

DEFAULT_TIME_LIMIT_MIN = 240
WELL_KNOWN = ("num_cpus", "memory_mb", "time_limit_min", "gpus")
#: the parameter types that may set each well-known option (bool: gpus only, true = one GPU)
OPTION_TYPES = {
    "num_cpus": ("int",),
    "memory_mb": ("int",),
    "time_limit_min": ("int",),
    "gpus": ("int", "bool"),
}


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

    def slurm_job_properties(self, res: Resource) -> dict:
        """The same request as slurmrestd's job properties (v0.0.38's names): a job submitted
        over REST is described by these, not by ``#SBATCH`` lines."""
        props: dict = {"cpus_per_task": self.cpus, "time_limit": self.time_limit_min}
        if self.memory_mb:
            props["memory_per_node"] = self.memory_mb
        if self.partition:
            props["partition"] = self.partition
        if self.gres:
            props["gres"] = self.gres
        for key in ("account", "qos", "reservation"):
            val = getattr(res, key)
            if val:
                props[key] = val
        for directive in res.extra_directives:
            key, value = rest_property(directive)
            props[key] = value
        return props


#: ``extra_directives`` a resource on a slurmrestd cluster may use: sbatch's long option ->
#: (job property, its type)
REST_DIRECTIVES: dict[str, tuple[str, type]] = {
    "constraint": ("constraints", str),
    "licenses": ("licenses", str),
    "wckey": ("wckey", str),
    "mail-type": ("mail_type", str),
    "mail-user": ("mail_user", str),
    "nice": ("nice", int),
    "ntasks": ("tasks", int),
    "ntasks-per-node": ("tasks_per_node", int),
    "mem-per-cpu": ("memory_per_cpu", int),
    "cpus-per-gpu": ("cpus_per_gpu", int),
    "gpus": ("gpus", str),
    "exclusive": ("exclusive", str),
    "requeue": ("requeue", bool),
    "no-requeue": ("requeue", bool),
    "signal": ("signal", str),
    "dependency": ("dependency", str),
    "comment": ("comment", str),
}


def rest_property(directive: str) -> tuple[str, Any]:
    """One ``extra_directives`` entry (``--constraint=avx2``) as a job property; ValueError
    naming what slurmrestd can take for one it cannot."""
    text = directive.strip()
    name, eq, value = text[2:].partition("=") if text.startswith("--") else ("", "", "")
    if name not in REST_DIRECTIVES:
        raise ValueError(
            f"{directive!r} has no slurmrestd job property; on a 'rest' cluster use "
            f"--OPTION=VALUE with one of {sorted(REST_DIRECTIVES)}"
        )
    key, kind = REST_DIRECTIVES[name]
    if kind is bool:
        return key, name != "no-requeue"
    if name == "exclusive" and not eq:
        return key, "true"
    if not eq or not value:
        raise ValueError(f"{directive!r} needs a value (--{name}=VALUE)")
    if kind is int:
        number = value[:-1] if name == "mem-per-cpu" and value[-1:] in "Mm" else value
        if not number.isdigit():
            raise ValueError(f"{directive!r}: the value must be a whole number")
        return key, int(number)
    return key, value


def option_value(option: str, value: Any) -> Any:
    """A parameter's value as the option it is mapped to: a bool for ``gpus`` is a count (true:
    one GPU, false: none); anything else as it is."""
    if option == "gpus" and isinstance(value, bool):
        return int(value)
    return value


def translate_options(resource: Resource, cleaned: dict, sent: Container[str]) -> dict[str, tuple]:
    """The validated options `cleaned` under `resource`'s ``parameter_mapping``: option ->
    (value, parameter it came from). Unmapped parameters are dropped. When several parameters
    map to one option, a value the client `sent` beats a parameter's default; two sent values
    that disagree are a 422 naming both."""
    mapping = resource.mapping
    out: dict[str, tuple] = {}
    errors: list[str] = []
    for name in sorted(cleaned, key=lambda n: n not in sent):  # sent first, else in order
        option = name if mapping is None else mapping.get(name)
        if option is None:
            continue
        value = option_value(option, cleaned[name])
        if option not in out:
            out[option] = (value, name)
            continue
        first_value, first = out[option]
        if name in sent and first in sent and value != first_value:
            errors.append(
                f"{name}: Value '{cleaned[name]}' and {first}: Value '{cleaned[first]}' both set "
                f"{option} on resource {resource.id}; send only one of them."
            )
    if errors:
        raise invalid_options(errors)
    order = {name: i for i, name in enumerate(cleaned)}  # the parameters' order
    return dict(sorted(out.items(), key=lambda item: order[item[1][1]]))


def _whole(options: dict[str, tuple], option: str, default: int | None) -> int | None:
    """A well-known option as a whole number (`default` when absent); 422 if it is not one."""
    if option not in options:
        return default
    value, name = options[option]
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_options([f"{name}: Value '{value}' is not a whole number."]) from None


def _check_limits(resource: Resource, numbers: dict[str, Any], asked: dict[str, tuple]) -> None:
    """Raise 422 naming every number over the resource's limit for it, by the parameter that
    asked for it (`asked`: option -> (parameter, value as sent)); a yes/no GPU parameter on a
    resource without GPUs says so."""
    limits = {
        "num_cpus": resource.max_cpus,
        "memory_mb": resource.max_memory_mb,
        "time_limit_min": resource.max_time_limit_min,
        "gpus": resource.max_gpus,
    }
    errors = []
    for option, limit in limits.items():
        value = numbers[option]
        if value is None or limit is None or value <= limit:
            continue
        name, raw = asked.get(option, (option, value))
        if isinstance(raw, bool):  # true is one GPU: more than a resource without GPUs has
            errors.append(
                f"{name}: Resource {resource.id} ({resource.name}) has no GPUs. Set {name} to "
                "false, or start the job on a resource with GPUs."
            )
        else:
            errors.append(
                f"{name}: Value '{raw}' above maximum of {limit} for resource {resource.id}."
            )
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
    """Validate `options` against the parameters, translate them with the resource's
    ``parameter_mapping`` and check them against its limits; raise 422."""
    cleaned = validate_options(params, options)
    translated = translate_options(resource, cleaned, options or {})
    numbers = {
        "num_cpus": _whole(translated, "num_cpus", 1),
        "memory_mb": _whole(translated, "memory_mb", None) or None,
        "time_limit_min": _whole(translated, "time_limit_min", None)
        or job_type.time_limit
        or DEFAULT_TIME_LIMIT_MIN,
        "gpus": _whole(translated, "gpus", 0),
    }
    stored = {option: value for option, (value, _) in translated.items()}
    if "time_limit_min" not in stored and job_type.time_limit:
        stored["time_limit_min"] = job_type.time_limit  # recorded on the job as used
    asked = {option: (name, cleaned[name]) for option, (_, name) in translated.items()}
    _check_limits(resource, numbers, asked)
    partition, gres = slurm_placement(resource, numbers["gpus"])
    extra_env = {
        f"UWS_PARAM_{re.sub(r'[^A-Z0-9_]', '_', k.upper())}": str(v)
        for k, v in stored.items()
        if k not in WELL_KNOWN
    }
    return LaunchPlan(
        job_type=job_type.id,
        resource=resource.id,
        kind=resource.kind,
        cpus=numbers["num_cpus"],
        memory_mb=numbers["memory_mb"],
        time_limit_min=numbers["time_limit_min"],
        gpus=numbers["gpus"],
        partition=partition,
        gres=gres,
        options=stored,
        extra_env=extra_env,
    )


def check_parameter_mappings(resources: dict[str, Resource], params: list[Parameter]) -> None:
    """The resources' ``parameter_mapping`` against ``c.UWS.parameters``: every mapped name is a
    parameter, a well-known option is set only by parameters of a type it takes, and parameters
    mapped to one option do not have different defaults. Raise ConfigError naming the fix."""
    by_name = {p.variable_name: p for p in params}
    for rid, resource in resources.items():
        mapping = resource.mapping
        if mapping is None:
            continue
        where = f"c.UWS.resources[{rid!r}]: 'parameter_mapping'"
        defaults: dict[str, tuple[str, Any]] = {}
        for name, option in mapping.items():
            param = by_name.get(name)
            if param is None:
                raise ConfigError(
                    f"{where} maps {name!r}, which is not in c.UWS.parameters: declare it there "
                    "or remove it from the mapping"
                )
            ok = OPTION_TYPES.get(option)
            if ok is not None and param.type not in ok:
                raise ConfigError(
                    f"{where} maps {name!r} (validation.type {param.type!r}) to {option!r}, "
                    f"which takes {' or '.join(repr(t) for t in ok)}: declare {name!r} as such"
                )
            if param.default_value is None:
                continue
            value = option_value(option, param.default_value)
            other = defaults.setdefault(option, (name, value))
            if other[1] != value:
                raise ConfigError(
                    f"{where} maps {other[0]!r} and {name!r} to {option!r} and their default "
                    f"values differ ({by_name[other[0]].default_value!r} vs "
                    f"{param.default_value!r}): leave out one default_value"
                )
