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
next try of the same request. No HTTP here: the service's handlers call `begin`, `finish`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .db.models import IdempotencyKey, utcnow
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


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY or not all(32 <= ord(c) < 127 for c in key):
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters (a UUID is a "
            "good choice)."
        )
    return key


class IdempotencyStore:
    def __init__(self, db: sessionmaker[Session], window_hours: float):
        self.db = db
        self.window = dt.timedelta(hours=window_hours)

    def begin(self, scope: str, route: str, key: str, request_hash: str) -> int | Replay:
        """Record the start of a call; its row id, or the Replay of its first answer.
        Raises 409 while the same request runs, 422 for another request with this key."""
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
                    except IntegrityError:  # the same key, at the same moment: look again
                        session.rollback()
                        continue
                    return row.id
                if row.expires <= now:  # the window passed: a new call
                    session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row.id))
                    session.commit()
                    continue
                if row.request_hash != request_hash:
                    raise ValidationFailed(
                        f"Idempotency-Key {key!r} was used for a different request (another "
                        "body, path or query) within the last "
                        f"{self.window.total_seconds() / 3600:g} hours; use a new key for a new "
                        "request."
                    )
                if row.status is not None:
                    return Replay(row.status, row.content_type, row.body or b"")
                if row.boot == BOOT:
                    raise UWSError(
                        f"A request with Idempotency-Key {key!r} is still being carried out; "
                        "retry in a moment to get its answer.",
                        status_code=409,
                        headers={"Retry-After": "1"},
                    )
                # left running by a process that died: this try takes it over
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
                if taken.rowcount == 1:
                    return row.id
        raise UWSError(
            f"Idempotency-Key {key!r} is contended; retry in a moment.",
            status_code=409,
            headers={"Retry-After": "1"},
        )

    def finish(self, row_id: int, status: int, content_type: str | None, body: bytes) -> None:
        """Keep the answer of the call `row_id` (a server error keeps none: it may be retried)."""
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
