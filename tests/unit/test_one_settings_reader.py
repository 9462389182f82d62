"""Only stagegate/settings.py reads the environment: no other module of ours touches
``os.environ`` or ``os.getenv``, or lets click read a STAGEGATE_ variable behind its back."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("stagegate", "checkpoints", "ledger", "policies", "transfer", "workers", "api", "client")
READER = Path("stagegate/settings.py")


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read the environment: ``os.environ``, ``environ`` imported from os,
    ``getenv``, or a click option's ``envvar=``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for a in node.names if a.name in ("environ", "getenv", "environb")]
        elif isinstance(node, ast.keyword) and node.arg in ("envvar", "auto_envvar_prefix"):
            lines.append(node.value.lineno)
    return lines


def test_no_module_but_the_settings_reads_the_environment() -> None:
    offences = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.relative_to(ROOT) == READER:
                continue
            tree = ast.parse(path.read_text(), str(path))
            offences += [f"{path.relative_to(ROOT)}:{line}" for line in environment_reads(tree)]
    assert offences == []


def test_the_scan_finds_each_way_of_reading() -> None:
    source = """
import os
from os import environ, getenv
a = os.environ.get("STAGEGATE_X")
b = os.getenv("STAGEGATE_Y")
c = click.option("--server", envvar="STAGEGATE_URL")
"""
    assert sorted(environment_reads(ast.parse(source))) == [3, 3, 4, 5, 6]
