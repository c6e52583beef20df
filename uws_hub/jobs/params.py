"""Resource parameters in the UWS shape, and validation of the options a launch asks for.

A parameter is configuration (``c.UWS.parameters``)::

    {"display_name": "CPUs", "description": "Cores for the job", "variable_name": "num_cpus",
     "default_value": 1, "validation": {"type": "int", "min": 1, "max": 16, "required": False}}

``validate_options`` checks what a client sends against them: unknown keys are ignored (as UWS
did), and nothing user-supplied gets through unvalidated. Bounds are inclusive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, ConfigError, ValidationFailed
from .configcheck import check_keys

TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ALLOWED_KEYS = {"display_name", "description", "variable_name", "default_value", "validation"}
_ALLOWED_VALIDATION_KEYS = {"type", "min", "max", "required"}


@dataclass(frozen=True)
class Parameter:
    display_name: str
    description: str
    variable_name: str
    default_value: Any
    type: str | None = None
    min: float | None = None
    max: float | None = None
    required: bool = False
    raw: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        """The UWS representation served by ``GET /parameters``."""
        return {
            "display_name": self.display_name,
            "description": self.description,
            "variable_name": self.variable_name,
            "default_value": self.default_value,
            "validation": {
                "type": self.type,
                "min": self.min,
                "max": self.max,
                "required": self.required,
            },
        }

    def check(self, value: Any) -> list[str]:
        """Problems with `value`, in UWS's words (empty when valid): a wrong type stops the
        checks of this parameter; bounds are ``value < min`` and ``value > max``."""
        name = self.variable_name
        if self.type:
            ok_types = TYPES[self.type]
            is_bool = isinstance(value, bool)
            if not isinstance(value, ok_types) or (is_bool and self.type != "bool"):
                return [
                    f"{name}: Value '{value}' of type {type(value).__name__} does not match "
                    f"required type {self.type}. Skipping further validation of parameter {name}."
                ]
        problems = []
        if self.min is not None and _comparable(value) and value < self.min:
            problems.append(f"{name}: Value '{value}' not above minimum of {self.min}.")
        if self.max is not None and _comparable(value) and value > self.max:
            problems.append(f"{name}: Value '{value}' above maximum of {self.max}.")
        return problems


def _comparable(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_parameters(specs: Any, setting: str = "c.UWS.parameters") -> list[Parameter]:
    """Validate the configured parameter list; raise ConfigError naming the bad entry."""
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(
            f"{setting} must be a list of parameter dicts, got {type(specs).__name__}"
        )
    seen: set[str] = set()
    return [_parse_parameter(spec, f"{setting}[{i}]", seen) for i, spec in enumerate(specs)]


def _parse_parameter(spec: Any, where: str, seen: set[str]) -> Parameter:
    """One entry of the list; `seen`: the variable names of the entries before it."""
    check_keys(spec, _ALLOWED_KEYS, where, f"must be a dict, got {type(spec).__name__}")
    name = spec.get("variable_name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{where}: 'variable_name' must be an identifier like 'num_cpus', got {name!r}"
        )
    if name in seen:
        raise ConfigError(f"{where}: variable_name {name!r} appears twice")
    seen.add(name)
    for key in ("display_name", "description"):
        if not isinstance(spec.get(key, ""), str):
            raise ConfigError(f"{where}: {key!r} must be a string")
    vtype, lo, hi, required = _parse_validation(spec.get("validation", {}) or {}, where)
    param = Parameter(
        display_name=spec.get("display_name", name),
        description=spec.get("description", ""),
        variable_name=name,
        default_value=spec.get("default_value"),
        type=vtype,
        min=lo,
        max=hi,
        required=required,
        raw=dict(spec),
    )
    if param.default_value is not None:
        problems = param.check(param.default_value)
        if problems:
            raise ConfigError(f"{where}: 'default_value' is invalid: {problems[0]}")
    return param


def _parse_validation(validation: Any, where: str) -> tuple[str | None, Any, Any, bool]:
    """A parameter's ``validation``: (type, min, max, required)."""
    check_keys(validation, _ALLOWED_VALIDATION_KEYS, f"{where}: 'validation'", "must be a dict")
    vtype = validation.get("type")
    if vtype is not None and vtype not in TYPES:
        raise ConfigError(
            f"{where}: 'validation.type' must be one of {', '.join(TYPES)} (got {vtype!r})"
        )
    for bound in ("min", "max"):
        b = validation.get(bound)
        if b is not None and not _comparable(b):
            raise ConfigError(f"{where}: 'validation.{bound}' must be a number, got {b!r}")
    lo, hi = validation.get("min"), validation.get("max")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(
            f"{where}: 'validation.min' ({lo}) is greater than 'validation.max' ({hi})"
        )
    required = validation.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError(f"{where}: 'validation.required' must be true or false")
    return vtype, lo, hi, required


def validate_options(params: list[Parameter], options: Any) -> dict:
    """Check `options` from a client; return the cleaned options with defaults filled in.

    Raises ValidationFailed (422) with UWS's message "Invalid resource options found: [...]"
    (the list of every problem, in UWS's words), BadRequest if `options` is not an object.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise BadRequest("Resource options not JSON.")
    errors: list[str] = []
    cleaned: dict[str, Any] = {}
    for p in params:
        if p.variable_name in options:
            value = options[p.variable_name]
            problems = p.check(value)
            if problems:
                errors += problems
            else:
                cleaned[p.variable_name] = value
        elif p.required:
            errors.append(f"Missing required: {p.variable_name}")
        elif p.default_value is not None:
            cleaned[p.variable_name] = p.default_value
    if errors:
        raise invalid_options(errors)
    return cleaned


def invalid_options(errors: list[str]) -> ValidationFailed:
    """UWS's 422: "Invalid resource options found: ['<problem>', ...]" (the list as Python
    writes it, as UWS did)."""
    return ValidationFailed(f"Invalid resource options found: {errors}")
