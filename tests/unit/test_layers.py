"""Imports point one way: the hub side (authenticators, spawners, ``setup``) and the service
sit above the domain (workspaces, jobs, shares, quotas, users, Slurm), the domain above the
database, the database above a few base modules. Neither the hub side nor the service imports
the other. Every import counts, also those inside functions (they hide cycles, they do not
remove them); only ``if TYPE_CHECKING:`` blocks are left out. See docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "uws_hub"

#: top-level units of uws_hub, by layer (a unit is a module or a subpackage)
LAYERS: dict[str, set[str]] = {
    "base": {"_version", "errors", "times", "ids", "identity", "scopes", "periodic"},
    "db": {"db"},
    "domain": {
        "config",
        "domain",
        "audit",
        "idempotency",
        "notify",
        "quotas",
        "diskwatch",
        "globus_tokens",
        "jobs",
        "workspaces",
        "shares",
        "users",
        "slurm",
        "importer",
    },
    "service": {"service"},
    "hub": {"__init__", "authenticators", "spawners"},
    "job": {"job_wrapper", "testjob", "labserver", "labextension"},  # runs inside a job: alone
    "tools": {"cli"},
}
#: what each layer may import
MAY_USE: dict[str, set[str]] = {
    "base": {"base"},
    "db": {"base", "db"},
    "domain": {"base", "db", "domain"},
    "service": {"base", "db", "domain", "service"},
    "hub": {"base", "db", "domain", "hub", "job"},
    "job": {"job"},
    "tools": set(LAYERS),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in PACKAGE.rglob("*.py")
        if "migrations" not in p.parts and "__pycache__" not in p.parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The uws_hub modules `name` imports (a ``from pkg import mod`` names the module)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name.split(".")[0] == "uws_hub")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".")
                    if not is_pkg:
                        base = base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "uws_hub":
                    continue
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    out.add(sub if sub in known else target)
            visit(child)

    visit(ast.parse(path.read_text()))
    out.discard(name)
    return {m for m in out if m in known}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> str:
    unit = unit_of(module)
    for layer, units in LAYERS.items():
        if unit in units:
            return layer
    raise AssertionError(f"{module} is in no layer: add its unit {unit!r} to LAYERS")


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_imports_point_one_way():
    wrong = []
    for module, targets in sorted(graph().items()):
        layer = layer_of(module)
        for target in sorted(targets):
            if layer_of(target) not in MAY_USE[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({layer_of(target)})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def unit_graph() -> dict[str, set[str]]:
    """Which units (top-level modules and subpackages) import which other units."""
    out: dict[str, set[str]] = {}
    for module, targets in graph().items():
        here = unit_of(module)
        out.setdefault(here, set()).update(unit_of(t) for t in targets if unit_of(t) != here)
    return out


def cycles_in(g: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            dfs(node)
    return cycles


def test_no_import_cycles_between_units():
    """e.g. jobs -> spawners -> jobs (the old job sync reaching into the spawners' Slurm
    monitor) is refused, even when each import sits inside a function."""
    cycles = cycles_in(unit_graph())
    assert not cycles, "import cycles between parts of uws_hub:\n" + "\n".join(cycles)


def test_cycle_finder_finds_cycles():
    assert cycles_in({"jobs": {"spawners"}, "spawners": {"jobs"}}) == ["jobs -> spawners -> jobs"]
    assert cycles_in({"jobs": {"db"}, "spawners": {"jobs", "db"}}) == []


def test_the_checker_sees_function_level_imports(tmp_path):
    """The check reads imports inside functions (where the old cycle hid)."""
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from ..spawners import chooser\n")
    found = imports_of("uws_hub.jobs.m", mod, {"uws_hub.spawners", "uws_hub.spawners.chooser"})
    assert found == {"uws_hub.spawners.chooser"}


def test_the_service_does_not_load_the_hub_side():
    """Importing the service must not import spawners (their package patches JupyterHub's
    handler table) or authenticators."""
    g = graph()
    seen: set[str] = set()
    todo = ["uws_hub.service.app"]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(g[m])
    hub_side = sorted(m for m in seen if layer_of(m) == "hub")
    assert not hub_side
