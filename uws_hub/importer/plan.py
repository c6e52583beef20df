"""What importing a UWS site would do (`plan_import`), worked out before anything changes: the
dry run prints it, the real run follows it. Every conflict is named with what to do about it.

- **People** keep their hub names. Their POSIX account is the one UWS's storage used for them
  (the first part of their workspaces' ``file_path``), which must exist on this machine. A name
  that uws_hub or the hub already gives someone else, or an identity already linked to another
  person, is a conflict: nobody gets another person's account.
- **Workspaces** keep their ids. Each directory must be a real directory (not a link) owned by
  the person's account; it stays where UWS left it when both use the same root, else it moves to
  ``<root_dir>/<account>/<id>``, which must not exist yet. An id uws_hub already uses for
  another workspace is a conflict. Workspaces being deleted, or without an owner, are skipped.
- **Jobs** are history; those still pending, running or stopping in UWS are reported (they keep
  running under UWS's scheduler account, uws_hub does not adopt them).
- **Invitations** whose two workspaces are imported come along; **quotas** become limits (UWS
  never enforced them: the report says so); **tokens** become hub tokens of their owner, unless
  the hub already has that token for someone else.

A person, workspace or invitation already imported (same id, same owner, same identity) is
"kept": running the import again changes nothing.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import ExternalIdentity, Job, SharedWorkspace, User, Workspace
from .reader import Person, Site, SiteWorkspace

#: UWS job statuses that mean the job may still run
LIVE = ("pending", "running", "stopping")
#: UWS workspace statuses imported (as uws_hub's; ``initializing`` ones failed half-way: error)
IMPORTED_STATUSES = {"idle": "idle", "active": "idle", "error": "error", "initializing": "error"}


@dataclass(frozen=True)
class Conflict:
    kind: str  # name, identity, account, workspace-id, directory, owner, target, token
    what: str  # "person alice", "workspace 41", ...
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        return f"{self.what}: {self.message}"


@dataclass
class PersonPlan:
    person: Person
    action: str  # create | keep | skip
    posix: str | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass
class WorkspacePlan:
    workspace: SiteWorkspace
    action: str  # create | keep | skip
    owner: str | None = None  # hub name
    source: str | None = None  # absolute directory in UWS's root
    target: str | None = None  # absolute directory in uws_hub's root
    status: str = "idle"
    why: str = ""  # why skipped


@dataclass
class Plan:
    people: list[PersonPlan] = field(default_factory=list)
    workspaces: list[WorkspacePlan] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)  # imported as history
    live_jobs: list[int] = field(default_factory=list)  # still running in UWS: reported
    shares: list[int] = field(default_factory=list)
    quotas: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # people whose token is carried over
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        def n(items, action):
            return sum(1 for i in items if i.action == action)

        return {
            "people_new": n(self.people, "create"),
            "people_kept": n(self.people, "keep"),
            "workspaces_new": n(self.workspaces, "create"),
            "workspaces_kept": n(self.workspaces, "keep"),
            "workspaces_moved": sum(
                1 for w in self.workspaces if w.action == "create" and w.source != w.target
            ),
            "workspaces_skipped": n(self.workspaces, "skip"),
            "jobs": len(self.jobs),
            "jobs_still_running": len(self.live_jobs),
            "invitations": len(self.shares),
            "quotas": len(self.quotas),
            "tokens": len(self.tokens),
            "conflicts": len(self.conflicts),
        }


def _posix_name(site: Site, person: Person) -> str | None:
    """The account UWS's storage used for `person`: the first part of their workspaces' paths
    (all the same), else the name of an identity that carries a uid (PSC, local)."""
    names = {
        w.file_path.split("/", 1)[0]
        for w in site.workspaces.values()
        if w.user_id == person.id and "/" in w.file_path
    }
    if len(names) == 1:
        return names.pop()
    for ident in person.identities:
        if ident.source in ("account-api", "local"):
            return ident.external_username
    return None


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def plan_import(
    site: Site,
    session: Session,
    *,
    uws_root: str,
    root_dir: str,
    hub_users: Container[str] = (),
    token_owner: Callable[[str], str | None] = lambda token: None,
) -> Plan:
    """The import of `site` into uws_hub's database (`session`, read only) and `root_dir`, from
    UWS's storage root `uws_root`. `hub_users`: the hub's user names; `token_owner(token)`: the
    hub user a token value already belongs to (None if none)."""
    plan = Plan()
    people = _plan_people(plan, site, session, hub_users)
    _plan_workspaces(plan, site, session, people, uws_root, root_dir)
    imported = {w.workspace.id for w in plan.workspaces if w.action != "skip"}
    orphans = 0
    for job in site.jobs.values():
        if job.user_id not in people or people[job.user_id].action == "skip":
            continue
        if job.workspace_id not in imported:
            orphans += job.workspace_id is None  # (else its workspace was skipped, reported)
            continue
        if job.status in LIVE:
            plan.live_jobs.append(job.id)
            continue
        existing = session.get(Job, job.id)
        if existing is not None and not (
            existing.workspace_id == job.workspace_id and existing.datetime_created == job.created
        ):
            plan.conflicts.append(
                Conflict(
                    "job-id",
                    f"job {job.id}",
                    f"uws_hub already uses id {job.id} for another job (of workspace "
                    f"{existing.workspace_id}); import into an empty uws_hub database.",
                )
            )
            continue
        plan.jobs.append(job.id)
    if plan.live_jobs:
        plan.notes.append(
            f"{len(plan.live_jobs)} job(s) still run in UWS ({', '.join(map(str, plan.live_jobs))}):"
            " they are not imported (uws_hub does not adopt them); stop them in UWS, or let them"
            " end, before the switch."
        )
    if orphans:
        plan.notes.append(
            f"{orphans} job(s) of workspaces deleted in UWS are not imported (uws_hub keeps jobs"
            " with their workspace)."
        )
    for share in site.shares.values():
        if share.shared_workspace_id in imported and share.original_workspace_id not in imported:
            plan.notes.append(
                f"Invitation {share.id}: its original workspace is not imported (deleted in UWS"
                f" or skipped), so it stays behind; its copy {share.shared_workspace_id} is "
                "imported as its recipient's workspace."
            )
        if share.shared_workspace_id in imported and share.original_workspace_id in imported:
            existing = session.get(SharedWorkspace, share.id)
            if existing is not None and existing.shared_workspace_id != share.shared_workspace_id:
                plan.conflicts.append(
                    Conflict(
                        "invitation-id",
                        f"invitation {share.id}",
                        f"uws_hub already uses id {share.id} for another invitation (of copy "
                        f"{existing.shared_workspace_id}); import into an empty uws_hub database.",
                    )
                )
                continue
            plan.shares.append(share.id)
    for quota in site.quotas:
        if quota.user_id in people and people[quota.user_id].action != "skip":
            plan.quotas.append(quota.id)
    if plan.quotas:
        plan.notes.append(
            "UWS never enforced its quotas: imported, they become limits uws_hub enforces."
        )
    for p in people.values():
        if p.action == "skip" or not p.person.token:
            continue
        owner = token_owner(p.person.token)
        if owner is not None and owner != p.person.name:
            plan.conflicts.append(
                Conflict(
                    "token",
                    f"person {p.person.name}",
                    f"the hub already has their UWS token for {owner}; it is not carried over.",
                )
            )
            continue
        plan.tokens.append(p.person.id)
    return plan


def _plan_people(
    plan: Plan, site: Site, session: Session, hub_users: Container[str]
) -> dict[int, PersonPlan]:
    out: dict[int, PersonPlan] = {}
    holders: dict[tuple[str, str], str] = {}  # identity -> the first UWS person with it
    named: dict[str, str] = {}  # hub name -> the first UWS username with it
    accounts: dict[str, str] = {}  # POSIX account -> the first person planned with it
    for person in site.people.values():
        named.setdefault(person.name, person.uws_username or person.name)
        for ident in person.identities:
            holders.setdefault((ident.source, ident.external_id), person.name)
    for person in site.people.values():
        pp = PersonPlan(person, "create")
        out[person.id] = pp
        plan.people.append(pp)
        what = f"person {person.name}"
        first = named[person.name]
        if first != (person.uws_username or person.name):
            pp.action = "skip"
            plan.conflicts.append(
                Conflict(
                    "name",
                    f"person {person.uws_username}",
                    f"their hub name {person.name} is also {first}'s (the hub names people in "
                    "lower case); rename one of them in UWS first.",
                )
            )
            continue
        existing = session.scalar(select(User).where(User.name == person.name))
        mine = {(i.source, i.external_id) for i in person.identities}
        if existing is not None:
            theirs = {(i.source, i.external_id) for i in existing.identities}
            if theirs and not theirs & mine:
                pp.action = "skip"
                plan.conflicts.append(
                    Conflict(
                        "name",
                        what,
                        f"uws_hub already has a {person.name} with other identities "
                        f"({', '.join(sorted(s + ':' + e for s, e in theirs))}); rename one of "
                        "them first.",
                    )
                )
                continue
            pp.action = "keep"
        elif person.name in hub_users:
            plan.notes.append(
                f"The hub already has a user {person.name} that uws_hub does not know: the "
                "import takes it for the same person. If it is someone else, rename one of them "
                "first."
            )
        for source, external_id in sorted(mine):
            first = holders[(source, external_id)]
            if first != person.name:
                pp.action = "skip"
                plan.conflicts.append(
                    Conflict(
                        "identity",
                        what,
                        f"their {source} identity {external_id} is also {first}'s in UWS; "
                        "merge or separate them in UWS first.",
                    )
                )
                continue
            owner = session.scalar(
                select(User)
                .join(ExternalIdentity, ExternalIdentity.user_id == User.id)
                .where(
                    ExternalIdentity.source == source, ExternalIdentity.external_id == external_id
                )
            )
            if owner is not None and owner.name != person.name:
                pp.action = "skip"
                plan.conflicts.append(
                    Conflict(
                        "identity",
                        what,
                        f"their {source} identity {external_id} already belongs to {owner.name} "
                        "in uws_hub; nobody gets another person's account.",
                    )
                )
        if pp.action == "skip":
            continue
        pp.posix = _posix_name(site, person)
        acct = _account(pp.posix) if pp.posix else None
        holder = _account_holder(session, pp.posix, person.name, accounts)
        if holder is not None:
            pp.action = "skip"
            plan.conflicts.append(
                Conflict(
                    "account",
                    what,
                    f"their account {pp.posix} is also {holder}'s; nobody gets another "
                    "person's account: give one of them their own account in UWS first.",
                )
            )
        elif pp.posix and acct is None:
            pp.action = "skip"
            plan.conflicts.append(
                Conflict(
                    "account",
                    what,
                    f"their account {pp.posix} does not exist on this machine; make it (same "
                    "uid and gid as on the UWS host) or connect the directory service first.",
                )
            )
        elif acct is not None:
            pp.uid, pp.gid = acct.pw_uid, acct.pw_gid
    return out


def _account_holder(
    session: Session, posix: str | None, name: str, accounts: dict[str, str]
) -> str | None:
    """Who else has the account `posix`: an earlier UWS person of this import, or a uws_hub
    user (deleted ones included: their files may still be there); None if nobody. Records
    `name` as its holder."""
    if not posix:
        return None
    first = accounts.setdefault(posix, name)
    if first != name:
        return first
    other = session.scalar(
        select(User.name).where(User.posix_name == posix, User.name != name).limit(1)
    )
    return other


def _plan_workspaces(
    plan: Plan,
    site: Site,
    session: Session,
    people: dict[int, PersonPlan],
    uws_root: str,
    root_dir: str,
) -> None:
    for ws in site.workspaces.values():
        wp = WorkspacePlan(ws, "create")
        plan.workspaces.append(wp)
        what = f"workspace {ws.id}"
        owner = people.get(ws.user_id) if ws.user_id is not None else None
        if owner is None:
            wp.action, wp.why = "skip", "it has no owner in UWS"
            continue
        if owner.action == "skip":
            wp.action, wp.why = "skip", f"its owner {owner.person.name} is not imported"
            continue
        if ws.status not in IMPORTED_STATUSES:
            wp.action, wp.why = "skip", f"it is {ws.status} in UWS"
            continue
        wp.owner, wp.status = owner.person.name, IMPORTED_STATUSES[ws.status]
        existing = session.get(Workspace, ws.id)
        if existing is not None:
            if existing.user.name == owner.person.name and existing.file_path == ws.file_path:
                wp.action = "keep"
            else:
                wp.action = "skip"
                plan.conflicts.append(
                    Conflict(
                        "workspace-id",
                        what,
                        f"uws_hub already uses id {ws.id} for {existing.user.name}'s workspace "
                        f"{existing.name!r}; import into an empty uws_hub database.",
                    )
                )
            continue
        _plan_directory(plan, wp, owner, uws_root, root_dir)


def _plan_directory(
    plan: Plan, wp: WorkspacePlan, owner: PersonPlan, uws_root: str, root_dir: str
) -> None:
    ws, what = wp.workspace, f"workspace {wp.workspace.id}"
    parts = ws.file_path.split("/")
    if parts != [owner.posix, str(ws.id)]:
        wp.action = "skip"
        plan.conflicts.append(
            Conflict(
                "directory",
                what,
                f"its path {ws.file_path!r} is not {owner.posix}/{ws.id} (<account>/<id>); fix "
                "it in UWS.",
            )
        )
        return
    wp.source = os.path.join(os.path.abspath(uws_root), *parts)
    wp.target = os.path.join(os.path.abspath(root_dir), owner.posix or "", str(ws.id))
    try:
        st = os.lstat(wp.source)
    except FileNotFoundError:
        if wp.source == wp.target or not os.path.lexists(wp.target):
            wp.action = "skip"
            plan.conflicts.append(
                Conflict("directory", what, f"its directory {wp.source} is missing.")
            )
            return
        # moved by an earlier run that stopped before its record: checked as the source was
        wp.source = wp.target
        st = os.lstat(wp.source)
    if not stat.S_ISDIR(st.st_mode):
        wp.action = "skip"
        said = (
            "is a link; links are never followed"
            if stat.S_ISLNK(st.st_mode)
            else "is not a directory"
        )
        plan.conflicts.append(Conflict("directory", what, f"{wp.source} {said}."))
        return
    if owner.uid is not None and st.st_uid != owner.uid:
        wp.action = "skip"
        plan.conflicts.append(
            Conflict(
                "owner",
                what,
                f"{wp.source} belongs to uid {st.st_uid}, not to {owner.posix} (uid "
                f"{owner.uid}); give it to its owner first.",
            )
        )
        return
    if wp.source != wp.target and os.path.lexists(wp.target):
        wp.action = "skip"
        plan.conflicts.append(
            Conflict("target", what, f"{wp.target} exists already; it is not overwritten.")
        )
