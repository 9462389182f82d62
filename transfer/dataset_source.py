"""Whose dataset a directory holds: the source recorded in its state directory.

An embedded staging records its source (``source.json`` beside the dataset, in
:func:`transfer.layout.state_dir_of`) before it changes a byte of the directory, so even an
interrupted staging says whose files it left; a directory staged before that record existed
is known by its READY marker, which has always named the source. Staging another source into
it is refused unless the caller asks to replace the dataset: the files of two sources would
mix, and a key both hold would be silently overwritten.

The service needs none of this: a node's dataset directory is named by its manifest digest,
so another source (or the same one, changed) is another directory.
"""

import json
import os
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from stagegate.transfer.errors import OtherDatasetError
from stagegate.transfer.sink import DatasetDir

SOURCE_RECORD = "source.json"


def source_identity(url: str) -> str:
    """``url`` spelled as every spelling of the same source is: a local path (or
    ``file:///path``) made absolute, any URL without trailing slashes (``s3://b/p/`` is the
    folder ``s3://b/p``)."""
    if "://" not in url:
        return os.path.abspath(url)  # noqa: PTH100 - textual, as the source reads it
    parts = urlsplit(url)
    if parts.scheme == "file":
        return os.path.abspath(unquote(parts.path))  # noqa: PTH100
    stripped = url.rstrip("/")
    return url if stripped.endswith(":") else stripped


def ready_selection(url: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> dict[str, object]:
    """What READY records of what was asked for, in both the embedded and the service path: the
    source as every spelling of it is known (READY's ``source`` is as typed, perhaps relative),
    and the include and exclude rules if any were given."""
    rules = {"include": list(include), "exclude": list(exclude)} if include or exclude else {}
    return {"source_identity": source_identity(url), **rules}


def recorded_source(dataset: DatasetDir) -> str | None:
    """The identity of the source whose files ``dataset`` holds, or None if nothing says."""
    recorded = dataset.read_state_json(SOURCE_RECORD)
    if recorded is not None and isinstance(recorded.get("source"), str):
        return str(recorded["source"])
    ready = dataset.read_ready()
    if ready is not None and isinstance(ready.get("source"), str):
        return source_identity(ready["source"])
    return None


def record_source(dataset: DatasetDir, url: str) -> None:
    """Say, durably and before the first byte is written, that ``dataset`` now holds ``url``'s files."""
    record = {"source": source_identity(url), "url": url}
    dataset.write_state_file(SOURCE_RECORD, [json.dumps(record).encode() + b"\n"])


def refuse_other_source(dataset: DatasetDir, url: str) -> None:
    """Raise :class:`OtherDatasetError` if ``dataset`` holds another source's files than ``url``'s."""
    held = recorded_source(dataset)
    if held is None or held == source_identity(url):
        return
    finished = "the dataset" if dataset.read_ready() is not None else "an unfinished staging"
    raise OtherDatasetError(
        f"{dataset.path} holds {finished} of {held}, not of {url}: staging {url} there would mix "
        "the two; pass --replace to replace it (its files go once the new set is verified), "
        "or stage into a new directory",
        held,
    )
