"""When written data is forced to stable storage: a choice the caller makes (``--durability``)
and the engine carries out, so it lives here, where both may name it."""

from enum import StrEnum


class Durability(StrEnum):
    """When written data is forced to stable storage."""

    FILE = "file"  # fsync every file before it is renamed into place
    BATCH = "batch"  # one syncfs() for each group of finished files, before they are recorded
