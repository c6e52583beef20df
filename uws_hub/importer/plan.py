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
#: the Django group of UWS's trusted clients (portals exchanging user_info for tokens)
CLIENT_GROUP = "api_clients"
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
    same_people: Container[str] = (),
    token_owner: Callable[[str], str | None] = lambda token: None,
    token_clients: Container[str] = (),
) -> Plan:
    """The import of `site` into uws_hub's database (`session`, read only) and `root_dir`, from
    UWS's storage root `uws_root`. `hub_users`: the hub's user names; `same_people`: those of
    them the operator says are the UWS people of the same name; `token_owner(token)`: the hub
    user a token value already belongs to (None if none); `token_clients`: the hub users that
    may exchange user_info for tokens (the ``uws-token-client`` role)."""
    plan = Plan()
    people = _plan_people(plan, site, session, hub_users, same_people)
    _plan_workspaces(plan, site, session, people, uws_root, root_dir)
    _skip_orphan_copies(plan, site)
    _running_jobs_stay(plan, site)
    imported = {w.workspace.id for w in plan.workspaces if w.action != "skip"}
    orphans = 0
    for job in site.jobs.values():
        if job.user_id not in people or people[job.user_id].action == "skip":
            continue
        if job.status in LIVE:  # reported wherever it runs
            plan.live_jobs.append(job.id)
            continue
        if job.workspace_id not in imported:
            orphans += job.workspace_id is None  # (else its workspace was skipped, reported)
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
                f"Invitation {share.id} was accepted, but its original workspace is not imported"
                f" (deleted in UWS or skipped): its copy {share.shared_workspace_id} comes over "
                "as its recipient's workspace, without the invitation."
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
    inactive = sorted(p.person.name for p in people.values() if not p.person.is_active)
    if inactive:
        plan.notes.append(
            f"Inactive in UWS (they could not log in there): {', '.join(inactive)}. Their "
            "workspaces are imported, their tokens are not, and they are not made hub users; add "
            "them to c.Authenticator.blocked_users to keep them out of the hub too."
        )
    for p in people.values():
        if p.action == "skip" or not p.person.token or not p.person.is_active:
            continue
        if CLIENT_GROUP in p.person.groups and p.person.name not in token_clients:
            plan.conflicts.append(
                Conflict(
                    "token",
                    f"person {p.person.name}",
                    f"a trusted client in UWS (group {CLIENT_GROUP}): add them to "
                    "c.UWS.token_client_users (the uws-token-client role), and their name to "
                    "c.AccountMapping.home_domains if their user_info names this site's "
                    "accounts; start the hub once, then run the import.",
                )
            )
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
    plan: Plan, site: Site, session: Session, hub_users: Container[str], same: Container[str]
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
            # the same person: an identity in common, or imported before (the UWS join time)
            if not (theirs & mine or existing.created == person.joined):
                pp.action = "skip"
                held = ", ".join(sorted(s + ":" + e for s, e in theirs)) or "no identities"
                plan.conflicts.append(
                    Conflict(
                        "name",
                        what,
                        f"uws_hub already has a {person.name} ({held}) who is not this person; "
                        "rename one of them first.",
                    )
                )
                continue
            pp.action = "keep"
        elif person.name in hub_users and person.name not in same:
            pp.action = "skip"
            plan.conflicts.append(
                Conflict(
                    "name",
                    what,
                    f"the hub already has a user {person.name}, unknown to uws_hub; if that is "
                    f"this person, say so with --same-person {person.name}, else rename one of "
                    "them first.",
                )
            )
            continue
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
        if existing is not None and existing.posix_name and existing.posix_name != pp.posix:
            pp.action = "skip"
            plan.conflicts.append(
                Conflict(
                    "account",
                    what,
                    f"uws_hub maps them to the account {existing.posix_name}, UWS's storage to "
                    f"{pp.posix}; make them one first.",
                )
            )
        elif holder is not None:
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


def _skip_orphan_copies(plan: Plan, site: Site) -> None:
    """A pending invitation's copy stays behind with its original: UWS hid it from its
    recipient, who could only accept or decline it, which needs the invitation."""
    imported = {w.workspace.id for w in plan.workspaces if w.action != "skip"}
    by_id = {w.workspace.id: w for w in plan.workspaces}
    for share in site.shares.values():
        copy = by_id.get(share.shared_workspace_id)
        if copy is None or copy.action != "create" or share.is_accepted:
            continue
        if share.original_workspace_id not in imported:
            copy.action = "skip"
            copy.why = (
                f"it is the copy of a pending invitation ({share.id}) whose original is not "
                "imported"
            )


def _running_jobs_stay(plan: Plan, site: Site) -> None:
    """A workspace that would move while a job still runs in it in UWS is a conflict: the job
    would lose its directory."""
    moving = {  # (also those with another conflict: the dry run names every one)
        w.workspace.id: w
        for w in plan.workspaces
        if w.source is not None and w.source != w.target and not w.why
    }
    for job in site.jobs.values():
        wp = moving.get(job.workspace_id)
        if wp is not None and job.status in LIVE:
            wp.action = "skip"
            plan.conflicts.append(
                Conflict(
                    "running",
                    f"workspace {job.workspace_id}",
                    f"job {job.id} still runs in it in UWS and would lose its directory when it "
                    "moves: let it end (or stop it in UWS) first.",
                )
            )


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
        found = (
            "directory",
            f"its path {ws.file_path!r} is not {owner.posix}/{ws.id} (<account>/<id>); fix it "
            "in UWS.",
        )
    else:
        wp.source = os.path.join(os.path.abspath(uws_root), *parts)
        wp.target = os.path.join(os.path.abspath(root_dir), *parts)
        try:
            found = _directory_problem(wp, owner)
        except OSError as e:  # anything else the file system says
            found = ("directory", f"{e.filename or wp.source} cannot be read: {e.strerror}.")
    if found is not None:
        wp.action = "skip"
        plan.conflicts.append(Conflict(found[0], what, found[1]))


def _real_dir(path: str, uid: int | None) -> tuple[str, str] | None:
    """(kind, message) of what is wrong with `path` as a directory of account `uid`."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "directory", f"{path} is a link; links are never followed."
    if not stat.S_ISDIR(st.st_mode):
        return "directory", f"{path} is not a directory."
    if uid is not None and st.st_uid != uid:
        return "owner", f"{path} belongs to uid {st.st_uid}, not to the account (uid {uid})."
    return None


def _directory_problem(wp: WorkspacePlan, owner: PersonPlan) -> tuple[str, str] | None:
    """(kind, message) of what stops `wp`'s directory from coming over, or None."""
    here, there = os.path.dirname(wp.source), os.path.dirname(wp.target)
    if os.path.lexists(here) and (problem := _real_dir(here, owner.uid)):
        return problem  # <UWS root>/<account>/ itself
    if there != here and os.path.lexists(there) and (problem := _real_dir(there, owner.uid)):
        return "target", problem[1] + " Fix it first: the directory would move into it."
    try:
        st = os.lstat(wp.source)
    except FileNotFoundError:
        if wp.source == wp.target or not os.path.lexists(wp.target):
            return "directory", f"its directory {wp.source} is missing."
        # moved by an earlier run that stopped before its record: checked as the source was
        wp.source = wp.target
        st = os.lstat(wp.source)
    if not stat.S_ISDIR(st.st_mode):
        said = (
            "is a link; links are never followed"
            if stat.S_ISLNK(st.st_mode)
            else "is not a directory"
        )
        return "directory", f"{wp.source} {said}."
    if owner.uid is not None and st.st_uid != owner.uid:
        return "owner", (
            f"{wp.source} belongs to uid {st.st_uid}, not to {owner.posix} (uid {owner.uid}); "
            "give it to its owner first."
        )
    if wp.source == wp.target:
        return None
    if os.path.lexists(wp.target):
        return "target", f"{wp.target} exists already; it is not overwritten."
    parent = os.path.dirname(wp.target)
    there = parent if os.path.lexists(parent) else os.path.dirname(parent)
    if os.lstat(there).st_dev != st.st_dev:
        return "target", (
            f"{there} is on another file system than {wp.source}: the move would be a copy. "
            "Move the directories yourself (same owners, links as links), or set "
            "c.UWS.root_dir to UWS's root."
        )
    return None
