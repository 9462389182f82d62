"""A ledger with a small history in it, written the way the service's steps write it: a staging
that went all the way (request, decision, copies on two nodes, completion, release), one the
policy denied, one whose source holds markup, and an egress with labels, files and a deletion."""

from dataclasses import dataclass

from stagegate.actions import AuditAction
from stagegate.ledger import (
    AuditTrail,
    BatchRange,
    Jobs,
    Ledger,
    NewEvent,
    NodePortion,
    Nodes,
    Principal,
    StagingRequests,
    StagingSteps,
    TaskKey,
    Tasks,
    Tokens,
)
from stagegate.ledger.egresses import Egresses
from stagegate.requests import EgressRequest

# who -> (user, role, project)
PEOPLE = {
    "auditor": ("ada", "auditor", "audit"),
    "scientist": ("sam", "scientist", "vision"),
    "other": ("bob", "scientist", "speech"),
    "steward": ("sue", "steward", None),
    "job": ("jay", "job", "vision"),
    "admin": ("root", "admin", None),
}
XSS = "<script>alert(1)</script>"
DIGEST = "3f6c" + "a1" * 30
DENIAL = "s3://datasets/speech/raw/a.wav is labelled confidential; the policy stages public only"


@dataclass
class Scene:
    tokens: dict[str, str]
    principals: dict[str, Principal]
    done: str  # sam's staging: ready on gpu-01 and gpu-02, then released
    denied: str  # bob's staging, denied by the policy
    marked_up: str  # sam's staging whose source holds <script>
    egress: str  # sam's egress, completed, one checkpoint deleted


def _plan(ledger: Ledger, staging_id: str) -> TaskKey:
    plan = TaskKey(staging_id, "plan", "", 0)
    assert Tasks(ledger, 60).claim(plan, "planner") is not None
    assert StagingSteps(ledger).begin_planning(staging_id)
    return plan


def _done_staging(ledger: Ledger, who: Principal) -> str:
    requests, stagings, tasks = StagingRequests(ledger, 60), StagingSteps(ledger, 60), Tasks(ledger, 60)
    staging, _, _ = requests.submit(
        who, source="s3://datasets/vision/imagenet/", nodes=["gpu-01", "gpu-02"], job_ref="train-42"
    )
    plan = _plan(ledger, staging.id)
    stagings.record_plan(staging.id, DIGEST, 12, 6_000_000, "7651f3c695a8")
    portions = [
        NodePortion(node, DIGEST, 12, 6_000_000, [BatchRange("a", "z", 12, 6_000_000)])
        for node in ("gpu-01", "gpu-02")
    ]
    details = {"offending": 0, "highest_label": "public"}
    assert stagings.admit(staging.id, plan, "planner", portions, details).state == "transferring"
    for node in ("gpu-01", "gpu-02"):
        copy = TaskKey(staging.id, "copy", node, 0)
        assert tasks.claim(copy, "w") is not None
        assert tasks.finish(copy, "w", 12, 6_000_000)
        final = TaskKey(staging.id, "finalize", node, 0)
        assert tasks.claim(final, "w") is not None
        stagings.dataset_ready(staging.id, final, "w")
    assert stagings.complete_if_ready(staging.id)
    requests.release(who, staging.id)
    return staging.id


def _denied_staging(ledger: Ledger, who: Principal) -> str:
    stagings = StagingSteps(ledger, 60)
    requests = StagingRequests(ledger, 60)
    staging, _, _ = requests.submit(who, source="s3://datasets/speech/raw/", nodes=["gpu-01"])
    plan = _plan(ledger, staging.id)
    stagings.record_plan(staging.id, "9" * 64, 3, 3000, "7651f3c695a8")
    stagings.deny(staging.id, plan, "planner", [DENIAL], {"offending": 1, "highest_label": "confidential"})
    return staging.id


def _egress(ledger: Ledger, who: Principal) -> str:
    egress, _ = Egresses(ledger).submit(
        who,
        EgressRequest(
            run_dir="/nvme/runs/sam/run-7",
            node="gpu-01",
            destination="s3://models/vision/run-7",
            latest=1,
            best="eval_loss",
            mode="min",
            job_ref="train-42",
            delete_unselected=True,
        ),
    )
    trail = AuditTrail(ledger)
    base = {
        "actor": who.user,
        "role": who.role,
        "source": "node:gpu-01:/nvme/runs/sam/run-7",
        "destination": "s3://models/vision/run-7",
        "job_id": egress.id,
        "job_ref": "train-42",
        "policy_version": "7651f3c695a8",
    }
    selected = ["checkpoint-1500", "checkpoint-2000"]
    labels = {
        name: {"label": "public", "origin": "lineage:train-42", "sources": {"lineage:train-42": "public"}}
        for name in selected
    }
    trail.append(
        NewEvent(
            **base,
            action=AuditAction.POLICY_ALLOWED,
            decision="allow",
            bytes=6_000_000,
            details={
                "selected": selected,
                "labels": labels,
                "highest_label": "public",
                "egress_rule": "s3://models/",
            },
        )
    )
    checksums = {f"{name}/model.safetensors": f"crc64nvme:{i:016x}" for i, name in enumerate(selected)}
    trail.append(
        NewEvent(
            **base,
            action=AuditAction.EGRESS_COMPLETED,
            bytes=6_000_000,
            files=2,
            details={"selected": selected, "checksums": checksums, "project": who.project, "node": "gpu-01"},
        )
    )
    trail.append(
        NewEvent(
            **base,
            action=AuditAction.CHECKPOINT_DELETED,
            bytes=2_900_000,
            details={
                "name": "checkpoint-500",
                "bytes": 2_900_000,
                "path": "/nvme/runs/sam/run-7/checkpoint-500",
            },
        )
    )
    Jobs(ledger).update(egress.id, state="completed", files=2, bytes=6_000_000)
    return egress.id


def populate(ledger: Ledger) -> Scene:
    tokens: dict[str, str] = {}
    principals: dict[str, Principal] = {}
    for who, (user, role, project) in PEOPLE.items():
        issued = Tokens(ledger).create(user=user, role=role, project=project)
        tokens[who] = issued.token
        principal = Tokens(ledger).authenticate(issued.token)
        assert principal is not None
        principals[who] = principal
    for node in ("gpu-01", "gpu-02"):
        Nodes(ledger).heartbeat(node, "/nvme/stagegate", 2 * 10**12, f"worker-{node}")
    done = _done_staging(ledger, principals["scientist"])
    denied = _denied_staging(ledger, principals["other"])
    marked, _, _ = StagingRequests(ledger).submit(
        principals["scientist"], source=f"s3://datasets/vision/{XSS}/", nodes=["gpu-02"]
    )
    egress = _egress(ledger, principals["scientist"])
    # bob names sam's staging as his job reference: the trail's job filter matches references
    # too, and sam's story must not take bob's events in.
    StagingRequests(ledger).submit(
        principals["other"], source="s3://datasets/speech/clean/", nodes=["gpu-01"], job_ref=done
    )
    return Scene(tokens, principals, done, denied, marked.id, egress)
