"""Switching a UWS site to uws_hub on PostgreSQL (issue 15; docs/operations.md "Switching a UWS
site"): ``uws-hub import-uws`` reads a UWS database on PostgreSQL through UWS's own settings
files and moves its directories into the hub's root. The dry run reports every conflict exactly
and changes nothing; the real run keeps ids, owners and links; a second run changes nothing;
the switched hub serves the people with their UWS tokens and gives ids past every id UWS gave.

The same site on SQLite is imported into the contract suite's hub (tests/contract/launch_hub.py),
where the whole UWS contract suite and tests/contract/test_imported.py run against it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from test_db import pg_admin_url, pg_url  # noqa: F401  (fixtures)
from uwsimport import (
    ANN,
    BEN,
    CY,
    DELETED_WORKSPACE_ID,
    HUB_CONFIG,
    LARGEST_JOB_ID,
    LARGEST_WORKSPACE_ID,
    RUNNING_IN_42,
    UWSSite,
    build_site,
    gave_and_deleted,
    import_uws,
)

from conftest import Client
from hubtest import world_dir
from jobutil import server_base, started, stop_and_wait
from uws_hub.db.models import Workspace
from uws_hub.db.session import make_engine


@pytest.fixture
def uws_pg(pg_admin_url):  # noqa: F811
    """A second fresh PostgreSQL database: UWS's (uws_hub's is `pg_url`)."""
    from sqlalchemy import text

    name = f"uws_site_{os.getpid()}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_admin_url).set(database=name)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _uws_settings(directory: Path, db, storage: Path) -> None:
    """UWS's src/config.json and src/django_config.json (UWS-REFERENCE §8) for this site."""
    directory.mkdir()
    django_db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": db.database,
        "USER": db.username,
        "PASSWORD": db.password or "",
        "HOST": db.host,
        "PORT": str(db.port),
    }
    (directory / "django_config.json").write_text(
        json.dumps({"SECRET_KEY": "x", "DATABASES": {"default": django_db}})
    )
    config = {
        "main_storage": "main",
        "available_storage": {
            "main": {"storage_type": "LocalFileSystemStorage", "root_dir": str(storage)}
        },
    }
    (directory / "config.json").write_text(json.dumps(config))


def test_switching_a_uws_site_on_postgresql(hub_factory, uws_pg, pg_url):  # noqa: F811
    # its first start sets its databases up (and makes the portal's account a token client)
    hub = hub_factory("import", env={"UWS_TEST_DB_URL": pg_url}, extra_config=HUB_CONFIG)
    hub.stop()
    where = world_dir("uws-site-")
    storage, settings = where / "storage", where / "src"
    try:
        site_db = create_engine(uws_pg)
        expected = build_site(site_db, storage)
        gave_and_deleted(site_db)
        _uws_settings(settings, uws_pg, storage)
        ann, ben = pwd.getpwnam(ANN), pwd.getpwnam(BEN)

        # three problems in the site: the dry run names them, exactly, and changes nothing
        os.chown(storage / BEN / "43", ann.pw_uid, ann.pw_gid)
        kidney = storage / ANN / "42"
        kidney.rename(storage / ANN / "42.real")
        kidney.symlink_to(storage / ANN / "42.real")
        dry = import_uws(hub, "--uws-settings", str(settings), "--dry-run", check=False)
        assert dry.returncode == 1, dry.stderr
        conflicts = [ln for ln in dry.stdout.splitlines() if ln.startswith("  [")]
        assert conflicts == [
            f"  [directory] workspace 42: {kidney} is a link; links are never followed.",
            f"  [owner] workspace 43: {storage}/{BEN}/43 belongs to uid {ann.pw_uid}, not to "
            f"{BEN} (uid {ben.pw_uid}); give it to its owner first.",
            f"  [running] workspace 42: job {RUNNING_IN_42} still runs in it in UWS and would "
            "lose its directory when it moves: let it end (or stop it in UWS) first.",
        ], dry.stdout
        assert "Conflicts (3): nothing is imported until they are resolved" in dry.stdout
        real = import_uws(hub, "--uws-settings", str(settings), check=False)
        assert real.returncode == 1 and "Imported" not in real.stdout
        engine = make_engine(pg_url)
        with engine.connect() as conn:
            assert conn.scalar(select(Workspace.id).limit(1)) is None
        assert (storage / ANN / "41" / "notes.txt").exists()

        # fixed: the dry run is clean and says what will happen
        os.chown(storage / BEN / "43", ben.pw_uid, ben.pw_gid)
        kidney.unlink()
        (storage / ANN / "42.real").rename(kidney)
        UWSSite(site_db).end_job(RUNNING_IN_42)
        dry = import_uws(hub, "--uws-settings", str(settings), "--dry-run")
        assert "people: 4 new, 0 already imported" in dry.stdout, dry.stdout
        assert "workspaces: 5 new (5 moved), 0 already imported, 1 skipped" in dry.stdout
        assert "jobs: 3 as history, 1 still running in UWS (not imported)" in dry.stdout
        assert "invitations: 2, quotas: 1, tokens: 4" in dry.stdout
        assert f"skip workspace {LARGEST_WORKSPACE_ID}: it is deleting in UWS" in dry.stdout
        assert "No conflicts: run again without --dry-run to import." in dry.stdout

        done = import_uws(hub, "--uws-settings", str(settings), "--json")
        report = json.loads(done.stdout)
        assert report["made"] == {
            "people": 4,
            "identities": 4,
            "workspaces": 5,
            "moved": 5,
            "jobs": 3,
            "invitations": 2,
            "quotas": 1,
            "hub_users": 3,  # the portal's account the hub made at its start (a token client)
            "tokens": 4,
        }
        again = json.loads(import_uws(hub, "--uws-settings", str(settings), "--json").stdout)
        assert set(again["made"].values()) == {0}, again["made"]
        assert again["plan"]["workspaces_kept"] == 5 and again["plan"]["people_kept"] == 4

        # the directories moved whole, still their owners', links still links
        root = hub.root
        for account, ws_id in ((ANN, 41), (ANN, 42), (BEN, 43), (BEN, 44), (CY, 45)):
            pw = pwd.getpwnam(account)
            st = os.stat(root / account)
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pw.pw_uid, 0o700), account
            assert os.stat(root / account / str(ws_id)).st_uid == pw.pw_uid
            assert not (storage / account / str(ws_id)).exists()
        assert (root / ANN / "41" / "notes.txt").read_text() == "from UWS\n"
        assert os.stat(root / ANN / "41" / "notes.txt").st_uid == ann.pw_uid
        latest = root / ANN / "41" / "latest"
        assert latest.is_symlink() and os.readlink(latest) == "data/cells.csv"
        assert os.lstat(latest).st_uid == ann.pw_uid

        hub.start()
        anns = Client(hub, expected["tokens"][ANN], header="uws")
        listed = anns.get("workspaces/").json()["data"]["workspaces"]
        assert sorted(w["id"] for w in listed) == [41, 42]
        # PostgreSQL's sequences went past every id UWS gave: imported or not, or deleted
        r = anns.post("workspaces/", json={"name": "after", "description": ""})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["workspace"]["id"] == DELETED_WORKSPACE_ID + 1
        # a job in an imported workspace runs as its owner, in its moved directory
        ann_lab = Client.of(hub, ANN)  # a hub token of hers that may reach her job servers
        j = started(ann_lab, 41, job_type="test_job", resource_options={})
        assert j["id"] > LARGEST_JOB_ID
        me = ann_lab.session.get(server_base(j) + "whoami", timeout=30).json()
        assert (me["uid"], me["cwd"]) == (ann.pw_uid, str(root / ANN / "41"))
        stop_and_wait(ann_lab, j["id"])
    finally:
        hub.stop()
        shutil.rmtree(where, ignore_errors=True)
