"""The package's structure, read from its source with ``ast``: no import cycles among its modules (imports inside
functions count too: a lazy import still ties two modules together), and no module reaches into another's private
names (``from .x import _y``, or ``obj._method()`` on an object that is not ``self``/``cls``).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "intentune"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, ast.Module]:
    """Every module of the package, parsed once per test process (the per-module tests share the trees)."""
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for type hints only, never executed)."""
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Which package modules each module imports at run time (``from .a import b`` counts ``a.b`` when that is a
    module; imports under ``if TYPE_CHECKING:`` do not count)."""
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in _runtime_nodes(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, name in packages, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module, ignoring a package's imports of its own submodules
    (an ``__init__`` that re-exports them is not a cycle of logic)."""
    edges = {a: {b for b in bs if not b.startswith(a + ".")} for a, bs in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return groups


def test_the_structure_checks_see_a_cycle_and_a_private_import() -> None:
    """The checks themselves: a planted cycle and a planted private import are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nfrom .c import C\n")
    assert sorted(n.module for n in _runtime_nodes(typed) if isinstance(n, ast.ImportFrom)) == ["c", "typing"]
    tree = ast.parse("from .model import _secret\nclassifier._forward(1)\nself._fine()\nclass A:\n    pass\nA._ok\n")
    assert _private_uses("intentune.x", tree) == ["from .model import _secret", "classifier._forward"]


def test_no_import_cycles() -> None:
    assert _cycles(_imports(_modules())) == []


# Private attributes of other libraries that intentune uses on purpose: transformers reads the attention
# implementation from this attribute, accelerate has no public way to forget its process state between runs, and
# torch's multi-tensor lerp updates the weight average in one call.
THIRD_PARTY_PRIVATE = {"_attn_implementation", "_reset_state", "_foreach_lerp_"}


def _private_uses(module: str, tree: ast.Module) -> list[str]:
    own = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)} | {"self", "cls"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            found += [f"from {'.' * node.level}{node.module or ''} import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id not in own
            and node.attr not in THIRD_PARTY_PRIVATE
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_uses_another_modules_private_names(module: str) -> None:
    assert _private_uses(module, _modules()[module]) == []


def test_no_name_the_package_exports_is_also_one_of_its_modules() -> None:
    """``intentune.NAME`` resolves to an exported function or class lazily; importing a submodule of the same name
    (which any command may do first) would put the module there instead."""
    import intentune

    submodules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    clashes = sorted(set(intentune.__all__) & submodules)
    assert clashes == [], f"exported names that are also module names: {clashes}"
