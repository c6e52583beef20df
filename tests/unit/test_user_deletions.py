"""People deleted from the hub (`uws_hub.users.deletions`): the hub records the request, the
service's pass settles it — jobs stopped, invitations withdrawn, quota and identities gone, the
user row a tombstone, workspaces held out of reach, then kept, archived or deleted after the
grace — and people missing from the hub are settled only when that is safe. End to end (a real
hub, its REST API, a running job, files owned by a real account): tests/e2e/test_user_deletion.py.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from uws_hub.config import UWS
from uws_hub.db.models import (
    AuditEvent,
    ExternalIdentity,
    Job,
    Notification,
    SharedWorkspace,
    User,
    UserQuota,
    Workspace,
    utcnow,
)
from uws_hub.errors import ConfigError, HubAPIError
from uws_hub.shares.specs import ShareSpec
from uws_hub.users import deletions
from uws_hub.users.deletions import HOLD_DIR, read_requests, record_request, spool_path

from .domain import Domain, files_on_disk

FILES = {"notes.md": "# results\n", "data/table.csv": "a,b\n1,2\n"}


def make(tmp_path: Path, **settings) -> Domain:
    settings.setdefault("user_deletions_dir", str(tmp_path / "spool"))
    return Domain(tmp_path, **settings)


@pytest.fixture
def domain(tmp_path):
    with make(tmp_path) as d:
        yield d


def in_hub(d: Domain, *names: str, created: dt.datetime | None = None) -> None:
    """The hub has these users (made long ago unless `created` says when)."""
    when = created or utcnow() - dt.timedelta(days=30)
    for name in names:
        d.hub.users[name] = {"name": name, "created": when.isoformat().replace("+00:00", "Z")}


def deleted_in_hub(d: Domain, name: str, **kw) -> Path:
    """An administrator deletes `name` in the hub: the request is recorded, the user goes."""
    d.hub.users.pop(name, None)
    return record_request(d.settings.user_deletions_dir, name, **kw)


def sync(d: Domain) -> dict[str, int]:
    return d.run(d.user_deletions.run_pass())


def events(d: Domain, action: str) -> list[AuditEvent]:
    with d.db() as session:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(q))


def end_jobs(d: Domain) -> None:
    """The stopped jobs end (as the hub's spawners record it)."""
    with d.db() as session:
        for job in session.scalars(select(Job).where(Job.status == "stopping")):
            job.status, job.datetime_end = "complete", utcnow()
        session.commit()


def held_path(d: Domain, user_id: int, ws_id: int) -> Path:
    return Path(d.settings.root_dir) / HOLD_DIR / str(user_id) / str(ws_id)


# ---- the request ------------------------------------------------------------------------------


def test_a_request_is_one_private_file_written_whole(tmp_path):
    spool = tmp_path / "spool"
    path = record_request(spool, "alice", servers_stopped=["job-2", "job-1"])
    assert path == spool_path(spool, "alice") and path.parent == spool
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = json.loads(path.read_text())
    assert body["name"] == "alice" and body["servers_stopped"] == ["job-1", "job-2"]
    assert [p.name for p in spool.iterdir()] == [path.name]  # no temporary file left
    # names that are no file names still get one file each
    odd = record_request(spool, "../x/y")
    assert odd.parent == spool and read_requests(spool)["../x/y"].path == odd
    (spool / "junk.json").write_text("{not json")
    found = read_requests(spool)
    assert set(found) == {"alice", "../x/y"}
    assert (spool / "junk.json.invalid").exists()  # set aside, not read again
    assert read_requests(tmp_path / "nowhere") == {}


# ---- whom to delete ---------------------------------------------------------------------------


def test_a_requested_deletion_settles_the_person_in_one_go(domain):
    d = domain
    alice = d.user("alice", email="alice@example.org")
    d.user("bob")
    in_hub(d, "alice", "bob")
    with d.db() as session:
        session.add(UserQuota(user_id=alice.id, disk_limit=10**9))
        session.add(ExternalIdentity(user_id=alice.id, source="ldap", external_id="1001"))
        session.commit()
    request = deleted_in_hub(d, "alice", servers_stopped=["job-7"])
    counts = sync(d)
    assert counts["deleted"] == 1
    row = d.fresh(User, alice.id)
    assert row.name == f"alice~deleted-{alice.id}" and row.deleted_at is not None
    assert d.fresh(UserQuota, alice.id) is None
    with d.db() as session:
        assert session.scalars(select(ExternalIdentity)).all() == []
    assert not request.exists()  # consumed
    (event,) = events(d, "user.delete")
    assert (event.actor, event.actor_kind, event.username) == ("uws", "system", "alice")
    assert event.target_type == "user" and event.target_id == "alice"
    assert event.details["reason"] == "deleted in the hub"
    assert event.details["servers_stopped_by_hub"] == ["job-7"]
    assert event.details["identities_removed"] == 1
    assert d.fresh(User, d.user("bob").id).deleted_at is None  # nobody else
    assert sync(d)["deleted"] == 0 and len(events(d, "user.delete")) == 1  # idempotent


def test_someone_missing_from_the_hub_is_deleted_on_the_second_pass_only(domain):
    d = domain
    for name in ("alice", "bob", "carol"):
        d.user(name)
    in_hub(d, "bob", "carol")  # alice was removed another way (no request)
    assert sync(d)["deleted"] == 0
    in_hub(d, "alice")  # back: a hub that answered oddly once is forgiven
    assert sync(d)["deleted"] == 0
    d.hub.users.pop("alice")
    assert sync(d)["deleted"] == 0
    assert sync(d)["deleted"] == 1
    (event,) = events(d, "user.delete")
    assert event.username == "alice"
    assert event.details["reason"] == "missing from the hub's user list"


def test_a_mass_disappearance_deletes_only_the_requested(domain, caplog):
    d = domain
    names = [f"user{i}" for i in range(8)]
    for name in names:
        d.user(name)
    in_hub(d, *names)
    sync(d)  # all seen in the hub
    for name in names[1:7]:  # then six vanish from its list (a restored backup), one is deleted
        d.hub.users.pop(name)
    deleted_in_hub(d, "user7")
    with caplog.at_level(logging.ERROR, logger="uws_hub.users.deletions"):
        sync(d)
        sync(d)
    gone = {e.username for e in events(d, "user.delete")}
    assert gone == {"user7"}
    assert "6 of the 7 uws users are missing from the hub's user list" in caplog.text


def test_someone_the_hub_never_listed_is_left_alone(domain):
    """A row made with ?user= for a person the hub does not have (yet) is not a deletion."""
    d = domain
    d.user("prepared-by-a-portal")
    in_hub(d, "alice")
    for _ in range(3):
        assert sync(d)["deleted"] == 0
    assert events(d, "user.delete") == []
    in_hub(d, "prepared-by-a-portal")  # they log in at last: from now on they count
    sync(d)
    d.hub.users.pop("prepared-by-a-portal")
    sync(d)
    assert sync(d)["deleted"] == 1


def test_nothing_is_concluded_when_the_hub_cannot_list_its_users(domain):
    d = domain
    d.user("alice")
    deleted_in_hub(d, "alice")
    d.hub.refuse_users = HubAPIError(503, "hub restarting")
    for _ in range(3):
        assert sync(d)["deleted"] == 0
    assert spool_path(d.settings.user_deletions_dir, "alice").exists()  # kept for later
    d.hub.refuse_users = None
    assert sync(d)["deleted"] == 1


def test_a_request_waits_while_the_hub_still_has_the_person(domain):
    """The hook runs before the hub removes the user (and the delete may fail): nothing
    happens while the hub still lists them; a request a day old is dropped."""
    d = domain
    d.user("alice")
    in_hub(d, "alice")
    path = record_request(d.settings.user_deletions_dir, "alice")
    assert sync(d)["deleted"] == 0 and path.exists()
    record_request(d.settings.user_deletions_dir, "alice", now=utcnow() - dt.timedelta(days=2))
    assert sync(d)["deleted"] == 0 and not path.exists()
    assert d.fresh(User, d.user("alice").id).deleted_at is None


def test_a_person_made_again_in_the_hub_does_not_inherit(domain):
    """Deleted and re-created under the same name before the service's pass: the hub user is
    newer than the request, so the old uws user is settled all the same."""
    d = domain
    old = d.user("alice")
    ws = d.create_workspace(old, FILES)
    record_request(d.settings.user_deletions_dir, "alice", now=utcnow() - dt.timedelta(minutes=1))
    in_hub(d, "alice", created=utcnow())
    assert sync(d)["deleted"] == 1
    assert (
        events(d, "user.delete")[0].details["reason"] == "deleted in the hub and made again since"
    )
    new = d.user("alice")
    assert new.id != old.id and d.listed(new) == []
    assert d.fresh(Workspace, ws.id).user_id == old.id


def test_a_request_for_someone_uws_never_knew_is_dropped(domain):
    path = deleted_in_hub(domain, "stranger")
    sync(domain)
    assert not path.exists() and events(domain, "user.delete") == []


# ---- what a deletion does ---------------------------------------------------------------------


def test_their_jobs_are_stopped(domain):
    d = domain
    alice = d.user("alice")
    ws = d.create_workspace(alice, FILES)
    job = d.start_job(alice, ws)
    deleted_in_hub(d, "alice")
    sync(d)
    row = d.fresh(Job, job.id)
    assert row.status == "stopping"
    assert row.job_details["current_job_details"]["message"] == (
        "Stopped: alice was deleted from the hub."
    )
    assert ("alice", f"job-{job.id}", False) in d.hub.stopped()
    (stop,) = events(d, "job.stop")
    assert (stop.actor, stop.username) == ("uws", "alice")
    assert events(d, "user.delete")[0].details["jobs_stopped"] == [job.id]
    # the workspace waits for the job to end before it is held
    assert d.fresh(Workspace, ws.id).status == "active"
    end_jobs(d)
    sync(d)
    assert d.fresh(Workspace, ws.id).status == "deleted"


def test_their_pending_invitations_are_withdrawn(domain):
    d = domain
    alice = d.user("alice", email="alice@example.org")
    bob = d.user("bob", email="bob@example.org")
    carol = d.user("carol", email="carol@example.org")
    in_hub(d, "bob", "carol")
    mine = d.create_workspace(alice, FILES, name="mine")
    hers = d.create_workspace(carol, FILES, name="hers")
    with d.db() as session:
        (sent,) = d.shares.create(
            session, session.get(User, alice.id), ShareSpec(mine.id, (bob.id,))
        )
        (got,) = d.shares.create(
            session, session.get(User, carol.id), ShareSpec(hers.id, (alice.id,))
        )
        sent_copy, got_copy = sent.shared_workspace_id, got.shared_workspace_id
    deleted_in_hub(d, "alice")
    sync(d)
    with d.db() as session:
        assert session.scalars(select(SharedWorkspace)).all() == []
        declined_mail = session.scalars(
            select(Notification).where(Notification.kind == "share_declined")
        ).all()
    assert [n.recipient for n in declined_mail] == ["carol@example.org"]  # told, as a decline
    assert d.fresh(Workspace, sent_copy).status == "deleting"
    assert d.fresh(Workspace, got_copy).status == "deleting"
    details = events(d, "user.delete")[0].details
    assert details["invitations_cancelled"] == [sent_copy]
    assert details["invitations_declined"] == [got_copy]
    assert [e.username for e in events(d, "share.cancel")] == ["alice"]
    assert [e.username for e in events(d, "share.decline")] == ["alice"]
    for copy_id in (sent_copy, got_copy):  # the reconciler's delete path removes the copies
        d.run(d.workspaces.drive(copy_id))
        assert d.fresh(Workspace, copy_id).status == "deleted"
    sync(d)  # now nothing is copied from alice's workspace any more: it is held
    assert d.fresh(Workspace, mine.id).status == "deleted"
    assert d.fresh(Workspace, hers.id).status == "idle"  # carol's own stays hers
    # nobody can invite the tombstone
    with d.db() as session, pytest.raises(Exception) as e:
        d.shares.create(
            session, session.get(User, bob.id), ShareSpec(d.create_workspace(bob).id, (alice.id,))
        )
    assert "Invalid user id provided." in str(e.value)


def test_the_name_is_free_and_a_new_person_gets_nothing(domain):
    d = domain
    alice = d.user("alice")
    ws = d.create_workspace(alice, FILES)
    deleted_in_hub(d, "alice")
    sync(d)
    again = d.user("alice")
    assert again.id != alice.id and d.listed(again) == []
    with d.db() as session:
        everyone = session.execute(d.workspaces.list_all_query({}, 100, 0)).all()
    assert ws.id not in [w.id for w, _ in everyone]  # hidden from the operators' listing too


# ---- the workspaces ---------------------------------------------------------------------------


def test_workspaces_are_held_out_of_reach_with_their_files(domain):
    d = domain
    alice = d.user("alice")
    ws = d.create_workspace(alice, FILES)
    before = d.path(ws)
    deleted_in_hub(d, "alice")
    counts = sync(d)
    assert counts["held"] == 1
    target = held_path(d, alice.id, ws.id)
    assert not before.exists() and files_on_disk(target) == {
        k: v.encode() for k, v in FILES.items()
    }
    for parent in (target.parent, target.parent.parent):
        st = parent.stat()
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    row = d.fresh(Workspace, ws.id)
    assert row.status == "deleted" and row.datetime_deleted is None
    assert row.file_path == f"{HOLD_DIR}/{alice.id}/{ws.id}"
    assert row.status_message == "Held: alice was deleted from the hub."
    (hold,) = events(d, "workspace.hold")
    assert hold.username == "alice" and hold.target_id == str(ws.id)
    assert hold.details["path"] == row.file_path
    assert sync(d)["held"] == 0 and len(events(d, "workspace.hold")) == 1


def test_a_hold_cut_short_by_a_crash_is_recorded_on_the_next_pass(domain):
    d = domain
    alice = d.user("alice")
    ws = d.create_workspace(alice, FILES)
    deleted_in_hub(d, "alice")
    real = d.user_deletions.hold_workspace
    d.user_deletions.hold_workspace = lambda ws_id: (
        d.user_deletions.area.hold(d.fresh(Workspace, ws_id).file_path, alice.id, ws_id) and False
    )  # moved on disk, then "crashed" before the record
    sync(d)
    assert d.fresh(Workspace, ws.id).status == "idle" and held_path(d, alice.id, ws.id).is_dir()
    d.user_deletions.hold_workspace = real
    sync(d)
    assert d.fresh(Workspace, ws.id).file_path == f"{HOLD_DIR}/{alice.id}/{ws.id}"


def test_the_workspace_cannot_change_while_it_is_moved_to_the_hold(domain):
    """An administrator's delete racing the hold waits for it, then finds the workspace held:
    the directory is never moved away under a row that says something else."""
    d = domain
    alice = d.user("alice")
    ws = d.create_workspace(alice, FILES)
    deleted_in_hub(d, "alice")
    area, real_hold = d.user_deletions.area, d.user_deletions.area.hold
    racer: dict[str, object] = {}

    def admin_deletes() -> None:
        with d.db() as session:
            racer["rows"] = session.execute(
                update(Workspace)
                .where(Workspace.id == ws.id, Workspace.status == "idle")
                .values(status="deleting")
            ).rowcount
            session.commit()

    def hold_with_a_racer(*args):
        racer["thread"] = t = threading.Thread(target=admin_deletes)
        t.start()
        t.join(0.5)
        racer["waited"] = t.is_alive()  # blocked on the claimed row
        return real_hold(*args)

    area.hold = hold_with_a_racer
    try:
        assert sync(d)["held"] == 1
    finally:
        area.hold = real_hold
    racer["thread"].join(15)
    assert racer["waited"] and racer["rows"] == 0
    row = d.fresh(Workspace, ws.id)
    assert row.status == "deleted" and row.file_path == f"{HOLD_DIR}/{alice.id}/{ws.id}"
    assert held_path(d, alice.id, ws.id).is_dir()


@pytest.mark.parametrize(
    "settings",
    [
        {"deleted_user_grace": 0.0, "deleted_user_workspaces": "keep"},
        {"deleted_user_workspaces": "delete"},  # the grace (30 days) has not passed
    ],
    ids=["keep-after-the-grace", "delete-before-the-grace"],
)
def test_held_workspaces_stay_held(tmp_path, settings):
    with make(tmp_path, **settings) as d:
        alice = d.user("alice")
        ws = d.create_workspace(alice, FILES)
        deleted_in_hub(d, "alice")
        sync(d)
        sync(d)
        assert held_path(d, alice.id, ws.id).is_dir()
        assert d.fresh(Workspace, ws.id).datetime_deleted is None


def test_delete_after_the_grace_goes_through_the_reconciler(tmp_path):
    with make(tmp_path, deleted_user_grace=0.0, deleted_user_workspaces="delete") as d:
        alice = d.user("alice")
        ws = d.create_workspace(alice, FILES)
        deleted_in_hub(d, "alice")
        sync(d)  # held
        counts = sync(d)  # the grace (none) is over
        assert counts["removed"] == 1
        assert not held_path(d, alice.id, ws.id).exists()
        row = d.fresh(Workspace, ws.id)
        assert row.status == "deleting" and row.file_path == ""
        assert ws.id in d.work.ids
        d.run(d.workspaces.drive(ws.id))
        row = d.fresh(Workspace, ws.id)
        assert row.status == "deleted" and row.datetime_deleted is not None
        (event,) = events(d, "workspace.delete")
        assert (
            event.username == "alice" and event.details["held"] == f"{HOLD_DIR}/{alice.id}/{ws.id}"
        )


def archive_domain(tmp_path: Path) -> Domain:
    (tmp_path / "archive").mkdir()
    return make(
        tmp_path,
        deleted_user_grace=0.0,
        deleted_user_workspaces="archive",
        deleted_user_archive_dir=str(tmp_path / "archive"),
    )


def test_archive_after_the_grace_moves_them_to_the_archive(tmp_path):
    with archive_domain(tmp_path) as d:
        alice = d.user("alice")
        ws = d.create_workspace(alice, FILES)
        deleted_in_hub(d, "alice")
        sync(d)
        assert sync(d)["archived"] == 1
        dest = tmp_path / "archive" / f"alice-{alice.id}" / str(ws.id)
        assert files_on_disk(dest) == {k: v.encode() for k, v in FILES.items()}
        assert not held_path(d, alice.id, ws.id).exists()
        row = d.fresh(Workspace, ws.id)
        assert row.status == "deleted" and row.datetime_deleted is not None
        assert row.file_path == "" and row.status_message == f"Archived to {dest}."
        (event,) = events(d, "workspace.archive")
        assert event.details["path"] == str(dest)
        assert sync(d)["archived"] == 0


def test_archive_to_another_filesystem_copies_then_removes(tmp_path, monkeypatch):
    """A rename across filesystems fails (EXDEV): the held tree is copied (``cp -a``) into a
    staging name, renamed into place, and only then removed from the hold area."""
    real_rename = os.rename

    def rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if src == dst and str(src).isdigit():  # the archive's move of a workspace directory
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    with archive_domain(tmp_path) as d:
        alice = d.user("alice")
        ws = d.create_workspace(alice, {**FILES, "link-target.txt": "t"})
        os.symlink("link-target.txt", d.path(ws) / "link")
        deleted_in_hub(d, "alice")
        sync(d)
        monkeypatch.setattr(deletions.os, "rename", rename)
        assert sync(d)["archived"] == 1
        dest = tmp_path / "archive" / f"alice-{alice.id}" / str(ws.id)
        assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "link-target.txt"
        assert (dest / "data" / "table.csv").read_text() == FILES["data/table.csv"]
        assert not held_path(d, alice.id, ws.id).exists()
        assert not list(dest.parent.glob(".uws-partial-*"))


# ---- the pieces ---------------------------------------------------------------------------------


def test_the_hub_hook_records_and_never_fails_the_delete(tmp_path, caplog):
    """`UWSIdentityMixin.delete_user` (in the hub): the request file, and a failure to write
    it only logged."""
    import asyncio

    from jupyterhub.auth import Authenticator
    from traitlets.config import Config

    from uws_hub.authenticators.mixin import UWSIdentityMixin

    class Auth(UWSIdentityMixin, Authenticator):
        pass

    c = Config()
    c.UWS.user_deletions_dir = str(tmp_path / "spool")
    auth = Auth(config=c)
    auth.allowed_users = {"alice", "bob"}
    user = SimpleNamespace(
        name="alice", orm_user=SimpleNamespace(orm_spawners={}), spawners={}, settings={}
    )
    asyncio.run(auth.delete_user(user))
    assert "alice" not in auth.allowed_users  # JupyterHub's own part ran
    assert set(read_requests(tmp_path / "spool")) == {"alice"}

    # her job servers: the active ones are stopped (route first), so that the hub can delete
    # her; one still starting cannot be, and a failed stop is only logged
    calls: list[tuple[str, str]] = []

    async def stop(name):
        calls.append(("stop", name))
        if name == "job-4":
            raise RuntimeError("scancel failed")

    async def unroute(_user, name):
        calls.append(("route", name))

    def spawner(active=True, pending=None):
        return SimpleNamespace(active=active, pending=pending)

    user.spawners = {
        "": spawner(),  # the default server: the hub stops it itself
        "job-1": spawner(),
        "job-2": spawner(pending="spawn"),
        "job-3": spawner(active=False),
        "job-4": spawner(),
    }
    user.stop, user.settings = stop, {"proxy": SimpleNamespace(delete_user=unroute)}
    with caplog.at_level(logging.ERROR):
        asyncio.run(auth.delete_user(user))
    assert sorted(calls) == [("route", "job-1"), ("route", "job-4"), ("stop", "job-1"),
                             ("stop", "job-4")]  # fmt: skip
    assert read_requests(tmp_path / "spool")["alice"].servers_stopped == ("job-1",)
    assert "stopping server job-4 failed" in caplog.text
    user.spawners, user.settings = {}, {}
    (tmp_path / "file").write_text("")
    c.UWS.user_deletions_dir = str(tmp_path / "file" / "spool")  # cannot be made
    auth = Auth(config=c)
    with caplog.at_level(logging.ERROR):
        asyncio.run(auth.delete_user(SimpleNamespace(**{**vars(user), "name": "bob"})))
    assert "could not record the deletion of bob" in caplog.text


def test_the_settings_are_checked(tmp_path):
    root = tmp_path / "root"
    root.mkdir()

    def check(**kw) -> list[str]:
        """The warnings about these settings (a root under /tmp gets others)."""
        warnings = UWS(root_dir=str(root), single_account=os.geteuid() != 0, **kw).validate()
        return [w for w in warnings if "deleted_user" in w]

    assert check() == []
    with pytest.raises(ConfigError, match="needs c.UWS.deleted_user_archive_dir"):
        check(deleted_user_workspaces="archive")
    with pytest.raises(ConfigError, match="must be an absolute path"):
        check(deleted_user_workspaces="archive", deleted_user_archive_dir="archive")
    with pytest.raises(ConfigError, match="is not an existing directory"):
        check(deleted_user_workspaces="archive", deleted_user_archive_dir=str(tmp_path / "no"))
    with pytest.raises(ConfigError, match="lies inside c.UWS.root_dir"):
        check(deleted_user_workspaces="archive", deleted_user_archive_dir=str(root))
    (tmp_path / "archive").mkdir()
    assert (
        check(deleted_user_workspaces="archive", deleted_user_archive_dir=str(tmp_path / "archive"))
        == []
    )
    assert "is not used" in check(deleted_user_archive_dir=str(tmp_path / "archive"))[0]
    with pytest.raises(ConfigError, match="deleted_user_grace"):
        check(deleted_user_grace=-1.0)
    with pytest.raises(ConfigError, match="user_sync_interval"):
        check(user_sync_interval=0.0)


def test_a_job_or_invitation_racing_the_deletion_is_settled_next_pass(domain):
    """A job started, or an invitation to the person made, while their deletion committed:
    the next pass stops and withdraws it (the tombstone's leftovers are read each pass)."""
    d = domain
    alice, bob = d.user("alice"), d.user("bob")
    in_hub(d, "bob")
    ws = d.create_workspace(alice, FILES)
    theirs = d.create_workspace(bob, FILES, name="theirs")
    deleted_in_hub(d, "alice")
    sync(d)
    with d.db() as session:  # as if committed just after the deletion
        session.add(Job(user_id=alice.id, workspace_id=ws.id, job_type="jupyter_lab",
                        status="running", server_name="job-99"))  # fmt: skip
        copy = Workspace(user_id=alice.id, name="theirs", status="initializing")
        session.add(copy)
        session.flush()
        session.add(SharedWorkspace(original_workspace_id=theirs.id, shared_workspace_id=copy.id,
                                    sender_id=bob.id, recipient_id=alice.id))  # fmt: skip
        session.commit()
        copy_id = copy.id
    sync(d)
    with d.db() as session:
        job = session.scalar(select(Job).where(Job.server_name == "job-99"))
        assert job.status == "stopping" and session.scalars(select(SharedWorkspace)).all() == []
    assert ("alice", "job-99", False) in d.hub.stopped()
    assert d.fresh(Workspace, copy_id).status == "deleting"
    assert [e.details["sender"] for e in events(d, "share.decline")] == ["bob"]
