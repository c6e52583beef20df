"""A local stand-in for a dataset lookup service of the kind HuBMAP runs, for tests of dataset
links (``c.UWS.dataset_resolver = "http"``).

It answers the bulk call UWS's HubmapLocalFileSystemStorage made (UWS-REFERENCE §3.2), on one
real HTTP server on 127.0.0.1:

``POST /datasets/file-system-abs-path`` with a JSON list of dataset ids and
``Authorization: Bearer <Globus groups token>`` → 200 and a list with one entry per id:
``{"uuid", "path"}`` for a dataset the token's holder may read, ``{"uuid", "error"}`` for one
that does not exist or that they may not read. A missing or unknown token → 401
``{"error": ...}``; a body that is not a list of strings → 400.

Tests say which datasets exist (`add_dataset`: its directory, public or not) and what each
token may read (`add_token`); every call is in the request log (`lookups` counts them), and
the base class injects failures (an error status, a delay, a dropped connection). As a
subprocess: ``python -m standins.datasets``; controls are ``POST /_standin/<method>``.
"""

from __future__ import annotations

import json

from ._server import Request, Response, StandinServer, json_response

PATH_LOOKUP = "/datasets/file-system-abs-path"


class DatasetLookupStandin(StandinServer):
    name = "datasets"
    control_methods = StandinServer.control_methods + ("add_dataset", "add_token", "lookups")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.datasets: dict[str, tuple[str, bool]] = {}  # uuid -> (path, public)
        self.tokens: dict[str, set[str]] = {}  # token -> uuids its holder may read

    @property
    def lookup_url(self) -> str:
        return self.url + PATH_LOOKUP

    def add_dataset(self, uuid: str, path: str, *, public: bool = False) -> None:
        """A dataset at `path`; a public one every valid token may read."""
        with self.lock:
            self.datasets[uuid] = (path, public)

    def add_token(self, token: str, readable: list[str] | tuple[str, ...] = ()) -> None:
        """A valid groups token whose holder may read the protected datasets `readable`."""
        with self.lock:
            self.tokens[token] = set(readable)

    def lookups(self) -> int:
        """How many lookups (POSTs to the lookup path) arrived."""
        return len(self.requests_to(PATH_LOOKUP, "POST"))

    def handle(self, req: Request) -> Response:
        if req.path != PATH_LOOKUP:
            return json_response({"error": f"Not found: {req.path}"}, 404)
        if req.method != "POST":
            return json_response({"error": "Method not allowed"}, 405)
        auth = req.header("Authorization") or ""
        kind, _, token = auth.partition(" ")
        with self.lock:
            readable = self.tokens.get(token) if kind.lower() == "bearer" else None
            datasets = dict(self.datasets)
        if readable is None:
            return json_response({"error": "Invalid or expired token"}, 401)
        try:
            uuids = json.loads(req.body)
        except ValueError:
            uuids = None
        if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
            return json_response({"error": "Body must be a JSON list of dataset uuids"}, 400)
        out = []
        for uuid in uuids:
            if uuid not in datasets:
                out.append({"uuid": uuid, "error": f"No dataset with uuid {uuid} was found"})
                continue
            path, public = datasets[uuid]
            if public or uuid in readable:
                out.append({"uuid": uuid, "path": path})
            else:
                out.append({"uuid": uuid, "error": "You do not have access to this dataset"})
        return json_response(out)


if __name__ == "__main__":
    DatasetLookupStandin.main()
