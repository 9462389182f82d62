"""The pure parts of the copy processes: how small objects are grouped, how many processes a
machine gets, what crosses the pipe."""

import pickle

from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.copy_processes import (
    GROUP_BYTES,
    GROUP_FILES,
    _portable,
    default_processes,
    groups_of,
)
from stagegate.transfer.errors import ChecksumMismatchError, TransferError
from stagegate.transfer.objects import SourceObject


def objects(sizes: list[int]) -> list[SourceObject]:
    return [SourceObject(key=f"k{i:05d}", size=size, revision="r") for i, size in enumerate(sizes)]


@given(st.lists(st.integers(0, 2 * GROUP_BYTES), max_size=200))
def test_groups_keep_every_object_in_order_within_their_bounds(sizes):
    objs = objects(sizes)
    groups = groups_of(objs)
    assert [o for g in groups for o in g] == objs
    for group in groups:
        assert 1 <= len(group) <= GROUP_FILES
        # only a group of one may pass the byte bound (an object bigger than it on its own)
        assert len(group) == 1 or sum(o.size for o in group) <= GROUP_BYTES


def test_one_process_on_a_small_machine_more_where_cores_exist():
    assert [default_processes(c) for c in (1, 2, 4, 8, 64, 256)] == [1, 1, 1, 2, 16, 16]


def test_an_error_that_cannot_cross_the_pipe_arrives_as_a_transfer_error_saying_what_it_was():
    class Unpicklable(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}+{b}")

    kept = ChecksumMismatchError("k: md5 of the bytes received is x, the source published y")
    assert _portable(kept) is kept
    assert pickle.loads(pickle.dumps(kept)).args == kept.args
    replaced = _portable(Unpicklable(1, 2))
    assert isinstance(replaced, TransferError) and str(replaced) == "Unpicklable: 1+2"


def test_a_copy_process_gets_no_stagegate_setting_and_keeps_the_aws_chain(monkeypatch):
    from stagegate.settings import environment_without_settings

    monkeypatch.setenv("STAGEGATE_PEER_SECRET", "a-peer-secret-of-sixteen+")
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", "postgresql://u:pw@db/ledger")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    env = environment_without_settings()
    assert not [name for name in env if name.startswith("STAGEGATE_")]
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
