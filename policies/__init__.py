"""Data classification: resolve labels from object metadata, decide with the policy file.

Pure: no network, no disk (except :meth:`Policy.from_file`, which reads one file). Built in
the issue "Classification policy, the ledger, and a tamper-evident audit trail".

Typical use by the staging flow::

    resolver = LabelResolver(label_files)              # {dir key: .classification content}
    labels = ((o.key, resolver.resolve(o.key, o.own_label).label) for o in listing)
    decision = Policy.from_file(path).decide(Zone.staging(), labels)
"""

from stagegate.policies.decision import MAX_REASONS, Decision
from stagegate.policies.errors import LabelFileError, LevelError, PolicyDeniedError, PolicyFileError
from stagegate.policies.labels import (
    LABEL_FILE_NAME,
    LABEL_TAG,
    LABEL_XATTR,
    LabelResolver,
    ResolvedLabel,
    label_file_key,
    parse_label_file,
)
from stagegate.policies.levels import (
    DEFAULT_LEVELS,
    UNCLASSIFIED,
    Levels,
    highest_label,
    is_label_word,
    normalize_label,
)
from stagegate.policies.policy import EgressRule, Policy
from stagegate.policies.zones import Zone

__all__ = [
    "DEFAULT_LEVELS",
    "LABEL_FILE_NAME",
    "LABEL_TAG",
    "LABEL_XATTR",
    "MAX_REASONS",
    "UNCLASSIFIED",
    "Decision",
    "EgressRule",
    "LabelFileError",
    "LabelResolver",
    "LevelError",
    "Levels",
    "Policy",
    "PolicyDeniedError",
    "PolicyFileError",
    "ResolvedLabel",
    "Zone",
    "highest_label",
    "is_label_word",
    "label_file_key",
    "normalize_label",
    "parse_label_file",
]
