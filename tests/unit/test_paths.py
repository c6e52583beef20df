"""The name checks every client-supplied path goes through."""

import os

import pytest

from uws_hub.errors import BadRequest
from uws_hub.workspaces.paths import check_distinct_targets, check_symlink_source, split_relpath


@pytest.mark.parametrize(
    "name,parts",
    [
        ("a.txt", ("a.txt",)),
        ("dir/sub/file.csv", ("dir", "sub", "file.csv")),
        (".hidden", (".hidden",)),
        ("..dots..", ("..dots..",)),
        ("name with spaces", ("name with spaces",)),
        ("ünïcødé/日本.txt", ("ünïcødé", "日本.txt")),
        ("back\\slash", ("back\\slash",)),
        ("x" * 255, ("x" * 255,)),
    ],
)
def test_accepted_names(name, parts):
    assert split_relpath(name) == parts


@pytest.mark.parametrize(
    "name,reason",
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("./a", "'.'"),
        ("a/.", "'.'"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("a\x7fb", "control"),
        ("x" * 256, "longer than 255"),
        ("é" * 128, "longer than 255"),  # 256 bytes in UTF-8
        ("a/" * 64 + "b", "deeper"),
        (("d" * 200 + "/") * 21 + "f", "4096"),
        ("\udcff", "UTF-8"),
        (None, "string"),
        (5, "string"),
        (["a"], "string"),
    ],
)
def test_refused_names(name, reason):
    with pytest.raises(BadRequest) as e:
        split_relpath(name)
    assert reason in e.value.message
    assert e.value.status_code == 400


def test_distinct_targets():
    check_distinct_targets([("a",), ("b", "c"), ("b", "d")])
    with pytest.raises(BadRequest, match="named twice"):
        check_distinct_targets([("a",), ("a",)])
    with pytest.raises(BadRequest, match="inside"):
        check_distinct_targets([("a",), ("a", "b")])


@pytest.fixture
def roots(tmp_path):
    allowed = tmp_path / "data"
    (allowed / "set1").mkdir(parents=True)
    (allowed / "set1" / "f.txt").write_text("x")
    (tmp_path / "data-evil").mkdir()
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", allowed / "escape")
    os.symlink(allowed / "set1", allowed / "current")
    return tmp_path, str(allowed)


def test_symlink_source_allowed(roots):
    tmp, allowed = roots
    assert check_symlink_source(f"{allowed}/set1", [allowed]) == f"{allowed}/set1"
    assert check_symlink_source(f"{allowed}/set1/f.txt", [allowed]) == f"{allowed}/set1/f.txt"
    assert check_symlink_source(allowed, [allowed]) == allowed
    # a link inside the allowed root that stays inside resolves to its target
    assert check_symlink_source(f"{allowed}/current", [allowed]) == f"{allowed}/set1"


@pytest.mark.parametrize(
    "source,reason",
    [
        ("/etc/passwd", "outside"),
        ("/", "outside"),
        ("{tmp}/data-evil", "outside"),  # prefix of the root's name is not inside it
        ("{allowed}/../secret", "outside"),
        ("{allowed}/escape", "outside"),  # a link in the root pointing out
        ("{allowed}/escape/x", "outside"),
        ("{allowed}/missing", "Symlink path not found: {allowed}/missing"),  # UWS's text
        ("relative/path", "absolute"),
        ("", "Symlink path not found: "),
        ("{allowed}/a\x00b", "NUL"),
    ],
)
def test_symlink_source_refused(roots, source, reason):
    tmp, allowed = roots
    with pytest.raises(BadRequest) as e:
        check_symlink_source(source.format(tmp=tmp, allowed=allowed), [allowed])
    assert reason.format(allowed=allowed) in e.value.message


def test_symlinks_disabled_without_roots(roots):
    _, allowed = roots
    with pytest.raises(BadRequest, match="not enabled"):
        check_symlink_source(f"{allowed}/set1", [])
