"""Deciding from the Kubernetes API's answer: only the API's own word makes an owner gone."""

import uuid
from typing import Any

import pytest

from stagegate.owners import OwnerRef
from stagegate.workers.owner_checks import Verdict, judge

UID = str(uuid.uuid4())
POD = OwnerRef("Pod", "ml", "train-0", UID)
JOB = OwnerRef("Job", "ml", "train", UID)


def obj(owner: OwnerRef, status: dict[str, Any] | None = None, **metadata: str) -> dict[str, Any]:
    meta = {"name": owner.name, "namespace": owner.namespace, "uid": owner.uid, **metadata}
    return {"kind": owner.kind, "apiVersion": "v1", "metadata": meta, "status": status or {}}


def not_found(name: str, kind: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "code": 404,
        "details": {"name": name, "kind": kind},
    }


@pytest.mark.parametrize(
    ("owner", "code", "body", "verdict"),
    [
        (POD, 200, obj(POD, {"phase": "Running"}), Verdict.PRESENT),
        (POD, 200, obj(POD, {"phase": "Pending"}), Verdict.PRESENT),
        (POD, 200, obj(POD, {"phase": "Running"}, deletionTimestamp="2026-12-01T00:00:00Z"), Verdict.PRESENT),
        (POD, 200, obj(POD, {"phase": "Succeeded"}), Verdict.GONE),
        (POD, 200, obj(POD, {"phase": "Failed"}), Verdict.GONE),
        (POD, 200, obj(POD, uid=str(uuid.uuid4())), Verdict.GONE),  # recreated under the name
        (POD, 200, obj(POD, uid=UID.upper()), Verdict.PRESENT),
        (POD, 404, not_found("train-0", "pods"), Verdict.GONE),
        (JOB, 404, not_found("train", "jobs"), Verdict.GONE),
        (JOB, 200, obj(JOB, {"conditions": [{"type": "Complete", "status": "True"}]}), Verdict.GONE),
        (JOB, 200, obj(JOB, {"conditions": [{"type": "Failed", "status": "True"}]}), Verdict.GONE),
        (JOB, 200, obj(JOB, {"conditions": [{"type": "Complete", "status": "False"}]}), Verdict.PRESENT),
        (JOB, 200, obj(JOB, {"conditions": [{"type": "Suspended", "status": "True"}]}), Verdict.PRESENT),
        # Not the API's word about this object: never a release.
        (POD, 404, not_found("other", "pods"), Verdict.UNKNOWN),
        (POD, 404, not_found("train-0", "jobs"), Verdict.UNKNOWN),
        (POD, 404, {"kind": "Status", "reason": "NotFound"}, Verdict.UNKNOWN),  # a wrong path's 404
        (POD, 404, None, Verdict.UNKNOWN),  # an HTML 404 from a proxy
        (POD, 401, {"kind": "Status", "reason": "Unauthorized"}, Verdict.UNKNOWN),
        (POD, 403, {"kind": "Status", "reason": "Forbidden"}, Verdict.UNKNOWN),
        (POD, 500, None, Verdict.UNKNOWN),
        (POD, 503, None, Verdict.UNKNOWN),
        (POD, 429, None, Verdict.UNKNOWN),
        (POD, 200, None, Verdict.UNKNOWN),
        (POD, 200, [], Verdict.UNKNOWN),
        (POD, 200, obj(JOB), Verdict.UNKNOWN),  # another kind
        (POD, 200, obj(POD, name="other"), Verdict.UNKNOWN),
        (POD, 200, obj(POD, namespace="other"), Verdict.UNKNOWN),
        (POD, 200, {**obj(POD), "metadata": {"name": "train-0", "namespace": "ml"}}, Verdict.UNKNOWN),
        (POD, 200, {**obj(POD), "status": "Running"}, Verdict.PRESENT),
    ],
)
def test_the_verdict(owner: OwnerRef, code: int, body: Any, verdict: Verdict) -> None:
    result = judge(owner, code, body)
    assert result.verdict is verdict, result
    assert result.reason
