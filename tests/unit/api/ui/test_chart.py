"""The usage chart: bar lengths proportional to the values, labels escaped, valid SVG."""

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from stagegate.api.ui.chart import bar_chart_svg, bar_lengths

SVG = "{http://www.w3.org/2000/svg}"


def test_lengths_are_proportional() -> None:
    assert bar_lengths([1.0, 2.0, 4.0], 400) == [100.0, 200.0, 400.0]
    assert bar_lengths([0.0, 0.0], 400) == [0.0, 0.0]
    assert bar_lengths([-3.0, 3.0], 400) == [0.0, 400.0]


@given(st.lists(st.tuples(st.text(max_size=30), st.floats(0, 1e15)), min_size=1, max_size=30))
def test_any_labels_give_well_formed_svg(bars: list[tuple[str, float]]) -> None:
    # XML 1.0 cannot carry most control characters at all; the page's labels are names and months.
    bars = [("".join(c for c in label if c.isprintable()), value) for label, value in bars]
    root = ET.fromstring(str(bar_chart_svg(bars, "title <x>")))
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == len(bars)
    labels = [t.text or "" for t in root.findall(f"{SVG}text") if t.get("class") == "label"]
    assert labels == [label for label, _ in bars]


def test_markup_in_a_label_is_text() -> None:
    svg = str(bar_chart_svg([("<script>alert(1)</script>", 1.0)], "t"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_no_bars_says_so() -> None:
    assert "no data" in str(bar_chart_svg([], "usage"))
