"""``stagegate ls SOURCE`` and ``stagegate du SOURCE``: what a source holds, the label each
object would get, and what the policy would say about staging it; nothing moves.

Both read the source here, with your own credentials, planning it as ``stage`` does (the
listing streamed to a spill file, so a source of millions of objects is never held in memory).
With a server (``--server`` or $STAGEGATE_URL) they refuse rather than answer for the wrong
side: the service does not survey sources yet, and a local listing is not what its workers,
confined to your source roots, would see; ``--local`` asks for the local answer explicitly.
"""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stagegate.client import context
from stagegate.client.errors import errors_as_json
from stagegate.client.progress_bar import ProgressBar
from stagegate.client.progress_output import summary_line
from stagegate.client.read_from import where_from
from stagegate.client.service_render import table
from stagegate.client.stage_command import policy_option
from stagegate.sizes import format_bytes
from stagegate.urls import refuse_credentials

# Listing a source needs the engine's sources and the policy, which `--help` does not.
if TYPE_CHECKING:
    from stagegate.policies import Decision
    from stagegate.workers.discovery import SourceEntry, SourceSurvey, SourceUsage

EPILOG = (
    "Exit codes: 0 listed (whatever the policy says); 1 the source could not be read; 2 bad usage or input."
)


def _here_only(server: str | None, local: bool) -> None:
    if server and not local:
        raise click.UsageError(
            f"the service at {server} does not survey sources yet, and a listing made here is not what "
            "its workers would see: pass --local to read SOURCE here with your own credentials"
        )


@contextmanager
def _surveyed(source: str, policy_path: Path | None, as_json: bool) -> Iterator["SourceSurvey"]:
    """The source planned, with the listing's progress on stderr when it is a terminal."""
    from stagegate.workers.discovery import survey_source

    errors_as_json(as_json)
    refuse_credentials(source, "SOURCE")
    bar = ProgressBar() if sys.stderr.isatty() else None
    try:
        with survey_source(context.load_policy(policy_path), source, bar.listed if bar else None) as survey:
            if bar is not None:
                bar.finish()
            yield survey
    finally:
        if bar is not None:
            bar.finish()


def _verdict_lines(decision: "Decision") -> list[str]:
    verdict = "allowed" if decision.allowed else "DENIED"
    lines = [
        f"staging: {verdict} by policy {decision.policy_version[:12]} (accepts at most {decision.max_level})"
    ]
    lines += [f"  {reason}" for reason in decision.reasons]
    if decision.reasons_truncated:
        lines.append(f"  ... and {decision.offending_count - len(decision.reasons)} more")
    return lines


def _entry_line(e: "SourceEntry") -> str:
    verdict = "ok" if e.allowed else "DENIED"
    return f"{e.label:<14} {verdict:<6} {format_bytes(e.size):>10}  {e.key}  ({e.origin})"


@click.command("ls", epilog=EPILOG)
@click.argument("source")
@click.option("--limit", type=click.IntRange(1), default=None, help="Show at most N objects (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line: each entry, then the summary.")
@policy_option
@where_from
def ls(
    source: str, limit: int | None, as_json: bool, policy_path: Path | None, server: str | None, local: bool
) -> None:
    """List the objects a staging of SOURCE would copy, each with its size, the label it would
    get (its own tag or xattr, else the nearest .classification, shown in parentheses), and
    whether the policy lets it be staged; then the policy's word on the whole.

    Label files are not listed (they label their directory; they are not staged). The listing
    is streamed: every object is read to resolve labels, then at most --limit are printed.
    """
    _here_only(server, local)
    shown = 0
    with _surveyed(source, policy_path, as_json) as survey:
        for entry in survey.entries():
            if limit is not None and shown >= limit:
                break
            shown += 1
            click.echo(json.dumps({"event": "entry", **entry.to_json()}) if as_json else _entry_line(entry))
        plan, decision = survey.plan, survey.decision
        if as_json:
            click.echo(
                summary_line(
                    {
                        "source": source,
                        "files": plan.files,
                        "bytes": plan.bytes,
                        "shown": shown,
                        "decision": decision.to_dict(),
                    }
                )
            )
            return
        more = f" (showing {shown}; --limit)" if shown < plan.files else ""
        click.echo(f"{plan.files} objects, {format_bytes(plan.bytes)}{more}")
        for line in _verdict_lines(decision):
            click.echo(line)


def _usage_lines(usage: "SourceUsage") -> list[str]:
    lines = [f"{usage.total.files} objects, {format_bytes(usage.total.bytes)} in {usage.source}"]
    rows = [[label, str(t.files), format_bytes(t.bytes)] for label, t in sorted(usage.by_label.items())]
    lines += table(["LABEL", "OBJECTS", "BYTES"], rows, indent="  ")
    rows = [
        [prefix or "(top level)", str(t.files), format_bytes(t.bytes)]
        for prefix, t in usage.by_prefix.items()
    ]
    lines += table(["PREFIX", "OBJECTS", "BYTES"], rows, indent="  ")
    return lines + _verdict_lines(usage.decision)


@click.command("du", epilog=EPILOG)
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as one JSON object.")
@policy_option
@where_from
def du(source: str, as_json: bool, policy_path: Path | None, server: str | None, local: bool) -> None:
    """Summarise SOURCE as a staging would take it: objects and bytes in all, per label, and
    per top-level prefix (like `rclone size` and `du -s`), and whether the policy lets it be
    staged, and why not."""
    _here_only(server, local)
    with _surveyed(source, policy_path, as_json) as survey:
        usage = survey.usage()
    if as_json:
        click.echo(summary_line(usage.to_json()))
        return
    for line in _usage_lines(usage):
        click.echo(line)
