"""The ``stagegate`` command.

Exit codes: 0 done; 1 the transfer failed; 2 bad usage or bad input (an unsafe key, a
source that does not exist); 130 interrupted. Errors go to stderr as one clear line.
"""

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from client.progress_bar import ProgressBar
from client.units import format_bytes, parse_size
from stagegate import __version__
from stagegate.errors import InvalidInputError, NotFoundError, StagegateError
from workers.staging import Durability, StageResult, StagingOptions, run_staging

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stagegate")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
def cli(verbose: int) -> None:
    """Stage datasets onto node-local disk, verified; move checkpoints out under policy.

    Without a server, commands run in this process (the embedded mode).
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="stagegate: %(levelname)s: %(message)s", stream=sys.stderr)


@cli.command()
@click.argument("source")
@click.option(
    "--to",
    "destination",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory the dataset lands in (created if missing).",
)
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
    help="Files larger than this are read in parallel parts.",
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
    fsspec URL. Running the same command again resumes: files already there and verified
    are kept. The directory is complete when DIR/.stagegate/READY exists; it holds the
    summary, and DIR/.stagegate/manifest.jsonl the BLAKE3 checksum of every file.
    """
    options = StagingOptions(
        concurrency=concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        bandwidth_limit=bandwidth_limit,
        durability=Durability(durability),
    )
    show_bar = sys.stderr.isatty() if progress is None else progress
    bar = ProgressBar() if show_bar else None
    try:
        result = run_staging(source, destination, options, on_progress=bar)
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


def main() -> None:
    """Console entry point: maps errors to exit codes, never to tracebacks."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except click.Abort:
        click.echo("stagegate: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("\nstagegate: interrupted; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (InvalidInputError, NotFoundError) as exc:
        click.echo(f"stagegate: error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except StagegateError as exc:
        click.echo(f"stagegate: failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as exc:
        # A full disk, a permission problem, an unreachable endpoint: the transfer failed.
        click.echo(f"stagegate: failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
