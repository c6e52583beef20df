"""Workspace lifecycle: the domain functions behind the workspaces API.

Each public coroutine validates everything first (a refused request changes nothing), records
durable state in the database, and does filesystem work in a thread pool. Creation and deletion
are durable transitional states (``initializing``, ``deleting``): the row *is* the task, and
`drive` (called by the request and by the reconciler after any restart) finishes it,
idempotently. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..config import UWS
from ..db.models import (
    LIVE_JOB_STATUSES,
    Job,
    JobStatus,
    SharedWorkspace,
    User,
    Workspace,
    WorkspaceStatus,
    utcnow,
)
from ..db.session import bump_listing_version
from ..errors import BadRequest, NotFound, UWSError
from ..identity import PosixAccount
from ..ids import parse_id
from ..users.accounts import account_for
from . import datasets, fsops, scanproc
from .specs import DetailsSpec, WorkspaceSpec, spec_counts
from .upload import UploadReceiver

if TYPE_CHECKING:
    from ..quotas import QuotaManager
    from .work import PendingWork

log = logging.getLogger("uws_hub.workspaces")
T = TypeVar("T")

S = WorkspaceStatus
#: statuses in which the workspace's files may be changed through the API
CHANGEABLE = (S.IDLE.value, S.ACTIVE.value)
#: statuses hidden from users' listings
HIDDEN = (S.DELETED.value,)


def workspace_owner(
    session: Session, ws: Workspace, *, single_account: bool = False
) -> tuple[PosixAccount, fsops.Owner]:
    """The POSIX account that owns `ws` and the (uid, gid, groups) its files are handled as."""
    account = account_for(session.get(User, ws.user_id), single_account=single_account)
    return account, fsops.Owner(account.uid, account.gid, name=account.name)


def apply_scan(ws: Workspace, result: fsops.ScanResult) -> None:
    """Record what a scan of the workspace's directory found (size, files, listing)."""
    details = dict(ws.workspace_details or {})
    details["current_workspace_details"] = result.details()
    ws.workspace_details = details
    ws.disk_space = result.disk_space
    ws.file_count = result.file_count
    ws.datetime_scanned = utcnow()


#: job states that refuse a workspace's deletion (a stopping job only delays it)
_BLOCKS_DELETE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


class ShareCopier(Protocol):
    async def run(self, session: Session, ws: Workspace) -> None: ...


class WorkspaceManager:
    """Workspace operations for the service. One instance per service process."""

    def __init__(
        self,
        settings: UWS,
        db: sessionmaker[Session],
        executor: Executor,
        *,
        quotas: QuotaManager,
        work: PendingWork,
        share_copies: ShareCopier | None = None,
    ):
        self.settings = settings
        self.db = db
        self.executor = executor  # the filesystem threads
        self.quotas = quotas  # disk checks on create, update and upload
        self.work = work  # told whenever durable work is recorded (the reconciler's kick)
        #: makes the copy of a share's copy workspace that is initializing (`shares.copyrun`)
        self.share_copies = share_copies
        self._locks: dict[int, list] = {}  # ws id -> [lock, users]
        #: how dataset links find their directories (None: refused); see `datasets`
        self.datasets = datasets.resolver_for(settings)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ---- queries -----------------------------------------------------------------------

    @staticmethod
    def _listed(q, filters: dict[str, str]):
        """What a listing shows: not deleted, not an unaccepted shared copy (it belongs to the
        recipient but is not theirs until accepted), matching `filters`."""
        q = q.where(Workspace.status.not_in(HIDDEN))
        q = q.where(
            ~exists().where(
                SharedWorkspace.shared_workspace_id == Workspace.id,
                SharedWorkspace.is_accepted.is_(False),
            )
        )
        for key in ("name", "description", "status"):
            if key in filters:
                q = q.where(getattr(Workspace, key) == filters[key])
        return q

    def list_query(self, user: User, filters: dict[str, str]):
        q = select(Workspace).where(Workspace.user_id == user.id)
        return self._listed(q, filters).order_by(Workspace.id)

    def list_all_query(self, filters: dict[str, str], limit: int, offset: int):
        """Everyone's workspaces with their owners' names (operators), newest change first."""
        q = select(Workspace, User.name).join(User, User.id == Workspace.user_id)
        return (
            self._listed(q, filters)
            .order_by(Workspace.datetime_last_modified.desc(), Workspace.id.desc())
            .limit(limit)
            .offset(offset)
        )

    @staticmethod
    def last_jobs(
        session: Session, *, user: User | None = None, ws_ids: list[int] | None = None
    ) -> dict[int, Job]:
        """Each workspace's most recent job (by id): all of `user`'s workspaces, or those in
        `ws_ids` — one grouped query (per 500 ids)."""
        groups: list = []
        if user is not None:
            groups.append(Job.user_id == user.id)
        else:
            ids = list(ws_ids or [])
            groups.extend(Job.workspace_id.in_(ids[i : i + 500]) for i in range(0, len(ids), 500))
        out: dict[int, Job] = {}
        for where in groups:
            newest = select(func.max(Job.id)).where(where).group_by(Job.workspace_id)
            for job in session.scalars(select(Job).where(Job.id.in_(newest))):
                out[job.workspace_id] = job
        return out

    def get(self, session: Session, user: User, ws_id: int | str) -> Workspace:
        """The user's workspace `ws_id`, or 404 (also for other people's workspaces)."""
        given, ws_id = ws_id, parse_id(ws_id, "Workspace id")
        if ws_id is None:
            raise NotFound(f"Workspace {given} not found for user.")
        ws = session.scalar(self.list_query(user, {}).where(Workspace.id == ws_id))
        if ws is None:
            raise NotFound(f"Workspace {ws_id} not found for user.")
        return ws

    def get_to_change(self, session: Session, user: User, ws_id: int | str) -> Workspace:
        """The user's workspace `ws_id` to change, start a job in or upload to: 404 if it is
        not theirs; 400 (as UWS) if it is a shared copy they have not accepted yet."""
        given, ws_id = ws_id, parse_id(ws_id, "Workspace id")
        if ws_id is None:
            raise NotFound(f"Workspace {given} not found for user.")
        ws = session.scalar(
            select(Workspace).where(
                Workspace.id == ws_id,
                Workspace.user_id == user.id,
                Workspace.status.not_in(HIDDEN),
            )
        )
        if ws is None:
            raise NotFound(f"Workspace {ws_id} not found for user.")
        unaccepted = session.scalar(
            select(SharedWorkspace.id).where(
                SharedWorkspace.shared_workspace_id == ws.id,
                SharedWorkspace.is_accepted.is_(False),
            )
        )
        if unaccepted is not None:
            raise BadRequest(
                f"Workspace {ws.id} is a shared workspace and has not been accepted.",
                detail="Accept the invitation first (PUT /shared_workspaces/<id>/accept/, or "
                "the Shared with me page).",
            )
        return ws

    def pending_work(self) -> list[int]:
        """Workspaces in a durable transitional state this manager drives."""
        with self.db() as session:
            return list(
                session.scalars(
                    select(Workspace.id).where(
                        or_(
                            Workspace.status == S.DELETING.value,
                            Workspace.status == S.INITIALIZING.value,  # shared copies too
                        )
                    )
                )
            )

    # ---- create ------------------------------------------------------------------------

    async def create(self, session: Session, user: User, request: WorkspaceSpec) -> Workspace:
        """Create a workspace of `user` from a checked request: the row (``initializing``,
        its files kept as pending work) and then its directory, driven to the end here or,
        after a crash, by the reconciler. Disk quota is checked first."""
        name, description = request.name, request.description
        default_job_type, spec = request.default_job_type, request.details
        account = account_for(user, single_account=self.settings.single_account)
        self.quotas.check_disk(session, user, adding=spec.size(), doing="create this workspace")
        spec = await self._resolve_datasets(session, request)
        user.posix_name, user.uid, user.gid = account.name, account.uid, account.gid
        now = utcnow()
        ws = Workspace(
            user_id=user.id,
            name=name,
            description=description,
            default_job_type=default_job_type,
            status=S.INITIALIZING.value,
            datetime_created=now,
            datetime_last_modified=now,
            workspace_details={
                "request_workspace_details": spec.request_record(),
                "current_workspace_details": {"files": [], "symlinks": []},
            },
            pending_details=spec.pending_record(),
        )
        session.add(ws)
        session.flush()
        audit.record(
            session,
            "workspace.create",
            user=user.name,
            target_id=ws.id,
            details={"name": name, **spec_counts(spec)},
        )
        session.commit()
        await self.drive(ws.id)
        session.refresh(ws)
        if ws.status == S.ERROR.value:
            raise UWSError(
                f"Workspace {ws.id} could not be created: {ws.status_message}", status_code=500
            )
        return ws

    async def _resolve_datasets(self, session: Session, request: WorkspaceSpec) -> DetailsSpec:
        """`request`'s details with its dataset links resolved (one lookup for all; a 400 or
        a 5xx changes nothing). No database connection is held while the lookup runs."""
        if not request.details.datasets:
            return request.details
        session.commit()
        return await datasets.resolve_links(
            request.details,
            request.dataset_token,
            self.datasets,
            list(self.settings.symlink_roots),
            self._run,
        )

    # ---- the durable steps (request path and reconciler) ------------------------------

    @asynccontextmanager
    async def _lock(self, ws_id: int):
        """One operation at a time per workspace; the lock is dropped when nobody holds or awaits it."""
        entry = self._locks.setdefault(ws_id, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[ws_id]

    async def drive(self, ws_id: int) -> None:
        """Finish whatever transitional state workspace `ws_id` is in (idempotent)."""
        async with self._lock(ws_id):
            with self.db() as session:
                ws = session.get(Workspace, ws_id)
                if ws is None:
                    return
                if ws.status == S.INITIALIZING.value:
                    is_copy = session.scalar(
                        select(exists().where(SharedWorkspace.shared_workspace_id == ws.id))
                    )
                    if is_copy:
                        if self.share_copies is not None:
                            await self.share_copies.run(session, ws)
                    else:
                        await self._initialize(session, ws)
                elif ws.status == S.DELETING.value:
                    await self._delete(session, ws)

    @staticmethod
    def _owner_name(session: Session, ws: Workspace) -> str | None:
        owner = session.get(User, ws.user_id)
        return owner.name if owner is not None else None

    async def _initialize(self, session: Session, ws: Workspace) -> None:
        try:
            account, owner = workspace_owner(
                session, ws, single_account=self.settings.single_account
            )
        except UWSError as e:
            ws.status, ws.status_message, ws.pending_details = S.ERROR.value, e.message, None
            session.commit()
            return
        # recorded first, so that deleting a failed workspace also removes what was written
        ws.file_path = f"{account.name}/{ws.id}"
        spec = DetailsSpec.from_pending(ws.pending_details)
        session.commit()  # no connection is held while the filesystem works
        try:
            result, error = await self._run(self._initialize_fs, account.name, ws.id, owner, spec)
        except UWSError as e:
            result, error = None, e
        if result is not None:
            apply_scan(ws, result)
        ws.pending_details = None
        if error is not None:
            log.warning("workspace %s: initialization failed: %s", ws.id, error.message)
            ws.status, ws.status_message = S.ERROR.value, error.message
        else:
            ws.status, ws.status_message = S.IDLE.value, None
            log.info("workspace %s created at %s", ws.id, ws.file_path)
        session.commit()

    def _initialize_fs(self, posix_name: str, ws_id: int, owner: fsops.Owner, spec: DetailsSpec):
        s = self.settings
        file_path = fsops.create_workspace_dir(
            s.root_dir,
            posix_name,
            ws_id,
            owner,
            user_dir_mode=s.user_dir_mode,
            workspace_dir_mode=s.workspace_dir_mode,
        )

        def write(wfd: int) -> None:
            fsops.remove_stale_temp(wfd)
            self._write_details(wfd, spec)

        return self._change_fs(file_path, owner, write, lambda wfd: self._check_details(wfd, spec))

    @staticmethod
    def _check_details(wfd: int, spec: DetailsSpec) -> None:
        """Verify on disk, before the first change, that every entry can be applied."""
        fsops.preflight(
            wfd, [f.parts for f in spec.files], [s.parts for s in spec.symlinks], spec.renames
        )

    @staticmethod
    def _write_details(wfd: int, spec: DetailsSpec) -> None:
        for src, dst in spec.renames:
            fsops.rename_entry(wfd, src, dst)
        for f in spec.files:
            fsops.write_file(wfd, f.parts, [f.data])
        for link in spec.symlinks:
            fsops.make_symlink(wfd, link.parts, link.source)

    def _change_fs(
        self,
        file_path: str,
        owner: fsops.Owner,
        change: Callable[[int], Any],
        check: Callable[[int], Any] | None = None,
    ) -> tuple[fsops.ScanResult | None, UWSError | None]:
        """As the workspace's owner, run `check` (a refusal changes nothing: no scan is returned),
        then `change`, then scan — also after a failed change, so the record shows what is really
        on disk. Returns the scan and the failure, if any."""
        with fsops.closing_fd(fsops.open_workspace(self.settings.root_dir, file_path)) as wfd:
            try:
                with fsops.acting_as(owner):
                    if check is not None:
                        check(wfd)
            except UWSError as e:
                return None, e
            error = None
            try:
                with fsops.acting_as(owner):
                    change(wfd)
            except UWSError as e:
                error = e
            return fsops.scan(wfd, self.settings.max_listed_entries, owner.uid), error

    def _du_fs(self, file_path: str) -> int | None:
        """``du -s`` of the workspace (see `scanproc.du_total`)."""
        with fsops.closing_fd(fsops.open_workspace(self.settings.root_dir, file_path)) as wfd:
            return scanproc.du_total(wfd)

    def _rescan_fs(self, file_path: str, owner: fsops.Owner) -> fsops.ScanResult:
        """Scan the workspace in a child process (see `scanproc`): a rescan of a big tree must
        not hold this process's interpreter lock while the API serves requests."""
        with fsops.closing_fd(fsops.open_workspace(self.settings.root_dir, file_path)) as wfd:
            return scanproc.scan_in_child(wfd, self.settings.max_listed_entries, owner.uid)

    async def _delete(self, session: Session, ws: Workspace) -> None:
        stopping = session.scalar(
            select(Job.id).where(Job.workspace_id == ws.id, Job.status.in_(LIVE_JOB_STATUSES))
        )
        if stopping is not None:  # deleted once it has ended (the reconciler's next pass)
            ws.status_message = f"Deleted once job {stopping} has stopped."
            session.commit()
            return
        if ws.file_path:
            try:
                _, owner = workspace_owner(session, ws, single_account=self.settings.single_account)
                session.commit()
                await self._run(
                    fsops.delete_workspace_dir, self.settings.root_dir, ws.file_path, owner
                )
                # a shared copy withdrawn while it was being made: its staging directory too
                user_part = ws.file_path.partition("/")[0]
                await self._run(
                    fsops.remove_user_entry,
                    self.settings.root_dir,
                    user_part,
                    f".uws-copy-{ws.id}",
                    owner,
                )
            except UWSError as e:
                # stays 'deleting'; the reconciler retries on its next pass
                log.error("workspace %s: delete failed, will retry: %s", ws.id, e.message)
                ws.status_message = e.message
                session.commit()
                return
        ws.status, ws.status_message = S.DELETED.value, None
        ws.datetime_deleted = utcnow()
        ws.disk_space = 0
        session.commit()
        log.info("workspace %s deleted", ws.id)

    # ---- update / upload / scan ----------------------------------------------------------

    def _require_changeable(self, ws: Workspace) -> None:
        if ws.status not in CHANGEABLE:
            hint = {
                S.INITIALIZING.value: "it is still being created; try again in a moment",
                S.DELETING.value: "it is being deleted",
                S.ERROR.value: f"it is in error ({ws.status_message or 'unknown'}); delete it and create a new one",
            }.get(ws.status, ws.status)
            raise BadRequest(f"Workspace {ws.id} cannot be changed: {hint}.")

    async def _fs_change(
        self,
        session: Session,
        ws: Workspace,
        change: Callable[[int], Any],
        check: Callable[[int], Any] | None = None,
        on_success: Callable[[], Any] | None = None,
    ) -> None:
        """Under the workspace's lock: re-read it, check it may change, apply `check` and
        `change` on disk as the owner, record the scan; raise a failure after recording it.
        `on_success` adds to the scan's transaction when the change succeeded (its audit event)."""
        session.refresh(ws)
        self._require_changeable(ws)
        _, owner = workspace_owner(session, ws, single_account=self.settings.single_account)
        session.commit()  # release the connection while the filesystem works
        result, error = await self._run(self._change_fs, ws.file_path, owner, change, check)
        if result is not None:
            session.refresh(ws)
            apply_scan(ws, result)
            ws.datetime_last_modified = utcnow()
            if error is None:
                self._claim_changeable(session, ws)
                if on_success is not None:
                    on_success()
            session.commit()
        if error is not None:
            raise error

    def _claim_changeable(self, session: Session, ws: Workspace) -> None:
        """Check, atomically with the changes of the open transaction, that `ws` may still
        change: a conditional UPDATE, so a concurrent delete (which marks it `deleting` with its
        own conditional UPDATE) either came first and this refuses after rolling back, or waits
        for this transaction to end."""
        res = session.execute(
            update(Workspace)
            .where(Workspace.id == ws.id, Workspace.status.in_(CHANGEABLE))
            .values(datetime_last_modified=ws.datetime_last_modified or utcnow())
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            session.rollback()
            session.refresh(ws)
            self._require_changeable(ws)
            raise BadRequest(f"Workspace {ws.id} cannot be changed now; try again.")

    async def update(self, session: Session, ws: Workspace, request: WorkspaceSpec) -> Workspace:
        """Change a workspace from a checked request: files, symlinks and renames on disk
        (under the workspace's lock, only while it is idle or active), then its fields."""
        name, description = request.name, request.description
        job_type_given, default_job_type = request.job_type_given, request.default_job_type
        spec = request.details
        if spec:
            self._require_changeable(ws)
            if spec.size():
                owner_row = session.get(User, ws.user_id)
                self.quotas.check_disk(
                    session, owner_row, adding=spec.size(), doing="add these files"
                )
        spec = await self._resolve_datasets(session, request)
        async with self._lock(ws.id):
            if spec:
                await self._fs_change(
                    session,
                    ws,
                    lambda wfd: self._write_details(wfd, spec),
                    lambda wfd: self._check_details(wfd, spec),
                )
                # as UWS: request_workspace_details stays what the create asked for; the new
                # names show in current_workspace_details at once (the change rescanned it)
            else:
                session.refresh(ws)
                self._require_changeable(ws)
            changes: dict[str, Any] = {}
            if name is not None and name != ws.name:
                changes["name"] = [ws.name, name]
                ws.name = name
            if description is not None and description != ws.description:
                changes["description"] = True  # changed (the text may be long: not copied)
                ws.description = description
            if job_type_given and default_job_type != ws.default_job_type:
                changes["default_job_type"] = [ws.default_job_type, default_job_type]
                ws.default_job_type = default_job_type
            ws.datetime_last_modified = utcnow()
            self._claim_changeable(session, ws)
            if changes or spec:
                audit.record(
                    session,
                    "workspace.update",
                    user=self._owner_name(session, ws),
                    target_id=ws.id,
                    details={**changes, **spec_counts(spec)},
                )
            session.commit()
        return ws

    async def start_upload(
        self, session: Session, ws: Workspace, content_type: str, expected_size: int = 0
    ) -> UploadReceiver:
        """Begin receiving a multipart body for `ws` (into the owner's staging directory)."""
        self._require_changeable(ws)
        usage = self.quotas.usage(session, session.get(User, ws.user_id))
        self.quotas.check_disk_usage(usage, adding=expected_size, doing="upload these files")
        account, owner = workspace_owner(session, ws, single_account=self.settings.single_account)
        session.commit()  # the upload may take long: hold no database connection meanwhile
        receiver = await self._run(
            UploadReceiver, self.settings.root_dir, account.name, owner, content_type
        )
        receiver.usage = usage  # a body without Content-Length is checked as it arrives
        return receiver

    async def feed_upload(self, receiver: UploadReceiver, chunk: bytes) -> None:
        receiver.received += len(chunk)
        if receiver.usage is not None:
            self.quotas.check_disk_usage(
                receiver.usage, adding=receiver.received, doing="upload these files"
            )
        await self._run(receiver.feed, chunk)

    async def abort_upload(self, receiver: UploadReceiver) -> None:
        await self._run(receiver.cleanup)

    async def finish_upload(
        self, session: Session, ws: Workspace, receiver: UploadReceiver
    ) -> list[str]:
        """Check the received body and move its files into the workspace; return their names."""
        try:
            await self._run(receiver.finish)
            names = ["/".join(f.parts) for f in receiver.files]

            def record() -> None:
                audit.record(
                    session,
                    "workspace.upload",
                    user=self._owner_name(session, ws),
                    target_id=ws.id,
                    details={"files": len(names), "names": names[:20]},
                )

            async with self._lock(ws.id):
                await self._fs_change(session, ws, receiver.commit, receiver.check, record)
            return names
        finally:
            await self._run(receiver.cleanup)

    async def rescan(self, session: Session, ws: Workspace, *, quick: bool = False) -> Workspace:
        """Record the workspace's current files and disk usage (e.g. after a job changed them;
        see `rescans`): ``datetime_scanned`` always, ``datetime_last_modified`` only when the
        scan found something different. 400 if the workspace cannot be scanned now.

        `quick` (a periodic rescan while a job runs): ``du`` alone first; when its total is the
        recorded ``disk_space``, nothing was written and the tree is not walked again (a rename
        that keeps the size shows with the next full scan, at the latest when the job ends).

        A scan that finds nothing new records its time with a plain UPDATE, which leaves the
        owner's cached listing valid (a periodic rescan of an unchanged workspace must not make
        every listing of its owner be built again: bench P10); the listing shows the new
        ``datetime_scanned`` with the next change, ``GET /workspaces/<id>/`` at once."""
        async with self._lock(ws.id):
            session.refresh(ws)
            self._require_changeable(ws)
            _, owner = workspace_owner(session, ws, single_account=self.settings.single_account)
            recorded = ws.disk_space
            session.commit()  # no connection is held while the filesystem works
            if quick and await self._run(self._du_fs, ws.file_path) == recorded:
                self._record_scan_time(session, ws, utcnow())
                return ws
            result = await self._run(self._rescan_fs, ws.file_path, owner)
            session.refresh(ws)
            before = (ws.disk_space, ws.file_count, ws.workspace_details)
            apply_scan(ws, result)
            if (ws.disk_space, ws.file_count, ws.workspace_details) != before:
                ws.datetime_last_modified = ws.datetime_scanned
                session.commit()
            else:
                self._record_scan_time(session, ws, ws.datetime_scanned)
        return ws

    @staticmethod
    def _record_scan_time(session: Session, ws: Workspace, when: dt.datetime) -> None:
        """Set ``datetime_scanned`` only, with a plain UPDATE (no listing version bump)."""
        session.expire(ws)  # nothing to flush
        session.execute(
            update(Workspace).where(Workspace.id == ws.id).values(datetime_scanned=when)
        )
        session.commit()

    # ---- delete --------------------------------------------------------------------------

    def request_delete(self, session: Session, ws: Workspace) -> None:
        """Mark the workspace `deleting` (the reconciler removes it); refuse while in use."""
        self._check_deletable(session, ws)
        # conditional update: two concurrent deletes cannot both pass
        res = session.execute(
            update(Workspace)
            .where(
                Workspace.id == ws.id,
                Workspace.status.in_((S.IDLE.value, S.ERROR.value, S.ACTIVE.value)),
            )
            .values(status=S.DELETING.value, datetime_last_modified=utcnow())
        )
        if res.rowcount != 1:
            raise BadRequest(f"Workspace {ws.id} is already being deleted.")
        bump_listing_version(session, ws.user_id)
        audit.record(
            session,
            "workspace.delete",
            user=self._owner_name(session, ws),
            target_id=ws.id,
            details={"name": ws.name},
        )
        session.commit()
        self.work.recorded(ws.id)

    @staticmethod
    def _check_deletable(session: Session, ws: Workspace) -> None:
        """Refuse (400, UWS's texts where it had them) a delete of `ws` now."""
        if ws.status == S.DELETING.value:
            raise BadRequest(f"Workspace {ws.id} is already being deleted.")
        if ws.status == S.INITIALIZING.value:
            raise BadRequest(f"Workspace {ws.id} is still being created; try again in a moment.")
        # as UWS, a job that is stopping does not block: the directory goes once it has ended
        live = session.scalar(
            select(exists().where(Job.workspace_id == ws.id, Job.status.in_(_BLOCKS_DELETE)))
        )
        if live:
            raise BadRequest("Cannot delete workspace, jobs are running for this workspace.")
        pending_shares = session.scalar(
            select(
                exists().where(
                    SharedWorkspace.original_workspace_id == ws.id,
                    SharedWorkspace.is_accepted.is_(False),
                )
            )
        )
        if pending_shares:
            raise BadRequest(  # UWS's text (§1.9)
                f"Workspace {ws.id} has shared workspaces associated with it, that have not yet "
                "been accepted. Please cancel those shares to delete this workspace.",
                detail="Cancel them with DELETE /shared_workspaces/<id>/ (the id of each "
                "recipient's copy), or on the Invitations page.",
            )
        copying = session.scalar(
            select(
                exists().where(
                    SharedWorkspace.original_workspace_id == ws.id,
                    SharedWorkspace.copy_status.in_(("pending", "copying")),
                )
            )
        )
        if copying:
            raise BadRequest(
                "Cannot delete workspace, copies of it for the people it was shared with are still "
                "being made; try again when they are done."
            )
