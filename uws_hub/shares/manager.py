"""Sharing a workspace by copy: invitations, the copy itself, accept / decline / cancel.

An invitation creates, for each recipient, a Workspace row owned by the recipient (status
``initializing``, hidden from their listing until accepted) and a SharedWorkspace row. The copy
is made by the service's reconciler (`copyrun.ShareCopies.run`, through `WorkspaceManager.drive`), off the
event loop, with progress in the share row; it lands in place only when complete (see
`copier`). Accept, decline and cancel are single conditional statements, so any number of
concurrent requests end in one consistent state. E-mails go through the outbox
(`notify.queue`), so a mail failure never blocks or breaks a share.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from .. import audit
from ..db.models import Job, SharedWorkspace, User, Workspace, WorkspaceStatus, utcnow
from ..db.session import bump_listing_version
from ..errors import BadRequest, Forbidden, NotFound, UWSError
from ..ids import parse_id
from ..users.accounts import account_for
from .copyrun import SHAREABLE, original_of
from .specs import ShareSpec

if TYPE_CHECKING:
    from ..config import UWS
    from ..notify import Notifier
    from ..quotas import QuotaManager
    from ..workspaces.manager import WorkspaceManager
    from ..workspaces.work import PendingWork

log = logging.getLogger("uws_hub.shares")
S = WorkspaceStatus


def _settle(session: Session, statement, copy_id: Any) -> None:
    """Run the conditional statement that answers an open invitation; if it changed nothing,
    someone answered it meanwhile (400, nothing changed)."""
    if session.execute(statement).rowcount != 1:
        session.rollback()
        raise BadRequest(
            f"Shared workspace {copy_id} was accepted, declined or cancelled meanwhile."
        )


class ShareManager:
    """Invitations and their answers (one instance per service process). The copies
    themselves are made by `copyrun.ShareCopies`, driven by the reconciler."""

    def __init__(
        self,
        settings: UWS,
        db: sessionmaker[Session],
        workspaces: WorkspaceManager,
        *,
        quotas: QuotaManager,
        work: PendingWork,
        notifier: Notifier | None = None,
    ):
        self.settings = settings
        self.db = db
        self.workspaces = workspaces
        self.quotas = quotas
        self.work = work  # told when a copy (or a withdrawn copy's delete) is recorded
        self.notifier = notifier

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

    @staticmethod
    def by_copy(session: Session, copy_id: Any) -> SharedWorkspace | None:
        """The invitation whose copy is workspace `copy_id` (UWS addresses an invitation by the
        recipient's copy workspace id), whoever asks; None when there is none."""
        number = parse_id(copy_id, "Shared workspace id")
        if number is None:
            return None
        return session.scalar(
            select(SharedWorkspace).where(SharedWorkspace.shared_workspace_id == number)
        )

    def get(self, session: Session, user: User, copy_id: Any) -> SharedWorkspace | None:
        """The invitation of copy `copy_id` if `user` sent or received it, else None (a GET
        answers that 200 with an empty list, as UWS)."""
        share = self.by_copy(session, copy_id)
        if share is None or user.id not in (share.sender_id, share.recipient_id):
            return None
        return share

    def legacy(self, session: Session, user: User, invitation_id: Any) -> SharedWorkspace | None:
        """The invitation numbered `invitation_id` in uws_hub before it spoke UWS's ids (links
        in e-mails sent then), if `user` sent or received it."""
        number = parse_id(invitation_id, "invitation id")
        share = session.get(SharedWorkspace, number) if number is not None else None
        if share is None or user.id not in (share.sender_id, share.recipient_id):
            return None
        return share

    # ---- create -----------------------------------------------------------------------------

    def create(self, session: Session, sender: User, spec: ShareSpec) -> list[SharedWorkspace]:
        """Invite `spec`'s recipients to copies of the sender's workspace: per recipient, a
        copy workspace (``initializing``, hidden until accepted) and an invitation, audited,
        with an e-mail queued — all in one transaction; the reconciler makes the copies."""
        ws_id = spec.original_workspace_id
        original = self._shareable(session, sender, ws_id)
        recipients = [self._recipient(session, sender, ws_id, uid) for uid in spec.recipient_ids]
        last = session.scalar(
            select(Job).where(Job.workspace_id == ws_id).order_by(Job.id.desc()).limit(1)
        )
        shares = [self._invite(session, sender, original, r, last) for r in recipients]
        session.commit()
        for share in shares:
            self.work.recorded(share.shared_workspace_id)
            log.info(
                "share %s: workspace %s of %s offered to user %s",
                share.id,
                ws_id,
                sender.name,
                share.recipient_id,
            )
        return shares

    @staticmethod
    def _shareable(session: Session, sender: User, ws_id: int) -> Workspace:
        """The sender's workspace `ws_id` if it may be shared now (404 / 400 otherwise)."""
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
        return original

    def _recipient(self, session: Session, sender: User, ws_id: int, uid: int) -> User:
        """Person `uid` if they can receive workspace `ws_id` now (400 otherwise)."""
        if uid == sender.id:
            raise BadRequest("You cannot share a workspace with yourself.")
        r = session.get(User, uid)
        if r is None or r.deleted_at is not None:  # (a person deleted from the hub: a tombstone)
            raise BadRequest("Invalid user id provided.", detail=f"There is no user with id {uid}.")
        already = session.scalar(
            select(SharedWorkspace.shared_workspace_id).where(
                SharedWorkspace.original_workspace_id == ws_id,
                SharedWorkspace.recipient_id == uid,
                SharedWorkspace.is_accepted.is_(False),
            )
        )
        if already is not None:
            raise BadRequest(
                f"Workspace {ws_id} is already shared with {r.name} (shared workspace {already}, "
                "not accepted yet)."
            )
        try:
            account_for(r, single_account=self.settings.single_account)
        except UWSError as e:
            who = " ".join(filter(None, (r.first_name, r.last_name))) or r.name
            raise BadRequest(
                f"User {who} does not have permission on the file system.",
                detail=f"{r.name} cannot receive workspaces yet: {e.message}",
            ) from e
        return r

    def _invite(
        self, session: Session, sender: User, original: Workspace, r: User, last: Job | None
    ) -> SharedWorkspace:
        """One recipient's copy workspace and invitation (flushed, audited, e-mail queued)."""
        now = utcnow()
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
            original_workspace_id=original.id,
            shared_workspace_id=copy.id,
            sender_id=sender.id,
            recipient_id=r.id,
            is_accepted=False,
            datetime_share_created=now,
            # as UWS: the original's latest job, "" and {} when it never ran one
            last_job_type=last.job_type if last else "",
            last_resource_options=(last.resource_options or {}) if last else {},
            copy_status="pending",
        )
        session.add(share)
        session.flush()
        audit.record(
            session,
            "share.create",
            user=sender.name,
            target_id=copy.id,
            details={
                "workspace_id": original.id,
                "recipient": r.name,
                "copy_id": copy.id,
                "invitation": share.id,
            },
        )
        if self.notifier is not None:
            self.notifier.queue(
                session,
                "share_invitation",
                r,
                {"sender": sender, "recipient": r, "workspace": original, "share": share},
            )
        return share

    def accept(self, session: Session, user: User, copy_id: Any) -> SharedWorkspace:
        """The recipient accepts the invitation of copy `copy_id`: the copy becomes theirs (its
        ``datetime_created`` is the acceptance, as UWS) and shows in their listing, also while
        it is still being made; their disk quota is checked for what the copy will hold; the
        sender is told by e-mail. Accepting again is a no-op, as UWS. One conditional update:
        concurrent accepts, declines and cancels end in one consistent state."""
        share = self.by_copy(session, copy_id)
        if share is None or share.recipient_id != user.id:
            raise NotFound(
                f"Shared workspace {copy_id} not found.",
                detail="Only the person a workspace was shared with can accept it.",
            )
        if share.is_accepted:
            return share
        if share.copy_status == "failed":
            raise BadRequest(
                f"The copy of shared workspace {copy_id} failed ({share.copy_error}); decline it "
                "and ask the sender to share again."
            )
        self._check_room(session, user, share)
        now = utcnow()
        _settle(
            session,
            update(SharedWorkspace)
            .where(SharedWorkspace.id == share.id, SharedWorkspace.is_accepted.is_(False))
            .values(is_accepted=True, datetime_share_accepted=now),
            copy_id,
        )
        session.execute(
            update(Workspace)
            .where(Workspace.id == share.shared_workspace_id)
            .values(datetime_created=now)
        )
        bump_listing_version(session, user.id)
        self._accepted(session, user, share)
        session.commit()
        session.refresh(share)
        return share

    def _check_room(self, session: Session, user: User, share: SharedWorkspace) -> None:
        """`user`'s disk quota must hold the copy (before it is done: what the original holds)."""
        copy = session.get(Workspace, share.shared_workspace_id)
        original = original_of(session, share)
        size = max(
            copy.disk_space if copy else 0,
            share.copy_bytes_total,
            original.disk_space if original is not None and share.copy_status != "done" else 0,
        )
        self.quotas.check_disk(session, user, adding=size, doing="accept this shared workspace")

    def _accepted(self, session: Session, user: User, share: SharedWorkspace) -> None:
        """Audit an acceptance and tell the sender."""
        sender = session.get(User, share.sender_id)
        audit.record(
            session,
            "share.accept",
            user=user.name,
            target_id=share.shared_workspace_id,
            details={
                "workspace_id": share.shared_workspace_id,
                "sender": sender.name if sender is not None else None,
                "invitation": share.id,
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
                    "workspace": original_of(session, share),
                },
            )

    def _withdrawable(self, session: Session, user: User, copy_id: Any) -> SharedWorkspace:
        """The invitation of copy `copy_id` if `user` may decline or cancel it now."""
        share = self.by_copy(session, copy_id)
        if share is None:
            raise NotFound(f"Shared workspace {copy_id} not found.")
        if user.id not in (share.sender_id, share.recipient_id):
            raise Forbidden(
                f"User does not have permissions for shared workspace {copy_id}.",
                detail="Only the sender can cancel an invitation and only its recipient can "
                "decline it.",
            )
        if share.is_accepted:
            raise BadRequest(
                f"Shared workspace {copy_id} has been accepted and cannot be deleted.",
                detail="The copy is the recipient's own workspace now; they can delete it "
                "with DELETE /workspaces/<id>/.",
            )
        return share

    def withdraw(self, session: Session, user: User, copy_id: Any) -> str:
        """Decline (recipient) or cancel (sender) the unaccepted invitation of copy `copy_id`;
        the copy is deleted. Refusals as UWS: 404 no such invitation, 403 not yours, 400 once
        accepted. Answers "declined" or "cancelled"."""
        share = self._withdrawable(session, user, copy_id)
        ws_id = share.shared_workspace_id
        answer = self.settle_withdrawal(session, user, share, copy_id)
        session.commit()
        self.work.recorded(ws_id)
        return answer

    def settle_withdrawal(
        self, session: Session, user: User, share: SharedWorkspace, copy_id: Any = None
    ) -> str:
        """Withdraw the unaccepted invitation `share` for `user` (its recipient: declined; its
        sender: cancelled) in the caller's transaction: the invitation goes, its copy becomes
        ``deleting``, audited, the sender told of a decline. The caller commits and then tells
        `work` about the copy. Also used when a person is deleted from the hub
        (`users.deletions`)."""
        copy_id = share.shared_workspace_id if copy_id is None else copy_id
        declined = share.recipient_id == user.id
        share_id = share.id
        ws_id, sender_id, recipient_id = (
            share.shared_workspace_id,
            share.sender_id,
            share.recipient_id,
        )
        original = original_of(session, share)
        _settle(
            session,
            delete(SharedWorkspace).where(
                SharedWorkspace.id == share.id, SharedWorkspace.is_accepted.is_(False)
            ),
            copy_id,
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
            target_id=ws_id,
            details={
                "invitation": share_id,
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
        return "declined" if declined else "cancelled"
