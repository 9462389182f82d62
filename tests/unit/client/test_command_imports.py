"""Each ``stagegate`` subcommand is imported only when it runs; ``--help`` and the commands that
talk to the service load none of the ledger's SQL, the engine or the policy's YAML."""

import subprocess
import sys

import click
import pytest

from stagegate.client.cli import COMMANDS, cli

# What a command that needs none of them must not pay for at start-up.
HEAVY = ("sqlalchemy", "alembic", "yaml", "boto3", "cryptography", "fastapi", "celery", "stagegate.transfer")


def _loaded_after(args: list[str]) -> set[str]:
    code = (
        "import sys\nfrom stagegate.client.cli import cli\n"
        f"try:\n    cli.main({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_every_command_is_where_the_table_says() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name, f"{COMMANDS[name]} is the command {command.name!r}, not {name!r}"


def test_help_lists_every_command_and_loads_nothing_heavy() -> None:
    loaded = _loaded_after(["--help"])
    assert _heavy(loaded) == []
    assert {m for m in loaded if m.startswith("stagegate.client.")} >= {
        module.partition(":")[0] for module in COMMANDS.values()
    }, "--help reads every command's help"


@pytest.mark.parametrize("command", ["status", "stage", "egress", "audit", "release"])
def test_a_command_s_help_loads_nothing_heavy(command: str) -> None:
    loaded = _loaded_after([command, "--help"])
    assert _heavy(loaded) == []
    assert "stagegate.client.token_commands" not in loaded, "only the command run is imported"


def test_the_check_above_can_fail() -> None:
    # Running a command that reads the ledger does load SQLAlchemy.
    assert "sqlalchemy" in _loaded_after(["audit", "head", "--local"])
