"""The public API: what ``import flowkit`` exports, that it is documented, and that
importing it has no side effects."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import flowkit

INIT = Path(flowkit.__file__)
PUBLIC_MODULES = sorted(
    f"flowkit.{m.name}"
    for m in pkgutil.iter_modules(flowkit.__path__)
    if not m.name.startswith("_")
)


def reexports() -> set[str]:
    """The names ``flowkit/__init__.py`` re-exports explicitly: ``from .x import y as y``
    (for type checkers: at run time, each is imported when first used)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(INIT.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname for a in node.names if a.asname == a.name)
    return names


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_LOGGING")},
    )


def public_callables(module: types.ModuleType) -> list[tuple[str, Any]]:
    """The callables in ``module.__all__`` and the public methods of its classes."""
    found: list[tuple[str, Any]] = []
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType) or not callable(obj):
            continue
        found.append((f"{module.__name__}.{name}", obj))
        if inspect.isclass(obj):
            seen: set[str] = set()
            for cls in obj.__mro__:  # flowkit's own classes: inherited methods count too
                if not cls.__module__.startswith("flowkit"):
                    continue
                for attr, value in vars(cls).items():
                    if attr.startswith("_") or attr in seen:
                        continue
                    seen.add(attr)
                    member = value.fget if isinstance(value, property) else getattr(obj, attr)
                    if callable(member):
                        found.append((f"{module.__name__}.{name}.{attr}", member))
    return found


# __all__


def test_dunder_all_is_sorted() -> None:
    assert flowkit.__all__ == sorted(flowkit.__all__)


def test_dunder_all_has_no_duplicates() -> None:
    assert len(set(flowkit.__all__)) == len(flowkit.__all__)


def test_dunder_all_lists_exactly_the_explicit_reexports() -> None:
    assert set(flowkit.__all__) == reexports()


def test_every_name_in_dunder_all_exists() -> None:
    assert [name for name in flowkit.__all__ if not hasattr(flowkit, name)] == []
    assert sorted(flowkit._WHERE) == flowkit.__all__  # each imported on use: no more


def test_public_names_outside_dunder_all_are_only_submodules() -> None:
    # Importing a submodule binds it on the package; those are not exports. flowkit ships a
    # pytest plugin, so pytest rewrites its modules, adding names like "@py_builtins".
    public = {name for name in dir(flowkit) if name.isidentifier() and not name.startswith("_")}
    others = {name: getattr(flowkit, name) for name in public - set(flowkit.__all__)}
    assert {
        name: value
        for name, value in others.items()
        if not (isinstance(value, types.ModuleType) and value.__name__ == f"flowkit.{name}")
    } == {}


def test_star_import_gives_the_dunder_all_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from flowkit import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(flowkit.__all__)


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("task", "flowkit.tasks"),
        ("Task", "flowkit.tasks"),
        ("flow", "flowkit.flows"),
        ("Flow", "flowkit.flows"),
        ("State", "flowkit.states"),
        ("tags", "flowkit.context"),
        ("get_run_logger", "flowkit.logging"),
        ("TaskFuture", "flowkit.futures"),
    ],
)
def test_top_level_names_are_those_of_their_public_module(name: str, module: str) -> None:
    assert getattr(flowkit, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'flowkit' has no attribute 'flwo'"):
        flowkit.flwo  # type: ignore[attr-defined]  # noqa: B018


def _modules_after(code: str) -> set[str]:
    listed = run_python(
        f"{code}\nimport sys\nprint(*sorted(m for m in sys.modules if m.startswith('flowkit')))"
    )
    assert listed.returncode == 0, listed.stderr
    return set(listed.stdout.split())


def test_importing_flowkit_imports_what_is_used_when_it_is_used() -> None:
    assert _modules_after("import flowkit") == {"flowkit"}
    # A process-pool worker: the engine's core, without the console, store or limits.
    worker = _modules_after("import flowkit._engine.execution.processes")
    assert not {"flowkit.logging", "flowkit.store", "flowkit.concurrency"} & worker
    # Whoever makes runs gets the console, the run store and the store's limits.
    for code in ("from flowkit import flow", "from flowkit import task"):
        made = _modules_after(code)
        assert {"flowkit.logging", "flowkit.store", "flowkit.concurrency._store"} <= made


def test_prefect_future_is_task_future() -> None:
    assert flowkit.PrefectFuture is flowkit.TaskFuture


def test_runtime_is_exported_as_the_runtime_package() -> None:
    assert flowkit.runtime is importlib.import_module("flowkit.runtime")
    assert flowkit.runtime.__all__ == ["abandoned_threads", "flow_run", "task_run"]


LIMIT_NAMES = ["TAG_PREFIX", "LeaseRecord", "LimitInfo", "LimitRecord", "define", "delete",
               "inspect", "local", "ls", "reset"]  # fmt: skip


@pytest.mark.parametrize("name", LIMIT_NAMES)
def test_concurrency_exports_the_limit_definitions(name: str) -> None:
    limits = importlib.import_module("flowkit.concurrency._limits")
    assert name in flowkit.concurrency.__all__
    assert getattr(flowkit.concurrency, name) is getattr(limits, name)


def test_concurrency_is_the_one_root_of_limits() -> None:
    # Pre-1.0, one feature has one public module: no ``limits`` module beside it as an alias.
    assert "limits" not in {m.name for m in pkgutil.iter_modules(flowkit.__path__)}
    assert "limits" not in flowkit.__all__


def test_an_unknown_concurrency_name_is_an_attribute_error() -> None:
    match = "module 'flowkit.concurrency' has no attribute 'defin'"
    with pytest.raises(AttributeError, match=match):
        flowkit.concurrency.defin  # type: ignore[attr-defined]  # noqa: B018


def test_limit_definitions_are_imported_when_first_used() -> None:
    # Every run imports the package for its store's limits; defining one costs ~1.6 ms more.
    made = _modules_after("from flowkit import flow")
    assert "flowkit.concurrency._limits" not in made
    used = _modules_after("import flowkit.concurrency as c\nc.local('x', limit=1)")
    assert "flowkit.concurrency._limits" in used


# Docstrings


TOP_LEVEL = public_callables(flowkit)


@pytest.mark.parametrize(("name", "obj"), TOP_LEVEL, ids=[name for name, _ in TOP_LEVEL])
def test_top_level_export_has_a_docstring(name: str, obj: Any) -> None:
    assert inspect.getdoc(obj), f"{name} has no docstring"


def test_public_module_callables_have_docstrings() -> None:
    undocumented = [
        name
        for module in PUBLIC_MODULES
        for name, obj in public_callables(importlib.import_module(module))
        if not inspect.getdoc(obj)
    ]
    assert undocumented == []


@pytest.mark.parametrize("module", ["flowkit", *PUBLIC_MODULES])
def test_public_module_has_a_docstring_and_dunder_all(module: str) -> None:
    imported = importlib.import_module(module)
    assert inspect.getdoc(imported)
    assert isinstance(imported.__all__, list)


def test_decorators_document_what_they_raise() -> None:
    for obj in (flowkit.task, flowkit.flow, flowkit.get_run_logger, flowkit.tags):
        assert "Raises:" in (inspect.getdoc(obj) or ""), obj


# No side effects at import


def test_import_starts_no_threads() -> None:
    result = run_python("import threading, flowkit; print(threading.active_count())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_import_sets_up_no_logging() -> None:
    code = (
        "import logging, flowkit\n"
        "fk = logging.getLogger('flowkit')\n"
        "print(fk.handlers, fk.level, logging.getLogger().handlers, logging.getLogger().level)"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "0", "[]", "30"]  # NOTSET, and the default WARNING


def test_import_prints_nothing() -> None:
    result = run_python("import flowkit")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_import_creates_no_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-c", "import flowkit"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "FLOWKIT_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_import_loads_no_event_loop_library() -> None:
    # asyncio costs ~20 ms to import and trio ~100: a program pays for the one it runs.
    code = "import sys, flowkit; print(sorted({'asyncio', 'trio', 'uvloop'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# The public API


def test_dunder_all_matches_the_exports() -> None:
    exported = {
        name for name in dir(flowkit)
        # pytest rewrites the modules of a package with a plugin: "@py_builtins" and such;
        # submodules that are not exports appear as attributes once imported.
        if name.isidentifier() and not name.startswith("_") and name not in {"annotations",
        "cache_policies", "cli", "context", "demo", "exceptions", "flows", "futures", "logging",
        "states", "tasks", "client", "filesystems", "serializers", "testing", "utilities",
        "artifacts", "ui", "bench", "transactions"}
    }  # fmt: skip
    assert sorted(flowkit.__all__) == flowkit.__all__
    assert set(flowkit.__all__) == exported
