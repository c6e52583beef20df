"""The uws database on SQLite and PostgreSQL: migrations build exactly the models' schema, with
their own version table, and the service runs on PostgreSQL end to end."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from conftest import Client, empty_answer, workspace_dir
from hubtest import REPO
from uws_hub.db import migrate
from uws_hub.db.models import AuditEvent, Base, Job, User, Workspace, utcnow
from uws_hub.db.session import make_engine, make_sessionmaker


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("UWS_TEST_PG_URL")
    if not url:
        subprocess.run([str(REPO / "scripts" / "pg.sh"), "start"], check=True)
        url = subprocess.run(
            [str(REPO / "scripts" / "pg.sh"), "url"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return url


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"uws_test_{secrets.token_hex(4)}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    for attempt in range(20):  # an autovacuum worker in it (not ours to end) finishes soon
        try:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            break
        except ProgrammingError as e:
            if "pg_signal_backend" not in str(e) or attempt == 19:
                raise
            time.sleep(0.5)
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/uws.sqlite"
    return request.getfixturevalue("pg_url")


def test_migrations_match_models(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert [
        d for d in diff if not (d[0] == "remove_table" and d[1].name == migrate.VERSION_TABLE)
    ] == []
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert "uws_alembic_version" in tables and "alembic_version" not in tables
    assert {t for t in tables if not t.startswith("uws_")} == set()
    migrate.upgrade(engine)  # idempotent
    engine.dispose()


def test_own_version_table_leaves_the_hubs_alone(db_url):
    """uws may share a database with JupyterHub: the hub's alembic_version is not touched."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('4621fec11365')"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "4621fec11365"
        )
    engine.dispose()


def test_types_round_trip(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    Session = make_sessionmaker(engine)
    when = dt.datetime(2026, 5, 17, 8, 30, 1, 123000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with Session() as s:
        u = User(name="round-trip", workspaces_version=2**40)
        s.add(u)
        s.flush()
        w = Workspace(
            user_id=u.id,
            name="w",
            status="idle",
            disk_space=5 * 2**40,  # 5 TiB: beyond 32 bits
            datetime_created=when,
            workspace_details={"current_workspace_details": {"files": [{"name": "ü.txt"}]}},
            pending_details=None,
        )
        s.add(w)
        s.commit()
        wid = w.id
    with Session() as s:
        w = s.get(Workspace, wid)
        assert w.disk_space == 5 * 2**40
        assert w.datetime_created == when and w.datetime_created.tzinfo is not None
        assert w.workspace_details["current_workspace_details"]["files"][0]["name"] == "ü.txt"
        assert w.pending_details is None
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM uws_workspaces WHERE pending_details IS NULL")
            ).scalar()
            == 1
        )
    engine.dispose()


def test_downgrade_and_upgrade_again(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    from alembic import command

    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert {t for t in inspect(engine).get_table_names() if t != "uws_alembic_version"} == set()
    migrate.upgrade(engine)
    assert "uws_workspaces" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.fixture(scope="module")
def pg_hub(pg_admin_url, hub_factory):
    name = f"uws_hub_{secrets.token_hex(4)}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    hub = hub_factory("pg", env={"UWS_TEST_DB_URL": url})
    yield hub
    hub_factory.release(hub)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_service_on_postgresql(pg_hub):
    alice = Client.of(pg_hub, "uwst-alice")
    # the database's kind is an operator's to read (anyone else sees the boolean)
    status = Client.of(pg_hub, "uwst-admin").get("status/").json()
    assert status["dependencies"]["database"] == {"connected": True, "message": "postgresql"}
    r = alice.post(
        "workspaces/",
        json={
            "name": "pg",
            "description": "on postgres",
            "workspace_details": {"files": [{"name": "a.txt", "content": "A"}]},
        },
    )
    assert r.status_code == 200, r.text
    ws = r.json()["data"]["workspace"]
    assert ws["status"] == "idle"
    r = alice.put(f"workspaces/{ws['id']}/upload/", files={"f": ("b.txt", b"B")})
    assert r.status_code == 200
    r = alice.put(f"workspaces/{ws['id']}/", json={"name": "pg2"})
    assert r.json()["data"]["workspace"]["name"] == "pg2"
    d = workspace_dir(pg_hub, "uwst-alice", ws["id"])
    assert sorted(os.listdir(d)) == ["a.txt", "b.txt"]
    assert [w["name"] for w in alice.get("workspaces/").json()["data"]["workspaces"]] == ["pg2"]
    assert alice.delete(f"workspaces/{ws['id']}").status_code == 200
    # (the directory goes first, then the record: wait for the record)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not empty_answer(
        alice.get(f"workspaces/{ws['id']}"), "workspaces"
    ):
        time.sleep(0.1)
    assert empty_answer(alice.get(f"workspaces/{ws['id']}"), "workspaces")
    assert not d.exists()


# ---- row locks on PostgreSQL: a job that ends while the service acts on it stays ended -------


@pytest.fixture
def pg_domain(pg_url, tmp_path):
    """The service's domain (tests/unit/domain.py) on a fresh PostgreSQL database: over its
    disk limit a job is stopped at once (no grace)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from unit.domain import Domain
    finally:
        sys.path.remove(str(REPO / "tests"))
    with Domain(tmp_path, db_url=pg_url, disk_quota_action="stop", disk_quota_grace=0.0) as d:
        yield d


def running_job(d, name: str, *, over: bool = False) -> int:
    """A running job of `name`, started an hour ago, in a workspace over the disk limit."""
    user = d.user(name, email=f"{name}@example.org")
    with d.db() as session:
        d.quotas.set_limits(session, session.merge(user), {"disk_limit": 1000})
        session.commit()
    ws = d.create_workspace(user)
    job = d.start_job(user, ws)
    with d.db() as session:
        session.get(Workspace, ws.id).disk_space = 5000 if over else 0
        row = session.get(Job, job.id)
        row.status, row.datetime_start = "running", utcnow() - dt.timedelta(hours=1)
        session.commit()
    return job.id


def ends_while_locked(d, job_id: int) -> tuple[threading.Thread, threading.Event]:
    """The job manager ends job `job_id` in a transaction that holds its row for half a second."""
    locked = threading.Event()

    def end() -> None:
        with d.db() as session:
            row = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
            locked.set()
            time.sleep(0.5)
            row.status, row.datetime_end = "complete", utcnow()
            session.commit()

    t = threading.Thread(target=end)
    t.start()
    assert locked.wait(10)
    return t, locked


def stop_events(d) -> list[AuditEvent]:
    with d.db() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "job.stop")))


def test_the_disk_watch_leaves_a_job_that_ended_meanwhile_ended(pg_domain):
    d = pg_domain
    job_id = running_job(d, "alice", over=True)
    t, _ = ends_while_locked(d, job_id)
    stops = d.diskwatch.check(None)  # waits for the job's row, then sees it ended
    t.join()
    assert stops == [] and stop_events(d) == []
    assert d.fresh(Job, job_id).status == "complete"
    # a job still running is stopped, as the action says
    other = running_job(d, "bob", over=True)
    assert [s[1] for s in d.diskwatch.check(None)] == [other]
    assert d.fresh(Job, other).status == "stopping"


def test_a_deleted_persons_job_that_ended_meanwhile_stays_ended(pg_domain):
    d = pg_domain
    job_id = running_job(d, "alice")
    with d.db() as session:
        session.get(User, session.get(Job, job_id).user_id).deleted_at = utcnow()
        session.commit()
    t, _ = ends_while_locked(d, job_id)
    stops, *_ = d.user_deletions._leftovers(utcnow())
    t.join()
    assert stops == [] and stop_events(d) == []
    assert d.fresh(Job, job_id).status == "complete"


def test_the_uws_schema_builds_and_reads_on_postgresql(pg_url):
    """The UWS database as the importer reads it (uws_hub.importer.uwsschema), on PostgreSQL as
    UWS runs in production: jsonb, timestamptz, numeric come back as they went in."""
    from decimal import Decimal

    from uws_hub.importer import uwsschema as u

    engine = create_engine(pg_url)
    u.create_uws_schema(engine)
    when = dt.datetime(2025, 3, 1, 12, 30, tzinfo=dt.timezone.utc)
    details = {"request_workspace_details": {"files": [{"name": "a.txt"}], "symlinks": []}}
    with engine.begin() as conn:
        conn.execute(
            u.AUTH_USER.insert(),
            {
                "id": 7, "password": "!", "is_superuser": False, "username": "alice",
                "first_name": "A", "last_name": "L", "email": "a@x.org", "is_staff": False,
                "is_active": True, "date_joined": when,
            },
        )  # fmt: skip
        conn.execute(
            u.WORKSPACE.insert(),
            {
                "id": 41, "name": "w", "description": "d", "file_path": "alice/41",
                "disk_space": 5 * 1024**3, "datetime_created": when,
                "workspace_details": details, "user_id_id": 7, "status": "idle",
            },
        )  # fmt: skip
        conn.execute(
            u.JOB.insert(),
            {
                "id": 9, "job_type": "jupyter_lab", "resource_name": "SlurmAPIResource",
                "status": "complete", "core_hours": Decimal("1.25000"), "job_details": {},
                "workspace_id_id": 41, "datetime_created": when, "resource_job_id": 4711,
                "user_id_id": 7, "resource_options": {"num_cpus": 2},
            },
        )  # fmt: skip
    with engine.connect() as conn:
        assert u.check_uws_schema(conn) == []
        ws = conn.execute(u.WORKSPACE.select()).one()
        assert ws.workspace_details == details and ws.disk_space == 5 * 1024**3
        assert ws.datetime_created == when
        job = conn.execute(u.JOB.select()).one()
        assert job.core_hours == Decimal("1.25000") and job.resource_options == {"num_cpus": 2}
        kinds = dict(
            conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'user_workspaces_server_workspace'"
                )
            ).all()
        )
    assert kinds["workspace_details"] == "jsonb" and kinds["disk_space"] == "bigint"
    assert kinds["datetime_created"] == "timestamp with time zone"
    engine.dispose()
