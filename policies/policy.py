"""The classification policy file, and the decision it makes about a dataset and a zone.

A policy is a YAML file, identified by the SHA-256 hex digest of its exact bytes
(:attr:`Policy.version`), so an audit record names precisely the rules that applied.
Schema (version 1)::

    version: 1            # schema version; required, must be 1
    levels:               # optional; lowest first; default the four below
      [public, internal, confidential, restricted]
    staging: public       # required: the highest level the staging zone (node NVMe) accepts
    egress:               # optional (default: none, so every egress is refused)
      - prefix: "s3://"   # destination URL prefix; the longest matching prefix wins
        max_level: public # the highest level that destination accepts
      - prefix: "/"
        max_level: public

Rules of the schema: no keys other than these; level names are one word of ``a-z``,
``0-9``, ``_`` or ``-`` starting with a letter, compared after stripping and lowercasing;
``unclassified`` cannot be a level; ``staging`` and every ``max_level`` must be one of the
levels; prefixes are non-empty and distinct; a key may not appear twice in a mapping.

A prefix matches a URL at a path boundary: ``s3://models`` covers ``s3://models`` and
``s3://models/run-7`` but not ``s3://models-public/x``; a prefix ending in ``/`` (such as
``s3://`` or ``/``) covers everything below it. URLs are compared as given: ``file:///x``
is not covered by ``/``, so the engine should pass destinations in the form the policy uses.

Everything here is pure except :meth:`Policy.from_file`, which only reads the bytes.
"""

import hashlib
import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stagegate.errors import NotFoundError
from stagegate.policies.decision import Decision, Tally
from stagegate.policies.errors import LevelError, PolicyFileError
from stagegate.policies.levels import DEFAULT_LEVEL_NAMES, Levels
from stagegate.policies.zones import Zone

SCHEMA_VERSION = 1
DEFAULT_POLICY_RESOURCE = "default_policy.yaml"
MAX_POLICY_BYTES = 1 << 20  # a policy is a page of YAML; refuse anything absurd before parsing

_TOP_KEYS = ("version", "levels", "staging", "egress", "object_tags")
# When S3 object tags are read: "at_copy" (default) only for objects whose GET reports tags,
# decided before a byte is written; "at_plan" every object's, one request each, before anything moves.
OBJECT_TAG_MODES = ("at_copy", "at_plan")
_RULE_KEYS = ("prefix", "max_level")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # a mapping or list as a key: the base constructor refuses it as a YAMLError
            if key in seen:
                raise PolicyFileError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in the same mapping"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True, slots=True)
class EgressRule:
    """Destinations whose URL starts with ``prefix`` (at a path boundary) accept up to ``max_level``."""

    prefix: str
    max_level: str

    def covers(self, url: str) -> bool:
        """True if ``url`` is ``prefix`` or lies below it."""
        if not url.startswith(self.prefix):
            return False
        return len(url) == len(self.prefix) or self.prefix.endswith("/") or url[len(self.prefix)] == "/"


def _describe_type(value: object) -> str:
    return "nothing" if value is None else f"{value!r} ({type(value).__name__})"


def _level_name(value: object, where: str, levels: Levels) -> str:
    # YAML turns unquoted no/yes/on/off into booleans and 1 into an int: say so plainly.
    if not isinstance(value, str):
        raise PolicyFileError(
            f"{where} must be a level name, got {_describe_type(value)}; quote it if needed"
        )
    try:
        return levels.check(value)
    except LevelError:
        raise PolicyFileError(f"{where}: {value!r} is not one of the levels ({levels.describe()})") from None


def _check_keys(mapping: dict[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise PolicyFileError(f"{where}: unknown key(s) {names}; allowed keys are {', '.join(allowed)}")


def _load_yaml(data: bytes) -> Any:
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyFileError(f"policy file is {len(data)} bytes; the limit is {MAX_POLICY_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"policy file is not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"policy file is not valid YAML: {exc}") from None


def _parse_levels(document: dict[Any, Any]) -> Levels:
    if "levels" not in document:
        return Levels(DEFAULT_LEVEL_NAMES)
    raw = document["levels"]
    if not isinstance(raw, list):
        raise PolicyFileError(f"levels must be a list of names, lowest first, got {_describe_type(raw)}")
    for item in raw:
        if not isinstance(item, str):
            raise PolicyFileError(
                f"levels: every level must be a name, got {_describe_type(item)}; quote it if needed"
            )
    try:
        return Levels(raw)
    except LevelError as exc:
        raise PolicyFileError(f"levels: {exc}") from None


def _parse_egress(document: dict[Any, Any], levels: Levels) -> tuple[EgressRule, ...]:
    raw = document.get("egress")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyFileError(
            f"egress must be a list of {{prefix, max_level}} rules, got {_describe_type(raw)}"
        )
    rules: list[EgressRule] = []
    prefixes: set[str] = set()
    for i, item in enumerate(raw):
        where = f"egress[{i}]"
        if not isinstance(item, dict):
            raise PolicyFileError(
                f"{where} must be a mapping with prefix and max_level, got {_describe_type(item)}"
            )
        _check_keys(item, _RULE_KEYS, where)
        for key in _RULE_KEYS:
            if key not in item:
                raise PolicyFileError(f"{where}: {key} is required")
        prefix = item["prefix"]
        if not isinstance(prefix, str) or not prefix:
            raise PolicyFileError(f"{where}.prefix must be a non-empty string, got {_describe_type(prefix)}")
        if prefix in prefixes:
            raise PolicyFileError(f"{where}: prefix {prefix!r} has two rules; keep one")
        prefixes.add(prefix)
        rules.append(EgressRule(prefix, _level_name(item["max_level"], f"{where}.max_level", levels)))
    # Longest prefix first, so the first rule that covers a URL is the one that wins.
    return tuple(sorted(rules, key=lambda rule: len(rule.prefix), reverse=True))


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, validated policy. Build it with :meth:`parse`, :meth:`from_file` or :meth:`default`."""

    version: str  # SHA-256 hex of the exact file bytes
    levels: Levels
    staging: str  # highest level the staging zone accepts
    egress: tuple[EgressRule, ...]  # longest prefix first
    tags_at_plan: bool = False  # object_tags: at_plan

    @classmethod
    def parse(cls, data: bytes) -> "Policy":
        """Validate ``data`` (the policy file's bytes) against the schema and build the policy.

        Raises :class:`PolicyFileError` (an ``InvalidInputError``) saying what to fix for
        non-UTF-8 bytes, bad YAML, a document that is not a mapping, a missing or unknown
        key, a wrong schema version, malformed or duplicate levels, or a level reference
        (``staging``, ``max_level``) that is not among the levels.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PolicyFileError(f"a policy is parsed from bytes, got {type(data).__name__}")
        data = bytes(data)
        document = _load_yaml(data)
        if not isinstance(document, dict):
            raise PolicyFileError(
                "policy file must be a YAML mapping with keys version, staging (and optionally "
                f"levels, egress), got {_describe_type(document)}"
            )
        _check_keys(document, _TOP_KEYS, "policy file")
        schema = document.get("version")
        if isinstance(schema, bool) or schema != SCHEMA_VERSION:
            raise PolicyFileError(
                f"version must be {SCHEMA_VERSION} (the schema version), got {_describe_type(schema)}"
            )
        levels = _parse_levels(document)
        if "staging" not in document:
            raise PolicyFileError("staging is required: the highest level the staging zone accepts")
        staging = _level_name(document["staging"], "staging", levels)
        egress = _parse_egress(document, levels)
        tags = document.get("object_tags", "at_copy")
        if tags not in OBJECT_TAG_MODES:
            raise PolicyFileError(
                f"object_tags must be one of {', '.join(OBJECT_TAG_MODES)}, got {_describe_type(tags)}"
            )
        return cls(hashlib.sha256(data).hexdigest(), levels, staging, egress, tags == "at_plan")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Policy":
        """Read the file at ``path`` and :meth:`parse` it; errors name the path.

        A missing file raises :class:`NotFoundError`; other read errors propagate as OSError.
        """
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"policy file {os.fspath(path)} does not exist") from None
        try:
            return cls.parse(data)
        except PolicyFileError as exc:
            raise PolicyFileError(f"{os.fspath(path)}: {exc}") from None

    @classmethod
    def default(cls) -> "Policy":
        """The policy shipped as ``policies/default_policy.yaml``: everything public-only."""
        data = resources.files("stagegate.policies").joinpath(DEFAULT_POLICY_RESOURCE).read_bytes()
        return cls.parse(data)

    def rule_for(self, url: str) -> EgressRule | None:
        """The egress rule with the longest prefix covering ``url``, or None."""
        for rule in self.egress:
            if rule.covers(url):
                return rule
        return None

    def max_level(self, zone: Zone) -> str | None:
        """The highest level ``zone`` accepts, or None if no rule covers it (refused outright)."""
        if zone.url is None:
            return self.staging
        rule = self.rule_for(zone.url)
        return None if rule is None else rule.max_level

    def highest_label(self, labels: Iterable[str]) -> str:
        """:meth:`Levels.highest` with this policy's levels: the label of data combined from ``labels``."""
        return self.levels.highest(labels)

    def decide(self, zone: Zone, objects: Iterable[tuple[str, str]]) -> Decision:
        """May the dataset ``objects`` ((key, resolved label) pairs) go to ``zone``?

        Allowed iff the zone is covered by a rule and every label is a level of this policy
        ranked at most the zone's maximum; ``unclassified`` and unknown labels are always
        refused. An empty dataset is allowed. Consumes ``objects`` once, in constant memory
        (the first :data:`~policies.decision.MAX_REASONS` reasons and a count). An egress
        zone no rule covers is refused without reading ``objects``.
        """
        rule = None if zone.url is None else self.rule_for(zone.url)
        if zone.url is not None and rule is None:
            return Decision(
                allowed=False,
                policy_version=self.version,
                zone=zone,
                max_level=None,
                egress_rule=None,
                highest_label=None,
                reasons=(f"no egress rule covers {zone.url}",),
                offending_count=0,
                object_count=0,
            )
        max_level = self.staging if rule is None else rule.max_level
        tally = Tally(self.levels, zone, max_level)
        for key, label in objects:
            tally.add(key, label)
        return Decision(
            allowed=tally.offending_count == 0,
            policy_version=self.version,
            zone=zone,
            max_level=max_level,
            egress_rule=None if rule is None else rule.prefix,
            highest_label=tally.highest_label,
            reasons=tuple(tally.reasons),
            offending_count=tally.offending_count,
            object_count=tally.object_count,
        )
