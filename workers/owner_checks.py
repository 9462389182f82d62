"""Is a pin's owner still there? Asked of the Kubernetes API, answered fail-safe.

A staging may name the Pod or Job it serves (``stagegate.owners``); the reconciler asks the
Kubernetes API about each owner at most every ``STAGEGATE_OWNER_CHECK_SECONDS`` and releases the
staging once the owner is gone. Gone means the API itself said so: a 404 carrying its
``NotFound`` Status for this very object, an object of that name with another uid (a pod
recreated under the same name is not the owner), or an owner that ended (a pod Succeeded or
Failed, a job Complete or Failed). Anything else (the API unreachable, 401/403, a 5xx, a 404
from something that is not the API, a body that is not the object asked for) is *unknown*, and
unknown keeps the pins: an outage must never free a running job's data. The pin lease still
ends a staging whose owner can never be asked about.

:func:`judge` is the pure decision; :class:`KubernetesOwners` does the one GET per owner, with
the worker's service account (its token re-read each time: projected tokens rotate).
"""

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stagegate.ledger.database import Ledger
from stagegate.ledger.owners import PinOwners
from stagegate.owners import OwnerRef
from stagegate.workers.settings import WorkerSettings

# httpx (a sixth of the worker's imports) is loaded only by a worker that asks a cluster.
if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
# What the API's NotFound Status names as details.kind for each owner kind (the resource).
_RESOURCES = {"Pod": "pods", "Job": "jobs"}


class Verdict(enum.StrEnum):
    PRESENT = "present"
    GONE = "gone"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OwnerCheck:
    verdict: Verdict
    reason: str


def _unknown(reason: str) -> OwnerCheck:
    return OwnerCheck(Verdict.UNKNOWN, reason)


def _is_not_found_status(owner: OwnerRef, body: Any) -> bool:
    if not isinstance(body, dict) or body.get("kind") != "Status" or body.get("reason") != "NotFound":
        return False
    details = body.get("details")
    return (
        isinstance(details, dict)
        and details.get("name") == owner.name
        and details.get("kind") == _RESOURCES[owner.kind]
    )


def _ended(owner: OwnerRef, body: dict[str, Any]) -> str | None:
    """How the owner ended, if it did: its containers will not read the data again."""
    status = body.get("status")
    if not isinstance(status, dict):
        return None
    if owner.kind == "Pod":
        phase = status.get("phase")
        return f"the pod's phase is {phase}" if phase in ("Succeeded", "Failed") else None
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else ():
        if (
            isinstance(condition, dict)
            and condition.get("type") in ("Complete", "Failed")
            and condition.get("status") == "True"
        ):
            return f"the job is {condition['type']}"
    return None


def judge(owner: OwnerRef, status_code: int, body: Any) -> OwnerCheck:
    """What the Kubernetes API's answer (``status_code``, the decoded JSON ``body`` or None) to a
    GET of ``owner.api_path()`` says about ``owner``. Only the API's own word makes it GONE."""
    if status_code == 404:
        if _is_not_found_status(owner, body):
            return OwnerCheck(Verdict.GONE, "the Kubernetes API answers 404 NotFound for it")
        return _unknown("404 without the API's NotFound Status for this object (a wrong STAGEGATE_KUBE_API?)")
    if status_code != 200:
        return _unknown(f"the Kubernetes API answered {status_code}")
    metadata = body.get("metadata") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or not isinstance(metadata, dict)
        or body.get("kind") != owner.kind
        or metadata.get("name") != owner.name
        or metadata.get("namespace") != owner.namespace
        or not isinstance(metadata.get("uid"), str)
    ):
        return _unknown("the answer is not the object asked for")
    if metadata["uid"].lower() != owner.uid:
        return OwnerCheck(
            Verdict.GONE,
            f"{owner.namespace}/{owner.name} is now another {owner.kind} (uid {metadata['uid']})",
        )
    ended = _ended(owner, body)
    if ended is not None:
        return OwnerCheck(Verdict.GONE, ended)
    return OwnerCheck(Verdict.PRESENT, "it is there")


class OwnerChecker(Protocol):
    def check(self, owner: OwnerRef) -> OwnerCheck: ...


class KubernetesOwners:
    """Asks one Kubernetes API about owners: GET of the owner's own path, nothing else."""

    def __init__(
        self,
        api_url: str,
        token_file: Path,
        ca_file: Path | None = None,
        client: "httpx.Client | None" = None,
    ) -> None:
        import httpx

        self._api = api_url.rstrip("/")
        self._token_file = token_file
        # The cluster's CA when there is one; otherwise the system's. Never unverified.
        verify: str | bool = str(ca_file) if ca_file is not None and ca_file.is_file() else True
        self._client = client or httpx.Client(timeout=TIMEOUT_S, verify=verify, follow_redirects=False)

    @classmethod
    def for_worker(cls, settings: WorkerSettings) -> "KubernetesOwners | None":
        """The checker the worker's settings describe; None outside a cluster."""
        if settings.kube_api is None or settings.kube_token_file is None:
            return None
        return cls(settings.kube_api, settings.kube_token_file, settings.kube_ca_file)

    def close(self) -> None:
        self._client.close()

    def check(self, owner: OwnerRef) -> OwnerCheck:
        import httpx

        try:
            token = self._token_file.read_text().strip()
        except OSError as exc:
            return _unknown(f"cannot read the service account token {self._token_file}: {exc.strerror}")
        try:
            response = self._client.get(
                self._api + owner.api_path(),
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            return _unknown(f"the Kubernetes API could not be reached: {type(exc).__name__}")
        try:
            body = response.json()
        except ValueError:
            body = None
        return judge(owner, response.status_code, body)


def release_gone_owners(
    ledger: Ledger,
    checker: OwnerChecker,
    interval: float,
    counted: Callable[[Verdict], None] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Check every owner that is due and release the stagings whose owner is gone; returns their
    ids. ``counted(verdict)`` (the worker's metric) hears every check's outcome."""
    owners = PinOwners(ledger)
    released = []
    for job_id, owner in owners.claim_due(interval, now):
        result = checker.check(owner)
        if counted is not None:
            counted(result.verdict)
        if result.verdict is Verdict.GONE:
            if owners.release_gone(job_id, owner, result.reason, now):
                released.append(job_id)
        elif result.verdict is Verdict.PRESENT:
            owners.present(job_id, now)
        else:
            log.warning(
                "kept staging %s: could not tell whether %s is gone: %s",
                job_id,
                owner.describe(),
                result.reason,
            )
            owners.unknown(job_id, result.reason)
    return released
