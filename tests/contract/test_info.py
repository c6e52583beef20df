"""UWS-REFERENCE §1.12 (job types), §1.13 (parameters), §1.16 (status): the open views."""

from __future__ import annotations

from .uws import ok

HEALTH_GROUPS = ("resources", "storage_methods", "user_authentication_methods")


def test_job_types_shape(anon):
    """UWS-REFERENCE §1.12: no auth; 200 `data.job_types = {<id>: {"id": <id>, "name": <display
    name>}}`."""
    job_types = ok(anon.get("job_types/"))["data"]["job_types"]
    assert isinstance(job_types, dict) and job_types
    for key, value in job_types.items():
        assert value["id"] == key, value
        assert isinstance(value["name"], str) and value["name"], value


def test_parameters_shape(anon):
    """UWS-REFERENCE §1.13: no auth; `data.parameters` a list whose items have `display_name,
    description, variable_name, default_value, validation{type,min,max,required}`; `type` is a
    Python type name (§1.6)."""
    parameters = ok(anon.get("parameters/"))["data"]["parameters"]
    assert isinstance(parameters, list) and parameters
    for p in parameters:
        assert {
            "display_name",
            "description",
            "variable_name",
            "default_value",
            "validation",
        } <= set(p), p
        v = p["validation"]
        assert v["type"] in ("int", "float", "bool", "str"), p
        assert isinstance(v["required"], bool), p
        if v["type"] in ("int", "float"):
            assert {"min", "max"} <= set(v), p


def test_parameters_offer_the_portals_options(anon):
    """UWS-REFERENCE §1.18: "portal-ui sends `time_limit_minutes`"; §3.3/§8.1 `gpu_enabled` a
    bool; UWS-API.md PUT start: the portal's `time_limit_minutes`, `gpu_enabled` are
    translated by `parameter_mapping` — so a hub serving the portal declares them."""
    params = {p["variable_name"]: p for p in ok(anon.get("parameters/"))["data"]["parameters"]}
    assert params["time_limit_minutes"]["validation"]["type"] == "int", params.keys()
    assert params["gpu_enabled"]["validation"]["type"] == "bool", params.keys()


def test_status_keys(anon):
    """UWS-REFERENCE §1.16: no auth; 200 `{"message", "success": true, "version", "build",
    "dependencies": {...}}`, dependencies holding `main_resource`, `api_user_authentication`,
    `resources{}`, `storage_methods{}`, `user_authentication_methods{}`; each check
    `{"connected": bool, "message": str}` (UWS-API.md GET /status/: "each {connected,
    message}")."""
    body = ok(anon.get("status/"))
    assert isinstance(body["version"], str) and body["version"]
    assert isinstance(body["build"], str) and body["build"]
    deps = body["dependencies"]
    checks = [deps["main_resource"], deps["api_user_authentication"]]
    for group in HEALTH_GROUPS:
        assert isinstance(deps[group], dict) and deps[group], (group, deps)
        checks += deps[group].values()
    for check in checks:
        assert isinstance(check["connected"], bool), check
        assert isinstance(check["message"], str), check
