"""The UWS database as `uws-hub import-uws` reads it: SQLAlchemy Core tables for the schema that
hubmapconsortium/user_workspaces_server's Django migrations 0001-0019 leave behind (plus the
Django auth and DRF authtoken tables it uses), with Django's exact table and column names.
Django names a ForeignKey's column after the field plus ``_id``; UWS's FK fields are themselves
called ``user_id``, ``workspace_id``, ``original_workspace_id`` and ``shared_workspace_id``, so
the columns are ``user_id_id``, ``workspace_id_id`` and so on. Written from
src/user_workspaces_server/migrations/*.py and models.py (a short-lived second 0018 only made
``datetime_share_created`` nullable again, as 0017 now does), django.contrib.auth's migrations
and rest_framework.authtoken's. `check_uws_schema` is the import dry run's first step;
`create_uws_schema` builds a UWS database for tests."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "AUTH_GROUP",
    "AUTH_USER",
    "AUTH_USER_GROUPS",
    "JOB",
    "MAPPING",
    "QUOTA",
    "SHARE",
    "TOKEN",
    "UWS_METADATA",
    "WORKSPACE",
    "DjangoDateTime",
    "check_uws_schema",
    "create_uws_schema",
]


class DjangoDateTime(TypeDecorator):
    """A Django DateTimeField with USE_TZ=True (UWS's setting, TIME_ZONE "UTC"): timestamptz on
    PostgreSQL; on SQLite Django stores naive UTC text. Reads give aware UTC datetimes on both;
    naive values written are taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class _JSONText(TypeDecorator):
    """JSON kept in a TEXT column, as Django's JSONField is on SQLite."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else json.dumps(value)

    def process_result_value(self, value, dialect):
        return json.loads(value) if isinstance(value, str) else value


# Django JSONField: jsonb on PostgreSQL, TEXT on SQLite; a Python None is SQL NULL
DjangoJSON = (
    JSON(none_as_null=True)
    .with_variant(JSONB(none_as_null=True), "postgresql")
    .with_variant(_JSONText(), "sqlite")
)
# BigAutoField (DEFAULT_AUTO_FIELD in UWS's settings): bigserial on PostgreSQL; Django makes it
# "integer ... AUTOINCREMENT" on SQLite, where only INTEGER PRIMARY KEY numbers rows itself
BigAuto = BigInteger().with_variant(Integer(), "sqlite")

UWS_METADATA = MetaData()


def _fk(target: str) -> ForeignKey:
    # how Django declares every FK constraint; ON DELETE is done by Django, not the database
    return ForeignKey(target, deferrable=True, initially="DEFERRED")


# django.contrib.auth: AutoField ids (integer); lengths as auth 0003/0005/0008-0010/0012 leave them
Table(
    "auth_user",
    UWS_METADATA,
    Column("id", Integer, primary_key=True),
    Column("password", String(128), nullable=False),
    Column("last_login", DjangoDateTime, nullable=True),
    Column("is_superuser", Boolean, nullable=False),
    Column("username", String(150), nullable=False, unique=True),
    Column("first_name", String(150), nullable=False),
    Column("last_name", String(150), nullable=False),
    Column("email", String(254), nullable=False),
    Column("is_staff", Boolean, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("date_joined", DjangoDateTime, nullable=False),
)

Table(
    "auth_group",
    UWS_METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(150), nullable=False, unique=True),
)

# the auto-created User.groups through table; its id follows DEFAULT_AUTO_FIELD when the table is
# first created (bigint under UWS's settings, integer on databases made before Django 3.2)
Table(
    "auth_user_groups",
    UWS_METADATA,
    Column("id", BigAuto, primary_key=True),
    Column("user_id", Integer, _fk("auth_user.id"), nullable=False),
    Column("group_id", Integer, _fk("auth_group.id"), nullable=False),
    UniqueConstraint("user_id", "group_id"),
)

# rest_framework.authtoken Token: key is the primary key; user is a OneToOneField
Table(
    "authtoken_token",
    UWS_METADATA,
    Column("key", String(40), primary_key=True),
    Column("created", DjangoDateTime, nullable=False),
    Column("user_id", Integer, _fk("auth_user.id"), nullable=False, unique=True),
)

# Columns in the order the migrations add them (the comment names the migration).
Table(
    "user_workspaces_server_workspace",
    UWS_METADATA,
    Column("id", BigAuto, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("file_path", String(64), nullable=False),
    Column("disk_space", BigInteger, nullable=False),  # 0013: was integer
    Column("datetime_created", DjangoDateTime, nullable=False),
    Column("workspace_details", DjangoJSON, nullable=False),
    Column("user_id_id", Integer, _fk("auth_user.id"), nullable=True),  # 0002
    Column("status", String(64), nullable=False),  # 0007; choices 0009, 0019
    Column("default_job_type", String(64), nullable=True),  # 0011
    Column("datetime_last_job_launch", DjangoDateTime, nullable=True),  # 0018
    Column("datetime_last_modified", DjangoDateTime, nullable=True),  # 0018
)

Table(
    "user_workspaces_server_job",
    UWS_METADATA,
    Column("id", BigAuto, primary_key=True),
    Column("job_type", String(64), nullable=False),
    Column("resource_name", String(64), nullable=False),
    Column("status", String(64), nullable=False),  # choices 0009, 0010
    Column("datetime_start", DjangoDateTime, nullable=True),  # 0005
    Column("datetime_end", DjangoDateTime, nullable=True),
    Column("core_hours", Numeric(10, 5), nullable=False),  # 0008: was integer
    Column("job_details", DjangoJSON, nullable=False),
    Column(
        "workspace_id_id", BigInteger, _fk("user_workspaces_server_workspace.id"), nullable=True
    ),
    Column("datetime_created", DjangoDateTime, nullable=False),  # 0004
    Column("resource_job_id", Integer, nullable=False),  # 0004
    Column("user_id_id", Integer, _fk("auth_user.id"), nullable=True),  # 0010 (0003 dropped 0002's)
    Column("resource_options", DjangoJSON, nullable=False),  # 0012
)

Table(
    "user_workspaces_server_userquota",
    UWS_METADATA,
    Column("id", BigAuto, primary_key=True),
    Column("max_disk_space", Integer, nullable=False),
    Column("max_core_hours", Numeric(15, 5), nullable=False),  # 0008: was integer
    Column("used_disk_space", Integer, nullable=False),  # integer still (unlike disk_space)
    Column("used_core_hours", Numeric(15, 5), nullable=False),  # 0008: was integer
    Column("user_id_id", Integer, _fk("auth_user.id"), nullable=True),  # 0002
)

Table(
    "user_workspaces_server_externalusermapping",
    UWS_METADATA,
    Column("id", BigAuto, primary_key=True),
    Column("external_user_id", String(128), nullable=False),  # 0002: was integer
    Column("external_username", String(64), nullable=False),
    Column("user_authentication_name", String(64), nullable=False),
    Column("user_id_id", Integer, _fk("auth_user.id"), nullable=True),  # 0002
    Column("external_user_details", DjangoJSON, nullable=True),  # 0006
)

Table(
    "user_workspaces_server_sharedworkspacemapping",
    UWS_METADATA,
    Column("id", BigAuto, primary_key=True),
    Column("last_resource_options", DjangoJSON, nullable=True),  # 0016: was last_params
    Column("last_job_type", String(64), nullable=True),
    Column(
        "original_workspace_id_id",
        BigInteger,
        _fk("user_workspaces_server_workspace.id"),
        nullable=True,
    ),
    Column(
        "shared_workspace_id_id",
        BigInteger,
        _fk("user_workspaces_server_workspace.id"),
        nullable=False,
    ),
    Column("is_accepted", Boolean, nullable=False),  # 0015
    Column("datetime_share_created", DjangoDateTime, nullable=True),  # 0017
)

WORKSPACE = UWS_METADATA.tables["user_workspaces_server_workspace"]
JOB = UWS_METADATA.tables["user_workspaces_server_job"]
QUOTA = UWS_METADATA.tables["user_workspaces_server_userquota"]
MAPPING = UWS_METADATA.tables["user_workspaces_server_externalusermapping"]
SHARE = UWS_METADATA.tables["user_workspaces_server_sharedworkspacemapping"]
AUTH_USER = UWS_METADATA.tables["auth_user"]
AUTH_GROUP = UWS_METADATA.tables["auth_group"]
AUTH_USER_GROUPS = UWS_METADATA.tables["auth_user_groups"]
TOKEN = UWS_METADATA.tables["authtoken_token"]


def create_uws_schema(engine: Engine | Connection) -> None:
    """Create every table above (PostgreSQL or SQLite), e.g. to build a UWS database in tests."""
    UWS_METADATA.create_all(engine)


def check_uws_schema(conn: Engine | Connection) -> list[str]:
    """What the importer cannot read in this database: one line per missing table, or per missing
    column of a table that exists. Empty when all is there; extra tables and columns are fine."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    problems: list[str] = []
    for table in UWS_METADATA.tables.values():
        if table.name not in present:
            problems.append(f"table {table.name} is missing")
            continue
        have = {column["name"] for column in inspector.get_columns(table.name)}
        problems.extend(
            f"column {table.name}.{column.name} is missing"
            for column in table.columns
            if column.name not in have
        )
    return problems
