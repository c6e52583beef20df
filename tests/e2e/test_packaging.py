"""The package's entry points and the hub-side wiring of uws_hub.setup(c)."""

from importlib.metadata import entry_points

from traitlets.config import Config

import uws_hub
from uws_hub.authenticators.dev import UWSDevAuthenticator
from uws_hub.spawners import UWSJobSpawner, UWSLocalSpawner, UWSSlurmSpawner


def test_entry_points_load():
    spawners = {ep.name: ep for ep in entry_points(group="jupyterhub.spawners")}
    auths = {ep.name: ep for ep in entry_points(group="jupyterhub.authenticators")}
    assert spawners["uws"].load() is UWSJobSpawner
    assert spawners["uws-local"].load() is UWSLocalSpawner
    assert spawners["uws-slurm"].load() is UWSSlurmSpawner
    assert auths["uws-dev"].load() is UWSDevAuthenticator
    for name in ("uws-local", "uws-globus", "uws-ldap", "uws-account-api"):
        assert auths[name].load().__name__.startswith("UWS")


def test_setup_wires_service_roles_and_servers(tmp_path):
    c = Config()
    c.UWS.root_dir = str(tmp_path)
    c.UWS.db_url = f"sqlite:///{tmp_path}/uws.sqlite"
    c.UWS.admin_groups = {"hpc-staff"}
    c.Authenticator.admin_users = {"root-admin"}
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    uws_hub.setup(c, config_file=str(tmp_path / "jupyterhub_config.py"))
    (svc,) = [s for s in c.JupyterHub.services if s["name"] == "uws"]
    assert svc["command"][-2:] == ["--config", str(tmp_path / "jupyterhub_config.py")]
    assert svc["url"] == "http://127.0.0.1:10101" and svc["oauth_no_confirm"] is True
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert {
        "self",
        "read:groups",
        "access:services!service=uws",
        "custom:uws:workspaces!user",
    } <= set(roles["user"]["scopes"])
    assert "custom:uws:workspaces" in roles["uws-admin"]["scopes"]
    assert roles["uws-admin"]["users"] == ["root-admin"] and roles["uws-admin"]["groups"] == [
        "hpc-staff"
    ]
    assert roles["uws-service"]["services"] == ["uws"]
    assert "custom:uws:workspaces" in c.JupyterHub.custom_scopes
    assert c.JupyterHub.allow_named_servers is True and c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.spawner_class == "uws"
    assert c.JupyterHub.default_url == "/services/uws/"
    assert c.JupyterHub.tornado_settings["slow_spawn_timeout"] == 3
    assert c.JupyterHub.template_paths[0] == uws_hub.TEMPLATE_DIR
    # calling it twice changes nothing
    before = repr(c)
    uws_hub.setup(c, config_file=str(tmp_path / "jupyterhub_config.py"))
    assert repr(c) == before
