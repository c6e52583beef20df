"""A local stand-in for an account-provisioning API of the "PSC API" kind, for tests of the
account-API login.

The protocol is the one the seed system's PSC API client speaks: GraphQL over HTTP, every call a
``POST`` of ``{"operationName", "query", "variables"}`` as JSON to one root URL, authenticated by
the header ``Authorization: JWT <token>``. The operations (a query or mutation each):

``GetUserAndAllocationUsers(pscId | username | email)`` → ``data.user``: ``null`` or
    ``{uid, pscId, username, name{first,last}, email{primary}, allocationUsers[{startDate,
    endDate, active, user{...}, allocation{id, gid, grant{number}, resource{name, active},
    startDate, endDate, active}}]}``
``GetAllocationAndAllocationUsers(components{grant{number}, resource{name}})`` →
    ``data.allocation``: ``null`` or ``{id, gid, startDate, endDate, active, grant{number},
    resource{name, active}, allocationUsers[{active, startDate, endDate, user{username,
    name{first,last}}}]}``
``AddUserToAllocation(input{user{username}, allocation{components | id}})`` →
    ``data.addAllocationUser.allocationUser{startDate, endDate, active, user{username,
    name{first,last}}, allocation{...}}``
``AddUserWithAllocations(input{name{first,last}, affiliation{affiliationCode},
    email{primary}, allocations[{allocation{id}}]})`` → ``data.addUser.user{...}``: a new user
    whose username is the e-mail's local part (lower case, letters and digits, a digit suffix
    when taken) and whose uid comes from a counter (30000 up).

The stand-in does not parse GraphQL: it dispatches on ``operationName``. As in GraphQL, an empty
or missing ``operationName`` means "the one operation in ``query``", whose name is then read from
the ``query``/``mutation`` keyword (the seed's allocation look-up sends ``operationName: ""``).
It answers every field of each operation whatever the selection set asks for (a superset).

Errors follow graphene-django: a request the server cannot execute at all (no query, unknown
operation, invalid JSON) is ``400 {"errors": [...]}``; an error inside a resolver (unknown
allocation, duplicate e-mail, unknown user) is ``200 {"errors": [{"message", "path"}], "data":
{"<field>": null}}``; a missing or wrong JWT is ``401 {"errors": [{"message": "Unauthorized"}]}``.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from ._server import FailureRule, Request, Response, StandinServer, json_response

#: operationName -> (operation type, root field)
OPERATIONS = {
    "GetUserAndAllocationUsers": ("query", "user"),
    "GetAllocationAndAllocationUsers": ("query", "allocation"),
    "AddUserToAllocation": ("mutation", "addAllocationUser"),
    "AddUserWithAllocations": ("mutation", "addUser"),
}
_OPERATION_RE = re.compile(r"\b(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


class RequestError(Exception):
    """A request the GraphQL server cannot execute (HTTP 400)."""


class ResolverError(Exception):
    """An error inside a resolver (HTTP 200, ``data.<field>: null``)."""


def resolve_operation(payload: Any) -> tuple[str, str, dict[str, Any]]:
    """``(operation name, operation type, variables)`` of a GraphQL-over-HTTP request body."""
    if not isinstance(payload, dict):
        raise RequestError("The request body must be a JSON object.")
    query = payload.get("query")
    if not query or not isinstance(query, str):
        raise RequestError("Must provide query string.")
    ops = _OPERATION_RE.findall(query)
    name = payload.get("operationName") or None
    if name is None:
        if len(ops) > 1:
            raise RequestError("Must provide operation name if query contains multiple operations.")
        if not ops:
            raise RequestError(
                "Anonymous operations are not supported by the stand-in: name the operation."
            )
        kind, name = ops[0]
    else:
        kinds = {n: k for k, n in ops}
        if name not in kinds:
            raise RequestError(f"Unknown operation named '{name}'.")
        kind = kinds[name]
    if name not in OPERATIONS:
        raise RequestError(
            f"Unknown operation '{name}': the stand-in implements {', '.join(OPERATIONS)}."
        )
    if OPERATIONS[name][0] != kind:
        raise RequestError(f"Operation '{name}' must be a {OPERATIONS[name][0]}, not a {kind}.")
    variables = payload.get("variables") or {}
    if not isinstance(variables, dict):
        raise RequestError("Variables must be a JSON object.")
    return name, kind, variables


def operation_name_of(body: str) -> str | None:
    """The operation a request body names (None when it names none that is valid)."""
    try:
        return resolve_operation(json.loads(body))[0]
    except (ValueError, RequestError):
        return None


def _errors(message: str, status: int, path: str | None = None, data: Any = ...) -> Response:
    err: dict[str, Any] = {"message": message}
    if path:
        err["locations"] = [{"line": 3, "column": 5}]
        err["path"] = [path]
    body: dict[str, Any] = {"errors": [err]}
    if data is not ...:
        body["data"] = data
    return json_response(body, status)


class AccountAPIStandin(StandinServer):
    """The account-provisioning API stand-in. See the module docstring for the protocol.

    Args:
        jwt_token: the token clients must send as ``Authorization: JWT <jwt_token>``.
        path: the GraphQL root path; :attr:`root_url` is ``url + path``.
        first_uid: the uid of the first user AddUserWithAllocations creates.
    """

    name = "accountapi"
    control_methods = StandinServer.control_methods + (
        "add_allocation",
        "add_user",
        "add_allocation_user",
        "get_user",
        "find_user",
        "get_allocation",
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        jwt_token: str = "standin-jwt-token",
        path: str = "/api/graph/graphql",
        first_uid: int = 30000,
        verbose: bool = False,
    ):
        super().__init__(host, port, verbose=verbose)
        self.jwt_token = jwt_token
        self.path = "/" + path.strip("/")
        self._next_uid = first_uid
        self._users: dict[str, dict[str, Any]] = {}  # username -> record
        self._allocations: dict[str, dict[str, Any]] = {}  # id -> record
        self._memberships: list[dict[str, Any]] = []  # {username, allocation, start, end, active}

    @property
    def root_url(self) -> str:
        """The URL to configure as the API's root URL."""
        return self.url + self.path

    # ---- test controls ---------------------------------------------------------------------

    def add_allocation(
        self,
        allocation_id: str | int,
        grant_number: str,
        resource_name: str,
        gid: int,
        *,
        start_date: str = "2024-01-01",
        end_date: str = "2099-12-31",
        active: bool = True,
        resource_active: bool = True,
    ) -> dict[str, Any]:
        """Create (or replace) an allocation: a grant on a resource, with its unix group id."""
        rec = {
            "id": str(allocation_id),
            "gid": int(gid),
            "grant": str(grant_number),
            "resource": str(resource_name),
            "startDate": start_date,
            "endDate": end_date,
            "active": active,
            "resourceActive": resource_active,
        }
        with self.lock:
            self._allocations[rec["id"]] = rec
            return self._allocation_view(rec)

    def add_user(
        self,
        username: str,
        email: str,
        uid: int | None = None,
        first: str = "",
        last: str = "",
        allocations: list[str | int] | tuple[str | int, ...] = (),
        *,
        psc_id: str | None = None,
        affiliation: str | None = None,
    ) -> dict[str, Any]:
        """Create a user already known to the API (on ``allocations``, by id); returns the user as
        GetUserAndAllocationUsers would."""
        with self.lock:
            if username in self._users:
                raise ValueError(f"user {username!r} exists")
            for aid in allocations:
                if str(aid) not in self._allocations:
                    raise KeyError(f"no allocation {aid!r}")
            rec = self._new_user(username, email, uid, first, last, psc_id, affiliation)
            for aid in allocations:
                self._add_membership(username, str(aid))
            return self._user_view(rec)

    def add_allocation_user(
        self, username: str, allocation_id: str | int, active: bool = True
    ) -> dict[str, Any]:
        """Put an existing user on an allocation (an inactive membership with ``active=False``)."""
        with self.lock:
            m = self._add_membership(username, str(allocation_id))
            m["active"] = active
            return self._user_view(self._users[username])

    def get_user(self, username: str) -> dict[str, Any] | None:
        """A user as GetUserAndAllocationUsers returns it, or None."""
        with self.lock:
            rec = self._users.get(username)
            return self._user_view(rec) if rec else None

    def find_user(
        self, *, psc_id: str | None = None, username: str | None = None, email: str | None = None
    ) -> dict[str, Any] | None:
        with self.lock:
            rec = self._find(psc_id, username, email)
            return self._user_view(rec) if rec else None

    @property
    def users(self) -> list[dict[str, Any]]:
        """Every user, as GetUserAndAllocationUsers returns them."""
        with self.lock:
            return [self._user_view(u) for u in self._users.values()]

    def get_allocation(self, allocation_id: str | int) -> dict[str, Any] | None:
        with self.lock:
            rec = self._allocations.get(str(allocation_id))
            return self._allocation_view(rec) if rec else None

    def set_failure(  # type: ignore[override]
        self,
        operation_name: str | None = None,
        status: int | str | None = 500,
        delay: float = 0.0,
        times: int | None = None,
        message: str | None = None,
    ) -> FailureRule:
        """Make requests of ``operation_name`` (None: every request) fail or be slow.

        ``status``: an HTTP status (500, 502, 503...), ``200`` for a GraphQL error answer
        ``{"errors": [{"message"}], "data": null}``, ``None`` for only the ``delay`` (then a normal
        answer; a delay longer than the client's timeout is a timeout), or ``"drop"`` to close the
        connection. ``times``: how many requests get it (None: all, until clear_failures()).
        """
        body = None
        if status not in (None, "drop"):
            body = {"errors": [{"message": message or _DEFAULT_MESSAGES.get(status, "injected")}]}
            if status == 200:
                body["data"] = None
        return super().set_failure(operation_name, status, delay, times, body)

    @property
    def operations(self) -> list[tuple[str | None, dict[str, Any] | None]]:
        """``(operationName, variables)`` of every request so far (operationName as resolved)."""
        out = []
        for r in self.requests:
            try:
                variables = r.json().get("variables")
            except (ValueError, AttributeError):
                variables = None
            out.append((operation_name_of(r.body), variables))
        return out

    # ---- state helpers (call with the lock held) -------------------------------------------

    def _new_user(
        self,
        username: str,
        email: str,
        uid: int | None,
        first: str,
        last: str,
        psc_id: str | None,
        affiliation: str | None,
    ) -> dict[str, Any]:
        if uid is None:
            uid = self._next_uid
        self._next_uid = max(self._next_uid, int(uid) + 1)
        rec = {
            "uid": int(uid),
            "pscId": psc_id or f"P{uid}",
            "username": username,
            "first": first,
            "last": last,
            "email": email,
            "affiliation": affiliation,
        }
        self._users[username] = rec
        return rec

    def _add_membership(self, username: str, allocation_id: str) -> dict[str, Any]:
        if username not in self._users:
            raise KeyError(f"no user {username!r}")
        alloc = self._allocations[allocation_id]
        for m in self._memberships:
            if m["username"] == username and m["allocation"] == allocation_id:
                raise ValueError(f"user {username!r} is already on allocation {allocation_id}")
        m = {
            "username": username,
            "allocation": allocation_id,
            "startDate": alloc["startDate"],
            "endDate": alloc["endDate"],
            "active": True,
        }
        self._memberships.append(m)
        return m

    def _find(
        self, psc_id: str | None, username: str | None, email: str | None
    ) -> dict[str, Any] | None:
        if psc_id is None and username is None and email is None:
            return None
        for u in self._users.values():
            if (
                (psc_id is None or u["pscId"] == psc_id)
                and (username is None or u["username"] == username)
                and (email is None or (u["email"] or "").lower() == email.lower())
            ):
                return u
        return None

    def _find_allocation(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            return None
        if ref.get("id") is not None:
            return self._allocations.get(str(ref["id"]))
        comps = ref.get("components") or {}
        grant = str((comps.get("grant") or {}).get("number"))
        resource = str((comps.get("resource") or {}).get("name"))
        for a in self._allocations.values():
            if a["grant"] == grant and a["resource"] == resource:
                return a
        return None

    @staticmethod
    def _name(u: dict[str, Any]) -> dict[str, str]:
        return {"first": u["first"], "last": u["last"]}

    def _allocation_short(self, a: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": a["id"],
            "gid": a["gid"],
            "startDate": a["startDate"],
            "endDate": a["endDate"],
            "active": a["active"],
            "grant": {"number": a["grant"]},
            "resource": {"name": a["resource"], "active": a["resourceActive"]},
        }

    def _membership_view(self, m: dict[str, Any]) -> dict[str, Any]:
        u = self._users[m["username"]]
        return {
            "startDate": m["startDate"],
            "endDate": m["endDate"],
            "active": m["active"],
            "user": {"username": u["username"], "name": self._name(u)},
            "allocation": self._allocation_short(self._allocations[m["allocation"]]),
        }

    def _user_view(self, u: dict[str, Any]) -> dict[str, Any]:
        return {
            "uid": u["uid"],
            "pscId": u["pscId"],
            "username": u["username"],
            "name": self._name(u),
            "email": {"primary": u["email"]},
            "allocationUsers": [
                self._membership_view(m)
                for m in self._memberships
                if m["username"] == u["username"]
            ],
        }

    def _allocation_view(self, a: dict[str, Any]) -> dict[str, Any]:
        view = self._allocation_short(a)
        view["allocationUsers"] = [
            {k: v for k, v in self._membership_view(m).items() if k != "allocation"}
            for m in self._memberships
            if m["allocation"] == a["id"]
        ]
        return view

    def _username_for(self, email: str) -> str:
        base = re.sub(r"[^a-z0-9]", "", email.split("@", 1)[0].lower())
        if not base or not base[0].isalpha():
            base = "u" + base
        candidate, n = base, 1
        while candidate in self._users:
            candidate, n = f"{base}{n}", n + 1
        return candidate

    # ---- HTTP ------------------------------------------------------------------------------

    def _failure_key(self, req: Request) -> str | None:
        return operation_name_of(req.logged.body)

    def _rule_matches(self, rule: FailureRule, key: str | None) -> bool:
        return rule.match is None or rule.match == key

    def _failure_body(self, rule: FailureRule) -> Response:
        return json_response(rule.body, int(rule.status))  # type: ignore[arg-type]

    def handle(self, req: Request) -> Response:
        """The GraphQL endpoint: ``POST <root_url>`` only."""
        if req.path.rstrip("/") != self.path.rstrip("/"):
            return _errors(f"Not found: {req.path}", 404)
        if req.method != "POST":
            return _errors("GraphQL only supports POST requests here.", 405)
        auth = req.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme != "JWT" or not token or token.strip() != self.jwt_token:
            return _errors("Unauthorized", 401)
        try:
            payload = json.loads(req.body or b"null")
        except ValueError:
            return _errors("POST body sent invalid JSON.", 400)
        try:
            name, _kind, variables = resolve_operation(payload)
        except RequestError as exc:
            return _errors(str(exc), 400)
        field = OPERATIONS[name][1]
        resolver = {
            "GetUserAndAllocationUsers": self._op_get_user,
            "GetAllocationAndAllocationUsers": self._op_get_allocation,
            "AddUserToAllocation": self._op_add_user_to_allocation,
            "AddUserWithAllocations": self._op_add_user_with_allocations,
        }[name]
        with self.lock:
            try:
                result = resolver(variables)
            except ResolverError as exc:
                return _errors(str(exc), 200, field, {field: None})
        return json_response({"data": {field: result}})

    def _op_get_user(self, v: dict[str, Any]) -> dict[str, Any] | None:
        rec = self._find(v.get("pscId"), v.get("username"), v.get("email"))
        return self._user_view(rec) if rec else None

    def _op_get_allocation(self, v: dict[str, Any]) -> dict[str, Any] | None:
        rec = self._find_allocation({"components": v.get("components") or {}})
        return self._allocation_view(rec) if rec else None

    def _op_add_user_to_allocation(self, v: dict[str, Any]) -> dict[str, Any]:
        inp = v.get("input") or {}
        username = (inp.get("user") or {}).get("username")
        if username not in self._users:
            raise ResolverError("User matching query does not exist.")
        alloc = self._find_allocation(inp.get("allocation") or {})
        if alloc is None:
            raise ResolverError("Allocation matching query does not exist.")
        try:
            m = self._add_membership(username, alloc["id"])
        except ValueError as exc:
            raise ResolverError(str(exc)) from None
        return {"allocationUser": self._membership_view(m)}

    def _op_add_user_with_allocations(self, v: dict[str, Any]) -> dict[str, Any]:
        inp = v.get("input") or {}
        email = ((inp.get("email") or {}).get("primary") or "").strip()
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            raise ResolverError("Enter a valid email address.")
        if any((u["email"] or "").lower() == email.lower() for u in self._users.values()):
            raise ResolverError("User with this Email already exists.")
        allocs = []
        for item in inp.get("allocations") or []:
            alloc = self._find_allocation((item or {}).get("allocation") or {})
            if alloc is None:
                raise ResolverError("Allocation matching query does not exist.")
            allocs.append(alloc)
        name = inp.get("name") or {}
        rec = self._new_user(
            self._username_for(email),
            email,
            None,
            name.get("first") or "",
            name.get("last") or "",
            None,
            (inp.get("affiliation") or {}).get("affiliationCode"),
        )
        for alloc in allocs:
            self._add_membership(rec["username"], alloc["id"])
        return {"user": self._user_view(rec)}

    # ---- command line ----------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--jwt-token", default="standin-jwt-token")
        parser.add_argument("--path", default="/api/graph/graphql")
        parser.add_argument(
            "--allocation",
            action="append",
            default=[],
            metavar="ID:GRANT:RESOURCE:GID",
            help="create an allocation (repeatable)",
        )
        parser.add_argument(
            "--user", action="append", default=[], help="JSON keyword arguments of add_user"
        )

    def configure(self, args: argparse.Namespace) -> None:
        self.jwt_token = args.jwt_token
        self.path = "/" + args.path.strip("/")
        for spec in args.allocation:
            aid, grant, resource, gid = spec.split(":")
            self.add_allocation(aid, grant, resource, int(gid))
        for spec in args.user:
            self.add_user(**json.loads(spec))


_DEFAULT_MESSAGES = {
    200: "Injected GraphQL error",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


if __name__ == "__main__":
    AccountAPIStandin.main()
