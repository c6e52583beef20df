"""Engine and sessions for the uws database, and the SQL query counter."""

from __future__ import annotations

from functools import lru_cache
from itertools import chain
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .models import Job, SharedWorkspace, User, Workspace

SQL_QUERIES = Counter("uws_db_queries", "SQL statements executed by the uws service")


@lru_cache(maxsize=8)
def _shared(db_url: str, kwargs_key: tuple) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(db_url, **dict(kwargs_key)))


def shared_sessions(db_url: str, db_kwargs: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """One session factory (and engine, with its pool) per database for the whole process: the
    hub's spawners and authenticators share it instead of opening an engine per call."""
    return _shared(db_url, tuple(sorted((db_kwargs or {}).items())))


def make_engine(db_url: str, **kwargs: Any) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            if url.database and url.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    else:
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args):
        SQL_QUERIES.inc()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "before_flush", _bump_listing_versions)
    return factory


def _bump_listing_versions(session: Session, _ctx, _instances) -> None:
    """Bump ``User.workspaces_version`` of every user whose listing this flush changes.

    The listing cache is keyed by that version, so a change is visible at once. The increment
    is done in SQL (``version = version + 1``), so concurrent writers never reuse a version.
    Core UPDATE statements bypass this hook and must call `bump_listing_version` themselves.
    """
    users: set[int] = set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Workspace) and (obj not in session.dirty or session.is_modified(obj)):
            if obj.user_id is not None:
                users.add(obj.user_id)
        elif isinstance(obj, SharedWorkspace):
            users.update(u for u in (obj.recipient_id, obj.sender_id) if u is not None)
        elif isinstance(obj, Job) and obj.user_id is not None:
            # the listing shows each workspace's last job: its status and times
            if obj in session.new or obj in session.deleted or _changed(obj, _LISTED_JOB_FIELDS):
                users.add(obj.user_id)
    for uid in users:
        with session.no_autoflush:
            user = session.get(User, uid)
        if user is not None:
            user.workspaces_version = User.workspaces_version + 1


_LISTED_JOB_FIELDS = ("status", "job_type", "resource", "datetime_start", "datetime_end")


def _changed(obj: Any, fields: tuple[str, ...]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def bump_listing_version(session: Session, user_id: int) -> None:
    from sqlalchemy import update

    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(workspaces_version=User.workspaces_version + 1)
    )
