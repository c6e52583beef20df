"""``uws-test-job``: a small server for the ``test_job`` job type.

It starts in a fraction of a second, answers the hub's readiness check (``<prefix>api``) and,
for a request with the job's own token or the owner's token, reports who it runs as and where
— what the tests check about jobs (account, working directory, environment) without starting
JupyterLab. Everything else needs a token, like a real server.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
from urllib.parse import urlparse

from tornado import ioloop, web

_auth = None


def hub_auth():
    """JupyterHub's HubAuth, imported on first use: the server itself stays small."""
    global _auth
    if _auth is None:
        from jupyterhub.services.auth import HubAuth

        _auth = HubAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    return _auth


class InfoHandler(web.RequestHandler):
    async def get(self, path: str = "") -> None:
        if path == "api" or path.startswith("api/"):
            self.finish({"version": "uws-test-job"})
            return
        self.auth = hub_auth()
        user = await self.auth.get_user(self, sync=False)
        if not user or not self.auth.check_scopes(self.auth.access_scopes, user):
            raise web.HTTPError(403, "a token of the job's owner is needed")
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "uid": os.getuid(),
                    "gid": os.getgid(),
                    "cwd": os.getcwd(),
                    "hostname": socket.gethostname(),
                    "job_id": os.environ.get("UWS_JOB_ID"),
                    "workspace": os.environ.get("UWS_WORKSPACE_DIR"),
                    "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                    "home": os.environ.get("HOME"),
                    "path": os.environ.get("PATH"),
                    "params": {k: v for k, v in os.environ.items() if k.startswith("UWS_PARAM_")},
                    "cpus_allowed": sorted(os.sched_getaffinity(0)),
                    "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
                    "mem_limit": os.environ.get("MEM_LIMIT"),
                    "requester": user.get("name"),
                }
            )
        )


def main() -> None:
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    app = web.Application([(rf"{prefix}(.*)", InfoHandler)])
    app.listen(url.port, url.hostname or "127.0.0.1")
    print(
        f"uws-test-job listening on {url.geturl()} as uid {os.getuid()} in {os.getcwd()}",
        file=sys.stderr,
        flush=True,
    )
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
