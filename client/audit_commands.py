"""``stagegate audit``: the auditor's commands over the hash-chained trail."""

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click

from stagegate.client import context
from stagegate.client.checkpoint_commands import checkpoint, key, prove, verify_checkpoints, verify_proof
from stagegate.client.errors import EXIT_TAMPERED
from stagegate.client.read_from import service_or_local, where_from
from stagegate.ledger import AuditEvent
from stagegate.ledger.chain import format_head, parse_head
from stagegate.ledger.export import write_events

# AuditTrail (the ledger's tables and SQLAlchemy) is imported by the commands that read the
# ledger itself, not by `--help` or those answered by the service.

# What one request to the service returns at most (the API's cap on GET /v1/audit).
SERVICE_EVENT_LIMIT = 10_000


class WhenParam(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """An ISO-8601 date or time; without a zone it is UTC."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"not a date or time: {value!r} (try 2026-11-01 or 2026-11-01T12:00:00Z)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


WHEN = WhenParam()


def filters(f: Any) -> Any:
    f = click.option("--until", type=WHEN, default=None, help="Only events before this time.")(f)
    f = click.option("--since", type=WHEN, default=None, help="Only events at or after this time (UTC).")(f)
    f = click.option("--job", default=None, help="A job id or job reference.")(f)
    f = click.option("--action", default=None, help="e.g. stage.requested, policy.denied, stage.completed.")(
        f
    )
    return click.option("--actor", default=None, help="Who acted (a user name).")(f)


@click.group()
def audit() -> None:
    """Query, export and verify the tamper-evident audit trail."""


@audit.command()
@filters
@where_from
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def query(as_json: bool, server: str | None, local: bool, **where: Any) -> None:
    """Events matching the filters, oldest first: the service's when a server is set, else the
    local ledger's."""
    for event in _events(server, local, where):
        click.echo(json.dumps(event.to_json()) if as_json else _line(event))


def _events(server: str | None, local: bool, where: dict[str, Any]) -> Iterator[AuditEvent]:
    client = service_or_local(server, local)
    if client is None:
        from stagegate.ledger import AuditTrail

        with context.ledger() as ledger:
            yield from AuditTrail(ledger).events(**where)
        return
    with client:
        events = client.audit(**where, limit=SERVICE_EVENT_LIMIT)
    yield from events
    if len(events) == SERVICE_EVENT_LIMIT:
        click.echo(
            f"stagegate: the service returns at most {SERVICE_EVENT_LIMIT:,} events at once; these are "
            "the oldest: narrow the query with --since/--until for the rest",
            err=True,
        )


def _line(e: AuditEvent) -> str:
    what = f"{e.source} -> {e.destination}" if e.destination else e.source
    size = f" {e.files} files {e.bytes} B" if e.files or e.bytes else ""
    decision = f" {e.decision}" if e.decision else ""
    reasons = "".join(f"\n      {r}" for r in e.reasons)
    job = e.job_ref or (e.job_id or "")[:8]
    when = f"{e.time:%Y-%m-%dT%H:%M:%SZ}"
    return f"{e.seq:>6} {when} {e.actor} {e.action}{decision} job={job} {what}{size}{reasons}"


@audit.command()
@click.option(
    "--head",
    "anchor",
    default=None,
    metavar="SEQ:HASH",
    help="A head exported earlier (`stagegate audit head`): also catches rows cut off the end.",
)
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A signed checkpoint kept earlier (`stagegate audit checkpoint`): proves the trail is an "
    "append-only extension of it. Repeatable; a file of several is checked against each.",
)
@click.option(
    "--public-key",
    "key_values",
    multiple=True,
    help="The key to check checkpoint signatures with (NAME+ID+BASE64 or a file of them); "
    "default: the keys the ledger keeps.",
)
@where_from
def verify(
    anchor: str | None,
    checkpoint_files: tuple[str, ...],
    key_values: tuple[str, ...],
    server: str | None,
    local: bool,
) -> None:
    """Walk the whole chain; exit 0 if intact, 4 naming the first bad row if not. With a server,
    the service walks its own ledger (and checks --head) and says what it found; --checkpoint is
    checked against the ledger itself (--local, where the database is reachable)."""
    client = service_or_local(server, local)
    if client is not None and checkpoint_files:
        raise click.UsageError(
            "--checkpoint is checked against the ledger itself: run with --local where the database "
            "is reachable ($STAGEGATE_DATABASE_URL)"
        )
    if checkpoint_files:
        verify_checkpoints(checkpoint_files, key_values)
        if anchor is None:
            return
    elif key_values:
        raise click.UsageError("--public-key checks a --checkpoint: give one")
    expected = parse_head(anchor) if anchor else None
    if client is not None:
        with client:
            answer = client.verify_audit(expected)
        if answer["ok"]:
            click.echo(f"intact: {answer.get('checked')} events (walked by the service at {client.base_url})")
            return
        where = f"reported by the service at {client.base_url}"
        click.echo(f"TAMPERED: {answer.get('problem')} ({where})", err=True)
        raise click.exceptions.Exit(EXIT_TAMPERED)
    from stagegate.ledger import AuditTrail

    with context.ledger() as ledger:
        verdict = AuditTrail(ledger).verify(expected_head=expected)
    if verdict.intact:
        click.echo(f"intact: {verdict.checked} events")
        return
    click.echo(
        f"TAMPERED: {verdict.problem} at seq {verdict.first_bad_seq}"
        + (f" ({verdict.detail})" if verdict.detail else "")
        + f"; {verdict.checked} events before it are intact",
        err=True,
    )
    raise click.exceptions.Exit(EXIT_TAMPERED)


@audit.command()
@filters
@where_from
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def export(fmt: str, server: str | None, local: bool, **where: Any) -> None:
    """Write the matching events to stdout, with their hashes, for archiving."""
    write_events(fmt, _events(server, local, where), sys.stdout)  # type: ignore[arg-type]


@audit.command()
@where_from
def head(server: str | None, local: bool) -> None:
    """Print SEQ:HASH of the newest event, to anchor the chain outside the database: the
    service's when a server is set, else the local ledger's. Check it later with
    `stagegate audit verify --head SEQ:HASH`."""
    client = service_or_local(server, local)
    if client is not None:
        with client:
            newest = client.audit_head()
    else:
        from stagegate.ledger import AuditTrail

        with context.ledger() as ledger:
            newest = AuditTrail(ledger).head()
    click.echo(format_head(newest))


audit.add_command(checkpoint)
audit.add_command(prove)
audit.add_command(verify_proof)
audit.add_command(key)
