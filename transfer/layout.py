"""Where a dataset's state lives: beside its directory, never inside it.

A staged directory holds exactly the dataset, so a loader that takes every sub-directory as
a class (torchvision's ``ImageFolder``) or a ``du`` sees only the source's files. The state
(manifest, READY, temporary files, batch records, lock) of ``PARENT/NAME`` is the
sibling ``PARENT/.stagegate-NAME``: in the same parent, so on the same filesystem as the
dataset (renames from its ``tmp/`` stay atomic; :class:`transfer.sink.DatasetDir` checks it);
one per dataset; a stale one is one directory to remove; two datasets under one parent
never share one, because names ``.stagegate-*`` are refused as datasets. The same rule holds
in both modes: a node's ``<root>/datasets/<digest>`` keeps its state in
``<root>/datasets/.stagegate-<digest>``.
"""

import os
from pathlib import Path

from stagegate.errors import InvalidInputError
from stagegate.transfer.keys import MAX_SEGMENT_BYTES, STATE_DIR

STATE_PREFIX = STATE_DIR + "-"
# Where the state sat before it moved out: a directory staged by an older stagegate has it.
LEGACY_STATE_DIR = STATE_DIR


def state_dir_of(dataset_dir: str | os.PathLike[str]) -> Path:
    """The state directory of the dataset at ``dataset_dir`` (made absolute, not resolved:
    every reader naming the dataset the same way finds the same state). Raises
    :class:`InvalidInputError` for a path that cannot have one beside it."""
    given = os.fspath(dataset_dir)
    if not given.strip():
        raise InvalidInputError("the dataset directory is empty: name the directory to stage into")
    # Textual, not resolve(): a symlink the operator chose as the dataset keeps its state beside it.
    path = Path(os.path.abspath(given))  # noqa: PTH100
    name = path.name
    if not name:
        raise InvalidInputError(
            f"cannot stage into {path}: its state directory lives beside it, and it has no parent; "
            "name a directory below it"
        )
    if name.startswith(STATE_PREFIX):
        raise InvalidInputError(
            f"cannot stage into {path}: names starting with {STATE_PREFIX!r} are reserved for "
            "stagegate's state directories; choose another name"
        )
    state_name = STATE_PREFIX + name
    if len(state_name.encode("utf-8", "surrogateescape")) > MAX_SEGMENT_BYTES:
        raise InvalidInputError(
            f"cannot stage into {path}: its name is too long to name its state directory "
            f"{state_name!r} (at most {MAX_SEGMENT_BYTES - len(STATE_PREFIX)} bytes); choose a shorter name"
        )
    return path.parent / state_name
