"""Sharing a workspace by copy (`ShareManager`, `ShareCopies`): an invitation makes a hidden
copy workspace for the recipient, the reconciler's drive copies the files, and accept, decline
and cancel settle it. End to end (other accounts, the mail server, a restart mid-copy, a full
disk): tests/e2e/test_shares.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from uws_hub.db.models import Notification, SharedWorkspace, User, Workspace
from uws_hub.errors import BadRequest, Forbidden, NotFound
from uws_hub.quotas import QuotaExceeded
from uws_hub.shares.specs import ShareSpec

from .domain import Domain, audit_actions, files_on_disk

FILES = {"notebook.ipynb": '{"cells": []}', "data/table.csv": "a,b\n1,2\n"}


@pytest.fixture
def alice(domain):
    return domain.user("alice", email="alice@example.org")


@pytest.fixture
def bob(domain):
    return domain.user("bob", email="bob@example.org")


@pytest.fixture
def original(domain, alice):
    return domain.create_workspace(alice, FILES, name="Shared analysis", default_job_type="batch")


def share(domain: Domain, sender: User, ws_id: int, *recipients: int) -> list[SharedWorkspace]:
    with domain.db() as session:
        spec = ShareSpec(ws_id, tuple(recipients))
        return domain.shares.create(session, session.get(User, sender.id), spec)


def answer(domain: Domain, who: User, inv: SharedWorkspace, how: str):
    """`how`: accept, or withdraw (the recipient declines, the sender cancels) the invitation
    `inv`, addressed as UWS does by its copy's workspace id."""
    with domain.db() as session:
        user = session.get(User, who.id)
        return getattr(domain.shares, how)(session, user, inv.shared_workspace_id)


def refusal(fn, *args) -> BadRequest:
    with pytest.raises(BadRequest) as e:
        fn(*args)
    assert e.value.status_code == 400
    return e.value


def notifications(domain: Domain) -> list[tuple[str, str]]:
    with domain.db() as session:
        return [
            (n.kind, n.recipient)
            for n in session.scalars(select(Notification).order_by(Notification.id))
        ]


def test_an_invitation_makes_a_hidden_copy_to_be_made(domain, alice, bob, original):
    [inv] = share(domain, alice, original.id, bob.id)

    assert (inv.sender_id, inv.recipient_id, inv.original_workspace_id) == (
        alice.id,
        bob.id,
        original.id,
    )
    assert not inv.is_accepted and inv.copy_status == "pending"
    # as UWS: the original's last job, none yet: "" and {}
    assert (inv.last_job_type, inv.last_resource_options) == ("", {})
    copy = domain.fresh(Workspace, inv.shared_workspace_id)
    assert (copy.user_id, copy.status, copy.name) == (bob.id, "initializing", "Shared analysis")
    # the reconciler is told; bob does not see the copy before accepting it
    assert domain.work.ids == [copy.id]
    assert domain.workspaces.pending_work() == [copy.id]
    assert domain.listed(bob) == []
    assert notifications(domain) == [("share_invitation", "bob@example.org")]
    with domain.db() as session:
        sent, received = domain.shares.list_for(session, session.get(User, alice.id), {})
        assert [s.id for s in sent] == [inv.id] and received == []
        sent, received = domain.shares.list_for(session, session.get(User, bob.id), {})
        assert sent == [] and [s.id for s in received] == [inv.id]
        assert audit_actions(session) == ["workspace.create", "share.create"]


def test_the_copy_is_made_by_drive_then_accepted(domain, alice, bob, original):
    [inv] = share(domain, alice, original.id, bob.id)
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))

    copy = domain.fresh(Workspace, inv.shared_workspace_id)
    assert copy.status == "idle"
    assert copy.file_path != domain.fresh(Workspace, original.id).file_path
    assert files_on_disk(domain.path(copy)) == {k: v.encode() for k, v in FILES.items()}
    current = copy.workspace_details["current_workspace_details"]["files"]
    assert sorted(f["name"] for f in current) == ["/data/table.csv", "/notebook.ipynb"]
    done = domain.fresh(SharedWorkspace, inv.id)
    assert done.copy_status == "done" and done.copy_error is None
    assert (done.copy_files_done, done.copy_files_total) == (2, 2)
    assert done.copy_bytes_done == done.copy_bytes_total == sum(len(v) for v in FILES.values())
    assert domain.listed(bob) == []  # still not his until accepted

    accepted = answer(domain, bob, inv, "accept")
    assert accepted.is_accepted and accepted.datetime_share_accepted is not None
    assert domain.listed(bob) == [copy.id]
    with domain.db() as session:
        assert domain.workspaces.get(session, session.get(User, bob.id), copy.id).name == (
            "Shared analysis"
        )
    # the copy is his own: changing it leaves the original alone
    (domain.path(copy) / "notebook.ipynb").write_text("bob's version")
    assert (domain.path(original) / "notebook.ipynb").read_text() == '{"cells": []}'
    assert notifications(domain) == [
        ("share_invitation", "bob@example.org"),
        ("share_accepted", "alice@example.org"),
    ]


def test_an_invitation_may_be_accepted_before_the_copy_is_done(domain, alice, bob, original):
    [inv] = share(domain, alice, original.id, bob.id)
    answer(domain, bob, inv, "accept")
    # listed while the copy is being made, then idle with the files
    assert domain.listed(bob, status="initializing") == [inv.shared_workspace_id]
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    copy = domain.fresh(Workspace, inv.shared_workspace_id)
    assert copy.status == "idle" and files_on_disk(domain.path(copy)).keys() == FILES.keys()


@pytest.mark.parametrize("who, outcome", [("bob", "declined"), ("alice", "cancelled")])
def test_decline_or_cancel_removes_the_copy(domain, alice, bob, original, who, outcome):
    [inv] = share(domain, alice, original.id, bob.id)
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    copy_dir = domain.path(domain.fresh(Workspace, inv.shared_workspace_id))
    assert copy_dir.is_dir()

    assert answer(domain, {"bob": bob, "alice": alice}[who], inv, "withdraw") == outcome

    assert domain.fresh(SharedWorkspace, inv.id) is None
    assert domain.fresh(Workspace, inv.shared_workspace_id).status == "deleting"
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    assert domain.fresh(Workspace, inv.shared_workspace_id).status == "deleted"
    assert not copy_dir.exists()
    assert files_on_disk(domain.path(original)).keys() == FILES.keys()  # the original stays
    with domain.db() as session:
        assert audit_actions(session)[-1] == f"share.{'decline' if who == 'bob' else 'cancel'}"
    mails = notifications(domain)
    if who == "bob":  # the sender learns of a decline; a cancel tells nobody
        assert mails[-1] == ("share_declined", "alice@example.org")
    else:
        assert mails == [("share_invitation", "bob@example.org")]


def test_a_copy_withdrawn_before_it_is_made_is_never_copied(domain, alice, bob, original):
    [inv] = share(domain, alice, original.id, bob.id)
    answer(domain, bob, inv, "withdraw")
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    assert domain.fresh(Workspace, inv.shared_workspace_id).status == "deleted"
    # nothing was written but the original's files
    everything = files_on_disk(domain.tmp_path / "root")
    prefix = domain.fresh(Workspace, original.id).file_path
    assert sorted(everything) == sorted(f"{prefix}/{name}" for name in FILES)


def test_answers_only_once_and_only_by_the_right_person(domain, alice, bob, original):
    carol = domain.user("carol")
    [inv] = share(domain, alice, original.id, bob.id)
    copy_id = inv.shared_workspace_id
    # UWS's refusals: only the recipient accepts (404 to anyone else, the sender too)
    for who in (alice, carol):
        with pytest.raises(NotFound) as e:
            answer(domain, who, inv, "accept")
        assert e.value.message == f"Shared workspace {copy_id} not found."
    # a third person cannot decline or cancel (403), nor can anyone an invitation that is not
    with pytest.raises(Forbidden) as e:
        answer(domain, carol, inv, "withdraw")
    assert e.value.message == f"User does not have permissions for shared workspace {copy_id}."
    with domain.db() as session, pytest.raises(NotFound) as e:
        domain.shares.withdraw(session, session.get(User, bob.id), original.id)
    assert e.value.message == f"Shared workspace {original.id} not found."

    before = domain.fresh(Workspace, copy_id).datetime_created
    answer(domain, bob, inv, "accept")
    # accepting resets the copy's creation time (as UWS); accepting again changes nothing
    accepted_at = domain.fresh(Workspace, copy_id).datetime_created
    assert accepted_at > before
    assert domain.fresh(Workspace, copy_id).datetime_created == accepted_at
    assert answer(domain, bob, inv, "accept").is_accepted
    for who in (alice, bob):
        assert refusal(answer, domain, who, inv, "withdraw").message == (
            f"Shared workspace {copy_id} has been accepted and cannot be deleted."
        )
    with domain.db() as session:
        _, received = domain.shares.list_for(
            session, session.get(User, bob.id), {"is_accepted": "false"}
        )
        assert received == []
        assert refusal(
            domain.shares.list_for, session, session.get(User, bob.id), {"is_accepted": "maybe"}
        ).message == ("is_accepted must be true or false.")
        # the invitation is found by its copy's id, by sender and recipient only
        assert domain.shares.get(session, session.get(User, alice.id), copy_id).id == inv.id
        assert domain.shares.get(session, session.get(User, carol.id), copy_id) is None
        assert domain.shares.get(session, session.get(User, bob.id), inv.id + 1000) is None
        # and, for links in e-mails sent before, by its old number
        assert domain.shares.legacy(session, session.get(User, bob.id), inv.id).id == inv.id
        assert domain.shares.legacy(session, session.get(User, carol.id), inv.id) is None


def test_refused_invitations_change_nothing(domain, alice, bob, original):
    assert refusal(share, domain, alice, original.id, alice.id).message == (
        "You cannot share a workspace with yourself."
    )
    # one bad recipient refuses the whole invitation
    assert refusal(share, domain, alice, original.id, bob.id, 999).message == (
        "Invalid user id provided."
    )
    with domain.db() as session:
        assert session.scalars(select(SharedWorkspace)).all() == []
        assert session.scalars(select(Workspace.id)).all() == [original.id]
    assert domain.work.ids == [] and notifications(domain) == []

    # someone else's workspace, or none, is not found
    with pytest.raises(NotFound) as e:
        share(domain, bob, original.id, alice.id)
    assert e.value.message == f"Workspace {original.id} not found for user."

    share(domain, alice, original.id, bob.id)
    assert refusal(share, domain, alice, original.id, bob.id).message.startswith(
        f"Workspace {original.id} is already shared with bob (shared workspace "
    )


def test_unaccepted_copies_are_not_shared_further_and_block_deleting(domain, alice, bob, original):
    carol = domain.user("carol")
    [inv] = share(domain, alice, original.id, bob.id)
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    assert refusal(share, domain, bob, inv.shared_workspace_id, carol.id).message == (
        f"Workspace {inv.shared_workspace_id} is a shared copy you have not accepted yet; "
        "accept it before sharing it further."
    )
    with domain.db() as session:
        ws = session.get(Workspace, original.id)
        assert refusal(domain.workspaces.request_delete, session, ws).message == (
            f"Workspace {original.id} has shared workspaces associated with it, that have not yet "
            "been accepted. Please cancel those shares to delete this workspace."
        )
    answer(domain, bob, inv, "accept")
    [onward] = share(domain, bob, inv.shared_workspace_id, carol.id)
    assert onward.sender_id == bob.id


def test_several_recipients_at_once(domain, alice, bob, original):
    carol = domain.user("carol")
    shares = share(domain, alice, original.id, bob.id, carol.id)
    assert [s.recipient_id for s in shares] == [bob.id, carol.id]
    for s in shares:
        domain.run(domain.workspaces.drive(s.shared_workspace_id))
        copy = domain.fresh(Workspace, s.shared_workspace_id)
        assert copy.status == "idle" and files_on_disk(domain.path(copy)).keys() == FILES.keys()
    assert len({domain.fresh(Workspace, s.shared_workspace_id).file_path for s in shares}) == 2


def test_a_copy_whose_original_is_gone_fails_and_says_so(domain, alice, bob, original):
    [inv] = share(domain, alice, original.id, bob.id)
    with domain.db() as session:  # as if the original had been deleted meanwhile
        session.get(Workspace, original.id).status = "deleted"
        session.commit()
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    failed = domain.fresh(SharedWorkspace, inv.id)
    assert failed.copy_status == "failed"
    assert failed.copy_error == "the original workspace is no longer available"
    copy = domain.fresh(Workspace, inv.shared_workspace_id)
    assert (copy.status, copy.status_message) == (
        "error",
        "The copy failed: the original workspace is no longer available",
    )
    assert refusal(answer, domain, bob, inv, "accept").message == (
        f"The copy of shared workspace {inv.shared_workspace_id} failed (the original workspace "
        "is no longer available); decline it and ask the sender to share again."
    )
    assert notifications(domain)[-2:] == [
        ("share_copy_failed", "alice@example.org"),
        ("share_copy_failed", "bob@example.org"),
    ]


def test_accepting_counts_against_the_recipients_disk_quota(domain, alice, bob, original):
    [inv] = share(domain, alice, original.id, bob.id)
    domain.run(domain.workspaces.drive(inv.shared_workspace_id))
    size = domain.fresh(Workspace, inv.shared_workspace_id).disk_space
    with domain.db() as session:
        domain.quotas.set_limits(session, session.get(User, bob.id), {"disk_limit": size - 1})
        session.commit()
    with pytest.raises(QuotaExceeded) as e:
        answer(domain, bob, inv, "accept")
    assert e.value.message.startswith("Cannot accept this shared workspace: it needs ")
    assert not domain.fresh(SharedWorkspace, inv.id).is_accepted
    with domain.db() as session:
        domain.quotas.set_limits(session, session.get(User, bob.id), {"disk_limit": size})
        session.commit()
    assert answer(domain, bob, inv, "accept").is_accepted
