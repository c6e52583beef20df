"""``c.UWS.slurm_clusters``: the clusters a hub reaches and each one's way in, validated (the
runtime side is `uws_hub.slurm.clusters`; this module imports nothing that registers metrics)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: the cluster of a hub that names none, and of Slurm resources that name none
DEFAULT = "default"
WAYS = ("commands", "rest")
CLUSTER_KEYS = {
    "way",
    "name",
    "slurm_conf",
    "url",
    "jwt_key_file",
    "token_source",
    "read_user",
    "operator_user",
    "version",
    "db_version",
    "token_lifespan",
    "poll_interval",
    "refused_users",
    "job_path",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
_VERSION = re.compile(r"^(db)?v\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class ClusterSpec:
    """One entry of ``c.UWS.slurm_clusters`` (validated)."""

    id: str
    way: str = "commands"
    name: str = ""
    #: commands: the cluster's slurm.conf (SLURM_CONF for its commands and jobs); None: the host's
    slurm_conf: str | None = None
    #: rest: slurmrestd's base URL
    url: str | None = None
    jwt_key_file: str | None = None
    #: rest: ``module:callable`` returning a `uws_hub.slurm.rest.TokenSource` (a site's token
    #: service) instead of minting with jwt_key_file
    token_source: str | None = None
    read_user: str | None = None
    operator_user: str | None = None
    version: str = "v0.0.38"
    #: the version in /slurmdb paths (the openapi/dbv0.0.38 plugin serves /slurmdb/v0.0.38/)
    db_version: str = "v0.0.38"
    token_lifespan: int = 300
    poll_interval: float | None = None
    refused_users: tuple[str, ...] = ("slurm",)
    #: PATH for this cluster's jobs (its nodes' own directories); None: c.UWS.job_path
    job_path: str | None = None


def parse_clusters(specs: Any, setting: str = "c.UWS.slurm_clusters") -> dict[str, ClusterSpec]:
    """Validate ``c.UWS.slurm_clusters``; empty means one ``default`` cluster (commands)."""
    if specs is None or specs == {}:
        return {DEFAULT: ClusterSpec(DEFAULT, name="Slurm")}
    if not isinstance(specs, dict):
        raise ConfigError(f"{setting} must be a dict of cluster id -> settings")
    return {cid: _parse_cluster(cid, spec, setting) for cid, spec in specs.items()}


def _parse_cluster(cid: Any, spec: Any, setting: str) -> ClusterSpec:
    where = f"{setting}[{cid!r}]"
    if not isinstance(cid, str) or not _NAME.match(cid):
        raise ConfigError(
            f"{setting}: cluster id {cid!r} must be lower-case letters, digits, '_' and '-'"
        )
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a dict with at least 'way' (commands or rest)")
    unknown = sorted(set(spec) - CLUSTER_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(CLUSTER_KEYS)}")
    way = spec.get("way", "commands")
    if way not in WAYS:
        raise ConfigError(f"{where}: 'way' must be 'commands' or 'rest', got {way!r}")

    def text(key: str) -> str | None:
        val = spec.get(key)
        if val is not None and (not isinstance(val, str) or not val.strip()):
            raise ConfigError(f"{where}: {key!r} must be a non-empty string")
        return val

    def user(key: str) -> str | None:
        val = text(key)
        if val is not None and not _USER.match(val):
            raise ConfigError(f"{where}: {key!r} must be an account name, got {val!r}")
        return val

    rest_only = ("url", "jwt_key_file", "token_source", "read_user", "operator_user")
    if way == "commands":
        given = [k for k in rest_only if spec.get(k) is not None]
        if given:
            raise ConfigError(
                f"{where}: {given} apply to way 'rest' only; this cluster is 'commands'"
            )
        conf = text("slurm_conf")
        if conf is not None and not os.path.isabs(conf):
            raise ConfigError(f"{where}: 'slurm_conf' must be an absolute path, got {conf!r}")
    else:
        if spec.get("slurm_conf") is not None:
            raise ConfigError(
                f"{where}: 'slurm_conf' applies to way 'commands'; a 'rest' cluster is its 'url'"
            )
        url = text("url")
        if not url or not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(
                f"{where}: 'url' must be slurmrestd's base URL, like 'http://slurm-rest:6820'"
            )
        if (spec.get("jwt_key_file") is None) == (spec.get("token_source") is None):
            raise ConfigError(
                f"{where}: set one of 'jwt_key_file' (the cluster's jwt_hs256.key, minted per "
                "person) or 'token_source' (module:callable of a site token service)"
            )
        if not user("read_user"):
            raise ConfigError(
                f"{where}: 'read_user' must name the ordinary account whose token reads the "
                "queue (not root, not the SlurmUser)"
            )
    for key in ("version", "db_version"):
        val = text(key)
        if val is not None and not _VERSION.match(val):
            raise ConfigError(f"{where}: {key!r} must look like 'v0.0.38'")
    lifespan = spec.get("token_lifespan", 300)
    if isinstance(lifespan, bool) or not isinstance(lifespan, int) or not 30 <= lifespan <= 86400:
        raise ConfigError(f"{where}: 'token_lifespan' must be whole seconds, 30 to 86400")
    interval = spec.get("poll_interval")
    if interval is not None and (
        isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0
    ):
        raise ConfigError(f"{where}: 'poll_interval' must be a positive number of seconds")
    refused = spec.get("refused_users", ["slurm"])
    if not isinstance(refused, (list, tuple)) or not all(isinstance(u, str) and u for u in refused):
        raise ConfigError(f"{where}: 'refused_users' must be a list of account names")
    reader, operator = spec.get("read_user"), spec.get("operator_user")
    if reader is not None and (reader == "root" or reader in refused or reader == operator):
        raise ConfigError(
            f"{where}: 'read_user' {reader!r} must be an ordinary account (not root, not one of "
            f"refused_users {list(refused)}, not the operator_user): its token reads the queue"
        )
    token_source = text("token_source")
    if token_source is not None and ":" not in token_source:
        raise ConfigError(f"{where}: 'token_source' must be 'module:callable'")
    return ClusterSpec(
        id=cid,
        way=way,
        name=text("name") or cid,
        slurm_conf=spec.get("slurm_conf"),
        url=spec.get("url"),
        jwt_key_file=text("jwt_key_file"),
        token_source=token_source,
        read_user=user("read_user"),
        operator_user=user("operator_user"),
        version=spec.get("version", "v0.0.38"),
        db_version=spec.get("db_version", "v0.0.38"),
        token_lifespan=lifespan,
        poll_interval=float(interval) if interval is not None else None,
        refused_users=tuple(refused),
        job_path=text("job_path"),
    )


def default_cluster(specs: dict[str, ClusterSpec]) -> str:
    """The cluster of a Slurm resource that names none: ``default``, or the only one."""
    if DEFAULT in specs or len(specs) != 1:
        return DEFAULT
    return next(iter(specs))


def job_cluster(settings: Any, resource_id: str | None, recorded: str | None = None) -> str | None:
    """The cluster of a Slurm job: the one its record names, else its resource's (``cluster``,
    or the default one); None where the resource is not a configured Slurm resource."""
    if recorded:
        return recorded
    res = settings.resource_map.get(resource_id) if resource_id else None
    if res is None or res.kind != "slurm":
        return None
    return res.cluster or default_cluster(settings.cluster_map)
