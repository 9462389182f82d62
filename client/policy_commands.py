"""``stagegate policy``: what the classification policy says, without moving anything."""

import json
from pathlib import Path

import click

from stagegate.client import context
from stagegate.client.errors import EXIT_DENIED
from stagegate.client.filter_options import filter_options
from stagegate.client.stage_command import policy_option
from stagegate.key_filters import KeyFilter
from stagegate.urls import refuse_credentials


@click.group()
def policy() -> None:
    """Inspect the classification policy."""


@policy.command()
@click.argument("source")
@filter_options
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def check(
    source: str, include: tuple[str, ...], exclude: tuple[str, ...], policy_path: Path | None, as_json: bool
) -> None:
    """Show whether SOURCE (the files --include/--exclude take, as `stagegate stage` would) may be
    staged, and why, naming the label files consulted; exit 0 if allowed, 3 if denied."""
    from stagegate.workers.staging import check_policy  # the engine's planning: only when checking

    refuse_credentials(source, "SOURCE")
    key_filter = KeyFilter.of(include, exclude)  # a bad pattern: exit 2, naming it
    chosen = context.load_policy(policy_path)
    plan, decision = check_policy(chosen, source, key_filter)
    if as_json:
        click.echo(json.dumps({**decision.to_dict(), "files": plan.files, "bytes": plan.bytes}))
    else:
        verdict = "allowed" if decision.allowed else "DENIED"
        click.echo(f"{verdict}: {plan.files} files from {source} for {decision.zone.describe()}")
        click.echo(f"  policy {decision.policy_version} accepts at most {decision.max_level}")
        if decision.highest_label:
            click.echo(f"  highest label in the dataset: {decision.highest_label}")
        for reason in decision.reasons:
            click.echo(f"  {reason}")
        if decision.reasons_truncated:
            click.echo(f"  ... and {decision.offending_count - len(decision.reasons)} more")
        for line in decision.consulted:
            click.echo(f"  {line}")
    if not decision.allowed:
        raise click.exceptions.Exit(EXIT_DENIED)
