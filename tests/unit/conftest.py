"""The fast layer: pure domain code, checked without root, a hub, Slurm or a network, in seconds
(``make unit``). Nothing here may import the end-to-end helpers under tests/e2e/ (they make
system accounts and start real services); a test that needs those belongs there.

The fixtures are a small site's configuration, parsed the way the hub parses c.UWS, and the
domain wired on it (`domain`, with the site defaults of `.domain.make_settings`; a module that
needs other settings defines its own ``domain``) with its first person, ``alice``."""

from __future__ import annotations

import pytest

from uws_hub.jobs.params import Parameter, parse_parameters
from uws_hub.jobs.types import JobType, Resource, parse_job_types, parse_resources

from .domain import Domain

#: c.UWS.resources of a site with a login node and a cluster
SITE_RESOURCES = {
    "local": {"kind": "local", "name": "This server", "max_cpus": 4, "max_memory_mb": 8192},
    "cluster": {
        "kind": "slurm",
        "name": "Cluster",
        "partition": "debug",
        "account": "proj-42",
        "qos": "normal",
        "max_cpus": 32,
        "max_gpus": 2,
        "max_time_limit_min": 600,
        "gpu_gres": "gpu:a100",
        "gpu_partition": "gpu",
        "extra_directives": ["--exclusive", "--constraint=ib"],
    },
}

#: c.UWS.parameters: the four well-known ones (as shipped) and a site's own
SITE_PARAMETERS = [
    {
        "display_name": "CPUs",
        "variable_name": "num_cpus",
        "default_value": 1,
        "validation": {"type": "int", "min": 1, "max": 16},
    },
    {
        "display_name": "Memory (MB)",
        "variable_name": "memory_mb",
        "default_value": 2048,
        "validation": {"type": "int", "min": 256, "max": 262144},
    },
    {
        "display_name": "Time limit (minutes)",
        "variable_name": "time_limit_min",
        "default_value": 240,
        "validation": {"type": "int", "min": 5, "max": 10080},
    },
    {
        "display_name": "GPUs",
        "variable_name": "gpus",
        "default_value": 0,
        "validation": {"type": "int", "min": 0, "max": 8},
    },
    {
        "display_name": "Conda environment",
        "variable_name": "conda_env",
        "default_value": "base",
        "validation": {"type": "str"},
    },
]


@pytest.fixture
def resources() -> dict[str, Resource]:
    return parse_resources(SITE_RESOURCES)


@pytest.fixture
def job_types(resources) -> dict[str, JobType]:
    return parse_job_types(
        {
            "jupyter_lab": {"name": "JupyterLab"},
            "short_lab": {"name": "Short lab", "time_limit": 30, "resources": ["local"]},
        },
        resources,
    )


@pytest.fixture
def params() -> list[Parameter]:
    return parse_parameters(SITE_PARAMETERS)


@pytest.fixture
def domain(tmp_path):
    """The domain on a temporary site (see `.domain.Domain`)."""
    with Domain(tmp_path) as d:
        yield d


@pytest.fixture
def alice(domain):
    """The first person of the site, as a login records them."""
    return domain.user("alice")
