"""Share requests, checked at the edge: a handler turns the JSON body of an invitation into a
`ShareSpec` (which workspace, for whom); `ShareManager.create` checks it against the database.
Problems are 400s with UWS's messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest
from ..ids import parse_id

#: people one invitation may name at once
MAX_RECIPIENTS = 100


def int_id(value: Any, field: str) -> int:
    """A numeric id from a request (an int, or a string of digits), else a 400."""
    out = parse_id(value, field)
    if out is None:
        raise BadRequest(f"{field} must hold numeric ids, not {value!r}.")
    return out


@dataclass(frozen=True)
class ShareSpec:
    """Share workspace `original_workspace_id` with `recipient_ids` (distinct, in order)."""

    original_workspace_id: int
    recipient_ids: tuple[int, ...]

    @classmethod
    def parse(cls, body: Any) -> ShareSpec:
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        if "original_workspace_id" not in body or "shared_user_ids" not in body:
            raise BadRequest(
                "Missing required fields.",
                detail="Send original_workspace_id and shared_user_ids (a list of user ids).",
            )
        ws_id = int_id(body["original_workspace_id"], "original_workspace_id")
        ids = body["shared_user_ids"]
        if not isinstance(ids, list):
            raise BadRequest("shared_user_ids is not a list.")
        if not ids:
            raise BadRequest("shared_user_ids is empty: name at least one person.")
        if len(ids) > MAX_RECIPIENTS:
            raise BadRequest(f"Share with at most {MAX_RECIPIENTS} people at once.")
        user_ids: list[int] = []
        for raw in ids:
            uid = parse_id(raw, "shared_user_ids")
            if uid is None:
                raise BadRequest("Invalid user id provided.", detail=f"{raw!r} is not a user id.")
            if uid not in user_ids:
                user_ids.append(uid)
        return cls(ws_id, tuple(user_ids))
