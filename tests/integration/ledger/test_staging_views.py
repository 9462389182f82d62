"""The read model of service stagings: a list costs a fixed number of statements, however many
stagings it holds, and says of each exactly what its own view says."""

import dataclasses

from integration.ledger.helpers import sql_statements
from stagegate.ledger import (
    BatchRange,
    Ledger,
    NodePortion,
    Nodes,
    Principal,
    Staging,
    StagingRequests,
    StagingSteps,
    StagingViews,
    Tasks,
)

WHO = Principal("alice", "scientist", "vision", "token-id")
ADMIN = Principal("root", "admin", None, "token-id-admin")


def stagings_in_every_state(ledger: Ledger, n: int, start: int = 0) -> None:
    """``n`` rounds of: one pending, one transferring (a batch half done), one sharing another's
    share (so it shows the writer's progress), one denied."""
    registry = Nodes(ledger)
    for node in ("a", "b"):
        registry.heartbeat(node, f"/nvme/{node}", 1 << 40, f"{node}@host:1")
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    for i in range(start, start + n):
        requests.submit(WHO, source=f"s3://b/pending-{i}", nodes=["a"])
        digest = f"{i:064x}"
        for nodes in (["a", "b"], ["a"]):
            staging, _, (plan,) = requests.submit(WHO, source=f"s3://b/ds-{i}", nodes=nodes)
            assert tasks.claim(plan, "planner") is not None and steps.begin_planning(staging.id)
            batches = [BatchRange("k0", "k9", 10, 1000), BatchRange("l0", "l9", 10, 1000)]
            portions = [NodePortion(node, digest, 20, 2000, batches) for node in nodes]
            assert steps.admit(staging.id, plan, "planner", portions, {}).state == "transferring"
            if len(nodes) == 2:
                (first, _) = tasks.mark_sent(tasks.next_to_send(staging.id, "a"))
                assert tasks.claim(first, "w") is not None
                assert tasks.renew(first, "w", 4, 400)
        denied, _, (plan,) = requests.submit(WHO, source=f"s3://b/secret-{i}", nodes=["b"])
        assert tasks.claim(plan, "planner") is not None and steps.begin_planning(denied.id)
        steps.deny(denied.id, plan, "planner", [f"secret-{i} is restricted"], {})


def timeless(staging: Staging) -> Staging:
    """The staging without its rate and ETA, which move with the clock between two reads."""
    progress = dataclasses.replace(staging.progress, rate_bytes_per_s=None, eta_seconds=None)
    return dataclasses.replace(staging, progress=progress)


def test_listing_stagings_takes_the_same_few_statements_for_4_or_24(ledger: Ledger) -> None:
    views = StagingViews(ledger)
    stagings_in_every_state(ledger, 1)
    with sql_statements(ledger) as few:
        assert len(views.for_principal(WHO)) == 4
    stagings_in_every_state(ledger, 5, start=1)
    with sql_statements(ledger) as many:
        listed = views.for_principal(ADMIN)
    assert len(listed) == 24
    assert len(many) == len(few) <= 8, many


def test_a_listed_staging_reads_exactly_as_its_own_view(ledger: Ledger) -> None:
    views = StagingViews(ledger)
    stagings_in_every_state(ledger, 2)
    listed = views.for_principal(WHO)
    assert [timeless(s) for s in listed] == [timeless(views.view(s.id)) for s in listed]
    by_source = {s.source: s for s in listed}
    running = by_source["s3://b/ds-1"]
    assert [(n.node, n.state, n.files_done, n.bytes_done) for n in running.nodes] == [
        ("a", "transferring", 4, 400),
        ("b", "transferring", 0, 0),
    ]
    sharing = [s for s in listed if s.source == "s3://b/ds-1" and len(s.nodes) == 1]
    assert sharing and sharing[0].nodes[0].bytes_done == 400, "shows the writer's progress"
    assert by_source["s3://b/secret-0"].reasons == ["secret-0 is restricted"]
    assert by_source["s3://b/pending-0"].state == "pending"
    assert {s.state for s in views.for_principal(WHO, state="denied")} == {"denied"}
    assert views.for_principal(Principal("bob", "job", None, "t")) == []
