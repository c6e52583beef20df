"""Job requests, checked at the edge: a handler turns the JSON body of a start into a
`StartSpec`; `JobManager.plan` resolves it against the workspace's default and this hub's job
types, resources and parameters. Problems are 400s with UWS's messages (bad options: 422)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest


@dataclass(frozen=True)
class StartSpec:
    """A start request: which job type on which resource (None: the defaults), the resource
    options as sent (checked against the parameters when planned), and the client's
    ``job_details`` (kept with the job)."""

    job_type: str | None = None
    resource: str | None = None
    resource_options: Any = None
    job_details: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Any) -> StartSpec:
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        job_type = body.get("job_type") or None
        if job_type is not None and not isinstance(job_type, str):
            raise BadRequest(f"{job_type} is not in the list of available job types.")
        job_details = body.get("job_details", {})
        if job_details is None:
            job_details = {}
        if not isinstance(job_details, dict):
            raise BadRequest("Job details not JSON.")
        options = body.get("resource_options")
        if options is not None and not isinstance(options, dict):
            raise BadRequest("Resource options not JSON.")
        resource = body.get("resource") or None
        if resource is not None and not isinstance(resource, str):
            raise BadRequest(f"Resource {resource!r} is not a resource id; send one as a string.")
        return cls(job_type, resource, options, job_details)
