"""The uws user record of a hub user, the POSIX account that owns their files and runs their
jobs, and finding people by name. Used by the service (workspaces, shares, quotas, the users
API) and by the hub's spawners, so each question has one answer."""

from __future__ import annotations

from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import Session

from ..db.models import User, utcnow
from ..errors import NotFound
from ..identity import PosixAccount, resolve_account


def user_for(session: Session, name: str) -> User:
    """The uws user row for hub user `name`, created (and flushed) on first sight; a person
    deleted from the hub (a tombstone's name) is 404."""
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and user.deleted_at is not None:
        raise NotFound(f"User {name} not found.", detail="This person was deleted from the hub.")
    if user is None:
        user = User(name=name, created=utcnow())
        session.add(user)
        session.flush()
    return user


def account_for(user: User, *, single_account: bool = False) -> PosixAccount:
    """The POSIX account of `user`: the one recorded at login by the identity mapping, else the
    system account of the same name (the service's own in single-account mode). Raises
    `AccountMissing` (a 403 saying whom to ask) when there is none."""
    return resolve_account(
        user.name,
        posix_name=user.posix_name,
        uid=user.uid,
        gid=user.gid,
        single_account=single_account,
    )


def search_users(
    session: Session,
    term: str,
    limit: int,
    *,
    exclude: set[str | None] = frozenset(),
    by_email: bool = True,
) -> list[User]:
    """People whose user name, first or last name, "first last" or (`by_email`) e-mail
    contains `term` (case-insensitive), at most `limit`, without those named in `exclude`."""
    like = "%" + term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    full = func.lower(func.coalesce(User.first_name, "") + " " + func.coalesce(User.last_name, ""))
    return list(
        session.scalars(
            select(User)
            .where(
                or_(
                    func.lower(User.name).like(like, escape="\\"),
                    full.like(like, escape="\\"),
                    func.lower(func.coalesce(User.email, "")).like(like, escape="\\")
                    if by_email
                    else false(),
                ),
                User.name.not_in([n for n in exclude if n]),
                User.deleted_at.is_(None),  # people deleted from the hub are not found
            )
            .order_by(User.name)
            .limit(limit)
        )
    )
