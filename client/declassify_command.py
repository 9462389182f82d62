"""``stagegate declassify``: lower a checkpoint's label, with a reason, as a separate audited act.

A checkpoint's label only rises (its own, its run directory's, its lineage); this records
that one checkpoint may go out at a lower label. The next egress of it uses that label and
cites the record, as long as nothing in the checkpoint changed after the record was made.

With ``--node`` (the service) it needs a token of the role ``steward`` or ``admin``; a
scientist cannot declassify their own checkpoints. Without ``--node`` (embedded mode, one
user's own ledger) the operating-system user may declassify their own checkpoints: there is
no one else to ask on a single machine, and the act is audited all the same (role ``local``).
"""

import json
from pathlib import Path

import click

from stagegate.client import context
from stagegate.client.errors import EXIT_OK
from stagegate.client.service_commands import server_option


@click.command(epilog="Exit codes: 0 recorded; 2 bad usage or input; 3 your role may not declassify.")
@click.argument("checkpoint", metavar="RUN_DIR/CHECKPOINT")
@click.option("--label", required=True, help="The label the checkpoint may go out at, e.g. public.")
@click.option("--reason", required=True, help="Why it may (kept in the audit trail).")
@click.option("--node", default=None, metavar="NAME", help="Service: the node whose worker holds it.")
@server_option
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON on stdout.")
def declassify(
    checkpoint: str, label: str, reason: str, node: str | None, server: str | None, as_json: bool
) -> int:
    """Record that RUN_DIR/CHECKPOINT may go out at --label, for --reason."""
    path = Path(checkpoint) if checkpoint.startswith("/") or node is not None else Path.cwd() / checkpoint
    if not path.is_absolute():
        raise click.UsageError(
            f"with --node, give the checkpoint's absolute path on that node, not {checkpoint!r}"
        )
    run_dir, name = str(path.parent), path.name
    if not name or name in (".", ".."):
        raise click.UsageError(f"{checkpoint!r} does not name a checkpoint: give RUN_DIR/CHECKPOINT")
    body = {"node": node, "run_dir": run_dir, "checkpoint": name, "label": label, "reason": reason}
    if node is not None:
        with context.service(server) as client:
            made = client.declassify(body)
    else:
        from stagegate.ledger.declassifications import Declassifications

        who = context.local_requester()
        with context.ledger() as ledger:
            record = Declassifications(ledger).record(
                actor=who.actor,
                role=who.role,
                node=None,
                run_dir=run_dir,
                checkpoint=name,
                label=label,
                reason=reason,
            )
        made = record.to_json()
    if as_json:
        click.echo(json.dumps(made))
    else:
        click.echo(
            f"declassification {made['id']}: {made['run_dir']}/{made['checkpoint']} may go out as "
            f"{made['label']} (by {made['actor']}); it holds while the checkpoint is unchanged"
        )
    return EXIT_OK
