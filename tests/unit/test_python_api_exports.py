"""``import stagegate`` offers the Python API without loading a layer until it is used, and
offers exactly what ``stagegate.client.python_api`` gathers."""

import subprocess
import sys
from pathlib import Path

import pytest

import stagegate
from stagegate.client import python_api

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("transfer", "checkpoints", "policies", "ledger", "workers", "api", "client")
KERNEL = sorted(p.stem for p in (ROOT / "stagegate").glob("*.py") if p.stem != "__init__")


def _loaded_after(statements: str) -> list[str]:
    code = (
        f"import sys\n{statements}\n"
        f"print('\\n'.join(m for m in sys.modules if m.split('.')[:2][-1] in {LAYERS!r} "
        "and m.startswith('stagegate.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_the_package_and_its_kernel_loads_no_layer() -> None:
    imports = "import stagegate\n" + "\n".join(f"import stagegate.{m}" for m in KERNEL)
    assert _loaded_after(imports) == []


def test_the_first_use_of_the_api_loads_the_client() -> None:
    # The check above can fail: touching an API name does load a layer.
    assert "stagegate.client.python_api" in _loaded_after("import stagegate\nstagegate.stage")


def test_the_lazy_names_are_those_the_client_gathers() -> None:
    kernel_names = {"ExistsError", "InvalidInputError", "NotFoundError", "Progress", "ProgressCallback"}
    kernel_names |= {"StagegateError", "TooLargeError", "__version__"}
    assert set(stagegate.__all__) - kernel_names == set(python_api.__all__)
    for name in python_api.__all__:
        assert getattr(stagegate, name) is getattr(python_api, name), name
    assert set(python_api.__all__) <= set(dir(stagegate))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'stag'"):
        stagegate.stag  # type: ignore[attr-defined]  # noqa: B018


def test_the_package_says_it_is_typed() -> None:
    assert (ROOT / "stagegate" / "py.typed").is_file()
