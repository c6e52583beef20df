# JupyterHub config for the test suite: every knob comes from UWS_TEST_* variables set by
# tests/e2e/hubtest.py (random ports, temporary directories). Ends with uws_hub.setup(c), as a site would.
import json
import os
import sys

import uws_hub
from uws_hub.config import PORTAL_PARAMETER_MAPPING, with_portal_parameters

c = get_config()  # noqa

env = os.environ
d = env["UWS_TEST_DIR"]
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env["UWS_TEST_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env["UWS_TEST_HUB_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['UWS_TEST_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.pid_file = f"{d}/proxy.pid"
c.ConfigurableHTTPProxy.command = [
    env.get(
        "UWS_TEST_CHP", os.path.join(os.path.dirname(sys.executable), "configurable-http-proxy")
    )
]
c.JupyterHub.db_url = env.get("UWS_TEST_HUB_DB_URL", f"sqlite:///{d}/jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = f"{d}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{d}/jupyterhub.pid"
c.JupyterHub.log_level = "INFO"

c.JupyterHub.authenticator_class = "uws-dev"
c.UWSDevAuthenticator.password = env.get("UWS_TEST_PASSWORD", "test-password")
c.Authenticator.admin_users = {"uwst-admin"}

# a service holding the hub's admin role: the tests' own way to create users and tokens
# and a "portal" service operating uws for users (the uws-admin role)
c.JupyterHub.services = [
    {"name": "test-admin", "api_token": env["UWS_TEST_ADMIN_TOKEN"]},
    {"name": "test-portal", "api_token": env["UWS_TEST_ADMIN_TOKEN"][::-1]},
]
c.JupyterHub.load_roles = [
    {"name": "admin", "services": ["test-admin"]},
    {"name": "uws-admin", "services": ["test-portal"]},
]
c.UWS.token_cache_seconds = int(env.get("UWS_TEST_TOKEN_CACHE", "2"))

c.UWS.root_dir = env["UWS_TEST_ROOT"]
c.UWS.db_url = env.get("UWS_TEST_DB_URL", f"sqlite:///{d}/uws.sqlite")
c.UWS.cookie_secret_file = f"{d}/uws_cookie_secret"
c.UWS.service_url = f"http://127.0.0.1:{env['UWS_TEST_SERVICE_PORT']}"
c.UWS.symlink_roots = json.loads(env.get("UWS_TEST_SYMLINK_ROOTS", "[]"))
c.UWS.reconcile_interval = float(env.get("UWS_TEST_RECONCILE_INTERVAL", "1"))
c.UWS.audit_retention_days = 3650  # tests/e2e/test_audit.py puts older events in
c.UWS.cors_allowed_origins = ["https://portal.example.org"]
c.UWS.token_client_services = {"test-portal"}  # may exchange user_info for tokens
c.AccountMapping.create_accounts = True
c.UWS.resources = {
    "local": {"kind": "local", "name": "This server", "max_cpus": 4, "max_memory_mb": 8192},
    "local-capped": {
        "kind": "local",
        "name": "This server, memory enforced",
        "enforce_memory": True,
    },
    "slurm": {
        "kind": "slurm",
        "name": "Cluster (debug)",
        "partition": "debug",
        "max_cpus": 8,
        "max_gpus": 2,
        # GPUs as a generic resource the test cluster lacks: Slurm refuses them in its own
        # words (test_jobs.py); the cluster's stand-in GPUs are slurm-short's
        "gpu_gres": "tpu",
    },
    "slurm-short": {
        "kind": "slurm",
        "name": "Cluster (short)",
        "partition": "short",
        "max_time_limit_min": 30,
        "max_gpus": 1,
        "gpu_partition": "gpu",
    },
    # the same cluster through its slurmrestd, and the second cluster (scripts/slurm.sh) both
    # ways: its slurmrestd, and its commands with its own slurm.conf
    "slurm-rest": {
        "kind": "slurm",
        "name": "Cluster (debug, through slurmrestd)",
        "cluster": "uws-rest",
        "partition": "debug",
        "max_cpus": 8,
        "extra_directives": ["--comment=uws-rest-test"],
    },
    "slurm2": {
        "kind": "slurm",
        "name": "Second cluster",
        "cluster": "uws2",
        "partition": "batch",
        "max_cpus": 4,
    },
    "slurm2-commands": {
        "kind": "slurm",
        "name": "Second cluster (commands)",
        "cluster": "uws2-commands",
        "partition": "batch",
        "max_cpus": 4,
    },
}
_slurm = env.get("UWS_TEST_SLURM_DIR", "/tmp/uws-slurm")
_slurm2 = env.get("UWS_TEST_SLURM2_DIR", "/tmp/uws-slurm2")
_rest = {"way": "rest", "read_user": "uwst-slurmread", "operator_user": "root"}
c.UWS.slurm_clusters = {
    "default": {"way": "commands", "name": "uws"},
    "uws-rest": {
        **_rest,
        "name": "uws",
        "url": env.get("UWS_TEST_SLURMRESTD", "http://127.0.0.1:6820"),
        "jwt_key_file": f"{_slurm}/state/jwt_hs256.key",
    },
    "uws2": {
        **_rest,
        # the second cluster has accounting (slurmdbd), so a real Slurm operator
        "operator_user": "uwst-slurmop",
        "name": "uws2",
        "url": env.get("UWS_TEST_SLURMRESTD2", "http://127.0.0.1:6821"),
        "jwt_key_file": f"{_slurm2}/state/jwt_hs256.key",
        "poll_interval": float(env.get("UWS_TEST_SLURM_POLL", "2")),
    },
    "uws2-commands": {
        "way": "commands",
        "name": "uws2",
        "slurm_conf": "/etc/slurm-uws2/slurm.conf",
    },
}
# the parameters: uws_hub's own and the two the HuBMAP portal sends, which every resource maps
# to its options (UWS's parameter_mapping; tests/e2e/test_parameter_mapping.py)
c.UWS.parameters = with_portal_parameters()
for _res in c.UWS.resources.values():
    _res["parameter_mapping"] = dict(PORTAL_PARAMETER_MAPPING)
c.UWS.job_types = {
    "jupyter_lab": {"name": "JupyterLab"},
    "test_job": {
        "name": "Test job",
        "command": ["uws-test-job"],
        "environment": {"UWS_TEST_MARK": "test-job"},
    },
    # jobs that fail on purpose: before the server starts, and right after it starts
    "broken_job": {
        "name": "Broken",
        "command": ["uws-test-job"],
        "prologue": "echo 'uws test: failing on purpose' >&2; exit 3",
    },
    "crashing_job": {"name": "Crashing", "command": ["false"]},
    "slow_job": {"name": "Slow to start", "command": ["uws-test-job"], "prologue": "sleep 6"},
    "local_only": {"name": "Local only", "command": ["uws-test-job"], "resources": ["local"]},
}
c.UWS.job_sync_interval = float(env.get("UWS_TEST_JOB_SYNC", "1"))
c.UWS.job_orphan_grace = float(env.get("UWS_TEST_ORPHAN_GRACE", "5"))
c.UWS.slurm_poll_interval = float(env.get("UWS_TEST_SLURM_POLL", "2"))
c.Spawner.poll_interval = int(env.get("UWS_TEST_POLL_INTERVAL", "3"))
c.UWS.max_upload_size = int(env.get("UWS_TEST_MAX_UPLOAD", str(64 * 1024**2)))
c.UWS.max_json_body_size = 1024 * 1024
# short enough for tests/e2e/test_reliability.py to see a stalled body answered
c.UWS.body_idle_timeout = float(env.get("UWS_TEST_BODY_IDLE_TIMEOUT", "4"))
c.UWS.body_timeout = float(env.get("UWS_TEST_BODY_TIMEOUT", "8"))
# rate limits on but out of reach: tests and benches call fast from one address
# (tests/e2e/test_reliability.py checks them on a hub of its own with small ones)
c.UWS.rate_limit_per_token = c.UWS.rate_limit_per_address = 1000.0

# extra settings a test needs (e.g. a deliberately wrong one), as Python statements
exec(env.get("UWS_TEST_EXTRA_CONFIG", ""))

uws_hub.setup(c)
