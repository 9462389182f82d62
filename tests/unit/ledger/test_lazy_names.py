"""``stagegate.ledger`` offers its names without importing the modules that define them until
one is used: ``from stagegate.ledger import AuditEvent`` loads no SQLAlchemy."""

import importlib
import subprocess
import sys

import pytest

import stagegate.ledger as ledger


def _loaded_after(statement: str) -> list[str]:
    shown = "m.startswith(('stagegate.ledger.', 'sqlalchemy'))"
    code = f"import sys\n{statement}\nprint('\\n'.join(m for m in sys.modules if {shown}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return sorted(out.stdout.split())


def test_importing_the_package_loads_none_of_its_modules() -> None:
    assert _loaded_after("import stagegate.ledger") == []


def test_a_name_loads_only_its_module() -> None:
    loaded = _loaded_after("from stagegate.ledger import AuditEvent")
    assert "stagegate.ledger.events" in loaded
    assert not [m for m in loaded if m.startswith("sqlalchemy") or m == "stagegate.ledger.models"]


def test_every_name_is_the_defining_module_s() -> None:
    for name in ledger.__all__:
        module = importlib.import_module(f"stagegate.ledger.{ledger._DEFINED_IN[name]}")
        assert getattr(ledger, name) is getattr(module, name), name
    assert set(ledger.__all__) <= set(ledger._DEFINED_IN)
    assert set(ledger.__all__) <= set(dir(ledger))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        ledger.no_such_name  # type: ignore[attr-defined]  # noqa: B018
