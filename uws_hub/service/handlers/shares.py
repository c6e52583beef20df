"""/api/shared_workspaces: share by copy (invite, list, accept, decline / cancel)."""

from __future__ import annotations

from tornado import web

from ... import scopes
from ...db.models import SharedWorkspace, User, Workspace
from ...errors import NotFound
from ...ids import parse_id
from ...shares.specs import ShareSpec
from .. import serialize
from .base import BaseHandler, endpoint


def share_json(session, share: SharedWorkspace) -> dict:
    def ws_json(ws_id):
        ws = session.get(Workspace, ws_id) if ws_id else None
        if ws is None or ws.status == "deleted":  # gone (its row is kept for history only)
            return None
        out = serialize.workspace(ws)
        owner = session.get(User, ws.user_id)
        out["user_id"] = {
            "id": owner.id,
            "username": owner.name,
            "first_name": owner.first_name or "",
            "last_name": owner.last_name or "",
            "email": owner.email or "",
        }
        return out

    return {
        # an invitation is addressed by its copy's id, as in UWS (`invitation_id`: the number
        # uws_hub used before; old e-mails carry it)
        "id": share.shared_workspace_id,
        "invitation_id": share.id,
        "original_workspace_id": ws_json(share.original_workspace_id),
        "shared_workspace_id": ws_json(share.shared_workspace_id),
        "is_accepted": share.is_accepted,
        "datetime_share_created": serialize.isoformat(share.datetime_share_created),
        "datetime_share_accepted": serialize.isoformat(share.datetime_share_accepted),
        "last_job_type": share.last_job_type or "",
        "last_resource_options": share.last_resource_options or {},
        "copy": {
            "status": share.copy_status,
            "files_done": share.copy_files_done,
            "files_total": share.copy_files_total,
            "bytes_done": share.copy_bytes_done,
            "bytes_total": share.copy_bytes_total,
            "error": share.copy_error,
        },
    }


class SharesHandler(BaseHandler):
    idempotent_routes = {"POST": "POST /shared_workspaces/"}

    async def answer_from_effect(self, effect: list[dict]) -> bool:
        made = [e["target_id"] for e in effect if e["action"] == "share.create"]
        if not made:
            return False
        user = self.acting_user(scopes.SHARES)
        shares = [s for s in (self.ctx.shares.get(self.db, user, c) for c in made) if s]
        self.ok("Successful.", {"shared_workspaces": [share_json(self.db, s) for s in shares]})
        return True

    @endpoint
    async def get(self, share_id: str | None = None) -> None:
        user = self.acting_user(scopes.READ_SHARES)
        mgr = self.ctx.shares
        if share_id is not None:
            number = parse_id(share_id, "Shared workspace id")
            if number is None or number < 1:
                raise NotFound(f"Shared workspace {share_id} not found.")
            share = mgr.get(self.db, user, number)
            sent = [share] if share and share.sender_id == user.id else []
            received = [share] if share and share.recipient_id == user.id else []
        else:
            filters = self.query_filters("is_accepted")
            sent, received = mgr.list_for(self.db, user, filters)
        data = {
            "original_workspaces": [share_json(self.db, s) for s in sent],
            "shared_workspaces": [share_json(self.db, s) for s in received],
        }
        found = data["original_workspaces"] or data["shared_workspaces"]
        self.ok(
            "Successful."
            if found
            else "Shared workspace matching given parameters could not be found.",
            data,
        )

    @classmethod
    def allowed_methods(cls, path_args: list[str]) -> list[str]:
        return ["GET", "DELETE", "OPTIONS"] if path_args else ["GET", "POST", "OPTIONS"]

    @endpoint
    async def post(self, share_id: str | None = None) -> None:
        if share_id is not None:
            raise web.HTTPError(405, "POST shares a workspace: send it to /shared_workspaces/.")
        user = self.acting_user(scopes.SHARES)
        shares = self.ctx.shares.create(self.db, user, ShareSpec.parse(self.json_body()))
        self.ok(
            "Successful.",
            {"shared_workspaces": [share_json(self.db, s) for s in shares]},
        )

    @endpoint
    async def delete(self, share_id: str | None = None) -> None:
        if share_id is None:
            raise web.HTTPError(405, "DELETE needs an invitation: /shared_workspaces/<id>/.")
        user = self.acting_user(scopes.SHARES)
        what = self.ctx.shares.withdraw(self.db, user, share_id)
        self.ok(
            f"Shared workspace {share_id} queued for deletion.",
            detail=f"Invitation {what}; its copy is being deleted.",
        )


class AcceptHandler(BaseHandler):
    @endpoint
    async def put(self, share_id: str) -> None:
        user = self.acting_user(scopes.SHARES)
        share = self.ctx.shares.accept(self.db, user, share_id)
        self.ok("Successful.", {"shared_workspace": share_json(self.db, share)})
