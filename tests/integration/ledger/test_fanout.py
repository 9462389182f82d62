"""Peer fan-out's scheduling in the ledger, on each backend: which batches of a replicated
staging are sent at once, which wait for a peer to verify them, and who is asked for them."""

from stagegate.ledger import (
    BatchRange,
    Ledger,
    NodePortion,
    Nodes,
    Principal,
    StagingRequests,
    StagingSteps,
    TaskKey,
    Tasks,
)
from stagegate.ledger.fanout import Fanout, Peer, origins_in

WHO = Principal("alice", "scientist", None, "token-id")
DIGEST = "f" * 64
BATCHES = [BatchRange(f"k{i}0", f"k{i}9", 10, 1000) for i in range(3)]


def admitted(ledger: Ledger, copying: tuple[str, ...], nodes: tuple[str, ...]) -> str:
    """A replicated staging onto ``nodes`` of which only ``copying`` copy (the rest had it)."""
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    staging, _, (plan,) = requests.submit(WHO, source="s3://b/ds", nodes=list(nodes))
    assert tasks.claim(plan, "planner") is not None and steps.begin_planning(staging.id)
    portions = [NodePortion(n, DIGEST, 30, 3000, BATCHES if n in copying else []) for n in nodes]
    steps.admit(staging.id, plan, "planner", portions, {})
    return staging.id


def serve(ledger: Ledger, *nodes: str) -> None:
    for node in nodes:
        Nodes(ledger).heartbeat(node, f"/nvme/{node}", 1 << 40, f"{node}@host:1", f"http://{node}:7070")


def copy(job: str, node: str, idx: int) -> TaskKey:
    return TaskKey(job, "copy", node, idx)


def done(ledger: Ledger, key: TaskKey, origin: str) -> None:
    tasks = Tasks(ledger, 30)
    assert tasks.claim(key, "w") is not None and tasks.finish(key, "w", 10, 1000, origin)


def test_the_others_wait_for_the_reader_batch_by_batch(ledger: Ledger) -> None:
    serve(ledger, "a", "b", "c")
    job = admitted(ledger, ("a", "b", "c"), ("a", "b", "c"))
    fanout, tasks = Fanout(ledger, 1), Tasks(ledger, 30)
    ready = tasks.next_to_send(job)
    assert fanout.sendable(ready, ("a", "b", "c"), True) == [copy(job, "a", 0), copy(job, "a", 1)]
    done(ledger, copy(job, "a", 0), "source")
    sent = fanout.sendable(tasks.next_to_send(job), ("a", "b", "c"), True)
    assert copy(job, "b", 0) in sent and copy(job, "c", 0) in sent
    assert copy(job, "b", 1) not in sent and copy(job, "c", 1) not in sent
    assert fanout.holders(copy(job, "b", 0)) == [Peer("a", "http://a:7070")]
    assert fanout.holders(copy(job, "b", 1)) == []
    # Once b has it too, c may ask either; a shard is never held back.
    done(ledger, copy(job, "b", 0), "a")
    assert {p.node for p in fanout.holders(copy(job, "c", 0))} == {"a", "b"}
    assert fanout.sendable(tasks.next_to_send(job), ("a", "b", "c"), False) == tasks.next_to_send(job)
    with ledger.read_session() as session, session.begin():
        assert origins_in(session, job) == {"a": {"source": 1000}, "b": {"a": 1000}}


def test_a_node_that_had_the_dataset_cached_is_no_reader(ledger: Ledger) -> None:
    serve(ledger, "a", "b", "c")
    job = admitted(ledger, ("b", "c"), ("a", "b", "c"))  # a: a cache hit, no batch to copy
    sent = Fanout(ledger, 1).sendable(Tasks(ledger, 30).next_to_send(job), ("a", "b", "c"), True)
    assert {k.node for k in sent if k.kind == "copy"} == {"b"}


def test_without_a_serving_node_or_with_fan_out_off_every_node_reads_the_source(ledger: Ledger) -> None:
    Nodes(ledger).heartbeat("a", "/nvme/a", 1 << 40, "a@host:1")
    Nodes(ledger).heartbeat("b", "/nvme/b", 1 << 40, "b@host:1")
    job = admitted(ledger, ("a", "b"), ("a", "b"))
    ready = Tasks(ledger, 30).next_to_send(job)
    assert Fanout(ledger, 1).sendable(ready, ("a", "b"), True) == ready
    serve(ledger, "a", "b")
    assert Fanout(ledger, 0).sendable(ready, ("a", "b"), True) == ready


def test_a_batch_spreads_as_a_tree_each_holder_serving_a_bounded_number(ledger: Ledger) -> None:
    """One reader, one copy from peers in flight per holder: b copies batch 0 from a, then c and
    d may copy it from a or b; none waits for the reader alone."""
    serve(ledger, "a", "b", "c", "d")
    nodes = ("a", "b", "c", "d")
    job = admitted(ledger, nodes, nodes)
    fanout, tasks = Fanout(ledger, 1, per_holder=1), Tasks(ledger, 30)

    def sent_now() -> set[TaskKey]:
        """The receivers' batches sent now (the reader's go as its window allows)."""
        sent = fanout.sendable(tasks.next_to_send(job), nodes, True)
        tasks.mark_sent(sent)
        return {k for k in sent if k.node != "a"}

    assert sent_now() == set()
    done(ledger, copy(job, "a", 0), "source")
    assert sent_now() == {copy(job, "b", 0)}  # a holds batch 0: one receiver at a time
    assert sent_now() == set()  # b's copy is in flight: the others wait for it
    done(ledger, copy(job, "b", 0), "a")
    assert sent_now() == {copy(job, "c", 0), copy(job, "d", 0)}  # a and b hold it: two at once
    assert {p.node for p in fanout.holders(copy(job, "d", 0))} == {"a", "b"}
