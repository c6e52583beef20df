"""Checks shared by the hand-written configuration parsers (`types`, `params`).

Each parser names the entry it is checking (``where``, e.g. ``c.UWS.resources['hpc']``) so the
one-line `ConfigError` the hub prints points at the setting to fix.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..errors import ConfigError


def check_keys(spec: Any, allowed: Collection[str], where: str, not_a_dict: str) -> dict:
    """`spec` itself, once it is a dict whose keys are all in `allowed`.

    Otherwise ConfigError: ``<where> <not_a_dict>`` (e.g. "must be a dict, got str"), or
    ``<where> has unknown key(s) [...]; allowed: [...]``.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} {not_a_dict}")
    unknown = set(spec) - set(allowed)
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    return spec


def nonempty_string(value: Any, where: str, what: str) -> str:
    """`value` if it is a string with more than blanks; else ``<where>: <what> must be a
    non-empty string``."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {what} must be a non-empty string")
    return value
