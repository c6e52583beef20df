# uws_hub's runnable default configuration (`make run`): embedded SQLite, the local spawner, a
# development login and data under $UWS_DATA_DIR (default ./uws-data). A site copies what it
# needs into its own jupyterhub_config.py; the last line, uws_hub.setup(c), is the one call
# that wires uws_hub in.
#
# Environment:
#   UWS_DATA_DIR      where databases, cookie secrets and workspaces live (default ./uws-data)
#   UWS_DEV_PASSWORD  the development login's shared password (make run generates one)
#   UWS_HUB_PORT      the public port (default 8000); UWS_HUB_IP (default 127.0.0.1)
#   UWS_DEV_ADMINS    comma-separated hub admins for the development login (default: admin)
#   UWS_SLURM=1       also offer the local Slurm cluster (scripts/slurm.sh start) as a resource
import os
import sys

import uws_hub
from uws_hub.config import PORTAL_PARAMETER_MAPPING, with_portal_parameters

c = get_config()  # noqa

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.abspath(os.environ.get("UWS_DATA_DIR") or os.path.join(here, "uws-data"))
for sub in ("hub", "workspaces"):
    os.makedirs(os.path.join(data, sub), exist_ok=True)
# the workspace root must be traversable by the accounts jobs run as
os.chmod(os.path.join(data, "workspaces"), 0o755)

ip = os.environ.get("UWS_HUB_IP", "127.0.0.1")
port = int(os.environ.get("UWS_HUB_PORT", "8000"))

c.JupyterHub.ip = ip
c.JupyterHub.port = port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("UWS_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('UWS_PROXY_API_PORT', '8001')}"
c.JupyterHub.db_url = f"sqlite:///{data}/hub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{data}/hub/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{data}/hub/jupyterhub.pid"
c.ConfigurableHTTPProxy.pid_file = f"{data}/hub/proxy.pid"
chp = os.path.join(os.path.dirname(sys.executable), "configurable-http-proxy")
if os.path.exists(chp):  # the npm proxy `make run` installs into the venv
    c.ConfigurableHTTPProxy.command = [chp]

c.JupyterHub.authenticator_class = "uws-dev"
c.Authenticator.admin_users = {
    a.strip() for a in os.environ.get("UWS_DEV_ADMINS", "admin").split(",") if a.strip()
}
c.JupyterHub.spawner_class = "uws"

c.UWS.root_dir = os.path.join(data, "workspaces")
c.UWS.db_url = f"sqlite:///{data}/uws.sqlite"
c.UWS.cookie_secret_file = os.path.join(data, "hub", "uws_cookie_secret")
c.UWS.service_url = f"http://127.0.0.1:{os.environ.get('UWS_SERVICE_PORT', '10101')}"
datasets = os.path.join(data, "datasets")
os.makedirs(datasets, exist_ok=True)
c.UWS.symlink_roots = [datasets]
c.UWS.resources = {
    "local": {"kind": "local", "name": "This computer", "max_cpus": os.cpu_count() or 1}
}
if os.environ.get("UWS_SLURM") == "1":
    c.UWS.resources["slurm"] = {
        "kind": "slurm",
        "name": "Slurm (debug partition)",
        "partition": "debug",
    }
# the launch parameters: uws_hub's own (the default) and the two the HuBMAP portal sends; each
# resource's parameter_mapping says which it takes and as what (as UWS's did)
c.UWS.parameters = with_portal_parameters()
for resource in c.UWS.resources.values():
    # the portal's time_limit_minutes and gpu_enabled (true: one GPU, refused where a resource
    # has none) onto the same options as uws_hub's own
    resource["parameter_mapping"] = dict(PORTAL_PARAMETER_MAPPING)
c.UWS.job_types = {
    "jupyter_lab": {"name": "JupyterLab"},
    "test_job": {
        "name": "Test server (quick start, for trying things out)",
        "command": ["uws-test-job"],
    },
}

uws_hub.setup(c)
