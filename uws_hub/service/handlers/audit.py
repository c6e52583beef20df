"""/api/audit: the audit log for operators (``custom:uws:read:audit``), newest first."""

from __future__ import annotations

from ... import audit, scopes
from ...errors import BadRequest
from ...times import parse_range
from .base import BaseHandler, endpoint


class AuditHandler(BaseHandler):
    user_arg_names_person = False  # ?user= filters whose events are read
    """Filters: ``user`` (whose resource), ``actor``, ``action`` (a prefix), ``from``
    (inclusive), ``to`` (exclusive). Pages: ``limit`` (at most 1000), then ``before`` (the
    ``next_before`` of the previous page) or ``offset``."""

    def _before(self) -> int | None:
        value = self.get_query_argument("before", None)
        if not value:
            return None
        try:
            return int(value)
        except ValueError as e:
            raise BadRequest(f"before must be a whole number, not {value!r}.") from e

    @endpoint
    async def get(self) -> None:
        user = self.get_query_argument("user", None) or None
        # a grant filtered to some users (custom:uws:read:audit!user=alice) reads theirs only
        self.require_scope(scopes.READ_AUDIT, user)
        limit, offset = self.paging(default=100, most=audit.MAX_LIMIT)
        since, until = parse_range(
            self.get_query_argument("from", None), self.get_query_argument("to", None)
        )
        events = audit.query(
            self.db,
            user=user,
            actor=self.get_query_argument("actor", None) or None,
            action=self.get_query_argument("action", None) or None,
            since=since,
            until=until,
            before_id=self._before(),
            offset=offset,
            limit=limit,
        )
        self.ok(
            "Successful." if events else "No audit events match.",
            {
                "events": [audit.as_dict(e) for e in events],
                "next_before": events[-1].id if len(events) == limit else None,
            },
        )
