"""``uws-hub import-uws``: switch a UWS site to uws_hub in one command (docs/operations.md).

    uws-hub import-uws --uws-settings /opt/uws/src --dry-run -f jupyterhub_config.py
    uws-hub import-uws --uws-db postgresql://uws@db/uws --uws-root /hive/users -f ...

It reads the UWS database and storage root (from UWS's own ``config.json`` and
``django_config.json`` with ``--uws-settings``, or given one by one), works out the plan
(`plan.plan_import`), prints it with every conflict, and, unless ``--dry-run``, carries it out
(`apply.apply_plan`) and carries people's tokens over into the hub's database
(`hubtokens.carry_tokens`). Exit status: 0 done (or a dry run without conflicts), 1 conflicts
(nothing changed), 2 a bad argument or a database that is not ready.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TextIO

from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from ..config import UWS, load_config_file
from ..db import migrate
from ..db.session import make_sessionmaker
from ..errors import BadRequest, UWSError
from .apply import OPTION_NAMES, ImportFailed, apply_plan
from .plan import Plan, plan_import
from .reader import Site, read_site

#: Django database engines -> SQLAlchemy dialects
DJANGO_ENGINES = {
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.postgresql_psycopg2": "postgresql",
    "django.db.backends.sqlite3": "sqlite",
}


class NotReady(UWSError):
    """A database the import cannot use yet (exit status 2, with what to do)."""

    status_code = 409


def django_db_url(databases: dict, base_dir: str) -> str:
    """The SQLAlchemy URL of a Django ``DATABASES`` setting's ``default`` database (a relative
    SQLite name is taken from `base_dir`, as UWS's ``src`` directory runs it)."""
    db = databases.get("default") or {}
    dialect = DJANGO_ENGINES.get(db.get("ENGINE", ""))
    if dialect is None:
        raise BadRequest(
            f"UWS's database engine {db.get('ENGINE')!r} is not one the import reads "
            "(PostgreSQL or SQLite); give --uws-db instead."
        )
    name = str(db.get("NAME", ""))
    if dialect == "sqlite":
        return f"sqlite:///{os.path.join(base_dir, name)}"
    host = str(db.get("HOST") or "")
    # libpq's way: no host is the local socket, a host starting with / a socket's directory
    socket = host == "" or host.startswith("/")
    url = URL.create(
        "postgresql+psycopg",
        username=str(db.get("USER") or "") or None,
        password=str(db.get("PASSWORD") or "") or None,
        host=None if socket else host,
        port=int(db["PORT"]) if db.get("PORT") and not socket else None,
        database=name,
        query={"host": host} if host.startswith("/") else {},
    )
    return url.render_as_string(hide_password=False)


def uws_settings(directory: str) -> tuple[str, str, dict[str, str]]:
    """UWS's database URL, storage root and launch option names from its ``src`` directory
    (``django_config.json``: DATABASES; ``config.json``: the ``main_storage``'s ``root_dir``,
    the ``main_resource``'s ``parameter_mapping``, as translated option -> uws_hub option)."""
    try:
        with open(os.path.join(directory, "django_config.json")) as f:
            django = json.load(f)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        storage = config["available_storage"][config["main_storage"]]
        root = os.path.join(directory, storage["root_dir"])
        resource = config.get("available_resources", {}).get(config.get("main_resource"), {})
        mapping = resource.get("parameter_mapping") or {}
        names = {
            str(translated): OPTION_NAMES[generic]
            for generic, translated in mapping.items()
            if generic in OPTION_NAMES
        }
        url = django_db_url(django.get("DATABASES", {}), directory)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadRequest(
            f"Could not read UWS's settings in {directory}: {e}. Give --uws-db and --uws-root "
            "instead."
        ) from e
    return url, os.path.normpath(root), names


def existing_sqlite(engine: Engine) -> bool:
    """False for a SQLite database file that does not exist (connecting would create it)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return True
    return os.path.isfile(url.database)


def hub_db_url(config_file: str) -> str:
    """The hub's database (``c.JupyterHub.db_url``, JupyterHub's default if unset)."""
    cfg = load_config_file(config_file)
    return str(cfg.JupyterHub.get("db_url", "sqlite:///jupyterhub.sqlite"))


def _hub_session(url: str, needed: bool) -> Session | None:
    """A session on the hub's database, which a hub with this configuration has set up (its
    roles and OAuth client); None when not `needed` and it is not there."""
    engine = create_engine(url)
    ready = existing_sqlite(engine) and {"users", "roles", "api_tokens", "oauth_clients"} <= set(
        inspect(engine).get_table_names()
    )
    if ready:
        from jupyterhub import orm

        session = Session(engine)
        role = session.scalar(select(orm.Role).where(orm.Role.name == "user"))
        client = session.scalar(
            select(orm.OAuthClient).where(orm.OAuthClient.identifier == "jupyterhub")
        )
        if role is not None and client is not None:
            return session
        session.close()
    engine.dispose()
    if needed:
        raise NotReady(
            f"The hub's database ({engine.url.render_as_string(hide_password=True)}) is not set "
            "up yet, and people's hub accounts and tokens go there: start the hub once with this configuration "
            "(it creates its tables and roles), stop it, then run the import.",
        )
    return None


def _default_resources(settings: UWS) -> dict[str, str]:
    """The uws_hub resource ended UWS jobs are recorded under, per kind: the first of each."""
    out: dict[str, str] = {}
    for rid, res in settings.resources.items():
        out.setdefault(str(res.get("kind", "local")), rid)
    first = next(iter(settings.resources), "local")
    return {kind: out.get(kind, first) for kind in ("slurm", "local")}


def pairs(values: list[str] | None, what: str) -> dict[str, str]:
    """``A=B`` arguments as a dict."""
    out = {}
    for v in values or []:
        key, sep, value = v.partition("=")
        if not sep or not key or not value:
            raise BadRequest(f"{what} {v!r} is not NAME=VALUE.")
        out[key] = value
    return out


def run(args, settings: UWS, out: TextIO, actor) -> int:
    """The command (arguments from the ``import-uws`` parser) run by `actor` (an
    `audit.Actor`); returns its exit status."""
    if args.uws_settings:
        db_url, root, option_names = uws_settings(args.uws_settings)
    else:
        db_url, root, option_names = None, None, {}
    db_url = args.uws_db or db_url
    uws_root = args.uws_root or root or settings.root_dir
    if not db_url:
        raise BadRequest("Name UWS's database: --uws-db URL or --uws-settings DIR.")
    if not os.path.isdir(uws_root):
        raise BadRequest(f"UWS's storage root {uws_root} is not a directory.")
    sources = pairs(args.source, "--source")
    resources = {**_default_resources(settings), **pairs(args.resource, "--resource")}
    unknown = [r for r in resources.values() if r not in settings.resources]
    if unknown:
        raise BadRequest(f"--resource names {', '.join(unknown)}, not in c.UWS.resources.")

    uws_engine = create_engine(db_url)
    try:
        if not existing_sqlite(uws_engine):
            raise BadRequest(f"UWS's database {uws_engine.url.database} does not exist.")
        with uws_engine.connect() as conn:
            site = read_site(conn, sources=sources)
    finally:
        uws_engine.dispose()
    where = Where(uws_root, resources, option_names, set(args.same_person or ()))

    from ..db.session import make_engine

    engine = make_engine(settings.db_url, **settings.db_kwargs)
    hub = None
    try:
        if not existing_sqlite(engine):
            raise NotReady(
                f"uws_hub's database {engine.url.database} does not exist: start the hub once "
                "with this configuration (or run `uws-hub db upgrade -f <config>`) first."
            )
        current, head = migrate.current_revision(engine), migrate.head_revision()
        if current != head:
            raise NotReady(
                f"uws_hub's database is at schema {current}, this version needs {head}: run "
                "`uws-hub db upgrade -f <config>` first."
            )
        hub = _hub_session(args.hub_db or hub_db_url(args.config), needed=bool(site.people))
        return _plan_and_apply(args, settings, site, engine, hub, where, out, actor)
    finally:
        if hub is not None:
            hub.close()
            hub.get_bind().dispose()
        engine.dispose()


@dataclass
class Where:
    """What the import goes by besides the site: UWS's root, the resources ended jobs are
    recorded under, the site's launch option names, the hub users that are the same people."""

    uws_root: str
    resources: dict[str, str]
    option_names: dict[str, str]
    same_people: set[str]


def _token_clients(hub: Session | None) -> set[str]:
    """The hub users with the ``uws-token-client`` role (c.UWS.token_client_users)."""
    if hub is None:
        return set()
    from jupyterhub import orm

    role = hub.scalar(select(orm.Role).where(orm.Role.name == "uws-token-client"))
    return {u.name for u in role.users} if role is not None else set()


def _plan_and_apply(args, settings, site, engine: Engine, hub, where: Where, out, actor) -> int:
    from jupyterhub import orm

    from .hubtokens import carry_tokens, ensure_hub_users, token_owner

    db = make_sessionmaker(engine)
    hub_users = set(hub.scalars(select(orm.User.name))) if hub is not None else set()
    clients = _token_clients(hub)
    with db() as session:
        plan = plan_import(
            site,
            session,
            uws_root=where.uws_root,
            root_dir=settings.root_dir,
            hub_users=hub_users,
            # the operator named the trusted clients in c.UWS.token_client_users: the hub made
            # them at its start, and they are the UWS people of those names
            same_people=where.same_people | clients,
            token_owner=(lambda t: token_owner(hub, t)) if hub is not None else (lambda t: None),
            token_clients=clients,
        )
    report = _report(site, plan, dry_run=args.dry_run)
    if args.dry_run or plan.conflicts:
        _print(report, out, json_out=args.json)
        return 1 if plan.conflicts else 0
    refused: list = []
    try:
        report["made"] = apply_plan(
            plan,
            site,
            db,
            resources=where.resources,
            actor=actor,
            user_dir_mode=settings.user_dir_mode,
            option_names=where.option_names,
        )
        active = [p.person for p in plan.people if p.action != "skip" and p.person.is_active]
        made = ensure_hub_users(hub, [p.name for p in active]) if hub is not None else []
        report["made"]["hub_users"] = len(made)
        if plan.tokens:
            people = {p.person.id: p.person for p in plan.people}
            result = carry_tokens(
                hub,
                {people[i].name: people[i].token for i in plan.tokens},
                settings.service_name,
                clients={people[i].name for i in plan.tokens} & clients,
            )
            report["made"]["tokens"] = len(result.made)
            report["tokens_kept"] = result.kept
            report["tokens_refused"] = [f"{n}: {why}" for n, why in result.refused]
            refused = result.refused
    except ImportFailed:
        raise
    except Exception as e:  # what was done is kept; the next run goes on from there
        raise ImportFailed(
            f"The import stopped: {e!r}. What it made is kept; fix the cause and run it again "
            "(it goes on where it stopped)."
        ) from e
    _print(report, out, json_out=args.json)
    if refused:
        raise ImportFailed(
            f"{len(refused)} token(s) could not be carried over (see above); everything else "
            "is imported. Fix what the hub says and run the import again."
        )
    return 0


def _report(site: Site, plan: Plan, *, dry_run: bool) -> dict:
    skipped = [
        f"workspace {w.workspace.id}: {w.why}"
        for w in plan.workspaces
        if w.action == "skip" and w.why
    ]
    return {
        "dry_run": dry_run,
        "site": site.counts(),
        "plan": plan.counts(),
        "moves": [
            {"workspace": w.workspace.id, "from": w.source, "to": w.target}
            for w in plan.workspaces
            if w.action == "create" and w.source != w.target
        ],
        "skipped": skipped,
        "conflicts": [asdict(c) for c in plan.conflicts],
        "notes": plan.notes
        + [
            f"UWS identity mapping {mid} ({method}) has no uws_hub identity source: it is left "
            f"out; map it with --source {method}=<source> to import it."
            for mid, method in site.unknown_methods
        ],
    }


def _print(report: dict, out: TextIO, *, json_out: bool) -> None:
    if json_out:
        out.write(json.dumps(report, sort_keys=True) + "\n")
        return
    s, p = report["site"], report["plan"]
    w = out.write
    w(
        f"UWS site: {s['people']} people ({s['identities']} identities, {s['tokens']} tokens), "
        f"{s['workspaces']} workspaces, {s['jobs']} jobs, {s['shares']} invitations, "
        f"{s['quotas']} quotas\n"
    )
    w("Plan (dry run: nothing is changed):\n" if report["dry_run"] else "Plan:\n")
    w(f"  people: {p['people_new']} new, {p['people_kept']} already imported\n")
    w(
        f"  workspaces: {p['workspaces_new']} new ({p['workspaces_moved']} moved), "
        f"{p['workspaces_kept']} already imported, {p['workspaces_skipped']} skipped\n"
    )
    w(
        f"  jobs: {p['jobs']} as history, {p['jobs_still_running']} still running in UWS "
        "(not imported)\n"
    )
    w(f"  invitations: {p['invitations']}, quotas: {p['quotas']}, tokens: {p['tokens']}\n")
    for m in report["moves"]:
        w(f"  move workspace {m['workspace']}: {m['from']} -> {m['to']}\n")
    for line in report["skipped"]:
        w(f"  skip {line}\n")
    if report["conflicts"]:
        w(f"Conflicts ({len(report['conflicts'])}): nothing is imported until they are resolved\n")
        for c in report["conflicts"]:
            w(f"  [{c['kind']}] {c['what']}: {c['message']}\n")
    for note in report["notes"]:
        w(f"Note: {note}\n")
    if "made" in report:
        made = ", ".join(f"{k} {v}" for k, v in report["made"].items())
        w(f"Imported: {made}\n")
        if report.get("tokens_kept"):
            w(f"  tokens already there: {', '.join(report['tokens_kept'])}\n")
        for line in report.get("tokens_refused", []):
            w(f"  token refused: {line}\n")
    elif not report["conflicts"]:
        w("No conflicts: run again without --dry-run to import.\n" if report["dry_run"] else "")
