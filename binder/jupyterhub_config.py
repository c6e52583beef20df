# The demo hub's configuration (started by binder/uws_demo.py; see docs/binder.md).
#
# It is the repository's `make run` configuration (../jupyterhub_config.py: SQLite, the local
# spawner, the development login, data under $UWS_DATA_DIR) with three changes for a Binder
# session:
#   - the hub lives under the prefix the person reaches it at through jupyter-server-proxy
#     ($UWS_DEMO_BASE_URL, e.g. /user/<binder id>/uws-demo/);
#   - the login page says how to log in;
#   - stopping the demo stops its jobs (a Binder session leaves nothing behind).
# It runs as the Binder account (never root), so uws_hub is in single-account mode: every login
# works as that one account. Demo only: never use this for a hub that people share.
import html
import os

c = get_config()  # noqa

here = os.path.dirname(os.path.abspath(__file__))
base_url = os.environ.get("UWS_DEMO_BASE_URL", "/uws-demo/")
password = html.escape(os.environ.get("UWS_DEV_PASSWORD", ""))

# everything else, and uws_hub.setup(c), comes from the `make run` configuration (loaded into
# a config of its own and merged here: what follows overrides it)
load_subconfig(os.path.join(os.path.dirname(here), "jupyterhub_config.py"))  # noqa

c.JupyterHub.base_url = base_url
c.JupyterHub.default_url = f"{base_url}services/uws/"  # as uws_hub.setup(c), with the prefix
c.JupyterHub.template_vars = {
    **c.JupyterHub.template_vars,
    "announcement_login": (
        "<strong>uws_hub demo.</strong> Log in with any name and the password "
        f"<code>{password}</code>: <code>alice</code> and <code>bob</code> have sample "
        "workspaces (and bob an invitation from alice); <code>admin</code> is an administrator."
    ),
    "announcement": "uws_hub demo: everything here disappears when this Binder session ends.",
}
c.JupyterHub.cleanup_servers = True
