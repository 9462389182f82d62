"""find_strays: the merge of a directory walk with the plan, both in key order."""

from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.sink import Entry
from stagegate.transfer.strays import find_strays

KEYS = st.sets(st.text(alphabet="ab/.é", min_size=1, max_size=6))


@given(on_disk=KEYS, planned=KEYS, links=KEYS)
def test_strays_are_what_is_on_disk_and_not_planned_as_a_regular_file(
    on_disk: set[str], planned: set[str], links: set[str]
) -> None:
    links -= on_disk
    walked = sorted([Entry(k, True) for k in on_disk] + [Entry(k, False) for k in links], key=lambda e: e.key)
    strays = list(find_strays(walked, sorted(planned)))
    in_the_way = {k for k in on_disk | links if any(p.startswith(k + "/") for p in planned)}
    assert [e.key for e in strays] == sorted((on_disk | links) - planned - in_the_way)


def test_what_stands_at_a_planned_key_or_in_its_way_is_the_copys_to_judge() -> None:
    walked = [Entry("a", False), Entry("b", True), Entry("c", False), Entry("d.txt", True)]
    planned = ["a", "b!", "b.x", "b/deep/file", "c.txt", "d"]
    assert list(find_strays(walked, planned)) == [Entry("c", False), Entry("d.txt", True)]


def test_nothing_on_disk_means_no_strays_whatever_the_plan() -> None:
    assert list(find_strays([], ["a", "b"])) == []
