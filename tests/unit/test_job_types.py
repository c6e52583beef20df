"""c.UWS.resources and c.UWS.job_types: what a site writes, what the API then offers, and the
one-line message naming the setting when an entry cannot work (the hub refuses to start)."""

from __future__ import annotations

import pytest

from uws_hub.errors import ConfigError
from uws_hub.jobs.types import parse_job_types, parse_resources


def config_error(parse, *args) -> str:
    with pytest.raises(ConfigError) as e:
        parse(*args)
    message = str(e.value)
    assert "\n" not in message  # one line, as the hub prints it
    return message


# ---- resources ------------------------------------------------------------------------------


def test_resources_as_configured(resources):
    assert list(resources) == ["local", "cluster"]
    cluster = resources["cluster"]
    assert (cluster.kind, cluster.partition, cluster.account, cluster.qos) == (
        "slurm",
        "debug",
        "proj-42",
        "normal",
    )
    assert cluster.extra_directives == ("--exclusive", "--constraint=ib")
    # what GET /resources shows
    assert resources["local"].as_dict() == {
        "id": "local",
        "kind": "local",
        "name": "This server",
        "description": "",
        "limits": {"max_cpus": 4, "max_memory_mb": 8192, "max_time_limit_min": None, "max_gpus": 0},
        "parameter_mapping": None,  # every parameter as itself
    }


def test_resource_defaults():
    (res,) = parse_resources({"batch": {"kind": "slurm"}}).values()
    assert res.name == "batch"  # the id, when no display name is given
    assert (res.max_cpus, res.max_memory_mb, res.max_time_limit_min, res.max_gpus) == (
        None,
        None,
        None,
        0,
    )
    assert res.gpu_gres == "gpu" and res.enforce_memory is False and res.extra_directives == ()


@pytest.mark.parametrize(
    "specs, message",
    [
        ({}, "c.UWS.resources must be a non-empty dict of resource id -> settings"),
        (["local"], "c.UWS.resources must be a non-empty dict of resource id -> settings"),
        (
            {"Big Cluster": {"kind": "slurm"}},
            "c.UWS.resources: resource id 'Big Cluster' must be lower-case letters, digits, '_' and '-'",
        ),
        (
            {"hpc": "slurm"},
            "c.UWS.resources['hpc'] must be a dict with at least 'kind' (local or slurm)",
        ),
        (
            {"hpc": {"kind": "slurm", "partiton": "debug"}},
            "c.UWS.resources['hpc'] has unknown key(s) ['partiton']; allowed: [",
        ),
        (
            {"hpc": {"name": "HPC"}},
            "c.UWS.resources['hpc']: 'kind' must be 'local' or 'slurm', got None",
        ),
        (
            {"hpc": {"kind": "kubernetes"}},
            "'kind' must be 'local' or 'slurm', got 'kubernetes'",
        ),
        (
            {"hpc": {"kind": "slurm", "partition": "debug; rm -rf /"}},
            "c.UWS.resources['hpc']: 'partition' must be a Slurm name (letters, digits, _ . : -), "
            "got 'debug; rm -rf /'",
        ),
        (
            {"hpc": {"kind": "slurm", "account": 42}},
            "'account' must be a Slurm name (letters, digits, _ . : -), got 42",
        ),
        (
            {"here": {"kind": "local", "partition": "debug"}},
            "c.UWS.resources['here']: 'partition' is a Slurm setting; this resource is local",
        ),
        (
            {"hpc": {"kind": "slurm", "extra_directives": "--exclusive"}},
            "c.UWS.resources['hpc']: 'extra_directives' must be a list of strings",
        ),
        (
            {"hpc": {"kind": "slurm", "extra_directives": ["--comment=$(id)"]}},
            "extra directive '--comment=$(id)' must look like --name=value (no spaces or shell characters)",
        ),
        (
            {"hpc": {"kind": "slurm", "extra_directives": ["-N 2"]}},
            "extra directive '-N 2' must look like --name=value",
        ),
        (
            {"here": {"kind": "local", "max_gpus": 1}},
            "c.UWS.resources['here']: local resources cannot offer GPUs (max_gpus must be 0)",
        ),
        (
            {"hpc": {"kind": "slurm", "max_gpus": -1}},
            "'max_gpus' must be a non-negative integer, got -1",
        ),
        ({"hpc": {"kind": "slurm", "max_cpus": 0}}, "'max_cpus' must be a positive integer, got 0"),
        (
            {"hpc": {"kind": "slurm", "max_cpus": 2.5}},
            "'max_cpus' must be a positive integer, got 2.5",
        ),
        (
            {"hpc": {"kind": "slurm", "max_cpus": True}},
            "'max_cpus' must be a positive integer, got True",
        ),
        (
            {"hpc": {"kind": "slurm", "max_memory_mb": "8G"}},
            "'max_memory_mb' must be a positive integer, got '8G'",
        ),
        (
            {"hpc": {"kind": "slurm", "start_timeout": -5}},
            "'start_timeout' must be a positive integer, got -5",
        ),
        (
            {"hpc": {"kind": "slurm", "name": "  "}},
            "c.UWS.resources['hpc']: 'name' must be a non-empty string",
        ),
        (
            {"here": {"kind": "local", "enforce_memory": "yes"}},
            "c.UWS.resources['here']: 'enforce_memory' must be true or false, got 'yes'",
        ),
    ],
)
def test_resource_errors(specs, message):
    assert message in config_error(parse_resources, specs)


def test_resource_errors_name_the_setting_they_come_from():
    assert config_error(parse_resources, {}, "c.Site.places").startswith("c.Site.places must be")


# ---- job types ------------------------------------------------------------------------------


def test_job_types_as_configured(job_types):
    lab, short = job_types["jupyter_lab"], job_types["short_lab"]
    # no 'resources': every configured resource may run it
    assert lab.resources == ("local", "cluster")
    assert short.resources == ("local",) and short.time_limit == 30
    assert (lab.command, lab.default_url, lab.environment, lab.time_limit) == ((), "/lab", {}, None)
    # what GET /job_types shows
    assert short.as_dict() == {
        "id": "short_lab",
        "name": "Short lab",
        "description": "",
        "resources": ["local"],
    }


def test_job_type_with_everything():
    (jt,) = parse_job_types(
        {
            "rstudio": {
                "name": "RStudio",
                "description": "R in the browser",
                "command": ["rserver", "--www-port=8787"],
                "environment": {"R_LIBS": "/opt/r"},
                "default_url": "/rstudio",
                "modules": ["R/4.3", "gcc"],
                "prologue": "source /opt/setup.sh",
                "time_limit": 120,
            }
        }
    ).values()
    assert jt.command == ("rserver", "--www-port=8787")
    assert jt.environment == {"R_LIBS": "/opt/r"} and jt.default_url == "/rstudio"
    assert jt.modules == ("R/4.3", "gcc") and jt.prologue == "source /opt/setup.sh"
    assert jt.time_limit == 120
    assert jt.resources == ()  # without the resources to check against, as given


@pytest.mark.parametrize(
    "specs, message",
    [
        ({}, "c.UWS.job_types must be a non-empty dict of job type id -> settings"),
        (
            {"my-lab": {"name": "Lab"}},
            "c.UWS.job_types: job type id 'my-lab' must be lower-case letters, digits and '_' "
            "(like 'jupyter_lab')",
        ),
        ({"lab": "JupyterLab"}, "c.UWS.job_types['lab'] must be a dict with at least a 'name'"),
        (
            {"lab": {"name": "Lab", "colour": "red"}},
            "c.UWS.job_types['lab'] has unknown key(s) ['colour']",
        ),
        (
            {"lab": {}},
            "c.UWS.job_types['lab']: 'name' (the display name) must be a non-empty string",
        ),
        ({"lab": {"name": " "}}, "'name' (the display name) must be a non-empty string"),
        (
            {"lab": {"name": "Lab", "command": "jupyter lab"}},
            "'command' must be a non-empty list of strings",
        ),
        ({"lab": {"name": "Lab", "command": []}}, "'command' must be a non-empty list of strings"),
        (
            {"lab": {"name": "Lab", "command": ["lab", 8888]}},
            "'command' must be a non-empty list of strings",
        ),
        (
            {"lab": {"name": "Lab", "environment": {"PORT": 8888}}},
            "'environment' must be a dict of variable -> string value",
        ),
        (
            {"lab": {"name": "Lab", "resources": ["gpu-nodes"]}},
            "c.UWS.job_types['lab']: unknown resource 'gpu-nodes' in 'resources'; "
            "configured resources: ['cluster', 'local']",
        ),
        ({"lab": {"name": "Lab", "resources": "local"}}, "'resources' must be a list of strings"),
        (
            {"lab": {"name": "Lab", "default_url": "lab"}},
            "'default_url' must be a path starting with '/'",
        ),
        (
            {"lab": {"name": "Lab", "prologue": ["module load R"]}},
            "'prologue' must be a string of shell lines",
        ),
        (
            {"lab": {"name": "Lab", "modules": ["R; rm -rf ~"]}},
            "module name 'R; rm -rf ~' has characters a module name cannot have",
        ),
        (
            {"lab": {"name": "Lab", "time_limit": 0}},
            "'time_limit' (minutes) must be a positive integer, got 0",
        ),
    ],
)
def test_job_type_errors(resources, specs, message):
    assert message in config_error(parse_job_types, specs, resources)
