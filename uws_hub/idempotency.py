"""Idempotency keys: a client that retries a creating call does not create twice.

A call made with an ``Idempotency-Key`` header is recorded before it runs (who asked, the route,
the key, a hash of the request) and its answer is kept once given, in the uws database, for
`c.UWS.idempotency_window_hours`. Another call with the same key then:

- the same request, answered already: gets the first answer again, and nothing is done again;
- the same request, still running: 409 (retry in a moment);
- a different request: 422 (a key names one request);
- after the window: runs as a new call.

A call that ended in a server error (5xx) keeps no answer: its retry runs again. A row left
running by a service process that died (its `boot` is not this process's) is taken over by the
next try of the same request — knowing what the cut-short call changed: `track` writes the
audit events of the call's changes into its row in the same transaction as the changes, so the
retry answers from what was done instead of doing it again (`Takeover.effect`). No HTTP here:
the service's handlers call `begin`, `track`, `finish`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .db.models import AuditEvent, IdempotencyKey, utcnow
from .errors import BadRequest, UWSError, ValidationFailed

#: this service process: rows it leaves running are stale once it is gone
BOOT = secrets.token_hex(8)
MAX_KEY = 255


@dataclass
class Replay:
    """The first answer to a request, to send again."""

    status: int
    content_type: str | None
    body: bytes


@dataclass
class Takeover:
    """A call left running by a process that died, now this call's: `effect` is what it had
    changed (audit events ``{action, target_type, target_id}``), empty if nothing."""

    row: int
    effect: list[dict]


_ROW, _EFFECT, _COMMITTED = "uws_idempotency_row", "uws_idempotency_effect", "uws_idempotency_done"


def track(session: Session, row: int) -> None:
    """Record in `row`, within each transaction of `session` that commits changes, the audit
    events of those changes (see `Takeover`)."""
    session.info[_ROW] = row
    session.info[_EFFECT] = []
    event.listen(session, "after_flush", _collect)
    event.listen(session, "before_commit", _write)
    event.listen(session, "after_rollback", _forget)


def _collect(session: Session, _context) -> None:
    for obj in session.new:
        if isinstance(obj, AuditEvent):
            session.info[_EFFECT].append(
                {"action": obj.action, "target_type": obj.target_type, "target_id": obj.target_id}
            )


def _forget(session: Session) -> None:
    # what was flushed and rolled back did not happen; what was committed is in the row
    session.info[_EFFECT] = list(session.info.get(_COMMITTED, []))


def _write(session: Session) -> None:
    session.flush()  # the transaction's last changes (and their audit events) first
    if session.info.get(_EFFECT):
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == session.info[_ROW])
            .values(effect=list(session.info[_EFFECT]))
        )
        session.info[_COMMITTED] = list(session.info[_EFFECT])


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY or not all(32 <= ord(c) < 127 for c in key):
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters (a UUID is a "
            "good choice)."
        )
    return key


def _conflict(message: str) -> UWSError:
    """409 with ``Retry-After``: the key is busy now, a retry in a moment will do."""
    return UWSError(message, status_code=409, headers={"Retry-After": "1"})


class IdempotencyStore:
    def __init__(self, db: sessionmaker[Session], window_hours: float):
        self.db = db
        self.window = dt.timedelta(hours=window_hours)
        #: rows whose calls this process is carrying out now; a row of this process that is not
        #: here lost its answer (the database failed while it was being recorded)
        self.in_flight: set[int] = set()

    def begin(self, scope: str, route: str, key: str, request_hash: str) -> int | Replay | Takeover:
        """Record the start of a call: its row id (a new call), the Replay of its first answer,
        or a Takeover of a call a dead process left. Raises 409 while the same request runs,
        422 for another request with this key."""
        check_key(key)
        for _ in range(5):
            with self.db() as session:
                row = session.scalar(
                    select(IdempotencyKey).where(
                        IdempotencyKey.scope == scope,
                        IdempotencyKey.route == route,
                        IdempotencyKey.key == key,
                    )
                )
                now = utcnow()
                if row is None:
                    found = self._insert(session, scope, route, key, request_hash, now)
                else:
                    found = self._resume(session, row, key, request_hash, now)
                if found is not None:
                    return found
        raise _conflict(f"Idempotency-Key {key!r} is contended; retry in a moment.")

    def _insert(
        self, session: Session, scope: str, route: str, key: str, request_hash: str, now
    ) -> int | None:
        """The id of a new row for the call, or None when another call inserted the same key
        at the same moment (look again)."""
        row = IdempotencyKey(
            scope=scope,
            route=route,
            key=key,
            request_hash=request_hash,
            boot=BOOT,
            created=now,
            expires=now + self.window,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return None
        self.in_flight.add(row.id)
        return row.id

    def _resume(
        self, session: Session, row: IdempotencyKey, key: str, request_hash: str, now
    ) -> Replay | Takeover | None:
        """What a call with the key of `row` gets: the first answer again, or the takeover of
        a call left running; None when the row expired (now deleted) or another call took it
        over first (look again)."""
        if row.expires <= now:  # the window passed: a new call
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row.id))
            session.commit()
            return None
        if row.request_hash != request_hash:
            raise ValidationFailed(
                f"Idempotency-Key {key!r} was used for a different request (another "
                "body, path or query) within the last "
                f"{self.window.total_seconds() / 3600:g} hours; use a new key for a new "
                "request."
            )
        if row.status is not None:
            return Replay(row.status, row.content_type, row.body or b"")
        if row.boot == BOOT and row.id in self.in_flight:
            raise _conflict(
                f"A request with Idempotency-Key {key!r} is still being carried out; "
                "retry in a moment to get its answer."
            )
        # left running by a process that died (or by a call of this one whose answer
        # could not be recorded): this try takes it over
        taken = session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.id == row.id,
                IdempotencyKey.boot == row.boot,
                IdempotencyKey.status.is_(None),
            )
            .values(boot=BOOT, created=now, expires=now + self.window)
        )
        session.commit()
        if taken.rowcount != 1:
            return None
        self.in_flight.add(row.id)
        return Takeover(row.id, list(row.effect or []))

    def finish(self, row_id: int, status: int, content_type: str | None, body: bytes) -> None:
        """Keep the answer of the call `row_id` (a server error keeps none: it may be retried)."""
        self.in_flight.discard(row_id)
        with self.db() as session:
            if status >= 500:
                session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
            else:
                session.execute(
                    update(IdempotencyKey)
                    .where(IdempotencyKey.id == row_id)
                    .values(status=status, content_type=content_type, body=body)
                )
            session.commit()

    def prune(self) -> int:
        """Delete keys whose window has passed; the number deleted."""
        with self.db() as session:
            res = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires <= utcnow()))
            session.commit()
            return res.rowcount or 0
