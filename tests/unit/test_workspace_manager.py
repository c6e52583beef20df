"""The workspace lifecycle (`WorkspaceManager`) on a SQLite file and a temporary root: what a
create, an update, a delete leave on disk and in the database, the durable transitional states
the reconciler finishes, the disk quota, and what listings show. End to end (a real hub, other
accounts, the HTTP API): tests/e2e/test_workspaces_api.py, tests/e2e/test_reconciler.py,
tests/e2e/test_shares.py::test_quotas_refuse_with_the_numbers."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import select

from uws_hub.db.models import User, Workspace
from uws_hub.errors import BadRequest, NotFound, UWSError
from uws_hub.quotas import QuotaExceeded, human_bytes

from .domain import ACCOUNT, Domain, allocated_bytes, audit_actions, details, files_on_disk

FILES = {"README.md": "# Results\n", "data/raw.bin": b"\x00\x01\x02\xff" * 64}


def update(domain: Domain, ws: Workspace, body: dict) -> Workspace:
    with domain.db() as session:
        row = session.get(Workspace, ws.id)
        return domain.run(domain.workspaces.update(session, row, domain.spec(body, creating=False)))


def delete(domain: Domain, ws: Workspace) -> None:
    with domain.db() as session:
        domain.workspaces.request_delete(session, session.get(Workspace, ws.id))


# ---- create -----------------------------------------------------------------------------------


def test_create_writes_the_files_and_records_them(domain, alice):
    ws = domain.create_workspace(alice, FILES, name="March runs", default_job_type="batch")

    row = domain.fresh(Workspace, ws.id)
    assert (row.status, row.status_message) == ("idle", None)
    assert (row.name, row.description, row.default_job_type) == (
        "March runs",
        "A workspace",
        "batch",
    )
    assert row.file_path == f"{ACCOUNT.name}/{ws.id}"
    assert row.pending_details is None  # the contents are not kept once written
    directory = domain.path(ws)
    assert files_on_disk(directory) == {
        "README.md": b"# Results\n",
        "data/raw.bin": b"\x00\x01\x02\xff" * 64,
    }
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # what the scan found: allocated bytes as du counts them, the files with their sizes
    assert row.disk_space == allocated_bytes(directory) > 0
    assert row.file_count == 2
    assert row.workspace_details == {
        "request_workspace_details": {
            "files": [{"name": "README.md"}, {"name": "data/raw.bin"}],
            "symlinks": [],
        },
        "current_workspace_details": {
            "files": [{"name": "/README.md", "size": 10}, {"name": "/data/raw.bin", "size": 256}],
            "symlinks": [],
        },
    }
    assert row.datetime_scanned is not None
    assert domain.listed(alice) == [ws.id]
    with domain.db() as session:
        assert audit_actions(session) == ["workspace.create"]


def test_an_empty_workspace(domain, alice):
    ws = domain.create_workspace(alice)
    assert domain.fresh(Workspace, ws.id).status == "idle"
    assert domain.path(ws).is_dir() and files_on_disk(domain.path(ws)) == {}


def test_symlinks_point_into_the_configured_roots(tmp_path):
    datasets = tmp_path / "datasets"
    (datasets / "genomes").mkdir(parents=True)
    with Domain(tmp_path, symlink_roots=[str(datasets)]) as domain:
        ws = domain.create_workspace(
            domain.user("alice"),
            name="linked",
            workspace_details={
                "symlinks": [{"name": "ref/genomes", "source_path": str(datasets / "genomes")}]
            },
        )
        link = domain.path(ws) / "ref" / "genomes"
        assert link.is_symlink() and link.readlink() == datasets / "genomes"
        current = domain.fresh(Workspace, ws.id).workspace_details["current_workspace_details"]
        assert [s["name"] for s in current["symlinks"]] == ["/ref/genomes"]


def test_a_create_interrupted_before_its_files_is_finished_by_drive(domain, alice, monkeypatch):
    """The row is the task: a service that stopped after recording the create (before the
    directory was made) finds it initializing, with its files still to write."""

    async def crash(ws_id):
        return None

    with monkeypatch.context() as m:
        m.setattr(domain.workspaces, "drive", crash)
        ws = domain.create_workspace(alice, FILES)
    assert domain.fresh(Workspace, ws.id).status == "initializing"
    assert domain.workspaces.pending_work() == [ws.id]
    assert domain.listed(alice, status="initializing") == [ws.id]

    domain.run(domain.workspaces.drive(ws.id))
    domain.run(domain.workspaces.drive(ws.id))  # a second pass finds nothing to do

    row = domain.fresh(Workspace, ws.id)
    assert row.status == "idle" and row.pending_details is None
    assert files_on_disk(domain.path(ws)).keys() == FILES.keys()
    assert domain.workspaces.pending_work() == []


def test_a_workspace_whose_directory_cannot_be_made_is_in_error(domain, alice):
    # something that is not a directory where workspace 1 goes
    user_dir = domain.tmp_path / "root" / ACCOUNT.name
    user_dir.mkdir(mode=0o700)
    (user_dir / "1").write_text("in the way")

    with pytest.raises(UWSError) as e:
        domain.create_workspace(alice, FILES)
    assert e.value.status_code == 500
    reason = (
        "A path component is a symbolic link or not a directory (creating the workspace directory)."
    )
    assert e.value.message == f"Workspace 1 could not be created: {reason}"
    row = domain.fresh(Workspace, 1)
    assert (row.status, row.status_message) == ("error", reason)
    assert domain.listed(alice, status="error") == [1]

    # an update says what to do instead; the delete clears what is in the way
    with pytest.raises(BadRequest) as e:
        update(domain, row, {"workspace_details": details({"x.txt": "x"})})
    assert e.value.message == (
        f"Workspace 1 cannot be changed: it is in error ({reason}); delete it and create a new one."
    )
    delete(domain, row)
    domain.run(domain.workspaces.drive(1))
    assert domain.fresh(Workspace, 1).status == "deleted"
    assert not (user_dir / "1").exists()


# ---- update ---------------------------------------------------------------------------------


def test_update_renames_a_file_adds_one_and_renames_the_workspace(domain, alice):
    ws = domain.create_workspace(alice, FILES)
    body = {
        "name": "April runs",
        "default_job_type": None,
        "workspace_details": details(
            {"notes/todo.txt": "check the tails\n"},
            renames=[{"name": "data/raw.bin", "new_name": "data/2026-04.bin"}],
        ),
    }
    update(domain, ws, body)

    assert files_on_disk(domain.path(ws)) == {
        "README.md": b"# Results\n",
        "data/2026-04.bin": b"\x00\x01\x02\xff" * 64,
        "notes/todo.txt": b"check the tails\n",
    }
    row = domain.fresh(Workspace, ws.id)
    assert (row.name, row.description, row.default_job_type) == ("April runs", "A workspace", None)
    current = row.workspace_details["current_workspace_details"]["files"]
    assert sorted(f["name"] for f in current) == [
        "/README.md",
        "/data/2026-04.bin",
        "/notes/todo.txt",
    ]
    # as UWS: an update leaves what the create asked for as it was
    requested = row.workspace_details["request_workspace_details"]["files"]
    assert [f["name"] for f in requested] == ["README.md", "data/raw.bin"]
    assert row.file_count == 3 and row.disk_space == allocated_bytes(domain.path(ws))
    with domain.db() as session:
        assert audit_actions(session) == ["workspace.create", "workspace.update"]


def test_a_refused_update_changes_nothing(domain, alice):
    ws = domain.create_workspace(alice, FILES)
    before = domain.fresh(Workspace, ws.id)
    body = {
        "name": "renamed",
        "workspace_details": details(
            {"new.txt": "n"}, renames=[{"name": "missing.txt", "new_name": "found.txt"}]
        ),
    }
    with pytest.raises(BadRequest) as e:
        update(domain, ws, body)
    assert e.value.message == "Cannot rename 'missing.txt': it does not exist."
    assert files_on_disk(domain.path(ws)).keys() == FILES.keys()  # new.txt was not written
    after = domain.fresh(Workspace, ws.id)
    assert after.name == "analysis" and after.workspace_details == before.workspace_details


def test_files_written_by_a_job_are_found_by_a_rescan(domain, alice):
    ws = domain.create_workspace(alice, {"in.txt": "1"})
    (domain.path(ws) / "out.csv").write_text("a,b\n1,2\n")
    with domain.db() as session:
        domain.run(domain.workspaces.rescan(session, session.get(Workspace, ws.id)))
    row = domain.fresh(Workspace, ws.id)
    listed = row.workspace_details["current_workspace_details"]["files"]
    assert {f["name"]: f["size"] for f in listed} == {"/in.txt": 1, "/out.csv": 8}
    assert row.file_count == 2 and row.disk_space == allocated_bytes(domain.path(ws))


# ---- delete --------------------------------------------------------------------------------------


def test_delete_is_recorded_then_driven(domain, alice):
    ws = domain.create_workspace(alice, FILES)
    directory = domain.path(ws)
    delete(domain, ws)

    # recorded and signalled; the reconciler (here: drive) removes the files
    assert domain.fresh(Workspace, ws.id).status == "deleting"
    assert domain.work.ids == [ws.id]
    assert domain.workspaces.pending_work() == [ws.id]
    assert directory.is_dir()
    with pytest.raises(BadRequest) as e:
        delete(domain, ws)
    assert e.value.message == f"Workspace {ws.id} is already being deleted."

    domain.run(domain.workspaces.drive(ws.id))

    assert not directory.exists()
    assert list(directory.parent.iterdir()) == []  # no trash left behind
    row = domain.fresh(Workspace, ws.id)
    assert (row.status, row.disk_space) == ("deleted", 0)
    assert row.datetime_deleted is not None
    assert domain.listed(alice) == []  # the row stays (job history), hidden
    with domain.db() as session, pytest.raises(NotFound) as e:
        domain.workspaces.get(session, session.get(User, alice.id), ws.id)
    assert e.value.message == f"Workspace {ws.id} not found for user."
    with domain.db() as session:
        assert audit_actions(session) == ["workspace.create", "workspace.delete"]


def test_no_changes_while_deleting(domain, alice):
    ws = domain.create_workspace(alice, FILES)
    delete(domain, ws)
    with pytest.raises(BadRequest) as e:
        update(domain, ws, {"workspace_details": details({"late.txt": "x"})})
    assert e.value.message == f"Workspace {ws.id} cannot be changed: it is being deleted."
    assert "late.txt" not in files_on_disk(domain.path(ws))


def test_delete_refused_while_a_job_runs_or_the_workspace_is_being_created(
    domain, alice, monkeypatch
):
    ws = domain.create_workspace(alice)
    job = domain.start_job(alice, ws)
    assert job.status == "pending"
    with pytest.raises(BadRequest) as e:
        delete(domain, ws)
    assert e.value.message == "Cannot delete workspace, jobs are running for this workspace."
    assert domain.fresh(Workspace, ws.id).status == "active"

    async def crash(ws_id):
        return None

    monkeypatch.setattr(domain.workspaces, "drive", crash)
    creating = domain.create_workspace(alice, name="second")
    with pytest.raises(BadRequest) as e:
        delete(domain, creating)
    assert e.value.message == (
        f"Workspace {creating.id} is still being created; try again in a moment."
    )


# ---- disk quota ----------------------------------------------------------------------------------


def test_the_disk_quota_refuses_a_create_that_would_pass_it(tmp_path):
    with Domain(tmp_path, default_disk_quota=100) as domain:
        alice = domain.user("alice")
        with pytest.raises(QuotaExceeded) as e:
            domain.create_workspace(alice, {"big.bin": b"x" * 101})
        assert e.value.status_code == 403
        assert e.value.message == (
            "Cannot create this workspace: it needs 101 bytes; you use 0 bytes of your 100 bytes "
            "disk quota (100 bytes left). Delete files or workspaces you no longer need, or ask "
            "an administrator for more."
        )
        # nothing was recorded or written
        with domain.db() as session:
            assert session.scalars(select(Workspace)).all() == []
            assert audit_actions(session) == []
        assert list((tmp_path / "root").iterdir()) == []

        # within the limit it is made; then what it takes on disk counts
        ws = domain.create_workspace(alice, {"small.txt": "x" * 100})
        used = domain.fresh(Workspace, ws.id).disk_space
        with pytest.raises(QuotaExceeded) as e:
            update(domain, ws, {"workspace_details": details({"more.txt": "y" * 101})})
        assert e.value.message.startswith(
            f"Cannot add these files: it needs 101 bytes; you use {human_bytes(used)} of your "
            f"100 bytes disk quota ({human_bytes(max(0, 100 - used))} left)."
        )
        assert files_on_disk(domain.path(ws)) == {"small.txt": b"x" * 100}


def test_the_disk_quota_refuses_an_upload_announced_too_large(tmp_path):
    with Domain(tmp_path, default_disk_quota=10**6) as domain:
        alice = domain.user("alice")
        ws = domain.create_workspace(alice)
        with domain.db() as session, pytest.raises(QuotaExceeded) as e:
            domain.run(
                domain.workspaces.start_upload(
                    session, session.get(Workspace, ws.id), "multipart/form-data", 2 * 10**6
                )
            )
        assert e.value.message.startswith("Cannot upload these files: it needs 1.9 MiB;")


def test_deleting_frees_the_quota(tmp_path):
    with Domain(tmp_path, default_disk_quota=64 * 1024) as domain:
        alice = domain.user("alice")
        data = os.urandom(40 * 1024)  # takes its size on any file system
        first = domain.create_workspace(alice, {"a.bin": data})
        with pytest.raises(QuotaExceeded):
            domain.create_workspace(alice, {"b.bin": data})
        delete(domain, first)
        domain.run(domain.workspaces.drive(first.id))
        second = domain.create_workspace(alice, {"b.bin": data})
        assert domain.fresh(Workspace, second.id).status == "idle"


# ---- listings --------------------------------------------------------------------------------


def test_listings_show_ones_own_workspaces_and_filter(domain, alice):
    bob = domain.user("bob")
    a1 = domain.create_workspace(alice, name="one", description="first")
    a2 = domain.create_workspace(alice, name="two", description="second")
    a3 = domain.create_workspace(alice, name="one", description="again")
    b1 = domain.create_workspace(bob, name="one")
    domain.start_job(alice, a2)  # a2 becomes active

    assert domain.listed(alice) == [a1.id, a2.id, a3.id]
    assert domain.listed(bob) == [b1.id]
    assert domain.listed(alice, name="one") == [a1.id, a3.id]
    assert domain.listed(alice, name="one", description="again") == [a3.id]
    assert domain.listed(alice, status="active") == [a2.id]
    assert domain.listed(alice, status="idle") == [a1.id, a3.id]
    assert domain.listed(alice, name="three") == []

    with domain.db() as session:
        me = session.get(User, alice.id)
        assert domain.workspaces.get(session, me, str(a2.id)).name == "two"
        for other, shown in ((b1.id, b1.id), ("abc", "abc"), (10**6, 10**6)):
            with pytest.raises(NotFound) as e:
                domain.workspaces.get(session, me, other)
            assert e.value.message == f"Workspace {shown} not found for user."

    # operators: everyone's, with the owner's name, the last changed first, a page at a time
    update(domain, a1, {"description": "first, edited"})
    with domain.db() as session:
        me = session.get(User, alice.id)
        everyone = session.execute(domain.workspaces.list_all_query({}, 10, 0)).all()
        assert [(w.id, name) for w, name in everyone][:2] == [(a1.id, "alice"), (b1.id, "bob")]
        assert {(w.id, name) for w, name in everyone} == {
            (a1.id, "alice"),
            (a2.id, "alice"),
            (a3.id, "alice"),
            (b1.id, "bob"),
        }
        page = session.execute(domain.workspaces.list_all_query({"name": "one"}, 2, 1)).all()
        assert [w.id for w, _ in page] == [b1.id, a3.id]

        # each workspace's most recent job, in one query
        last = domain.workspaces.last_jobs(session, user=me)
        assert list(last) == [a2.id] and last[a2.id].status == "pending"
