"""Tests for transfer.sources.base.walk_sorted over an in-memory tree."""

from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer.sources.base import DirEntry, walk_sorted

# A tree is a dict: name -> None (a file) or a nested dict (a directory).
Tree = dict[str, Any]


def lister(tree: Tree, calls: list[str] | None = None) -> Callable[[str], Iterator[DirEntry]]:
    def list_dir(path: str) -> Iterator[DirEntry]:
        if calls is not None:
            calls.append(path)
        node = tree
        for name in path.split("/") if path else []:
            node = node[name]
        # deliberately unsorted, the way os.scandir returns entries
        for name in reversed(list(node)):
            child = node[name]
            yield DirEntry(name, isinstance(child, dict), payload=("p", name))

    return list_dir


def files_of(tree: Tree, prefix: str = "") -> list[str]:
    keys = []
    for name, child in tree.items():
        key = f"{prefix}/{name}" if prefix else name
        if isinstance(child, dict):
            keys.extend(files_of(child, key))
        else:
            keys.append(key)
    return keys


def test_tricky_siblings_come_out_in_key_order() -> None:
    tree: Tree = {
        "a0": None,
        "a": {"b": None, "a": {"z": None}},
        "a.txt": None,
        "a-c": None,
        "b": None,
        "A": None,
        "\u00e9": None,
        "\U0001f600": None,
        "~": None,
    }
    keys = [key for key, _ in walk_sorted(lister(tree))]
    assert keys == ["A", "a-c", "a.txt", "a/a/z", "a/b", "a0", "b", "~", "\u00e9", "\U0001f600"]
    assert keys == sorted(keys)
    encoded = [k.encode() for k in keys]
    assert encoded == sorted(encoded)


def test_yields_entries_with_their_payload() -> None:
    tree: Tree = {"d": {"f": None}}
    [(key, entry)] = list(walk_sorted(lister(tree)))
    assert key == "d/f"
    assert entry == DirEntry("f", False, ("p", "f"))


def test_empty_directories_yield_nothing() -> None:
    tree: Tree = {"empty": {}, "also": {"empty": {}}}
    assert list(walk_sorted(lister(tree))) == []


def test_walk_from_a_subdirectory() -> None:
    tree: Tree = {"top": {"x": None, "sub": {"y": None}}, "other": None}
    keys = [key for key, _ in walk_sorted(lister(tree), "top")]
    assert keys == ["top/sub/y", "top/x"]


def test_walk_is_lazy() -> None:
    calls: list[str] = []
    tree: Tree = {"a": {"f": None}, "b": {"g": None}}
    walk = walk_sorted(lister(tree, calls))
    assert next(walk)[0] == "a/f"
    assert "b" not in calls


names = st.text(
    st.sampled_from(["a", "b", "-", ".", "0", "~", " ", "\u00e9", "\U0001f600", "A"]),
    min_size=1,
    max_size=3,
).filter(lambda n: n not in (".", ".."))
trees = st.recursive(
    st.none(),
    lambda children: st.dictionaries(names, children, max_size=5),
    max_leaves=30,
).filter(lambda t: isinstance(t, dict))


@settings(max_examples=300)
@given(trees)
def test_walk_yields_every_file_once_in_utf8_byte_order(tree: Tree) -> None:
    keys = [key for key, _ in walk_sorted(lister(tree))]
    expected = sorted(files_of(tree))
    assert keys == expected
    assert [k.encode() for k in keys] == sorted(k.encode() for k in expected)
