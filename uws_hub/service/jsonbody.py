"""Request bodies as JSON: parsed, and checked for what the rest of the service cannot hold.

UWS bodies are a few levels deep; a body nested hundreds of levels deep exhausts Python's
recursion (in the parser, or later in whatever walks it) and a lone surrogate (``"\\ud800"`` is
valid JSON but not Unicode) cannot be stored or encoded. Both are refused here, once, with a 400
that says what is wrong, before any domain code sees the body.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRequest

#: how deeply objects and arrays may nest in a request body
MAX_DEPTH = 32


def parse(body: bytes) -> Any:
    """The JSON value of `body`, or BadRequest saying what is wrong (as UWS, which read every
    body with ``json.loads``: "Invalid JSON: …", also for an empty body)."""
    if not body.strip():
        raise BadRequest(
            "Invalid JSON: Expecting value: line 1 column 1 (char 0)",
            detail="The request has no body; send a JSON object.",
        )
    try:
        value = json.loads(body)
    except RecursionError as e:
        raise BadRequest(too_deep()) from e
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"Invalid JSON: {e}") from e
    check(value)
    return value


def check(value: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings (or keys) that are not valid Unicode."""
    stack = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise BadRequest(too_deep())
        if isinstance(item, dict):
            for k, v in item.items():
                _check_text(k, where)
                stack.append((v, depth + 1, f"{where}.{k}" if where else k))
        else:
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(item))


def too_deep() -> str:
    return f"Invalid JSON: nested more than {MAX_DEPTH} levels deep."


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start]
        field = f" in {where}" if where else ""
        raise BadRequest(
            f"Invalid JSON: text{field} is not valid Unicode (a lone surrogate "
            f"\\u{ord(bad):04x}); send UTF-8 text."
        ) from e
