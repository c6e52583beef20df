"""Reading a UWS site (`uws_hub.importer.reader`): people under their hub names with their
identities mapped to uws_hub's sources, groups and tokens; workspaces, jobs, invitations and
quotas as UWS left them; secrets never carried over; what cannot be mapped reported."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from uws_hub.importer.reader import SiteError, public_details, read_site

from .uwssite import UWSSite

GLOBUS = "GlobusUserAuthentication"
PSC = "PSCAPIUserAuthentication"


@pytest.fixture
def site(tmp_path):
    """Two people from two identity sources (one with a Slurm token cache and an old login
    method), a portal client, their workspaces, jobs and invitations."""
    s = UWSSite(create_engine(f"sqlite:///{tmp_path}/uws.sqlite"))
    s.person(1, "portal", "portal@hubmap.org", groups=("api_clients",), token="a" * 40)
    s.person(7, "alice", "alice@uni.edu", first="Alice", last="Liddell", token="b" * 40)
    s.person(8, "bob", "bob@lab.org")
    s.mapping(
        11,
        7,
        GLOBUS,
        "2b6e-sub",
        "alice@globusid.org",
        {"name": "Alice Liddell", "globus_groups_token": "SECRET", "tokens": {"x": "SECRET"}},
    )
    s.mapping(12, 7, PSC, "8812", "aliddell", {"uid": 50007, "gid": 50000, "password": "SECRET"})
    s.mapping(13, 7, "SlurmAPIResourceAuthentication", "7", "aliddell", {"token": "SECRET"})
    s.mapping(14, 8, PSC, "8813", "bmarley", {"uid": 50008})
    s.mapping(15, 8, "ShibbolethUserAuthentication", "bob@lab", "bob")
    s.workspace(41, 7, "aliddell/41", name="analysis", disk_space=3 * 1024**3)
    s.workspace(42, 8, "bmarley/42", status="active", default_job_type="jupyter_lab")
    s.workspace(43, 8, "bmarley/43", name="copy of analysis")  # an invitation's copy
    s.job(101, 7, 41, "complete", core_hours="2.50000", resource_job_id=4711)
    s.job(102, 8, 42, "running", resource_job_id=4712)
    s.job(103, 7, None, "failed")  # its workspace was deleted
    s.share(201, 41, 43)
    s.quota(301, 7, 10 * 1024**3, "100.00000", used_core="2.50000")
    return s


def read(site: UWSSite, **kw):
    with site.engine.connect() as conn:
        return read_site(conn, **kw)


def test_people_keep_their_names_groups_and_tokens(site):
    s = read(site)
    assert [p.name for p in s.people.values()] == ["portal", "alice", "bob"]
    alice = s.people[7]
    assert (alice.email, alice.first_name, alice.last_name) == ("alice@uni.edu", "Alice", "Liddell")
    assert alice.token == "b" * 40 and s.people[8].token is None
    assert s.people[1].groups == ["api_clients"]


def test_identities_map_to_uws_hub_sources_without_secrets(site):
    s = read(site)
    alice = s.people[7]
    assert [(i.source, i.external_id, i.external_username) for i in alice.identities] == [
        ("globus", "2b6e-sub", "alice@globusid.org"),
        ("account-api", "8812", "aliddell"),
    ]  # the Slurm token cache is not an identity
    assert alice.identities[0].details == {"name": "Alice Liddell"}
    assert alice.identities[1].details == {"uid": 50007, "gid": 50000}
    assert s.unknown_methods == [(15, "ShibbolethUserAuthentication")]
    # a site can say where a login method goes
    bob = read(site, sources={"ShibbolethUserAuthentication": "ldap"}).people[8]
    assert [i.source for i in bob.identities] == ["account-api", "ldap"]


def test_workspaces_jobs_shares_and_quotas_as_uws_left_them(site):
    s = read(site)
    assert s.counts() == {
        "people": 3,
        "identities": 3,
        "tokens": 2,
        "workspaces": 3,
        "jobs": 3,
        "shares": 1,
        "quotas": 1,
    }
    ws = s.workspaces[41]
    assert (ws.user_id, ws.file_path, ws.disk_space) == (7, "aliddell/41", 3 * 1024**3)
    assert s.workspaces[42].default_job_type == "jupyter_lab"
    job = s.jobs[101]
    assert job.core_hours == Decimal("2.50000") and job.resource_job_id == 4711
    assert job.end is not None and job.resource_options == {"num_cpus": 2, "time_limit_min": 120}
    assert s.jobs[103].workspace_id is None
    share = s.shares[201]
    assert (share.original_workspace_id, share.shared_workspace_id, share.is_accepted) == (
        41,
        43,
        False,
    )
    assert s.quotas[0].max_core_hours == Decimal("100.00000")


def test_a_database_that_is_not_uws_is_refused_naming_what_is_missing(site):
    with site.engine.begin() as conn:
        conn.execute(text("DROP TABLE user_workspaces_server_sharedworkspacemapping"))
    with pytest.raises(SiteError) as e:
        read(site)
    assert "table user_workspaces_server_sharedworkspacemapping is missing" in e.value.message
    assert "DATABASES" in e.value.detail


def test_secrets_are_dropped_at_any_depth():
    assert public_details(
        {"a": 1, "tokens": {"t": 1}, "nested": [{"access_token": "x", "keep": 2}]}
    ) == {"a": 1, "nested": [{"keep": 2}]}


def test_local_logins_are_keyed_by_name_as_uws_hub_keys_them(site):
    site.person(9, "carol", "carol@x.org")
    site.mapping(21, 9, "LocalUserAuthentication", "50009", "carol", {"uid": 50009})
    (ident,) = read(site).people[9].identities
    assert (ident.source, ident.external_id, ident.external_username) == ("local", "carol", "carol")


def test_the_largest_ids_uws_ever_gave_come_from_its_sequences(site):
    """Django's SQLite ids are AUTOINCREMENT: ``sqlite_sequence`` remembers ids of rows deleted
    since (PostgreSQL's sequences: tests/e2e/test_import.py)."""
    assert read(site).last_ids == {"workspace": 0, "job": 0, "share": 0}  # cannot tell
    with site.engine.begin() as conn:
        conn.execute(text("CREATE TABLE django_x (id INTEGER PRIMARY KEY AUTOINCREMENT)"))
        conn.execute(
            text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, 90), ('other', 7)"),
            {"t": "user_workspaces_server_workspace"},
        )
    assert read(site).last_ids == {"workspace": 90, "job": 0, "share": 0}
