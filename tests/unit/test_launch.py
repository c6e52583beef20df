"""From a launch request to what a spawner runs (plan_launch): numbers within the parameters and
the resource's limits, GPUs mapped to the resource's gres and partition, the site's own
parameters passed as UWS_PARAM_* variables, and the #SBATCH lines of the plan."""

from __future__ import annotations

import pytest

from uws_hub.errors import ValidationFailed
from uws_hub.jobs.launch import DEFAULT_TIME_LIMIT_MIN, plan_launch
from uws_hub.jobs.params import parse_parameters
from uws_hub.jobs.types import parse_job_types, parse_resources


def test_defaults_on_the_local_resource(job_types, resources, params):
    plan = plan_launch(job_types["jupyter_lab"], resources["local"], params, {})
    assert (plan.job_type, plan.resource, plan.kind) == ("jupyter_lab", "local", "local")
    assert (plan.cpus, plan.memory_mb, plan.time_limit_min, plan.gpus) == (1, 2048, 240, 0)
    assert plan.partition is None and plan.gres is None
    # the options stored on the job are the validated ones, defaults included
    assert plan.options == {
        "num_cpus": 1,
        "memory_mb": 2048,
        "time_limit_min": 240,
        "gpus": 0,
        "conda_env": "base",
    }
    assert plan.extra_env == {"UWS_PARAM_CONDA_ENV": "base"}


def test_what_the_launch_asks_for(job_types, resources, params):
    plan = plan_launch(
        job_types["jupyter_lab"],
        resources["cluster"],
        params,
        {"num_cpus": 8, "memory_mb": 16000, "time_limit_min": 90, "conda_env": "torch"},
    )
    assert (plan.cpus, plan.memory_mb, plan.time_limit_min, plan.gpus) == (8, 16000, 90, 0)
    assert plan.partition == "debug" and plan.gres is None
    assert plan.extra_env == {"UWS_PARAM_CONDA_ENV": "torch"}


def test_gpus_use_the_resources_gres_and_gpu_partition(job_types, resources, params):
    cluster = resources["cluster"]
    plan = plan_launch(job_types["jupyter_lab"], cluster, params, {"gpus": 2, "num_cpus": 4})
    assert plan.gpus == 2 and plan.gres == "gpu:a100:2" and plan.partition == "gpu"
    assert plan.slurm_directives(cluster) == [
        "--cpus-per-task=4",
        "--time=240",
        "--mem=2048M",
        "--partition=gpu",
        "--gres=gpu:a100:2",
        "--account=proj-42",
        "--qos=normal",
        "--exclusive",
        "--constraint=ib",
    ]


def test_slurm_directives_without_optional_settings():
    res = parse_resources({"batch": {"kind": "slurm"}})["batch"]
    jt = parse_job_types({"job": {"name": "Job"}})["job"]
    plan = plan_launch(jt, res, parse_parameters([]), {})
    # no parameters at all: one core, the default time limit, no memory request, no GPUs
    assert plan.slurm_directives(res) == ["--cpus-per-task=1", f"--time={DEFAULT_TIME_LIMIT_MIN}"]
    assert plan.memory_mb is None and plan.options == {} and plan.extra_env == {}


def test_job_type_time_limit_when_the_launch_names_none(job_types, resources):
    params = parse_parameters(
        [{"variable_name": "time_limit_min", "validation": {"type": "int", "min": 5}}]
    )
    plan = plan_launch(job_types["short_lab"], resources["local"], params, {})
    assert plan.time_limit_min == 30
    assert plan.options == {"time_limit_min": 30}  # recorded on the job as used
    plan = plan_launch(job_types["short_lab"], resources["local"], params, {"time_limit_min": 45})
    assert plan.time_limit_min == 45
    plan = plan_launch(job_types["jupyter_lab"], resources["local"], params, {})
    assert plan.time_limit_min == DEFAULT_TIME_LIMIT_MIN == 240


def test_site_parameters_become_environment_variables(job_types, resources):
    params = parse_parameters(
        [
            {"variable_name": "num_cpus", "validation": {"type": "int"}},
            {"variable_name": "conda_env", "validation": {"type": "str"}},
            {"variable_name": "debugMode", "validation": {"type": "bool"}},
        ]
    )
    plan = plan_launch(
        job_types["jupyter_lab"],
        resources["local"],
        params,
        {"num_cpus": 2, "conda_env": "r-4.3", "debugMode": True},
    )
    # the well-known ones are not repeated; names upper-cased, values as strings
    assert plan.extra_env == {"UWS_PARAM_CONDA_ENV": "r-4.3", "UWS_PARAM_DEBUGMODE": "True"}


@pytest.mark.parametrize(
    "resource, options, message",
    [
        (
            "local",
            {"num_cpus": 8},
            "[\"num_cpus: Value '8' above maximum of 4 for resource local.\"]",
        ),
        (
            "local",
            {"memory_mb": 9000},
            "[\"memory_mb: Value '9000' above maximum of 8192 for resource local.\"]",
        ),
        (
            "local",
            {"gpus": 1},
            "[\"gpus: Value '1' above maximum of 0 for resource local.\"]",
        ),
        (
            "cluster",
            {"time_limit_min": 601, "gpus": 3},
            "[\"time_limit_min: Value '601' above maximum of 600 for resource cluster.\", "
            "\"gpus: Value '3' above maximum of 2 for resource cluster.\"]",
        ),
        # the parameters' own limits come first
        ("cluster", {"num_cpus": 17}, "[\"num_cpus: Value '17' above maximum of 16.\"]"),
        ("cluster", {"num_cpus": "2"}, "does not match required type int"),
    ],
)
def test_refused_launches(job_types, resources, params, resource, options, message):
    with pytest.raises(ValidationFailed) as e:
        plan_launch(job_types["jupyter_lab"], resources[resource], params, options)
    assert e.value.status_code == 422
    assert e.value.message.startswith("Invalid resource options found: ")
    assert message in e.value.message


def test_limits_are_inclusive(job_types, resources, params):
    plan = plan_launch(
        job_types["jupyter_lab"], resources["local"], params, {"num_cpus": 4, "memory_mb": 8192}
    )
    assert (plan.cpus, plan.memory_mb) == (4, 8192)
