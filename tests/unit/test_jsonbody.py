"""Request bodies: parsed once, and refused with a 400 that says what is wrong when they are not
JSON, nest deeper than the service walks, or carry text that is not Unicode."""

from __future__ import annotations

import json

import pytest

from uws_hub.errors import BadRequest
from uws_hub.service.jsonbody import MAX_DEPTH, parse


def refused(body: bytes) -> str:
    with pytest.raises(BadRequest) as e:
        parse(body)
    assert e.value.status_code == 400
    return e.value.message


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "body, value",
    [
        (b'{"name": "ws", "tags": ["a", {"b": null}]}', {"name": "ws", "tags": ["a", {"b": None}]}),
        ('{"name": "Ünïcødé 日本"}'.encode(), {"name": "Ünïcødé 日本"}),
        (b'"just a string"', "just a string"),  # any JSON value: the handler checks the shape
        (b"[]", []),
    ],
)
def test_bodies(body, value):
    assert parse(body) == value


@pytest.mark.parametrize("body", [b"{", b"{'name': 'ws'}", b"name=ws", b'{"a": 1,}', b"\xff\xfe{"])
def test_not_json(body):
    assert refused(body).startswith("Invalid JSON: ")


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_no_body_is_invalid_json_as_in_uws(body):
    # UWS read every body with json.loads: an empty one is its "Invalid JSON: ..." too
    assert refused(body) == "Invalid JSON: Expecting value: line 1 column 1 (char 0)"


def test_nesting_limit():
    assert MAX_DEPTH == 32
    assert parse(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    message = "Invalid JSON: nested more than 32 levels deep."
    assert refused(nested(MAX_DEPTH + 1)) == message
    assert refused(b'{"a": ' * 40 + b"1" + b"}" * 40) == message
    # deep enough to exhaust the parser's recursion: the same answer, not a 500
    assert refused(nested(100_000)) == message


@pytest.mark.parametrize(
    "body, where",
    [
        (b'"\\ud800"', "text"),
        (b'{"name": "\\udfff"}', "text in name"),
        (b'{"\\ud800": 1}', "text"),
        (
            b'{"workspace_details": {"files": [{"name": "ok"}, {"name": "a\\ud83d"}]}}',
            "text in workspace_details.files[1].name",
        ),
    ],
)
def test_lone_surrogates(body, where):
    message = refused(body)
    assert message.startswith(f"Invalid JSON: {where} is not valid Unicode (a lone surrogate \\u")
    assert message.endswith("); send UTF-8 text.")


def test_surrogate_pairs_are_text():
    assert parse(b'{"emoji": "\\ud83d\\ude00"}') == {"emoji": "😀"}
