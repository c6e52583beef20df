"""The key check the configuration parsers share (uws_hub.jobs.configcheck), and the whole
one-line messages it gives each parser: the entry, the unknown keys and every allowed one.
(test_job_types.py and test_params.py check the other messages, mostly by their ends.)"""

from __future__ import annotations

import pytest

from uws_hub.errors import ConfigError
from uws_hub.jobs.configcheck import check_keys, nonempty_string
from uws_hub.jobs.launch import slurm_placement
from uws_hub.jobs.params import parse_parameters
from uws_hub.jobs.types import JOB_TYPE_KEYS, RESOURCE_KEYS, parse_job_types, parse_resources


def message(parse, *args) -> str:
    with pytest.raises(ConfigError) as e:
        parse(*args)
    return str(e.value)


def test_check_keys_returns_a_good_entry():
    spec = {"a": 1}
    assert check_keys(spec, {"a", "b"}, "c.X[0]", "must be a dict") is spec
    assert check_keys({}, (), "c.X[0]", "must be a dict") == {}


def test_check_keys_messages():
    assert message(check_keys, ["a"], {"a"}, "c.X[0]", "must be a dict, got list") == (
        "c.X[0] must be a dict, got list"
    )
    # unknown and allowed keys sorted, whatever order they came in
    assert message(check_keys, {"z": 1, "b": 2, "a": 3}, ("b", "a"), "c.X['y']", "-") == (
        "c.X['y'] has unknown key(s) ['z']; allowed: ['a', 'b']"
    )


def test_nonempty_string():
    assert nonempty_string("Lab", "c.X['y']", "'name'") == "Lab"
    for bad in ("", "  ", None, 5):
        assert message(nonempty_string, bad, "c.X['y']", "'name'") == (
            "c.X['y']: 'name' must be a non-empty string"
        )


def test_unknown_keys_in_each_parser():
    assert message(parse_resources, {"hpc": {"kind": "slurm", "queue": "x", "cpus": 2}}) == (
        f"c.UWS.resources['hpc'] has unknown key(s) ['cpus', 'queue']; "
        f"allowed: {sorted(RESOURCE_KEYS)}"
    )
    assert message(parse_job_types, {"lab": {"name": "Lab", "image": "x"}}) == (
        f"c.UWS.job_types['lab'] has unknown key(s) ['image']; allowed: {sorted(JOB_TYPE_KEYS)}"
    )
    assert message(parse_parameters, [{"variable_name": "n", "type": "int"}]) == (
        "c.UWS.parameters[0] has unknown key(s) ['type']; allowed: "
        "['default_value', 'description', 'display_name', 'validation', 'variable_name']"
    )
    assert message(parse_parameters, [{"variable_name": "n", "validation": {"step": 1}}]) == (
        "c.UWS.parameters[0]: 'validation' has unknown key(s) ['step']; "
        "allowed: ['max', 'min', 'required', 'type']"
    )


def test_entries_that_are_not_dicts_in_each_parser():
    assert message(parse_resources, {"ok": {"kind": "local"}, "hpc": None}) == (
        "c.UWS.resources['hpc'] must be a dict with at least 'kind' (local or slurm)"
    )
    assert message(parse_job_types, {"lab": ["JupyterLab"]}, None, "c.Site.kinds") == (
        "c.Site.kinds['lab'] must be a dict with at least a 'name'"
    )
    assert message(parse_parameters, [{"variable_name": "n"}, None]) == (
        "c.UWS.parameters[1] must be a dict, got NoneType"
    )
    assert message(parse_parameters, [{"variable_name": "n", "validation": "int"}]) == (
        "c.UWS.parameters[0]: 'validation' must be a dict"
    )


def test_a_bad_id_is_reported_before_the_entry_itself():
    assert message(parse_resources, {"GPU": "not even a dict"}) == (
        "c.UWS.resources: resource id 'GPU' must be lower-case letters, digits, '_' and '-'"
    )
    assert message(parse_job_types, {1: {"name": "Lab"}}) == (
        "c.UWS.job_types: job type id 1 must be lower-case letters, digits and '_' "
        "(like 'jupyter_lab')"
    )
    # resource ids may have '-', job type ids may not
    assert list(parse_resources({"gpu-nodes": {"kind": "slurm"}})) == ["gpu-nodes"]
    assert "job type id 'gpu-lab'" in message(parse_job_types, {"gpu-lab": {"name": "L"}})


def test_the_first_bad_entry_is_the_one_named():
    specs = {"a": {"kind": "local"}, "b": {"kind": "slurm", "x": 1}, "c": {"kind": "nope"}}
    assert message(parse_resources, specs).startswith("c.UWS.resources['b'] has unknown key(s)")


def test_slurm_placement(resources):
    cluster, local = resources["cluster"], resources["local"]
    assert slurm_placement(cluster, 0) == ("debug", None)
    assert slurm_placement(cluster, 2) == ("gpu", "gpu:a100:2")
    (plain,) = parse_resources({"hpc": {"kind": "slurm", "partition": "p", "max_gpus": 1}}).values()
    assert slurm_placement(plain, 1) == ("p", "gpu:1")  # no GPU partition: the partition
    assert slurm_placement(local, 0) == (None, None)
