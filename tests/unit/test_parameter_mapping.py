"""A resource's ``parameter_mapping`` (as UWS): the launch's generic parameters (such as the
portal's ``time_limit_minutes`` and ``gpu_enabled``) become the resource's options, unmapped ones
are dropped, the translated options are what the job records, and the configuration is checked
at start-up. End to end, on real Slurm: tests/e2e/test_parameter_mapping.py."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from sqlalchemy import select
from traitlets.config import Config

import uws_hub
from uws_hub.config import DEFAULT_PARAMETERS, UWS
from uws_hub.db.models import Job
from uws_hub.errors import ConfigError, ValidationFailed
from uws_hub.jobs.launch import check_parameter_mappings, plan_launch
from uws_hub.jobs.params import parse_parameters
from uws_hub.jobs.types import parse_resources

from .conftest import SITE_PARAMETERS, SITE_RESOURCES
from .domain import Domain

REPO = Path(__file__).resolve().parents[2]

#: the portal's two parameters, beside the site's own
PORTAL_PARAMETERS = [
    *SITE_PARAMETERS,
    {"variable_name": "time_limit_minutes", "validation": {"type": "int", "min": 1, "max": 480}},
    {"variable_name": "gpu_enabled", "default_value": False, "validation": {"type": "bool"}},
]
PORTAL_MAPPING = {
    "num_cpus": "num_cpus",
    "memory_mb": "memory_mb",
    "time_limit_min": "time_limit_min",
    "gpus": "gpus",
    "time_limit_minutes": "time_limit_min",
    "gpu_enabled": "gpus",
}


def mapped(mapping=PORTAL_MAPPING, **resources) -> dict:
    """The site's resources, each with `mapping` (None: none), plus `resources`."""
    specs = {rid: dict(spec) for rid, spec in SITE_RESOURCES.items()}
    specs.update(resources)
    if mapping is not None:
        for spec in specs.values():
            spec.setdefault("parameter_mapping", mapping)
    return parse_resources(specs)


@pytest.fixture
def portal_params():
    return parse_parameters(PORTAL_PARAMETERS)


def test_the_portals_names_become_the_time_limit_and_one_gpu(job_types, portal_params):
    cluster = mapped()["cluster"]
    plan = plan_launch(
        job_types["jupyter_lab"],
        cluster,
        portal_params,
        {"time_limit_minutes": 17, "gpu_enabled": True},
    )
    assert (plan.time_limit_min, plan.gpus, plan.cpus) == (17, 1, 1)
    # the GPU on the resource's GPU partition, with its gres
    assert plan.partition == "gpu" and plan.gres == "gpu:a100:1"
    assert "--time=17" in plan.slurm_directives(cluster)
    assert "--gres=gpu:a100:1" in plan.slurm_directives(cluster)
    # what the job records: the translated options, under the resource's names; conda_env is
    # not in the mapping, so this resource drops it (no UWS_PARAM_ variable either)
    assert plan.options == {"num_cpus": 1, "memory_mb": 2048, "time_limit_min": 17, "gpus": 1}
    assert plan.extra_env == {}


def test_gpu_enabled_false_is_no_gpu(job_types, portal_params):
    plan = plan_launch(
        job_types["jupyter_lab"], mapped()["cluster"], portal_params, {"gpu_enabled": False}
    )
    assert (plan.gpus, plan.gres, plan.partition) == (0, None, "debug")
    assert plan.options["gpus"] == 0 and plan.time_limit_min == 240


def test_gpu_enabled_on_a_resource_without_gpus_is_refused_saying_what_to_do(
    job_types, portal_params
):
    with pytest.raises(ValidationFailed) as e:
        plan_launch(
            job_types["jupyter_lab"], mapped()["local"], portal_params, {"gpu_enabled": True}
        )
    assert e.value.status_code == 422
    assert e.value.message == (
        "Invalid resource options found: ['gpu_enabled: Resource local (This server) has no "
        "GPUs. Set gpu_enabled to false, or start the job on a resource with GPUs.']"
    )


def test_limits_name_the_parameter_the_client_sent(job_types, portal_params):
    short = mapped(short={"kind": "slurm", "partition": "short", "max_time_limit_min": 30})
    with pytest.raises(ValidationFailed) as e:
        plan_launch(
            job_types["jupyter_lab"], short["short"], portal_params, {"time_limit_minutes": 45}
        )
    assert e.value.message == (
        "Invalid resource options found: [\"time_limit_minutes: Value '45' above maximum of 30 "
        'for resource short."]'
    )


def test_a_sent_value_beats_a_default_and_sent_values_must_agree(job_types, portal_params):
    cluster = mapped()["cluster"]
    jt = job_types["jupyter_lab"]
    # time_limit_min's default (240) does not override what the client sent
    plan = plan_launch(jt, cluster, portal_params, {"time_limit_minutes": 30})
    assert plan.time_limit_min == 30
    # both names sent, the same value: fine; different values: a 422 naming both
    plan = plan_launch(jt, cluster, portal_params, {"gpus": 1, "gpu_enabled": True})
    assert plan.gpus == 1
    with pytest.raises(ValidationFailed) as e:
        plan_launch(jt, cluster, portal_params, {"time_limit_min": 60, "time_limit_minutes": 17})
    assert (
        "time_limit_minutes: Value '17' and time_limit_min: Value '60' both set time_limit_min "
        "on resource cluster; send only one of them."
    ) in e.value.message


def test_values_are_validated_before_they_are_translated(job_types, portal_params):
    """UWS's ParamValidator first, in its words: a mapping never lets a bad value through."""
    with pytest.raises(ValidationFailed) as e:
        plan_launch(
            job_types["jupyter_lab"],
            mapped()["cluster"],
            portal_params,
            {"gpu_enabled": "yes", "time_limit_minutes": 0},
        )
    assert e.value.message == (
        "Invalid resource options found: [\"time_limit_minutes: Value '0' not above minimum of "
        "1.\", \"gpu_enabled: Value 'yes' of type str does not match required type bool. "
        'Skipping further validation of parameter gpu_enabled."]'
    )


def test_without_a_mapping_every_parameter_keeps_its_name(job_types, params):
    """Today's configurations: no mapping is the identity (site parameters as UWS_PARAM_*)."""
    res = mapped(None)["cluster"]
    assert res.mapping is None
    plan = plan_launch(job_types["jupyter_lab"], res, params, {"num_cpus": 4, "gpus": 2})
    assert plan.options == {
        "num_cpus": 4,
        "memory_mb": 2048,
        "time_limit_min": 240,
        "gpus": 2,
        "conda_env": "base",
    }
    assert plan.extra_env == {"UWS_PARAM_CONDA_ENV": "base"}


def test_a_mapping_may_rename_a_site_option(job_types, params):
    """A target that is not one of the four is passed to the job under its new name."""
    res = mapped({"num_cpus": "num_cpus", "conda_env": "env_name"})["cluster"]
    plan = plan_launch(job_types["jupyter_lab"], res, params, {"conda_env": "torch", "gpus": 2})
    # gpus is not mapped here: dropped, so no GPU
    assert plan.options == {"num_cpus": 1, "env_name": "torch"}
    assert plan.extra_env == {"UWS_PARAM_ENV_NAME": "torch"}
    assert (plan.gpus, plan.gres, plan.time_limit_min, plan.memory_mb) == (0, None, 240, None)


# ---- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping, message",
    [
        ("gpus", "must be a dict of parameter name -> option"),
        (
            {"num_cpus": 4},
            "option 4 must be an identifier like 'num_cpus' (in the entry for 'num_cpus')",
        ),
        ({"num cpus": "num_cpus"}, "parameter name 'num cpus' must be an identifier"),
    ],
)
def test_a_malformed_mapping_is_a_config_error(mapping, message):
    with pytest.raises(ConfigError) as e:
        parse_resources({"hpc": {"kind": "slurm", "parameter_mapping": mapping}})
    assert "c.UWS.resources['hpc']: 'parameter_mapping'" in str(e.value)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "mapping, message",
    [
        (
            {"time_limit_minuts": "time_limit_min"},
            "maps 'time_limit_minuts', which is not in c.UWS.parameters: declare it there or "
            "remove it from the mapping",
        ),
        (
            {"conda_env": "num_cpus"},
            "maps 'conda_env' (validation.type 'str') to 'num_cpus', which takes 'int'",
        ),
        (
            {"gpu_enabled": "time_limit_min"},
            "maps 'gpu_enabled' (validation.type 'bool') to 'time_limit_min', which takes 'int'",
        ),
        (
            {"num_cpus": "gpus", "gpus": "gpus"},
            "maps 'num_cpus' and 'gpus' to 'gpus' and their default values differ (1 vs 0)",
        ),
    ],
)
def test_a_mapping_that_cannot_work_is_a_config_error(mapping, message, portal_params):
    with pytest.raises(ConfigError) as e:
        check_parameter_mappings(mapped(mapping), portal_params)
    assert message in str(e.value) and str(e.value).startswith("c.UWS.resources['local']")


def test_mappings_that_work(portal_params):
    # gpus (default 0) and gpu_enabled (default false: no GPU) agree; resources without a
    # mapping are not checked
    check_parameter_mappings(mapped(), portal_params)
    check_parameter_mappings(mapped(None), portal_params)
    check_parameter_mappings(
        mapped({"gpu_enabled": "gpus", "conda_env": "conda_env"}), portal_params
    )


def test_the_runnable_default_maps_the_portals_parameters(tmp_path, monkeypatch):
    """`make run`'s jupyterhub_config.py declares time_limit_minutes and gpu_enabled and maps
    them on every resource (the local one, and Slurm with UWS_SLURM=1)."""
    monkeypatch.setenv("UWS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("UWS_SLURM", "1")
    monkeypatch.setattr(uws_hub, "setup", lambda c: None)
    c = Config()
    runpy.run_path(str(REPO / "jupyterhub_config.py"), init_globals={"get_config": lambda: c})
    s = UWS(config=c)
    names = [p.variable_name for p in s.parameter_list]
    assert names == [p["variable_name"] for p in DEFAULT_PARAMETERS] + [
        "time_limit_minutes",
        "gpu_enabled",
    ]
    check_parameter_mappings(s.resource_map, s.parameter_list)
    jt = s.job_type_map["test_job"]
    for rid in ("local", "slurm"):
        plan = plan_launch(jt, s.resource_map[rid], s.parameter_list, {"time_limit_minutes": 17})
        assert plan.time_limit_min == 17 and plan.options["time_limit_min"] == 17
    with pytest.raises(ValidationFailed, match="Resource local .* has no GPUs"):
        plan_launch(jt, s.resource_map["local"], s.parameter_list, {"gpu_enabled": True})


# ---- the job's record ----------------------------------------------------------------------------


def test_the_job_records_the_translated_options(tmp_path):
    resources = {
        "local": {"kind": "local", "name": "This server", "parameter_mapping": PORTAL_MAPPING},
        "cluster": {
            "kind": "slurm",
            "name": "Cluster",
            "partition": "debug",
            "gpu_partition": "gpu",
            "max_gpus": 1,
            "parameter_mapping": PORTAL_MAPPING,
        },
    }
    params = [*DEFAULT_PARAMETERS, *PORTAL_PARAMETERS[-2:]]
    with Domain(tmp_path, resources=resources, parameters=params) as domain:
        alice = domain.user("alice")
        ws = domain.create_workspace(alice)
        domain.start_job(
            alice,
            ws,
            job_type="batch",
            resource="cluster",
            resource_options={"time_limit_minutes": 17, "gpu_enabled": True, "colour": "blue"},
        )
        with domain.db() as session:
            job = session.scalars(select(Job)).one()
        assert job.resource_options == {
            "num_cpus": 1,
            "memory_mb": 2048,
            "time_limit_min": 17,
            "gpus": 1,
        }
        assert (job.time_limit_s, job.gpus, job.cpus) == (17 * 60, 1, 1)
