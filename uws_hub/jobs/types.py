"""Job types and resources: what a workspace can launch, and where.

A **job type** (``c.UWS.job_types``, id -> settings) says how to start a server: the command,
environment, default URL, modules or venv activation (``modules``, ``prologue``), the default time
limit and which resources may run it. Several ids may share one implementation with different
environments.

A **resource** (``c.UWS.resources``, id -> settings) is where a job runs: ``kind: local`` (a process
on the hub host) or ``kind: slurm`` (a batch job in a partition), with the limits a launch may ask
for. Every string that reaches a batch script comes from this configuration, checked here. A
resource's ``parameter_mapping`` (generic parameter name -> the option it sets there, as UWS) says
which of the launch's parameters it takes and under which name (see `uws_hub.jobs.launch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .configcheck import check_keys, nonempty_string

_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_JOB_TYPE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: a Slurm name (partition, account, qos, reservation, gres type)
_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_DIRECTIVE = re.compile(r"^--[a-z][a-z-]*(=[^\s'\"\\$`;|&<>]+)?$")
#: a parameter or option name (as c.UWS.parameters' variable_name)
_OPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

#: the session policy a resource and a job type may each set (the stricter applies; see
#: `uws_hub.jobs.sessions.policy_for`): extensions of a running job's time and idle shutdown
SESSION_KEYS = ("max_extensions", "max_extension_min", "max_total_time_min", "idle_timeout_min")
#: of those, the ones 0 means something for: no extensions, no idle shutdown here
ZERO_OK = ("max_extensions", "idle_timeout_min")

JOB_TYPE_KEYS = {
    *SESSION_KEYS,
    "name",
    "description",
    "command",
    "environment",
    "default_url",
    "resources",
    "time_limit",
    "modules",
    "prologue",
}
#: a Slurm resource's settings that are Slurm names (and only for Slurm resources)
SLURM_NAME_KEYS = (
    "partition",
    "account",
    "qos",
    "reservation",
    "gpu_gres",
    "gpu_partition",
    "cluster",
)
RESOURCE_KEYS = {
    *SESSION_KEYS,
    *SLURM_NAME_KEYS,
    "kind",
    "name",
    "description",
    "max_cpus",
    "max_memory_mb",
    "max_time_limit_min",
    "max_gpus",
    "extra_directives",
    "start_timeout",
    "enforce_memory",
    "parameter_mapping",
}


@dataclass(frozen=True)
class SessionLimits:
    """A resource's or job type's own session settings (None: not set here)."""

    max_extensions: int | None = None  # how many times a running job may be extended
    max_extension_min: int | None = None  # minutes one extension may add
    max_total_time_min: int | None = None  # a job's time limit with every extension
    idle_timeout_min: int | None = None  # minutes without activity before a stop; 0: never

    @classmethod
    def parse(cls, spec: dict, where: str) -> SessionLimits:
        values = {
            key: _positive_int(spec.get(key), f"{where}: {key!r}", allow_zero=key in ZERO_OK)
            for key in SESSION_KEYS
        }
        return cls(**values)


@dataclass(frozen=True)
class JobType:
    id: str
    name: str
    command: tuple[str, ...] = ()
    environment: dict = field(default_factory=dict)
    default_url: str = "/lab"
    resources: tuple[str, ...] = ()
    time_limit: int | None = None  # minutes
    modules: tuple[str, ...] = ()
    prologue: str = ""
    description: str = ""
    #: the session policy (SESSION_KEYS), each None where not set
    session: SessionLimits = field(default_factory=lambda: SessionLimits())

    def as_dict(self) -> dict:
        """The UWS representation served by ``GET /job_types`` (plus where it can run)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "resources": list(self.resources),
        }


@dataclass(frozen=True)
class Resource:
    id: str
    kind: str
    name: str
    description: str = ""
    max_cpus: int | None = None
    max_memory_mb: int | None = None
    max_time_limit_min: int | None = None
    max_gpus: int = 0
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    reservation: str | None = None
    gpu_gres: str = "gpu"
    gpu_partition: str | None = None
    extra_directives: tuple[str, ...] = ()
    #: Slurm: the cluster (c.UWS.slurm_clusters) that runs its jobs; None: the default one
    cluster: str | None = None
    start_timeout: int | None = None  # seconds
    enforce_memory: bool = False  # local: cap each process's address space at the job's memory
    #: (generic parameter, option) pairs, in configuration order; None: every parameter as itself
    parameter_mapping: tuple[tuple[str, str], ...] | None = None
    #: the session policy (SESSION_KEYS), each None where not set
    session: SessionLimits = field(default_factory=lambda: SessionLimits())

    @property
    def mapping(self) -> dict[str, str] | None:
        """The resource's ``parameter_mapping`` (generic name -> option); None: identity."""
        return None if self.parameter_mapping is None else dict(self.parameter_mapping)

    def as_dict(self) -> dict:
        """The UWS representation served by ``GET /resources`` (with its limits)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "limits": {
                "max_cpus": self.max_cpus,
                "max_memory_mb": self.max_memory_mb,
                "max_time_limit_min": self.max_time_limit_min,
                "max_gpus": self.max_gpus,
            },
            "parameter_mapping": self.mapping,
        }


def _positive_int(value: Any, where: str, *, allow_zero: bool = False) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ConfigError(
            f"{where} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}"
        )
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def parse_resources(specs: Any, setting: str = "c.UWS.resources") -> dict[str, Resource]:
    """Validate `c.UWS.resources` (id -> settings); raise ConfigError naming the bad entry."""
    if not isinstance(specs, dict) or not specs:
        raise ConfigError(f"{setting} must be a non-empty dict of resource id -> settings")
    return {rid: _parse_resource(rid, spec, setting) for rid, spec in specs.items()}


def _parse_resource(rid: Any, spec: Any, setting: str) -> Resource:
    where = f"{setting}[{rid!r}]"
    if not isinstance(rid, str) or not _ID.match(rid):
        raise ConfigError(
            f"{setting}: resource id {rid!r} must be lower-case letters, digits, '_' and '-'"
        )
    check_keys(spec, RESOURCE_KEYS, where, "must be a dict with at least 'kind' (local or slurm)")
    kind = spec.get("kind")
    if kind not in ("local", "slurm"):
        raise ConfigError(f"{where}: 'kind' must be 'local' or 'slurm', got {kind!r}")
    _check_slurm_names(spec, kind, where)
    directives = _extra_directives(spec, where)
    max_gpus = _positive_int(spec.get("max_gpus", 0), f"{where}: 'max_gpus'", allow_zero=True) or 0
    if kind == "local" and max_gpus:
        raise ConfigError(f"{where}: local resources cannot offer GPUs (max_gpus must be 0)")
    return Resource(
        id=rid,
        kind=kind,
        name=nonempty_string(spec.get("name", rid), where, "'name'"),
        description=spec.get("description", "") or "",
        max_cpus=_positive_int(spec.get("max_cpus"), f"{where}: 'max_cpus'"),
        max_memory_mb=_positive_int(spec.get("max_memory_mb"), f"{where}: 'max_memory_mb'"),
        max_time_limit_min=_positive_int(
            spec.get("max_time_limit_min"), f"{where}: 'max_time_limit_min'"
        ),
        max_gpus=max_gpus,
        partition=spec.get("partition"),
        account=spec.get("account"),
        qos=spec.get("qos"),
        reservation=spec.get("reservation"),
        gpu_gres=spec.get("gpu_gres", "gpu") or "gpu",
        gpu_partition=spec.get("gpu_partition"),
        extra_directives=directives,
        cluster=spec.get("cluster"),
        start_timeout=_positive_int(spec.get("start_timeout"), f"{where}: 'start_timeout'"),
        enforce_memory=_bool(spec.get("enforce_memory", False), f"{where}: 'enforce_memory'"),
        parameter_mapping=_parameter_mapping(spec.get("parameter_mapping"), where),
        session=SessionLimits.parse(spec, where),
    )


def _parameter_mapping(value: Any, where: str) -> tuple[tuple[str, str], ...] | None:
    """``parameter_mapping``: parameter name -> option name (both identifiers); None if absent."""
    if value is None:
        return None
    where = f"{where}: 'parameter_mapping'"
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where} must be a dict of parameter name -> option, like "
            "{'time_limit_minutes': 'time_limit_min', 'gpu_enabled': 'gpus'}"
        )
    for name, option in value.items():
        for what, v in (("parameter name", name), ("option", option)):
            if not isinstance(v, str) or not _OPTION.match(v):
                raise ConfigError(
                    f"{where}: {what} {v!r} must be an identifier like 'num_cpus'"
                    f"{f' (in the entry for {name!r})' if what == 'option' else ''}"
                )
    return tuple(value.items())


def _check_slurm_names(spec: dict, kind: str, where: str) -> None:
    """The Slurm settings (partition, account, ...): Slurm names, and only on Slurm resources."""
    for key in SLURM_NAME_KEYS:
        val = spec.get(key)
        if val is None:
            continue
        if not isinstance(val, str) or not _SLURM_NAME.match(val):
            raise ConfigError(
                f"{where}: {key!r} must be a Slurm name (letters, digits, _ . : -), got {val!r}"
            )
        if kind == "local":
            raise ConfigError(f"{where}: {key!r} is a Slurm setting; this resource is local")


def _extra_directives(spec: dict, where: str) -> tuple[str, ...]:
    directives = _strings(spec.get("extra_directives"), f"{where}: 'extra_directives'")
    for d in directives:
        if not _DIRECTIVE.match(d):
            raise ConfigError(
                f"{where}: extra directive {d!r} must look like --name=value (no spaces or shell characters)"
            )
    return directives


def parse_job_types(
    specs: Any, resources: dict[str, Resource] | None = None, setting: str = "c.UWS.job_types"
) -> dict[str, JobType]:
    """Validate `c.UWS.job_types` (id -> settings) against the configured `resources` (None:
    not checked); raise ConfigError naming the bad entry."""
    if not isinstance(specs, dict) or not specs:
        raise ConfigError(f"{setting} must be a non-empty dict of job type id -> settings")
    return {jid: _parse_job_type(jid, spec, resources, setting) for jid, spec in specs.items()}


def _parse_job_type(
    jid: Any, spec: Any, resources: dict[str, Resource] | None, setting: str
) -> JobType:
    where = f"{setting}[{jid!r}]"
    if not isinstance(jid, str) or not _JOB_TYPE_ID.match(jid):
        raise ConfigError(
            f"{setting}: job type id {jid!r} must be lower-case letters, digits and '_' (like 'jupyter_lab')"
        )
    check_keys(spec, JOB_TYPE_KEYS, where, "must be a dict with at least a 'name'")
    name = nonempty_string(spec.get("name"), where, "'name' (the display name)")
    cmd = _command(spec.get("command"), where)
    env = spec.get("environment", {}) or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigError(f"{where}: 'environment' must be a dict of variable -> string value")
    allowed = _allowed_resources(spec.get("resources"), resources, where)
    default_url = spec.get("default_url", "/lab")
    if not isinstance(default_url, str) or not default_url.startswith("/"):
        raise ConfigError(f"{where}: 'default_url' must be a path starting with '/'")
    prologue = spec.get("prologue", "") or ""
    if not isinstance(prologue, str):
        raise ConfigError(f"{where}: 'prologue' must be a string of shell lines")
    modules = _modules(spec.get("modules"), where)
    return JobType(
        id=jid,
        name=name,
        command=cmd,
        environment=dict(env),
        default_url=default_url,
        resources=allowed,
        time_limit=_positive_int(spec.get("time_limit"), f"{where}: 'time_limit' (minutes)"),
        modules=modules,
        prologue=prologue,
        description=spec.get("description", "") or "",
        session=SessionLimits.parse(spec, where),
    )


def _command(cmd: Any, where: str) -> tuple[str, ...]:
    """The job type's command (empty: the hub's singleuser command)."""
    if cmd is None:
        return ()
    if not isinstance(cmd, (list, tuple)) or not cmd or not all(isinstance(a, str) for a in cmd):
        raise ConfigError(f"{where}: 'command' must be a non-empty list of strings")
    return tuple(cmd)


def _allowed_resources(
    value: Any, resources: dict[str, Resource] | None, where: str
) -> tuple[str, ...]:
    """The resources that may run a job type: those named (all configured ones if none are)."""
    allowed = _strings(value, f"{where}: 'resources'")
    if resources is None:
        return allowed
    for rid in allowed:
        if rid not in resources:
            raise ConfigError(
                f"{where}: unknown resource {rid!r} in 'resources'; configured resources: {sorted(resources)}"
            )
    return allowed or tuple(resources)


def _modules(value: Any, where: str) -> tuple[str, ...]:
    modules = _strings(value, f"{where}: 'modules'")
    for m in modules:
        if not _SLURM_NAME.match(m.replace("/", ":")):
            raise ConfigError(
                f"{where}: module name {m!r} has characters a module name cannot have"
            )
    return modules
