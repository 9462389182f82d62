"""What a source holds, as a staging of it would see it (``stagegate ls`` and ``du``): every
object with the label it would get and whether the policy lets it be staged, and the totals
by label and by top-level prefix.

It plans as a staging plans (:func:`transfer.plan.plan_dataset`: the listing streamed to a
spill file, never held in memory) and resolves labels with the staging's resolver, so what
``ls`` shows is what ``stage`` decides.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from stagegate.policies import Decision, LabelResolver, Policy, Zone
from stagegate.progress import ListingCallback
from stagegate.transfer import Plan
from stagegate.workers.staging import decide_plan, label_resolver, planned_source

# A flat bucket can have millions of top-level "prefixes" (its files): the totals keep the
# first this many, in key order, and fold the rest into one line, so memory stays bounded.
MAX_PREFIXES = 1000
OTHER_PREFIXES = "(other prefixes)"


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One object as a staging would take it: its size, label, and where the label comes from
    (``own``, ``file:<key>``, ``none``), and whether the policy lets it be staged."""

    key: str
    size: int
    label: str
    origin: str
    allowed: bool

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "size": self.size,
            "label": self.label,
            "label_origin": self.origin,
            "allowed": self.allowed,
        }


@dataclass(slots=True)
class Totals:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def to_json(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}


@dataclass(slots=True)
class SourceUsage:
    """``du``'s answer: the totals, per label, per top-level prefix ('' for the files at the
    top), and the policy's decision on staging all of it."""

    source: str
    decision: Decision
    total: Totals = field(default_factory=Totals)
    by_label: dict[str, Totals] = field(default_factory=dict)
    by_prefix: dict[str, Totals] = field(default_factory=dict)

    def add(self, entry: SourceEntry) -> None:
        self.total.add(entry.size)
        self.by_label.setdefault(entry.label, Totals()).add(entry.size)
        head, sep, _ = entry.key.partition("/")
        prefix = head + "/" if sep else ""
        if prefix not in self.by_prefix and len(self.by_prefix) >= MAX_PREFIXES:
            prefix = OTHER_PREFIXES
        self.by_prefix.setdefault(prefix, Totals()).add(entry.size)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            **self.total.to_json(),
            "by_label": {k: v.to_json() for k, v in sorted(self.by_label.items())},
            "by_prefix": {k: v.to_json() for k, v in self.by_prefix.items()},
            "decision": self.decision.to_dict(),
        }


class SourceSurvey:
    """A planned source: its entries (streamed from the plan's spill file) and the decision."""

    def __init__(self, plan: Plan, policy: Policy) -> None:
        self.plan = plan
        self._policy = policy
        self._resolver: LabelResolver = label_resolver(plan, policy)
        self.decision = decide_plan(policy, plan, Zone.staging(), self._resolver)
        self._verdicts: dict[str, bool] = {}

    def _allowed(self, label: str) -> bool:
        if label not in self._verdicts:  # one decision per distinct label, not per object
            self._verdicts[label] = self._policy.decide(Zone.staging(), [("", label)]).allowed
        return self._verdicts[label]

    def entries(self) -> Iterator[SourceEntry]:
        for o in self.plan.entries():
            resolved = self._resolver.resolve(o.key, o.label)
            yield SourceEntry(o.key, o.size, resolved.label, resolved.origin, self._allowed(resolved.label))

    def usage(self) -> SourceUsage:
        usage = SourceUsage(self.plan.source_url, self.decision)
        for entry in self.entries():
            usage.add(entry)
        return usage


@contextlib.contextmanager
def survey_source(
    policy: Policy, source_url: str, on_listed: ListingCallback | None = None
) -> Iterator[SourceSurvey]:
    """``source_url`` planned as a staging would plan it (:func:`planned_source`), moving
    nothing; the survey is valid inside the block."""
    with planned_source(source_url, on_listed) as plan:
        yield SourceSurvey(plan, policy)
