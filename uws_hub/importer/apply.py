"""Carrying out an import plan (`apply_plan`): the real run of ``uws-hub import-uws``.

First the id sequences go past every id UWS gave (PostgreSQL), then step by step, each in its
own transaction, so a run that stops (a crash, a full disk) is simply
run again: what is in uws_hub already is kept (the plan says "keep"), what is not yet is made.

1. People: their uws_hub user (hub name, e-mail, names, POSIX account) and identities.
2. Workspaces, with their UWS ids: a directory that moves is renamed first, then recorded (an
   interrupted run finds it at its new place, and the plan records it there).
3. Jobs (ended ones, with their ids) as history: times, status, core-hours, options.
4. Invitations, with their ids: a pending one can still be accepted or declined by its copy's id.
5. Quotas as limits (a UWS limit of 0 was never meant as "nothing": no limit).

The run is audited: one ``import.uws`` event with the counts, under the operator who ran it.
"""

from __future__ import annotations

import logging
import os
import stat
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..db.models import (
    ExternalIdentity,
    Job,
    SharedWorkspace,
    User,
    UserQuota,
    Workspace,
    utcnow,
)
from ..errors import UWSError
from ..workspaces import fsops
from .plan import Plan
from .reader import Site, SiteJob

log = logging.getLogger("uws_hub.importer")

#: UWS resource classes -> the kind of uws_hub resource their jobs are recorded under
RESOURCE_KINDS = {"SlurmAPIResource": "slurm", "LocalResource": "local"}


class ImportFailed(UWSError):
    status_code = 500


def apply_plan(
    plan: Plan,
    site: Site,
    db: sessionmaker[Session],
    *,
    resources: dict[str, str],
    actor: audit.Actor = audit.SYSTEM,
    user_dir_mode: int = 0o700,
    option_names: dict[str, str] | None = None,
) -> dict[str, int]:
    """Carry out `plan` (from `plan_import` on `site`) into the uws_hub database `db`.
    `resources`: uws_hub resource id for each UWS resource kind ("slurm", "local"), under which
    jobs are recorded; `user_dir_mode`: the mode of a ``<root>/<account>/`` made for a
    workspace that moves (c.UWS.user_dir_mode); `option_names`: the site's own translated
    launch option -> uws_hub option (`OPTION_NAMES`). Returns what was made."""
    if plan.conflicts:
        raise ImportFailed(
            f"The plan has {len(plan.conflicts)} conflict(s); resolve them (see the dry run) "
            "before importing."
        )
    made = dict.fromkeys(
        ("people", "identities", "workspaces", "moved", "jobs", "invitations", "quotas"), 0
    )
    _continue_sequences(db, site)  # first: no id UWS gave can be handed out again
    users = _people(plan, db, made)
    _workspaces(plan, db, users, made, user_dir_mode)
    _jobs(plan, site, db, users, resources, made, option_names)
    _shares(plan, site, db, made)
    _quotas(plan, site, db, users, made)
    with db() as session:
        audit.record(
            session, "import.uws", user=None, target_type="site", details=made, actor=actor
        )
        session.commit()
    return made


def _people(plan: Plan, db: sessionmaker[Session], made: dict[str, int]) -> dict[int, int]:
    """uws_hub user id of each imported person (UWS's auth_user id -> uws_users.id)."""
    ids: dict[int, int] = {}
    for pp in plan.people:
        if pp.action == "skip":
            continue
        p = pp.person
        with db() as session:
            user = session.scalar(select(User).where(User.name == p.name))
            if user is None:
                user = User(name=p.name, created=p.joined)
                session.add(user)
                made["people"] += 1
            user.email = user.email or p.email or None
            user.first_name = user.first_name or p.first_name or None
            user.last_name = user.last_name or p.last_name or None
            if pp.posix and not user.posix_name:
                user.posix_name, user.uid, user.gid = pp.posix, pp.uid, pp.gid
            session.flush()
            have = {(i.source, i.external_id) for i in user.identities}
            for ident in p.identities:
                if (ident.source, ident.external_id) in have:
                    continue
                session.add(
                    ExternalIdentity(
                        user_id=user.id,
                        source=ident.source,
                        external_id=ident.external_id,
                        external_username=ident.external_username,
                        details=ident.details or None,
                    )
                )
                have.add((ident.source, ident.external_id))
                made["identities"] += 1
            session.commit()
            ids[p.id] = user.id
    return ids


def _workspaces(
    plan: Plan,
    db: sessionmaker[Session],
    users: dict[int, int],
    made: dict[str, int],
    user_dir_mode: int,
) -> None:
    owners = {p.person.id: (p.uid, p.gid) for p in plan.people}
    for wp in plan.workspaces:
        if wp.action != "create":
            continue
        ws = wp.workspace
        if wp.source != wp.target:
            account_dir = os.path.dirname(wp.target)
            try:
                # <root>/<account>/ as uws_hub makes it: its owner's, never through a link
                fsops.ensure_user_dir(
                    os.path.dirname(account_dir),
                    os.path.basename(account_dir),
                    fsops.Owner(owners[ws.user_id][0], owners[ws.user_id][1]),
                    user_dir_mode,
                )
                os.rename(wp.source, wp.target)  # one rename: never a half-moved workspace
            except (OSError, UWSError) as e:
                raise ImportFailed(
                    f"Workspace {ws.id}: could not move {wp.source} to {wp.target}: "
                    f"{getattr(e, 'strerror', None) or e}. Move it yourself (same owner) and run the import again, or "
                    "import with uws_hub's root_dir set to UWS's."
                ) from e
            _moved_as_planned(wp, owners[ws.user_id][0])
            made["moved"] += 1
        with db() as session:
            session.add(
                Workspace(
                    id=ws.id,
                    user_id=users[ws.user_id],
                    name=ws.name,
                    description=ws.description,
                    file_path="/".join(wp.target.split(os.sep)[-2:]),  # <account>/<id>
                    disk_space=ws.disk_space,
                    datetime_created=ws.created,
                    datetime_last_modified=ws.modified or ws.created,
                    datetime_last_job_launch=ws.last_job_launch,
                    workspace_details=ws.details,
                    status=wp.status,
                    status_message=(
                        "Imported from UWS, where it was left initializing."
                        if ws.status == "initializing"
                        else None
                    ),
                    default_job_type=ws.default_job_type,
                )
            )
            session.commit()
        made["workspaces"] += 1


#: the launch options UWS stored on its jobs (translated by its resource's parameter_mapping,
#: UWS-REFERENCE §2, §8.1) -> the option uws_hub records: the generic names and the
#: translations of UWS's example configuration; a site's own mapping is added (`option_names`)
OPTION_NAMES = {
    "num_cpus": "num_cpus",
    "cpus_per_task": "num_cpus",
    "memory_mb": "memory_mb",
    "memory_per_node": "memory_mb",
    "time_limit_min": "time_limit_min",
    "time_limit": "time_limit_min",
    "gpus": "gpus",
    "gpu_enabled": "gpus",
}


def job_options(options: dict, names: dict[str, str] | None = None) -> dict[str, int]:
    """The whole-number launch options of a UWS job (`options` as UWS stored them) under
    uws_hub's names; values that are not whole numbers (or yes/no for GPUs) are left out."""
    out: dict[str, int] = {}
    table = {**OPTION_NAMES, **(names or {})}
    for key, value in options.items():
        name = table.get(key)
        if name is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and value >= 0:
            out.setdefault(name, value)
    return out


def _moved_as_planned(wp, uid: int | None) -> None:
    """What arrived is the directory the plan checked: still a real directory of its owner (its
    owner may have swapped it for a link since); else it goes back and the import stops."""
    st = os.lstat(wp.target)
    if stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid):
        return
    os.rename(wp.target, wp.source)
    raise ImportFailed(
        f"Workspace {wp.workspace.id}: {wp.source} changed while it was moved (it is no longer "
        "its owner's directory); it is back where it was. Check it, then run the import again."
    )


def _job_row(job: SiteJob, user_id: int, resource: str, names: dict[str, str] | None) -> Job:
    options = job.resource_options or {}
    known = job_options(options, names)
    limit = known.get("time_limit_min")
    return Job(
        id=job.id,
        user_id=user_id,
        workspace_id=job.workspace_id,
        job_type=job.job_type,
        resource=resource,
        resource_job_id=job.resource_job_id if job.resource_job_id >= 0 else None,
        status=job.status,
        datetime_created=job.created,
        datetime_start=job.start,
        datetime_end=job.end or job.start or job.created,
        cpus=max(1, known.get("num_cpus", 1)),
        memory_mb=known.get("memory_mb") or None,
        gpus=known.get("gpus", 0),
        time_limit_s=limit * 60 if limit else None,
        core_seconds=int((job.core_hours * Decimal(3600)).to_integral_value()),
        resource_options=options,
        job_details=job.details,
        server_removed=True,  # no hub server to remove
        start_observed=True,  # history: not counted in the start-time metrics
    )


def _jobs(
    plan: Plan,
    site: Site,
    db: sessionmaker[Session],
    users: dict[int, int],
    resources: dict[str, str],
    made: dict[str, int],
    option_names: dict[str, str] | None,
) -> None:
    with db() as session:
        have = set(session.scalars(select(Job.id).where(Job.id.in_(plan.jobs))))
        for job_id in plan.jobs:
            if job_id in have:
                continue
            job = site.jobs[job_id]
            kind = RESOURCE_KINDS.get(job.resource_name, "slurm")
            session.add(_job_row(job, users[job.user_id], resources.get(kind, kind), option_names))
            made["jobs"] += 1
        session.commit()


def _shares(plan: Plan, site: Site, db: sessionmaker[Session], made: dict[str, int]) -> None:
    with db() as session:
        for share_id in plan.shares:
            if session.get(SharedWorkspace, share_id) is not None:
                continue
            share = site.shares[share_id]
            original = session.get(Workspace, share.original_workspace_id)
            copy = session.get(Workspace, share.shared_workspace_id)
            session.add(
                SharedWorkspace(
                    id=share.id,
                    original_workspace_id=original.id,
                    shared_workspace_id=copy.id,
                    sender_id=original.user_id,
                    recipient_id=copy.user_id,
                    is_accepted=share.is_accepted,
                    datetime_share_created=share.created or copy.datetime_created,
                    last_job_type=share.last_job_type,
                    last_resource_options=share.last_resource_options,
                    copy_status="done",  # UWS made the copy when it sent the invitation
                )
            )
            made["invitations"] += 1
        session.commit()


def _quotas(
    plan: Plan, site: Site, db: sessionmaker[Session], users: dict[int, int], made: dict[str, int]
) -> None:
    by_id = {q.id: q for q in site.quotas}
    with db() as session:
        for quota_id in plan.quotas:
            q = by_id[quota_id]
            user_id = users[q.user_id]
            if session.get(UserQuota, user_id) is not None:
                continue  # set in uws_hub already: that one stands
            core = int((q.max_core_hours * Decimal(3600)).to_integral_value())
            session.add(
                UserQuota(
                    user_id=user_id,
                    disk_limit=q.max_disk_space or None,
                    core_seconds_limit=core or None,
                    updated=utcnow(),
                )
            )
            made["quotas"] += 1
        session.commit()


def _continue_sequences(db: sessionmaker[Session], site: Site) -> None:
    """PostgreSQL: the id sequences of workspaces, jobs and invitations go past every id UWS
    gave (imported or not, and those of rows UWS deleted, from its own sequences: a portal may
    still hold the id of a workspace UWS was deleting, or of a job that ran on), before any row
    is inserted with its own id. Never backwards. SQLite
    gives the largest id + 1 by itself, so there a UWS id above the largest imported one may be
    given again (docs/operations.md)."""
    with db() as session:
        if session.get_bind().dialect.name != "postgresql":
            return
        for model, ids, kind in (
            (Workspace, site.workspaces, "workspace"),
            (Job, site.jobs, "job"),
            (SharedWorkspace, site.shares, "share"),
        ):
            table = model.__tablename__
            top = max(
                [*ids, site.last_ids.get(kind, 0), session.scalar(select(func.max(model.id))) or 0]
            )
            if not top:
                continue
            seq = session.scalar(text(f"SELECT pg_get_serial_sequence('{table}', 'id')"))
            if seq is None:
                raise ImportFailed(
                    f"uws_hub's table {table} has no id sequence; nothing was imported."
                )
            session.execute(
                text(
                    "SELECT setval(CAST(:seq AS regclass), GREATEST(:top, "
                    "COALESCE(pg_sequence_last_value(CAST(:seq AS regclass)), 0)))"
                ),
                {"seq": seq, "top": top},
            )
        session.commit()
