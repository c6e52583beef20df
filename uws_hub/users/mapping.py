"""Identity mapping: every login ends at exactly one POSIX/cluster account.

An identity source (Globus, LDAP, an account API, the machine's own accounts, a trusted portal)
says who a person is; `map_identity` turns that into a uws user with one POSIX account and
records the external identity. The rules:

- **The same person always lands on the same user.** An identity is keyed by (source, external
  id) — Globus's ``sub``, the directory's uid, the account service's id — not by a name that
  can change or be reused; once recorded, it always resolves to the same user.
- **Two people never share an account.** Names proposed by a source that is not authoritative
  for accounts (Globus, portals) are made canonical: ``alice@uni-a.edu`` becomes ``alice`` only
  for the site's own domains (`AccountMapping.home_domains`), otherwise ``alice-uni-a``, and a
  name already held by someone else gets a numeric suffix (``alice-gmail-2``). Sources that
  are authoritative for accounts (LDAP, the account API) name the account themselves; if that
  account is already linked to a different identity of the same source, the login is refused.
- The POSIX account must exist with the uid the source reports, or is created with
  ``useradd`` when `AccountMapping.create_accounts` allows it; otherwise the person gets a
  message saying whom to ask.

These functions block (database, ``pwd``, ``useradd``): call them with ``asyncio.to_thread``.
They are used by the authenticators in the hub and by the service's token endpoint.
"""

from __future__ import annotations

import datetime as dt
import grp
import logging
import os
import pwd
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import Configurable

from ..db.models import ExternalIdentity, User, utcnow
from ..identity import service_account

log = logging.getLogger("uws_hub.identity")

NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class IdentityRefused(Exception):
    """A login or token request that cannot be mapped; `message` tells the person what to do."""

    def __init__(self, message: str, status_code: int = 403):
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass
class Identity:
    """What an identity source says about a person."""

    source: str  # "globus", "ldap", "account-api", "local", "dev", "portal", ...
    external_id: str  # stable at the source: Globus sub, directory uid, account id
    external_username: str = ""  # e.g. alice@uni-a.edu
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    #: the account name, when the source is authoritative for accounts (LDAP, account API)
    posix_name: str | None = None
    uid: int | None = None
    gid: int | None = None
    groups: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MappedUser:
    name: str  # the hub user name (== the POSIX account name)
    posix_name: str
    uid: int | None
    gid: int | None
    user_id: int
    created: bool


class AccountMapping(Configurable):
    """How identities become POSIX accounts (``c.AccountMapping.*``), for every login method."""

    create_accounts = Bool(
        False,
        help="""Create the POSIX account with ``useradd`` when a person logs in for the first time
        and the account does not exist (only when the hub runs as root). With a uid/gid from the
        identity source (LDAP ``uidNumber``/``gidNumber``, the account API) the account gets
        exactly those; the group is created too when missing. Off: the account must exist
        (e.g. from the site's directory through NSS) and a person without one is told whom to
        ask.""",
    ).tag(config=True)

    useradd_command = List(
        Unicode(),
        ["useradd", "--create-home", "--shell", "/bin/bash"],
        help="""The command that creates an account; ``--uid``/``--gid`` and the name are
        appended.""",
    ).tag(config=True)

    home_domains = List(
        Unicode(),
        [],
        help="""E-mail-style domains whose user names are this site's own account names: with
        ``["uni-a.edu"]``, ``alice@uni-a.edu`` maps to account ``alice``. Names from any other
        domain keep a sign of it (``alice@gmail.com`` → ``alice-gmail``), so two people with the
        same local part never share an account (Globus's default strips the domain).""",
    ).tag(config=True)

    min_uid = Integer(
        1000,
        help="""Accounts below this uid are system accounts and never own workspaces; a name that
        is one gets a suffix instead, a directory entry that points at one is refused.""",
    ).tag(config=True)

    admin_contact = Unicode(
        "the administrators of this hub",
        help="""Who to ask, named in refusal messages ("ask …").""",
    ).tag(config=True)


def canonical_name(external_username: str, home_domains: list[str]) -> str:
    """A POSIX-safe account name for `external_username` (see the module docs)."""
    local, _, domain = (external_username or "").strip().lower().partition("@")
    local = re.sub(r"[^a-z0-9_-]+", "-", local).strip("-") or "user"
    suffix = ""
    if domain and domain not in {d.lower() for d in home_domains}:
        label = re.sub(r"[^a-z0-9]+", "", domain.split(".")[0]) or "ext"
        suffix = "-" + label[:12]
    name = local[: 32 - len(suffix)].rstrip("-") + suffix
    if not re.match(r"[a-z_]", name):
        name = ("u" + name)[:32]
    return name


def _with_counter(name: str, n: int) -> str:
    tail = f"-{n}"
    return name[: 32 - len(tail)] + tail


# ---- POSIX accounts ---------------------------------------------------------------------------


def _system_account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_account(
    settings: AccountMapping, name: str, uid: int | None, gid: int | None, single_account: bool
) -> tuple[int | None, int | None]:
    """Make sure account `name` exists (with `uid`/`gid` when given); return its uid, gid."""
    if single_account:
        return uid, gid
    pw = _system_account(name)
    if pw is not None:
        if uid is not None and pw.pw_uid != uid:
            raise IdentityRefused(
                f"Your account {name!r} has uid {pw.pw_uid} on this system but {uid} in your "
                f"identity source; ask {settings.admin_contact} to reconcile them."
            )
        if pw.pw_uid < settings.min_uid:
            raise IdentityRefused(
                f"{name!r} is a system account and cannot own workspaces; ask "
                f"{settings.admin_contact} to map your login to a personal account."
            )
        return pw.pw_uid, gid if gid is not None else pw.pw_gid
    if not settings.create_accounts or os.geteuid() != 0:
        raise IdentityRefused(
            f"There is no account {name!r} on this system for your files and jobs yet; ask "
            f"{settings.admin_contact} to create it."
        )
    if uid is not None and uid < settings.min_uid:
        raise IdentityRefused(
            f"Your identity source gives uid {uid} for {name!r}, a system uid; ask "
            f"{settings.admin_contact}."
        )
    cmd = list(settings.useradd_command)
    if uid is not None:
        cmd += ["--uid", str(uid)]
    if gid is not None:
        try:
            grp.getgrgid(gid)
        except KeyError:
            group = name if not _group_exists(name) else f"{name}-{gid}"
            _run(["groupadd", "--gid", str(gid), group])
        cmd += ["--gid", str(gid)]
    elif _group_exists(name):
        cmd += ["--gid", name]
    _run(cmd + [name])
    pw = _system_account(name)
    if pw is None:
        raise IdentityRefused(
            f"Creating the account {name!r} failed; ask {settings.admin_contact}."
        )
    log.info("created POSIX account %s (uid %s, gid %s)", name, pw.pw_uid, pw.pw_gid)
    return pw.pw_uid, pw.pw_gid


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _run(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.error("%s: %s", " ".join(cmd), e)
        raise IdentityRefused(
            "Your account could not be created right now; try again later.", status_code=503
        ) from e
    if proc.returncode != 0:
        log.error("%s failed (%s): %s", " ".join(cmd), proc.returncode, proc.stderr.strip())
        raise IdentityRefused(
            "Your account could not be created (the system refused); the administrators have "
            "the details in the hub log."
        )


# ---- the mapping ----------------------------------------------------------------------------------


def map_identity(
    db: sessionmaker[Session],
    settings: AccountMapping,
    ident: Identity,
    *,
    also: list[Identity] | None = None,
    single_account: bool = False,
) -> MappedUser:
    """Resolve (or create) the user and account for `ident`; record it and `also` (other
    identities of the same person seen in the same login, e.g. the Globus login behind an
    account-API lookup). Raises `IdentityRefused`."""
    for attempt in range(3):
        try:
            return _map_once(db, settings, ident, also or [], single_account)
        except IntegrityError:
            # two first logins of the same person at once: the other one recorded it
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def predict_name(db: sessionmaker[Session], settings: AccountMapping, ident: Identity) -> str:
    """The hub name `ident` has (or would get at its first login), changing nothing: allow,
    block and admin lists then speak of account names, as everywhere else in JupyterHub."""
    with db() as session:
        row = _find(session, ident)
        if row is not None:
            return row.user.name
        try:
            return _claim(session, settings, ident).name
        finally:
            session.rollback()


def _map_once(
    db: sessionmaker[Session],
    settings: AccountMapping,
    ident: Identity,
    also: list[Identity],
    single_account: bool,
) -> MappedUser:
    with db() as session:
        row = _find(session, ident)
        created = False
        if row is not None:
            user = row.user
            if (
                not single_account  # there every user's account is the service's own
                and ident.posix_name
                and user.posix_name
                and ident.posix_name != user.posix_name
            ):
                raise IdentityRefused(
                    f"Your identity at {ident.source} now names account {ident.posix_name!r}, but "
                    f"you have used {user.posix_name!r} here; ask {settings.admin_contact}."
                )
        else:
            user = _claim(session, settings, ident)
            created = user.id is None
        if single_account:
            # every login works as the account the service runs as: record that one (as the
            # workspace code does), whatever account name the identity proposes
            acct = service_account()
            name, uid, gid = acct.name, acct.uid, acct.gid
        else:
            name = user.posix_name or user.name
            uid, gid = ensure_account(
                settings,
                name,
                ident.uid if ident.uid is not None else (user.uid if row is not None else None),
                ident.gid if ident.gid is not None else (user.gid if row is not None else None),
                single_account,
            )
        now = utcnow()
        if user.id is None:
            session.add(user)
        user.posix_name = name
        user.uid, user.gid = uid, gid
        for key in ("email", "first_name", "last_name"):
            value = getattr(ident, key)
            if value:
                setattr(user, key, value[:320] if key == "email" else value[:150])
        user.last_activity = now
        session.flush()
        for i in [ident, *also]:
            _record(session, user, i, now)
        session.commit()
        return MappedUser(user.name, name, uid, gid, user.id, created)


def _find(session: Session, ident: Identity) -> ExternalIdentity | None:
    return session.scalar(
        select(ExternalIdentity).where(
            ExternalIdentity.source == ident.source,
            ExternalIdentity.external_id == str(ident.external_id),
        )
    )


def _record(session: Session, user: User, ident: Identity, now: dt.datetime) -> None:
    row = _find(session, ident)
    if row is None:
        row = ExternalIdentity(
            user_id=user.id, source=ident.source, external_id=str(ident.external_id), created=now
        )
        session.add(row)
    elif row.user_id != user.id:
        raise IdentityRefused(
            f"Your {ident.source} identity {ident.external_username or ident.external_id} is "
            f"already linked to another account here; ask the administrators."
        )
    row.external_username = (ident.external_username or None) and ident.external_username[:255]
    row.uid, row.gid = ident.uid, ident.gid
    row.details = _jsonable(ident.details)
    row.updated = now


def _jsonable(details: dict) -> dict:
    out = {}
    for k, v in (details or {}).items():
        if isinstance(v, (str, int, float, bool, type(None), list, dict)):
            out[str(k)] = v
    return out


def _holders(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def _claim(session: Session, settings: AccountMapping, ident: Identity) -> User:
    """The user a first-seen identity becomes (not yet added to the session when new)."""
    if ident.posix_name:
        name = ident.posix_name.strip().lower()
        if not NAME_RE.match(name):
            raise IdentityRefused(
                f"Your account name {ident.posix_name!r} from {ident.source} cannot be used as a "
                f"POSIX account name; ask {settings.admin_contact}."
            )
        user = _holders(session, name)
        if user is not None:
            rival = session.scalar(
                select(ExternalIdentity).where(
                    ExternalIdentity.user_id == user.id, ExternalIdentity.source == ident.source
                )
            )
            if rival is not None:
                raise IdentityRefused(
                    f"The account {name!r} is already linked to a different {ident.source} "
                    f"identity; ask {settings.admin_contact}."
                )
            return user
        return User(name=name, created=utcnow())
    proposed = ident.external_username or str(ident.external_id)
    base = canonical_name(proposed, settings.home_domains)
    domain = proposed.lower().partition("@")[2]
    home = bool(domain) and domain in {d.lower() for d in settings.home_domains}
    for n in range(1, 1000):
        name = base if n == 1 else _with_counter(base, n)
        user = _holders(session, name)
        if user is not None:
            sources = {i.source for i in user.identities}
            if not sources:
                return user  # known before identities were recorded (e.g. an older release)
            if n == 1 and home and ident.source not in sources:
                return user  # the site's own account name, seen through another login method
            continue
        pw = _system_account(name)
        if pw is not None and pw.pw_uid < settings.min_uid:
            continue  # "root@uni-a.edu" is not root
        return User(name=name, created=utcnow())
    raise IdentityRefused(f"No free account name for you; ask {settings.admin_contact}.")
