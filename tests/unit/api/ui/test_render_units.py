"""The auditor's pages format bytes with the CLI's one formatter: the same size reads the same."""

import pytest

from stagegate.api.ui.render import human_bytes
from stagegate.sizes import format_bytes


@pytest.mark.parametrize("n", [0, 999, 1000, 999_950, 1_250_000, 62_500_000_000, 10**15])
def test_pages_and_cli_agree(n: int) -> None:
    assert human_bytes(n) == format_bytes(n)


def test_a_size_just_under_a_unit_rounds_up_into_it() -> None:
    assert human_bytes(999_950) == "1.0 MB"  # the pages' own formatter said "1000.0 kB"
