"""Job types: which servers a workspace can launch.

A job type is configuration (``c.UWS.job_types``), id -> settings. The foundation needs the id
and display name (``GET /job_types``); the launch settings (command, environment, resources,
time limit) are read by the spawners. Several ids may share one implementation with different
environments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KNOWN_KEYS = {
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


@dataclass(frozen=True)
class JobType:
    id: str
    name: str
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The UWS representation served by ``GET /job_types``."""
        return {"id": self.id, "name": self.name}


def parse_job_types(specs: Any, setting: str = "c.UWS.job_types") -> dict[str, JobType]:
    if not isinstance(specs, dict) or not specs:
        raise ConfigError(f"{setting} must be a non-empty dict of job type id -> settings")
    out: dict[str, JobType] = {}
    for jid, spec in specs.items():
        where = f"{setting}[{jid!r}]"
        if not isinstance(jid, str) or not _ID.match(jid):
            raise ConfigError(
                f"{setting}: job type id {jid!r} must be lower-case letters, digits and '_' (like 'jupyter_lab')"
            )
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be a dict with at least a 'name'")
        unknown = set(spec) - _KNOWN_KEYS
        if unknown:
            raise ConfigError(
                f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_KNOWN_KEYS)}"
            )
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: 'name' (the display name) must be a non-empty string")
        cmd = spec.get("command")
        if cmd is not None and (
            not isinstance(cmd, (list, tuple))
            or not cmd
            or not all(isinstance(a, str) for a in cmd)
        ):
            raise ConfigError(f"{where}: 'command' must be a non-empty list of strings")
        env = spec.get("environment", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            raise ConfigError(f"{where}: 'environment' must be a dict of variable -> value")
        out[jid] = JobType(id=jid, name=name, settings=dict(spec))
    return out
