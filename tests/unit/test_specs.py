"""Request bodies checked at the edge (`WorkspaceSpec`, `StartSpec`, `ShareSpec`): what a
handler passes to the managers, and the 400s a client reads for a bad body. The same requests
through the real service: tests/e2e/test_workspaces_api.py (create/update bad input),
tests/e2e/test_jobs.py (refused starts), tests/e2e/test_shares.py (refusals)."""

from __future__ import annotations

import base64

import pytest

from uws_hub.errors import BadRequest
from uws_hub.jobs.specs import StartSpec
from uws_hub.shares.specs import MAX_RECIPIENTS, ShareSpec
from uws_hub.workspaces.specs import WorkspaceSpec

JOB_TYPES = {"jupyter_lab", "batch"}


def parse_ws(body, *, creating=True, symlink_roots=()):
    return WorkspaceSpec.parse(
        body, creating=creating, job_types=JOB_TYPES, symlink_roots=list(symlink_roots)
    )


def refused(parse, *args, **kwargs) -> str:
    with pytest.raises(BadRequest) as e:
        parse(*args, **kwargs)
    assert e.value.status_code == 400
    return e.value.message


# ---- workspaces ------------------------------------------------------------------------------


def test_a_create_with_files_of_both_encodings():
    spec = parse_ws(
        {
            "name": "analysis",
            "description": "Runs of March",
            "default_job_type": "batch",
            "workspace_details": {
                "files": [
                    {"name": "README.md", "content": "# Hello\n"},
                    {
                        "name": "data/raw.bin",
                        "content": base64.b64encode(b"\x00\xff\x10").decode(),
                        "encoding": "base64",
                    },
                ]
            },
        }
    )
    assert (spec.name, spec.description, spec.default_job_type) == (
        "analysis",
        "Runs of March",
        "batch",
    )
    files = {f.name: f.data for f in spec.details.files}
    assert files == {"README.md": b"# Hello\n", "data/raw.bin": b"\x00\xff\x10"}
    assert spec.details.size() == 11
    # what is kept in the row: names only in the record, contents in the pending work
    assert spec.details.request_record() == {
        "files": [{"name": "README.md"}, {"name": "data/raw.bin"}],
        "symlinks": [],
    }
    pending = spec.details.pending_record()
    assert type(spec.details).from_pending(pending) == spec.details


@pytest.mark.parametrize(
    "body",
    [
        {"description": "no name"},
        {"name": "no description"},
        {"name": None, "description": "null name"},
        {},
    ],
)
def test_a_create_needs_a_name_and_a_description(body):
    assert refused(parse_ws, body) == "Missing required fields."


def test_an_update_may_send_only_what_changes():
    spec = parse_ws({"description": "new words"}, creating=False)
    assert spec.name is None and spec.description == "new words"
    assert not spec.job_type_given and not spec.details
    # a default job type cleared (null or "") is told from one not sent
    cleared = parse_ws({"default_job_type": None}, creating=False)
    assert cleared.job_type_given and cleared.default_job_type is None
    assert parse_ws({"default_job_type": ""}, creating=False).default_job_type is None


def test_renames_only_on_an_update():
    body = {
        "name": "w",
        "description": "d",
        "workspace_details": {"renames": [{"name": "a.txt", "new_name": "b.txt"}]},
    }
    assert refused(parse_ws, body) == "renames are only valid when updating a workspace."
    spec = parse_ws(body, creating=False)
    assert spec.details.renames == [(("a.txt",), ("b.txt",))]


@pytest.mark.parametrize(
    "details, message",
    [
        (
            {"files": [{"name": "x.bin", "content": "not base64!", "encoding": "base64"}]},
            "workspace_details.files[0].content is not valid base64.",
        ),
        (
            {
                "files": [
                    {"name": "x", "content": "a"},
                    {"name": "y", "content": "b", "encoding": "latin-1"},
                ]
            },
            "workspace_details.files[1].encoding must be 'utf-8' or 'base64'.",
        ),
        (
            {"files": [{"name": "x", "content": 42}]},
            "workspace_details.files[0].content must be a string.",
        ),
        (
            {"files": ["x.txt"]},
            "workspace_details.files[0] must be an object with 'name' and 'content'.",
        ),
        ({"files": {"name": "x"}}, "'files' index must contain a list."),
        ({"symlinks": {}}, "'symlinks' index must contain a list."),  # also when empty
        ({"files": [{"name": "../up", "content": ""}]}, "File name cannot contain double dots."),
        ({"files": [{"name": "/abs", "content": ""}]}, "Invalid file path specified"),
        (
            {"symlinks": [{"name": "a/../b", "source_path": "/x"}]},
            "Symlink name cannot contain double dots.",
        ),
        (
            {"symlinks": [{"name": "/l", "source_path": "/x"}]},
            "Invalid symlink destination path specified",
        ),
        (
            {"files": [{"name": "a/b", "content": ""}, {"name": "a/b", "content": ""}]},
            "'a/b' is named twice in this request.",
        ),
        (
            {"symlinks": [{"name": "data", "source_path": "/etc"}]},
            "Symlinks are not enabled on this server: the administrator has not configured "
            "c.UWS.symlink_roots.",
        ),
    ],
)
def test_bad_workspace_details(details, message):
    body = {"name": "w", "description": "d", "workspace_details": details}
    assert refused(parse_ws, body) == message


def test_workspace_details_must_be_an_object():
    body = {"name": "w", "description": "d", "workspace_details": "files"}
    assert refused(parse_ws, body) == "Workspace details not JSON."


@pytest.mark.parametrize(
    "job_type, shown", [("spark", "spark"), (7, "7"), (["batch"], "['batch']")]
)
def test_unknown_default_job_type(job_type, shown):
    body = {"name": "w", "description": "d", "default_job_type": job_type}
    assert refused(parse_ws, body) == f"{shown} is not in the list of available job types."


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "Request body must be a JSON object."),
        ({"name": 5, "description": "d"}, "'name' must be a string."),
        ({"name": "x" * 256, "description": "d"}, "'name' is longer than 255 characters."),
        (
            {"name": "w", "description": "d" * 10001},
            "'description' is longer than 10000 characters.",
        ),
        ({"name": "w\x00", "description": "d"}, "'name' contains a NUL character."),
    ],
)
def test_bad_names_and_descriptions(body, message):
    assert refused(parse_ws, body) == message


def test_symlinks_into_a_configured_root(tmp_path):
    (tmp_path / "datasets" / "genomes").mkdir(parents=True)
    roots = [str(tmp_path / "datasets")]
    spec = parse_ws(
        {
            "name": "w",
            "description": "d",
            "workspace_details": {
                "symlinks": [{"name": "ref", "source_path": str(tmp_path / "datasets/genomes")}]
            },
        },
        symlink_roots=roots,
    )
    assert [(s.name, s.source) for s in spec.details.symlinks] == [
        ("ref", str(tmp_path / "datasets" / "genomes"))
    ]


# ---- job starts -------------------------------------------------------------------------------


def test_an_empty_start_takes_every_default():
    assert StartSpec.parse({}) == StartSpec(None, None, None, {})
    # empty strings and a null job_details are "not given"
    assert StartSpec.parse({"job_type": "", "resource": "", "job_details": None}) == StartSpec()


def test_a_start_as_sent():
    spec = StartSpec.parse(
        {
            "job_type": "batch",
            "resource": "cluster",
            "resource_options": {"num_cpus": 4},
            "job_details": {"notebook": "run.ipynb"},
        }
    )
    assert spec == StartSpec("batch", "cluster", {"num_cpus": 4}, {"notebook": "run.ipynb"})


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "Request body must be a JSON object."),
        ([{"job_type": "batch"}], "Request body must be a JSON object."),
        ("start", "Request body must be a JSON object."),
        ({"job_details": "notebook"}, "Job details not JSON."),
        ({"job_details": [1, 2]}, "Job details not JSON."),
        ({"job_type": 3}, "3 is not in the list of available job types."),
        (
            {"resource": ["local"]},
            "Resource ['local'] is not a resource id; send one as a string.",
        ),
    ],
)
def test_bad_starts(body, message):
    assert refused(StartSpec.parse, body) == message


# ---- shares -----------------------------------------------------------------------------------


def test_a_share_as_sent():
    spec = ShareSpec.parse({"original_workspace_id": "12", "shared_user_ids": [3, "4"]})
    assert spec == ShareSpec(12, (3, 4))


def test_repeated_recipients_are_invited_once_in_order():
    spec = ShareSpec.parse({"original_workspace_id": 1, "shared_user_ids": [5, 3, "5", 3, 9]})
    assert spec.recipient_ids == (5, 3, 9)


@pytest.mark.parametrize(
    "body",
    [{}, {"original_workspace_id": 1}, {"shared_user_ids": [2]}],
)
def test_a_share_needs_both_fields(body):
    assert refused(ShareSpec.parse, body) == "Missing required fields."


def test_at_most_a_hundred_recipients():
    ids = list(range(1, MAX_RECIPIENTS + 1))
    assert (
        len(ShareSpec.parse({"original_workspace_id": 1, "shared_user_ids": ids}).recipient_ids)
        == 100
    )
    message = refused(
        ShareSpec.parse, {"original_workspace_id": 1, "shared_user_ids": [*ids, MAX_RECIPIENTS + 1]}
    )
    assert message == "Share with at most 100 people at once."


@pytest.mark.parametrize(
    "body, message",
    [
        ("share", "Request body must be a JSON object."),
        (
            {"original_workspace_id": 1, "shared_user_ids": []},
            "shared_user_ids is empty: name at least one person.",
        ),
        (
            {"original_workspace_id": 1, "shared_user_ids": 2},
            "shared_user_ids is not a list.",
        ),
        (
            {"original_workspace_id": 1, "shared_user_ids": [2, "bob"]},
            "Invalid user id provided.",
        ),
        (
            {"original_workspace_id": 1, "shared_user_ids": [2.5]},
            "Invalid user id provided.",
        ),
        (
            {"original_workspace_id": 1, "shared_user_ids": [True]},
            "Invalid user id provided.",
        ),
        (
            {"original_workspace_id": "first", "shared_user_ids": [2]},
            "original_workspace_id must hold numeric ids, not 'first'.",
        ),
    ],
)
def test_bad_shares(body, message):
    assert refused(ShareSpec.parse, body) == message
