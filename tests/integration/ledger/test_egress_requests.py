"""The ledger keeps an egress request as the kernel's type: what was submitted reads back equal
(with the requester's project), on SQLite and PostgreSQL."""

from dataclasses import replace

import pytest

from stagegate.errors import InvalidInputError
from stagegate.ledger import Ledger, Nodes, Principal
from stagegate.ledger.egresses import Egresses
from stagegate.requests import EgressRequest

WHO = Principal("alice", "scientist", "vision", "token-id")


def test_a_stored_egress_request_reads_back_equal_to_what_was_submitted(ledger: Ledger) -> None:
    Nodes(ledger).heartbeat("gpu-01", "/nvme/gpu-01", 1 << 40, "gpu-01@host:1")
    submitted = EgressRequest(
        run_dir="/nvme/runs/alice/run-7",
        destination="s3://models/vision/run-7",
        latest=2,
        best="eval_loss",
        mode="min",
        names=("checkpoint-100", "checkpoint-300"),
        job_ref="train-42",
        delete_unselected=True,
        node="gpu-01",
    )
    egresses = Egresses(ledger)
    egress, key = egresses.submit(WHO, submitted)

    stored = egresses.params(egress.id)
    assert isinstance(stored, EgressRequest)
    assert stored == replace(submitted, project="vision")
    assert key.node == "gpu-01"
    assert (egress.node, egress.run_dir, egress.job) == ("gpu-01", "/nvme/runs/alice/run-7", "train-42")


def test_an_egress_without_a_node_is_refused_and_nothing_is_recorded(ledger: Ledger) -> None:
    egresses = Egresses(ledger)
    with pytest.raises(InvalidInputError, match="node is required"):
        egresses.submit(WHO, EgressRequest(run_dir="/runs/r1", destination="s3://b/m"))
