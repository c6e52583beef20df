"""Planning the import of a UWS site (`uws_hub.importer.plan`), what the dry run prints: what
comes over (people, workspaces with their ids and directories, jobs as history, invitations,
quotas, tokens), what is kept because it was imported before, and every conflict, exactly."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from uws_hub.db.models import (
    AuditEvent,
    ExternalIdentity,
    Job,
    SharedWorkspace,
    User,
    UserQuota,
    Workspace,
)
from uws_hub.errors import UWSError
from uws_hub.importer.apply import ImportFailed, apply_plan
from uws_hub.importer.plan import plan_import
from uws_hub.importer.reader import read_site

from .domain import Domain
from .uwssite import T0, UWSSite

#: every UWS person has their own account (nobody gets another person's): alice has this
#: process's (root), bob ``nobody``, the others of single tests other system accounts
ME = pwd.getpwuid(os.getuid())
BOB = pwd.getpwnam("nobody")
DAEMON = pwd.getpwnam("daemon")
BIN = pwd.getpwnam("bin")
SYS = pwd.getpwnam("sys")
PSC = "PSCAPIUserAuthentication"
SAME_ACCOUNT = (
    "their account {} is also {}'s; nobody gets another person's account: give one of them "
    "their own account in UWS first."
)


def own(path, account: pwd.struct_passwd) -> None:
    """Give `path` to `account`, as UWS's storage left its owner's directories."""
    os.chown(path, account.pw_uid, account.pw_gid)


def zoes_workspaces(d: Domain, *names: str) -> list[Workspace]:
    """Workspaces `names` (ids 1, 2... on an empty database) of uws_hub's own zoe, who has her
    own account (the domain makes everyone's workspaces with this process's, alice's here)."""
    zoe = d.user("zoe")
    made = [d.create_workspace(zoe, name=name) for name in names]
    with d.db() as session:
        user = session.get(User, zoe.id)
        user.posix_name, user.uid, user.gid = SYS.pw_name, SYS.pw_uid, SYS.pw_gid
        session.commit()
    return made


def directory(site: UWSSite, account: pwd.struct_passwd, ws_id: int):
    """A workspace directory ``<uws root>/<account>/<id>`` of `account`'s."""
    path = site.root / account.pw_name / str(ws_id)
    path.mkdir(parents=True)
    own(path, account)
    own(path.parent, account)  # <root>/<account>/ is theirs too, as UWS's storage leaves it
    return path


@pytest.fixture
def uws(tmp_path):
    """A UWS site of two people with their own accounts: alice this process's, bob
    ``nobody`` (his directories are given to him: that needs root)."""
    if os.geteuid() != 0:
        pytest.skip("giving bob's directories to his own account needs root")
    root = tmp_path / "uws-root"
    site = UWSSite(create_engine(f"sqlite:///{tmp_path}/uws.sqlite"))
    site.root = root
    site.person(7, "alice", "alice@uni.edu", token="b" * 40)
    site.mapping(12, 7, PSC, "8812", ME.pw_name, {"uid": ME.pw_uid})
    site.person(8, "bob", "bob@lab.org", token="c" * 40)
    site.mapping(14, 8, PSC, "8813", BOB.pw_name)
    for ws_id, owner, account in ((41, 7, ME), (42, 8, BOB), (43, 8, BOB)):
        site.workspace(ws_id, owner, f"{account.pw_name}/{ws_id}")
        directory(site, account, ws_id)
    site.workspace(44, 8, f"{BOB.pw_name}/44", status="deleting")
    site.job(101, 7, 41, "complete", core_hours="2.5", resource_job_id=4711)
    site.job(102, 8, 42, "running", resource_job_id=4712)
    site.job(103, 7, None, "failed")
    site.share(201, 41, 43)
    site.quota(301, 7, 10 * 1024**3, "100")
    return site


@pytest.fixture
def hub_root(tmp_path):
    """uws_hub's own root, another than UWS's (it exists, as c.UWS.root_dir must)."""
    path = tmp_path / "hub-root"
    path.mkdir()
    return path


def planned(d: Domain, site: UWSSite, **kw):
    """(the plan, the site read) of importing `site` (into UWS's own root unless told)."""
    kw.setdefault("uws_root", str(site.root))
    kw.setdefault("root_dir", str(site.root))
    with site.engine.connect() as conn:
        s = read_site(conn)
    with d.db() as session:
        return plan_import(s, session, **kw), s


def plan(d: Domain, site: UWSSite, **kw):
    return planned(d, site, **kw)[0]


def test_a_clean_site_comes_over_whole(domain, uws):
    p = plan(domain, uws)
    assert p.conflicts == []
    assert p.counts() == {
        "people_new": 2,
        "people_kept": 0,
        "workspaces_new": 3,
        "workspaces_kept": 0,
        "workspaces_moved": 0,  # uws_hub uses UWS's root: the directories stay
        "workspaces_skipped": 1,  # 44 was being deleted
        "jobs": 1,
        "jobs_still_running": 1,
        "invitations": 1,
        "quotas": 1,
        "tokens": 2,
        "conflicts": 0,
    }
    assert [(w.workspace.id, w.why) for w in p.workspaces if w.action == "skip"] == [
        (44, "it is deleting in UWS")
    ]
    assert p.live_jobs == [102] and "1 job(s) still run in UWS (102)" in p.notes[0]
    assert p.notes[1].startswith("1 job(s) of workspaces deleted in UWS are not imported")
    assert "UWS never enforced its quotas" in p.notes[2]
    alice, bob = p.people
    assert (alice.posix, alice.uid, alice.gid) == (ME.pw_name, ME.pw_uid, ME.pw_gid)
    assert (bob.posix, bob.uid, bob.gid) == (BOB.pw_name, BOB.pw_uid, BOB.pw_gid)


def test_into_another_root_the_directories_move(domain, uws, hub_root):
    # not while a job still runs in one: it would lose its directory
    p = plan(domain, uws, root_dir=str(hub_root))
    assert [str(c) for c in p.conflicts] == [
        "workspace 42: job 102 still runs in it in UWS and would lose its directory when it "
        "moves: let it end (or stop it in UWS) first."
    ]
    uws.end_job(102)
    p = plan(domain, uws, root_dir=str(hub_root))
    moved = [w for w in p.workspaces if w.action == "create"]
    assert [(w.source, w.target) for w in moved] == [
        (str(uws.root / account.pw_name / str(i)), str(hub_root / account.pw_name / str(i)))
        for i, account in ((41, ME), (42, BOB), (43, BOB))
    ]
    assert p.counts()["workspaces_moved"] == 3 and p.conflicts == []


def test_every_conflict_is_named_exactly(domain, uws, hub_root):
    d = domain
    # uws_hub already has a "bob" with another identity; "carol" is a hub user uws_hub never saw
    with d.db() as session:
        bob = User(name="bob", created=T0 + dt.timedelta(days=1))  # not imported: joined later
        session.add(bob)
        session.flush()
        session.add(ExternalIdentity(user_id=bob.id, source="ldap", external_id="bob-ldap"))
        dave = User(name="dave", created=T0)  # owns alice's PSC identity
        session.add(dave)
        session.flush()
        session.add(ExternalIdentity(user_id=dave.id, source="account-api", external_id="7777"))
        session.commit()
    uws.person(9, "carol", "carol@x.org")
    uws.mapping(15, 9, PSC, "8815", "no-such-uws-account")
    uws.person(10, "erin", "erin@x.org", token="b" * 40 + "x")
    uws.mapping(16, 10, PSC, "7777", BIN.pw_name)  # dave's identity in uws_hub
    uws.person(11, "frank", "frank@x.org", token="f" * 40)
    uws.mapping(17, 11, PSC, "8817", DAEMON.pw_name)
    for ws_id in (50, 51, 52, 53):
        uws.workspace(ws_id, 11, f"{DAEMON.pw_name}/{ws_id}")
    frank = uws.root / DAEMON.pw_name
    frank.mkdir()
    own(frank, DAEMON)
    uws.person(12, "gus", "gus@x.org")  # the hub has a "gus" too: the same person?
    (frank / "51").symlink_to("/etc")
    directory(uws, DAEMON, 52)
    (hub_root / DAEMON.pw_name / "52").mkdir(parents=True)  # already there
    own(hub_root / DAEMON.pw_name, DAEMON)
    (frank / "53").write_text("a file")
    zoes_workspaces(d, "analysis")  # takes id 1 ...
    with d.db() as session:
        session.get(Workspace, 1).id = 41  # ... renumbered to collide with alice's 41
        session.commit()
    p = plan(
        d,
        uws,
        root_dir=str(hub_root),
        hub_users={"carol", "gus"},
        same_people={"carol"},  # --same-person carol: the operator says so; not for gus
        token_owner=lambda t: "zoe" if t == "f" * 40 else None,
    )
    assert [str(c) for c in p.conflicts] == [
        "person bob: uws_hub already has a bob (ldap:bob-ldap) who is not this person; rename "
        "one of them first.",
        "person carol: their account no-such-uws-account does not exist on this machine; make "
        "it (same uid and gid as on the UWS host) or connect the directory service first.",
        "person erin: their account-api identity 7777 already belongs to dave in uws_hub; "
        "nobody gets another person's account.",
        "person gus: the hub already has a user gus, unknown to uws_hub; if that is this "
        "person, say so with --same-person gus, else rename one of them first.",
        "workspace 41: uws_hub already uses id 41 for zoe's workspace 'analysis'; import into an "
        "empty uws_hub database.",
        f"workspace 50: its directory {frank}/50 is missing.",
        f"workspace 51: {frank}/51 is a link; links are never followed.",
        f"workspace 52: {hub_root}/{DAEMON.pw_name}/52 exists already; it is not overwritten.",
        f"workspace 53: {frank}/53 is not a directory.",
        "person frank: the hub already has their UWS token for zoe; it is not carried over.",
    ]
    skipped = {w.workspace.id: w.why for w in p.workspaces if w.action == "skip"}
    assert skipped[42] == "its owner bob is not imported"
    assert 201 not in p.shares  # its copy (43, bob's) stays behind


def test_a_directory_of_someone_else_is_a_conflict(domain, uws):
    own(uws.root / BOB.pw_name / "42", DAEMON)
    p = plan(domain, uws)
    assert [str(c) for c in p.conflicts] == [
        f"workspace 42: {uws.root}/{BOB.pw_name}/42 belongs to uid {DAEMON.pw_uid}, not to "
        f"{BOB.pw_name} (uid {BOB.pw_uid}); give it to its owner first."
    ]


def test_what_was_imported_before_is_kept(domain, uws):
    d = domain
    with d.db() as session:
        alice = User(name="alice", created=T0, posix_name=ME.pw_name)
        session.add(alice)
        session.flush()
        session.add(ExternalIdentity(user_id=alice.id, source="account-api", external_id="8812"))
        session.add(
            Workspace(
                id=41,
                user_id=alice.id,
                name="workspace 41",
                file_path=f"{ME.pw_name}/41",
                status="idle",
                datetime_created=T0,
                workspace_details={},
            )
        )
        session.commit()
    p = plan(d, uws, hub_users={"alice"})
    assert p.conflicts == []  # alice's account is her own uws_hub user's: not someone else's
    counts = p.counts()
    assert (counts["people_kept"], counts["people_new"]) == (1, 1)
    assert (counts["workspaces_kept"], counts["workspaces_new"]) == (1, 2)


def test_two_people_with_one_account_are_a_conflict(domain, uws):
    # dave's identity names bob's account, and his workspace is in it
    uws.person(10, "dave", "dave@x.org", token="d" * 40)
    uws.mapping(16, 10, PSC, "8816", BOB.pw_name)
    uws.workspace(45, 10, f"{BOB.pw_name}/45")
    directory(uws, BOB, 45)
    # erin's identity names an account of her own, but UWS kept her workspace in alice's
    uws.person(11, "erin", "erin@x.org")
    uws.mapping(17, 11, PSC, "8817", BIN.pw_name)
    uws.workspace(46, 11, f"{ME.pw_name}/46")
    directory(uws, ME, 46)
    p = plan(domain, uws)
    assert [(c.kind, str(c)) for c in p.conflicts] == [
        ("account", "person dave: " + SAME_ACCOUNT.format(BOB.pw_name, "bob")),
        ("account", "person erin: " + SAME_ACCOUNT.format(ME.pw_name, "alice")),
    ]
    assert [(pp.person.name, pp.action) for pp in p.people] == [
        ("alice", "create"),
        ("bob", "create"),  # the first with the account keeps it
        ("dave", "skip"),
        ("erin", "skip"),
    ]
    assert [(pp.uid, pp.gid) for pp in p.people[2:]] == [(None, None)] * 2
    skipped = {w.workspace.id: w.why for w in p.workspaces if w.action == "skip"}
    assert (skipped[45], skipped[46]) == (
        "its owner dave is not imported",
        "its owner erin is not imported",
    )
    assert p.tokens == [7, 8]  # not dave's
    assert p.counts()["people_new"] == 2 and p.counts()["conflicts"] == 2


def test_an_account_of_another_uws_hub_user_is_a_conflict(domain, uws):
    d = domain
    with d.db() as session:
        session.add(
            User(
                name="zoe",
                created=T0,
                posix_name=BOB.pw_name,
                uid=BOB.pw_uid,
                gid=BOB.pw_gid,
            )
        )
        # deleted from the hub: her files may still be there, her account is still hers
        session.add(User(name="yves", created=T0, posix_name=ME.pw_name, deleted_at=T0))
        session.commit()
    p = plan(d, uws)
    assert [(c.kind, str(c)) for c in p.conflicts] == [
        ("account", "person alice: " + SAME_ACCOUNT.format(ME.pw_name, "yves")),
        ("account", "person bob: " + SAME_ACCOUNT.format(BOB.pw_name, "zoe")),
    ]
    assert [pp.action for pp in p.people] == ["skip", "skip"]
    assert {w.action for w in p.workspaces} == {"skip"}
    assert (p.jobs, p.shares, p.quotas, p.tokens) == ([], [], [], [])
    with pytest.raises(ImportFailed, match="The plan has 2 conflict"):
        apply_plan(p, planned(d, uws)[1], d.db, resources={})
    with d.db() as session:  # nobody was made
        assert list(session.scalars(select(User.name).order_by(User.id))) == ["zoe", "yves"]


# ---- the real run ----------------------------------------------------------------------------


def run(d: Domain, site: UWSSite, **kw):
    p, s = planned(d, site, **kw)
    return p, apply_plan(p, s, d.db, resources={"slurm": "cluster", "local": "local"})


def test_an_import_keeps_ids_and_a_second_run_changes_nothing(domain, uws, hub_root):
    d = domain
    (uws.root / ME.pw_name / "41" / "notes.txt").write_text("from UWS")
    uws.end_job(102)
    p, made = run(d, uws, root_dir=str(hub_root))
    assert made == {
        "people": 2,
        "identities": 2,
        "workspaces": 3,
        "moved": 3,
        "jobs": 2,
        "invitations": 1,
        "quotas": 1,
    }
    with d.db() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        assert (alice.email, alice.posix_name, alice.uid) == (
            "alice@uni.edu",
            ME.pw_name,
            ME.pw_uid,
        )
        assert [(i.source, i.external_id) for i in alice.identities] == [("account-api", "8812")]
        ws = session.get(Workspace, 41)
        assert (ws.user_id, ws.file_path, ws.status) == (alice.id, f"{ME.pw_name}/41", "idle")
        job = session.get(Job, 101)
        assert (job.workspace_id, job.resource, job.resource_job_id) == (41, "cluster", 4711)
        assert job.core_seconds == 9000 and job.status == "complete" and job.cpus == 2
        assert session.get(Job, 102).status == "complete"  # ended in UWS before the switch
        share = session.get(SharedWorkspace, 201)
        bob = session.scalar(select(User).where(User.name == "bob"))
        assert (bob.posix_name, bob.uid, bob.gid) == (BOB.pw_name, BOB.pw_uid, BOB.pw_gid)
        assert session.get(Workspace, 42).file_path == f"{BOB.pw_name}/42"
        assert (share.sender_id, share.recipient_id, share.is_accepted) == (alice.id, bob.id, False)
        quota = session.get(UserQuota, alice.id)
        assert (quota.disk_limit, quota.core_seconds_limit) == (10 * 1024**3, 360000)
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "import.uws"))
        assert event.details["workspaces"] == 3
    assert (hub_root / ME.pw_name / "41" / "notes.txt").read_text() == "from UWS"
    assert not (uws.root / ME.pw_name / "41").exists()
    # <hub root>/<account>/ made as uws_hub makes it: its account's, c.UWS.user_dir_mode
    for account, ids in ((ME, ["41"]), (BOB, ["42", "43"])):
        st = os.lstat(hub_root / account.pw_name)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
        assert (st.st_uid, st.st_gid) == (account.pw_uid, account.pw_gid)
        assert sorted(os.listdir(hub_root / account.pw_name)) == ids
        assert os.lstat(hub_root / account.pw_name / ids[0]).st_uid == account.pw_uid
    # new workspaces get ids after the imported ones
    assert zoes_workspaces(d, "analysis")[0].id == 44
    # again: everything is kept, nothing made
    p2, made2 = run(d, uws, root_dir=str(hub_root))
    assert p2.conflicts == [] and set(made2.values()) == {0}
    assert (p2.counts()["people_kept"], p2.counts()["workspaces_kept"]) == (2, 3)


def test_a_run_that_stopped_after_a_move_finishes(domain, uws, hub_root, monkeypatch):
    d = domain
    real_add = Session.add

    def crash_on_workspace_42(self, obj, *a, **kw):
        if isinstance(obj, Workspace) and obj.id == 42:
            raise RuntimeError("the machine went down")
        return real_add(self, obj, *a, **kw)

    uws.end_job(102)
    monkeypatch.setattr(Session, "add", crash_on_workspace_42)
    with pytest.raises(RuntimeError):
        run(d, uws, root_dir=str(hub_root))
    monkeypatch.setattr(Session, "add", real_add)
    assert (hub_root / BOB.pw_name / "42").is_dir() and d.fresh(Workspace, 42) is None
    p, made = run(d, uws, root_dir=str(hub_root))  # the directory is found where it went
    assert p.conflicts == [] and made["workspaces"] == 2 and made["moved"] == 1
    assert d.fresh(Workspace, 42).file_path == f"{BOB.pw_name}/42"


def test_a_link_in_place_of_an_account_directory_is_never_followed(domain, uws, hub_root, tmp_path):
    d = domain
    uws.end_job(102)
    elsewhere = tmp_path / "elsewhere"  # bob's, so a followed link would pass every check
    elsewhere.mkdir()
    own(elsewhere, BOB)
    link = hub_root / BOB.pw_name
    link.symlink_to(elsewhere)
    # the dry run sees it
    p, s = planned(d, uws, root_dir=str(hub_root))
    assert [str(c) for c in p.conflicts] == [
        f"workspace {i}: {link} is a link; links are never followed. Fix it first: the "
        "directory would move into it."
        for i in (42, 43)
    ]
    # one made after the plan: the real run refuses it when it gets there
    link.unlink()
    p, s = planned(d, uws, root_dir=str(hub_root))
    assert p.conflicts == []
    link.symlink_to(elsewhere)
    with pytest.raises(ImportFailed, match="Workspace 42: could not move") as e:
        apply_plan(p, s, d.db, resources={"slurm": "cluster", "local": "local"})
    assert f"{uws.root}/{BOB.pw_name}/42 to {link}/42" in e.value.message
    assert os.listdir(elsewhere) == []  # nothing went through the link
    assert os.path.islink(link)  # nor was it replaced
    assert (uws.root / BOB.pw_name / "42").is_dir()  # the workspace stays where UWS left it
    assert d.fresh(Workspace, 42) is None
    # alice's, before it, came over; a run after the link is fixed finishes
    assert (hub_root / ME.pw_name / "41").is_dir() and d.fresh(Workspace, 41) is not None
    link.unlink()
    p2, made = run(d, uws, root_dir=str(hub_root))
    assert p2.conflicts == [] and (made["workspaces"], made["moved"]) == (2, 2)
    assert d.fresh(Workspace, 43).file_path == f"{BOB.pw_name}/43"


def test_a_plan_with_conflicts_is_not_carried_out(domain, uws):
    d = domain
    (uws.root / BOB.pw_name / "42").rmdir()
    p, s = planned(d, uws)
    with pytest.raises(UWSError, match="The plan has 1 conflict"):
        apply_plan(p, s, d.db, resources={})
    with d.db() as session:
        assert session.scalar(select(User).where(User.name == "alice")) is None


def test_job_and_invitation_ids_in_use_and_shared_identities_are_conflicts(domain, uws):
    d = domain
    ws, other = zoes_workspaces(d, "analysis", "copy")  # ids 1 and 2
    zoe = d.fresh(User, ws.user_id)
    with d.db() as session:  # uws_hub's own job 101 and invitation 201
        session.add(
            Job(
                id=101,
                user_id=zoe.id,
                workspace_id=ws.id,
                job_type="jupyter_lab",
                status="complete",
            )
        )
        session.add(
            SharedWorkspace(
                id=201,
                original_workspace_id=ws.id,
                shared_workspace_id=other.id,
                sender_id=zoe.id,
                recipient_id=zoe.id,
            )
        )
        session.commit()
    uws.person(12, "gina", "gina@x.org")
    uws.mapping(18, 12, PSC, "8812", BIN.pw_name)  # alice's PSC identity too
    p = plan(d, uws)
    assert [str(c) for c in p.conflicts] == [
        "person gina: their account-api identity 8812 is also alice's in UWS; merge or separate "
        "them in UWS first.",
        "job 101: uws_hub already uses id 101 for another job (of workspace 1); import into an "
        "empty uws_hub database.",
        "invitation 201: uws_hub already uses id 201 for another invitation (of copy 2); import "
        "into an empty uws_hub database.",
    ]
    assert p.jobs == [] and p.shares == []


def test_names_are_the_hubs_lower_case_ones_and_collisions_are_named(domain, uws):
    uws.person(13, "Alice", "alice@elsewhere.org")  # the hub would make this "alice" too
    uws.person(14, "Harry", "harry@x.org")
    p = plan(domain, uws)
    assert [str(c) for c in p.conflicts] == [
        "person Alice: their hub name alice is also alice's (the hub names people in lower "
        "case); rename one of them in UWS first."
    ]
    assert "harry" in [pp.person.name for pp in p.people if pp.action == "create"]


def test_who_may_keep_a_token_and_a_copy_nobody_accepted(domain, uws, tmp_path):
    """Inactive people (UWS refused them) keep their workspaces but not their tokens; a trusted
    client (group api_clients) keeps its token only with the uws-token-client role; a pending
    invitation's copy stays behind with its original."""
    d = domain
    uws.person(20, "hal", "hal@x.org", token="d" * 40, active=False)
    uws.person(21, "portal", "", groups=("api_clients",), token="e" * 40)
    uws.workspace(45, 7, f"{ME.pw_name}/45", status="deleting")  # alice's, going
    directory(uws, BOB, 46)
    uws.workspace(46, 8, f"{BOB.pw_name}/46")
    uws.share(202, 45, 46)  # pending: bob never saw 46
    p = plan(d, uws)
    assert [str(c) for c in p.conflicts] == [
        "person portal: a trusted client in UWS (group api_clients): add them to "
        "c.UWS.token_client_users (the uws-token-client role), and their name to "
        "c.AccountMapping.home_domains if their user_info names this site's accounts; start "
        "the hub once, then run the import."
    ]
    assert any(n.startswith("Inactive in UWS (they could not log in there): hal.") for n in p.notes)
    skipped = {w.workspace.id: w.why for w in p.workspaces if w.action == "skip"}
    assert skipped[46] == (
        "it is the copy of a pending invitation (202) whose original is not imported"
    )
    p = plan(d, uws, token_clients={"portal"})
    assert p.conflicts == []
    people = {pp.person.id: pp.person.name for pp in p.people}
    assert sorted(people[i] for i in p.tokens) == ["alice", "bob", "portal"]  # not hal


def test_accounts_and_file_systems_that_do_not_fit(domain, uws, hub_root):
    d = domain
    uws.end_job(102)
    # uws_hub knows alice already, with another account
    with d.db() as session:
        session.add(User(name="alice", created=T0, posix_name=SYS.pw_name, uid=SYS.pw_uid))
        session.commit()
    # bob's account directory in UWS's root is a file: nothing can be read in it
    shutil.rmtree(uws.root / BOB.pw_name)
    (uws.root / BOB.pw_name).write_text("not a directory")
    p = plan(d, uws, root_dir=str(hub_root))
    assert [str(c) for c in p.conflicts] == [
        f"person alice: uws_hub maps them to the account {SYS.pw_name}, UWS's storage to "
        f"{ME.pw_name}; make them one first.",
        f"workspace 42: {uws.root}/{BOB.pw_name} is not a directory.",
        f"workspace 43: {uws.root}/{BOB.pw_name} is not a directory.",
    ]


def test_a_move_to_another_file_system_is_a_conflict(domain, uws):
    """/dev/shm (tmpfs) is another file system than the tests' /tmp: a rename cannot move."""
    uws.end_job(102)
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        p = plan(domain, uws, root_dir=str(other))
        assert [str(c) for c in p.conflicts][0] == (
            f"workspace 41: {other} is on another file system than "
            f"{uws.root}/{ME.pw_name}/41: the move would be a copy. Move the directories "
            "yourself (same owners, links as links), or set c.UWS.root_dir to UWS's root."
        )
        assert len(p.conflicts) == 3 and os.listdir(other) == []
    finally:
        shutil.rmtree(other)


def test_a_directory_swapped_for_a_link_after_the_plan_goes_back(domain, uws, hub_root, tmp_path):
    """Its owner may swap a workspace for a link between the dry run and the move: the link
    is moved (never followed), found out, and put back; nothing is recorded."""
    d = domain
    uws.end_job(102)
    p, s = planned(d, uws, root_dir=str(hub_root))
    assert p.conflicts == []
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    own(elsewhere, BOB)
    ws42 = uws.root / BOB.pw_name / "42"
    ws42.rmdir()
    ws42.symlink_to(elsewhere)
    with pytest.raises(ImportFailed, match="Workspace 42: .* changed while it was moved"):
        apply_plan(p, s, d.db, resources={"slurm": "cluster", "local": "local"})
    assert ws42.is_symlink() and not os.path.lexists(hub_root / BOB.pw_name / "42")
    assert d.fresh(Workspace, 42) is None and os.listdir(elsewhere) == []
