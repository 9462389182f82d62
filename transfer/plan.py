"""Planning: one streaming pass over a source listing that checks every key and writes the
plan to a spill file, so a listing of millions of objects is never held in memory."""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from transfer.errors import PlanRejectedError, UnsafeKeyError
from transfer.keys import NormalizationGuard, is_directory_marker, key_parts
from transfer.manifest import ManifestDigest
from transfer.objects import SourceObject
from transfer.sink import open_nofollow
from transfer.sources.base import Source

MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Plan:
    """What a staging will copy: its entries live in ``path``, one JSON object a line."""

    source_url: str
    path: Path
    files: int
    bytes: int
    digest: str
    directory_markers: int

    def entries(self) -> Iterator[SourceObject]:
        with os.fdopen(open_nofollow(self.path, os.O_RDONLY), "rb") as f:
            for line in f:
                yield SourceObject(**json.loads(line))


def _encode(obj: SourceObject) -> bytes:
    fields = {
        "key": obj.key,
        "size": obj.size,
        "revision": obj.revision,
        "version": obj.version,
        "mtime": obj.mtime,
        "checksum_algorithm": obj.checksum_algorithm,
    }
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def plan_dataset(source: Source, spill: Path) -> Plan:
    """List ``source`` into ``spill`` and check every key.

    Raises :class:`PlanRejectedError` naming the unsafe keys (the first 20 and a count),
    :class:`transfer.errors.SourceNotFoundError` if the source holds nothing.
    """
    guard = NormalizationGuard()
    digest = ManifestDigest()
    problems: list[str] = []
    problem_count = total_bytes = markers = 0
    with os.fdopen(open_nofollow(spill, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
        for obj in source.list():
            if is_directory_marker(obj.key, obj.size):
                markers += 1
                continue
            try:
                key_parts(obj.key)
                guard.add(obj.key)
            except UnsafeKeyError as exc:
                problem_count += 1
                if len(problems) < MAX_PROBLEMS_SHOWN:
                    problems.append(str(exc))
                continue
            digest.add(obj)
            total_bytes += obj.size
            f.write(_encode(obj))
    plan = Plan(source.url, spill, digest.count, total_bytes, digest.hexdigest(), markers)
    if guard.needs_second_pass and not problems:
        try:
            guard.check_against(o.key for o in plan.entries())
        except UnsafeKeyError as exc:
            problems.append(str(exc))
            problem_count += 1
    if problems:
        raise PlanRejectedError(problems, problem_count)
    return plan
