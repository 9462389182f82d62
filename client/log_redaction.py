"""Every log record of a stagegate process (the CLI, ``serve``, ``worker``) redacted as it is
made: exception messages quote URLs, SQL connection strings and S3 errors quote requests, and
a log line outlives the credential it might hold just as the ledger does."""

import logging
from typing import Any

from stagegate.urls import redact_text

_PLAIN = (int, float, bool, type(None))


def _redacted_arg(arg: object) -> object:
    # Numbers stay numbers (for %d); anything else is shown as its redacted text.
    return arg if isinstance(arg, _PLAIN) else redact_text(str(arg))


def install() -> None:
    """Make every record from now on carry redacted text (idempotent)."""
    base = logging.getLogRecordFactory()
    if getattr(base, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redacted_arg(v) for k, v in record.args.items()}
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
