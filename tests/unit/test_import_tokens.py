"""People's UWS tokens carried over into the hub's database (`uws_hub.importer.hubtokens`),
through JupyterHub's own ORM on a real hub database: the token keeps its value, belongs to its
person (made a hub user if new), carries only the uws API's scopes; a second run keeps it; a
token the hub has for someone else is refused."""

from __future__ import annotations

import pytest
from jupyterhub import orm, roles

from uws_hub.importer.hubtokens import carry_tokens, define_scopes, token_owner
from uws_hub.scopes import user_role_scopes

ALICE_TOKEN = "a1b2c3d4" * 5  # a DRF token: 40 hex characters


@pytest.fixture
def hub_db(tmp_path):
    """A hub database as a hub with uws_hub's configuration leaves it after its first start:
    the default roles, the ``user`` role with the uws scopes, the hub's OAuth client."""
    db = orm.new_session_factory(f"sqlite:///{tmp_path}/jupyterhub.sqlite")()
    define_scopes()
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    roles.create_role(db, {"name": "user", "scopes": user_role_scopes("uws")})
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    zoe = orm.User(name="zoe")
    db.add(zoe)
    db.commit()
    roles.assign_default_roles(db, zoe)
    db.commit()
    yield db
    db.close()


def test_a_token_keeps_its_value_for_its_person_and_only_the_uws_api(hub_db):
    result = carry_tokens(hub_db, {"alice": ALICE_TOKEN}, "uws")
    assert (result.made, result.kept, result.refused) == (["alice"], [], [])
    found = orm.APIToken.find(hub_db, ALICE_TOKEN)
    assert found.user.name == "alice" and found.note == "UWS token (imported)"
    assert "access:services!service=uws" in found.scopes
    assert not [s for s in found.scopes if not s.startswith(("access:services", "custom:uws"))]
    assert [r.name for r in orm.User.find(hub_db, "alice").roles] == ["user"]
    assert token_owner(hub_db, ALICE_TOKEN) == "alice"
    assert token_owner(hub_db, "f" * 40) is None


def test_a_second_run_keeps_it_and_someone_elses_token_is_refused(hub_db):
    carry_tokens(hub_db, {"alice": ALICE_TOKEN}, "uws")
    again = carry_tokens(hub_db, {"alice": ALICE_TOKEN, "bob": ALICE_TOKEN}, "uws")
    assert again.kept == ["alice"] and again.made == []
    assert again.refused == [("bob", "the hub already has this token for alice")]
    assert orm.User.find(hub_db, "bob") is None
    assert hub_db.query(orm.APIToken).filter_by(note="UWS token (imported)").count() == 1


def test_a_trusted_clients_token_may_exchange_user_info_only_with_the_role(hub_db):
    """UWS's api_clients: the token gets ``custom:uws:admin:tokens`` when its person has the
    uws-token-client role (c.UWS.token_client_users); without the role the hub refuses it and
    the import says so, carrying the others."""
    roles.create_role(hub_db, {"name": "uws-token-client", "scopes": ["custom:uws:admin:tokens"]})
    portal = orm.User(name="portal")
    hub_db.add(portal)
    hub_db.commit()
    roles.grant_role(hub_db, portal, "uws-token-client")
    roles.assign_default_roles(hub_db, portal)
    hub_db.commit()
    result = carry_tokens(
        hub_db,
        {"portal": "e" * 40, "rogue": "f" * 40, "alice": ALICE_TOKEN},
        "uws",
        clients={"portal", "rogue"},
    )
    assert result.made == ["alice", "portal"]
    assert [name for name, _ in result.refused] == ["rogue"]
    assert "custom:uws:admin:tokens" in result.refused[0][1]
    assert "custom:uws:admin:tokens" in orm.APIToken.find(hub_db, "e" * 40).scopes
    assert "custom:uws:admin:tokens" not in orm.APIToken.find(hub_db, ALICE_TOKEN).scopes
    assert orm.APIToken.find(hub_db, "f" * 40) is None
