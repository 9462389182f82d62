"""The ``stagegate`` command.

Exit codes (``client/errors.py``): 0 done; 1 the transfer failed (on the service: the staging
failed or was released, or the service could not be reached); 2 bad usage or bad input (an
unsafe key, a source that does not exist, a malformed policy or label file, an unknown
staging id, a missing or invalid STAGEGATE_TOKEN); 3 denied by the classification policy (or
the token's role may not do this); 4 the audit chain is broken; 130 interrupted. Errors go
to stderr as one clear line.
"""

import logging
import sys
from typing import NoReturn

import click

from stagegate.client import log_redaction
from stagegate.client.audit_commands import audit
from stagegate.client.config_command import config
from stagegate.client.daemon_commands import serve, worker
from stagegate.client.db_commands import db
from stagegate.client.declassify_command import declassify
from stagegate.client.discovery_commands import du, ls
from stagegate.client.egress_command import egress
from stagegate.client.errors import (
    EXIT_BAD_INPUT,
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ServiceError,
    StagingDeniedError,
    error_json,
    service_exit_code,
)
from stagegate.client.list_command import list_stagings
from stagegate.client.policy_commands import policy
from stagegate.client.service_commands import nodes, release, renew, status
from stagegate.client.stage_command import stage
from stagegate.client.token_commands import token
from stagegate.client.usage_commands import usage_command
from stagegate.errors import InvalidInputError, NotFoundError, StagegateError
from stagegate.policies import PolicyDeniedError
from stagegate.urls import redact_text
from stagegate.version import __version__


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 ok; 1 failed (or the service could not be reached); 2 bad usage or "
    "input (or a missing or invalid STAGEGATE_TOKEN); 3 denied by the policy (or by your role); "
    "4 the audit chain is broken; 130 interrupted.",
)
@click.version_option(__version__, prog_name="stagegate")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
def cli(verbose: int) -> None:
    """Stage datasets onto node-local disk, verified; move checkpoints out under policy.

    Without a server, commands run in this process (the embedded mode) with a SQLite ledger
    under $STAGEGATE_HOME (default ~/.local/share/stagegate); STAGEGATE_DATABASE_URL points
    at PostgreSQL instead.

    With a server (--server or STAGEGATE_URL, and a token in STAGEGATE_TOKEN), `stage --node`,
    `status`, `release` and `nodes` talk to the stagegate service, and so do the read commands
    `list`, `usage`, `audit query|export|verify|head|checkpoint` (--local reads the ledger
    instead; those only the ledger answers refuse a server without it); `serve` and `worker` run
    its processes, `token create` issues its tokens, and `db upgrade` migrates its PostgreSQL
    ledger as the owner role and grants the role the service runs as.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="stagegate: %(levelname)s: %(message)s", stream=sys.stderr)


cli.add_command(stage)
cli.add_command(status)
cli.add_command(list_stagings)
cli.add_command(release)
cli.add_command(renew)
cli.add_command(nodes)
cli.add_command(policy)
cli.add_command(ls)
cli.add_command(du)
cli.add_command(audit)
cli.add_command(token)
cli.add_command(serve)
cli.add_command(worker)
cli.add_command(usage_command)
cli.add_command(egress)
cli.add_command(declassify)
cli.add_command(db)
cli.add_command(config)

_SERVICE_ERROR_PREFIX = {EXIT_BAD_INPUT: "error", EXIT_DENIED: "denied", EXIT_FAILED: "failed"}


def _error(prefix: str | None, exc: BaseException, code: int) -> None:
    # Errors quote what they failed on, URLs included: redacted, so no credential is echoed.
    message = redact_text(str(exc))
    click.echo(f"stagegate: {prefix}: {message}" if prefix else f"stagegate: {message}", err=True)
    reasons = [redact_text(r) for r in getattr(getattr(exc, "decision", None), "reasons", ())]
    if isinstance(exc, StagingDeniedError):
        reasons = [redact_text(r) for r in exc.reasons]
    as_json = error_json(message, code, reasons)
    if as_json is not None:
        click.echo(as_json)


def _fail(prefix: str | None, exc: BaseException, code: int) -> NoReturn:
    _error(prefix, exc, code)
    sys.exit(code)


def main() -> None:
    """Console entry point: maps errors to exit codes, never to tracebacks."""
    log_redaction.install()  # before anything logs: the API and the workers run under main too
    try:
        # Without standalone mode click returns (not raises) a command's Exit code.
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code != EXIT_OK:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        message = exc.format_message()  # "Invalid value for SOURCE: ..." may quote a credential
        if redact_text(message) == message:
            exc.show()
        else:
            click.echo(f"Error: {redact_text(message)}", err=True)
        as_json = error_json(redact_text(message), EXIT_BAD_INPUT)
        if as_json is not None:
            click.echo(as_json)
        sys.exit(EXIT_BAD_INPUT)
    except click.Abort as exc:
        # Outside standalone mode click turns Ctrl-C into Abort; the commands that can be resumed
        # (stage, egress) catch it first and say how.
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo("stagegate: interrupted" if interrupted else "stagegate: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ServiceError as exc:
        code = service_exit_code(exc)
        _fail(_SERVICE_ERROR_PREFIX.get(code, "failed"), exc, code)
    except PolicyDeniedError as exc:
        _fail(None, exc, EXIT_DENIED)
    except (InvalidInputError, NotFoundError) as exc:
        _fail("error", exc, EXIT_BAD_INPUT)
    except StagegateError as exc:
        _fail("failed", exc, EXIT_FAILED)
    except OSError as exc:
        # A full disk, a permission problem, an unreachable endpoint: the transfer failed.
        _fail("failed", exc, EXIT_FAILED)
    except Exception as exc:
        # A bug or an SDK error we do not know yet: one line, no traceback (it may quote
        # credentials); -vv logs the traceback for a bug report.
        logging.getLogger("stagegate").debug("unexpected error", exc_info=True)
        _fail(f"failed: unexpected {type(exc).__name__}", exc, EXIT_FAILED)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
