"""The ``stagegate`` command.

Exit codes (``client/errors.py``): 0 done; 1 the transfer failed; 2 bad usage or bad input
(an unsafe key, a source that does not exist, a malformed policy or label file); 3 denied by
the classification policy; 4 the audit chain is broken; 130 interrupted. Errors go to
stderr as one clear line.
"""

import logging
import sys

import click

from client.audit_commands import audit
from client.errors import EXIT_BAD_INPUT, EXIT_DENIED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from client.policy_commands import policy
from client.stage_command import stage
from policies import PolicyDeniedError
from stagegate import __version__
from stagegate.errors import InvalidInputError, NotFoundError, StagegateError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stagegate")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
def cli(verbose: int) -> None:
    """Stage datasets onto node-local disk, verified; move checkpoints out under policy.

    Without a server, commands run in this process (the embedded mode) with a SQLite ledger
    under $STAGEGATE_HOME (default ~/.local/share/stagegate); STAGEGATE_DATABASE_URL points
    at PostgreSQL instead.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="stagegate: %(levelname)s: %(message)s", stream=sys.stderr)


cli.add_command(stage)
cli.add_command(policy)
cli.add_command(audit)


def main() -> None:
    """Console entry point: maps errors to exit codes, never to tracebacks."""
    try:
        # Without standalone mode click returns (not raises) a command's Exit code.
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code != EXIT_OK:
            sys.exit(code)
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
    except PolicyDeniedError as exc:
        click.echo(f"stagegate: {exc}", err=True)
        sys.exit(EXIT_DENIED)
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
    except Exception as exc:
        # A bug or an SDK error we do not know yet: one line, no traceback (it may quote
        # credentials); -vv logs the traceback for a bug report.
        logging.getLogger("stagegate").debug("unexpected error", exc_info=True)
        click.echo(f"stagegate: failed: unexpected {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
