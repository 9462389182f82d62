"""Where a copy batch reads its bytes: from a peer node that holds the batch verified, if the
ledger knows one, else from the staging's source.

The peers are tried in turn (:meth:`ledger.fanout.Fanout.holders`); one that is gone, answers
wrongly or serves a byte that does not match the manifest's BLAKE3 fails its attempt with a
:class:`TransferError`, and the next is tried. Files an attempt verified stay (the batch record
keeps them), so the next peer, or the source, copies only the rest.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stagegate.ledger import TaskKey
from stagegate.ledger.fanout import Fanout
from stagegate.ledger.manifests import ManifestEntry
from stagegate.transfer import CopiedFile, SourceObject, TransferConfig, copy_batch
from stagegate.transfer.errors import TransferError
from stagegate.transfer.progress import ProgressCallback
from stagegate.transfer.staging_steps import BatchResult
from stagegate.workers.peer_source import PeerSource

log = logging.getLogger(__name__)


def labels_of_the_source_reader(obj: SourceObject, now: str | None) -> str | None:
    """The label gate of a copy from a peer: the node that read the object from the source
    checked its own label then, and the manifest holds what it decided (nothing to add)."""
    return None


def copied_from_a_peer(record: CopiedFile) -> bool:
    """True for a file's record made from a peer's copy: checked against the manifest's
    BLAKE3, which no source publishes (:data:`transfer.checksums.SOURCE_ALGORITHMS`)."""
    return record.source_checksum == f"blake3:{record.blake3}"


@dataclass(frozen=True, slots=True)
class BatchOrigins:
    """The peers of one worker: ``secret`` is the worker credential (None: no fan-out)."""

    fanout: Fanout
    secret: str | None

    def peers(self, key: TaskKey, entries: Sequence[ManifestEntry]) -> list[PeerSource]:
        """Sources for ``key``'s batch, one per live peer holding it verified; none where a
        file has no recorded BLAKE3 to check a peer's copy by."""
        expected = {e.key: e.blake3 for e in entries if e.blake3}
        if self.secret is None or self.fanout.readers < 1 or len(expected) != len(entries):
            return []  # fan-out off, or a file nothing could be checked by
        return [PeerSource(p, key.job_id, key.idx, self.secret, expected) for p in self.fanout.holders(key)]

    def copy_from_peers(
        self,
        key: TaskKey,
        entries: Sequence[ManifestEntry],
        objects: Sequence[SourceObject],
        destination: Path,
        config: TransferConfig,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[BatchResult, str] | None:
        """(result, peer node) of the first peer that gave the whole batch verified, or None
        if none did (or none holds it): the caller reads the source."""
        for source in self.peers(key, entries):
            try:
                result = copy_batch(
                    source,
                    destination,
                    key.idx,
                    objects,
                    config,
                    on_progress=on_progress,
                    label_gate=labels_of_the_source_reader,
                )
            except TransferError as exc:
                log.warning(
                    "batch %d of %s from peer %s failed, trying the next: %s",
                    key.idx,
                    key.job_id,
                    source.peer.node,
                    exc,
                )
                continue
            finally:
                source.close()  # its kept connections: the server's thread for each ends too
            return result, source.peer.node
        return None
