"""c.UWS.parameters (the UWS resource parameters) and the resource_options a launch sends: the
configuration errors name the entry, a client's mistakes are a 422 in UWS's words."""

from __future__ import annotations

import pytest

from uws_hub.errors import BadRequest, ConfigError, ValidationFailed
from uws_hub.jobs.params import parse_parameters, validate_options


def test_parameters_in_the_uws_shape(params):
    assert [p.variable_name for p in params] == [
        "num_cpus",
        "memory_mb",
        "time_limit_min",
        "gpus",
        "conda_env",
    ]
    # what GET /parameters shows: missing validation keys are explicit
    assert params[-1].as_dict() == {
        "display_name": "Conda environment",
        "description": "",
        "variable_name": "conda_env",
        "default_value": "base",
        "validation": {"type": "str", "min": None, "max": None, "required": False},
    }


def test_minimal_parameter():
    (p,) = parse_parameters([{"variable_name": "nodes"}])
    assert (p.display_name, p.description, p.default_value, p.type, p.required) == (
        "nodes",  # the variable name, when no display name is given
        "",
        None,
        None,
        False,
    )
    assert parse_parameters([]) == []


@pytest.mark.parametrize(
    "specs, message",
    [
        ({"num_cpus": {}}, "c.UWS.parameters must be a list of parameter dicts, got dict"),
        (["num_cpus"], "c.UWS.parameters[0] must be a dict, got str"),
        (
            [{"variable_name": "n", "default": 1}],
            "c.UWS.parameters[0] has unknown key(s) ['default']; allowed: [",
        ),
        (
            [{"display_name": "CPUs"}],
            "c.UWS.parameters[0]: 'variable_name' must be an identifier like 'num_cpus', got None",
        ),
        (
            [{"variable_name": "num-cpus"}],
            "'variable_name' must be an identifier like 'num_cpus', got 'num-cpus'",
        ),
        (
            [{"variable_name": "n"}, {"variable_name": "n"}],
            "c.UWS.parameters[1]: variable_name 'n' appears twice",
        ),
        (
            [{"variable_name": "n", "display_name": 5}],
            "c.UWS.parameters[0]: 'display_name' must be a string",
        ),
        ([{"variable_name": "n", "description": None}], "'description' must be a string"),
        (
            [{"variable_name": "n", "validation": ["int"]}],
            "c.UWS.parameters[0]: 'validation' must be a dict",
        ),
        (
            [{"variable_name": "n", "validation": {"maximum": 4}}],
            "'validation' has unknown key(s) ['maximum']",
        ),
        (
            [{"variable_name": "n", "validation": {"type": "integer"}}],
            "'validation.type' must be one of int, float, str, bool (got 'integer')",
        ),
        (
            [{"variable_name": "n", "validation": {"min": "1"}}],
            "'validation.min' must be a number, got '1'",
        ),
        (
            [{"variable_name": "n", "validation": {"max": True}}],
            "'validation.max' must be a number, got True",
        ),
        (
            [{"variable_name": "n", "validation": {"min": 5, "max": 1}}],
            "'validation.min' (5) is greater than 'validation.max' (1)",
        ),
        (
            [{"variable_name": "n", "validation": {"required": "yes"}}],
            "'validation.required' must be true or false",
        ),
        (
            [{"variable_name": "n", "default_value": 0, "validation": {"type": "int", "min": 1}}],
            "c.UWS.parameters[0]: 'default_value' is invalid: n: Value '0' not above minimum of 1.",
        ),
        (
            [{"variable_name": "n", "default_value": "1", "validation": {"type": "int"}}],
            "'default_value' is invalid: n: Value '1' of type str does not match required type int.",
        ),
    ],
)
def test_parameter_errors(specs, message):
    with pytest.raises(ConfigError) as e:
        parse_parameters(specs)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


# ---- what a launch sends ------------------------------------------------------------------


def test_defaults_fill_in_and_unknown_options_are_ignored(params):
    defaults = {
        "num_cpus": 1,
        "memory_mb": 2048,
        "time_limit_min": 240,
        "gpus": 0,
        "conda_env": "base",
    }
    assert validate_options(params, None) == defaults
    assert validate_options(params, {}) == defaults
    assert validate_options(params, {"num_cpus": 4, "colour": "red"}) == {**defaults, "num_cpus": 4}


def test_bounds_are_inclusive(params):
    assert validate_options(params, {"num_cpus": 16, "memory_mb": 256})["num_cpus"] == 16


def test_types():
    params = parse_parameters(
        [
            {"variable_name": "ratio", "validation": {"type": "float", "min": 0, "max": 1}},
            {"variable_name": "debug", "validation": {"type": "bool"}},
            {"variable_name": "anything"},
        ]
    )
    # an int is a float; a bool is only a bool; untyped takes what comes
    assert validate_options(params, {"ratio": 1, "debug": False, "anything": [1]}) == {
        "ratio": 1,
        "debug": False,
        "anything": [1],
    }
    with pytest.raises(ValidationFailed) as e:
        validate_options(params, {"ratio": True, "debug": 0})
    # UWS's words (UWS-REFERENCE §1.6, ParamValidator)
    assert e.value.message == (
        "Invalid resource options found: ["
        "\"ratio: Value 'True' of type bool does not match required type float. Skipping further "
        'validation of parameter ratio.", '
        "\"debug: Value '0' of type int does not match required type bool. Skipping further "
        'validation of parameter debug."]'
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_cpus": 0}, "[\"num_cpus: Value '0' not above minimum of 1.\"]"),
        ({"num_cpus": 17}, "[\"num_cpus: Value '17' above maximum of 16.\"]"),
        (
            {"num_cpus": "4"},
            "num_cpus: Value '4' of type str does not match required type int. Skipping further "
            "validation of parameter num_cpus.",
        ),
        (
            {"num_cpus": True},
            "num_cpus: Value 'True' of type bool does not match required type int",
        ),
        ({"num_cpus": 2.0}, "does not match required type int"),
        ({"conda_env": 3}, "conda_env: Value '3' of type int does not match required type str."),
    ],
)
def test_refused_options(params, options, message):
    with pytest.raises(ValidationFailed) as e:
        validate_options(params, options)
    assert e.value.status_code == 422
    assert e.value.message.startswith("Invalid resource options found: [")
    assert message in e.value.message


@pytest.mark.parametrize("options", ["num_cpus=4", [4], 4])
def test_options_that_are_not_an_object_are_400(params, options):
    with pytest.raises(BadRequest) as e:
        validate_options(params, options)
    assert (e.value.status_code, e.value.message) == (400, "Resource options not JSON.")


def test_every_problem_is_reported_at_once(params):
    with pytest.raises(ValidationFailed) as e:
        validate_options(params, {"num_cpus": 0, "memory_mb": 10**9})
    assert e.value.message == (
        "Invalid resource options found: [\"num_cpus: Value '0' not above minimum of 1.\", "
        "\"memory_mb: Value '1000000000' above maximum of 262144.\"]"
    )


def test_required_parameters():
    params = parse_parameters(
        [
            {"variable_name": "project", "validation": {"type": "str", "required": True}},
            {"variable_name": "queue", "validation": {"required": True}},
        ]
    )
    assert validate_options(params, {"project": "p1", "queue": "q"}) == {
        "project": "p1",
        "queue": "q",
    }
    with pytest.raises(ValidationFailed) as e:
        validate_options(params, {})
    assert (
        e.value.message
        == "Invalid resource options found: ['Missing required: project', 'Missing required: queue']"
    )
