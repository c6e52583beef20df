"""Configuration: validation rules, and a hub that will not start on a setting that cannot work,
saying in one line what to fix."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from traitlets.config import Config

from hubtest import BIN, world_dir
from uws_hub.config import UWS
from uws_hub.errors import BadRequest, ConfigError, ValidationFailed
from uws_hub.jobs.params import parse_parameters, validate_options


@pytest.fixture
def tmp_path():
    """A directory every account can traverse (pytest's own tmp_path is private)."""
    d = world_dir("uws-config-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def settings(tmp_path, **kw) -> UWS:
    c = Config()
    c.UWS.root_dir = str(tmp_path)
    c.UWS.db_url = f"sqlite:///{tmp_path}/uws.sqlite"
    for k, v in kw.items():
        setattr(c.UWS, k, v)
    return UWS(config=c)


def test_defaults_are_valid(tmp_path):
    s = settings(tmp_path, single_account=False)
    assert s.validate() == []
    assert list(s.job_type_map) == ["jupyter_lab"]
    assert [p.variable_name for p in s.parameter_list] == [
        "num_cpus",
        "memory_mb",
        "time_limit_min",
        "gpus",
    ]


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"root_dir": ""}, "c.UWS.root_dir is not set"),
        ({"root_dir": "relative/dir"}, "must be an absolute path"),
        (
            {"root_dir": "/nonexistent/uws"},
            "is not an existing directory: create it (mkdir -p /nonexistent/uws)",
        ),
        ({"db_url": "not a url"}, "is not a SQLAlchemy URL"),
        (
            {"db_url": "sqlite:////nonexistent/dir/uws.sqlite"},
            "directory /nonexistent/dir does not exist",
        ),
        ({"job_types": {}}, "must be a non-empty dict"),
        ({"job_types": {"Bad-Id": {"name": "x"}}}, "must be lower-case letters"),
        ({"job_types": {"lab": {}}}, "'name' (the display name) must be a non-empty string"),
        ({"job_types": {"lab": {"name": "Lab", "colour": "red"}}}, "unknown key(s) ['colour']"),
        (
            {"job_types": {"lab": {"name": "Lab", "command": "jupyter lab"}}},
            "'command' must be a non-empty list",
        ),
        (
            {"default_job_type": "nope"},
            "c.UWS.default_job_type = 'nope' is not a configured job type",
        ),
        ({"parameters": [{"display_name": "x"}]}, "'variable_name' must be an identifier"),
        (
            {"parameters": [{"variable_name": "n", "validation": {"type": "integer"}}]},
            "'validation.type' must be one of int, float, str, bool",
        ),
        (
            {"parameters": [{"variable_name": "n", "validation": {"min": 5, "max": 1}}]},
            "is greater than 'validation.max'",
        ),
        (
            {
                "parameters": [
                    {
                        "variable_name": "n",
                        "default_value": 0,
                        "validation": {"type": "int", "min": 1},
                    }
                ]
            },
            "'default_value' is invalid",
        ),
        ({"parameters": [{"variable_name": "n"}, {"variable_name": "n"}]}, "appears twice"),
        ({"parameters": [{"variable_name": "n", "validaton": {}}]}, "unknown key(s) ['validaton']"),
        ({"symlink_roots": ["/"]}, "would allow links to anything"),
        ({"symlink_roots": ["data"]}, "must be an absolute path"),
        ({"symlink_roots": ["/nonexistent/data"]}, "is not an existing directory"),
        ({"service_url": "localhost"}, "must look like http://127.0.0.1:10101"),
        ({"cors_allowed_origins": ["*"]}, "no wildcard"),
        ({"cors_allowed_origins": ["https://portal.org/path"]}, "must be an origin"),
        ({"user_dir_mode": 0o600}, "must be a mode like 0o700"),
        ({"fs_workers": 0}, "c.UWS.fs_workers must be positive"),
        ({"core_hours_period": "week"}, "must be one of all, month, quarter, year"),
        ({"core_hours_year_start": 13}, "must be a month, 1–12"),
        ({"audit_retention_days": -1}, "must be 0 (keep every event) or a number of days"),
    ],
)
def test_invalid_settings(tmp_path, kw, message):
    with pytest.raises(ConfigError) as e:
        settings(tmp_path, **kw).validate()
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_root_dir_not_traversable_is_a_warning(tmp_path):
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    (hidden / "ws").mkdir()
    s = settings(tmp_path, single_account=False)
    s.root_dir = str(hidden / "ws")
    warnings = s.validate()
    assert len(warnings) == 1 and "not traversable by other users" in warnings[0]


def test_parameter_validation_messages():
    params = parse_parameters(
        [
            {
                "variable_name": "num_cpus",
                "default_value": 1,
                "validation": {"type": "int", "min": 1, "max": 8},
            },
            {"variable_name": "partition", "validation": {"type": "str", "required": True}},
            {
                "variable_name": "ratio",
                "default_value": 0.5,
                "validation": {"type": "float", "min": 0, "max": 1},
            },
        ]
    )
    assert validate_options(params, {"partition": "debug", "unknown": 1}) == {
        "num_cpus": 1,
        "partition": "debug",
        "ratio": 0.5,
    }
    assert validate_options(params, {"partition": "x", "ratio": 1}) == {
        "num_cpus": 1,
        "partition": "x",
        "ratio": 1,
    }
    cases = [
        ({"num_cpus": 0, "partition": "p"}, "num_cpus: Value '0' not above minimum of 1."),
        ({"num_cpus": 9, "partition": "p"}, "num_cpus: Value '9' above maximum of 8."),
        ({"num_cpus": "4", "partition": "p"}, "does not match required type int"),
        ({"num_cpus": True, "partition": "p"}, "does not match required type int"),
        ({"num_cpus": 2}, "['Missing required: partition']"),
    ]
    for options, message in cases:
        with pytest.raises(ValidationFailed) as e:
            validate_options(params, options)
        assert e.value.status_code == 422
        assert e.value.message.startswith("Invalid resource options found:")
        assert message in e.value.message
    with pytest.raises(BadRequest) as e:
        validate_options(params, "not a dict")
    assert e.value.message == "Resource options not JSON."


BAD_HUB_CONFIGS = [
    (
        "c.UWS.root_dir = '/nonexistent/uws-root'",
        "c.UWS.root_dir = '/nonexistent/uws-root' is not an existing directory",
    ),
    (
        "c.UWS.default_job_type = 'matlab'",
        "c.UWS.default_job_type = 'matlab' is not a configured job type",
    ),
    (
        "c.UWS.parameters = [{'variable_name': 'cpus', 'validation': {'type': 'number'}}]",
        "c.UWS.parameters[0]: 'validation.type' must be one of",
    ),
    (
        "c.UWS.job_types = {'lab': {'nme': 'Lab'}}",
        "c.UWS.job_types['lab'] has unknown key(s) ['nme']",
    ),
]


@pytest.mark.parametrize(
    "extra,line", BAD_HUB_CONFIGS, ids=[b[0].split("=")[0].strip() for b in BAD_HUB_CONFIGS]
)
def test_hub_refuses_to_start(extra, line, hub_factory):
    hub = hub_factory("badcfg", extra_config=extra, start=False)
    code, output = hub.run_to_exit()
    hub_factory.release(hub)
    assert code != 0
    errors = [ln for ln in output.splitlines() if ln.startswith("uws_hub: configuration error:")]
    assert len(errors) == 1, output[-3000:]
    assert line in errors[0]
    assert "Traceback" not in output


def test_check_config_commands(hub):
    cfg = str(hub.config)
    env = hub.env
    ok = subprocess.run(
        [str(BIN / "uws-hub"), "check-config", "-f", cfg], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "configuration OK" in ok.stdout
    bad_env = {**env, "UWS_TEST_EXTRA_CONFIG": "c.UWS.root_dir = 'relative'"}
    bad = subprocess.run(
        [str(BIN / "uws-hub"), "check-config", "-f", cfg],
        env=bad_env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert (
        bad.stderr.strip()
        == "uws_hub: configuration error: c.UWS.root_dir = 'relative' must be an absolute path"
    )
    svc = subprocess.run(
        [sys.executable, "-m", "uws_hub.service", "--config", cfg, "--check-config"],
        env=bad_env,
        capture_output=True,
        text=True,
    )
    assert svc.returncode == 2 and "must be an absolute path" in svc.stderr
    helptext = subprocess.run(
        [str(BIN / "uws-hub"), "config-help"], capture_output=True, text=True
    ).stdout
    for trait in ("--UWS.root_dir", "--UWS.symlink_roots", "--UWS.db_url", "--UWS.parameters"):
        assert trait in helptext


def test_configuration_reference_is_current():
    """docs/configuration-reference.md is generated from the settings' help texts."""
    from hubtest import REPO
    from uws_hub.cli import config_reference

    assert (REPO / "docs" / "configuration-reference.md").read_text() == config_reference(), (
        "run: uws-hub config-help --markdown > docs/configuration-reference.md"
    )
