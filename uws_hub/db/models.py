"""The uws database schema (own declarative Base; never the hub's).

The whole schema is here from the start — users, external identities, workspaces, jobs, shares,
quotas, notifications and the audit log — so later capabilities add behaviour, not reshuffles.
Sizes and usage are 64-bit integers (bytes, core-seconds). Datetimes are stored as UTC.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false as sa_false

# none_as_null: a Python None is SQL NULL, not the JSON text "null"
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class WorkspaceStatus(str, enum.Enum):
    INITIALIZING = "initializing"
    IDLE = "idle"
    ACTIVE = "active"
    DELETING = "deleting"
    ERROR = "error"
    #: internal: the directory is gone; the row stays for job history and usage reports
    DELETED = "deleted"


class JobStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETE = "complete"
    FAILED = "failed"


LIVE_JOB_STATUSES = (JobStatus.PENDING.value, JobStatus.RUNNING.value, JobStatus.STOPPING.value)


class User(Base):
    """A hub user as uws knows them, with the POSIX account that owns their files."""

    __tablename__ = "uws_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(150))
    last_name: Mapped[str | None] = mapped_column(String(150))
    posix_name: Mapped[str | None] = mapped_column(String(64))
    uid: Mapped[int | None] = mapped_column(Integer)
    gid: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_activity: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: bumped whenever any of the user's workspaces changes; keys the listing cache
    workspaces_version: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    #: when the person was deleted from the hub: the row is then a tombstone named
    #: ``<name>~deleted-<id>`` that keeps their history (see `uws_hub.users.deletions`)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: the hub's user list has named this person at least once: only such a person missing
    #: from it later counts as deleted there (a row made with ``?user=`` for someone the hub
    #: does not have yet is left alone)
    hub_seen: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=sa_false()
    )

    identities: Mapped[list[ExternalIdentity]] = relationship(back_populates="user")


class ExternalIdentity(Base):
    """Who a user is at an identity source (Globus, LDAP, account API, local) and which account."""

    __tablename__ = "uws_external_identities"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_identity_source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("uws_users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    external_username: Mapped[str | None] = mapped_column(String(255))
    uid: Mapped[int | None] = mapped_column(Integer)
    gid: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict | None] = mapped_column(JSONType)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    user: Mapped[User] = relationship(back_populates="identities")


class Workspace(Base):
    __tablename__ = "uws_workspaces"
    __table_args__ = (Index("ix_uws_workspaces_user_status", "user_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("uws_users.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    #: relative to c.UWS.root_dir: "<posix user>/<id>"
    file_path: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    disk_space: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    file_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    datetime_created: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False
    )
    datetime_last_modified: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False
    )
    datetime_last_job_launch: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    datetime_scanned: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    datetime_deleted: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: {"request_workspace_details": {...}, "current_workspace_details": {...}}
    workspace_details: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    #: internal: what initialization still has to write (file contents), cleared once done
    pending_details: Mapped[dict | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    status_message: Mapped[str | None] = mapped_column(Text)
    default_job_type: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class Job(Base):
    __tablename__ = "uws_jobs"
    __table_args__ = (
        Index("ix_uws_jobs_user_status", "user_id", "status"),
        Index("ix_uws_jobs_workspace_status", "workspace_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("uws_users.id"), nullable=False)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("uws_workspaces.id"), nullable=False)
    job_type: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the resource/profile that runs it, e.g. "local" or "slurm:debug"
    resource: Mapped[str] = mapped_column(String(128), nullable=False, default="local")
    resource_job_id: Mapped[int | None] = mapped_column(BigInteger)
    #: the Slurm cluster (c.UWS.slurm_clusters id) that ran it; None for a local job
    cluster: Mapped[str | None] = mapped_column(String(64))
    server_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    status_message: Mapped[str | None] = mapped_column(Text)
    datetime_created: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False
    )
    datetime_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    datetime_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cpus: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    time_limit_s: Mapped[int | None] = mapped_column(BigInteger)
    #: core-seconds used (exact); core_hours in the API is this / 3600
    core_seconds: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    host: Mapped[str | None] = mapped_column(String(255))
    resource_options: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    job_details: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    #: the job's named server has been removed from the hub (after the job ended)
    server_removed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=sa_false()
    )
    #: the service has counted this job's start in its metrics (or it ended without starting):
    #: kept in the row, so a restart of the service never counts a start twice
    start_observed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=sa_false(), index=True
    )

    workspace: Mapped[Workspace] = relationship()


class SharedWorkspace(Base):
    """An invitation: the recipient's copy (shared_workspace) of the sender's original."""

    __tablename__ = "uws_shared_workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("uws_workspaces.id", ondelete="SET NULL"), index=True
    )
    shared_workspace_id: Mapped[int] = mapped_column(
        ForeignKey("uws_workspaces.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    sender_id: Mapped[int] = mapped_column(ForeignKey("uws_users.id"), nullable=False, index=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("uws_users.id"), nullable=False, index=True
    )
    is_accepted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    datetime_share_created: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False
    )
    datetime_share_accepted: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_job_type: Mapped[str | None] = mapped_column(String(64))
    last_resource_options: Mapped[dict | None] = mapped_column(JSONType)
    #: pending | copying | done | failed
    copy_status: Mapped[str] = mapped_column(String(32), nullable=False, default="pending")
    copy_files_total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    copy_files_done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    copy_bytes_total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    copy_bytes_done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    copy_error: Mapped[str | None] = mapped_column(Text)


class UserQuota(Base):
    """Per-user limits (None: the site default) and the usage last computed."""

    __tablename__ = "uws_user_quotas"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("uws_users.id", ondelete="CASCADE"), primary_key=True
    )
    disk_limit: Mapped[int | None] = mapped_column(BigInteger)
    core_seconds_limit: Mapped[int | None] = mapped_column(BigInteger)
    disk_used: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    core_seconds_used: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    #: the disk level last told to the person: 0 (under 90 %), 90 or 100 (see uws_hub.diskwatch)
    disk_level: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    #: when the disk usage reached `disk_level` (the grace period runs from here)
    disk_level_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """Outgoing e-mail, sent and retried by the service (an outbox: a mail failure never blocks)."""

    __tablename__ = "uws_notifications"
    __table_args__ = (Index("ix_uws_notifications_pending", "sent", "next_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(998), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    related: Mapped[dict | None] = mapped_column(JSONType)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    sent: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """A user-visible action, for operators: who (`actor`) did what (`action`, e.g.
    ``workspace.create``) to which resource (`target_type`, `target_id`) of whom (`username`).

    Written in the same transaction as the change it records (see `uws_hub.audit`)."""

    __tablename__ = "uws_audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False, index=True
    )
    #: the hub name of who did it (a user or a service), or the operator's account for the CLI
    actor: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    #: user | service | cli | system
    actor_kind: Mapped[str] = mapped_column(
        String(16), nullable=False, default="user", server_default="user"
    )
    #: whose resource it is (a hub user name); None for actions about no one's resource
    username: Mapped[str | None] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict | None] = mapped_column(JSONType)
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))


class IdempotencyKey(Base):
    """A creating call made with an ``Idempotency-Key`` header, and its answer once given.

    Keyed by who called (`scope`: the caller's hub name, or a hash of the credential for token
    exchanges), the route (`route`, e.g. ``PUT /workspaces/{id}/start/``) and the client's key.
    `request_hash` tells a replay (same request) from a reuse of the key for another request.
    While the call runs, `status` is None and `boot` names the service process running it; a
    row left by a process that died is taken over by the next try. See `uws_hub.idempotency`."""

    __tablename__ = "uws_idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "route", "key", name="uq_idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(300), nullable=False)
    route: Mapped[str] = mapped_column(String(100), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    boot: Mapped[str] = mapped_column(String(32), nullable=False)
    #: the answer: None while the call runs
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: what the call changed, written in the same transaction as the change: the audit events'
    #: ``[{action, target_type, target_id}]`` (a call cut short by a crash can be answered)
    effect: Mapped[list | None] = mapped_column(JSONType)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
