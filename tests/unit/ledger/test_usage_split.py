"""The split of a completed staging's bytes into moved and reused, from its events alone: the
pure part of the usage report (``ledger.usage._Report``), on events built in code."""

from datetime import UTC, datetime, timedelta

from stagegate.ledger.events import AuditEvent
from stagegate.ledger.usage import _Report

T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)


def event(seq: int, action: str, job: str, **details: object) -> AuditEvent:
    return AuditEvent(
        seq=seq, time=T0 + timedelta(minutes=seq), actor="alice", role="scientist", action=action,
        job_id=job, job_ref=None, source="s3://b/ds", destination="nodes:a,b", bytes=0, files=0,
        manifest_digest=None, policy_version=None, decision=None, reasons=(), details=details,
        prev_hash="", hash="",
    )  # fmt: skip


def report(*events: AuditEvent) -> tuple[int, int, int]:
    """(bytes_from_source, bytes_from_peers, bytes_from_cache) of alice's one row."""
    r = _Report("all", None, T0 + timedelta(hours=1))
    for e in events:
        r.take(e, "alice")
    (row,) = r.rows()
    return row.bytes_from_source, row.bytes_from_peers, row.bytes_from_cache


def test_copied_nodes_move_the_others_reuse() -> None:
    allowed = event(1, "policy.allowed", "j", node_bytes={"a": 100, "b": 100}, cache_hits=["b"], copied=["a"])
    assert report(allowed, event(2, "stage.completed", "j")) == (100, 0, 100)


def test_a_node_waiting_for_another_stagings_copy_reuses_it() -> None:
    # Neither a hit (not ready yet) nor copied by this staging: another one writes it.
    allowed = event(1, "policy.allowed", "j", node_bytes={"a": 100}, cache_hits=[], copied=[])
    assert report(allowed, event(2, "stage.completed", "j")) == (0, 0, 100)


def test_a_hit_that_failed_its_check_is_copied_afresh() -> None:
    hits = ["a", "b"]
    allowed = event(1, "policy.allowed", "j", node_bytes={"a": 100, "b": 50}, cache_hits=hits, copied=[])
    quarantined = event(2, "dataset.quarantined", "j", node="a", found_by="verify")
    scrubbed = event(3, "dataset.quarantined", "j", node="b", found_by="scrub")  # not this staging's copy
    assert report(allowed, quarantined, scrubbed, event(4, "stage.completed", "j")) == (100, 0, 50)


def test_events_from_before_copied_was_recorded_count_every_non_hit_as_moved() -> None:
    allowed = event(1, "policy.allowed", "j", node_bytes={"a": 100, "b": 70}, cache_hits=["b"])
    assert report(allowed, event(2, "stage.completed", "j")) == (100, 0, 70)


def test_bytes_a_node_copied_from_a_peer_are_not_read_from_the_source_again() -> None:
    held = {"a": 100, "b": 100, "c": 100}
    allowed = event(1, "policy.allowed", "j", node_bytes=held, copied=["a", "b", "c"])
    copied_from = {"a": {"source": 100}, "b": {"a": 100}, "c": {"a": 60, "source": 40}}
    completed = event(2, "stage.completed", "j", copied_from=copied_from)
    # Moved from peers is its own column: not read from the source, not reused from a cache.
    assert report(allowed, completed) == (140, 160, 0)


def test_peer_linked_and_hit_bytes_each_land_in_their_own_column() -> None:
    held = {"a": 100, "b": 100, "c": 100}
    allowed = event(1, "policy.allowed", "j", node_bytes=held, cache_hits=["c"], copied=["a", "b"])
    copied_from = {"a": {"source": 70}, "b": {"a": 100}}
    completed = event(2, "stage.completed", "j", copied_from=copied_from, node_bytes_from_cache={"a": 30})
    assert report(allowed, completed) == (70, 100, 130)


def test_no_byte_counts_twice_when_the_events_claim_more_than_was_copied() -> None:
    allowed = event(1, "policy.allowed", "j", node_bytes={"a": 100, "b": 100}, copied=["a", "b"])
    # More than b holds from peers, and all of a linked: each clamped, none below zero.
    copied_from = {"b": {"a": 150}}
    completed = event(2, "stage.completed", "j", copied_from=copied_from, node_bytes_from_cache={"a": 100})
    assert report(allowed, completed) == (0, 100, 100)
