"""Walking the hash chain: the checks, independent of where the events come from."""

from stagegate.ledger.chain import GENESIS_HASH, event_hash
from stagegate.ledger.events import AuditEvent, ChainVerdict

ALTERED = "altered row"
MISSING = "missing row"
BROKEN_LINK = "broken link"
HEAD_MISMATCH = "head mismatch"


class ChainChecker:
    """Feed events in seq order to :meth:`check`; it returns a verdict at the first problem.
    Holds only the previous row, so a chain of any length is checked in constant memory."""

    def __init__(self, expected_head: tuple[int, str] | None = None) -> None:
        # ``expected_head`` is a (seq, hash) exported earlier. It catches what the chain alone
        # cannot: rows deleted from the end (no gap is left) and a chain re-hashed from scratch.
        self._anchor = expected_head
        self.checked = 0
        self._last_seq = 0
        self._last_hash = GENESIS_HASH

    def _bad(self, seq: int, problem: str, detail: str) -> ChainVerdict:
        return ChainVerdict(
            intact=False, checked=self.checked, first_bad_seq=seq, problem=problem, detail=detail
        )

    def check(self, event: AuditEvent) -> ChainVerdict | None:
        expected = self._last_seq + 1
        if event.seq != expected:
            # Name the first seq that is gone: the row an auditor has to go and find.
            return self._bad(expected, MISSING, f"seq {self._last_seq} is followed by seq {event.seq}")
        if event_hash(event.prev_hash, event.hashed_fields()) != event.hash:
            return self._bad(event.seq, ALTERED, "the stored hash does not match the row's content")
        if event.prev_hash != self._last_hash:
            return self._bad(event.seq, BROKEN_LINK, f"prev_hash is not the hash of seq {self._last_seq}")
        if self._anchor is not None and event.seq == self._anchor[0] and event.hash != self._anchor[1]:
            return self._bad(event.seq, HEAD_MISMATCH, "the row's hash is not the anchored one")
        self.checked += 1
        self._last_seq, self._last_hash = event.seq, event.hash
        return None

    def unreadable(self, seq: int, why: str) -> ChainVerdict:
        """A row whose stored fields cannot even be decoded was altered."""
        if seq != self._last_seq + 1:
            return self._bad(self._last_seq + 1, MISSING, f"seq {self._last_seq} is followed by seq {seq}")
        return self._bad(seq, ALTERED, f"the row cannot be decoded: {why}")

    def finish(self) -> ChainVerdict:
        """The verdict once every event was checked."""
        if self._anchor is not None and self._last_seq < self._anchor[0]:
            return self._bad(
                self._last_seq + 1,
                MISSING,
                f"the chain ends at seq {self._last_seq} but the anchored head is seq {self._anchor[0]}",
            )
        return ChainVerdict(intact=True, checked=self.checked)
