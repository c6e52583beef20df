"""A UWS site's database read into plain records (`Site`), the first step of
``uws-hub import-uws``: people (Django's ``auth_user`` with their groups, DRF token and identity
mappings), workspaces, jobs, share invitations and quotas, as UWS left them. Nothing is written.

People are named as uws_hub will know them: their hub name is the Django ``username`` (what a
portal's ``user_info`` and UWS's trusted-client logins used), in lower case as JupyterHub
normalises names. Each ``ExternalUserMapping`` is an
identity under the uws_hub source its login method corresponds to (`SOURCES`, adjustable per
site); the Slurm token cache (``SlurmAPIResourceAuthentication``) is not an identity and is
skipped. Secrets in the mappings' details (Globus tokens, the Slurm cache, passwords) are never
carried over: `public_details` keeps only what describes the person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from ..errors import UWSError
from . import uwsschema as u

#: UWS login method (``user_authentication_name``) -> uws_hub identity source
SOURCES = {
    "GlobusUserAuthentication": "globus",
    "PSCAPIUserAuthentication": "account-api",
    "LocalUserAuthentication": "local",
}
#: mappings that are not identities (a per-user cache of Slurm REST tokens)
NOT_IDENTITIES = {"SlurmAPIResourceAuthentication"}
#: keys of a mapping's details never carried over (tokens and other secrets), at any depth
SECRET_KEYS = {
    "globus_groups_token",
    "tokens",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "api_token",
    "jwt",
}


class SiteError(UWSError):
    """The UWS database cannot be read as a UWS site (its schema, or a row that makes no sense)."""

    status_code = 400


@dataclass
class Identity:
    mapping_id: int
    method: str  # UWS's user_authentication_name
    source: str  # uws_hub's identity source
    external_id: str
    external_username: str
    details: dict


@dataclass
class Person:
    id: int  # auth_user.id
    name: str  # the hub name: the Django username as JupyterHub normalises names (lower case)
    email: str
    first_name: str
    last_name: str
    is_active: bool
    joined: dt.datetime
    groups: list[str] = field(default_factory=list)
    token: str | None = None  # the DRF token's key
    token_created: dt.datetime | None = None
    identities: list[Identity] = field(default_factory=list)
    uws_username: str = ""  # as UWS had it


@dataclass
class SiteWorkspace:
    id: int
    user_id: int | None
    name: str
    description: str
    file_path: str  # relative to UWS's root_dir: <external username>/<id>
    disk_space: int
    created: dt.datetime
    modified: dt.datetime | None
    last_job_launch: dt.datetime | None
    details: dict
    status: str
    default_job_type: str | None


@dataclass
class SiteJob:
    id: int
    user_id: int | None
    workspace_id: int | None
    job_type: str
    resource_name: str
    status: str
    created: dt.datetime
    start: dt.datetime | None
    end: dt.datetime | None
    core_hours: Decimal
    details: dict
    resource_job_id: int
    resource_options: dict


@dataclass
class SiteShare:
    id: int
    original_workspace_id: int | None
    shared_workspace_id: int
    is_accepted: bool
    created: dt.datetime | None
    last_job_type: str | None
    last_resource_options: dict | None


@dataclass
class SiteQuota:
    id: int
    user_id: int | None
    max_disk_space: int
    max_core_hours: Decimal
    used_disk_space: int
    used_core_hours: Decimal


@dataclass
class Site:
    people: dict[int, Person]
    workspaces: dict[int, SiteWorkspace]
    jobs: dict[int, SiteJob]
    shares: dict[int, SiteShare]
    quotas: list[SiteQuota]
    #: mappings of login methods uws_hub has no source for: (mapping id, method), reported
    unknown_methods: list[tuple[int, str]] = field(default_factory=list)
    #: the largest id UWS's database ever gave ("workspace", "job", "share"), rows it deleted
    #: since included (its sequences; 0 where it cannot tell)
    last_ids: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "people": len(self.people),
            "identities": sum(len(p.identities) for p in self.people.values()),
            "tokens": sum(1 for p in self.people.values() if p.token),
            "workspaces": len(self.workspaces),
            "jobs": len(self.jobs),
            "shares": len(self.shares),
            "quotas": len(self.quotas),
        }


def public_details(value: Any) -> Any:
    """`value` without its secrets (`SECRET_KEYS`, at any depth)."""
    if isinstance(value, dict):
        return {k: public_details(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [public_details(v) for v in value]
    return value


def read_site(conn: Connection, sources: dict[str, str] | None = None) -> Site:
    """Read the UWS site behind `conn` (PostgreSQL or SQLite). `sources` adds to or overrides
    `SOURCES`. Raises SiteError naming what is missing when the schema is not UWS's."""
    problems = u.check_uws_schema(conn)
    if problems:
        raise SiteError(
            "This does not look like a UWS database: " + "; ".join(problems) + ".",
            detail="Point --uws-db at the database UWS's Django settings name (DATABASES).",
        )
    methods = {**SOURCES, **(sources or {})}
    people = _people(conn)
    unknown = _identities(conn, people, methods)
    return Site(
        people=people,
        workspaces={w.id: w for w in _workspaces(conn)},
        jobs={j.id: j for j in _jobs(conn)},
        shares={s.id: s for s in _shares(conn)},
        quotas=_quotas(conn),
        unknown_methods=unknown,
        last_ids=_last_ids(conn),
    )


def _last_ids(conn: Connection) -> dict[str, int]:
    """The last value of UWS's id sequences: PostgreSQL's serial/identity sequences, SQLite's
    ``sqlite_sequence`` (Django makes its SQLite ids AUTOINCREMENT)."""
    tables = {"workspace": u.WORKSPACE.name, "job": u.JOB.name, "share": u.SHARE.name}
    out = dict.fromkeys(tables, 0)
    if conn.dialect.name == "postgresql":
        for kind, table in tables.items():
            last = conn.scalar(
                text(
                    "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence(:t, 'id') "
                    "AS regclass))"
                ),
                {"t": table},
            )
            out[kind] = int(last or 0)
    elif conn.dialect.name == "sqlite" and conn.scalar(
        text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")
    ):
        for kind, table in tables.items():
            out[kind] = int(
                conn.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table})
                or 0
            )
    return out


def _people(conn: Connection) -> dict[int, Person]:
    people = {
        r.id: Person(
            id=r.id,
            name=r.username.lower(),
            uws_username=r.username,
            email=r.email or "",
            first_name=r.first_name or "",
            last_name=r.last_name or "",
            is_active=bool(r.is_active),
            joined=r.date_joined,
        )
        for r in conn.execute(select(u.AUTH_USER).order_by(u.AUTH_USER.c.id))
    }
    groups = select(u.AUTH_USER_GROUPS.c.user_id, u.AUTH_GROUP.c.name).join(
        u.AUTH_GROUP, u.AUTH_GROUP.c.id == u.AUTH_USER_GROUPS.c.group_id
    )
    for user_id, name in conn.execute(groups.order_by(u.AUTH_GROUP.c.name)):
        if user_id in people:
            people[user_id].groups.append(name)
    for r in conn.execute(select(u.TOKEN)):
        if r.user_id in people:
            people[r.user_id].token, people[r.user_id].token_created = r.key, r.created
    return people


def _identities(
    conn: Connection, people: dict[int, Person], methods: dict[str, str]
) -> list[tuple[int, str]]:
    unknown = []
    m = u.MAPPING
    for r in conn.execute(select(m).order_by(m.c.id)):
        if r.user_authentication_name in NOT_IDENTITIES or r.user_id_id not in people:
            continue
        source = methods.get(r.user_authentication_name)
        if source is None:
            unknown.append((r.id, r.user_authentication_name))
            continue
        people[r.user_id_id].identities.append(
            Identity(
                mapping_id=r.id,
                method=r.user_authentication_name,
                source=source,
                # UWS keyed local logins by uid; uws_hub's local login keys them by name
                external_id=r.external_username if source == "local" else str(r.external_user_id),
                external_username=r.external_username,
                details=public_details(r.external_user_details or {}),
            )
        )
    return unknown


def _workspaces(conn: Connection) -> list[SiteWorkspace]:
    w = u.WORKSPACE
    return [
        SiteWorkspace(
            id=r.id,
            user_id=r.user_id_id,
            name=r.name,
            description=r.description or "",
            file_path=r.file_path,
            disk_space=r.disk_space or 0,
            created=r.datetime_created,
            modified=r.datetime_last_modified,
            last_job_launch=r.datetime_last_job_launch,
            details=r.workspace_details if isinstance(r.workspace_details, dict) else {},
            status=r.status,
            default_job_type=r.default_job_type,
        )
        for r in conn.execute(select(w).order_by(w.c.id))
    ]


def _jobs(conn: Connection) -> list[SiteJob]:
    j = u.JOB
    return [
        SiteJob(
            id=r.id,
            user_id=r.user_id_id,
            workspace_id=r.workspace_id_id,
            job_type=r.job_type,
            resource_name=r.resource_name,
            status=r.status,
            created=r.datetime_created,
            start=r.datetime_start,
            end=r.datetime_end,
            core_hours=Decimal(r.core_hours or 0),
            details=r.job_details if isinstance(r.job_details, dict) else {},
            resource_job_id=r.resource_job_id,
            resource_options=r.resource_options if isinstance(r.resource_options, dict) else {},
        )
        for r in conn.execute(select(j).order_by(j.c.id))
    ]


def _shares(conn: Connection) -> list[SiteShare]:
    s = u.SHARE
    return [
        SiteShare(
            id=r.id,
            original_workspace_id=r.original_workspace_id_id,
            shared_workspace_id=r.shared_workspace_id_id,
            is_accepted=bool(r.is_accepted),
            created=r.datetime_share_created,
            last_job_type=r.last_job_type,
            last_resource_options=r.last_resource_options,
        )
        for r in conn.execute(select(s).order_by(s.c.id))
    ]


def _quotas(conn: Connection) -> list[SiteQuota]:
    q = u.QUOTA
    return [
        SiteQuota(
            id=r.id,
            user_id=r.user_id_id,
            max_disk_space=r.max_disk_space,
            max_core_hours=Decimal(r.max_core_hours or 0),
            used_disk_space=r.used_disk_space,
            used_core_hours=Decimal(r.used_core_hours or 0),
        )
        for r in conn.execute(select(q).order_by(q.c.id))
    ]
