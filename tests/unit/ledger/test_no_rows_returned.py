"""The ledger returns dataclasses, never rows: no public method of a ledger class is annotated to
return an ORM row (a ``models.Base`` subclass), alone or inside a container, so a caller can
never hold a live row, lazy-load from a closed session or write through one by accident."""

import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Iterator
from types import ModuleType

import stagegate.ledger
from stagegate.ledger.models import Base

# Module functions that work on rows inside a session the caller already holds: the ledger's
# own building blocks for one transaction (lock a staging's row, build a task row to add).
IN_TRANSACTION = {"stagegate.ledger.staging_steps.lock_staging", "stagegate.ledger.tasks.new_task"}


def rows_in(annotation: object) -> list[type]:
    """The row classes ``annotation`` names, at any depth (``Iterator[Row]``, ``Row | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, Base):
        return [annotation]
    return [row for arg in typing.get_args(annotation) for row in rows_in(arg)]


def ledger_modules() -> Iterator[ModuleType]:
    for info in pkgutil.iter_modules(stagegate.ledger.__path__):
        if info.name != "models" and not info.ispkg:
            yield importlib.import_module(f"stagegate.ledger.{info.name}")


def returned_rows(module: ModuleType) -> list[str]:
    """``where -> row class`` for each public callable of ``module`` that returns a row."""
    found = []
    callables: list[tuple[str, object]] = []
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            callables.append((f"{module.__name__}.{name}", value))
        elif inspect.isclass(value) and not issubclass(value, Base):
            for member, attr in vars(value).items():
                function = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
                if not member.startswith("_") and inspect.isfunction(function):
                    callables.append((f"{module.__name__}.{name}.{member}", function))
    for where, function in callables:
        found += [f"{where} -> {row.__name__}" for row in returned_rows_of(function, module)]
    return found


def returned_rows_of(function: object, module: ModuleType) -> list[type]:
    """The row classes ``function``'s return annotation names. Where it names a type imported
    only for type checking (``alembic.config.Config``), the words of its text are looked up."""
    try:
        return rows_in(typing.get_type_hints(function, vars(module)).get("return"))
    except NameError:
        text = str(inspect.get_annotations(function).get("return", ""))  # type: ignore[arg-type]
        return [row for row in ROW_CLASSES if row.__name__ in re.findall(r"\w+", text)]


ROW_CLASSES = [mapper.class_ for mapper in Base.registry.mappers]


def test_no_ledger_api_returns_a_row() -> None:
    found = [f for module in ledger_modules() for f in returned_rows(module)]
    assert [f for f in found if f.split(" -> ")[0] not in IN_TRANSACTION] == []


def test_a_method_returning_rows_is_caught() -> None:
    """The check itself can fail: a store whose method hands out the rows it read."""
    module = ModuleType("stagegate.ledger.leaky")
    exec(  # a fixed snippet, to give the check something to find
        "from collections.abc import Iterator\n"
        "from stagegate.ledger.models import JobRow\n"
        "class Leaky:\n"
        "    def jobs(self) -> 'Iterator[JobRow]': ...\n"
        "    def one(self) -> 'JobRow | None': ...\n",
        vars(module),
    )
    assert returned_rows(module) == [
        "stagegate.ledger.leaky.Leaky.jobs -> JobRow",
        "stagegate.ledger.leaky.Leaky.one -> JobRow",
    ]
