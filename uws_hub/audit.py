"""The audit log: who did what to whose resource, for operators.

The domain managers call `record` with the session of the change, before its commit, so the
event and the change are one transaction: a refused or failed change leaves no event, and no
change is committed without one. Who acts (and from where) is bound to the session by whoever
opened it — the service's request handlers bind the caller (`bind`), the CLI the operator — so
domain functions need no extra arguments; a session nobody bound records the service itself.

Actions are ``<object>.<verb>``: ``workspace.create``, ``workspace.update``,
``workspace.upload``, ``workspace.delete``, ``share.create``, ``share.accept``,
``share.decline``, ``share.cancel``, ``job.start``, ``job.stop``, ``job.share``,
``job.unshare``, ``quota.update``, ``token.create``; ``audit.prune`` when old events are
deleted (`prune`, ``c.UWS.audit_retention_days``). The service itself records
``quota.disk_level`` and ``quota.disk_action`` (`diskwatch`), ``workspace.delete_files`` (the
file browser), and ``user.delete``, ``workspace.hold`` and ``workspace.archive`` (a person
deleted from the hub: `users.deletions`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .db.models import AuditEvent, utcnow
from .errors import BadRequest

#: the most events one query returns
MAX_LIMIT = 1000
_KEY = "uws_audit_actor"


@dataclass(frozen=True)
class Actor:
    """Who acts: a hub user or service (by hub name), the operator's CLI, or uws itself."""

    name: str
    kind: str = "user"  # user | service | cli | system
    ip: str | None = None
    request_id: str | None = None

    def as_(self, name: str, kind: str) -> Actor:
        """The same request, acting as someone else (e.g. the portal whose token it carries)."""
        return replace(self, name=name, kind=kind)


#: changes nobody asked for in a request (reconcilers, background work)
SYSTEM = Actor("uws", "system")


def bind(session: Session, actor: Actor | Callable[[], Actor]) -> Session:
    """Record `actor` (or, lazily, what the callable returns) for the session's events."""
    session.info[_KEY] = actor
    return session


def actor_of(session: Session) -> Actor:
    actor = session.info.get(_KEY, SYSTEM)
    return actor() if callable(actor) else actor


def record(
    session: Session,
    action: str,
    *,
    user: str | None,
    target_type: str | None = None,
    target_id: Any = None,
    details: dict | None = None,
    actor: Actor | None = None,
) -> AuditEvent:
    """Add an event to `session` (the caller's commit writes it with the change).

    `user` is whose resource it is (a hub user name); the target's type is the action's
    first part (``job`` of ``job.start``) unless given; `actor` defaults to the session's."""
    who = actor or actor_of(session)
    event = AuditEvent(
        time=utcnow(),
        actor=who.name[:255],
        actor_kind=who.kind,
        username=user,
        action=action,
        target_type=target_type or action.partition(".")[0],
        target_id=None if target_id is None else str(target_id)[:64],
        details=details or None,
        ip=(who.ip or None) and who.ip[:64],
        request_id=(who.request_id or None) and who.request_id[:64],
    )
    session.add(event)
    return event


def query(
    session: Session,
    *,
    user: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before_id: int | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[AuditEvent]:
    """Events matching every filter given, newest first.

    `action` matches a prefix (``workspace`` finds every ``workspace.*``); `since` is
    inclusive, `until` exclusive. Page with `before_id` (the last id of the previous page:
    stable while events are added) or `offset`; at most `MAX_LIMIT` events per call."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.")
    if offset < 0:
        raise BadRequest("offset must be 0 or more.")
    q = select(AuditEvent)
    if user is not None:
        q = q.where(AuditEvent.username == user)
    if actor is not None:
        q = q.where(AuditEvent.actor == actor)
    if action:
        q = q.where(AuditEvent.action.startswith(action, autoescape=True))
    if since is not None:
        q = q.where(AuditEvent.time >= since)
    if until is not None:
        q = q.where(AuditEvent.time < until)
    if before_id is not None:
        q = q.where(AuditEvent.id < before_id)
    q = q.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(q))


def prune(session: Session, before: dt.datetime, *, batch: int = 5000) -> int:
    """Delete the events older than `before`, oldest first in batches (each its own commit, so
    a large backlog never holds one long transaction), then record an ``audit.prune`` event
    with how many went (by the session's actor). Returns how many were deleted.

    The newest event is always kept, so event ids only grow (SQLite would otherwise hand out
    the ids of deleted events again, and readers paging with ``before`` ids would skip)."""
    newest = session.scalar(select(func.max(AuditEvent.id)))
    deleted = 0
    while newest is not None:
        last = session.scalar(
            select(func.max(AuditEvent.id)).where(
                AuditEvent.id.in_(
                    select(AuditEvent.id)
                    .where(AuditEvent.time < before, AuditEvent.id < newest)
                    .order_by(AuditEvent.id)
                    .limit(batch)
                    .scalar_subquery()
                )
            )
        )
        if last is None:
            break
        result = session.execute(
            delete(AuditEvent).where(AuditEvent.id <= last, AuditEvent.time < before)
        )
        session.commit()
        deleted += result.rowcount or 0
    if deleted:
        record(
            session,
            "audit.prune",
            user=None,
            details={"before": before.isoformat(), "events": deleted},
        )
        session.commit()
    return deleted


def as_dict(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "time": event.time,
        "actor": event.actor,
        "actor_kind": event.actor_kind,
        "user": event.username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "details": event.details or {},
        "ip": event.ip,
        "request_id": event.request_id,
    }
