"""The domain wired as `uws_hub.service.app.ServiceContext` wires it — settings, a database,
the managers — on a temporary directory, with a fake hub instead of the hub's REST API.

No root, hub, Slurm or network: everyone maps to the account running the tests
(``c.UWS.single_account``), workspaces live under ``tmp_path``, the database is a SQLite file
there (a file, not ``sqlite://``: the copy threads open their own connections). The ``domain``
and ``alice`` fixtures of conftest.py build it with the default settings; a module that needs
others makes its own ``domain`` from `Domain`. The managers' coroutines run with `Domain.run`.

The fake hub lives only here; tests/e2e/ runs the same behaviours against a real hub.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from uws_hub.config import UWS
from uws_hub.db.models import AuditEvent, Base, User, Workspace
from uws_hub.db.session import make_engine, make_sessionmaker
from uws_hub.domain import build_domain
from uws_hub.errors import HubAPIError
from uws_hub.identity import service_account
from uws_hub.jobs.specs import StartSpec
from uws_hub.users.accounts import user_for
from uws_hub.workspaces.specs import WorkspaceSpec
from uws_hub.workspaces.work import PendingWork

T = TypeVar("T")

#: the account every hub user maps to here (c.UWS.single_account)
ACCOUNT = service_account()


def make_settings(tmp_path: Path, **overrides: Any) -> UWS:
    """c.UWS of a small site under `tmp_path`: one account for everyone, workspaces in
    ``tmp_path/root``, a local resource and a (never used) Slurm one, JupyterLab the default
    job type, mail "on" (queued in the outbox, never sent: nothing starts the mailer)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "root_dir": str(root),
        "single_account": True,
        "db_url": f"sqlite:///{tmp_path / 'uws.sqlite'}",
        "fs_workers": 2,
        "share_copy_workers": 1,
        "smtp_host": "mail.invalid",
        "resources": {
            "local": {"kind": "local", "name": "This server", "max_cpus": 8},
            "cluster": {"kind": "slurm", "name": "Cluster", "partition": "debug"},
        },
        "job_types": {
            "jupyter_lab": {"name": "JupyterLab", "resources": ["local", "cluster"]},
            "batch": {"name": "Batch", "resources": ["cluster"]},
        },
        "default_job_type": "jupyter_lab",
    }
    settings.update(overrides)
    return UWS(**settings)


class FakeHub:
    """The hub's REST API as `uws_hub.service.hubclient.HubClient` offers it (same methods,
    same signatures, `HubAPIError` where the real one raises it), kept in memory.

    `servers` are the active servers ((user, name) -> the hub's server model), `named` every
    named server the hub knows (a stopped one stays until removed). `refuse_start` makes the
    next starts fail as the hub would answer; `hold_start` keeps them waiting until it is set;
    `refuse_users` makes the user listing fail. `users` are the hub's users (name -> model).
    `calls` records what was asked, in order."""

    def __init__(self) -> None:
        self.token = "fake-service-token"  # the service's token, as job servers would check it
        self.users: dict[str, dict] = {}
        self.servers: dict[tuple[str, str], dict] = {}
        self.named: set[tuple[str, str]] = set()
        self.shares: dict[tuple[str, str], list[dict]] = {}
        self.calls: list[tuple] = []
        self.refuse_start: HubAPIError | None = None
        self.refuse_listing: HubAPIError | None = None
        self.refuse_users: HubAPIError | None = None
        self.hold_start: asyncio.Event | None = None

    # ---- test controls -----------------------------------------------------------------

    def lose(self, user: str, server: str) -> None:
        """The server stops without anyone asking (the process died, the hub restarted)."""
        self.servers.pop((user, server), None)

    def started(self) -> list[tuple[str, str, dict]]:
        return [c[1:] for c in self.calls if c[0] == "start"]

    def stopped(self) -> list[tuple[str, str, bool]]:
        return [c[1:] for c in self.calls if c[0] == "stop"]

    # ---- HubClient's methods -----------------------------------------------------------

    async def info(self) -> dict:
        return {"version": "5.0.0-fake"}

    async def get_user(self, name: str) -> dict | None:
        return self.users.get(name)

    async def start_server(self, user: str, server: str, options: dict) -> None:
        self.calls.append(("start", user, server, options))
        if self.hold_start is not None:
            await self.hold_start.wait()
        if self.refuse_start is not None:
            raise self.refuse_start
        self.named.add((user, server))
        self.servers[(user, server)] = {"name": server, "ready": True, "user_options": options}

    async def stop_server(self, user: str, server: str, *, remove: bool = False) -> bool:
        self.calls.append(("stop", user, server, remove))
        if (user, server) not in self.named:
            return False  # the hub's 404
        self.servers.pop((user, server), None)
        if remove:
            self.named.discard((user, server))
        return True

    async def list_users(self, page_size: int = 200) -> list[dict]:
        self.calls.append(("users",))
        if self.refuse_users is not None:
            raise self.refuse_users
        return [dict(u) for u in self.users.values()]

    async def active_servers(self, page_size: int = 200) -> dict[tuple[str, str], dict]:
        self.calls.append(("list",))
        if self.refuse_listing is not None:
            raise self.refuse_listing
        return dict(self.servers)

    async def list_shares(self, user: str, server: str) -> list[dict]:
        return list(self.shares.get((user, server), []))

    async def grant_share(self, user: str, server: str, target: dict) -> dict:
        if (user, server) not in self.named:
            raise HubAPIError(404, f"No such server: {user}/{server}")
        self.shares.setdefault((user, server), []).append(target)
        return {"server": {"name": server, "user": {"name": user}}, **target}

    async def revoke_share(self, user: str, server: str, target: dict) -> None:
        shares = self.shares.get((user, server), [])
        if target in shares:
            shares.remove(target)


class RecordedWork(PendingWork):
    """`PendingWork` that remembers which workspaces it was told about."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int | None] = []

    def recorded(self, ws_id: int | None = None) -> None:
        self.ids.append(ws_id)
        super().recorded(ws_id)


class Domain:
    """Settings, database and managers as the service builds them, on `tmp_path`."""

    def __init__(self, tmp_path: Path, **settings: Any):
        self.tmp_path = tmp_path
        self.settings = make_settings(tmp_path, **settings)
        self.engine = make_engine(self.settings.db_url)
        Base.metadata.create_all(self.engine)
        self.db = make_sessionmaker(self.engine)
        self.executor = ThreadPoolExecutor(self.settings.fs_workers, thread_name_prefix="t-fs")
        self.hub = FakeHub()
        wired = build_domain(self.settings, self.db, self.executor, self.hub, work=RecordedWork())
        self.quotas, self.notifier, self.work = wired.quotas, wired.notifier, wired.work
        self.share_copies, self.workspaces = wired.share_copies, wired.workspaces
        self.shares, self.jobs = wired.shares, wired.jobs
        self.rescans, self.diskwatch = wired.rescans, wired.diskwatch
        self.user_deletions = wired.user_deletions
        self.sessions, self.session_watch = wired.sessions, wired.session_watch

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.share_copies.executor.shutdown(wait=True)
        self.engine.dispose()

    def __enter__(self) -> Domain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)

    # ---- people and workspaces -----------------------------------------------------------

    def user(self, name: str, email: str | None = None) -> User:
        """Hub user `name` as uws knows them (created on first sight, as a login does)."""
        with self.db() as session:
            user = user_for(session, name)
            if email is not None:
                user.email = email
            session.commit()
            return user

    def spec(self, body: Any, *, creating: bool = True) -> WorkspaceSpec:
        """A create (or update) request body as a handler parses it."""
        return WorkspaceSpec.parse(
            body,
            creating=creating,
            job_types=self.settings.job_type_map,
            symlink_roots=list(self.settings.symlink_roots),
        )

    def create_workspace(
        self,
        owner: User,
        files: dict[str, str | bytes] | None = None,
        *,
        name: str = "analysis",
        description: str = "A workspace",
        **fields: Any,
    ) -> Workspace:
        """A workspace of `owner`, created through the manager (idle, its files on disk)."""
        body = {"name": name, "description": description, **fields}
        if files is not None:
            body["workspace_details"] = details(files)
        with self.db() as session:
            user = session.get(User, owner.id)
            return self.run(self.workspaces.create(session, user, self.spec(body)))

    def start_job(self, owner: User, ws: Workspace, **body: Any):
        """A job started through the manager in `ws` (the fake hub starts its server)."""
        with self.db() as session:
            user = session.get(User, owner.id)
            return self.run(
                self.jobs.start(session, user, session.get(Workspace, ws.id), StartSpec.parse(body))
            )

    def fresh(self, model: type[T], key: Any) -> T | None:
        """Row `key` of `model` as the database has it now."""
        with self.db() as session:
            return session.get(model, key)

    def listed(self, owner: User, **filters: str) -> list[int]:
        """Ids of the workspaces `owner` sees in their listing."""
        with self.db() as session:
            user = session.get(User, owner.id)
            return list(
                session.scalars(
                    self.workspaces.list_query(user, filters).with_only_columns(Workspace.id)
                )
            )

    def path(self, ws: Workspace) -> Path:
        """The workspace's directory (from the row as the database has it now)."""
        row = self.fresh(Workspace, ws.id)
        assert row is not None and row.file_path
        return Path(self.settings.root_dir) / row.file_path


def details(files: dict[str, str | bytes], **more: Any) -> dict:
    """``workspace_details`` of a request: text as is, bytes base64-encoded."""
    return {
        "files": [
            {"name": n, "content": base64.b64encode(c).decode(), "encoding": "base64"}
            if isinstance(c, bytes)
            else {"name": n, "content": c}
            for n, c in files.items()
        ],
        **more,
    }


def files_on_disk(directory: Path) -> dict[str, bytes]:
    """Every regular file below `directory`, by relative path, with its contents."""
    out = {}
    for dirpath, _dirs, names in os.walk(directory):
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(directory))] = p.read_bytes()
    return out


def allocated_bytes(directory: Path) -> int:
    """What ``du -s --block-size=1`` says of `directory`: allocated bytes, hard links once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, names in os.walk(directory):
        for name in [".", *dirs, *names] if dirpath == str(directory) else [*dirs, *names]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def audit_actions(session: Session) -> list[str]:
    """The audit log's actions, oldest first."""
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
