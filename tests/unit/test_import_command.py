"""``uws-hub import-uws`` (`uws_hub.importer.command`): UWS's database and storage root found
from its own settings (`django_db_url`, `uws_settings`), ``A=B`` arguments (`pairs`), and the
whole command through `uws_hub.cli.main` on SQLite: the dry run prints the plan and changes
nothing, the real run imports with the ids, a second run makes nothing, a conflict stops it
(exit 1), a bad argument or a database that is not ready is exit 2 saying what to do."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyterhub import orm, roles
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from uws_hub.cli import main
from uws_hub.db.models import AuditEvent, Job, User, Workspace
from uws_hub.errors import BadRequest
from uws_hub.importer.apply import job_options
from uws_hub.importer.command import django_db_url, pairs, uws_settings
from uws_hub.importer.hubtokens import define_scopes
from uws_hub.scopes import user_role_scopes

from .uwssite import UWSSite

ME = pwd.getpwuid(os.getuid())  # alice's account: the directories are this process's
PSC = "PSCAPIUserAuthentication"
PG = "django.db.backends.postgresql"


# ---- UWS's database from its Django settings ------------------------------------------------


def test_a_relative_sqlite_name_is_taken_from_uws_src_directory():
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}
    assert django_db_url({"default": sqlite}, "/opt/uws/src") == "sqlite:////opt/uws/src/db.sqlite3"
    sqlite["NAME"] = "/var/lib/uws/db.sqlite3"  # an absolute one stays
    assert django_db_url({"default": sqlite}, "/opt/uws/src") == "sqlite:////var/lib/uws/db.sqlite3"


def test_postgresql_with_user_password_host_and_port():
    db = {
        "ENGINE": PG,
        "NAME": "uws",
        "USER": "uws@site",
        "PASSWORD": "p@ss/w:rd%",
        "HOST": "db.example.org",
        "PORT": 5433,
    }
    url = django_db_url({"default": db}, "/opt/uws/src")
    assert url == "postgresql+psycopg://uws%40site:p%40ss%2Fw%3Ard%25@db.example.org:5433/uws"
    parsed = make_url(url)  # quoted: the URL reads back as Django had it
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "uws@site",
        "p@ss/w:rd%",
        "db.example.org",
        5433,
        "uws",
    )


def test_postgresql_without_host_is_the_local_socket_as_for_libpq():
    db = {"ENGINE": "django.db.backends.postgresql_psycopg2", "NAME": "uws", "USER": "uws"}
    assert django_db_url({"default": db}, "/src") == "postgresql+psycopg://uws@/uws"
    db["PORT"] = "5432"  # (a port of the socket: libpq's default)
    assert django_db_url({"default": db}, "/src") == "postgresql+psycopg://uws@/uws"
    assert django_db_url({"default": {"ENGINE": PG, "NAME": "uws"}}, "/src") == (
        "postgresql+psycopg:///uws"
    )
    # a HOST that is a directory: the socket in it
    db["HOST"] = "/var/run/postgresql"
    url = make_url(django_db_url({"default": db}, "/src"))
    assert (url.host, url.database, url.query) == (None, "uws", {"host": "/var/run/postgresql"})
    # an IPv6 address reads back as itself
    db["HOST"] = "::1"
    url = make_url(django_db_url({"default": db}, "/src"))
    assert (url.host, url.port, url.database) == ("::1", 5432, "uws")


@pytest.mark.parametrize(
    "databases, engine",
    [
        ({"default": {"ENGINE": "django.db.backends.mysql", "NAME": "uws"}}, "mysql"),
        ({"default": {"NAME": "uws"}}, "None"),
        ({}, "None"),
    ],
)
def test_another_database_engine_is_refused(databases, engine):
    with pytest.raises(BadRequest) as e:
        django_db_url(databases, "/src")
    assert engine in e.value.message and "give --uws-db instead" in e.value.message


# ---- UWS's settings directory -----------------------------------------------------------------


def settings_dir(path: Path, *, django: object = None, config: object = None) -> str:
    """A UWS ``src`` directory with its ``django_config.json`` and ``config.json`` (None: the
    file is not there)."""
    path.mkdir(exist_ok=True)
    for name, content in (("django_config.json", django), ("config.json", config)):
        if content is not None:
            (path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


DJANGO = {"DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}}


def storage(root_dir: str) -> dict:
    return {
        "main_storage": "hive",
        "available_storage": {
            "other": {"storage_type": "LocalFileSystemStorage", "root_dir": "/elsewhere"},
            "hive": {"storage_type": "LocalFileSystemStorage", "root_dir": root_dir},
        },
    }


def test_uws_settings_give_its_database_and_main_storage_root(tmp_path):
    src = settings_dir(tmp_path / "src", django=DJANGO, config=storage("../data/./users/"))
    assert uws_settings(src)[:2] == (
        f"sqlite:///{src}/db.sqlite3",
        str(tmp_path / "data" / "users"),
    )
    src = settings_dir(tmp_path / "src", django=DJANGO, config=storage("/hive/users"))
    assert uws_settings(src)[1] == "/hive/users"
    pg = {"DATABASES": {"default": {"ENGINE": PG, "NAME": "uws", "HOST": "db"}}}
    src = settings_dir(tmp_path / "pg", django=pg, config=storage("/hive/users"))
    assert uws_settings(src)[:2] == ("postgresql+psycopg://db/uws", "/hive/users")


def test_the_main_resources_parameter_mapping_names_the_jobs_options(tmp_path):
    """UWS stored its jobs' options as its main resource translated them (UWS-REFERENCE §2,
    §8.1): the import reads them back under uws_hub's names."""
    config = {
        **storage("/hive"),
        "main_resource": "slurm",
        "available_resources": {
            "slurm": {
                "resource_type": "SlurmAPIResource",
                "parameter_mapping": {
                    "num_cpus": "ntasks",
                    "memory_mb": "mem",
                    "time_limit_min": "walltime",
                    "gpu_enabled": "gpu",
                    "colour": "color",  # a site's own parameter: not a job's size
                },
            },
            "local": {"parameter_mapping": {"num_cpus": "threads"}},  # not the main one
        },
    }
    names = uws_settings(settings_dir(tmp_path / "src", django=DJANGO, config=config))[2]
    assert names == {
        "ntasks": "num_cpus",
        "mem": "memory_mb",
        "walltime": "time_limit_min",
        "gpu": "gpus",
    }
    stored = {"ntasks": 4, "mem": "8192", "walltime": 90, "gpu": True, "color": 3, "threads": 2}
    assert job_options(stored, names) == {
        "num_cpus": 4,
        "memory_mb": 8192,
        "time_limit_min": 90,
        "gpus": 1,
    }
    # without the site's settings: UWS's generic names and its example's translations
    example = {"cpus_per_task": 2, "memory_per_node": 1024, "time_limit": "30", "num_cpus": "x"}
    assert job_options(example) == {"num_cpus": 2, "memory_mb": 1024, "time_limit_min": 30}
    assert job_options({"num_cpus": -1, "memory_mb": 1.5, "gpus": None}) == {}


@pytest.mark.parametrize(
    "django, config, said",
    [
        (None, storage("/hive"), "django_config.json"),  # a missing file
        (DJANGO, None, "config.json"),
        (DJANGO, "{not json", "Could not read"),
        (DJANGO, {"available_storage": {}}, "main_storage"),  # a missing key
        (DJANGO, {"main_storage": "hive", "available_storage": {}}, "hive"),
        (DJANGO, {"main_storage": "hive", "available_storage": {"hive": {}}}, "root_dir"),
        (DJANGO, {"main_storage": "hive", "available_storage": {"hive": None}}, "Could not read"),
    ],
)
def test_unreadable_uws_settings_say_to_name_the_database(tmp_path, django, config, said):
    src = settings_dir(tmp_path / "src", django=django, config=config)
    with pytest.raises(BadRequest) as e:
        uws_settings(src)
    message = e.value.message
    assert message.startswith(f"Could not read UWS's settings in {src}: ")
    assert said in message and message.endswith("Give --uws-db and --uws-root instead.")


def test_uws_settings_with_a_database_the_import_does_not_read(tmp_path):
    mysql = {"DATABASES": {"default": {"ENGINE": "django.db.backends.mysql"}}}
    src = settings_dir(tmp_path / "src", django=mysql, config=storage("/hive"))
    with pytest.raises(BadRequest, match="give --uws-db instead"):
        uws_settings(src)


# ---- NAME=VALUE arguments ------------------------------------------------------------------


def test_pairs():
    assert pairs(None, "--source") == {} and pairs([], "--source") == {}
    given = ["ShibbolethUserAuthentication=ldap", "slurm=other", "slurm=cluster"]
    assert pairs(given, "--resource") == {
        "ShibbolethUserAuthentication": "ldap",
        "slurm": "cluster",  # the last one counts
    }
    assert pairs(["local=a=b"], "--resource") == {"local": "a=b"}  # split at the first "="


@pytest.mark.parametrize("bad", ["ldap", "=ldap", "Shib=", "="])
def test_pairs_that_are_not_name_value_are_refused(bad):
    with pytest.raises(BadRequest) as e:
        pairs(["slurm=cluster", bad], "--source")
    assert e.value.message == f"--source {bad!r} is not NAME=VALUE."


# ---- the whole command ----------------------------------------------------------------------


@dataclass
class Hub:
    config: str  # the jupyterhub_config.py
    root: Path  # c.UWS.root_dir
    db_url: str  # c.UWS.db_url
    hub_db_url: str  # c.JupyterHub.db_url

    def session(self) -> Session:
        return Session(create_engine(self.db_url))


@pytest.fixture
def hub(tmp_path, capsys) -> Hub:
    """A uws_hub site's configuration (its own root, SQLite databases under `tmp_path`) with
    its database upgraded and the hub's set up as its first start leaves it."""
    root = tmp_path / "hub-root"
    root.mkdir()
    h = Hub(
        config=str(tmp_path / "jupyterhub_config.py"),
        root=root,
        db_url=f"sqlite:///{tmp_path}/uws_hub.sqlite",
        hub_db_url=f"sqlite:///{tmp_path}/jupyterhub.sqlite",
    )
    Path(h.config).write_text(
        textwrap.dedent(
            f"""\
            c = get_config()  # noqa
            c.UWS.root_dir = {str(root)!r}
            c.UWS.db_url = {h.db_url!r}
            c.JupyterHub.db_url = {h.hub_db_url!r}
            """
        )
    )
    assert main(["db", "upgrade", "-f", h.config]) == 0
    capsys.readouterr()
    set_up_hub_db(h.hub_db_url)
    return h


def set_up_hub_db(url: str) -> None:
    """The hub's database as the hub's first start with uws_hub's configuration leaves it:
    its tables, default roles, the ``user`` role with the uws scopes, its OAuth client."""
    hub_db = orm.new_session_factory(url)()
    define_scopes()
    for role in roles.get_default_roles():
        roles.create_role(hub_db, role)
    roles.create_role(hub_db, {"name": "user", "scopes": user_role_scopes("uws")})
    hub_db.add(orm.OAuthClient(identifier="jupyterhub"))
    hub_db.commit()
    hub_db.close()


@pytest.fixture
def site(tmp_path) -> UWSSite:
    """A UWS site (SQLite) of alice, on this process's account, without a token, with one
    workspace directory and a job that ended."""
    s = UWSSite(create_engine(f"sqlite:///{tmp_path}/uws.sqlite"))
    s.url = f"sqlite:///{tmp_path}/uws.sqlite"
    s.root = tmp_path / "uws-root"
    s.person(7, "alice", "alice@uni.edu")
    s.mapping(12, 7, PSC, "8812", ME.pw_name)
    s.workspace(41, 7, f"{ME.pw_name}/41", name="analysis")
    (s.root / ME.pw_name / "41").mkdir(parents=True)
    (s.root / ME.pw_name / "41" / "notes.txt").write_text("from UWS")
    s.job(101, 7, 41, "complete", core_hours="1")
    yield s
    s.engine.dispose()


def import_uws(hub: Hub, capsys, *args: str) -> tuple[int, str, str]:
    """``uws-hub import-uws ARGS -f <config>``: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(["import-uws", *args, "-f", hub.config])
    out, err = capsys.readouterr()
    return status, out, err


def of_site(site: UWSSite, *args: str) -> list[str]:
    return ["--uws-db", site.url, "--uws-root", str(site.root), *args]


def test_a_dry_run_prints_the_plan_and_changes_nothing(hub, site, capsys):
    status, out, err = import_uws(hub, capsys, *of_site(site, "--dry-run"))
    assert status == 0, err
    source = site.root / ME.pw_name / "41"
    target = hub.root / ME.pw_name / "41"
    assert out.splitlines() == [
        "UWS site: 1 people (1 identities, 0 tokens), 1 workspaces, 1 jobs, 0 invitations, "
        "0 quotas",
        "Plan (dry run: nothing is changed):",
        "  people: 1 new, 0 already imported",
        "  workspaces: 1 new (1 moved), 0 already imported, 0 skipped",
        "  jobs: 1 as history, 0 still running in UWS (not imported)",
        "  invitations: 0, quotas: 0, tokens: 0",
        f"  move workspace 41: {source} -> {target}",
        "No conflicts: run again without --dry-run to import.",
    ]
    with hub.session() as session:
        assert session.get(Workspace, 41) is None and session.scalars(select(User)).all() == []
    assert source.is_dir() and not (hub.root / ME.pw_name).exists()


def test_the_dry_run_as_json(hub, site, capsys):
    status, out, _ = import_uws(hub, capsys, *of_site(site, "--dry-run", "--json"))
    assert status == 0
    report = json.loads(out)
    assert report["dry_run"] is True and report["conflicts"] == [] and "made" not in report
    assert report["site"]["workspaces"] == 1
    plan = report["plan"]
    assert (plan["people_new"], plan["workspaces_new"], plan["workspaces_moved"], plan["jobs"]) == (
        1,
        1,
        1,
        1,
    )
    assert report["moves"] == [
        {
            "workspace": 41,
            "from": str(site.root / ME.pw_name / "41"),
            "to": str(hub.root / ME.pw_name / "41"),
        }
    ]


def test_the_import_keeps_ids_and_a_second_run_makes_nothing(hub, site, capsys):
    status, out, err = import_uws(hub, capsys, *of_site(site))
    assert status == 0, err
    assert "Plan:\n" in out and "dry run" not in out
    assert "Imported: people 1, identities 1, workspaces 1, moved 1, jobs 1, invitations 0, " in out
    with hub.session() as session:
        ws = session.get(Workspace, 41)
        assert (ws.id, ws.name, ws.file_path, ws.user.name) == (
            41,
            "analysis",
            f"{ME.pw_name}/41",
            "alice",
        )
        assert ws.user.posix_name == ME.pw_name
        assert session.get(Job, 101).workspace_id == 41
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "import.uws"))
        assert event.details["workspaces"] == 1
    assert (hub.root / ME.pw_name / "41" / "notes.txt").read_text() == "from UWS"
    assert not (site.root / ME.pw_name / "41").exists()

    status, out, err = import_uws(hub, capsys, *of_site(site))
    assert status == 0, err
    assert "  people: 0 new, 1 already imported\n" in out
    assert "  workspaces: 0 new (0 moved), 1 already imported, 0 skipped\n" in out
    assert "Imported: people 0, identities 0, workspaces 0, moved 0, jobs 0, " in out


def test_uws_own_settings_name_its_database_and_root(hub, site, capsys, tmp_path):
    django = {
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "../uws.sqlite"}}
    }
    src = settings_dir(tmp_path / "src", django=django, config=storage("../uws-root"))
    status, out, err = import_uws(hub, capsys, "--uws-settings", src, "--dry-run")
    assert status == 0, err
    assert f"  move workspace 41: {site.root}/{ME.pw_name}/41 -> " in out


def test_a_conflict_stops_the_import(hub, site, capsys):
    (site.root / ME.pw_name / "41" / "notes.txt").unlink()
    (site.root / ME.pw_name / "41").rmdir()
    conflict = f"  [directory] workspace 41: its directory {site.root}/{ME.pw_name}/41 is missing."
    status, out, _ = import_uws(hub, capsys, *of_site(site, "--dry-run"))
    assert status == 1
    lines = out.splitlines()
    assert "Conflicts (1): nothing is imported until they are resolved" in lines
    assert conflict in lines and "No conflicts" not in out
    status, out, _ = import_uws(hub, capsys, *of_site(site))  # the real run: the same
    assert status == 1 and conflict in out.splitlines() and "Imported" not in out
    with hub.session() as session:
        assert session.scalars(select(User)).all() == []


@pytest.mark.parametrize(
    "args, said",
    [
        ([], "Name UWS's database: --uws-db URL or --uws-settings DIR."),
        (["--uws-db", "sqlite:///x", "--uws-root", "/nonexistent"], "is not a directory"),
        (["--uws-settings", "/nonexistent"], "Give --uws-db and --uws-root instead."),
        (["--uws-db", "sqlite:///x", "--resource", "slurm=nope"], "not in c.UWS.resources"),
        (["--uws-db", "sqlite:///x", "--source", "Shib"], "'Shib' is not NAME=VALUE"),
    ],
)
def test_bad_arguments_are_exit_2(hub, capsys, args, said):
    status, out, err = import_uws(hub, capsys, *args)
    assert status == 2 and out == ""
    (line,) = [ln for ln in err.splitlines() if not ln.startswith("uws_hub: warning: ")]
    assert line.startswith("uws-hub import-uws: ") and said in line


def test_a_uws_hub_database_not_upgraded_is_exit_2(hub, site, capsys, tmp_path):
    text = Path(hub.config).read_text().replace("uws_hub.sqlite", "new.sqlite")
    Path(hub.config).write_text(text)
    status, _, err = import_uws(hub, capsys, *of_site(site))  # a mistyped c.UWS.db_url
    assert status == 2 and f"uws_hub's database {tmp_path}/new.sqlite does not exist" in err
    assert not (tmp_path / "new.sqlite").exists()  # and it is not made
    sqlite3.connect(tmp_path / "new.sqlite").close()  # there, but empty
    status, _, err = import_uws(hub, capsys, *of_site(site))
    assert status == 2 and "run `uws-hub db upgrade -f <config>` first" in err


def test_the_hub_must_have_started_once(hub, site, capsys):
    """People become hub users and their tokens hub tokens: the hub's database must be there,
    as the hub's first start leaves it; the dry run says so too, and nothing is made (not even
    an empty database file where the hub's should be)."""
    os.unlink(make_url(hub.hub_db_url).database)
    for args in (of_site(site, "--dry-run"), of_site(site)):
        status, out, err = import_uws(hub, capsys, *args)
        assert status == 2 and out == ""
        assert "start the hub once" in err and "then run the import" in err
    assert not os.path.exists(make_url(hub.hub_db_url).database)
    with hub.session() as session:
        assert session.scalars(select(User)).all() == []


def test_people_become_hub_users_and_tokens_hub_tokens(hub, site, capsys):
    site.person(8, "bob", "bob@lab.org", token="c" * 40)  # no account, no workspace
    status, out, err = import_uws(hub, capsys, *of_site(site))
    assert status == 0, err
    assert "people 2" in out and "hub_users 2, tokens 1" in out
    hub_db = orm.new_session_factory(hub.hub_db_url)()
    try:
        assert orm.APIToken.find(hub_db, "c" * 40).user.name == "bob"
        alice = orm.User.find(hub_db, "alice")
        assert [r.name for r in alice.roles] == ["user"] and alice.api_tokens == []
    finally:
        hub_db.close()
    status, out, err = import_uws(hub, capsys, *of_site(site))  # again: kept
    assert status == 0 and "hub_users 0" in out and "  tokens already there: bob\n" in out


def test_a_hub_user_of_the_same_name_is_taken_only_when_the_operator_says(hub, site, capsys):
    hub_db = orm.new_session_factory(hub.hub_db_url)()
    hub_db.add(orm.User(name="alice"))  # e.g. an admin who logged in before the import
    hub_db.commit()
    hub_db.close()
    status, out, _ = import_uws(hub, capsys, *of_site(site, "--dry-run"))
    assert status == 1
    assert (
        "  [name] person alice: the hub already has a user alice, unknown to uws_hub; if that "
        "is this person, say so with --same-person alice, else rename one of them first."
    ) in out.splitlines()
    status, out, err = import_uws(hub, capsys, *of_site(site, "--same-person", "alice"))
    assert status == 0, err
    assert "Imported: people 1," in out and "hub_users 0" in out
