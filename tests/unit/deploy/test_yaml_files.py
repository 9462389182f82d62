"""All deployment YAML, read strictly."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from unit.deploy.helpers import COMPOSE, k8s_files

_MERGE = "tag:yaml.org,2002:merge"


class _NoDuplicateKeys(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a duplicate is almost always an editing slip."""


def _mapping(loader: _NoDuplicateKeys, node: yaml.MappingNode) -> dict[Any, Any]:
    # Explicit keys only: a key that overrides one merged in from an anchor (`<<: *x`) is intended.
    keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    assert not duplicates, f"duplicate keys {duplicates} at line {node.start_mark.line + 1}"
    return loader.construct_mapping(node)


_NoDuplicateKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@pytest.mark.parametrize("path", [COMPOSE, *k8s_files()], ids=lambda p: p.name)
def test_no_duplicate_keys(path: Path) -> None:
    docs = list(yaml.load_all(path.read_text(), Loader=_NoDuplicateKeys))
    assert any(doc is not None for doc in docs)


def test_the_strict_reader_catches_a_duplicate() -> None:
    with pytest.raises(AssertionError, match="duplicate keys"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=_NoDuplicateKeys)
