"""Imports flow downward: the engine imports no public module above it, its layers import
none after their own, and the import graph drawn in docs/internals.md is the one in the
code."""

from __future__ import annotations

import ast
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowkit"
DOC = ROOT / "docs" / "internals.md"
BEGIN = "```mermaid\n"
END = "```"
# The public modules the engine may use: the vocabulary below it.
BELOW_THE_ENGINE = {"flowkit.exceptions", "flowkit.states"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _node(module: str) -> str:
    """The graph's node for a module: a package's private modules are one node."""
    parts = module.split(".")
    if len(parts) > 2:
        return ".".join(parts[:2])
    return module


def _imports() -> dict[str, set[str]]:
    """Each flowkit module's imports of other flowkit modules, run-time ones only."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and (
                "TYPE_CHECKING" in (test := ast.unparse(node.test)) or "__main__" in test
            ):
                node.body = []  # annotations, or a script's entry: no import-time edge
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x
                    found |= {f"{target}.{alias.name}" for alias in node.names}
                else:
                    found.add(target)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    node.module or ""
                ]  # fmt: skip
                found |= {n for n in names if n.startswith("flowkit")}
        graph[module] = {m for m in found if m != module}
    return graph


def _graph() -> str:
    edges: set[tuple[str, str]] = set()
    for module, targets in _imports().items():
        for target in targets:
            a, b = _node(module), _node(target)
            if a != b and b != "flowkit" and a != "flowkit":
                edges.add((a, b))
    lines = ["graph TD"] + [f"    {a} --> {b}" for a, b in sorted(edges)]
    return "\n".join(lines) + "\n"


def test_the_engine_imports_no_public_module_above_it() -> None:
    above = {
        (module, target)
        for module, targets in _imports().items()
        if module.startswith("flowkit._engine")
        for target in targets
        if not target.startswith("flowkit._engine") and target not in BELOW_THE_ENGINE
    }
    assert above == set()


ENGINE = "flowkit._engine"
LAYERS = ("results", "definition", "lifecycle", "execution")
"""The engine's layers, in order: each imports only the leaves (the modules at the top of
``flowkit/_engine/``) and the layers before it (see ``flowkit/_engine/__init__.py``)."""


def _layer(module: str) -> int:
    """0 for a leaf module of the engine, else 1 + the index of its layer."""
    parts = module.split(".")
    if len(parts) > 3 and parts[2] in LAYERS:
        return 1 + LAYERS.index(parts[2])
    return 0


def _engine_imports() -> dict[str, set[str]]:
    """Each engine module's imports of other engine modules, annotations' too: a type
    imported only for a hint still ties the layers together."""
    graph: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / "_engine").rglob("*.py")):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found |= {f"{target}.{alias.name}" for alias in node.names}
                else:
                    found.add(target)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(ENGINE):
                found.add(node.module or "")
        graph[module] = {m for m in found if m.startswith(ENGINE + ".") and m != module}
    return graph


def test_no_engine_layer_imports_a_later_one() -> None:
    later = sorted(
        f"{module} imports {target}"
        for module, targets in _engine_imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert later == []


def _run_fields() -> set[str]:
    from flowkit._engine.lifecycle import runs

    kinds = (runs.Run, runs.TaskRun, runs.FlowRun, runs.Progress, runs.FlowProgress, runs.Attempt)
    return {field.name for kind in kinds for field in attrs.fields(kind)}


def test_only_the_lifecycle_layer_writes_a_run() -> None:
    # A run, its progress and its attempt are written by the lifecycle layer; the venues
    # report what happened through the attempt's methods. ``self.x = ...`` in another
    # class of the same field name is that class's own business.
    fields = _run_fields()
    writes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "lifecycle" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.ctx, ast.Store)
                        and sub.attr in fields
                        and not (isinstance(sub.value, ast.Name) and sub.value.id == "self")
                    ):
                        writes.append(f"{path.relative_to(ROOT)}:{sub.lineno} {ast.unparse(sub)}")
    assert writes == []


def test_the_engine_layers_are_packages() -> None:
    for layer in LAYERS:
        assert (PACKAGE / "_engine" / layer / "__init__.py").is_file()
    assert _layer("flowkit._engine.lifecycle.runs") == 3
    assert _layer("flowkit._engine.clock") == 0


def test_the_import_graph_in_the_docs_is_the_codes() -> None:
    text = DOC.read_text()
    start = text.index(BEGIN, text.index("## Layers")) + len(BEGIN)
    drawn = text[start : text.index(END, start)]
    assert drawn == _graph(), "redraw it: python tests/test_layers.py"


def _redraw() -> None:
    """Put the code's graph in docs/internals.md: ``python tests/test_layers.py``."""
    text = DOC.read_text()
    start = text.index(BEGIN, text.index("## Layers")) + len(BEGIN)
    DOC.write_text(text[:start] + _graph() + text[text.index(END, start) :])


if __name__ == "__main__":
    _redraw()
