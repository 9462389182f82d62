"""The commands that talk to the stagegate service: ``stage`` in service mode, ``status``,
``release``, ``renew`` and ``nodes``.

They read the server from ``--server`` or $STAGEGATE_URL and the token from
$STAGEGATE_TOKEN only (a flag would land in shell history). httpx is imported only when a
command runs, so the CLI starts as fast without a server as before.
"""

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from stagegate.client import context
from stagegate.client.duration_param import DURATION
from stagegate.client.errors import (
    EXIT_DENIED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ServiceError,
    StagingDeniedError,
    state_exit_code,
)
from stagegate.client.progress_bar import ProgressBar
from stagegate.client.progress_output import ProgressOutput, choose_output, summary_line
from stagegate.client.service_models import Staging
from stagegate.client.service_render import (
    bar_progress,
    changes,
    dead_node_warnings,
    pin_line,
    render_nodes,
    render_status,
    render_submitted,
    verdict,
)
from stagegate.progress import Listed
from stagegate.settings import load_settings
from stagegate.states import StagingState

if TYPE_CHECKING:
    from stagegate.client.service_client import ServiceClient

POLL_SECONDS = 1.0

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the staging failed or was released, or the service could not be "
    "reached; 2 bad usage, an unknown id, or a missing or invalid STAGEGATE_TOKEN; 3 denied by "
    "the policy, or your role may not do this; 130 interrupted."
)

server_option = click.option(
    "--server",
    metavar="URL",
    default=lambda: load_settings().url,
    show_default=f"${context.SERVER_ENV}",
    help="The stagegate service, e.g. http://stagegate:8080 (the token comes from $STAGEGATE_TOKEN).",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _exit_for(staging: Staging) -> None:
    code = state_exit_code(staging.state)
    if code != EXIT_OK:
        raise click.exceptions.Exit(code)


def _print_final(staging: Staging, as_json: bool) -> None:
    """A finished staging: the summary (or JSON, the last of the JSON lines) on stdout, why it
    is not ready on stderr."""
    if as_json:
        click.echo(summary_line(staging.to_json()))
        return
    click.echo(render_status(staging, _now()))
    for line in verdict(staging):
        click.echo(line, err=True)


class Follower:
    """Shows successive looks at a staging: a bar on stderr and a line per change of state,
    or (``json_lines``) each changed staging as one JSON line on stdout."""

    def __init__(self, bar: ProgressOutput | None, json_lines: bool, say_changes: bool) -> None:
        self._bar = bar
        self._json_lines = json_lines
        self._say_changes = say_changes
        self.last: Staging | None = None
        self._rate: float | None = None  # the service's last measure, kept once it is ready

    def __call__(self, staging: Staging) -> None:
        if self._json_lines:
            if self.last is None or self.last.to_json() != staging.to_json():
                click.echo(json.dumps(staging.to_json()))
        elif self._say_changes:
            lines = changes(self.last, staging)
            if lines and self._bar is not None:
                self._bar.finish()
            for line in lines:
                click.echo(line, err=True)
        p = staging.progress
        if self._bar is not None and staging.state == StagingState.PLANNING and p.listed_objects is not None:
            self._bar.listed(Listed(p.listed_objects, p.listed_bytes or 0))
        drawn = bar_progress(staging)
        # Ready only completes a bar already drawn: one first drawn at 100 % says nothing.
        if staging.state != StagingState.TRANSFERRING and (
            self.last is None or self.last.state != StagingState.TRANSFERRING
        ):
            drawn = None
        if staging.progress.rate_bytes_per_s is not None:
            self._rate = staging.progress.rate_bytes_per_s
        if self._bar is not None and drawn is not None:
            progress, note = drawn
            # The service's rate throughout (and its last one once ready): never the bar's own.
            self._bar(progress, note=note, rate=self._rate if self._rate is not None else 0.0)
        self.last = staging

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.finish(rate=self._rate)


def interrupted_message(staging_id: str) -> str:
    return (
        f"stagegate: stopped waiting; staging {staging_id} continues on the service.\n"
        f"  follow it:  stagegate status {staging_id} --watch\n"
        f"  cancel it:  stagegate release {staging_id}"
    )


def follow(service: "ServiceClient", staging_id: str, first: Staging | None, follower: Follower) -> Staging:
    """Poll until the staging is finished; on Ctrl-C say that it goes on, and exit 130."""
    try:
        if first is not None:
            follower(first)
            if first.terminal:
                return first
        return service.wait(staging_id, on_update=follower, poll=POLL_SECONDS)
    except KeyboardInterrupt:
        follower.finish()  # end the bar's line before the message
        click.echo(interrupted_message(staging_id), err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    finally:
        follower.finish()


@dataclass(frozen=True, slots=True)
class Submission:
    """What ``stage --node`` asks the service for."""

    source: str
    nodes: Sequence[str]
    mode: str = "replicate"
    job: str | None = None
    idempotency_key: str | None = None
    pin_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """How a command reports: JSON, a progress bar (None: when stderr is a terminal), or quietly
    (warnings and errors only)."""

    as_json: bool = False
    progress: bool | None = None
    quiet: bool = False


def warn_dead_nodes(service: "ServiceClient", names: Sequence[str]) -> None:
    """Say on stderr which of ``names`` have a worker that stopped heartbeating: the service still
    records the staging, but nothing moves there until the worker is back. Best effort: a
    failure to ask is not the staging's failure."""
    try:
        found = service.nodes()
    except ServiceError:
        return
    for line in dead_node_warnings(names, found, _now()):
        click.echo(f"stagegate: warning: {line}", err=True)


def stage_on_service(server: str | None, ask: Submission, wait: bool, output: Output) -> None:
    """``stagegate stage SOURCE --node N...``: submit, then (``--wait``) follow to the end."""
    with context.service(server) as service:
        try:
            staging = service.submit_staging(
                ask.source,
                ask.nodes,
                mode=ask.mode,
                job=ask.job,
                idempotency_key=ask.idempotency_key,
                pin_ttl=ask.pin_ttl,
            )
        except StagingDeniedError as exc:
            _denied_at_submit(exc, output.as_json)
        except KeyboardInterrupt:
            again = ""
            if ask.idempotency_key:
                again = " (the same command with the same --idempotency-key finds it)"
            click.echo(
                f"\nstagegate: interrupted before the service answered; it may have accepted the staging"
                f"{again}",
                err=True,
            )
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        if not staging.terminal:
            warn_dead_nodes(service, [n.node for n in staging.nodes] or list(ask.nodes))
        if not wait:
            if output.as_json:
                click.echo(json.dumps(staging.to_json()))
            elif output.quiet:
                click.echo(staging.id)  # for ID=$(stagegate stage ... -q)
            else:
                click.echo(render_submitted(staging))
            if staging.terminal:
                for line in verdict(staging):
                    click.echo(line, err=True)
            elif not output.as_json and not output.quiet:
                click.echo(f"  follow it: stagegate status {staging.id} --watch", err=True)
            _exit_for(staging)
            return
        bar = choose_output(output.as_json, output.progress, output.quiet)
        follower = Follower(bar, json_lines=False, say_changes=not (output.as_json or output.quiet))
        final = follow(service, staging.id, staging, follower)
    if output.quiet:
        for line in verdict(final):
            click.echo(line, err=True)
    else:
        _print_final(final, output.as_json)
    _exit_for(final)


def _denied_at_submit(exc: StagingDeniedError, as_json: bool) -> NoReturn:
    reasons = exc.reasons or (exc.staging.reasons if exc.staging else ())
    if as_json:
        data = exc.staging.to_json() if exc.staging else {"state": StagingState.DENIED}
        click.echo(json.dumps({**data, "reasons": list(reasons)}))
    else:
        what = f"staging {exc.staging.id} was" if exc.staging else "the staging was"
        click.echo(f"stagegate: {what} denied by the policy:", err=True)
        for reason in reasons:
            click.echo(f"  {reason}", err=True)
    raise click.exceptions.Exit(EXIT_DENIED)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("staging_id", metavar="ID")
@click.option("--watch", is_flag=True, help="Follow it until it is ready, failed, denied or released.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the staging as JSON (with --watch: one line per change)."
)
@server_option
def status(staging_id: str, watch: bool, as_json: bool, server: str | None) -> None:
    """Show a staging on the service: its state, progress, and each node's state, path and
    cache hit, with the policy's reasons or the errors when it did not succeed.

    Reads STAGEGATE_URL (or --server) and STAGEGATE_TOKEN. Without --watch the exit code is 0
    whatever the state; with --watch it says how the staging ended, as `stage --wait` does.
    """
    with context.service(server) as service:
        if not watch:
            staging = service.staging(staging_id)
            click.echo(json.dumps(staging.to_json()) if as_json else render_status(staging, _now()))
            if not staging.terminal:
                warn_dead_nodes(service, [n.node for n in staging.nodes])
            return
        first = service.staging(staging_id)
        if not first.terminal:
            warn_dead_nodes(service, [n.node for n in first.nodes])
        bar = ProgressBar(stream=sys.stderr) if not as_json and sys.stderr.isatty() else None
        follower = Follower(bar, json_lines=as_json, say_changes=not as_json)
        final = follow(service, staging_id, None, follower)
    if not as_json:  # with --json the last line printed is the final staging
        _print_final(final, as_json=False)
    _exit_for(final)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("staging_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the released staging as JSON.")
@server_option
def release(staging_id: str, as_json: bool, server: str | None) -> None:
    """Release a staging: stop it if it is still running, and unpin its dataset so the
    nodes may evict it. Only its owner or an admin may.

    Reads STAGEGATE_URL (or --server) and STAGEGATE_TOKEN.
    """
    with context.service(server) as service:
        staging = service.release(staging_id)
    click.echo(json.dumps(staging.to_json()) if as_json else f"staging {staging.id}: {staging.state}")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("staging_id", metavar="ID")
@click.option(
    "--pin-ttl",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="The new lease from now (4h, 2d, 3600...); default: the TTL the staging had.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the renewed staging as JSON.")
@server_option
def renew(staging_id: str, pin_ttl: float | None, as_json: bool, server: str | None) -> None:
    """Extend a staging's pin lease, so the service does not release it while the job still
    reads the data: the lease then ends --pin-ttl from now. Run it from a long job every so
    often (or submit with a longer --pin-ttl, up to the service's STAGEGATE_PIN_TTL_MAX).
    Only its owner or an admin may; a released staging cannot be renewed (exit 1).

    Reads STAGEGATE_URL (or --server) and STAGEGATE_TOKEN.
    """
    with context.service(server) as service:
        staging = service.renew(staging_id, pin_ttl)
    if as_json:
        click.echo(json.dumps(staging.to_json()))
    else:
        click.echo(f"staging {staging.id}: {staging.state}, {pin_line(staging.pin, _now())}")


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"nodes": [...]} as the service sends it.')
@server_option
def nodes(as_json: bool, server: str | None) -> None:
    """List the node workers: alive or not, cache capacity, bytes used, pinned and free, how
    many datasets each caches, and how long ago it last reported.

    Reads STAGEGATE_URL (or --server) and STAGEGATE_TOKEN.
    """
    with context.service(server) as service:
        found = service.nodes()
    if as_json:
        payload: dict[str, Any] = {"nodes": [n.to_json() for n in found]}
        click.echo(json.dumps(payload))
    else:
        click.echo(render_nodes(found, _now()))
