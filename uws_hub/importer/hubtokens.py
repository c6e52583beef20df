"""People's UWS tokens carried over as JupyterHub tokens (`carry_tokens`), in the hub's own
database through JupyterHub's ORM, so that scripts and the portal keep their tokens on
switch-over day, and every imported person made a hub user (`ensure_hub_users`). Run while the
hub is stopped (as the import is), after the hub has started
once with uws_hub's configuration (its roles and the ``user`` role's uws scopes are then in its
database).

A carried token keeps its value (JupyterHub stores tokens hashed; ``APIToken.new(token=...)``
takes a given one) and is limited to the uws API: ``access:services!service=<uws>`` and the
person's own ``custom:uws:*`` scopes (`uws_hub.scopes.token_api_scopes`), nothing of the hub's own
API. A person the hub does not know yet is made a hub user with the default roles.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from jupyterhub import orm, roles
from jupyterhub import scopes as hub_scopes
from sqlalchemy.orm import Session

from ..scopes import ADMIN_TOKENS, CUSTOM_SCOPES, token_api_scopes

NOTE = "UWS token (imported)"


@dataclass
class TokenResult:
    made: list[str]  # people whose token was stored
    kept: list[str]  # already there for them (an earlier run)
    refused: list[tuple[str, str]]  # (person, why)


def define_scopes() -> None:
    """uws_hub's custom scopes, as the hub defines them at start (needed to store tokens)."""
    hub_scopes.define_custom_scopes(
        {k: v for k, v in CUSTOM_SCOPES.items() if k not in hub_scopes.scope_definitions}
    )


def token_owner(db: Session, token: str) -> str | None:
    """The hub user (or service) a token value already belongs to, or None."""
    found = orm.APIToken.find(db, token)
    if found is None:
        return None
    return found.user.name if found.user is not None else f"service {found.service.name}"


def _new_hub_user(db: Session, name: str) -> orm.User:
    """A hub user `name` with the default roles, as the hub makes one (not committed)."""
    user = orm.User(name=name)
    db.add(user)
    db.flush()
    roles.assign_default_roles(db, user)
    return user


def ensure_hub_users(db: Session, names: list[str]) -> list[str]:
    """Make each person a hub user (with the default roles) unless the hub has them; one
    commit. Returns the names made. (A hub that admits only the users it has, with
    ``allow_existing_users``, then lets them in.)"""
    made = []
    for name in sorted(set(names)):
        if orm.User.find(db, name) is None:
            _new_hub_user(db, name)
            made.append(name)
    db.commit()
    return made


def carry_tokens(
    db: Session, tokens: dict[str, str], service_name: str, clients: Container[str] = ()
) -> TokenResult:
    """Store each person's (hub name -> token value) token as theirs, limited to the uws API
    (and, for `clients` — UWS's trusted clients, who hold the ``uws-token-client`` role —
    exchanging user_info for people's tokens); one commit. A token the hub already has for
    someone else is refused, not moved; so is one its person may not hold (the hub says why)."""
    define_scopes()
    result = TokenResult([], [], [])
    for name, token in sorted(tokens.items()):
        scopes = token_api_scopes(service_name) + ([ADMIN_TOKENS] if name in clients else [])
        owner = token_owner(db, token)
        if owner == name:
            result.kept.append(name)
            continue
        if owner is not None:
            result.refused.append((name, f"the hub already has this token for {owner}"))
            continue
        user = orm.User.find(db, name) or _new_hub_user(db, name)
        try:
            orm.APIToken.new(token=token, user=user, scopes=scopes, note=NOTE)
        except ValueError as e:  # scopes the person does not have
            db.rollback()
            result.refused.append((name, str(e)))
            continue
        result.made.append(name)
    db.commit()
    return result
