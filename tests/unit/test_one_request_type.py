"""One request type from client to worker: the client builds the kernel's ``EgressRequest`` and
``StagingRequest``, the API validates into them, the ledger stores them, the workers run them,
and no layer defines a class of those names of its own (a second definition is how one
request came to change shape four times on its way)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("client", "api", "ledger", "workers")
REQUESTS = {"EgressRequest", "StagingRequest"}
# Where each layer handles the request: it must name the kernel's type there.
USERS = {
    "EgressRequest": [
        "client/egress_command.py",
        "client/service_client.py",
        "api/routes/egress.py",
        "ledger/egresses.py",
        "workers/egress.py",
    ],
    "StagingRequest": [
        "client/stage_command.py",
        "client/service_client.py",
        "api/routes/stagings.py",
        "ledger/staging_requests.py",
        "workers/staging.py",
    ],
}


def classes_named(root: Path, names: set[str]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.name in names:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} class {node.name}")
    return found


def kernel_imports(path: Path) -> set[str]:
    """The names ``path`` imports from ``stagegate.requests`` (at any depth)."""
    return {
        alias.name
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and node.module == "stagegate.requests"
        for alias in node.names
    }


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_defines_its_own_request_class(layer: str) -> None:
    assert classes_named(ROOT / layer, REQUESTS) == []


@pytest.mark.parametrize(("name", "module"), [(n, m) for n, ms in USERS.items() for m in ms])
def test_every_layer_on_the_request_path_uses_the_kernels_type(name: str, module: str) -> None:
    assert name in kernel_imports(ROOT / module)


def test_the_check_finds_a_layer_of_its_own(tmp_path: Path) -> None:
    layer = tmp_path / "workers"
    layer.mkdir()
    (layer / "mine.py").write_text(
        "from dataclasses import dataclass\n@dataclass\nclass EgressRequest:\n    x: int\n"
    )
    assert classes_named(layer, REQUESTS) == ["workers/mine.py:3 class EgressRequest"]
    assert kernel_imports(layer / "mine.py") == set()


def test_the_ledger_returns_the_type_the_api_submits() -> None:
    from stagegate.ledger.egresses import Egresses
    from stagegate.requests import EgressRequest

    assert Egresses.params.__annotations__["return"] is EgressRequest
    assert Egresses.submit.__annotations__["request"] is EgressRequest
