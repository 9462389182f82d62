"""One label-file size limit: the engine's reader, the policy's parser and the egress worker's
reader accept a label file of exactly the limit and refuse one byte more, all three."""

import os
from pathlib import Path

import pytest

from stagegate.errors import StagegateError
from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.policies.labels import parse_label_file
from stagegate.transfer.plan import plan_dataset
from stagegate.transfer.sources import open_source
from stagegate.workers.egress_labels import read_label_file_at


def label_file(directory: Path, size: int) -> Path:
    """A ``.classification`` of ``size`` bytes: one word, padded with spaces (still one word)."""
    directory.mkdir()
    path = directory / ".classification"
    path.write_bytes(b"public" + b" " * (size - len(b"public") - 1) + b"\n")
    assert path.stat().st_size == size
    return path


def read_by_engine(path: Path) -> str:
    """As planning reads it: the engine's own bound, before the policy parses a byte."""
    plan = plan_dataset(open_source(str(path.parent)), path.parent.parent / "plan.jsonl", path.name)
    return plan.label_files[""].content.decode().strip()


def read_by_egress(path: Path) -> str | None:
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return read_label_file_at(fd, path.name, str(path))
    finally:
        os.close(fd)


READERS = {
    "engine": read_by_engine,
    "policy": lambda path: parse_label_file(path.read_bytes(), str(path)),
    "egress": read_by_egress,
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_label_file_of_exactly_the_limit_is_read(tmp_path: Path, reader: str) -> None:
    assert READERS[reader](label_file(tmp_path / "ds", MAX_LABEL_FILE_BYTES)) == "public"


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_label_file_one_byte_over_the_limit_is_refused(tmp_path: Path, reader: str) -> None:
    path = label_file(tmp_path / "ds", MAX_LABEL_FILE_BYTES + 1)
    with pytest.raises(StagegateError, match=str(MAX_LABEL_FILE_BYTES + 1)):
        READERS[reader](path)
