"""A UWS site's database built for tests (`UWSSite`): the schema UWS's Django migrations leave
(uws_hub.importer.uwsschema) filled with people, identity mappings, tokens, workspaces, jobs,
invitations and quotas, as UWS writes them. Used by the importer's unit tests and, on SQLite and
PostgreSQL, by its end-to-end tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from uws_hub.importer import uwsschema as u

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class UWSSite:
    def __init__(self, engine: Engine):
        self.engine = engine
        u.create_uws_schema(engine)
        self._groups: dict[str, int] = {}

    def _insert(self, table, **row: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.insert(), row)

    def person(
        self,
        id: int,
        username: str,
        email: str = "",
        *,
        first: str = "",
        last: str = "",
        groups: tuple[str, ...] = (),
        token: str | None = None,
        active: bool = True,
    ) -> int:
        self._insert(
            u.AUTH_USER,
            id=id,
            password="!",
            is_superuser=False,
            username=username,
            first_name=first,
            last_name=last,
            email=email,
            is_staff=False,
            is_active=active,
            date_joined=T0,
        )
        for name in groups:
            if name not in self._groups:
                self._groups[name] = len(self._groups) + 1
                self._insert(u.AUTH_GROUP, id=self._groups[name], name=name)
            self._insert(u.AUTH_USER_GROUPS, user_id=id, group_id=self._groups[name])
        if token:
            self._insert(u.TOKEN, key=token, created=T0, user_id=id)
        return id

    def mapping(
        self, id: int, user_id: int, method: str, external_id: str, username: str, details=None
    ) -> int:
        self._insert(
            u.MAPPING,
            id=id,
            external_user_id=external_id,
            external_username=username,
            user_authentication_name=method,
            user_id_id=user_id,
            external_user_details=details,
        )
        return id

    def workspace(
        self,
        id: int,
        user_id: int | None,
        file_path: str,
        *,
        name: str = "",
        description: str = "",
        status: str = "idle",
        disk_space: int = 0,
        details: dict | None = None,
        default_job_type: str | None = None,
    ) -> int:
        self._insert(
            u.WORKSPACE,
            id=id,
            name=name or f"workspace {id}",
            description=description,
            file_path=file_path,
            disk_space=disk_space,
            datetime_created=T0,
            workspace_details=details
            or {"request_workspace_details": {}, "current_workspace_details": {}},
            user_id_id=user_id,
            status=status,
            default_job_type=default_job_type,
            datetime_last_modified=T0,
        )
        return id

    def job(
        self,
        id: int,
        user_id: int | None,
        workspace_id: int | None,
        status: str,
        *,
        core_hours: str = "0",
        resource_job_id: int = -1,
        job_type: str = "jupyter_lab",
        resource_name: str = "SlurmAPIResource",
        hours: float = 1.0,
    ) -> int:
        ended = status in ("complete", "failed")
        self._insert(
            u.JOB,
            id=id,
            job_type=job_type,
            resource_name=resource_name,
            status=status,
            datetime_created=T0,
            datetime_start=T0 if status != "pending" else None,
            datetime_end=T0 + dt.timedelta(hours=hours) if ended else None,
            core_hours=Decimal(core_hours),
            job_details={"current_job_details": {"message": "done" if ended else "running"}},
            workspace_id_id=workspace_id,
            resource_job_id=resource_job_id,
            user_id_id=user_id,
            resource_options={"num_cpus": 2, "time_limit_min": 120},
        )
        return id

    def share(self, id: int, original: int | None, copy: int, *, accepted: bool = False) -> int:
        self._insert(
            u.SHARE,
            id=id,
            original_workspace_id_id=original,
            shared_workspace_id_id=copy,
            is_accepted=accepted,
            datetime_share_created=T0,
            last_job_type="jupyter_lab",
            last_resource_options={"num_cpus": 1},
        )
        return id

    def quota(self, id: int, user_id: int, max_disk: int, max_core: str, used_core: str = "0"):
        self._insert(
            u.QUOTA,
            id=id,
            user_id_id=user_id,
            max_disk_space=max_disk,
            max_core_hours=Decimal(max_core),
            used_disk_space=0,
            used_core_hours=Decimal(used_core),
        )

    def end_job(self, job_id: int) -> None:
        """Job `job_id` ended in UWS (an operator lets running jobs end before the switch)."""
        with self.engine.begin() as conn:
            conn.execute(
                u.JOB.update()
                .where(u.JOB.c.id == job_id)
                .values(status="complete", datetime_end=T0 + dt.timedelta(hours=2))
            )
