"""Renewing the Globus tokens of running jobs (periodic work of the uws service).

A job started on a Globus hub gets the person's access tokens of
``c.UWSGlobusAuthenticator.job_token_resource_servers`` in an owner-only file,
``<workspace>/.jobs/job-<id>.globus-tokens.json`` (written by the spawner, see
`uws_hub.authenticators.globus`). Globus access tokens live about two days; a longer job would
lose access. Each pass here reads the live jobs from the database and each one's token file;
an entry that expires within ``token_refresh_margin`` (or whose expiry is unknown) is renewed
with the person's refresh token for that resource server — read from the hub's auth state
through the hub's REST API (the service's role has ``admin:auth_state`` on Globus hubs) — and
the file is rewritten atomically: a new file in the same directory, as the owner, mode 0600,
renamed over the old one, never through a link.

Level-triggered: the files and the job rows are the whole state, so a restart or a failed pass
loses nothing; the next pass does what is due. A file that is missing, not a regular file of the
owner, or unreadable is left alone.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..db.models import Job, JobStatus, User, Workspace
from ..errors import HubAPIError, UWSError
from ..globus_tokens import is_globus_login, job_token, token_entry
from ..identity import PosixAccount
from ..periodic import Periodic
from ..users.accounts import account_for

log = logging.getLogger("uws_hub.service")

TOKEN_FILE = "globus-tokens.json"  # the spawner's name: job-<id>.globus-tokens.json
MAX_FILE = 1024 * 1024


@dataclass(frozen=True)
class JobTokenFile:
    job_id: int
    user: str
    account: PosixAccount
    jobs_dir: str  # <workspace>/.jobs

    @property
    def name(self) -> str:
        return f"job-{self.job_id}.{TOKEN_FILE}"

    @property
    def path(self) -> str:
        return os.path.join(self.jobs_dir, self.name)


class JobTokenRenewer:
    """Every `interval` seconds, renew job token entries that expire within `margin` seconds."""

    def __init__(self, settings, db, hub, auth):
        self.settings = settings
        self.db = db
        self.hub = hub
        self.auth = auth  # a UWSGlobusAuthenticator (client id/secret, token URL, settings)
        self.interval = float(auth.job_token_renew_interval)
        self.margin = float(auth.token_refresh_margin)
        self.resource_servers = set(auth.job_token_resource_servers)
        self._renewal = Periodic(self._renew_pass, self.interval, "job token renewal pass")

    @classmethod
    def for_service(cls, settings, db, hub) -> JobTokenRenewer | None:
        """A renewer if the hub logs in with Globus and hands tokens to jobs, else None."""
        try:
            auth_class = settings.hub_authenticator_class()
        except Exception:  # noqa: BLE001 - not ours to judge: the hub reports it
            return None
        if not is_globus_login(auth_class):
            return None
        try:
            auth = auth_class(config=settings.config)
        except Exception as e:  # noqa: BLE001 - the hub reports its own authenticator's errors
            log.warning("job token renewal is off: the Globus authenticator did not load (%s)", e)
            return None
        if auth.job_token_renew_interval <= 0 or not auth.job_token_resource_servers:
            return None
        return cls(settings, db, hub, auth)

    # ---- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        self._renewal.start()

    async def stop(self) -> None:
        await self._renewal.stop()

    async def _renew_pass(self) -> None:
        renewed = await self.run_once()
        if renewed:
            log.info("renewed the Globus tokens of %d job(s)", renewed)

    async def run_once(self) -> int:
        """One pass; the number of token files rewritten."""
        files = await asyncio.to_thread(self._live_job_files)
        states: dict[str, dict | None] = {}
        fresh: dict[tuple[str, str], dict] = {}  # (user, rs) -> renewed in this pass
        renewed = 0
        for jf in files:
            current = await asyncio.to_thread(self._read, jf)
            if not current:
                continue
            now = time.time()
            due = [
                rs
                for rs, tok in current.items()
                if rs in self.resource_servers and isinstance(tok, dict) and self._due(tok, now)
            ]
            if not due:
                continue
            if jf.user not in states:
                states[jf.user] = await self._auth_state(jf.user)
            state = states[jf.user]
            if state is None:
                continue
            changed = False
            for rs in due:
                tok = fresh.get((jf.user, rs))
                if tok is None or self._due(tok, now):
                    tok = await self._renew(jf.user, state, rs)
                    if tok is None:
                        continue
                    fresh[(jf.user, rs)] = tok
                current[rs] = tok
                changed = True
            if changed and await asyncio.to_thread(self._write, jf, current):
                renewed += 1
                if not await asyncio.to_thread(self._live, jf.job_id):
                    # the job ended meanwhile (its spawner removed the file first): remove ours
                    await asyncio.to_thread(self._remove, jf)
        return renewed

    def _due(self, tok: dict, now: float) -> bool:
        expires_at = tok.get("expires_at")
        if not isinstance(expires_at, (int, float)):
            return True  # unknown expiry (a file from an older release): renew once
        return expires_at - now <= self.margin

    # ---- the database --------------------------------------------------------------------------

    def _live_job_files(self) -> list[JobTokenFile]:
        live = (JobStatus.PENDING.value, JobStatus.RUNNING.value)
        out = []
        with self.db() as session:
            rows = session.execute(
                select(Job.id, User, Workspace.file_path)
                .join(User, User.id == Job.user_id)
                .join(Workspace, Workspace.id == Job.workspace_id)
                .where(Job.status.in_(live))
                .order_by(Job.id)
            ).all()
            for job_id, owner, file_path in rows:
                try:
                    account = account_for(owner, single_account=self.settings.single_account)
                except UWSError:
                    continue
                # as the spawner checks it: the workspace lies in <root>/<account>/
                user_root = os.path.realpath(os.path.join(self.settings.root_dir, account.name))
                path = os.path.realpath(os.path.join(self.settings.root_dir, file_path or ""))
                if not file_path or os.path.dirname(path) != user_root:
                    continue
                out.append(JobTokenFile(job_id, owner.name, account, os.path.join(path, ".jobs")))
        return out

    def _live(self, job_id: int) -> bool:
        with self.db() as session:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
        return status in (JobStatus.PENDING.value, JobStatus.RUNNING.value)

    # ---- the file, as its owner, never through a link ----------------------------------------

    def _owner(self, jf: JobTokenFile):
        from ..workspaces import fsops

        return fsops.acting_as(fsops.Owner(jf.account.uid, jf.account.gid))

    def _regular_of_owner(self, st: os.stat_result, jf: JobTokenFile) -> bool:
        return stat.S_ISREG(st.st_mode) and (
            self.settings.single_account or st.st_uid == jf.account.uid
        )

    def _open_dir(self, jf: JobTokenFile) -> int:
        return os.open(jf.jobs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def _read(self, jf: JobTokenFile) -> dict | None:
        try:
            with self._owner(jf):
                dir_fd = self._open_dir(jf)
                try:
                    fd = os.open(
                        jf.name,
                        os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                        dir_fd=dir_fd,
                    )
                finally:
                    os.close(dir_fd)
            with os.fdopen(fd, "rb") as f:
                if not self._regular_of_owner(os.fstat(f.fileno()), jf):
                    log.warning(
                        "job %s: %s is not the job's own file; left alone", jf.job_id, jf.path
                    )
                    return None
                data = json.loads(f.read(MAX_FILE))
        except FileNotFoundError:
            return None  # no tokens for this job (or not written yet, or removed at its end)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                log.warning("job %s: %s is a link; left alone", jf.job_id, jf.path)
            else:
                log.warning("job %s: cannot read %s: %s", jf.job_id, jf.path, e)
            return None
        except (ValueError, UWSError) as e:
            log.warning("job %s: cannot read %s: %s", jf.job_id, jf.path, e)
            return None
        return data if isinstance(data, dict) else None

    def _write(self, jf: JobTokenFile, tokens: dict) -> bool:
        """Replace the file atomically (same path, owner, mode 0600); False if it is gone."""
        content = json.dumps(tokens, indent=1).encode()
        try:
            with self._owner(jf):
                dir_fd = self._open_dir(jf)
                try:
                    st = os.stat(jf.name, dir_fd=dir_fd, follow_symlinks=False)
                    if not self._regular_of_owner(st, jf):
                        return False
                    tmp = f".{jf.name}.{secrets.token_hex(6)}.tmp"
                    fd = os.open(
                        tmp,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                        dir_fd=dir_fd,
                    )
                    try:
                        with os.fdopen(fd, "wb") as f:
                            os.fchmod(f.fileno(), 0o600)
                            f.write(content)
                            f.flush()
                            os.fsync(f.fileno())
                        # rename replaces the name itself: a link put there is replaced, never
                        # followed
                        os.rename(tmp, jf.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    except BaseException:
                        try:
                            os.unlink(tmp, dir_fd=dir_fd)
                        except OSError:
                            pass
                        raise
                finally:
                    os.close(dir_fd)
        except FileNotFoundError:
            return False
        except (OSError, UWSError) as e:
            log.warning("job %s: cannot rewrite %s: %s", jf.job_id, jf.path, e)
            return False
        return True

    def _remove(self, jf: JobTokenFile) -> None:
        try:
            with self._owner(jf):
                dir_fd = self._open_dir(jf)
                try:
                    os.unlink(jf.name, dir_fd=dir_fd)
                finally:
                    os.close(dir_fd)
        except (OSError, UWSError):
            pass

    # ---- the hub and Globus --------------------------------------------------------------------

    async def _auth_state(self, user: str) -> dict | None:
        try:
            model = await self.hub.get_user(user)
        except HubAPIError as e:
            log.warning("cannot read the auth state of %s from the hub: %s", user, e.message)
            return None
        state = (model or {}).get("auth_state")
        if not state:
            log.info("%s has no stored Globus tokens; their jobs' tokens cannot be renewed", user)
            return None
        return state

    async def _renew(self, user: str, state: dict, rs: str) -> dict | None:
        entry = token_entry(state, rs)
        refresh = (entry or {}).get("refresh_token")
        if not refresh:
            log.info("%s has no refresh token for %s; the job's token is not renewed", user, rs)
            return None
        try:
            resp = await AsyncHTTPClient().fetch(
                HTTPRequest(
                    self.auth.token_url,
                    method="POST",
                    headers={
                        **self.auth.get_client_credential_headers(),
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                    body=urlencode({"grant_type": "refresh_token", "refresh_token": refresh}),
                    request_timeout=15,
                )
            )
            fresh = json.loads(resp.body)
            access = fresh["access_token"]
        except HTTPClientError as e:
            if e.code in (400, 401):
                log.info("%s: Globus refused the refresh token for %s (revoked?)", user, rs)
            else:
                log.warning("%s: Globus did not renew the %s token (%s); retrying", user, rs, e)
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: Globus did not renew the %s token (%s); retrying", user, rs, e)
            return None
        if fresh.get("refresh_token") and fresh["refresh_token"] != refresh:
            log.warning(
                "%s: Globus rotated the refresh token for %s; the hub's copy may no longer work "
                "(turn refresh-token rotation off for the hub's Globus client)",
                user,
                rs,
            )
        tok: dict[str, Any] = {
            "access_token": access,
            "expires_in": fresh.get("expires_in") or entry.get("expires_in") or 3600,
            "scope": fresh.get("scope") or entry.get("scope"),
            "token_type": fresh.get("token_type") or "Bearer",
        }
        return job_token(tok, time.time())
