"""The outcome of applying a policy to a dataset, and the streaming tally that builds it.

A listing may hold ten million objects, so the tally keeps a count and only the first
:data:`MAX_REASONS` reasons; everything else it holds is constant-size.
"""

import json
from dataclasses import dataclass
from typing import Any

from stagegate.policies.levels import UNCLASSIFIED, Levels, is_label_word, normalize_label
from stagegate.policies.zones import Zone

MAX_REASONS = 20


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a dataset may go to a zone, under which policy version, and why not.

    - ``allowed``: every object's label is a level of the policy and at most ``max_level``
      (an empty dataset is allowed: there is nothing to leak).
    - ``max_level``: the highest level the zone accepts; None if no rule covers the zone.
    - ``egress_rule``: the prefix of the egress rule that applied (None for staging).
    - ``highest_label``: the label governing the objects seen, as :meth:`Levels.highest`
      would give it, except that unknown labels count as ``unclassified`` and an empty
      dataset gives None.
    - ``reasons``: at most :data:`MAX_REASONS` lines, one per offending object in the order
      they were seen (or the one reason the zone itself is refused).
    - ``offending_count``: how many objects were refused in all; ``object_count``: how many
      were seen.
    - ``consulted``: what the labels were read from, as lines for people (the label files in
      the dataset and above it): a user told their data is unclassified learns where a label
      was looked for. Set by the caller that read them; the policy itself reads nothing.
    """

    allowed: bool
    policy_version: str
    zone: Zone
    max_level: str | None
    egress_rule: str | None
    highest_label: str | None
    reasons: tuple[str, ...]
    offending_count: int
    object_count: int
    consulted: tuple[str, ...] = ()

    @property
    def reasons_truncated(self) -> bool:
        """True if more objects were refused than ``reasons`` names."""
        return self.offending_count > len(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "allowed": self.allowed,
            "policy_version": self.policy_version,
            "zone": self.zone.to_dict(),
            "max_level": self.max_level,
            "egress_rule": self.egress_rule,
            "highest_label": self.highest_label,
            "reasons": list(self.reasons),
            "offending_count": self.offending_count,
            "object_count": self.object_count,
            "consulted": list(self.consulted),
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces) for audit records: equal decisions, equal bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _show_key(key: str) -> str:
    # Keys reach logs and terminals: anything unprintable is shown escaped.
    return key if key.isprintable() and key.strip() == key and key else repr(key)


class Tally:
    """Accumulates (key, label) pairs against one zone's maximum level."""

    def __init__(self, levels: Levels, zone: Zone, max_level: str) -> None:
        self._levels = levels
        self._zone_text = zone.describe()
        self._max_level = max_level
        self._max_rank = levels.rank(max_level)
        # Labels repeat heavily across a listing: normalise and rank each distinct one once.
        # None stands for "not a level"; the dict is bounded by the number of distinct labels.
        self._rank_cache: dict[str, int | None] = {}
        self._top_rank = -1
        self._saw_unclassified = False
        self.reasons: list[str] = []
        self.offending_count = 0
        self.object_count = 0

    def add(self, key: str, label: str) -> None:
        self.object_count += 1
        try:
            rank = self._rank_cache[label]
        except KeyError:
            rank = self._rank_cache[label] = self._levels.rank_or_none(label)
        if rank is None:
            self._saw_unclassified = True
            self._offend(key, label)
        else:
            self._top_rank = max(self._top_rank, rank)
            if rank > self._max_rank:
                self._offend(key, label)

    def _offend(self, key: str, label: str) -> None:
        self.offending_count += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(self._reason(_show_key(key), label))

    def _reason(self, shown: str, label: str) -> str:
        word = normalize_label(label)
        if word == UNCLASSIFIED:
            return f"{shown} is unclassified: add a .classification file or a classification tag"
        if not is_label_word(word):
            return (
                f"{shown} has invalid label {label!r}: a label is one word of a-z, 0-9, '_' or '-', "
                "starting with a letter"
            )
        if not self._levels.is_known(word):
            return f"{shown} has unknown label {word!r}: not one of {self._levels.describe()}"
        return f"{shown} is {word}; {self._zone_text} accepts at most {self._max_level}"

    @property
    def highest_label(self) -> str | None:
        if self.object_count == 0:
            return None
        if self._saw_unclassified:
            return UNCLASSIFIED
        return self._levels.names[self._top_rank]
