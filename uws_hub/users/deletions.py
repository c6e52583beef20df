"""A person deleted from the hub leaves nothing dangling.

JupyterHub calls ``Authenticator.delete_user`` in the hub when an administrator deletes someone
(its admin page or ``DELETE /hub/api/users/<name>``). That hook (`authenticators.mixin`) never
writes the uws database, which may be down then: it only records the request, one small file
per person in `c.UWS.user_deletions_dir` (`record_request`). The uws service settles it:
`UserDeletions.run_pass`, every `c.UWS.user_sync_interval`, reads those requests and the hub's
list of users and compares it with its own. A uws user the hub no longer has is deleted when
there is a request for them, or once they have been missing on two passes in a row (deleted
another way) — only someone the hub has listed before (``hub_seen``): a row made with
``?user=`` for a person the hub does not have yet is left alone. Safety first: nothing is concluded when the hub's list cannot be read, and when
more than half of the uws users (and more than `MASS_MIN`) are missing at once without
requests — a hub database restored from an old backup — only the requested ones are settled,
and the numbers are logged as an error.

Deleting a person is one transaction (`delete_person`, audited ``user.delete`` by ``uws``):
their pending and running jobs are stopped, the invitations they sent and have not been
answered are cancelled and those they received declined (as the API does: the copies go, the
senders are told), their quota row and external identities go (the same login later maps
afresh), and their user row becomes a tombstone named ``<name>~deleted-<id>`` with
``deleted_at`` set — so a person re-created later with the same name gets a new uws user with
no workspaces, and the history (jobs, usage, audit) stays attached to the old one.

Their workspaces are then moved, once no job of theirs runs, out of the person's directory into
a hold area nobody but root reaches: ``<root_dir>/.uws-deleted/<tombstone id>/<workspace id>``
(parents root-owned, mode 0700; one atomic rename on the same filesystem, no link followed;
files and owners untouched), hidden from every listing (status ``deleted`` with no
``datetime_deleted`` yet; audited ``workspace.hold``). After `c.UWS.deleted_user_grace`,
`c.UWS.deleted_user_workspaces` applies: ``keep`` leaves them held; ``archive`` moves them to
``<deleted_user_archive_dir>/<name>-<user id>/<workspace id>`` (a rename on the same
filesystem, else ``cp -a`` as root into a staging name, renamed into place, then the held copy
removed; audited ``workspace.archive``); ``delete`` removes the held tree and hands the row to
the reconciler's delete path (``deleting`` → ``deleted``; audited ``workspace.delete``).

Every pass reads what is left to do from the database (tombstones with live jobs, workspaces
not held yet, held ones past the grace) and the spool directory, so a crash or restart
anywhere resumes on the next pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..db.models import (
    LIVE_JOB_STATUSES,
    ExternalIdentity,
    Job,
    SharedWorkspace,
    User,
    UserQuota,
    Workspace,
    WorkspaceStatus,
    utcnow,
)
from ..errors import HubAPIError, UWSError
from ..jobs.state import RUNNING_OR_PENDING, Stop, begin_stop
from ..times import utc_text
from .accounts import account_for

if TYPE_CHECKING:
    from ..config import UWS
    from ..jobs.manager import JobManager
    from ..shares.manager import ShareManager
    from ..workspaces.work import PendingWork

log = logging.getLogger("uws_hub.users.deletions")
S = WorkspaceStatus

SPOOL_SUFFIX = ".json"
#: the hold area under c.UWS.root_dir (root-owned, 0700)
HOLD_DIR = ".uws-deleted"
#: a tombstone's name: ``<name>~deleted-<user id>`` (``~`` is in no account name)
TOMBSTONE = "~deleted-"
#: a request for a person the hub still lists after this long is dropped (its delete failed)
STALE_REQUEST = dt.timedelta(days=1)
#: the mass-disappearance guard: more than this many, and more than half, missing at once
MASS_MIN = 5
#: workspaces moved to the hold area (an invitation's unaccepted copy is withdrawn instead)
HOLDABLE = (S.IDLE.value, S.ACTIVE.value, S.ERROR.value)
#: at most this many workspaces are held, archived or deleted per pass (the rest: next pass)
PER_PASS = 200


def stop_message(name: str) -> str:
    return f"Stopped: {name} was deleted from the hub."


def original_name(user: User) -> str:
    """The hub name of a person, also once their row is a tombstone."""
    if user.deleted_at is not None and TOMBSTONE in user.name:
        return user.name.rsplit(TOMBSTONE, 1)[0]
    return user.name


def tombstone_name(name: str, user_id: int) -> str:
    suffix = f"{TOMBSTONE}{user_id}"
    return name[: 255 - len(suffix)] + suffix


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


# ---- the requests (written in the hub, read by the service) -------------------------------------


@dataclass(frozen=True)
class Request:
    """An administrator deleted hub user `name` at `requested_at` (file `path`)."""

    name: str
    requested_at: dt.datetime
    path: Path
    #: the job servers the hub stopped so that it could delete the person
    servers_stopped: tuple[str, ...] = ()


def spool_path(directory: str | os.PathLike, name: str) -> Path:
    """The request file of hub user `name` (one per person: a second delete replaces it)."""
    stem = quote(name, safe="")
    if len(stem) > 200 or stem.startswith("."):
        stem = "sha256-" + hashlib.sha256(name.encode()).hexdigest()
    return Path(os.path.abspath(directory)) / (stem + SPOOL_SUFFIX)


def record_request(
    directory: str | os.PathLike,
    name: str,
    *,
    servers_stopped: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> Path:
    """Record that hub user `name` was deleted (blocking; the hub's ``delete_user``): a JSON
    file written to a temporary name and renamed into place (directory 0700, file 0600)."""
    path = spool_path(directory, name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {
        "name": name,
        "requested_at": (now or utcnow()).astimezone(dt.timezone.utc).isoformat(),
        "servers_stopped": sorted(servers_stopped),
    }
    tmp = path.parent / f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_requests(directory: str | os.PathLike) -> dict[str, Request]:
    """The recorded requests by hub name (blocking). A file that is not a request is renamed
    to ``<file>.invalid`` and logged, so it is not read again."""
    base = Path(os.path.abspath(directory))
    try:
        entries = sorted(p for p in base.iterdir() if p.name.endswith(SPOOL_SUFFIX))
    except FileNotFoundError:
        return {}
    out: dict[str, Request] = {}
    for p in entries:
        if p.name.startswith("."):
            continue
        try:
            data = json.loads(p.read_text())
            name, when = data["name"], _parse_time(data["requested_at"])
            if not isinstance(name, str) or not name or when is None:
                raise ValueError("no name or requested_at")
            stopped = tuple(str(s) for s in data.get("servers_stopped") or ())
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("user deletions: %s is not a deletion request (%s); set aside", p, e)
            p.rename(p.with_name(p.name + ".invalid"))
            continue
        if name not in out or out[name].requested_at < when:
            out[name] = Request(name, when, p, stopped)
    return out


# ---- deciding whom to delete -----------------------------------------------------------------


@dataclass(frozen=True)
class Deletion:
    """Delete uws user `user_id` (hub name `name`), because of `reason`; `request` is the
    hub's record of it (None: missing from the hub twice in a row)."""

    user_id: int
    name: str
    request: Request | None
    reason: str


@dataclass
class Plan:
    """What one pass does: whom to `delete`, the requests to drop (`consume`), who is missing
    without a request now (`missing`, remembered for the next pass) and how many of those the
    mass guard held back."""

    delete: list[Deletion] = field(default_factory=list)
    consume: list[Request] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    held_back: int = 0


def decide(
    uws_users: dict[str, int],
    hub_users: dict[str, dt.datetime | None],
    requests: dict[str, Request],
    missing_before: set[str],
    now: dt.datetime,
    seen: set[str] | None = None,
) -> Plan:
    """Whom to delete, from the uws users (name -> id, tombstones left out), the hub's users
    (name -> when created), the requests and who was missing on the previous pass. Without a
    request, only people the hub has listed before (`seen`; None: everyone) count as missing:
    a row made with ``?user=`` for someone the hub does not have yet is left alone."""
    plan = Plan()
    for name, req in sorted(requests.items()):
        created = hub_users.get(name)
        made_again = created is not None and created > req.requested_at
        if name in hub_users and not made_again:  # the hub has not finished (or failed) yet
            if now - req.requested_at > STALE_REQUEST:
                log.warning(
                    "user deletions: %s was deleted in the hub at %s but the hub still has "
                    "them (its delete failed?); request dropped",
                    name,
                    utc_text(req.requested_at),
                )
                plan.consume.append(req)
        elif name in uws_users:
            why = "deleted in the hub" + (" and made again since" if made_again else "")
            plan.delete.append(Deletion(uws_users[name], name, req, why))
        else:
            plan.consume.append(req)  # nothing of theirs in uws (or settled already)
    candidates: list[Deletion] = []
    for name, user_id in sorted(uws_users.items()):
        if name in hub_users or name in requests or (seen is not None and name not in seen):
            continue
        plan.missing.add(name)
        if name in missing_before:
            candidates.append(Deletion(user_id, name, None, "missing from the hub's user list"))
    if len(plan.missing) > MASS_MIN and 2 * len(plan.missing) > len(uws_users):
        log.error(
            "user sync: %d of the %d uws users are missing from the hub's user list without a "
            "deletion request; none of them is deleted (a hub database restored from an old "
            "backup?). Restore the hub's users, or delete them in the hub: requested deletions "
            "are settled whatever this guard says.",
            len(plan.missing),
            len(uws_users),
        )
        plan.held_back = len(plan.missing)
    else:
        plan.delete.extend(candidates)
    return plan


def hub_index(models: list[dict]) -> dict[str, dt.datetime | None]:
    """The hub's users (its ``GET /users`` models) by name, with when each was created."""
    return {
        m["name"]: _parse_time(m.get("created"))
        for m in models
        if isinstance(m, dict) and isinstance(m.get("name"), str)
    }


# ---- the filesystem (blocking: run in the filesystem threads) ---------------------------------


def _safe_part(part: str) -> bool:
    return bool(part) and "/" not in part and part not in (".", "..")


def archive_folder(name: str, user_id: int) -> str:
    """``<name>-<user id>``, as a single safe directory name."""
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", name).lstrip(".") or "_"
    return f"{safe[:200]}-{user_id}"


class HoldArea:
    """Moves workspaces of deleted people out of reach, to the archive, or away, with the
    descriptor-based helpers of `workspaces.fsops` (passed in as `fs`: the users package sits
    below the workspaces package in the import graph). Never follows a link."""

    def __init__(self, fs: ModuleType, root_dir: str):
        self.fs = fs
        self.root_dir = root_dir

    def _private_dir(self, parent: int, name: str) -> int:
        """Directory `name` in `parent`, created if missing, the service's own and 0700."""
        fd = self.fs.mkdir_open(parent, name, 0o700)
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            os.close(fd)
            raise self.fs.StorageError(
                f"The directory {name} belongs to uid {st.st_uid}, not to the uws service; "
                "an administrator must move it away."
            )
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
        return fd

    def hold(self, file_path: str, user_id: int, ws_id: int) -> str | None:
        """Move <root>/<file_path> to <root>/.uws-deleted/<user_id>/<ws_id> (one rename);
        returns that path relative to the root, or None when nothing is on disk."""
        user_part, _, ws_part = file_path.partition("/")
        if not (_safe_part(user_part) and _safe_part(ws_part)) or user_part == HOLD_DIR:
            raise self.fs.StorageError(f"Refusing to hold unexpected workspace path {file_path!r}.")
        rel, fs = f"{HOLD_DIR}/{user_id}/{ws_id}", self.fs
        try:
            with (
                fs.closing_fd(fs.open_root(self.root_dir)) as root,
                fs.closing_fd(self._private_dir(root, HOLD_DIR)) as area,
                fs.closing_fd(self._private_dir(area, str(user_id))) as mine,
            ):
                try:
                    udir = fs.open_dir(root, user_part)
                except FileNotFoundError:
                    udir = None
                with fs.closing_fd(udir) if udir is not None else nullcontext():
                    st = fs.lstat_at(udir, ws_part) if udir is not None else None
                    held = fs.lstat_at(mine, str(ws_id)) is not None
                    if st is None:
                        return rel if held else None  # moved on an earlier pass
                    if held or not stat.S_ISDIR(st.st_mode):
                        raise fs.StorageError(
                            f"Cannot hold {file_path}: "
                            + ("it is held already" if held else "it is not a directory")
                            + "; ask an administrator to look."
                        )
                    os.rename(ws_part, str(ws_id), src_dir_fd=udir, dst_dir_fd=mine)
        except OSError as e:
            raise fs.storage_error(e, f"moving {file_path} to {rel}") from e
        return rel

    def _held_dir(self, held: str) -> tuple[int, str]:
        """Descriptor of the held workspace's parent and its name (FileNotFoundError if the
        parent is gone)."""
        parts = held.split("/")
        if len(parts) != 3 or parts[0] != HOLD_DIR or not all(map(_safe_part, parts)):
            raise self.fs.StorageError(f"Unexpected held workspace path {held!r}.")
        with self.fs.closing_fd(self.fs.open_root(self.root_dir)) as root:
            return self.fs.walk_dirs(root, parts[:2]), parts[2]

    def remove(self, held: str) -> None:
        """Remove a held workspace for good (as root: the hold area is root's; idempotent)."""
        try:
            parent, name = self._held_dir(held)
        except FileNotFoundError:
            return
        try:
            with self.fs.closing_fd(parent):
                self.fs.remove_tree(parent, name)
        except OSError as e:
            raise self.fs.storage_error(e, f"removing {held}") from e

    def archive(self, held: str, archive_dir: str, folder: str) -> str:
        """Move a held workspace to <archive_dir>/<folder>/<ws id> (owners and modes kept);
        returns that path. Idempotent: an archive made on an earlier pass is kept."""
        if not _safe_part(folder):
            raise self.fs.StorageError(f"Unexpected archive folder {folder!r}.")
        fs = self.fs
        try:
            with (
                fs.closing_fd(os.open(archive_dir, os.O_RDONLY | os.O_DIRECTORY)) as base,
                fs.closing_fd(self._private_dir(base, folder)) as dest,
            ):
                return self._archive_into(held, dest, os.path.join(archive_dir, folder))
        except OSError as e:
            raise fs.storage_error(e, f"archiving {held}") from e

    def _archive_into(self, held: str, dest: int, dest_path: str) -> str:
        fs = self.fs
        name = held.rsplit("/", 1)[1]
        final = os.path.join(dest_path, name)
        try:
            parent, _ = self._held_dir(held)
        except FileNotFoundError:
            parent = None
        removing = f".uws-removing-{name}"  # a held copy being removed after its archive
        with fs.closing_fd(parent) if parent is not None else nullcontext():
            if parent is not None and fs.lstat_at(parent, removing) is not None:
                fs.remove_tree(parent, removing)  # a removal cut short: finish it
            there = parent is not None and fs.lstat_at(parent, name) is not None
            if fs.lstat_at(dest, name) is not None:
                if there:  # (a copy cut short after it was renamed into place, or not ours)
                    raise fs.StorageError(
                        f"Cannot archive {held}: {final} exists already. If it is this "
                        "workspace's archive, remove the held copy; else move it away."
                    )
                return final  # moved on an earlier pass
            if not there:
                raise fs.StorageError(f"The held workspace {held} is missing on disk.")
            try:
                os.rename(name, name, src_dir_fd=parent, dst_dir_fd=dest)
                return final
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
            staging = f".uws-partial-{name}"
            fs.remove_tree(dest, staging)
            _copy_tree(os.path.join(self.root_dir, held), os.path.join(dest_path, staging))
            os.rename(staging, name, src_dir_fd=dest, dst_dir_fd=dest)
            # out of the way in one step, then removed (a stop meanwhile: the next pass ends it)
            os.rename(name, removing, src_dir_fd=parent, dst_dir_fd=parent)
            fs.remove_tree(parent, removing)
        return final


def _copy_tree(src: str, dst: str) -> None:
    """``cp -a`` (links as links, owners, modes, times, hard links) from `src` — a path whose
    every parent is root's — to `dst`, another filesystem."""
    cp = shutil.which("cp", path="/usr/bin:/bin") or "cp"
    done = subprocess.run(
        [cp, "-a", "--no-target-directory", "--", src, dst], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise UWSError(f"Copying {src} to {dst} failed: {done.stderr.strip()[:500]}")


# ---- the service's loop -----------------------------------------------------------------------


class UserDeletions:
    """Settles people deleted from the hub (one instance per service process; see the module
    documentation). `run_pass` is the reconciler's periodic step."""

    def __init__(
        self,
        settings: UWS,
        db: sessionmaker[Session],
        hub: Any,
        *,
        jobs: JobManager,
        shares: ShareManager,
        work: PendingWork,
        executor: Executor,
        fs: ModuleType,
    ):
        self.settings = settings
        self.db = db
        self.hub = hub  # the hub's REST API (`service.hubclient.HubClient`)
        self.jobs = jobs  # sends the stops
        self.shares = shares  # withdraws invitations as the API does
        self.work = work  # the reconciler's kick (a workspace to delete)
        self.executor = executor  # the filesystem threads
        self.area = HoldArea(fs, settings.root_dir)
        self.spool_dir = settings.user_deletions_dir
        self._missing: set[str] = set()  # missing from the hub without a request, last pass
        self._lock = asyncio.Lock()
        self.passes = 0

    async def _in_thread(self, fn, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_pass(self) -> dict[str, int]:
        """Compare the hub's users with ours, delete whom the plan says, then move every
        deleted person's leftovers one step on."""
        async with self._lock:
            counts = {"deleted": 0, "held": 0, "archived": 0, "removed": 0}
            now = utcnow()
            requests = await asyncio.to_thread(read_requests, self.spool_dir)
            try:
                hub_users = hub_index(await self.hub.list_users())
            except HubAPIError as e:
                log.warning("user sync skipped: the hub's user list could not be read (%s)", e)
                hub_users = None
            if hub_users is not None:
                await asyncio.to_thread(self._mark_seen, list(hub_users))
                uws_users, seen = await asyncio.to_thread(self._live_users)
                plan = decide(uws_users, hub_users, requests, self._missing, now, seen)
                self._missing = plan.missing
                counts["deleted"] = await self._carry_out(plan)
            await self.settle(counts)
            self.passes += 1
            if any(counts.values()):
                log.info("user sync: %s", counts)
            return counts

    def _live_users(self) -> tuple[dict[str, int], set[str]]:
        """The uws users not deleted (name -> id), and those the hub has listed before."""
        users, seen = {}, set()
        with self.db() as session:
            q = select(User.name, User.id, User.hub_seen).where(User.deleted_at.is_(None))
            for name, user_id, hub_seen in session.execute(q):
                users[name] = user_id
                if hub_seen:
                    seen.add(name)
        return users, seen

    def _mark_seen(self, names: list[str]) -> None:
        """Remember that the hub lists these people (500 names per UPDATE)."""
        with self.db() as session:
            for i in range(0, len(names), 500):
                session.execute(
                    update(User)
                    .where(User.hub_seen.is_(False), User.name.in_(names[i : i + 500]))
                    .values(hub_seen=True)
                )
            session.commit()

    async def _carry_out(self, plan: Plan) -> int:
        deleted = 0
        for item in plan.delete:
            try:
                stops, copies = await asyncio.to_thread(self.delete_person, item)
            except UWSError as e:  # e.g. an invitation answered meanwhile: the next pass
                log.warning(
                    "user deletions: %s not deleted yet (%s); next pass", item.name, e.message
                )
                continue
            deleted += 1
            for copy_id in copies:  # withdrawn invitations' copies: the reconciler deletes them
                self.work.recorded(copy_id)
            await self.jobs.send_stops(stops)
            if item.request is not None:
                plan.consume.append(item.request)
        for req in plan.consume:
            try:
                req.path.unlink(missing_ok=True)
            except OSError as e:
                log.error("user deletions: cannot remove the settled request %s: %s", req.path, e)
        return deleted

    # ---- one person (blocking) ------------------------------------------------------------

    def delete_person(
        self, item: Deletion, now: dt.datetime | None = None
    ) -> tuple[list[Stop], list[int]]:
        """Delete uws user `item.user_id` in one transaction (blocking); returns the stops to
        send to the hub and the copies of withdrawn invitations. Nothing happens if the row
        changed meanwhile."""
        now = now or utcnow()
        name, req = item.name, item.request
        with self.db() as session:
            user = session.get(User, item.user_id, with_for_update=True)
            if user is None or user.deleted_at is not None or user.name != name:
                return [], []
            stops = self._stop_jobs(session, user, name)
            cancelled, declined = self._withdraw_invitations(session, user)
            session.execute(delete(UserQuota).where(UserQuota.user_id == user.id))
            identities = session.execute(
                delete(ExternalIdentity).where(ExternalIdentity.user_id == user.id)
            ).rowcount
            held = session.scalars(
                select(Workspace.id)
                .where(Workspace.user_id == user.id, Workspace.status.in_(HOLDABLE))
                .order_by(Workspace.id)
            ).all()
            self._keep_account(user)
            user.name, user.deleted_at = tombstone_name(name, user.id), now
            details = {
                "reason": item.reason,
                "tombstone": user.name,
                "jobs_stopped": [job_id for _, job_id, _ in stops],
                "invitations_cancelled": cancelled,
                "invitations_declined": declined,
                "identities_removed": identities,
                "workspaces_held": list(held),
            }
            if req is not None:
                details["requested_at"] = utc_text(req.requested_at)
                details["servers_stopped_by_hub"] = list(req.servers_stopped)
            audit.record(
                session,
                "user.delete",
                user=name,
                target_type="user",
                target_id=name,
                details=details,
            )
            session.commit()
        log.info("user deletions: %s deleted (%s): %s", name, item.reason, details)
        return stops, cancelled + declined

    def _keep_account(self, user: User) -> None:
        """Record the person's POSIX account on the row before it is renamed: found by the
        name until now (no mapping recorded), it could not be found by the tombstone's, and
        their leftover workspaces (copies being deleted, say) could never be removed."""
        if self.settings.single_account or (user.posix_name and user.uid is not None):
            return
        try:
            acct = account_for(user)
        except UWSError as e:  # no such account: nothing to keep (their files belong to none)
            log.warning("user deletions: no account of %s to keep: %s", user.name, e.message)
            return
        user.posix_name, user.uid, user.gid = acct.name, acct.uid, acct.gid

    def _stop_jobs(self, session: Session, user: User, name: str) -> list[Stop]:
        """Pending and running jobs of `user` become ``stopping`` (audited ``job.stop``)."""
        return _stop_all(session, [user.id])

    def _withdraw_invitations(self, session: Session, user: User) -> tuple[list[int], list[int]]:
        """Cancel the unanswered invitations `user` sent and decline those they received;
        returns the copies' ids (cancelled, declined)."""
        shares = session.scalars(
            select(SharedWorkspace)
            .where(
                or_(SharedWorkspace.sender_id == user.id, SharedWorkspace.recipient_id == user.id),
                SharedWorkspace.is_accepted.is_(False),
            )
            .order_by(SharedWorkspace.id)
        ).all()
        cancelled: list[int] = []
        declined: list[int] = []
        for share in shares:
            copy_id = share.shared_workspace_id
            answer = self.shares.settle_withdrawal(session, user, share)
            (declined if answer == "declined" else cancelled).append(copy_id)
        return cancelled, declined

    # ---- the leftovers of deleted people ---------------------------------------------------

    async def settle(self, counts: dict[str, int]) -> None:
        """Stop jobs of deleted people that still run, hold their workspaces, and apply
        c.UWS.deleted_user_workspaces to held ones past the grace."""
        stops, copies, hold, due = await asyncio.to_thread(self._leftovers, utcnow())
        for copy_id in copies:
            self.work.recorded(copy_id)
        if stops:
            await self.jobs.send_stops(stops)
        for ws_id in hold:
            if await self._step(self.hold_workspace, ws_id):
                counts["held"] += 1
        for ws_id in due:
            done = await self._step(self.after_grace, ws_id)
            if done == "archived":
                counts["archived"] += 1
            elif done == "deleted":
                counts["removed"] += 1
                self.work.recorded(ws_id)  # the reconciler's delete path records the end

    async def _step(self, fn, ws_id: int) -> Any:
        try:
            return await self._in_thread(fn, ws_id)
        except UWSError as e:
            log.error("user deletions: workspace %s: %s (retried next pass)", ws_id, e.message)
            return None

    def _leftovers(self, now: dt.datetime) -> tuple[list[Stop], list[int], list[int], list[int]]:
        """In one short transaction: stops for jobs of deleted people still pending or running
        and withdrawals of invitations still open (both raced the deletion), then their
        workspaces to hold and the held ones whose grace has passed."""
        gone = User.deleted_at.is_not(None)
        with self.db() as session:
            stops = self._stray_jobs(session)
            copies = self._stray_invitations(session)
            session.commit()
            hold = session.scalars(
                select(Workspace.id)
                .join(User, User.id == Workspace.user_id)
                .where(gone, Workspace.status.in_(HOLDABLE))
                .order_by(Workspace.id)
                .limit(PER_PASS)
            ).all()
            due: list[int] = []
            if self.settings.deleted_user_workspaces != "keep":
                cutoff = now - dt.timedelta(seconds=self.settings.deleted_user_grace)
                due = session.scalars(
                    select(Workspace.id)
                    .join(User, User.id == Workspace.user_id)
                    .where(User.deleted_at <= cutoff, *_held())
                    .order_by(Workspace.id)
                    .limit(PER_PASS)
                ).all()
        return stops, copies, list(hold), list(due)

    @staticmethod
    def _stray_jobs(session: Session) -> list[Stop]:
        """Jobs of deleted people that started meanwhile (a race with the deletion): stopped."""
        return _stop_all(session, None)

    def _stray_invitations(self, session: Session) -> list[int]:
        """Withdraw open invitations from or to deleted people; returns their copies' ids."""
        copies: list[int] = []
        tombstones = select(User.id).where(User.deleted_at.is_not(None))
        shares = session.scalars(
            select(SharedWorkspace)
            .where(
                SharedWorkspace.is_accepted.is_(False),
                or_(
                    SharedWorkspace.sender_id.in_(tombstones),
                    SharedWorkspace.recipient_id.in_(tombstones),
                ),
            )
            .order_by(SharedWorkspace.id)
        ).all()
        for share in shares:
            copies.append(share.shared_workspace_id)
            sender = session.get(User, share.sender_id)
            who = sender if sender.deleted_at is not None else session.get(User, share.recipient_id)
            self.shares.settle_withdrawal(session, who, share)
        return copies

    def hold_workspace(self, ws_id: int, now: dt.datetime | None = None) -> bool:
        """Move a deleted person's workspace to the hold area once no job of it runs and no
        copy is being made from or into it (blocking); True once held.

        The row is claimed first, by a conditional write that holds its lock (PostgreSQL's row
        lock, SQLite's write lock) through the rename and until the row names the held path:
        nothing can delete or change the workspace between the move on disk and its record. If
        the transaction fails after the rename, the next pass finds the directory held already
        and records it."""
        with self.db() as session:
            claimed = session.execute(
                update(Workspace)
                .where(Workspace.id == ws_id, Workspace.status.in_(HOLDABLE))
                .values(status=Workspace.status)
                .execution_options(synchronize_session=False)
            ).rowcount
            ws = session.get(Workspace, ws_id) if claimed else None
            if ws is None or _busy(session, ws):
                return False
            owner = session.get(User, ws.user_id)
            if owner is None or owner.deleted_at is None:
                return False
            source, name = ws.file_path, original_name(owner)
            held = self.area.hold(source, owner.id, ws_id) if source else None
            ws.status = S.DELETED.value
            ws.file_path = held or ""
            if held:
                ws.status_message = f"Held: {name} was deleted from the hub."
            else:
                ws.status_message = f"{name} was deleted from the hub; nothing was on disk."
                ws.datetime_deleted = now or utcnow()
            audit.record(
                session,
                "workspace.hold",
                user=name,
                target_id=ws_id,
                details={"name": ws.name, "from": source or None, "path": held},
            )
            session.commit()
        log.info("user deletions: workspace %s of %s held at %s", ws_id, name, held)
        return True

    def after_grace(self, ws_id: int, now: dt.datetime | None = None) -> str | None:
        """Archive or delete a held workspace whose grace has passed (blocking); answers
        "archived" or "deleted" once done."""
        mode = self.settings.deleted_user_workspaces
        with self.db() as session:
            ws = session.scalar(select(Workspace).where(Workspace.id == ws_id, *_held()))
            if ws is None or mode == "keep":
                return None
            owner = session.get(User, ws.user_id)
            held, name, user_id = ws.file_path, original_name(owner), owner.id
        if mode == "archive":
            path = self.area.archive(
                held, self.settings.deleted_user_archive_dir, archive_folder(name, user_id)
            )
        else:
            self.area.remove(held)
            path = None
        with self.db() as session:
            ws = session.scalar(select(Workspace).where(Workspace.id == ws_id, *_held()))
            if ws is None:
                return None
            ws.file_path = ""
            if mode == "archive":
                ws.status_message = f"Archived to {path}."
                ws.datetime_deleted = now or utcnow()
            else:  # the reconciler's delete path records the end (nothing left on disk)
                ws.status, ws.status_message = S.DELETING.value, None
            audit.record(
                session,
                f"workspace.{'archive' if mode == 'archive' else 'delete'}",
                user=name,
                target_id=ws_id,
                details={"name": ws.name, "held": held, "path": path},
            )
            session.commit()
        log.info("user deletions: held workspace %s of %s %sd", ws_id, name, mode)
        return "archived" if mode == "archive" else "deleted"


def _held() -> tuple:
    """A held workspace: hidden (``deleted``), not removed, its files in the hold area."""
    return (
        Workspace.status == S.DELETED.value,
        Workspace.datetime_deleted.is_(None),
        Workspace.file_path.startswith(HOLD_DIR + "/", autoescape=True),
    )


def _busy(session: Session, ws: Workspace) -> bool:
    """A job of `ws` is not over yet, or a copy is being made from it."""
    live = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.workspace_id == ws.id, Job.status.in_(LIVE_JOB_STATUSES))
    )
    copying = session.scalar(
        select(func.count())
        .select_from(SharedWorkspace)
        .where(
            SharedWorkspace.original_workspace_id == ws.id,
            SharedWorkspace.copy_status.in_(("pending", "copying")),
        )
    )
    return bool(live or copying)


def _stop_all(session: Session, user_ids: list[int] | None) -> list[Stop]:
    """Pending and running jobs of `user_ids` (None: of every deleted person) become
    ``stopping``, audited ``job.stop`` under the person's hub name; returns the stops to send."""
    q = select(Job, User).join(User, User.id == Job.user_id)
    # locked in id order and re-read, as the job manager's transitions do: one that ended is skipped
    q = q.where(Job.status.in_(RUNNING_OR_PENDING)).order_by(Job.id).with_for_update(of=Job)
    if user_ids is None:
        q = q.where(User.deleted_at.is_not(None))
    else:
        q = q.where(User.id.in_(user_ids))
    stops: list[Stop] = []
    for job, user in session.execute(q).all():
        name = original_name(user)
        begin_stop(session, job, name, stop_message(name))
        stops.append((name, job.id, job.server_name))
    return stops
