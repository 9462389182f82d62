"""``stagegate stage``: copy a dataset into a directory, verified, under the policy."""

import json
import sys
from pathlib import Path
from typing import Any

import click

from client import context
from client.progress_bar import ProgressBar
from client.units import format_bytes, parse_size
from workers.staging import Durability, StageResult, StagingOptions, StagingRequest, run_staging


class SizeParam(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size < 1:
            self.fail("must be positive", param, ctx)
        return size


SIZE = SizeParam()
policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Policy file (default: $STAGEGATE_POLICY, else the shipped one: public data only).",
)


@click.command()
@click.argument("source")
@click.option(
    "--to",
    "destination",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory the dataset lands in (created if missing).",
)
@click.option("--job", "job_ref", default=None, help="Your job's reference, recorded in the audit trail.")
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Files copied at once (big files: parts read at once).",
)
@click.option(
    "--part-size",
    type=SIZE,
    default="64MiB",
    show_default=True,
    help="Size of the ranged parts big files are read in.",
)
@click.option(
    "--multipart-threshold",
    type=SIZE,
    default="128MiB",
    show_default=True,
    help="Objects larger than this are read in parallel ranged parts (S3; POSIX files stream).",
)
@click.option(
    "--bandwidth",
    "bandwidth_limit",
    type=SIZE,
    default=None,
    help="Cap on bytes per second, e.g. 500MB (default: none).",
)
@click.option(
    "--durability",
    type=click.Choice([d.value for d in Durability]),
    default="batch",
    show_default=True,
    help="batch: one filesystem sync per ~1 GiB batch; file: fsync every file.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
def stage(
    source: str,
    destination: Path,
    job_ref: str | None,
    policy_path: Path | None,
    as_json: bool,
    concurrency: int,
    part_size: int,
    multipart_threshold: int,
    bandwidth_limit: int | None,
    durability: str,
    progress: bool | None,
) -> None:
    """Copy the dataset at SOURCE into a directory, verifying every byte.

    SOURCE is s3://bucket/prefix (credentials from the standard AWS chain; AWS_ENDPOINT_URL
    selects an S3-compatible store), a local or NFS path (or file:///path), or any other
    fsspec URL.

    Before a byte moves, every object's label (its S3 tag or xattr `classification`, else the
    nearest `.classification` file) is checked against the policy; a denial names the
    objects and exits 3. Every staging is recorded in the audit trail.

    Running the same command again resumes: files already there and verified are kept. The
    directory is complete when DIR/.stagegate/READY exists; DIR/.stagegate/manifest.jsonl
    holds the BLAKE3 checksum of every file.
    """
    options = StagingOptions(
        concurrency=concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        bandwidth_limit=bandwidth_limit,
        durability=Durability(durability),
    )
    policy = context.load_policy(policy_path)
    request = StagingRequest(source=source, destination=str(destination), job_ref=job_ref, options=options)
    show_bar = sys.stderr.isatty() if progress is None else progress
    bar = ProgressBar() if show_bar else None
    with context.ledger() as ledger:
        try:
            result = run_staging(ledger, policy, context.local_requester(), request, on_progress=bar)
        finally:
            if bar is not None:
                bar.finish()
    if as_json:
        click.echo(json.dumps(_summary(result)))
    else:
        _print_summary(result)


def _summary(result: StageResult) -> dict[str, object]:
    summary = result.to_json()
    seconds = max(result.seconds, 1e-9)
    summary["throughput_bytes_per_second"] = round(result.bytes_copied / seconds)
    return summary


def _print_summary(r: StageResult) -> None:
    rate = r.bytes_copied / r.seconds if r.seconds > 0 else 0.0
    click.echo(
        f"staged {r.files} files, {format_bytes(r.bytes)} into {r.destination} "
        f"in {r.seconds:.1f} s ({format_bytes(rate)}/s)"
    )
    click.echo(f"  copied {r.files_copied}, already present and verified {r.files_skipped}")
    click.echo(
        f"  verified against the source's checksum: {r.verified_source}; "
        f"hashed locally only (source publishes none): {r.verified_local}"
    )
    click.echo(f"  manifest digest {r.digest}")
