"""A peer's verified batch as a :class:`transfer.sources.Source`: where a copy batch reads its
bytes when another node already holds the batch verified (:mod:`workers.peer_server`).

Each file is published with the BLAKE3 the manifest recorded when the batch was verified from
the source, so the copy engine checks the peer's bytes against it as it checks a source's
published checksum: a peer that serves a changed byte fails that file
(``ChecksumMismatchError``), and the copy step takes the batch from another peer or the
source. A peer that is gone fails the read (``SourceReadError``) the same way.

The files of a batch are asked for over kept-alive connections (HTTP/1.1): a batch of small
files cost a TCP connection and a server thread per file before, which made the peer's CPU per
file served several times its CPU per file copied.
"""

import http.client
import threading
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

from stagegate.ledger.fanout import Peer
from stagegate.transfer.errors import SourceReadError
from stagegate.transfer.label_sources import LabelFileAbove
from stagegate.transfer.objects import SourceObject
from stagegate.transfer.sources.base import PublishedChecksum
from stagegate.workers.peer_paths import peer_path

TIMEOUT_S = 30.0


class _PeerReader:
    """One file streamed from a peer; ``release`` takes its connection back once the whole
    body was read (a connection left mid-body, or one the peer will close, is closed)."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        published: PublishedChecksum,
        release: Callable[[http.client.HTTPConnection], None],
    ) -> None:
        self._connection = connection
        self._response = response
        self._release = release
        self.published: PublishedChecksum | None = published

    def read(self, n: int, /) -> bytes:
        return self._response.read(n)

    def readinto(self, buffer: memoryview, /) -> int:
        return self._response.readinto(buffer)

    def own_label(self) -> str | None:
        return None  # decided by the node that read the object from the source (the manifest's)

    def close(self) -> None:
        whole = self._response.isclosed() and not self._response.will_close  # every byte of its length read
        self._response.close()
        if whole:
            self._release(self._connection)
        else:
            self._connection.close()


class PeerSource:
    """Batch ``idx`` of ``job_id`` as ``peer`` holds it; ``expected`` maps each key to the
    BLAKE3 hex the manifest recorded for it. Only opens objects: it lists nothing. ``close``
    ends its kept connections."""

    prefers_ranged_reads = False
    labels_listed = True  # nothing to read at copy time: the source reader decided the labels

    def __init__(self, peer: Peer, job_id: str, idx: int, secret: str, expected: Mapping[str, str]) -> None:
        self.peer = peer
        self.url = f"{peer.url}{peer_path(job_id, idx, '')}"
        self._job_id, self._idx = job_id, idx
        self._authorization = f"Bearer {secret}"
        self._expected = expected
        split = urlsplit(peer.url)
        self._https = split.scheme == "https"
        self._host, self._port = split.hostname or "", split.port
        self._idle: list[http.client.HTTPConnection] = []
        self._closed = False
        self._lock = threading.Lock()  # the copy engine opens files from several threads

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection (True) or a new one (False)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=TIMEOUT_S), False
        return http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_S), False

    def _keep(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    def _ask(self, key: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        while True:
            connection, kept = self._connection()
            try:
                connection.request(
                    "GET",
                    peer_path(self._job_id, self._idx, key),
                    headers={"Authorization": self._authorization},
                )
                return connection, connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if not kept:
                    raise SourceReadError(f"{key}: peer {self.peer.node} did not answer: {exc}") from exc
                # A kept connection the peer has since closed (its idle timeout): ask on a new one.

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> _PeerReader:
        if offset or length is not None:
            raise SourceReadError(f"{obj.key}: a peer serves whole files only")
        expected = self._expected.get(obj.key)
        if expected is None:
            raise SourceReadError(f"{obj.key}: no verified BLAKE3 in the manifest to check a peer's copy by")
        connection, response = self._ask(obj.key)
        if response.status != 200:
            response.close()
            connection.close()
            raise SourceReadError(f"{obj.key}: peer {self.peer.node} answered {response.status}")
        return _PeerReader(connection, response, PublishedChecksum("blake3", expected), self._keep)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        expected = self._expected.get(obj.key)
        return None if expected is None else PublishedChecksum("blake3", expected)

    def own_label(self, obj: SourceObject) -> str | None:
        return None

    def list(self) -> Iterator[SourceObject]:
        raise SourceReadError("a peer's batch is copied by key, never listed")

    def find(self, key: str) -> SourceObject | None:
        raise SourceReadError("a peer's batch is copied by key, never looked up")

    def label_files_above(self, name: str) -> tuple[LabelFileAbove, ...]:
        return ()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
