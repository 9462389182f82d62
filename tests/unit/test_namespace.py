"""Everything installs under ``stagegate.``: no top-level ``api``, ``client`` or ``transfer`` lands in
a training image's site-packages, and no module in the repository imports a layer by its bare name
(inside the repository both names would resolve, giving two copies of every class)."""

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("transfer", "checkpoints", "policies", "ledger", "workers", "api", "client")


def _sources() -> list[Path]:
    # Each layer once, through its own folder (stagegate/<layer> are links to the same files).
    folders = [ROOT / folder for folder in (*LAYERS, "tests", "bench")]
    return [p for folder in folders for p in folder.rglob("*.py")] + list((ROOT / "stagegate").glob("*.py"))


def _bare_layer_imports(path: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        where = f"{path.relative_to(root)}:{node.lineno}"
        bad += [f"{where} imports {name}" for name in names if name.split(".")[0] in LAYERS]
    return bad


def test_every_layer_is_linked_into_the_namespace() -> None:
    for layer in LAYERS:
        link = ROOT / "stagegate" / layer
        assert link.is_symlink() and link.resolve() == ROOT / layer, layer


def test_no_module_imports_a_layer_by_its_bare_name() -> None:
    problems = [line for path in _sources() for line in _bare_layer_imports(path)]
    assert problems == []


def test_the_bare_name_check_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "leaky.py"
    module.write_text(
        "import os\nfrom stagegate.transfer import engine\ndef f():\n    from ledger import audit\n"
    )
    assert _bare_layer_imports(module, tmp_path) == ["leaky.py:4 imports ledger"]


def test_the_kernel_contract_lists_every_kernel_module() -> None:
    """import-linter's kernel contract names the kernel's modules one by one (a contract on
    ``stagegate`` would include the layers); it must name all of them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (kernel,) = [c for c in config if c["name"] == "the shared kernel imports no layer"]
    on_disk = {f"stagegate.{p.stem}" for p in (ROOT / "stagegate").glob("*.py") if p.stem != "__init__"}
    assert set(kernel["source_modules"]) == on_disk


@pytest.mark.integration
def test_the_wheel_holds_only_the_stagegate_namespace(tmp_path: Path) -> None:
    # Built from a copy (links kept as links): a build in the checkout would leave build/ there.
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".data", ".runs"
    )
    shutil.copytree(ROOT, tree, symlinks=True, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(tree)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("stagegate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"stagegate"}
    for expected in (
        "stagegate/transfer/engine.py",
        "stagegate/transfer/sources/s3.py",
        "stagegate/client/cli.py",
        "stagegate/ledger/migrations/script.py.mako",
        "stagegate/policies/default_policy.yaml",
        "stagegate/py.typed",
    ):
        assert expected in names, expected
