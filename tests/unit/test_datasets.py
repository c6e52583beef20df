"""Dataset links (`uws_hub.workspaces.datasets`): symlinks that name a dataset by id, checked at
the edge (`WorkspaceSpec`), resolved once per request by the configured resolver, linked like
any symlink under ``c.UWS.symlink_roots``; refusals that change nothing, and the caller's
``globus_groups_token`` kept out of every record. The lookup service over HTTP (a stand-in of
HuBMAP's), through a real hub: tests/e2e/test_dataset_links.py."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import func, select

from uws_hub.db.models import AuditEvent, Workspace
from uws_hub.errors import BadRequest, ConfigError
from uws_hub.workspaces import datasets
from uws_hub.workspaces.specs import WorkspaceSpec

from .domain import Domain, make_settings

IDS = [uuid.uuid4().hex for _ in range(3)]
DASHED = str(uuid.uuid4())
UNKNOWN = uuid.uuid4().hex
TOKEN = "AgVXb7groups-token-" + uuid.uuid4().hex
NO_TOKEN = "No globus_groups_token passed when trying to use dataset_uuid."


def parse_ws(request, *, symlink_roots=()):
    return WorkspaceSpec.parse(
        request, creating=True, job_types={"jupyter_lab"}, symlink_roots=list(symlink_roots)
    )


def refused(parse, *args, **kwargs) -> str:
    with pytest.raises(BadRequest) as e:
        parse(*args, **kwargs)
    assert e.value.status_code == 400
    return e.value.message


def body(*ids: str, token: str | None = None, where: str = "top", **extra) -> dict:
    details: dict = {"symlinks": [{"name": f"datasets/{i}", "dataset_uuid": i} for i in ids]}
    out: dict = {"name": "with data", "description": "d", **extra, "workspace_details": details}
    if token is not None:
        (out if where == "top" else details)["globus_groups_token"] = token
    return out


# ---- the request ----------------------------------------------------------------------------


def test_a_dataset_link_is_kept_unresolved_with_its_token():
    spec = parse_ws(body(IDS[0], DASHED, token=TOKEN))
    assert [(d.name, d.uuid) for d in spec.details.datasets] == [
        (f"datasets/{IDS[0]}", IDS[0]),
        (f"datasets/{DASHED}", DASHED),
    ]
    assert spec.details.symlinks == [] and spec.details  # something to do
    assert spec.dataset_token == TOKEN
    assert TOKEN not in repr(spec)
    # where portal-ui puts it (and UWS read it); the top-level one wins when both are sent
    assert parse_ws(body(IDS[0], token=TOKEN, where="details")).dataset_token == TOKEN
    both = body(IDS[0], token=TOKEN, where="details")
    both["globus_groups_token"] = "top-level"
    assert parse_ws(both).dataset_token == "top-level"
    # no dataset links: the token is not even kept
    assert parse_ws(body(token=TOKEN)).dataset_token is None


@pytest.mark.parametrize(
    "bad",
    ["../../etc", "/etc/passwd", "{uuid}", IDS[0][:31], IDS[0] + "0", IDS[0] + "/..", "", 42, None],
)
def test_only_dataset_ids_reach_a_resolver(bad):
    link = {"name": "d", "dataset_uuid": bad}
    if bad is None:  # no dataset_uuid at all: an ordinary symlink without its source_path
        assert refused(parse_ws, body() | {"workspace_details": {"symlinks": [link]}}) == (
            "Symlink path not found: "  # UWS's text
        )
        return
    msg = refused(
        parse_ws, {"name": "n", "description": "d", "workspace_details": {"symlinks": [link]}}
    )
    assert msg.startswith("Invalid dataset_uuid") and "symlinks[0]" in msg


def test_a_link_names_a_source_or_a_dataset_not_both(tmp_path):
    link = {"name": "d", "dataset_uuid": IDS[0], "source_path": str(tmp_path)}
    msg = refused(
        parse_ws, {"name": "n", "description": "d", "workspace_details": {"symlinks": [link]}}
    )
    assert "both 'source_path' and 'dataset_uuid'" in msg
    # names collide across both kinds of links
    (tmp_path / "a").mkdir()
    twice = {
        "name": "n",
        "description": "d",
        "workspace_details": {
            "symlinks": [
                {"name": "data", "source_path": str(tmp_path / "a")},
                {"name": "data", "dataset_uuid": IDS[0]},
            ]
        },
    }
    assert "named twice" in refused(parse_ws, twice, symlink_roots=[str(tmp_path)])


# ---- resolving through the manager ------------------------------------------------------------


class CountingLookup:
    """A lookup service's answers, as `HttpResolver.lookup` returns them (the HTTP itself is
    tested against a stand-in in tests/e2e): records each call."""

    needs_token = True

    def __init__(self, answers: dict[str, dict]):
        self.answers = answers
        self.calls: list[tuple[list[str], str | None]] = []

    async def lookup(self, uuids, token):
        self.calls.append((list(uuids), token))
        return {u: self.answers[u] for u in uuids if u in self.answers}


@pytest.fixture
def store(tmp_path):
    """The datasets, under the one symlink root."""
    root = tmp_path / "datasets"
    for i in [*IDS, DASHED]:
        (root / "fixed" / i).mkdir(parents=True)
        (root / "fixed" / i / "README.txt").write_text(i)
    return root


@pytest.fixture
def domain(tmp_path, store):
    with Domain(
        tmp_path,
        symlink_roots=[str(store)],
        dataset_resolver="template",
        dataset_path_template=f"{store}/fixed/{{uuid}}",
    ) as d:
        yield d


def workspace_count(domain: Domain) -> int:
    with domain.db() as session:
        return session.scalar(select(func.count()).select_from(Workspace))


def test_template_links_each_dataset(domain, store):
    alice = domain.user("alice")
    ws = domain.create_workspace(alice, **body(IDS[0], DASHED))
    target = domain.settings.root_dir + "/" + ws.file_path + f"/datasets/{IDS[0]}"
    assert os.readlink(target) == str(store / "fixed" / IDS[0])
    with open(os.path.join(target, "README.txt")) as f:
        assert f.read() == IDS[0]
    row = domain.fresh(Workspace, ws.id)
    asked = row.workspace_details["request_workspace_details"]["symlinks"]
    assert {(s["dataset_uuid"], s["source_path"]) for s in asked} == {
        (IDS[0], str(store / "fixed" / IDS[0])),
        (DASHED, str(store / "fixed" / DASHED)),
    }
    assert {s["name"] for s in row.workspace_details["current_workspace_details"]["symlinks"]} == {
        f"/datasets/{IDS[0]}",
        f"/datasets/{DASHED}",
    }


def test_an_unknown_dataset_refuses_the_create_and_nothing_is_made(domain):
    alice = domain.user("alice")
    with pytest.raises(BadRequest) as e:
        domain.create_workspace(alice, **body(IDS[0], UNKNOWN, IDS[1]))
    assert e.value.message == (
        "Errors encountered when attempting to gather UUID information: "
        f"[{{'uuid': '{UNKNOWN}', 'error': 'Dataset not found.'}}]"
    )
    assert workspace_count(domain) == 0
    assert os.listdir(domain.settings.root_dir) == []


def test_a_dataset_leading_out_of_the_roots_is_refused(domain, store, tmp_path):
    (tmp_path / "secret").mkdir()
    escape = uuid.uuid4().hex
    os.symlink(tmp_path / "secret", store / "fixed" / escape)  # in the layout, leads out
    with pytest.raises(BadRequest) as e:
        domain.create_workspace(domain.user("alice"), **body(escape))
    assert "is outside the allowed locations" in e.value.message
    assert escape in e.value.detail and workspace_count(domain) == 0


def test_update_adds_datasets_or_changes_nothing(domain, store):
    ws = domain.create_workspace(domain.user("alice"), {"notes.txt": "n"})

    def update(request: dict) -> None:
        with domain.db() as session:
            row = session.get(Workspace, ws.id)
            domain.run(domain.workspaces.update(session, row, domain.spec(request, creating=False)))

    with pytest.raises(BadRequest):
        update({"name": "renamed", "workspace_details": body(IDS[2], UNKNOWN)["workspace_details"]})
    row = domain.fresh(Workspace, ws.id)
    assert row.name == "analysis"
    assert row.workspace_details["current_workspace_details"]["symlinks"] == []
    assert not os.path.lexists(os.path.join(domain.settings.root_dir, ws.file_path, "datasets"))
    update({"workspace_details": body(IDS[2])["workspace_details"]})
    row = domain.fresh(Workspace, ws.id)
    links = row.workspace_details["current_workspace_details"]["symlinks"]
    assert [s["name"] for s in links] == [f"/datasets/{IDS[2]}"]
    with domain.db() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert events[-1].action == "workspace.update"
    assert events[-1].details == {"symlinks": 1, "datasets": 1}


def test_dataset_links_are_refused_where_no_resolver_is_configured(tmp_path):
    with Domain(tmp_path, symlink_roots=[str(tmp_path)]) as d:
        with pytest.raises(BadRequest) as e:
            d.create_workspace(d.user("alice"), **body(IDS[0], token=TOKEN))
        assert "not enabled on this server" in e.value.message
        assert "c.UWS.dataset_resolver" in e.value.detail
        assert workspace_count(d) == 0


def test_one_lookup_per_request_with_the_token(domain, store):
    lookup = CountingLookup({i: {"path": str(store / "fixed" / i)} for i in IDS})
    domain.workspaces.datasets = lookup
    alice = domain.user("alice")
    request = body(*IDS, token=TOKEN)
    # the same dataset under a second name: one id in the lookup, two links
    request["workspace_details"]["symlinks"].append({"name": "again", "dataset_uuid": IDS[0]})
    ws = domain.create_workspace(alice, **request)
    assert lookup.calls == [(IDS, TOKEN)]
    assert os.readlink(os.path.join(domain.settings.root_dir, ws.file_path, "again")) == str(
        store / "fixed" / IDS[0]
    )


def test_the_token_is_needed_checked_and_kept_nowhere(domain, store, tmp_path):
    lookup = CountingLookup(
        {
            IDS[0]: {"path": str(store / "fixed" / IDS[0])},
            IDS[1]: {"error": "You do not have access to this dataset"},
        }
    )
    domain.workspaces.datasets = lookup
    alice = domain.user("alice")
    for missing in [None, ""]:
        with pytest.raises(BadRequest) as e:
            domain.create_workspace(alice, **body(IDS[0], token=missing))
        assert e.value.message == NO_TOKEN
    with pytest.raises(BadRequest) as e:
        domain.create_workspace(alice, **body(IDS[0], token="two words"))
    assert "globus_groups_token must be a token" in e.value.message
    assert lookup.calls == []  # refused before asking
    with pytest.raises(BadRequest) as e:
        domain.create_workspace(alice, **body(IDS[0], IDS[1], UNKNOWN, token=TOKEN))
    assert e.value.message == (
        "Errors encountered when attempting to gather UUID information: "
        + str(
            [
                {"uuid": IDS[1], "error": "You do not have access to this dataset"},
                {"uuid": UNKNOWN, "error": "The lookup gave no answer for it."},
            ]
        )
    )
    assert workspace_count(domain) == 0
    ws = domain.create_workspace(alice, **body(IDS[0], token=TOKEN, where="details"))
    assert domain.fresh(Workspace, ws.id).status == "idle"
    domain.engine.dispose()
    for name in os.listdir(tmp_path):
        if name.startswith("uws.sqlite"):
            assert TOKEN.encode() not in (tmp_path / name).read_bytes(), name


# ---- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"dataset_resolver": "hubmap"}, "must be '' (off), 'template' or 'http'"),
        ({"dataset_resolver": "http", "symlink_roots": []}, "c.UWS.symlink_roots is empty"),
        (
            {"dataset_resolver": "http", "dataset_lookup_url": "ingest/datasets"},
            "lookup service's URL",
        ),
        (
            {
                "dataset_resolver": "http",
                "dataset_lookup_url": "https://x.org/",
                "dataset_lookup_timeout": 0,
            },
            "dataset_lookup_timeout",
        ),
        ({"dataset_resolver": "template", "dataset_path_template": "{root}/x"}, "name {uuid} once"),
        ({"dataset_resolver": "template", "dataset_path_template": "/d/{uuid}/{uuid}"}, "once"),
        ({"dataset_resolver": "template", "dataset_path_template": "data/{uuid}"}, "absolute"),
        ({"dataset_resolver": "template", "dataset_path_template": "/srv/{uuid}"}, "not under"),
        ({"dataset_resolver": "template", "dataset_path_template": "/d/{uuid"}, "not a template"),
    ],
)
def test_dataset_settings_that_cannot_work(tmp_path, settings, says):
    s = make_settings(tmp_path, **{"symlink_roots": [str(tmp_path)], **settings})
    with pytest.raises(ConfigError) as e:
        s._validate_datasets()
    assert says in str(e.value)


def test_dataset_settings_that_work(tmp_path):
    for settings in [
        {},
        {"dataset_resolver": "template", "dataset_path_template": f"{tmp_path}/hubmap/{{uuid}}"},
        {"dataset_resolver": "http", "dataset_lookup_url": "https://ingest.example.org/datasets/x"},
    ]:
        s = make_settings(tmp_path, symlink_roots=[str(tmp_path)], **settings)
        s._validate_datasets()
        kind = type(datasets.resolver_for(s)).__name__
        assert (
            kind
            == {"": "NoneType", "template": "TemplateResolver", "http": "HttpResolver"}[
                s.dataset_resolver
            ]
        )
