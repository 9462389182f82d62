"""Checking the trail in the database against a checkpoint an auditor holds, trusting nothing
the database says about itself: every event is read, its chain hash checked and its leaf
recomputed, and the roots at the checkpoint's size (and at the newest signed checkpoint's)
recomputed from those leaves, in one pass holding O(log n) hashes.

What it names: rows cut off the end ("missing row at seq N": the log is shorter than the
checkpoint), an edited row ("altered row at seq N": its hash no longer matches), a rewrite
with every hash after it recomputed ("rewritten": the chain checks, but the first N events no
longer hash to the signed root; the seq is named when the stored tree still holds the
original leaf), and a newest signed checkpoint that does not extend the auditor's (a
consistency proof over the stored tree between the two fails).
"""

from dataclasses import dataclass, field

from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.audit_tree import StoredSubtrees, TreeError, event_leaf
from stagegate.ledger.checkpoint_note import Checkpoint
from stagegate.ledger.checkpoints import StoredCheckpoint
from stagegate.ledger.database import READ_ONLY, Ledger
from stagegate.ledger.merkle import CompactRange, consistency_ranges, range_hash, verify_consistency
from stagegate.ledger.signed_note import NoteError
from stagegate.ledger.verify import ChainChecker

PAGE = 1000


@dataclass(frozen=True, slots=True)
class LogVerdict:
    consistent: bool
    events: int  # rows read
    checkpoint_size: int
    problems: tuple[str, ...] = ()
    latest_size: int | None = None  # the newest signed checkpoint checked along, if any
    root: bytes | None = None  # the recomputed root of every event read
    notes: tuple[str, ...] = field(default=())


def check_log(ledger: Ledger, checkpoint: Checkpoint, latest: StoredCheckpoint | None = None) -> LogVerdict:
    """Whether the events now in ``ledger`` are an append-only extension of ``checkpoint``
    (whose signature the caller has checked). With ``latest`` (the newest checkpoint the
    ledger signed, its signature checked too) also whether that one extends ``checkpoint``
    and matches the events."""
    m = checkpoint.size
    n_latest = latest.size if latest is not None and latest.size >= m else None
    chain = ChainChecker()
    chain_problem: str | None = None
    tree = CompactRange()
    root_m = root_latest = None
    first_differing: int | None = None
    rows = 0
    page: list[bytes] = []
    page_first = 1
    with ledger.engine.execution_options(**{READ_ONLY: True}).connect() as conn:
        stored = StoredSubtrees(conn)

        def compare_page() -> None:
            nonlocal first_differing
            if first_differing is None and page:
                kept = stored.leaves(page_first - 1, page_first - 2 + len(page))
                for offset, leaf in enumerate(page):
                    if (old := kept.get(page_first - 1 + offset)) is not None and old != leaf:
                        first_differing = page_first + offset
                        return

        for entry in AuditTrail(ledger).stored(page_size=PAGE):
            rows += 1
            if entry.event is None:
                if chain_problem is None:
                    verdict = chain.unreadable(entry.seq, str(entry.unreadable))
                    chain_problem = f"{verdict.problem} at seq {verdict.first_bad_seq} ({verdict.detail})"
                leaf = b"\x00" * 32  # keeps the count; the roots can no longer match
            else:
                if chain_problem is None and (bad := chain.check(entry.event)) is not None:
                    chain_problem = f"{bad.problem} at seq {bad.first_bad_seq} ({bad.detail})"
                leaf = event_leaf(entry.event)
            tree.append(leaf)
            page.append(leaf)
            if len(page) == PAGE:
                compare_page()
                page_first += len(page)
                page = []
            if tree.size == m:
                root_m = tree.root()
            if tree.size == n_latest:
                root_latest = tree.root()
        compare_page()
        proof = None
        if latest is not None and n_latest is not None:
            try:
                proof = [range_hash(s, e, stored) for s, e in consistency_ranges(m, n_latest)]
            except (TreeError, ValueError):  # the stored tree is short or damaged: no proof
                proof = None

    problems: list[str] = []
    if chain_problem is not None:
        problems.append(chain_problem)
    if rows < m:
        problems.append(
            f"missing row at seq {rows + 1}: the checkpoint signed {m} events "
            f"and the log now ends at seq {rows}"
        )
    elif m and root_m != checkpoint.root:
        where = (
            f"; seq {first_differing} differs from the leaf stored when it was signed"
            if first_differing
            else ""
        )
        problems.append(f"rewritten: events 1 to {m} no longer hash to the root the checkpoint signed{where}")
    notes: list[str] = []
    if latest is not None and n_latest is not None:
        if proof is None or not verify_consistency(m, n_latest, checkpoint.root, latest.root, proof):
            problems.append(
                f"the ledger's newest checkpoint ({n_latest} events) "
                "is not an append-only extension of this one"
            )
        if rows < n_latest:
            problems.append(
                f"missing row at seq {rows + 1}: the ledger's newest checkpoint signed {n_latest} events "
                f"and the log now ends at seq {rows}"
            )
        elif root_latest != latest.root:
            problems.append(
                f"events 1 to {n_latest} no longer hash to the root of the ledger's newest checkpoint"
            )
        if not problems:
            notes.append(f"the ledger's newest checkpoint ({n_latest} events) extends it")
    return LogVerdict(
        consistent=not problems,
        events=rows,
        checkpoint_size=m,
        problems=tuple(problems),
        latest_size=n_latest,
        root=tree.root(),
        notes=tuple(notes),
    )


@dataclass(frozen=True, slots=True)
class LatestCheck:
    """The ledger's newest checkpoint, its signature checked with the key stored beside it,
    and (when asked) whether the events now in the trail extend it."""

    signature_ok: bool
    consistent: bool | None = None  # None: the trail was not read
    problems: tuple[str, ...] = ()


def check_latest(ledger: Ledger, latest: StoredCheckpoint, *, against_log: bool) -> LatestCheck:
    """What GET /v1/audit/checkpoint and the integrity page report about ``latest``; with
    ``against_log`` the whole trail is read (:func:`check_log`)."""
    try:
        opened = latest.opened()
    except NoteError:
        if not against_log:
            return LatestCheck(signature_ok=False)
        return LatestCheck(signature_ok=False, consistent=False, problems=("the signature does not check",))
    if not against_log:
        return LatestCheck(signature_ok=True)
    verdict = check_log(ledger, opened.checkpoint)
    return LatestCheck(signature_ok=True, consistent=verdict.consistent, problems=tuple(verdict.problems))
