"""The ledger hands out named, frozen read models: no public method of a ledger store returns
an ORM row, an SQLAlchemy ``Row`` or mapping, or an anonymous tuple of column values."""

import dataclasses
import datetime
import importlib
import inspect
import pkgutil
import types
import typing

import pytest
from sqlalchemy.engine import Row, RowMapping

import stagegate.ledger
from stagegate.ledger.models import Base

SCALARS = (str, int, float, bool, bytes, datetime.datetime, type(None))
# Left as they are, each for a reason given here (not a way around the rule):
ALLOWED = {
    # SEQ:HASH, the pair an auditor copies out of band; its own format, not a row.
    "stagegate.ledger.audit.AuditTrail.head",
    # Undecoded rows on purpose: the tamper walks must see a row even when it no longer decodes.
    "stagegate.ledger.audit.AuditTrail.rows",
    # Pure tree arithmetic: (level, index) coordinates of subtrees, not columns of a table.
    "stagegate.ledger.merkle.CompactRange.subtrees_of",
}


def _problem(hint: object) -> str | None:
    """Why ``hint`` is a raw row, or None."""
    origin = typing.get_origin(hint)
    if inspect.isclass(hint) and issubclass(hint, Base):
        return f"the ORM row {hint.__name__}"
    if hint in (Row, RowMapping) or origin in (Row, RowMapping):
        return "an SQLAlchemy row"
    if origin is tuple:
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if items and all(a in SCALARS for a in items):
            return f"an anonymous tuple {hint}"
    if origin in (typing.Union, types.UnionType, list, tuple, dict) or (
        origin is not None and inspect.isclass(origin) and issubclass(origin, typing.Iterable)  # type: ignore[arg-type]
    ):
        inner = [p for a in typing.get_args(hint) if (p := _problem(a))]
        return inner[0] if inner else None
    return None


def _stores() -> list[tuple[str, type]]:
    found = []
    for info in pkgutil.iter_modules(stagegate.ledger.__path__):
        if info.name in ("models", "migrations"):  # the tables themselves, and Alembic's scripts
            continue
        module = importlib.import_module(f"stagegate.ledger.{info.name}")
        for name, cls in vars(module).items():
            ours = inspect.isclass(cls) and cls.__module__ == module.__name__
            # Stores, not the tables, the read models themselves or the errors.
            if ours and not (issubclass(cls, Base | BaseException) or dataclasses.is_dataclass(cls)):
                found.append((f"{module.__name__}.{name}", cls))
    return found


def test_the_ledger_has_stores_to_check() -> None:
    names = {name.rsplit(".", 1)[1] for name, _ in _stores()}
    assert {"StagingRequests", "StagingSteps", "StagingViews", "Nodes", "CacheIntegrity", "Jobs"} <= names


@pytest.mark.parametrize(("name", "cls"), _stores(), ids=[n for n, _ in _stores()])
def test_no_public_method_returns_a_raw_row(name: str, cls: type) -> None:
    wrong = []
    for method_name, method in inspect.getmembers(cls, inspect.isfunction):
        if method_name.startswith("_") or f"{name}.{method_name}" in ALLOWED:
            continue
        hint = typing.get_type_hints(method).get("return")
        if (why := _problem(hint)) is not None:
            wrong.append(f"{method_name} returns {why}")
    assert not wrong, wrong
