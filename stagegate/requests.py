"""What a requester asks for: the one definition the client builds, the API validates its body
into, the ledger stores and the workers run.

Frozen dataclasses, checked on construction: a request that exists is one the service could
act on as far as can be told without a disk, a network or the policy (non-empty source,
absolute run directory, known modes, a name list of non-empty names, ``mode`` only with
``best``, no credentials in a URL, ``include``/``exclude`` patterns that compile). What needs
the world (does the source exist, may this user read it, is the node registered, which direction
an unnamed metric runs) stays with the layer that has it. The JSON form (``to_params``) is what
the ledger keeps in ``jobs.params``; it reads back equal (``from_params``).
"""

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from stagegate.errors import InvalidInputError
from stagegate.key_filters import KeyFilter
from stagegate.owners import OwnerRef
from stagegate.urls import refuse_credentials

__all__ = ["EGRESS_MODES", "STAGING_MODES", "BestMode", "EgressRequest", "StagingMode", "StagingRequest"]

StagingMode = Literal["replicate", "shard"]
BestMode = Literal["min", "max"]
STAGING_MODES: tuple[str, ...] = get_args(StagingMode)
EGRESS_MODES: tuple[str, ...] = get_args(BestMode)


def _names(names: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):  # a bare string would be taken letter by letter
        raise InvalidInputError(f"{what} must be a list of names, not the string {names!r}")
    named = tuple(names)
    for name in named:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{what} must hold non-empty names, not {name!r}")
    return named


def _filtered(request: "StagingRequest | EgressRequest") -> None:
    """Check the request's ``include``/``exclude`` patterns (InvalidInputError naming a bad one)
    and keep them as the tuples they mean."""
    rules = KeyFilter.of(request.include, request.exclude)
    object.__setattr__(request, "include", rules.include)
    object.__setattr__(request, "exclude", rules.exclude)


def _as_params(request: "StagingRequest | EgressRequest") -> dict[str, Any]:
    """``request`` as JSON-ready values: its tuples as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(request).items()}


def _known(cls: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` in ``params``, sequences as tuples (unknown keys are ignored: rows
    outlive code)."""
    known: dict[str, Any] = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
    for name in ("names", "nodes", "include", "exclude"):
        if name in known:
            known[name] = tuple(known[name] or ())
    return known


@dataclass(frozen=True, slots=True)
class StagingRequest:
    """Stage ``source``: onto ``nodes`` (the service) or into ``destination`` (embedded, here).

    ``job_ref`` is the requester's job reference (a Slurm job id); ``idempotency_key`` makes a
    repeated service submission return the first staging. ``include``/``exclude``: rclone-style
    patterns (:mod:`stagegate.key_filters`) choosing which of the source's keys are staged.
    repeated service submission return the first staging; ``owner`` (service only) is the Pod or
    Job whose end releases the staging's pins. ``replace`` (the new dataset replaces whatever
    ``destination`` holds) and ``sync`` (files gone from the source are removed from it) are for
    a destination only: a node's dataset directory is named by its digest, so another source, or
    a changed one, lands in another directory.
    """

    source: str
    destination: str | None = None
    job_ref: str | None = None
    nodes: tuple[str, ...] = ()
    mode: StagingMode = "replicate"
    idempotency_key: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    replace: bool = False
    sync: bool = False
    owner: OwnerRef | None = None

    def __post_init__(self) -> None:
        if not self.source:
            raise InvalidInputError("the source must not be empty")
        _filtered(self)
        refuse_credentials(self.source, "source URL")
        if self.mode not in STAGING_MODES:
            raise InvalidInputError(f"mode must be replicate or shard, not {self.mode!r}")
        nodes = _names(self.nodes, "nodes")
        if len(set(nodes)) != len(nodes):
            raise InvalidInputError("nodes must name each node once")
        object.__setattr__(self, "nodes", nodes)  # a list given is kept as the tuple it means
        if self.destination is not None and nodes:
            raise InvalidInputError("a staging goes onto nodes (the service) or into a directory, not both")
        if self.destination is None and not nodes:
            raise InvalidInputError("nodes must name at least one node")
        if (self.replace or self.sync) and self.destination is None:
            raise InvalidInputError("replace and sync apply to a destination directory, not to nodes")
        if self.owner is not None and self.destination is not None:
            raise InvalidInputError(
                "an owner ends a service staging's pins; a staging into a directory has none"
            )

    @property
    def key_filter(self) -> KeyFilter:
        """The compiled ``include``/``exclude`` rules."""
        return KeyFilter(self.include, self.exclude)

    def to_params(self) -> dict[str, Any]:
        """The JSON object the ledger stores (``jobs.params``)."""
        return _as_params(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "StagingRequest":
        """The request :meth:`to_params` wrote."""
        return cls(**_known(cls, params))


@dataclass(frozen=True, slots=True)
class EgressRequest:
    """Egress the selected checkpoints of ``run_dir`` to ``destination`` (``s3://...`` or a path).

    Selection is the union of ``latest`` (the N newest), ``best`` (with ``mode``, or the
    direction the metric's name says) and ``names``. ``node``: the node whose worker holds the
    run directory (None: here, embedded); ``project`` is the requester's, set by the ledger.
    ``include``/``exclude`` choose which files of the selected checkpoints go (keys relative to
    the run directory, ``checkpoint-500/optimizer.pt``), as for a staging.
    """

    run_dir: str
    destination: str
    latest: int | None = None
    best: str | None = None
    mode: BestMode | None = None
    names: tuple[str, ...] = ()
    job_ref: str | None = None
    delete_unselected: bool = False
    node: str | None = None
    project: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.run_dir.startswith("/"):
            raise InvalidInputError(f"the run directory must be an absolute path, not {self.run_dir!r}")
        if not self.destination:
            raise InvalidInputError("the destination must not be empty")
        refuse_credentials(self.destination, "destination URL")
        if self.mode is not None and self.mode not in EGRESS_MODES:
            raise InvalidInputError(f"mode must be min or max, not {self.mode!r}")
        if self.mode is not None and self.best is None:
            raise InvalidInputError("mode goes with best METRIC")
        if self.best is not None and not self.best:
            raise InvalidInputError("best must name a metric")
        if self.latest is not None and (isinstance(self.latest, bool) or self.latest < 1):
            raise InvalidInputError(f"latest must be a positive count, not {self.latest!r}")
        object.__setattr__(self, "names", _names(self.names, "names"))
        object.__setattr__(self, "delete_unselected", bool(self.delete_unselected))
        _filtered(self)

    @property
    def key_filter(self) -> KeyFilter:
        """The compiled ``include``/``exclude`` rules."""
        return KeyFilter(self.include, self.exclude)

    @property
    def source(self) -> str:
        """The run directory as the audit trail names it (``node:gpu-a:/path`` on the service)."""
        return f"node:{self.node}:{self.run_dir}" if self.node else self.run_dir

    def to_params(self) -> dict[str, Any]:
        """The JSON object the ledger stores (``jobs.params``)."""
        return _as_params(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "EgressRequest":
        """The request :meth:`to_params` wrote."""
        return cls(**_known(cls, params))

    def selection_details(self) -> dict[str, object]:
        """What ``egress.requested`` records about the request (no paths: they are the event's own)."""
        return {
            "latest": self.latest,
            "best": self.best,
            "mode": self.mode,
            "names": list(self.names),
            "delete_unselected": self.delete_unselected,
            "node": self.node,
            "project": self.project,
            "include": list(self.include),
            "exclude": list(self.exclude),
        }
