"""The trail page's CSV download: the same columns and cells as ``stagegate audit export
--format csv``, streamed in chunks so a long trail never sits in memory."""

import io
from collections.abc import Iterable, Iterator
from itertools import islice

from stagegate.ledger import AuditEvent
from stagegate.ledger.export import write_csv

CHUNK = 500


def csv_chunks(events: Iterable[AuditEvent], chunk: int = CHUNK) -> Iterator[str]:
    """The CSV text a chunk of events at a time: the header once, then one row per event."""
    stream = iter(events)
    first = True
    while True:
        batch = list(islice(stream, chunk))
        if not batch and not first:
            return
        out = io.StringIO()
        write_csv(batch, out)  # the export's own writer: one definition of the columns
        text = out.getvalue()
        yield text if first else text.split("\n", 1)[1]
        if len(batch) < chunk:
            return
        first = False


def csv_filename(params: dict[str, str]) -> str:
    """A download name that says what was filtered, in characters safe in a header."""
    parts = ["stagegate-audit", *(f"{k}-{v}" for k, v in sorted(params.items()))]
    name = "_".join(parts)
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in name)[:150] + ".csv"
