"""/api/users: people search for share dialogs, quotas (own and, for operators, everyone's),
and the usage report."""

from __future__ import annotations

from sqlalchemy import select

from ... import scopes
from ...db.models import User
from ...errors import BadRequest, NotFound
from ...quotas import report_csv
from ...times import parse_range
from ...users.accounts import search_users, user_for
from .base import BaseHandler, endpoint

SEARCH_LIMIT = 20


NO_USERS = "Users matching given parameters could not be found."


class UserSearchHandler(BaseHandler):
    @endpoint
    async def get(self) -> None:
        self.require_scope(scopes.SEARCH_USERS)
        term = (self.get_query_argument("search", "") or "").strip()
        if len(term) < 2:
            # the portal's autocomplete first calls with an empty term: an empty answer, not an error
            self.ok(NO_USERS, {"users": []}, detail="Type at least 2 characters to search.")
            return
        # as UWS: never the caller (nor the account named admin)
        exclude = {self._hub_user.get("name"), "admin"}
        shows_email = self.ctx.settings.search_shows_email
        rows = search_users(self.db, term, SEARCH_LIMIT, exclude=exclude, by_email=shows_email)
        users = [
            {
                "id": u.id,
                "username": u.name,
                "first_name": u.first_name or "",
                "last_name": u.last_name or "",
                "email": (u.email or "") if shows_email else "",
            }
            for u in rows
        ]
        self.ok("Successful." if users else NO_USERS, {"users": users})


class QuotaHandler(BaseHandler):
    def _target(self, name: str, scope: str) -> User:
        own = name == "me" or name == self._hub_user.get("name")
        if name == "me":
            name = self.acting_username()
        self.require_scope(scope, name)
        if own:
            user = user_for(self.db, name)  # known from the first request
            self.db.commit()
            return user
        user = self.db.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"User {name} not found.")
        return user

    @endpoint
    async def get(self, name: str) -> None:
        user = self._target(name, scopes.READ_QUOTA)
        self.ok("Successful.", self.ctx.quotas.describe(self.db, user))

    @endpoint
    async def put(self, name: str) -> None:
        self.require_scope(scopes.ADMIN_QUOTAS)
        user = self._target(name, scopes.ADMIN_QUOTAS)
        changes = self.ctx.quotas.parse_limits(self.json_body())
        self.ctx.quotas.set_limits(self.db, user, changes)
        self.db.commit()
        self.ok(f"Limits of {user.name} updated.", self.ctx.quotas.describe(self.db, user))


class QuotasHandler(BaseHandler):
    """Everyone's usage and limits (operators)."""

    @endpoint
    async def get(self) -> None:
        self.require_scope(scopes.ADMIN_QUOTAS)
        self.ok("Successful.", {"quotas": self.ctx.quotas.describe_all(self.db)})


class UsageHandler(BaseHandler):
    """Core-hours per user and workspace over a date range (operators); ``format=csv``."""

    @endpoint
    async def get(self) -> None:
        self.require_scope(scopes.ADMIN_QUOTAS)
        fmt = self.get_query_argument("format", "") or "json"
        if fmt not in ("json", "csv"):
            raise BadRequest(f"format must be json or csv, not {fmt!r}.")
        start, end = parse_range(
            self.get_query_argument("from", None), self.get_query_argument("to", None)
        )
        user = None
        if name := self.get_query_argument("user", None):
            user = self.db.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"User {name} not found.")
        rows = self.ctx.quotas.report(self.db, start, end, user)
        if fmt == "csv":
            self.set_header("Content-Type", "text/csv; charset=UTF-8")
            self.set_header("Content-Disposition", 'attachment; filename="uws-usage.csv"')
            self.finish(report_csv(rows))
            return
        self.ok("Successful.", {"usage": rows})
