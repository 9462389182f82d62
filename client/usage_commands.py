"""``stagegate usage``: chargeback figures per user or project (moved from the source and from
peers, reused, egressed, held),
from the service when a server is set, else from the ledger directly."""

import csv
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, cast

import click

from stagegate.client import context
from stagegate.client.audit_commands import WHEN
from stagegate.client.read_from import service_or_local, where_from

if TYPE_CHECKING:  # the usage report's queries run only for a local report
    from stagegate.ledger.usage import UsageRow
from stagegate.sizes import format_bytes

COLUMNS = (
    "period",
    "key",
    "bytes_from_source",
    "bytes_from_peers",
    "bytes_from_cache",
    "bytes_egressed",
    "nvme_gb_hours",
    "stagings",
    "egresses",
)


@click.command("usage")
@click.option("--by", type=click.Choice(["user", "project"]), default="user", show_default=True)
@click.option("--since", type=WHEN, default=None, help="From this time, inclusive (UTC without a zone).")
@click.option("--until", type=WHEN, default=None, help="Before this time (default: now).")
@click.option(
    "--period",
    type=click.Choice(["month", "day", "all"]),
    default="month",
    show_default=True,
    help="One row per user or project per UTC month, per UTC day, or over the whole window.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@where_from
def usage_command(
    by: str,
    since: datetime | None,
    until: datetime | None,
    period: str,
    as_json: bool,
    as_csv: bool,
    server: str | None,
    local: bool,
) -> None:
    """Bytes moved from the source, bytes copied from peer nodes, bytes reused from node caches,
    bytes egressed and NVMe GB-hours per user or project, for chargeback: moving and holding
    are separate columns, and each byte is in one column only.

    Asked of the service when a server is set (--server or $STAGEGATE_URL; an auditor's or
    admin's token), else read from the ledger ($STAGEGATE_DATABASE_URL, else the SQLite file
    under $STAGEGATE_HOME; --local forces that), like `stagegate audit`. Periods are UTC.

    \b
    bytes_from_source  for each staging that completed: the bytes read from its source, summed
                       over the nodes it copied to (a node that already held the data, or was
                       being written by another staging, moved nothing; files linked from
                       another dataset cached on the node neither, nor those copied from a
                       peer); embedded: all of it
    bytes_from_peers   for the same stagings: the bytes a node copied from a peer node that
                       had read them from the source (fan-out), over the cluster's network
    bytes_from_cache   for the same stagings: the bytes of the nodes that reused a cached copy,
                       and those linked from the node's cache: nothing moved for them
    bytes_egressed     the bytes of each egress.completed event, in its period
    nvme_gb_hours      per service staging and node (cache hits too: they hold the space):
                       bytes / 1e9 x hours pinned, from policy.allowed to stage.released (by
                       its owner, or the service when the pin lease ran out) or stage.failed
                       (or the report's end if still held), clipped to [--since, --until) and
                       split at period boundaries; embedded stagings pin nothing
    user/project       the event's actor; the staging's or egress's project, else "(none)"

    Bytes are counted in the period the staging completed.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    client = service_or_local(server, local)
    if client is not None:
        with client:
            rows = client.usage(by, period, since=since, until=until)
    else:
        from stagegate.ledger.usage import By, Period, usage

        with context.ledger() as ledger:
            rows = usage(ledger, by=cast(By, by), since=since, until=until, period=cast(Period, period))
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row.to_json() for row in rows)
    else:
        click.echo(_table(rows, by))


def _table(rows: list["UsageRow"], by: str) -> str:
    if not rows:
        return "no usage in this window"
    header = (
        "PERIOD",
        by.upper(),
        "FROM SOURCE",
        "FROM PEERS",
        "FROM CACHE",
        "EGRESSED",
        "NVME GB-H",
        "STAGINGS",
        "EGRESSES",
    )
    cells = [
        (
            r.period,
            r.key,
            format_bytes(r.bytes_from_source),
            format_bytes(r.bytes_from_peers),
            format_bytes(r.bytes_from_cache),
            format_bytes(r.bytes_egressed),
            f"{r.nvme_gb_hours:.3f}",
            str(r.stagings),
            str(r.egresses),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    # Text columns left-aligned, figures right-aligned.
    lines = []
    for line in [header, *cells]:
        padded = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
