"""Sharing a workspace by copy: invitations, the copy itself, accept / decline / cancel.

An invitation creates, for each recipient, a Workspace row owned by the recipient (status
``initializing``, hidden from their listing until accepted) and a SharedWorkspace row. The copy
is made by the service's reconciler (`run_copy`, through `WorkspaceManager.drive`), off the
event loop, with progress in the share row; it lands in place only when complete (see
`copier`). Accept, decline and cancel are single conditional statements, so any number of
concurrent requests end in one consistent state. E-mails go through the outbox
(`notify.queue`), so a mail failure never blocks or breaks a share.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from .. import audit
from ..db.models import (
    Job,
    SharedWorkspace,
    User,
    Workspace,
    WorkspaceStatus,
    utcnow,
)
from ..db.session import bump_listing_version
from ..errors import BadRequest, NotFound, UWSError
from ..ids import parse_id
from ..workspaces import fsops
from . import copier

log = logging.getLogger("uws_hub.shares")
S = WorkspaceStatus
SHAREABLE = (S.IDLE.value, S.ACTIVE.value)

COPY_FILES = Counter(
    "uws_share_copy_files_total", "Files copied into shared workspaces (as the copies progress)"
)
COPY_BYTES = Counter(
    "uws_share_copy_bytes_total", "Bytes copied into shared workspaces (as the copies progress)"
)
COPY_SECONDS = Histogram(
    "uws_share_copy_seconds",
    "Duration of completed share copies (walk, copy, rename into place and scan)",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
COPIES = Counter(
    "uws_share_copies_total",
    "Share copies that ended, by outcome (done, failed, cancelled: withdrawn while copying)",
    ["outcome"],
)
for _outcome in ("done", "failed", "cancelled"):
    COPIES.labels(_outcome)  # every outcome from the start (a 0, not a missing series)


class ShareManager:
    def __init__(self, settings, db, workspaces, notifier=None, quotas=None):
        self.settings = settings
        self.db = db
        self.workspaces = workspaces
        self.notifier = notifier
        self.quotas = quotas
        workspaces.share_copier = self.run_copy
        # copies are long: their own threads, so uploads, creates and scans never wait for them
        self.executor = ThreadPoolExecutor(
            max(1, settings.share_copy_workers), thread_name_prefix="uws-copy"
        )

    # ---- queries ----------------------------------------------------------------------

    def list_for(self, session: Session, user: User, filters: dict[str, str]):
        """(sent, received) invitations of `user`."""
        q = select(SharedWorkspace)
        if "is_accepted" in filters:
            value = filters["is_accepted"].strip().lower()
            if value not in ("true", "false", "1", "0"):
                raise BadRequest("is_accepted must be true or false.")
            q = q.where(SharedWorkspace.is_accepted.is_(value in ("true", "1")))
        sent = session.scalars(
            q.where(SharedWorkspace.sender_id == user.id).order_by(SharedWorkspace.id)
        ).all()
        received = session.scalars(
            q.where(SharedWorkspace.recipient_id == user.id).order_by(SharedWorkspace.id)
        ).all()
        return sent, received

    def get(self, session: Session, user: User, share_id: Any) -> SharedWorkspace:
        given, share_id = share_id, parse_id(share_id, "Shared workspace id")
        if share_id is None:
            raise NotFound(f"Shared workspace {given} not found for user.")
        share = session.scalar(
            select(SharedWorkspace).where(
                SharedWorkspace.id == share_id,
                or_(SharedWorkspace.sender_id == user.id, SharedWorkspace.recipient_id == user.id),
            )
        )
        if share is None:
            raise NotFound(f"Shared workspace {share_id} not found for user.")
        return share

    # ---- create -----------------------------------------------------------------------------

    def create(self, session: Session, sender: User, body: Any) -> list[SharedWorkspace]:
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        if "original_workspace_id" not in body or "shared_user_ids" not in body:
            raise BadRequest("Missing required fields: original_workspace_id and shared_user_ids.")
        ws_id = _int_id(body["original_workspace_id"], "original_workspace_id")
        ids = body["shared_user_ids"]
        if not isinstance(ids, list) or not ids:
            raise BadRequest("shared_user_ids must be a non-empty list of user ids.")
        if len(ids) > 100:
            raise BadRequest("Share with at most 100 people at once.")
        user_ids = []
        for raw in ids:
            uid = _int_id(raw, "shared_user_ids")
            if uid not in user_ids:
                user_ids.append(uid)
        original = session.get(Workspace, ws_id)
        if original is None or original.user_id != sender.id or original.status == S.DELETED.value:
            raise NotFound(f"Workspace {ws_id} not found for user.")
        pending_copy = session.scalar(
            select(SharedWorkspace).where(SharedWorkspace.shared_workspace_id == ws_id)
        )
        if pending_copy is not None and not pending_copy.is_accepted:
            raise BadRequest(
                f"Workspace {ws_id} is a shared copy you have not accepted yet; accept it before "
                "sharing it further."
            )
        if original.status not in SHAREABLE:
            raise BadRequest(
                f"Workspace {ws_id} is {original.status}; only idle or active workspaces can be shared."
            )
        recipients = []
        for uid in user_ids:
            if uid == sender.id:
                raise BadRequest("You cannot share a workspace with yourself.")
            r = session.get(User, uid)
            if r is None:
                raise BadRequest(f"User {uid} not found.")
            already = session.scalar(
                select(SharedWorkspace.id).where(
                    SharedWorkspace.original_workspace_id == ws_id,
                    SharedWorkspace.recipient_id == uid,
                    SharedWorkspace.is_accepted.is_(False),
                )
            )
            if already is not None:
                raise BadRequest(
                    f"Workspace {ws_id} is already shared with {r.name} (invitation {already}, not "
                    "accepted yet)."
                )
            try:
                self.workspaces.account_for(r)
            except UWSError as e:
                raise BadRequest(f"{r.name} cannot receive workspaces yet: {e.message}") from None
            recipients.append(r)
        last = session.scalar(
            select(Job).where(Job.workspace_id == ws_id).order_by(Job.id.desc()).limit(1)
        )
        now = utcnow()
        shares = []
        for r in recipients:
            copy = Workspace(
                user_id=r.id,
                name=original.name,
                description=original.description,
                default_job_type=original.default_job_type,
                status=S.INITIALIZING.value,
                datetime_created=now,
                datetime_last_modified=now,
                workspace_details={
                    "request_workspace_details": {"files": [], "symlinks": []},
                    "current_workspace_details": {"files": [], "symlinks": []},
                },
            )
            session.add(copy)
            session.flush()
            share = SharedWorkspace(
                original_workspace_id=ws_id,
                shared_workspace_id=copy.id,
                sender_id=sender.id,
                recipient_id=r.id,
                is_accepted=False,
                datetime_share_created=now,
                last_job_type=last.job_type if last else original.default_job_type,
                last_resource_options=last.resource_options if last else None,
                copy_status="pending",
            )
            session.add(share)
            session.flush()
            shares.append(share)
            audit.record(
                session,
                "share.create",
                user=sender.name,
                target_type="share",
                target_id=share.id,
                details={"workspace_id": ws_id, "recipient": r.name, "copy_id": copy.id},
            )
            if self.notifier is not None:
                self.notifier.queue(
                    session,
                    "share_invitation",
                    r,
                    {"sender": sender, "recipient": r, "workspace": original, "share": share},
                )
        session.commit()
        for share in shares:
            self.workspaces.on_work(share.shared_workspace_id)
            log.info(
                "share %s: workspace %s of %s offered to user %s",
                share.id,
                ws_id,
                sender.name,
                share.recipient_id,
            )
        return shares

    # ---- accept / decline / cancel ----------------------------------------------------------------

    def accept(self, session: Session, user: User, share: SharedWorkspace) -> SharedWorkspace:
        if share.recipient_id != user.id:
            raise BadRequest("Only the recipient can accept an invitation.")
        if share.is_accepted:
            raise BadRequest(f"Shared workspace {share.id} is already accepted.")
        if share.copy_status == "failed":
            raise BadRequest(
                f"The copy for invitation {share.id} failed ({share.copy_error}); decline it and "
                "ask the sender to share again."
            )
        if self.quotas is not None:
            copy = session.get(Workspace, share.shared_workspace_id)
            original = _original(session, share)
            # before the copy is done, the original's size is what it will cost
            size = max(
                copy.disk_space if copy else 0,
                share.copy_bytes_total,
                original.disk_space if original is not None and share.copy_status != "done" else 0,
            )
            self.quotas.check_disk(session, user, adding=size, doing="accept this shared workspace")
        res = session.execute(
            update(SharedWorkspace)
            .where(SharedWorkspace.id == share.id, SharedWorkspace.is_accepted.is_(False))
            .values(is_accepted=True, datetime_share_accepted=utcnow())
        )
        if res.rowcount != 1:
            session.rollback()
            raise BadRequest(
                f"Invitation {share.id} was accepted, declined or cancelled meanwhile."
            )
        bump_listing_version(session, user.id)
        sender = session.get(User, share.sender_id)
        audit.record(
            session,
            "share.accept",
            user=user.name,
            target_type="share",
            target_id=share.id,
            details={
                "workspace_id": share.shared_workspace_id,
                "sender": sender.name if sender is not None else None,
            },
        )
        if self.notifier is not None and sender is not None:
            self.notifier.queue(
                session,
                "share_accepted",
                sender,
                {
                    "sender": sender,
                    "recipient": user,
                    "share": share,
                    "workspace": _original(session, share),
                },
            )
        session.commit()
        session.refresh(share)
        return share

    def withdraw(self, session: Session, user: User, share: SharedWorkspace) -> str:
        """Decline (recipient) or cancel (sender) an unaccepted invitation; its copy is deleted."""
        if share.is_accepted:
            raise BadRequest(
                f"Invitation {share.id} is already accepted; the copy is the recipient's workspace now."
            )
        declined = share.recipient_id == user.id
        share_id = share.id
        ws_id, sender_id, recipient_id = (
            share.shared_workspace_id,
            share.sender_id,
            share.recipient_id,
        )
        original = _original(session, share)
        res = session.execute(
            delete(SharedWorkspace).where(
                SharedWorkspace.id == share.id, SharedWorkspace.is_accepted.is_(False)
            )
        )
        if res.rowcount != 1:
            session.rollback()
            raise BadRequest(
                f"Invitation {share.id} was accepted, declined or cancelled meanwhile."
            )
        session.execute(
            update(Workspace)
            .where(Workspace.id == ws_id, Workspace.status != S.DELETED.value)
            .values(status=S.DELETING.value, datetime_last_modified=utcnow())
        )
        other = session.get(User, sender_id if declined else recipient_id)
        audit.record(
            session,
            "share.decline" if declined else "share.cancel",
            user=user.name,
            target_type="share",
            target_id=share_id,
            details={
                "workspace_id": original.id if original is not None else None,
                "sender" if declined else "recipient": other.name if other is not None else None,
            },
        )
        if self.notifier is not None:
            sender, recipient = session.get(User, sender_id), session.get(User, recipient_id)
            if declined and sender is not None:
                self.notifier.queue(
                    session,
                    "share_declined",
                    sender,
                    {"sender": sender, "recipient": recipient, "workspace": original},
                )
        session.commit()
        self.workspaces.on_work(ws_id)
        return "declined" if declined else "cancelled"

    # ---- the copy (reconciler) ----------------------------------------------------------------

    async def run_copy(self, session: Session, ws: Workspace) -> None:
        """Copy the original into `ws` (an unaccepted or accepted share copy still initializing)."""
        share = session.scalar(
            select(SharedWorkspace).where(SharedWorkspace.shared_workspace_id == ws.id)
        )
        if share is None:
            return  # withdrawn: the workspace is being deleted
        original = (
            session.get(Workspace, share.original_workspace_id)
            if share.original_workspace_id
            else None
        )
        if original is None or not original.file_path or original.status not in SHAREABLE:
            self._fail(session, ws, share, "the original workspace is no longer available")
            return
        try:
            sender_acct, sender = self.workspaces._owner(session, original)
            recipient_acct, recipient = self.workspaces._owner(session, ws)
        except UWSError as e:
            self._fail(session, ws, share, e.message)
            return
        ws.file_path = f"{recipient_acct.name}/{ws.id}"
        share.copy_status = "copying"
        share.copy_error = None
        session.commit()
        share_id, src_path = share.id, original.file_path
        counted = copier.CopyStats()  # what this run has added to the metrics so far

        def progress(stats: copier.CopyStats) -> bool:
            COPY_FILES.inc(max(0, stats.files - counted.files))
            COPY_BYTES.inc(max(0, stats.bytes - counted.bytes))
            counted.files, counted.bytes = stats.files, stats.bytes
            with self.db() as s:
                res = s.execute(
                    update(SharedWorkspace)
                    .where(SharedWorkspace.id == share_id)
                    .values(copy_files_done=stats.files, copy_bytes_done=stats.bytes)
                )
                s.commit()
                return res.rowcount == 1  # gone: withdrawn, stop

        def totals(plan: copier.CopyPlan) -> bool:
            with self.db() as s:
                res = s.execute(
                    update(SharedWorkspace)
                    .where(SharedWorkspace.id == share_id)
                    .values(
                        copy_files_total=plan.files,
                        copy_bytes_total=plan.bytes,
                        copy_files_done=0,
                        copy_bytes_done=0,
                    )
                )
                s.commit()
                return res.rowcount == 1

        started = time.monotonic()
        try:
            result, stats = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                self._copy_fs,
                src_path,
                recipient_acct.name,
                ws.id,
                sender,
                recipient,
                totals,
                progress,
            )
        except copier.CopyCancelled:
            COPIES.labels("cancelled").inc()
            log.info("share %s: withdrawn during the copy; stopped", share_id)
            return
        except UWSError as e:
            session.rollback()
            share = session.get(SharedWorkspace, share_id)
            if share is not None:
                self._fail(session, ws, share, e.message)
            return
        session.expire_all()
        share = session.get(SharedWorkspace, share_id)
        ws = session.get(Workspace, ws.id)
        if share is None or ws is None or ws.status != S.INITIALIZING.value:
            return  # withdrawn at the very end: the delete removes the copy
        self.workspaces._apply_scan(ws, result)
        ws.status, ws.status_message = S.IDLE.value, None
        share.copy_status = "done"
        if stats.files or not share.copy_files_total:
            share.copy_files_done, share.copy_bytes_done = stats.files, stats.bytes
        else:  # completed by a run that stopped right after the rename: its totals stand
            share.copy_files_done, share.copy_bytes_done = (
                share.copy_files_total,
                share.copy_bytes_total,
            )
        share.copy_files_total = max(share.copy_files_total, stats.files)
        share.copy_bytes_total = max(share.copy_bytes_total, stats.bytes)
        bump_listing_version(session, ws.user_id)
        session.commit()
        COPIES.labels("done").inc()
        COPY_SECONDS.observe(time.monotonic() - started)
        log.info(
            "share %s: copied %d files, %d bytes (%d cloned, %d links and %d special files skipped)",
            share_id,
            stats.files,
            stats.bytes,
            stats.cloned,
            stats.skipped_links,
            stats.skipped_special,
        )

    def _fail(self, session: Session, ws: Workspace, share: SharedWorkspace, why: str) -> None:
        COPIES.labels("failed").inc()
        share.copy_status = "failed"
        share.copy_error = why
        ws.status, ws.status_message = S.ERROR.value, f"The copy failed: {why}"
        if self.notifier is not None:  # both sides learn it, with what to do next
            sender = session.get(User, share.sender_id)
            recipient = session.get(User, share.recipient_id)
            context = {
                "sender": sender,
                "recipient": recipient,
                "share": share,
                "workspace": _original(session, share),
            }
            for reader in (sender, recipient):
                if reader is not None:
                    self.notifier.queue(
                        session, "share_copy_failed", reader, {**context, "reader": reader}
                    )
        session.commit()
        log.warning("share %s: copy failed: %s", share.id, why)

    def _copy_fs(self, src_path, posix_name, ws_id, sender, recipient, totals, progress):
        s = self.settings
        root = s.root_dir
        fsops.ensure_user_dir(root, posix_name, recipient, s.user_dir_mode)
        staging = copier.staging_name(ws_id)
        final = str(ws_id)
        try:
            with (
                fsops.closing_fd(fsops.open_root(root)) as rfd,
                fsops.closing_fd(fsops.open_dir(rfd, posix_name)) as udir,
            ):
                if fsops.lstat_at(udir, final) is not None:
                    # a previous run renamed the complete copy into place, then stopped
                    with fsops.acting_as(recipient):
                        fsops.remove_tree(udir, staging)
                        with fsops.closing_fd(fsops.open_dir(udir, final)) as wfd:
                            return fsops.scan(
                                wfd, s.max_listed_entries, recipient.uid
                            ), copier.CopyStats()
                with fsops.closing_fd(fsops.open_workspace(root, src_path)) as src:
                    plan = copier.plan(src, sender)
                    if not totals(plan):
                        raise copier.CopyCancelled()
                    with fsops.acting_as(recipient):
                        fsops.remove_tree(udir, staging)  # a partial copy from before a restart
                        dfd = fsops.mkdir_open(udir, staging, 0o700)
                    try:
                        with fsops.closing_fd(dfd):
                            stats = copier.copy_tree(
                                src, dfd, sender, recipient, list(s.symlink_roots), progress
                            )
                            with fsops.acting_as(recipient):
                                os.fchmod(dfd, s.workspace_dir_mode)
                                os.rename(staging, final, src_dir_fd=udir, dst_dir_fd=udir)
                    except BaseException:
                        with fsops.acting_as(recipient):
                            fsops.remove_tree(udir, staging)
                        raise
                with (
                    fsops.acting_as(recipient),
                    fsops.closing_fd(fsops.open_dir(udir, final)) as wfd,
                ):
                    return fsops.scan(wfd, s.max_listed_entries, recipient.uid), stats
        except OSError as e:
            raise fsops.storage_error(e, "copying the shared workspace") from None


def _original(session: Session, share: SharedWorkspace) -> Workspace | None:
    return (
        session.get(Workspace, share.original_workspace_id) if share.original_workspace_id else None
    )


def _int_id(value: Any, field: str) -> int:
    out = parse_id(value, field)
    if out is None:
        raise BadRequest(f"{field} must hold numeric ids, not {value!r}.")
    return out
