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
from stagegate.client.lazy_group import LazyGroup
from stagegate.errors import InvalidInputError, NotFoundError, StagegateError
from stagegate.urls import redact_text
from stagegate.version import __version__

# Where each subcommand is defined: only the one run is imported (see client.lazy_group).
COMMANDS = {
    "stage": "stagegate.client.stage_command:stage",
    "status": "stagegate.client.service_commands:status",
    "list": "stagegate.client.list_command:list_stagings",
    "release": "stagegate.client.service_commands:release",
    "renew": "stagegate.client.service_commands:renew",
    "nodes": "stagegate.client.service_commands:nodes",
    "policy": "stagegate.client.policy_commands:policy",
    "ls": "stagegate.client.discovery_commands:ls",
    "du": "stagegate.client.discovery_commands:du",
    "audit": "stagegate.client.audit_commands:audit",
    "token": "stagegate.client.token_commands:token",
    "serve": "stagegate.client.daemon_commands:serve",
    "worker": "stagegate.client.daemon_commands:worker",
    "usage": "stagegate.client.usage_commands:usage_command",
    "egress": "stagegate.client.egress_command:egress",
    "declassify": "stagegate.client.declassify_command:declassify",
    "db": "stagegate.client.db_commands:db",
    "config": "stagegate.client.config_command:config",
}


@click.group(
    cls=LazyGroup,
    commands_in=COMMANDS,
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


def _is_policy_denial(exc: StagegateError) -> bool:
    # Only a command that loaded the policies can be denied by one: `stagegate status` or
    # `--help` need not import them (and their YAML parser) just to name the class here.
    policies = sys.modules.get("stagegate.policies.errors")
    return policies is not None and isinstance(exc, policies.PolicyDeniedError)


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
    except StagegateError as exc:
        if _is_policy_denial(exc):
            _fail(None, exc, EXIT_DENIED)
        if isinstance(exc, InvalidInputError | NotFoundError):
            _fail("error", exc, EXIT_BAD_INPUT)
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
