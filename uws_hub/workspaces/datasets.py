"""Dataset links: ``workspace_details.symlinks: [{"name": "datasets/<id>", "dataset_uuid":
"<id>"}]`` (as portal-ui sends them, with the caller's ``globus_groups_token``) become links to
the datasets' directories on this server.

The site chooses how an id becomes a directory (``c.UWS.dataset_resolver``):

- ``template``: a fixed layout, ``c.UWS.dataset_path_template`` with the id filled in
  (``/data/{uuid}``); an id whose directory does not exist is unknown. No token is needed:
  who may read a dataset is left to the filesystem, as the job runs as its owner.
- ``http``: a lookup service of the kind HuBMAP runs (UWS-REFERENCE §3.2). All of a request's
  ids go in **one** ``POST <c.UWS.dataset_lookup_url>`` (a JSON list of ids) with
  ``Authorization: Bearer <globus_groups_token>``; it answers a list of ``{uuid, path}`` for the
  datasets the caller may read and ``{uuid, error}`` for the others.

Either way the directory must lie under ``c.UWS.symlink_roots`` (as any symlink's source), and
a request is applied only when every one of its datasets resolved: an unknown, forbidden or
unresolvable id is a 400 naming them all (UWS answered 500), with UWS's text. The lookup
service failing is 502 (it answered an error) or 503 (it could not be reached), with UWS's
"Server side error: …". The token is passed on, never stored, logged or echoed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from ..errors import BadRequest, UWSError
from ..users.tokens import check_credential
from .paths import check_symlink_source
from .specs import DetailsSpec, SymlinkSpec

if TYPE_CHECKING:
    from ..config import UWS

log = logging.getLogger("uws_hub.workspaces")

#: UWS's texts (UWS-REFERENCE §3.2), verbatim
NO_TOKEN = "No globus_groups_token passed when trying to use dataset_uuid."
LOOKUP_ERRORS = "Errors encountered when attempting to gather UUID information: {}"
SERVER_ERROR = "Server side error: {}"
NOT_FOUND = "Dataset not found."
#: how much of a lookup service's own text is passed on to the client
TEXT_MAX = 300

#: one dataset's answer: {"path": ...} or {"error": ...}
Answer = dict[str, str]


class Resolver(Protocol):
    needs_token: bool

    async def lookup(self, uuids: list[str], token: str | None) -> dict[str, Answer]:
        """Where each dataset lies ({"path"}) or why not ({"error"}); a UWSError when the
        whole lookup failed."""


class TemplateResolver:
    """Datasets at a fixed place: ``template.format(uuid=id)``."""

    needs_token = False

    def __init__(self, template: str):
        self.template = template

    async def lookup(self, uuids: list[str], token: str | None) -> dict[str, Answer]:
        return {u: {"path": self.template.format(uuid=u)} for u in uuids}


class HttpResolver:
    """Datasets a lookup service knows (one POST for all of a request's ids)."""

    needs_token = True

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout

    async def lookup(self, uuids: list[str], token: str | None) -> dict[str, Answer]:
        req = HTTPRequest(
            self.url,
            method="POST",
            body=json.dumps(uuids),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            connect_timeout=min(self.timeout, 10.0),
            request_timeout=self.timeout,
            follow_redirects=False,  # the token goes to this URL and nowhere else
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except (HTTPClientError, OSError) as e:  # refused, unreachable, timed out
            raise self._unreachable(str(e)) from None
        if resp.code == 599:
            raise self._unreachable(str(resp.error))
        text = _text(resp, token)
        if 200 <= resp.code < 300:
            return self._answers(resp, uuids, token)
        if resp.code in (401, 403):
            raise BadRequest(
                "The dataset lookup service did not accept the globus_groups_token.",
                detail=f"It answered {resp.code}: {text or '(nothing)'}. Log in again to get a "
                "fresh token, then retry. Nothing was changed.",
            )
        if 400 <= resp.code < 500:
            # it refused the ids themselves: each is unresolvable, for the reason it gave
            return {u: {"error": text or f"HTTP {resp.code}"} for u in uuids}
        log.warning("dataset lookup at %s answered %s: %s", self.url, resp.code, text)
        raise UWSError(
            SERVER_ERROR.format(text or f"the dataset lookup service answered {resp.code}."),
            status_code=502,
            detail=f"The dataset lookup service answered HTTP {resp.code}; nothing was changed. "
            "Try again later; if it persists, tell an administrator.",
        )

    def _unreachable(self, reason: str) -> UWSError:
        log.warning("dataset lookup at %s failed: %s", self.url, reason)
        return UWSError(
            SERVER_ERROR.format(f"the dataset lookup service could not be reached ({reason})."),
            status_code=503,
            headers={"Retry-After": "10"},
            detail="Nothing was changed. Try again in a minute; if it persists, tell an "
            "administrator (c.UWS.dataset_lookup_url).",
        )

    def _answers(
        self, resp: HTTPResponse, uuids: list[str], token: str | None
    ) -> dict[str, Answer]:
        try:
            items = json.loads(resp.body)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            log.warning("dataset lookup at %s: not a list of objects", self.url)
            raise UWSError(
                SERVER_ERROR.format(
                    "the dataset lookup service's answer is not a list of {uuid, path}."
                ),
                status_code=502,
                detail="Nothing was changed; tell an administrator (c.UWS.dataset_lookup_url).",
            )
        out: dict[str, Answer] = {}
        for item in items:
            uuid = item.get("uuid")
            if uuid not in uuids or uuid in out:
                continue
            if "error" in item or not isinstance(item.get("path"), str):
                error = str(item.get("error") or "no path given")
                out[uuid] = {"error": _clip(error.replace(token, "[token]") if token else error)}
            else:
                out[uuid] = {"path": item["path"]}
        return out


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 3] + "..."


def _text(resp: HTTPResponse, token: str | None) -> str:
    """The service's own words (an error message), short, on one line, without the token."""
    body = (resp.body or b"")[:4096].decode("utf-8", "replace")
    if token:
        body = body.replace(token, "[token]")
    return _clip(body)


def resolver_for(settings: UWS) -> Resolver | None:
    """The resolver `settings` choose (None: dataset links are refused)."""
    if settings.dataset_resolver == "template":
        return TemplateResolver(settings.dataset_path_template)
    if settings.dataset_resolver == "http":
        return HttpResolver(settings.dataset_lookup_url, settings.dataset_lookup_timeout)
    return None


async def resolve_links(
    details: DetailsSpec,
    token: Any,
    resolver: Resolver | None,
    symlink_roots: list[str],
    run: Callable[..., Awaitable[Any]],
) -> DetailsSpec:
    """`details` with its dataset links resolved into symlinks (one lookup for all of them),
    or a 400 naming what did not resolve; the filesystem checks run through `run` (an
    executor). Changes nothing."""
    if not details.datasets:
        return details
    if resolver is None:
        raise BadRequest(
            "Dataset links (symlinks with dataset_uuid) are not enabled on this server.",
            detail="The administrator has not configured c.UWS.dataset_resolver; link a "
            "source_path under the allowed locations instead.",
        )
    if resolver.needs_token:
        if not token:
            raise BadRequest(NO_TOKEN)
        token = check_credential(token, "globus_groups_token")
    uuids = list(dict.fromkeys(d.uuid for d in details.datasets))
    answers = await resolver.lookup(uuids, token if resolver.needs_token else None)
    paths = await run(_check_paths, uuids, answers, list(symlink_roots))
    links = [SymlinkSpec(d.parts, paths[d.uuid], d.uuid) for d in details.datasets]
    return DetailsSpec(
        files=details.files, symlinks=details.symlinks + links, renames=details.renames
    )


def _check_paths(uuids: list[str], answers: dict[str, Answer], roots: list[str]) -> dict[str, str]:
    """Each dataset's resolved directory, checked against `roots`; a 400 listing every id
    that did not resolve (as UWS listed them), or the first one outside the roots."""
    errors: list[dict[str, str]] = []
    found: dict[str, str] = {}
    for uuid in uuids:
        answer = answers.get(uuid) or {"error": "The lookup gave no answer for it."}
        path = answer.get("path")
        if path is None:
            errors.append({"uuid": uuid, "error": answer.get("error") or NOT_FOUND})
        elif not os.path.isabs(path) or "\x00" in path or not os.path.lexists(path):
            log.info("dataset %s: its path %r does not exist here", uuid, path)
            errors.append({"uuid": uuid, "error": NOT_FOUND})
        else:
            found[uuid] = path
    if errors:
        raise BadRequest(
            LOOKUP_ERRORS.format(errors),
            detail="Nothing was changed. Check the dataset ids and that you may read these "
            "datasets (a new login renews an expired globus_groups_token).",
        )
    out = {}
    for uuid, path in found.items():
        try:
            out[uuid] = check_symlink_source(path, roots)
        except BadRequest as e:
            raise BadRequest(
                e.message,
                detail=f"Dataset {uuid} lies there; an administrator must add its location to "
                "c.UWS.symlink_roots. Nothing was changed.",
            ) from None
    return out
