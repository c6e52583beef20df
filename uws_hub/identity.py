"""Which POSIX account owns a user's files and runs their jobs.

The identity-mapping authenticators record the account (name, uid, gid) on the uws user; until
a user has such a record, the system account of the same name is used. In single-account mode
(the service is not root) everyone maps to the service's own account.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from .errors import AccountMissing

#: accounts below this uid are system accounts and never own workspaces (root never does)
MIN_UID = 1000


@dataclass(frozen=True)
class PosixAccount:
    name: str
    uid: int
    gid: int
    home: str = ""


def system_account(name: str) -> PosixAccount:
    try:
        pw = pwd.getpwnam(name)
    except KeyError as e:
        raise AccountMissing(
            f"There is no POSIX account {name!r} on this system to own your workspaces. "
            "Ask an administrator to create it (or to enable account creation at login)."
        ) from e
    return PosixAccount(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def service_account() -> PosixAccount:
    pw = pwd.getpwuid(os.geteuid())
    return PosixAccount(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def resolve_account(
    username: str,
    *,
    posix_name: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    single_account: bool = False,
    min_uid: int = MIN_UID,
) -> PosixAccount:
    """The account for hub user `username` (recorded mapping first, then the system account)."""
    if single_account:
        return service_account()
    if posix_name and uid is not None and gid is not None:
        acct = PosixAccount(posix_name, uid, gid)
    else:
        acct = system_account(posix_name or username)
    if acct.uid < min_uid:
        raise AccountMissing(
            f"The account {acct.name!r} (uid {acct.uid}) is a system account and cannot own workspaces; "
            "ask an administrator to map your login to a personal account."
        )
    return acct
