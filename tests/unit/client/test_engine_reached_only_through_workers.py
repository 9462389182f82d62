"""The client reaches the engine only through the workers' steps, never by name.

import-linter (pyproject.toml) forbids every import chain from ``client`` to ``transfer`` but
those through ``workers``, which embedded mode runs in-process by design. What it cannot see is
a name the client takes from ``workers`` that ``workers`` merely re-exports (``Progress`` from
``transfer.progress``): the client would name an engine type while the graph shows only
client -> workers. This test closes that gap: every name the client imports from ``workers``
must be defined there (a def, a class or an assignment, or imported from another workers
module), not bound by an import from outside ``workers``.
"""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _layer(module: str) -> str:
    """The layer a module belongs to: ``stagegate.workers.egress`` -> ``workers``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "stagegate" and len(parts) > 1 else parts[0]


def _imports_from_workers(path: Path) -> list[tuple[str, str, int]]:
    """``(module, name, line)`` for every ``from workers... import name`` in ``path``, at any depth
    (inside functions and ``if TYPE_CHECKING:`` blocks too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and _layer(node.module or "") == "workers":
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def _bound_by_import(module: str) -> dict[str, str]:
    """Top-level names ``module`` binds by importing them from outside ``workers`` -> where from."""
    path = ROOT.joinpath(*module.split("."))
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    bound: dict[str, str] = {}
    for node in ast.parse(source.read_text(), str(source)).body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                bound[alias.asname or alias.name] = node.module or "."
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = alias.name
    return {name: origin for name, origin in bound.items() if _layer(origin) != "workers"}


def re_exports_used_by(client_dir: Path) -> list[str]:
    problems = []
    for path in sorted(client_dir.rglob("*.py")):
        for module, name, line in _imports_from_workers(path):
            origin = _bound_by_import(module).get(name)
            if origin is not None:
                problems.append(
                    f"{path.relative_to(client_dir.parent)}:{line} takes {name} from {module}, "
                    f"which only re-exports it from {origin}"
                )
    return problems


def test_the_client_takes_from_workers_only_what_workers_defines() -> None:
    assert re_exports_used_by(ROOT / "client") == []


def test_a_re_export_taken_through_workers_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: a client module taking the engine's Durability via workers."""
    client = tmp_path / "client"
    client.mkdir()
    (client / "leaky.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from stagegate.workers.staging import StagingOptions\n"
        "def f():\n"
        "    from stagegate.workers.node_steps import SourceObject\n"
    )
    assert re_exports_used_by(client) == [
        "client/leaky.py:5 takes SourceObject from stagegate.workers.node_steps, which only re-exports it "
        "from stagegate.transfer"
    ]


@pytest.mark.parametrize("module", ["stagegate.workers.staging", "stagegate.workers.egress"])
def test_the_steps_the_client_calls_re_export_nothing_of_the_engine(module: str) -> None:
    """``__all__`` of the modules the client calls lists only their own names."""
    exported = set(importlib.import_module(module).__all__)
    assert exported & set(_bound_by_import(module)) == set()
