"""The peer server: a node worker serves the files of its verified copy batches to the other
node workers, over HTTP on the cluster network, so a replicated staging reads the source once.

What it may serve, and to whom (the security model):

- Only a caller presenting the worker credential (``Authorization: Bearer``, the shared secret
  of ``STAGEGATE_PEER_SECRET_FILE``), compared in constant time. Anything else gets 401 and
  nothing more. The credential is never logged, put in a task message or an audit row.
- A request names identifiers only, ``GET /v1/peer/<job>/<batch>/<key>``. It is served only if
  the ledger lists that batch of this node as done (every file verified) and ``key`` is an
  entry of the job's manifest inside the batch's key range. The file is then opened below
  this node's dataset directory of that job (``<root>/datasets/<digest>``, checked as the
  copy step checks it), one segment at a time without following any link, and must be a
  regular file of the manifest's size. No part of the request reaches the filesystem before
  it is found in the ledger, so ``..``, a symlink, another dataset's key or a file outside the
  root all get 404.
- The receiver trusts none of it: it checks every file against the BLAKE3 the manifest
  recorded when the batch was verified (:mod:`workers.peer_source`).
"""

import hmac
import io
import logging
import os
import socket
import stat
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stagegate.errors import StagegateError
from stagegate.ledger import TaskKey
from stagegate.states import TaskState
from stagegate.transfer.endpoints.path import walk_below
from stagegate.transfer.keys import key_parts
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.peer_paths import parse_peer_path

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in the dataset must not block a server thread on open.
_LEAF = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class NotServedError(StagegateError):
    """The request names nothing this node serves (answered 404, whatever the reason)."""


@dataclass(frozen=True, slots=True)
class ServedFile:
    fd: int
    size: int


@dataclass(frozen=True, slots=True)
class _BatchFiles:
    """What never changes about a verified batch: its manifest entries' sizes, by key, and the
    dataset directory they lie in."""

    sizes: Mapping[str, int]
    directory: Path


class PeerFiles:
    """Resolves a request to an open file of this node's verified batches, or refuses it.

    Every request reads the batch's task, so a batch the ledger stops listing as done is
    refused from the next request on. The rest (the staging's manifest entries of the batch's
    key range, its dataset directory) is fixed once the batch is verified, so it is read once
    per batch and kept for the next files (up to ``KEPT_BATCHES`` batches): a receiver asks
    for every file of a batch in turn, and reading all of it per file cost three ledger reads
    a file (10-15 ms of a worker's CPU per file served, measured on loopback)."""

    KEPT_BATCHES = 64

    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._kept: OrderedDict[tuple[str, int, str, str], _BatchFiles] = OrderedDict()
        self._lock = threading.Lock()  # the server answers in a thread per connection

    def _batch(self, job_id: str, idx: int, key_from: str, key_to: str) -> _BatchFiles:
        handle = (job_id, idx, key_from, key_to)
        with self._lock:
            if (kept := self._kept.get(handle)) is not None:
                self._kept.move_to_end(handle)
                return kept
        ctx = self._ctx
        job = ctx.stagings.job(job_id)
        entries = ctx.manifests.entries(job.plan_job, first=key_from, through=key_to)
        _, directory, _, _ = ctx.dataset_dir(job_id)
        batch = _BatchFiles({e.key: e.size for e in entries}, directory)
        with self._lock:
            self._kept[handle] = batch
            while len(self._kept) > self.KEPT_BATCHES:
                self._kept.popitem(last=False)
        return batch

    def open(self, path: str) -> ServedFile:
        job_id, idx, key = parse_peer_path(path)
        ctx = self._ctx
        task = ctx.tasks.get(TaskKey(job_id, "copy", ctx.settings.node, idx))
        if task is None or task.state != TaskState.DONE or task.key_from is None or task.key_to is None:
            raise NotServedError("no such verified batch on this node")
        if not task.key_from <= key <= task.key_to:
            raise NotServedError("key outside the batch")
        batch = self._batch(job_id, idx, task.key_from, task.key_to)
        size = batch.sizes.get(key)
        if size is None:
            raise NotServedError("key not in the manifest")
        parts = key_parts(key)  # the manifest's keys passed this when planned; checked again all the same
        fd = walk_below(os.open(batch.directory, _DIR), (), parts[:-1], create=False)
        try:
            leaf = os.open(parts[-1], _LEAF, dir_fd=fd)
        finally:
            os.close(fd)
        st = os.fstat(leaf)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            os.close(leaf)
            raise NotServedError("not the regular file the manifest lists")
        return ServedFile(leaf, st.st_size)


def _send(connection: socket.socket, served: ServedFile) -> bool:
    """Write the file's bytes to the connection: in the kernel (``sendfile``) where the socket
    allows (not through Python a chunk at a time), else read and sent (a TLS socket). False if
    the file ended short of its size (cut since it was opened)."""
    if served.size == 0:
        return True  # sendfile refuses a count of 0: an empty file has no body to send
    with io.FileIO(served.fd, closefd=False) as file:
        return connection.sendfile(file, 0, served.size) == served.size


def _handler(files: PeerFiles, secret: str) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {secret}".encode()

    class PeerHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes on a kept connection: with Nagle's
        # algorithm the body waits for the receiver's delayed ACK of the headers (11 ms a file
        # measured on loopback, 13x the wall time of a batch of small files).
        disable_nagle_algorithm = True
        timeout = 60  # seconds a connection may sit idle: a silent client does not hold a thread

        def do_GET(self) -> None:
            given = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                self._refuse(401)
                return
            try:
                served = files.open(self.path)
            except (StagegateError, OSError, ValueError) as exc:
                log.info("peer request refused (%s): %s", type(exc).__name__, self.path[:300])
                self._refuse(404)
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(served.size))
                self.end_headers()
                if not _send(self.connection, served):
                    self.close_connection = True  # the body is short: the receiver must see it end
            finally:
                os.close(served.fd)

        def _refuse(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            log.debug("peer %s " + format, self.client_address[0], *args)

    return PeerHandler


class PeerServer:
    """The peer server of one worker, in a thread of its own; ``stop`` ends it."""

    def __init__(self, ctx: NodeContext, host: str, port: int, secret: str) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(PeerFiles(ctx), secret))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="peer-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> "PeerServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
