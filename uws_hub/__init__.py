"""uws_hub: research workspaces, jobs, sharing and quotas for JupyterHub.

A site enables it with one call at the end of its ``jupyterhub_config.py``::

    import uws_hub
    c.UWS.root_dir = "/srv/uws/workspaces"
    uws_hub.setup(c)
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

from ._version import __version__
from .scopes import (
    ADMIN_TOKENS,
    CUSTOM_SCOPES,
    SERVICE_GLOBUS_HUB_SCOPES,
    SERVICE_HUB_SCOPES,
    admin_role_scopes,
    user_role_scopes,
)

__all__ = ["__version__", "setup", "load_config"]

HERE = Path(__file__).parent
TEMPLATE_DIR = str(HERE / "templates")

#: environment variables handed to the service, so the config file evaluates the same there
_ENV_PREFIXES = ("UWS_", "OAUTH_", "GLOBUS_")  # OAUTH_*/GLOBUS_*: the token exchange's client
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TZ", "IDENTITY_PROVIDER")


def _section(c, name):
    """The config section `name` of `c` as it stands now (without creating it)."""
    return c[name] if name in c else {}


def setup(c, *, config_file: str | None = None) -> None:
    """Wire uws_hub into a JupyterHub config object `c`.

    Registers the hub-managed ``uws`` service (which re-reads this same config file), the
    ``custom:uws:*`` scopes, the default ``user`` role extended with those scopes on the user's
    own resources, the ``uws-admin`` role, named servers with ``cleanup_servers = False`` (jobs
    survive hub restarts), the uws job spawner (``uws``), the workspaces page as the landing
    page after login, and the template path. Call it after your ``c.UWS``
    settings: it validates them (a setting that cannot work stops the hub with one line saying
    what to fix) and reads ``service_name``, ``service_url`` and the admin settings.
    """
    if config_file is None:
        caller = inspect.currentframe().f_back
        config_file = caller.f_globals.get("__file__") if caller else None
    if not config_file:
        raise RuntimeError(
            "uws_hub.setup(c): pass config_file=... (the path of jupyterhub_config.py)"
        )
    config_file = os.path.abspath(config_file)
    _validate(c)

    uws = _section(c, "UWS")
    name = uws.get("service_name", "uws")
    _register_service(c, name, uws.get("service_url", "http://127.0.0.1:10101"), config_file)
    custom = dict(c.JupyterHub.get("custom_scopes", {}))
    custom.update(CUSTOM_SCOPES)
    c.JupyterHub.custom_scopes = custom
    _load_roles(c, uws, name)
    _hub_settings(c, name)
    # batchspawner's API handler (Slurm jobs report their port to it) must be registered before
    # the hub builds its URL table: import the spawners now, in the hub process
    from . import spawners  # noqa: F401


def _register_service(c, name: str, url: str, config_file: str) -> None:
    """The hub-managed uws service `name` at `url`, started on `config_file` (replacing a
    service of that name the config already has)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES) or k in _ENV_KEEP}
    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != name]
    services.append(
        {
            "name": name,
            "url": url,
            "command": [sys.executable, "-m", "uws_hub.service", "--config", config_file],
            "cwd": os.getcwd(),
            "environment": env,
            "display": True,
            "info": {"description": "Workspaces, jobs, sharing and quotas"},
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [
                *(
                    f"{s}!user"
                    for s in (
                        "custom:uws:workspaces",
                        "custom:uws:jobs",
                        "custom:uws:shares",
                        "custom:uws:read:quota",
                    )
                ),
                "custom:uws:users:search",
                # operators' pages (the admin page, acting for others): a user's browser token
                # gets these only if the user holds them (the uws-admin role)
                "custom:uws:workspaces",
                "custom:uws:jobs",
                "custom:uws:shares",
                "custom:uws:admin:quotas",
                "custom:uws:read:audit",
            ],
        }
    )
    c.JupyterHub.services = services


def _load_roles(c, uws, name: str) -> None:
    """Extend (or add) the ``user``, ``uws-admin``, ``uws-service`` and ``uws-token-client``
    roles of ``c.JupyterHub.load_roles``; what the config already gives them stays."""
    admins = set(uws.get("admin_users", set()))
    if uws.get("hub_admins_are_uws_admins", True):
        admins |= set(_section(c, "Authenticator").get("admin_users", set()))
    service_scopes = set(SERVICE_HUB_SCOPES)
    if _uses_globus(c):  # renews the Globus tokens of running jobs from the people's auth state
        service_scopes |= set(SERVICE_GLOBUS_HUB_SCOPES)
    roles = {r["name"]: dict(r) for r in c.JupyterHub.get("load_roles", [])}
    _merge_role(roles, "user", "Standard user privileges", scopes=user_role_scopes(name))
    _merge_role(
        roles,
        "uws-admin",
        "uws operators",
        scopes=admin_role_scopes(name),
        users=admins,
        groups=uws.get("admin_groups", set()),
    )
    _merge_role(roles, "uws-service", "the uws service", scopes=service_scopes, services={name})
    _merge_role(
        roles,
        "uws-token-client",
        "portals that obtain API tokens for users",
        scopes={ADMIN_TOKENS},
        services=uws.get("token_client_services", set()),
        users=uws.get("token_client_users", set()),
    )
    c.JupyterHub.load_roles = list(roles.values())


def _merge_role(roles: dict[str, dict], name: str, description: str, **members) -> None:
    """Add `members` (``scopes=``, ``users=``, ``groups=``, ``services=``) to role `name` in
    `roles`, which is created (with `description`) if missing; each list ends up sorted."""
    role = roles.get(name, {"name": name, "description": description})
    for key, values in members.items():
        role[key] = sorted(set(role.get(key, [])) | set(values))
    roles[name] = role


def _hub_settings(c, name: str) -> None:
    """Named servers kept across hub restarts, uws's templates and spawner, a short
    slow-spawn timeout, and the workspaces page of service `name` as the landing page."""
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.cleanup_servers = False
    paths = list(c.JupyterHub.get("template_paths", []))
    if TEMPLATE_DIR not in paths:
        paths.insert(0, TEMPLATE_DIR)
    c.JupyterHub.template_paths = paths
    tvars = dict(c.JupyterHub.get("template_vars", {}))
    tvars.setdefault("uws_service_name", name)
    c.JupyterHub.template_vars = tvars
    if "spawner_class" not in c.JupyterHub:
        c.JupyterHub.spawner_class = "uws"
    # a job start answers after this many seconds (then it continues, with progress): short,
    # so the API and the pages are not held up by a Slurm queue
    tornado_settings = dict(c.JupyterHub.get("tornado_settings", {}))
    tornado_settings.setdefault("slow_spawn_timeout", 3)
    c.JupyterHub.tornado_settings = tornado_settings
    if "default_url" not in c.JupyterHub:  # people land on their workspaces after login
        base = c.JupyterHub.get("base_url", "/").rstrip("/")
        c.JupyterHub.default_url = f"{base}/services/{name}/"


def _uses_globus(c) -> bool:
    """Whether the hub logs in with Globus (`uws-globus`, `uws-account-api` or a subclass)."""
    from .config import UWS
    from .globus_tokens import is_globus_login

    try:
        cls = UWS(config=c).hub_authenticator_class()
    except Exception:  # noqa: BLE001 - an authenticator that cannot load: the hub says so
        return False
    return is_globus_login(cls)


def _validate(c) -> None:
    """Stop the hub at once, with one line, on a c.UWS setting that cannot work."""
    from traitlets import TraitError

    from .config import UWS
    from .errors import ConfigError

    try:
        UWS(config=c).validate()
    except ConfigError as e:
        hint = (
            " (uws_hub.setup(c) must come after your c.UWS settings)"
            if "is not set" in str(e)
            else ""
        )
        raise SystemExit(f"uws_hub: configuration error: {e}{hint}") from e
    except TraitError as e:
        raise SystemExit(f"uws_hub: configuration error: {str(e).splitlines()[0]}") from e


def load_config(config_file: str):
    """Read a jupyterhub_config.py the way the hub does; return the traitlets Config."""
    from .config import load_config_file

    return load_config_file(config_file)
