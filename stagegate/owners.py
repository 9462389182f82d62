"""The Kubernetes object that owns a staging's pins: a Pod or a Job, named and identified by uid.

A staging that names an owner is released by the service once the owner is gone (see
``stagegate.ledger.owners`` and ``stagegate.workers.owner_checks``). The owner is part of the
request, so one definition is checked here and shared by the client, the API, the ledger and the
worker. The checks are Kubernetes' own name rules (a namespace is a DNS-1123 label; a Pod or Job
name a DNS-1123 subdomain; a uid a UUID), which also make :meth:`OwnerRef.api_path` the only
thing the service can be made to read: one object of one of two kinds, never another path.
"""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import quote

from stagegate.errors import InvalidInputError

__all__ = ["OWNER_KINDS", "OwnerKind", "OwnerRef"]

OwnerKind = Literal["Pod", "Job"]
OWNER_KINDS: tuple[str, ...] = get_args(OwnerKind)
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAMESPACE = re.compile(_LABEL)
_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
MAX_NAMESPACE = 63
MAX_NAME = 253
# Where each kind lives in the API; nothing else is ever requested.
_COLLECTIONS = {
    "Pod": "/api/v1/namespaces/{ns}/pods/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
}


def _is_uuid(text: object) -> bool:
    """The 36-character form only: ``uuid.UUID`` alone would take braces, URNs and bare hex."""
    if not isinstance(text, str) or len(text) != 36:
        return False
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """A Pod or Job by namespace, name and uid. The uid is what makes it this object: a pod
    recreated under the same name has another uid, and is not the owner."""

    kind: OwnerKind
    namespace: str
    name: str
    uid: str

    def __post_init__(self) -> None:
        if self.kind not in OWNER_KINDS:
            raise InvalidInputError(f"an owner is a Pod or a Job, not {self.kind!r}")
        if not isinstance(self.namespace, str) or not (
            len(self.namespace) <= MAX_NAMESPACE and _NAMESPACE.fullmatch(self.namespace)
        ):
            raise InvalidInputError(
                f"owner namespace {self.namespace!r} is not a Kubernetes namespace (lowercase letters, "
                f"digits and '-', at most {MAX_NAMESPACE})"
            )
        if not isinstance(self.name, str) or not (
            len(self.name) <= MAX_NAME and _SUBDOMAIN.fullmatch(self.name)
        ):
            raise InvalidInputError(
                f"owner {self.kind} name {self.name!r} is not a Kubernetes name (lowercase letters, digits, "
                f"'-' and '.', at most {MAX_NAME})"
            )
        if not _is_uuid(self.uid):
            raise InvalidInputError(
                f"owner uid {self.uid!r} is not a Kubernetes uid (a UUID such as the downward API's "
                "metadata.uid)"
            )
        object.__setattr__(self, "uid", self.uid.lower())

    @classmethod
    def parse(cls, kind: str, namespaced_name: str, uid: str) -> "OwnerRef":
        """``NAMESPACE/NAME`` and a uid, as ``stagegate stage --owner-pod/--owner-job`` take them."""
        namespace, slash, name = namespaced_name.partition("/")
        if not slash:
            raise InvalidInputError(f"name the owner as NAMESPACE/NAME, not {namespaced_name!r}")
        return cls(kind, namespace, name, uid)  # type: ignore[arg-type]  # checked on construction

    def api_path(self) -> str:
        """The one REST path that reads this owner (quoted, though the name rules leave nothing to quote)."""
        return _COLLECTIONS[self.kind].format(
            ns=quote(self.namespace, safe=""), name=quote(self.name, safe="")
        )

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} (uid {self.uid})"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "uid": self.uid}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "OwnerRef":
        return cls(data["kind"], data["namespace"], data["name"], data["uid"])
