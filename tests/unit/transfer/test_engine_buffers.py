"""The engine's memory bound, structurally: a copying thread holds one chunk at a time, so
however big the files, at most ``concurrency`` chunks are read and not yet written. Counted
with a fake source and a fake writer (pure bookkeeping, no I/O)."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from stagegate.transfer.engine import CopyEngine, TransferConfig
from stagegate.transfer.objects import SourceObject
from stagegate.transfer.parts import PartRule
from stagegate.transfer.progress import ProgressTracker
from stagegate.transfer.sources.base import PublishedChecksum

CHUNK = 1024


@dataclass
class Ledger:
    """Chunks handed out by readers and not yet taken by a writer, and the most at once."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    out: int = 0
    peak: int = 0
    biggest_write: int = 0

    def read(self) -> None:
        with self.lock:
            self.out += 1
            self.peak = max(self.peak, self.out)

    def written(self, n: int) -> None:
        with self.lock:
            self.out -= 1
            self.biggest_write = max(self.biggest_write, n)


class Reader:
    published: PublishedChecksum | None = None

    def __init__(self, size: int, ledger: Ledger) -> None:
        self._left = size
        self._ledger = ledger

    def read(self, n: int, /) -> bytes:
        if self._left == 0:
            return b""
        take = min(n, self._left)
        self._left -= take
        self._ledger.read()
        return b"x" * take

    def own_label(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class Source:
    url = "fake://"
    prefers_ranged_reads = False

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def list(self) -> Iterator[SourceObject]:
        return iter(())

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> Reader:
        return Reader(obj.size, self._ledger)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        return None

    def own_label(self, obj: SourceObject) -> str | None:
        return None

    def find(self, key: str) -> SourceObject | None:
        return None


class Temp:
    fd = None

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> None:
        self.size += len(data)
        self._ledger.written(len(data))

    def write_at(self, offset: int, data: bytes | memoryview, /) -> None:
        raise AssertionError("not positional")


class Writer:
    where = "fake:"
    positional = False
    read_back_algorithm = "crc32"
    part_rule = PartRule()

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.committed: dict[tuple[str, ...], int] = {}

    def open_temp(self, parts: tuple[str, ...], size: int, part_size: int) -> Temp:
        return Temp(self._ledger)

    def commit(self, temp: Temp, parts: tuple[str, ...], checksum: str | None) -> int:
        assert checksum is not None  # computed while reading, for the writer to check
        self.committed[parts] = temp.size
        return 0

    def discard(self, temp: Temp) -> None:
        pass


def test_at_most_one_chunk_per_copying_thread_is_in_flight() -> None:
    ledger = Ledger()
    writer = Writer(ledger)
    objects = [SourceObject(f"f{i}", 300 * CHUNK + i) for i in range(12)]
    config = TransferConfig(concurrency=3, chunk_size=CHUNK)
    tracker = ProgressTracker(len(objects), sum(o.size for o in objects), None)

    with CopyEngine(Source(ledger), writer, config, tracker) as engine:
        records = engine.collect([engine.submit(o, None) for o in objects])

    assert writer.committed == {(o.key,): o.size for o in objects}
    assert all(r.destination_checksum and r.destination_checksum.startswith("crc32:") for r in records)
    assert ledger.out == 0
    assert 1 <= ledger.peak <= config.concurrency
    assert ledger.biggest_write <= CHUNK

