"""Strays: what a dataset directory holds that its plan does not. Files gone from the source
since the last staging, another source's files being replaced, files or symlinks someone
else put there. (What stands at a planned key, or where the plan needs a directory, is the
copy's to replace or refuse: :func:`find_strays`.)

One pass merge-joins the directory, walked by descriptor in key order
(:meth:`transfer.sink.DatasetDir.walk`), with the plan's keys, also in key order: memory
stays one directory listing per level (and the few sibling keys that sort between ``a`` and
``a/``), however many million files. A staging without
``sync`` or ``replace`` that finds any refuses before it changes a thing (the dataset stays
as it was, READY included), so a manifest never leaves out a file the directory holds; with
either, they are removed after the new set is copied and verified and before READY, as
``rclone sync`` deletes only after its copies.
"""

from collections import deque
from collections.abc import Iterable, Iterator

from stagegate.transfer.errors import StrayFilesError
from stagegate.transfer.plan import Plan
from stagegate.transfer.sink import DatasetDir, Entry

MAX_STRAYS_SHOWN = 10


class _Lookahead:
    """Ascending keys, read ahead as far as one question needs and no further."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = iter(keys)
        self._ahead: deque[str] = deque()

    def _pull(self) -> str | None:
        key = next(self._keys, None)
        if key is not None:
            self._ahead.append(key)
        return key

    def first_from(self, key: str) -> str | None:
        """The first key not below ``key``; the ones below are dropped."""
        while self._ahead or self._pull() is not None:
            if self._ahead[0] >= key:
                return self._ahead[0]
            self._ahead.popleft()
        return None

    def holds_under(self, prefix: str) -> bool:
        """Whether a key starts with ``prefix`` (a directory's name and ``/``), looking only
        past the keys that sort before it (siblings such as ``a.txt`` before ``a/``)."""
        for seen in self._ahead:
            if seen >= prefix:
                return seen.startswith(prefix)
        while (pulled := self._pull()) is not None:
            if pulled >= prefix:
                return pulled.startswith(prefix)
        return False


def find_strays(walked: Iterable[Entry], planned: Iterable[str]) -> Iterator[Entry]:
    """The entries of ``walked`` that the plan has no business with; both ascend by key.

    An entry at a planned key, or where the plan needs a directory (a file or a symlink at
    ``a`` when ``a/b`` is planned), is no stray: the copy replaces it (a file, a symlink at
    a file's key) or refuses it, naming it, as :class:`transfer.sink.DatasetDir` does with
    anything it will not follow."""
    keys = _Lookahead(planned)
    for entry in walked:
        if keys.first_from(entry.key) == entry.key or keys.holds_under(entry.key + "/"):
            continue
        yield entry


def _strays(dataset: DatasetDir, plan: Plan) -> Iterator[Entry]:
    return find_strays(dataset.walk(), (obj.key for obj in plan.entries()))


def refuse_strays(dataset: DatasetDir, plan: Plan) -> None:
    """Raise :class:`StrayFilesError` naming the first strays (and counting all) if
    ``dataset`` holds anything ``plan`` does not."""
    shown: list[str] = []
    count = 0
    for entry in _strays(dataset, plan):
        count += 1
        if len(shown) < MAX_STRAYS_SHOWN:
            shown.append(entry.key if entry.regular else f"{entry.key} (not a regular file)")
    if not count:
        return
    more = f" and {count - len(shown)} more" if count > len(shown) else ""
    raise StrayFilesError(
        f"{dataset.path} holds {count} file(s) that {plan.source_url} does not (gone from the "
        f"source since it was staged, or put there by someone else): {', '.join(shown)}{more}. "
        "Nothing was changed. Pass --sync to remove them once the new set is verified, "
        "or stage into a new directory",
        shown,
        count,
    )


def remove_strays(dataset: DatasetDir, plan: Plan) -> int:
    """Remove everything ``dataset`` holds that ``plan`` does not, and the directories left
    empty; returns how many entries went. A symlink goes itself, never what it points to."""
    removed = 0
    for entry in _strays(dataset, plan):
        dataset.remove(entry.key)
        removed += 1
    dataset.remove_empty_directories()
    return removed
