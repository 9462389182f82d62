"""``stagegate egress``: copy selected checkpoints of a training run to S3 or an on-prem path,
under the classification policy; optionally delete the rest once the copies are verified.

Embedded (default): runs here, in this process. With ``--node NAME`` (and a server): the
node's worker copies, and this command submits and (with ``--wait``) follows it.
"""

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from stagegate.client import context
from stagegate.client.errors import EXIT_DENIED, EXIT_FAILED, EXIT_OK, errors_as_json
from stagegate.client.filter_options import filter_options
from stagegate.client.progress_output import choose_output, summary_line
from stagegate.client.service_commands import server_option
from stagegate.client.stage_command import SIZE, policy_option
from stagegate.errors import InvalidInputError
from stagegate.progress import throughput
from stagegate.requests import BestMode, EgressRequest
from stagegate.sizes import format_bytes
from stagegate.states import EgressState
from stagegate.urls import refuse_credentials

if TYPE_CHECKING:  # imported when the command runs: boto3 would add ~0.3 s to every stagegate call
    from stagegate.workers.egress import EgressOutcome, EgressPreview

POLL_S = 0.5


@click.command(
    epilog="Exit codes: 0 done (service without --wait: accepted); 1 failed; 2 bad usage or input; "
    "3 denied by the policy (or your role); 130 interrupted."
)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--to", "destination", required=True, help="s3://bucket/prefix, an absolute path or file:///path."
)
@click.option(
    "--latest", type=click.IntRange(1), default=None, help="The N newest checkpoints (by step, else mtime)."
)
@click.option("--best", metavar="METRIC", default=None, help="The checkpoint with the best value of METRIC.")
@click.option(
    "--mode",
    type=click.Choice(["min", "max"]),
    default=None,
    help="For --best: lower (min) or higher (max) is better. Needed unless METRIC's name says so "
    "(loss, error, perplexity: min; accuracy, f1, bleu, reward: max).",
)
@click.option("--name", "names", multiple=True, metavar="NAME", help="This checkpoint (repeatable).")
@filter_options
@click.option(
    "--job", "job_ref", default=None, help="The job reference the training run staged its data under."
)
@click.option(
    "--delete-unselected",
    is_flag=True,
    help="After every selected checkpoint is verified at the destination, delete the others.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be selected and decided; move nothing.")
@click.option("--node", default=None, metavar="NAME", help="Service: the node whose worker holds RUN_DIR.")
@click.option("--wait", is_flag=True, help="Service: follow the egress until it ends.")
@server_option
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress and no summary, only errors on stderr; the exit code says how it went "
    "(service without --wait: print the egress id alone).",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 256), default=8, show_default=True, help="Files at once."
)
@click.option(
    "--part-size",
    type=SIZE,
    default="8MiB",
    show_default=True,
    help="Multipart part size (S3); memory is at most max(2, min(concurrency, 64 MiB / this)) parts.",
)
@click.option(
    "--multipart-threshold", type=SIZE, default="8MiB", show_default=True, help="Files above go multipart."
)
@click.option(
    "--bandwidth",
    type=SIZE,
    default=None,
    metavar="RATE",
    help="Cap the transfer at RATE bytes/s across all files (e.g. 500MB).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: when stderr is a terminal); with --json, progress as JSON lines on "
    "stdout before the summary.",
)
def egress(
    run_dir: Path,
    destination: str,
    latest: int | None,
    best: str | None,
    mode: str | None,
    names: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    job_ref: str | None,
    delete_unselected: bool,
    dry_run: bool,
    node: str | None,
    wait: bool,
    server: str | None,
    policy_path: Path | None,
    as_json: bool,
    quiet: bool,
    concurrency: int,
    part_size: int,
    multipart_threshold: int,
    bandwidth: int | None,
    progress: bool | None,
) -> int:
    """Copy the selected checkpoints of RUN_DIR to --to, verified, if the policy allows.

    Select with --latest N, --best METRIC [--mode min|max] and --name NAME (the union of all).
    A checkpoint's label only rises: the highest of its own (xattr user.classification, and
    every .classification file inside a checkpoint directory), the nearest .classification in
    the run directory, and the datasets you staged under --job. `stagegate declassify` lowers
    one. Here (without --node) paths through your own links are resolved first; below the
    resolved destination nothing is followed and no file is ever overwritten.

    --include/--exclude choose which files of the selected checkpoints go (keys relative to
    RUN_DIR, such as checkpoint-500/optimizer.pt), with rclone's filter rules; the label is
    still that of the whole checkpoint.
    """
    errors_as_json(as_json)
    if best is None and mode is not None:
        raise click.UsageError("--mode goes with --best METRIC")
    if quiet and (as_json or progress or dry_run):
        raise click.UsageError(
            "--quiet prints nothing but errors: leave out --json, --progress and --dry-run"
        )
    refuse_credentials(destination, "--to destination")  # before it reaches the service or the ledger
    from stagegate.client.embedded_api import egress_here, egress_request
    from stagegate.workers.egress import EgressOptions, check_selection, preview_egress

    request = egress_request(  # here (no --node), with the user's own links resolved first
        run_dir,
        destination,
        latest=latest,
        best=best,
        mode=cast("BestMode | None", mode),  # click.Choice: min, max or None
        names=names,
        job=job_ref,
        delete_unselected=delete_unselected,
        node=node,
        include=include,
        exclude=exclude,
    )
    if node is not None:
        if dry_run:
            raise click.UsageError("--dry-run runs here; drop --node to preview")
        try:
            check_selection(request)  # before the service is asked: its worker applies the same rule
        except InvalidInputError as exc:
            raise click.UsageError(str(exc)) from None
        return _on_service(server, request, wait, as_json, quiet)
    if wait:
        raise click.UsageError("--wait is for --node (the service); here the command always waits")
    if dry_run:
        policy = context.load_policy(policy_path)
        with context.ledger() as ledger:
            preview = preview_egress(ledger, policy, request, context.local_requester())
        return _dry_run(preview, request, as_json)
    options = EgressOptions(
        concurrency=concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        bandwidth_limit=bandwidth,
    )
    shown = choose_output(as_json, progress, quiet)
    started = time.monotonic()
    try:
        outcome = egress_here(request, options, policy_path, on_progress=shown)
    except BaseException:
        if shown is not None:
            shown.finish()
        raise
    seconds = time.monotonic() - started
    if shown is not None:  # the last line shows the summary's rate
        shown.finish(rate=_rate(outcome, seconds))
    if as_json:
        click.echo(summary_line(_summary(outcome, request, seconds)))
    elif not quiet:
        _print_summary(outcome, request, seconds)
    return EXIT_OK


def _dry_run(preview: "EgressPreview", request: "EgressRequest", as_json: bool) -> int:
    decision = preview.decision
    if as_json:
        click.echo(
            json.dumps(
                {
                    "selected": [c.name for c in preview.selection.selected],
                    "unselected": [c.name for c in preview.selection.unselected],
                    "reasons": preview.selection.reasons,
                    "skipped": preview.skipped,
                    "labels": {c.name: {"label": c.label, "origin": c.origin} for c in preview.labels},
                    "decision": decision.to_dict(),
                    "would_delete": [c.name for c in preview.selection.unselected]
                    if request.delete_unselected
                    else [],
                }
            )
        )
    else:
        for line in preview.explanation():
            click.echo(line)
        for c in preview.labels:
            click.echo(f"label {c.name}: {c.label} ({c.origin})")
        verdict = "allowed" if decision.allowed else "DENIED"
        click.echo(f"policy {decision.policy_version[:12]}: {verdict} for egress to {request.destination}")
        for reason in decision.reasons:
            click.echo(f"  {reason}")
        if request.delete_unselected:
            names = ", ".join(c.name for c in preview.selection.unselected) or "none"
            click.echo(f"would delete after verification: {names}")
        click.echo("dry run: nothing moved, nothing deleted")
    return EXIT_OK if decision.allowed else EXIT_DENIED


def _summary(outcome: "EgressOutcome", request: "EgressRequest", seconds: float) -> dict[str, object]:
    result = outcome.result
    assert result is not None
    return {
        "id": outcome.job_id,
        "state": EgressState.COMPLETED,
        "destination": request.destination,
        "selected": [c.name for c in outcome.selection.selected],
        "files": len(result.files),
        "files_present": result.files_present,
        "bytes": result.bytes,
        "checksums": result.checksums,
        "deleted": [{"name": n, "bytes": b} for n, b in outcome.deleted],
        "seconds": round(seconds, 3),
        "throughput_bytes_per_second": round(_rate(outcome, seconds)),
    }


def _rate(outcome: "EgressOutcome", seconds: float) -> float:
    """The one rate the bar's last line, the summary and its JSON show."""
    return throughput(outcome.result.bytes if outcome.result else 0, seconds)


def _print_summary(outcome: "EgressOutcome", request: "EgressRequest", seconds: float) -> None:
    result = outcome.result
    assert result is not None
    rate = _rate(outcome, seconds)
    click.echo(
        f"egressed {len(outcome.selection.selected)} checkpoint(s), {len(result.files)} files, "
        f"{format_bytes(result.bytes)} to {request.destination} in {seconds:.1f} s ({format_bytes(rate)}/s)"
    )
    for c in outcome.labels:
        click.echo(f"  {c.name}: {c.label} ({c.origin})")
    if result.files_present:
        click.echo(f"  kept {result.files_present} file(s) already there (same size and checksum)")
    click.echo(f"  every file verified at the destination; egress {outcome.job_id}")
    if outcome.deleted:
        freed = sum(b for _, b in outcome.deleted)
        click.echo(f"  deleted {len(outcome.deleted)} unselected checkpoint(s), {format_bytes(freed)} freed")


def _on_service(server: str | None, request: "EgressRequest", wait: bool, as_json: bool, quiet: bool) -> int:
    client = context.service(server)
    with client:
        egress_id = client.submit_egress(request)
        view = client.wait_egress(egress_id, poll=POLL_S) if wait else client.egress(egress_id)
    if as_json:
        click.echo(json.dumps(view))
    elif quiet:
        if not wait:
            click.echo(egress_id)
        for line in [*view.get("reasons", []), *view.get("errors", [])]:
            click.echo(f"stagegate: {line}", err=True)
    else:
        click.echo(f"egress {egress_id}: {view.get('state')}")
        for key in ("selected", "bytes", "files"):
            click.echo(f"  {key:9} {view.get(key)}")
        for line in [*view.get("reasons", []), *view.get("errors", [])]:
            click.echo(f"  {line}")
    state = view.get("state")
    if state == EgressState.DENIED:
        return EXIT_DENIED
    if state == EgressState.FAILED:
        return EXIT_FAILED
    return EXIT_OK
