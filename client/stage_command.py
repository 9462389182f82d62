"""``stagegate stage``: copy a dataset into a directory, verified, under the policy; or, with
``--node``, ask the service to stage it onto cluster nodes (``client/service_commands.py``)."""

import shlex
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
from click.core import ParameterSource

from stagegate.client.duration_param import DURATION
from stagegate.client.errors import EXIT_INTERRUPTED, errors_as_json
from stagegate.client.filter_options import filter_options
from stagegate.client.owner_options import OWNER_OPTIONS, chosen_owner, owner_options
from stagegate.client.progress_output import choose_output, summary_line
from stagegate.client.service_commands import Output, Submission, server_option, stage_on_service
from stagegate.durability import Durability
from stagegate.progress import throughput
from stagegate.requests import StagingRequest
from stagegate.sizes import format_bytes, parse_size
from stagegate.urls import refuse_credentials

# The embedded staging (the ledger, the policy, the engine) is imported when it runs: `--help`,
# `stage --node` (the service does the work) and the commands that borrow options from here
# never load it.
if TYPE_CHECKING:
    from stagegate.client.embedded_api import StagedDataset


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


class DestinationParam(click.Path):
    """``--to DIR``, refusing an empty name: ``--to "$UNSET"`` would mean the current
    directory, and stage over whatever is there (a home directory's dotfiles)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: name the directory to stage into (a new or empty one)", param, ctx)
        return super().convert(value, param, ctx)


policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Policy file (default: $STAGEGATE_POLICY, else the shipped one: public data only).",
)


# Options that belong to one mode only; giving one in the other mode is a usage error.
EMBEDDED_ONLY = (
    "policy_path",
    "concurrency",
    "part_size",
    "multipart_threshold",
    "bandwidth_limit",
    "durability",
    "processes",
    "replace",
    "sync",
)
SERVICE_ONLY = ("mode", "idempotency_key", "wait", "pin_ttl", *OWNER_OPTIONS)
MAX_NODES = 64


def _flag(name: str) -> str:
    return {
        "policy_path": "--policy",
        "bandwidth_limit": "--bandwidth",
    }.get(name, "--" + name.replace("_", "-"))


def _listing(flags: Sequence[str]) -> str:
    return f"{', '.join(flags)} {'apply' if len(flags) > 1 else 'applies'}"


def choose_mode(
    destination: Path | None,
    nodes: Sequence[str],
    server: str | None,
    server_on_command_line: bool,
    given: Collection[str],
) -> Literal["embedded", "service"]:
    """Which ``stage`` this is: ``--to DIR`` stages here, in this process; ``--node NAME``
    asks the service. ``given`` names the options set on the command line. Raises a usage
    error for every mix that cannot mean one thing."""
    if destination is not None and nodes:
        raise click.UsageError(
            "--to (stage into a directory here) and --node (stage onto cluster nodes through the "
            "service) cannot be combined"
        )
    if destination is not None:
        if server_on_command_line:
            raise click.UsageError("--server is for staging onto nodes (--node); --to stages here")
        wrong = [_flag(name) for name in SERVICE_ONLY if name in given]
        if wrong:
            raise click.UsageError(
                f"{_listing(wrong)} only to staging onto nodes through the service (--node)"
            )
        return "embedded"
    if nodes:
        wrong = [_flag(name) for name in EMBEDDED_ONLY if name in given]
        if wrong:
            raise click.UsageError(
                f"{_listing(wrong)} only to staging here (--to); on the service the workers decide"
            )
        if not server:
            raise click.UsageError(
                "--node stages through the service: pass --server URL or set STAGEGATE_URL"
            )
        repeated = sorted({n for n in nodes if nodes.count(n) > 1})
        if repeated:
            raise click.UsageError(f"--node given more than once for: {', '.join(repeated)}")
        if len(nodes) > MAX_NODES:
            raise click.UsageError(f"at most {MAX_NODES} nodes per staging, not {len(nodes)}")
        return "service"
    if server:
        raise click.UsageError("say where: --node NAME (repeat for more nodes), or --to DIR to stage here")
    raise click.UsageError("Missing option '--to' (or --node NAME with a server: see --help)")


@click.command(
    epilog="Exit codes: 0 done (service without --wait: accepted); 1 failed or released, or the "
    "service could not be reached; 2 bad usage or input, or a missing or invalid STAGEGATE_TOKEN; "
    "3 denied by the policy (or, on the service, your role may not stage); 130 interrupted."
)
@click.argument("source")
@click.option(
    "--to",
    "destination",
    default=None,
    type=DestinationParam(file_okay=False, path_type=Path),
    help="Stage here, in this process: the directory the dataset lands in (created if missing); an "
    "existing one must be empty or hold an earlier staging of the same source (see --replace, --sync).",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="NAME",
    help="Stage through the service onto this node's cache; repeat for more nodes (at most 64).",
)
@click.option(
    "--mode",
    type=click.Choice(["replicate", "shard"]),
    default=None,
    help="Service: replicate (every node gets the whole dataset; default) or shard (each gets a part).",
)
@click.option("--job", "job_ref", default=None, help="Your job's reference, recorded in the audit trail.")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    default=None,
    help="Service: the same key again returns the first staging instead of a new one (safe retries).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Service: follow the staging (progress on stderr) until it is ready (exit 0), denied (3), "
    "failed or released (1). Without it, print the id and state and return at once.",
)
@click.option(
    "--pin-ttl",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Service: how long the nodes hold the data for you (4h, 2d, 3600...), after which the service "
    "releases it; `stagegate renew ID` extends it. Default: the service's STAGEGATE_PIN_TTL.",
)
@filter_options
@owner_options
@server_option
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress and no summary, only warnings and errors on stderr; the exit code says how it "
    "went (service without --wait: print the staging's id alone).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Files copied at once (big files: parts read at once).",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="Processes copying small files, each with its share of --concurrency "
    "(default: $STAGEGATE_COPY_PROCESSES, else one per four cores, at least 1).",
)
@click.option(
    "--part-size",
    type=SIZE,
    default="64MiB",
    show_default=True,
    help="Smallest ranged part big files are read in: they are split only as far as --concurrency needs.",
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
    help="batch: one filesystem sync per group of finished files (at most once a second, and per "
    "~1 GiB batch); file: also fsync every file.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="--to: the new dataset replaces whatever DIR holds (another source's dataset, or files "
    "stagegate did not put there); nothing of the old remains once the new set is verified.",
)
@click.option(
    "--sync",
    is_flag=True,
    help="--to: like rclone sync, remove from DIR the files gone from the source (and any others "
    "it holds), after the new set is copied and verified. Without it a rerun that finds such "
    "files refuses, changing nothing.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal); with --json, progress as JSON "
    "lines on stdout before the summary.",
)
def stage(
    source: str,
    destination: Path | None,
    nodes: tuple[str, ...],
    mode: str | None,
    job_ref: str | None,
    idempotency_key: str | None,
    wait: bool,
    pin_ttl: float | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    owner_pod: str | None,
    owner_job: str | None,
    owner_uid: str | None,
    owner_from_env: bool,
    server: str | None,
    policy_path: Path | None,
    as_json: bool,
    quiet: bool,
    concurrency: int,
    processes: int | None,
    part_size: int,
    multipart_threshold: int,
    bandwidth_limit: int | None,
    durability: str,
    replace: bool,
    sync: bool,
    progress: bool | None,
) -> None:
    """Copy the dataset at SOURCE into a directory (--to), verifying every byte; or ask the
    stagegate service to stage it onto cluster nodes (--node).

    With --to the staging runs here. With --node it runs on the service at --server (default
    $STAGEGATE_URL), authenticated by the token in $STAGEGATE_TOKEN (an environment variable
    only, never a flag: it would land in shell history); the nodes' workers copy and verify
    it into their caches, and `stagegate status ID` follows it. --to always stages here, even
    with STAGEGATE_URL set. --policy, --concurrency, --processes, --part-size,
    --multipart-threshold, --bandwidth, --durability, --replace and --sync apply to --to only; --mode,
    --idempotency-key, --pin-ttl, --wait and --server to --node only.

    SOURCE is s3://bucket/prefix (credentials from the standard AWS chain; AWS_ENDPOINT_URL
    selects an S3-compatible store), a local or NFS path (or file:///path), or any other
    fsspec URL.

    Before a byte moves, every object's label (its S3 tag or xattr `classification`, else the
    nearest `.classification` file, in the source or in a folder above it up to the bucket's or
    the mount's root) is checked against the policy; a denial names the objects and the label
    files consulted, and exits 3. Every staging is recorded in the audit trail.

    --include/--exclude stage a subset, chosen with rclone's filter rules before planning:
    the manifest, digest and label decision cover exactly the files staged.

    Running the same command again resumes: files already there and verified are kept. A DIR
    holding another source's dataset is refused unless --replace; one holding files the
    source no longer has (or files stagegate did not stage) is refused unless --sync or
    --replace, which remove them after the new set is verified. DIR holds exactly the
    source's files; the staging's state lies beside it, in
    .stagegate-NAME next to DIR (NAME is DIR's name). DIR is complete when READY exists
    there; manifest.jsonl there holds the BLAKE3 checksum of every file.
    """
    errors_as_json(as_json)
    refuse_credentials(source, "SOURCE")  # before it reaches the service or the ledger
    if quiet and (as_json or progress):
        raise click.UsageError("--quiet prints no summary and no progress: leave out --json and --progress")
    ctx = click.get_current_context()
    given = {name for name in ctx.params if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    if choose_mode(destination, nodes, server, "server" in given, given) == "service":
        output = Output(as_json=as_json, progress=False if quiet else progress, quiet=quiet)
        owner = chosen_owner(owner_pod, owner_job, owner_uid, owner_from_env)
        submission = Submission(
            source, nodes, mode or "replicate", job_ref, idempotency_key, pin_ttl, include, exclude, owner
        )
        stage_on_service(server, submission, wait, output)
        return
    assert destination is not None  # choose_mode said embedded
    from stagegate.client.embedded_api import stage_here
    from stagegate.workers.staging import StagingOptions

    options = StagingOptions(
        concurrency=concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        bandwidth_limit=bandwidth_limit,
        durability=Durability(durability),
        processes=processes,
    )
    request = StagingRequest(
        source=source,
        destination=str(destination),
        job_ref=job_ref,
        replace=replace,
        sync=sync,
        include=include,
        exclude=exclude,
    )
    shown = choose_output(as_json, progress, quiet)
    try:
        try:
            result = stage_here(
                request,
                options,
                policy_path,
                on_progress=shown,
                on_listed=shown.listed if shown is not None else None,
            )
        except BaseException:
            if shown is not None:
                shown.finish()
            raise
    except KeyboardInterrupt:
        click.echo(resume_hint(request, policy_path), err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    if shown is not None:  # the last line shows the summary's rate, not the bar's window
        shown.finish(rate=throughput(result.bytes_copied, result.seconds))
    if as_json:
        click.echo(summary_line(_summary(result)))
    elif not quiet:
        _print_summary(result)


def resume_command(request: StagingRequest, policy_path: Path | None = None) -> str:
    """The ``stagegate stage`` command that resumes ``request``: every option that decides which
    dataset it is and where (source, DIR, filters, --sync/--replace, job, policy); the tuning
    options change no file, so they may differ."""
    words = ["stagegate", "stage", request.source, "--to", str(request.destination)]
    words += [w for pattern in request.include for w in ("--include", pattern)]
    words += [w for pattern in request.exclude for w in ("--exclude", pattern)]
    words += ["--replace"] * request.replace + ["--sync"] * request.sync
    if request.job_ref is not None:
        words += ["--job", request.job_ref]
    if policy_path is not None:
        words += ["--policy", str(policy_path)]
    return shlex.join(words)


def resume_hint(request: StagingRequest, policy_path: Path | None = None) -> str:
    """What Ctrl-C prints: the staging is resumable, and the command that resumes it."""
    return (
        "\nstagegate: interrupted; every file verified so far is kept (only the files in flight "
        f"are copied again). To resume, run:\n  {resume_command(request, policy_path)}"
    )


def _summary(result: "StagedDataset") -> dict[str, object]:
    summary = result.to_json()
    summary["throughput_bytes_per_second"] = round(throughput(result.bytes_copied, result.seconds))
    summary["state_dir"] = result.state_dir
    return summary


def _print_summary(r: "StagedDataset") -> None:
    rate = throughput(r.bytes_copied, r.seconds)
    click.echo(
        f"staged {r.files} files, {format_bytes(r.bytes)} into {r.destination} "
        f"in {r.seconds:.1f} s ({format_bytes(rate)}/s)"
    )
    click.echo(f"  copied {r.files_copied}, already present and verified {r.files_skipped}")
    if r.files_removed:
        click.echo(f"  removed {r.files_removed} not in the source (--sync/--replace)")
    # Within 80 columns, as the bar is, unless both counts run to seven digits.
    click.echo(
        f"  verified: {r.verified_source} by the source's checksum, "
        f"{r.verified_local} hashed here (source has none)"
    )
    click.echo(f"  digest {r.digest}")  # the manifest's, 64 hex: 73 columns
    click.echo(f"  manifest and READY in {r.state_dir}")
