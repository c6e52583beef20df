"""The UWS (Django) database schema the importer reads: tables built with `create_uws_schema` keep
a realistic site's rows (JSON as dicts, decimals as Decimal, datetimes as aware UTC), a database
shaped the way Django writes it on SQLite reads the same, PostgreSQL gets Django's column types,
and `check_uws_schema` names exactly the tables and columns a site is missing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from uws_hub.importer.uwsschema import (
    AUTH_GROUP,
    AUTH_USER,
    AUTH_USER_GROUPS,
    JOB,
    MAPPING,
    QUOTA,
    SHARE,
    TOKEN,
    UWS_METADATA,
    WORKSPACE,
    check_uws_schema,
    create_uws_schema,
)

UTC = dt.timezone.utc


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


#: every table and column in migration order, as Django names them (FK field x_id: column x_id_id)
EXPECTED_COLUMNS = {
    "auth_user": [
        "id",
        "password",
        "last_login",
        "is_superuser",
        "username",
        "first_name",
        "last_name",
        "email",
        "is_staff",
        "is_active",
        "date_joined",
    ],
    "auth_group": ["id", "name"],
    "auth_user_groups": ["id", "user_id", "group_id"],
    "authtoken_token": ["key", "created", "user_id"],
    "user_workspaces_server_workspace": [
        "id",
        "name",
        "description",
        "file_path",
        "disk_space",
        "datetime_created",
        "workspace_details",
        "user_id_id",
        "status",
        "default_job_type",
        "datetime_last_job_launch",
        "datetime_last_modified",
    ],
    "user_workspaces_server_job": [
        "id",
        "job_type",
        "resource_name",
        "status",
        "datetime_start",
        "datetime_end",
        "core_hours",
        "job_details",
        "workspace_id_id",
        "datetime_created",
        "resource_job_id",
        "user_id_id",
        "resource_options",
    ],
    "user_workspaces_server_userquota": [
        "id",
        "max_disk_space",
        "max_core_hours",
        "used_disk_space",
        "used_core_hours",
        "user_id_id",
    ],
    "user_workspaces_server_externalusermapping": [
        "id",
        "external_user_id",
        "external_username",
        "user_authentication_name",
        "user_id_id",
        "external_user_details",
    ],
    "user_workspaces_server_sharedworkspacemapping": [
        "id",
        "last_resource_options",
        "last_job_type",
        "original_workspace_id_id",
        "shared_workspace_id_id",
        "is_accepted",
        "datetime_share_created",
    ],
}

ALICE = {
    "id": 7,
    "password": "!unusable-Globus-login-only",
    # a non-UTC offset: it comes back as the same instant in UTC
    "last_login": dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    "is_superuser": False,
    "username": "alice@example.org",
    "first_name": "Alice",
    "last_name": "Liddell",
    "email": "alice@example.org",
    "is_staff": False,
    "is_active": True,
    "date_joined": at(2024, 11, 2, 14, 5, 9, 123456),
}
BOB = {
    **ALICE,
    "id": 8,
    "username": "bob@example.org",
    "first_name": "Bob",
    "last_name": "",
    "email": "bob@example.org",
    "last_login": None,
}
PORTAL = {**ALICE, "id": 9, "username": "portal-ui", "first_name": "", "last_name": ""}
API_CLIENTS = {"name": "api_clients"}  # id left to the database
MAPPING_ROW = {
    "id": 3,
    "external_user_id": "5d5f8c7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
    "external_username": "alice",
    "user_authentication_name": "GlobusUserAuthentication",
    "user_id_id": 7,
    "external_user_details": {
        "sub": "5d5f8c7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
        "preferred_username": "alice@example.org",
        "email": "alice@example.org",
        "globus_groups_token": "AgXyz0123456789",
    },
}
TOKEN_ROW = {
    "key": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    "created": at(2024, 11, 2, 14, 5, 10),
    "user_id": 7,
}
DETAILS = {
    "files": [{"name": "analysis.ipynb"}, {"name": "scripts/run.py"}],
    "symlinks": [
        {"name": "datasets/HBM123.ABCD.456", "dataset_uuid": "0123456789abcdef0123456789abcdef"}
    ],
}
WORKSPACE_ROW = {
    "id": 12,
    "name": "Kidney RNA-seq",
    "description": "Clustering of snRNA-seq from two donors",
    "file_path": "alice/12",
    "disk_space": 3 * 1024**3,  # past the 32-bit range (why 0013 made it bigint)
    "datetime_created": at(2025, 1, 6, 19, 36),
    "workspace_details": {
        "request_workspace_details": DETAILS,
        "current_workspace_details": DETAILS,
    },
    "user_id_id": 7,
    "status": "idle",
    "default_job_type": "jupyter_lab",
    "datetime_last_job_launch": at(2025, 3, 1, 15, 0, 1),
    "datetime_last_modified": at(2025, 3, 1, 16, 2, 3, 500000),
}
JOB_ROW = {
    "id": 40,
    "job_type": "jupyter_lab",
    "resource_name": "SlurmAPIResource",
    "status": "complete",
    "datetime_start": at(2025, 3, 1, 15, 0, 13),
    "datetime_end": at(2025, 3, 1, 16, 15, 13),
    "core_hours": Decimal("1.25000"),
    "job_details": {
        "request_job_details": {"resource_options": {"num_cpus": 1}},
        "current_job_details": {
            "message": "Webserver ready.",
            "proxy_details": {"hostname": "node-3", "port": 51234, "path": "/passthrough/"},
            "metrics": {"time_pending": 12},
        },
    },
    "workspace_id_id": 12,
    "datetime_created": at(2025, 3, 1, 15, 0, 1),
    "resource_job_id": 1234567,
    "user_id_id": 7,
    "resource_options": {
        "num_cpus": 1,
        "memory_mb": 4096,
        "time_limit_min": 75,
        "gpu_enabled": False,
    },
}
QUOTA_ROW = {
    "id": 2,
    "max_disk_space": 2_000_000_000,
    "max_core_hours": Decimal("1000.00000"),
    "used_disk_space": 1_500_000_000,
    "used_core_hours": Decimal("1.25000"),
    "user_id_id": 7,
}


def sqlite_engine(path):
    return create_engine(f"sqlite:///{path}")


def load_site(conn) -> dict:
    """Alice's workspace shared with Bob (pending); Bob's copy gets its id from the database."""
    conn.execute(AUTH_USER.insert(), [ALICE, BOB, PORTAL])
    group_id = conn.execute(AUTH_GROUP.insert().values(API_CLIENTS)).inserted_primary_key[0]
    conn.execute(AUTH_USER_GROUPS.insert().values(user_id=9, group_id=group_id))
    conn.execute(MAPPING.insert().values(MAPPING_ROW))
    conn.execute(TOKEN.insert().values(TOKEN_ROW))
    conn.execute(WORKSPACE.insert().values(WORKSPACE_ROW))
    copy = {
        **WORKSPACE_ROW,
        "user_id_id": 8,
        "file_path": "",
        "status": "initializing",
        "default_job_type": None,
        "datetime_last_job_launch": None,
    }
    del copy["id"]
    copy_id = conn.execute(WORKSPACE.insert().values(copy)).inserted_primary_key[0]
    conn.execute(JOB.insert().values(JOB_ROW))
    conn.execute(QUOTA.insert().values(QUOTA_ROW))
    share = {
        "id": 5,
        "last_resource_options": None,
        "last_job_type": "jupyter_lab",
        "original_workspace_id_id": 12,
        "shared_workspace_id_id": copy_id,
        "is_accepted": False,
        "datetime_share_created": at(2025, 3, 2, 8, 0),
    }
    conn.execute(SHARE.insert().values(share))
    return {"group_id": group_id, "copy_id": copy_id, "share": share}


def one(conn, table, **where) -> dict:
    query = select(table).where(*(table.c[name] == value for name, value in where.items()))
    return dict(conn.execute(query).mappings().one())


def test_tables_and_columns_are_djangos():
    assert {name: [c.name for c in t.columns] for name, t in UWS_METADATA.tables.items()} == (
        EXPECTED_COLUMNS
    )
    assert [WORKSPACE.name, JOB.name, QUOTA.name, MAPPING.name, SHARE.name] == [
        "user_workspaces_server_workspace",
        "user_workspaces_server_job",
        "user_workspaces_server_userquota",
        "user_workspaces_server_externalusermapping",
        "user_workspaces_server_sharedworkspacemapping",
    ]
    assert [AUTH_USER.name, AUTH_GROUP.name, AUTH_USER_GROUPS.name, TOKEN.name] == [
        "auth_user",
        "auth_group",
        "auth_user_groups",
        "authtoken_token",
    ]
    # foreign keys point where Django's do; ON DELETE is Django's business, never the database's
    targets = {
        (fk.parent.table.name, fk.parent.name): fk.column.table.name + "." + fk.column.name
        for t in UWS_METADATA.tables.values()
        for fk in t.foreign_keys
    }
    assert targets == {
        ("auth_user_groups", "user_id"): "auth_user.id",
        ("auth_user_groups", "group_id"): "auth_group.id",
        ("authtoken_token", "user_id"): "auth_user.id",
        ("user_workspaces_server_workspace", "user_id_id"): "auth_user.id",
        ("user_workspaces_server_job", "user_id_id"): "auth_user.id",
        ("user_workspaces_server_job", "workspace_id_id"): "user_workspaces_server_workspace.id",
        ("user_workspaces_server_userquota", "user_id_id"): "auth_user.id",
        ("user_workspaces_server_externalusermapping", "user_id_id"): "auth_user.id",
        (
            "user_workspaces_server_sharedworkspacemapping",
            "original_workspace_id_id",
        ): "user_workspaces_server_workspace.id",
        (
            "user_workspaces_server_sharedworkspacemapping",
            "shared_workspace_id_id",
        ): "user_workspaces_server_workspace.id",
    }
    for t in UWS_METADATA.tables.values():
        assert all(fk.ondelete is None for fk in t.foreign_keys), t.name
        assert all(c.server_default is None for c in t.columns), t.name


@pytest.mark.parametrize(
    "table, nullable",
    [
        (
            WORKSPACE,
            {
                "user_id_id",
                "default_job_type",
                "datetime_last_job_launch",
                "datetime_last_modified",
            },
        ),
        (JOB, {"datetime_start", "datetime_end", "workspace_id_id", "user_id_id"}),
        (QUOTA, {"user_id_id"}),
        (MAPPING, {"user_id_id", "external_user_details"}),
        (
            SHARE,
            {
                "last_resource_options",
                "last_job_type",
                "original_workspace_id_id",
                "datetime_share_created",
            },
        ),
        (AUTH_USER, {"last_login"}),
        (TOKEN, set()),
    ],
)
def test_nullable_columns(table, nullable):
    assert {c.name for c in table.columns if c.nullable} == nullable


def test_postgresql_gets_djangos_column_types():
    def ddl(table):
        return " ".join(str(CreateTable(table).compile(dialect=postgresql.dialect())).split())

    workspace = ddl(WORKSPACE)
    for fragment in (
        "id BIGSERIAL NOT NULL",
        "name VARCHAR(64) NOT NULL",
        "description TEXT NOT NULL",
        "disk_space BIGINT NOT NULL",
        "datetime_created TIMESTAMP WITH TIME ZONE NOT NULL",
        "workspace_details JSONB NOT NULL",
        "user_id_id INTEGER,",
        "default_job_type VARCHAR(64),",
        "FOREIGN KEY(user_id_id) REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED",
    ):
        assert fragment in workspace
    assert "ON DELETE" not in workspace and "DEFAULT" not in workspace
    job = ddl(JOB)
    for fragment in (
        "core_hours NUMERIC(10, 5) NOT NULL",
        "resource_job_id INTEGER NOT NULL",
        "workspace_id_id BIGINT,",
        "resource_options JSONB NOT NULL",
        "datetime_end TIMESTAMP WITH TIME ZONE,",
    ):
        assert fragment in job
    quota = ddl(QUOTA)
    assert "max_core_hours NUMERIC(15, 5) NOT NULL" in quota
    assert "used_disk_space INTEGER NOT NULL" in quota
    assert "external_user_details JSONB," in ddl(MAPPING)
    share = ddl(SHARE)
    assert "shared_workspace_id_id BIGINT NOT NULL" in share
    assert "is_accepted BOOLEAN NOT NULL" in share
    user = ddl(AUTH_USER)
    assert "id SERIAL NOT NULL" in user and "UNIQUE (username)" in user
    assert "email VARCHAR(254) NOT NULL" in user
    token = ddl(TOKEN)
    assert "key VARCHAR(40) NOT NULL" in token and "PRIMARY KEY (key)" in token
    assert "user_id INTEGER NOT NULL" in token and "UNIQUE (user_id)" in token
    assert "UNIQUE (user_id, group_id)" in ddl(AUTH_USER_GROUPS)


def test_sqlite_keeps_json_as_text():
    workspace = str(CreateTable(WORKSPACE).compile(dialect=sqlite.dialect()))
    assert "workspace_details TEXT NOT NULL" in workspace
    assert "id INTEGER NOT NULL" in workspace  # so that SQLite numbers rows itself


def test_a_site_round_trips(tmp_path):
    engine = sqlite_engine(tmp_path / "uws.sqlite3")
    create_uws_schema(engine)
    with engine.begin() as conn:
        site = load_site(conn)
    with engine.connect() as conn:
        alice = one(conn, AUTH_USER, id=7)
        assert alice == ALICE  # the -05:00 login is the same instant
        assert alice["last_login"].utcoffset() == dt.timedelta(0)
        assert alice["last_login"] == at(2025, 3, 1, 14, 30)
        assert one(conn, AUTH_USER, id=8)["last_login"] is None
        assert one(conn, AUTH_GROUP, id=site["group_id"])["name"] == "api_clients"
        assert conn.execute(
            select(AUTH_USER.c.username)
            .join(AUTH_USER_GROUPS, AUTH_USER_GROUPS.c.user_id == AUTH_USER.c.id)
            .join(AUTH_GROUP, AUTH_GROUP.c.id == AUTH_USER_GROUPS.c.group_id)
            .where(AUTH_GROUP.c.name == "api_clients")
        ).scalars().all() == ["portal-ui"]
        assert one(conn, MAPPING, user_id_id=7) == MAPPING_ROW
        assert one(conn, TOKEN, user_id=7) == TOKEN_ROW

        workspace = one(conn, WORKSPACE, id=12)
        assert workspace == WORKSPACE_ROW
        files = workspace["workspace_details"]["current_workspace_details"]["files"]
        assert files[1] == {"name": "scripts/run.py"}
        assert all(
            value.tzinfo is not None
            for value in workspace.values()
            if isinstance(value, dt.datetime)
        )
        copy = one(conn, WORKSPACE, id=site["copy_id"])
        assert site["copy_id"] == 13 and copy["status"] == "initializing"
        assert copy["default_job_type"] is None

        job = one(conn, JOB, id=40)
        assert job == JOB_ROW
        assert isinstance(job["core_hours"], Decimal) and str(job["core_hours"]) == "1.25000"
        quota = one(conn, QUOTA, user_id_id=7)
        assert quota == QUOTA_ROW and str(quota["max_core_hours"]) == "1000.00000"

        share = one(conn, SHARE, id=5)
        assert share == site["share"] and share["is_accepted"] is False

        # stored as Django stores them on SQLite: JSON text, SQL NULL for None, naive UTC text
        raw = conn.execute(
            text(
                "SELECT typeof(w.workspace_details), w.datetime_created,"
                " typeof(s.last_resource_options), u.last_login"
                " FROM user_workspaces_server_workspace w, auth_user u,"
                " user_workspaces_server_sharedworkspacemapping s"
                " WHERE w.id = 12 AND u.id = 7 AND s.id = 5"
            )
        ).one()
        assert raw[0] == "text"
        assert raw[1].startswith("2025-01-06 19:36:00") and "+" not in raw[1]
        assert raw[2] == "null"
        assert raw[3].startswith("2025-03-01 14:30:00")
    assert check_uws_schema(engine) == []


def test_check_accepts_extra_tables_and_columns(tmp_path):
    engine = sqlite_engine(tmp_path / "uws.sqlite3")
    create_uws_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE django_migrations (id integer PRIMARY KEY, app text)"))
        conn.execute(text("ALTER TABLE user_workspaces_server_job ADD COLUMN site_extra text"))
        assert check_uws_schema(conn) == []


def test_check_names_a_missing_table(tmp_path):
    engine = sqlite_engine(tmp_path / "uws.sqlite3")
    create_uws_schema(engine)
    SHARE.drop(engine)
    with engine.connect() as conn:
        assert check_uws_schema(conn) == [
            "table user_workspaces_server_sharedworkspacemapping is missing"
        ]


def test_check_names_whichever_column_is_missing():
    for table in UWS_METADATA.sorted_tables:
        for missing in table.columns:
            metadata = MetaData()  # bare columns: no key may point at the one left out
            for t in UWS_METADATA.sorted_tables:
                Table(
                    t.name,
                    metadata,
                    *(Column(c.name, c.type) for c in t.columns if c is not missing),
                )
            engine = create_engine("sqlite://")
            metadata.create_all(engine)
            with engine.connect() as conn:
                assert check_uws_schema(conn) == [f"column {table.name}.{missing.name} is missing"]


def test_check_on_an_empty_database_names_every_table(tmp_path):
    with sqlite_engine(tmp_path / "empty.sqlite3").connect() as conn:
        assert check_uws_schema(conn) == [f"table {name} is missing" for name in EXPECTED_COLUMNS]


# The workspace and job tables as Django's SQLite backend writes them (its column types, JSON
# CHECKs, columns in the order its table remakes leave them), the workspace one from a site that
# never got migration 0011 (no default_job_type)
DJANGO_SQLITE_WORKSPACE = """
CREATE TABLE "user_workspaces_server_workspace" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "name" varchar(64) NOT NULL,
    "description" text NOT NULL,
    "file_path" varchar(64) NOT NULL,
    "datetime_created" datetime NOT NULL,
    "workspace_details" text NOT NULL
        CHECK ((JSON_VALID("workspace_details") OR "workspace_details" IS NULL)),
    "user_id_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED,
    "status" varchar(64) NOT NULL,
    "disk_space" bigint NOT NULL,
    "datetime_last_job_launch" datetime NULL,
    "datetime_last_modified" datetime NULL
)"""
DJANGO_SQLITE_JOB = """
CREATE TABLE "user_workspaces_server_job" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "job_type" varchar(64) NOT NULL,
    "resource_name" varchar(64) NOT NULL,
    "datetime_end" datetime NULL,
    "job_details" text NOT NULL CHECK ((JSON_VALID("job_details") OR "job_details" IS NULL)),
    "workspace_id_id" bigint NULL
        REFERENCES "user_workspaces_server_workspace" ("id") DEFERRABLE INITIALLY DEFERRED,
    "datetime_created" datetime NOT NULL,
    "resource_job_id" integer NOT NULL,
    "datetime_start" datetime NULL,
    "core_hours" decimal NOT NULL,
    "status" varchar(64) NOT NULL,
    "user_id_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED,
    "resource_options" text NOT NULL
        CHECK ((JSON_VALID("resource_options") OR "resource_options" IS NULL))
)"""


def test_check_names_a_missing_column_and_django_rows_read(tmp_path):
    engine = sqlite_engine(tmp_path / "django.sqlite3")
    UWS_METADATA.create_all(
        engine, tables=[t for t in UWS_METADATA.sorted_tables if t not in (WORKSPACE, JOB)]
    )
    with engine.begin() as conn:
        conn.execute(text(DJANGO_SQLITE_WORKSPACE))
        conn.execute(text(DJANGO_SQLITE_JOB))
        # values as Django writes them: naive UTC text (no microseconds when there are none),
        # json.dumps text, and a Decimal through sqlite3's str adapter
        conn.execute(
            text(
                "INSERT INTO user_workspaces_server_workspace VALUES (12, 'Kidney', '',"
                " 'alice/12', '2025-01-06 19:36:00', :details, 7, 'active', 3221225472,"
                " '2025-03-01 15:00:01.250000', NULL)"
            ),
            {"details": '{"request_workspace_details": {"files": [], "symlinks": []}}'},
        )
        conn.execute(
            text(
                "INSERT INTO user_workspaces_server_job VALUES (40, 'jupyter_lab',"
                " 'LocalResource', NULL, '{}', 12, '2025-03-01 15:00:01', -1, NULL,"
                " '1.25000', 'pending', 7, '{\"num_cpus\": 2}')"
            )
        )
    with engine.connect() as conn:
        assert check_uws_schema(conn) == [
            "column user_workspaces_server_workspace.default_job_type is missing"
        ]
        columns = [c for c in WORKSPACE.columns if c.name != "default_job_type"]
        workspace = dict(conn.execute(select(*columns)).mappings().one())
        assert workspace["datetime_created"] == at(2025, 1, 6, 19, 36)
        assert workspace["datetime_last_job_launch"] == at(2025, 3, 1, 15, 0, 1, 250000)
        assert workspace["datetime_last_modified"] is None
        assert workspace["workspace_details"] == {
            "request_workspace_details": {"files": [], "symlinks": []}
        }
        assert workspace["disk_space"] == 3 * 1024**3
        job = one(conn, JOB, id=40)
        assert job["core_hours"] == Decimal("1.25000") and isinstance(job["core_hours"], Decimal)
        assert job["datetime_created"] == at(2025, 3, 1, 15, 0, 1)
        assert job["job_details"] == {} and job["resource_options"] == {"num_cpus": 2}
        assert job["datetime_start"] is None and job["resource_job_id"] == -1
