"""The hub API a starting job reports its port to: ``POST /hub/api/batchspawner``.

batchspawner's own handler sets *every* attribute named in the request body on the spawner
whose token made the request — a job could change the hub's spawner state (its child spawner,
class names) that way. This replacement, registered in its place, accepts only ``{"port": N}``
(an integer port), only from the token of a server that is starting.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers import APIHandler, default_handlers
from tornado import web

ROUTE = r"/api/batchspawner"


class PortReportHandler(APIHandler):
    @web.authenticated
    def post(self):
        """Record the port of the starting server whose token made the request."""
        token = self.get_auth_token()
        spawner = next(
            (
                s
                for s in self.current_user.spawners.values()
                if s.api_token and s.api_token == token
            ),
            None,
        )
        if spawner is None:
            raise web.HTTPError(403, "This token belongs to no server of this user.")
        if not spawner._spawn_pending:
            raise web.HTTPError(409, "The server is not starting; its port cannot change now.")
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, 'Body must be JSON like {"port": 8888}.') from e
        port = data.get("port") if isinstance(data, dict) else None
        if (
            set(data) != {"port"}
            or not isinstance(port, int)
            or isinstance(port, bool)
            or not 1 <= port <= 65535
        ):
            raise web.HTTPError(400, 'Body must be exactly {"port": <1-65535>}.')
        spawner.port = port
        self.set_status(201)
        self.finish(json.dumps({"message": "port recorded"}))


def install() -> None:
    """Put our handler where batchspawner registered its own (import batchspawner first)."""
    import batchspawner  # noqa: F401 - registers its handler, which we replace

    for i, (route, *_rest) in enumerate(default_handlers):
        if route == ROUTE:
            default_handlers[i] = (ROUTE, PortReportHandler)
            return
    default_handlers.append((ROUTE, PortReportHandler))
