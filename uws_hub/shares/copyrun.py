"""Making a share's copy: the reconciler drives a recipient's copy workspace that is still
``initializing`` through `ShareCopies.run` (called from `WorkspaceManager.drive`).

The copy runs on its own threads (copies are long: uploads, creates and scans never wait for
them), writes its progress to the share row as it goes, and lands in place only when complete
(see `copier`). A share withdrawn meanwhile stops the copy; a failure marks the copy workspace
``error`` and tells both people by e-mail what to do next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import SharedWorkspace, User, Workspace, WorkspaceStatus
from ..db.session import bump_listing_version
from ..errors import UWSError
from ..identity import PosixAccount
from ..workspaces import fsops
from ..workspaces.manager import apply_scan, workspace_owner
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


def original_of(session: Session, share: SharedWorkspace) -> Workspace | None:
    """The workspace a share was copied from (None once it is deleted)."""
    return (
        session.get(Workspace, share.original_workspace_id) if share.original_workspace_id else None
    )


@dataclass
class _Copy:
    """One copy in progress: what its threads need (nothing bound to a session)."""

    share_id: int
    ws_id: int
    src_path: str
    recipient_account: PosixAccount
    sender: fsops.Owner
    recipient: fsops.Owner


class ShareCopies:
    """Runs share copies for the reconciler (one instance per service process)."""

    def __init__(self, settings, db: sessionmaker[Session], notifier=None):
        self.settings = settings
        self.db = db
        self.notifier = notifier
        self.executor = ThreadPoolExecutor(
            max(1, settings.share_copy_workers), thread_name_prefix="uws-copy"
        )
        #: set when the service stops: copies under way stop at their next progress report
        #: (every 200 files), removing their staging directory; the next start copies again
        self.stopping = False

    def stop(self) -> None:
        """Stop the copies under way and wait for their threads (the service's shutdown). A
        copy left running would hold the stopping process until it ended."""
        self.stopping = True
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def run(self, session: Session, ws: Workspace) -> None:
        """Copy the original into `ws` (an unaccepted or accepted share copy still
        initializing): check both sides, copy on the copy threads with progress, then record
        the result. Idempotent: a run after a restart resumes or finishes the last one."""
        job = self._begin(session, ws)
        if job is None:
            return
        counted = copier.CopyStats()  # what this run has added to the metrics so far
        started = time.monotonic()
        try:
            result, stats = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                self._copy_fs,
                job,
                self._totals_writer(job.share_id),
                self._progress_writer(job.share_id, counted),
            )
        except copier.CopyCancelled:
            if self.stopping:  # (logged by the copy's thread)
                return
            COPIES.labels("cancelled").inc()
            log.info("share %s: withdrawn during the copy; stopped", job.share_id)
            return
        except UWSError as e:
            session.rollback()
            share = session.get(SharedWorkspace, job.share_id)
            if share is not None:
                self._fail(session, ws, share, e.message)
            return
        self._finish(session, job, result, stats, started)

    def _begin(self, session: Session, ws: Workspace) -> _Copy | None:
        """Check the share and both owners and mark the copy ``copying``; None if there is
        nothing to copy (withdrawn) or the copy cannot be made (recorded as failed)."""
        share = session.scalar(
            select(SharedWorkspace).where(SharedWorkspace.shared_workspace_id == ws.id)
        )
        if share is None:
            return None  # withdrawn: the workspace is being deleted
        original = original_of(session, share)
        if original is None or not original.file_path or original.status not in SHAREABLE:
            self._fail(session, ws, share, "the original workspace is no longer available")
            return None
        single = self.settings.single_account
        try:
            _, sender = workspace_owner(session, original, single_account=single)
            recipient_account, recipient = workspace_owner(session, ws, single_account=single)
        except UWSError as e:
            self._fail(session, ws, share, e.message)
            return None
        ws.file_path = f"{recipient_account.name}/{ws.id}"
        share.copy_status = "copying"
        share.copy_error = None
        session.commit()
        return _Copy(share.id, ws.id, original.file_path, recipient_account, sender, recipient)

    def _progress_writer(self, share_id: int, counted: copier.CopyStats):
        """Called by the copy as it goes: metrics and the share row; False stops the copy
        (the share is gone: withdrawn)."""

        def progress(stats: copier.CopyStats) -> bool:
            COPY_FILES.inc(max(0, stats.files - counted.files))
            COPY_BYTES.inc(max(0, stats.bytes - counted.bytes))
            counted.files, counted.bytes = stats.files, stats.bytes
            return self._update_share(
                share_id, copy_files_done=stats.files, copy_bytes_done=stats.bytes
            )

        return progress

    def _totals_writer(self, share_id: int):
        """Called once the copy knows its size: the totals, progress back to 0."""

        def totals(plan: copier.CopyPlan) -> bool:
            return self._update_share(
                share_id,
                copy_files_total=plan.files,
                copy_bytes_total=plan.bytes,
                copy_files_done=0,
                copy_bytes_done=0,
            )

        return totals

    def _update_share(self, share_id: int, **values: int) -> bool:
        """Record the copy's progress; False (stop the copy) once the share is gone or the
        service is stopping."""
        if self.stopping:
            return False
        with self.db() as s:
            res = s.execute(
                update(SharedWorkspace).where(SharedWorkspace.id == share_id).values(**values)
            )
            s.commit()
            return res.rowcount == 1

    def _finish(
        self,
        session: Session,
        job: _Copy,
        result: fsops.ScanResult,
        stats: copier.CopyStats,
        started: float,
    ) -> None:
        """Record a completed copy: the workspace becomes ``idle`` with its scan, the share
        ``done`` with its final counts."""
        session.expire_all()
        share = session.get(SharedWorkspace, job.share_id)
        ws = session.get(Workspace, job.ws_id)
        if share is None or ws is None or ws.status != S.INITIALIZING.value:
            return  # withdrawn at the very end: the delete removes the copy
        apply_scan(ws, result)
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
            job.share_id,
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
                "workspace": original_of(session, share),
            }
            for reader in (sender, recipient):
                if reader is not None:
                    self.notifier.queue(
                        session, "share_copy_failed", reader, {**context, "reader": reader}
                    )
        session.commit()
        log.warning("share %s: copy failed: %s", share.id, why)

    # ---- on the copy threads ----------------------------------------------------------------

    def _copy_fs(self, job: _Copy, totals, progress) -> tuple[fsops.ScanResult, copier.CopyStats]:
        """Copy into a staging directory as the recipient, rename it into place, scan it.
        A previous run that renamed the complete copy into place and stopped is finished."""
        try:
            if self.stopping:
                raise copier.CopyCancelled()
            return self._copy_fs_once(job, totals, progress)
        except copier.CopyCancelled:
            if self.stopping:
                log.info(
                    "share %s: the copy stops with the service; it starts again when the "
                    "service does",
                    job.share_id,
                )
            raise

    def _copy_fs_once(
        self, job: _Copy, totals, progress
    ) -> tuple[fsops.ScanResult, copier.CopyStats]:
        s = self.settings
        root, posix_name, recipient = s.root_dir, job.recipient_account.name, job.recipient
        fsops.ensure_user_dir(root, posix_name, recipient, s.user_dir_mode)
        staging, final = copier.staging_name(job.ws_id), str(job.ws_id)
        try:
            with (
                fsops.closing_fd(fsops.open_root(root)) as rfd,
                fsops.closing_fd(fsops.open_dir(rfd, posix_name)) as udir,
            ):
                if fsops.lstat_at(udir, final) is not None:
                    with fsops.acting_as(recipient):
                        fsops.remove_tree(udir, staging)
                    return self._scan(udir, final, recipient), copier.CopyStats()
                stats = self._copy_into_staging(job, udir, staging, final, totals, progress)
                return self._scan(udir, final, recipient), stats
        except OSError as e:
            raise fsops.storage_error(e, "copying the shared workspace") from e

    def _copy_into_staging(self, job: _Copy, udir: int, staging: str, final: str, totals, progress):
        s, recipient = self.settings, job.recipient
        with fsops.closing_fd(fsops.open_workspace(s.root_dir, job.src_path)) as src:
            plan = copier.plan(src, job.sender)
            if not totals(plan):
                raise copier.CopyCancelled()
            with fsops.acting_as(recipient):
                fsops.remove_tree(udir, staging)  # a partial copy from before a restart
                dfd = fsops.mkdir_open(udir, staging, 0o700)
            try:
                with fsops.closing_fd(dfd):
                    stats = copier.copy_tree(
                        src, dfd, job.sender, recipient, list(s.symlink_roots), progress
                    )
                    with fsops.acting_as(recipient):
                        os.fchmod(dfd, s.workspace_dir_mode)
                        os.rename(staging, final, src_dir_fd=udir, dst_dir_fd=udir)
            except BaseException:
                with fsops.acting_as(recipient):
                    fsops.remove_tree(udir, staging)
                raise
        return stats

    def _scan(self, udir: int, final: str, recipient: fsops.Owner) -> fsops.ScanResult:
        """The finished copy's scan, read as its owner."""
        with fsops.acting_as(recipient), fsops.closing_fd(fsops.open_dir(udir, final)) as wfd:
            return fsops.scan(wfd, self.settings.max_listed_entries, recipient.uid)
