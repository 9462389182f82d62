"""``stagegate list``: my stagings, from the service when a server is set (``GET /v1/stagings``;
an auditor's or admin's token lists everyone's), else (or with ``--local``) the stagings this
user ran here with ``stage --to``."""

import json
from datetime import UTC, datetime

import click

from stagegate.client import context
from stagegate.client.read_from import service_or_local, where_from
from stagegate.client.service_models import Staging
from stagegate.client.service_render import format_age, table
from stagegate.durations import format_duration_short
from stagegate.states import StagingState


def _age(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else format_age((now - moment).total_seconds()).removesuffix(" ago")


def _pin(s: Staging, now: datetime) -> str:
    if s.pin is None or s.pin.expires_at is None or (s.terminal and s.state != StagingState.READY):
        return "-"
    left = (s.pin.expires_at - now).total_seconds()
    return f"{format_duration_short(left)} left" if left > 0 else "due"


def service_rows(stagings: list[Staging], now: datetime, everyone: bool) -> list[str]:
    """The table of ``stagegate list`` (pure: ``now`` is given)."""
    headers = ["ID", "STATE", "SOURCE", "NODES", "AGE", "PIN", *(["USER"] if everyone else [])]
    rows = [
        [
            s.id,
            s.state,
            s.source,
            ",".join(n.node for n in s.nodes) or "-",
            _age(s.created_at, now),
            _pin(s, now),
            *([s.user] if everyone else []),
        ]
        for s in stagings
    ]
    return table(headers, rows)


@click.command("list")
@click.option(
    "--state",
    type=click.Choice([str(s) for s in StagingState]),
    default=None,
    help="Only stagings in this state.",
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help='Print {"stagings": [...]} as the service sends them.')
@where_from
def list_stagings(state: str | None, limit: int, as_json: bool, server: str | None, local: bool) -> None:
    """List your stagings, newest first: id, state, source, nodes, age, and how long the pin
    lease has left.

    With a server set (--server or $STAGEGATE_URL and a token in $STAGEGATE_TOKEN) the service
    answers: your stagings (an auditor's or admin's token: everyone's, with a USER column).
    Else, or with --local, the stagings you ran on this machine with `stage --to`.
    """
    client = service_or_local(server, local)
    now = datetime.now(UTC)
    if client is not None:
        with client:
            found = client.stagings(state=state, limit=limit)
        if as_json:
            click.echo(json.dumps({"stagings": [s.to_json() for s in found]}))
        elif not found:
            click.echo("no stagings")
        else:
            everyone = len({s.user for s in found}) > 1
            click.echo("\n".join(service_rows(found, now, everyone)))
        return
    from stagegate.ledger import Jobs

    with context.ledger(sign_when_due=False) as ledger:
        jobs = Jobs(ledger).embedded_stagings(context.local_requester().actor, limit, state)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "stagings": [
                        {
                            "id": j.id,
                            "state": j.state,
                            "source": j.source,
                            "destination": j.destination,
                            "files": j.files,
                            "bytes": j.bytes,
                            "created_at": j.created_at.isoformat(),
                        }
                        for j in jobs
                    ]
                }
            )
        )
    elif not jobs:
        click.echo("no stagings here (with a server set, `stagegate list` asks the service)")
    else:
        rows = [[j.id, j.state, j.source, j.destination, _age(j.created_at, now)] for j in jobs]
        click.echo("\n".join(table(["ID", "STATE", "SOURCE", "DIR", "AGE"], rows)))
