"""client.progress_line.layout, property-tested: whatever the width and the numbers, the line
fits, and every word in it is a whole word of the full line (fields drop whole, never cut)."""

from hypothesis import given
from hypothesis import strategies as st

from stagegate.client.progress_line import Fields, layout

words = st.text(alphabet="abcdefgh0123456789./:%", min_size=1, max_size=12)


@st.composite
def fields(draw: st.DrawFn) -> Fields:
    def field() -> str | None:
        return draw(st.none() | st.lists(words, min_size=1, max_size=3).map(" ".join))

    return Fields(percent=draw(words), sizes=field(), rate=field(), eta=field(), files=field(), note=field())


def full(f: Fields) -> list[str]:
    return " ".join(v for v in (f.percent, f.sizes, f.rate, f.eta, f.files, f.note) if v).split()


@given(fields(), st.floats(0, 1), st.integers(1, 300))
def test_the_line_fits_and_no_word_is_cut(f: Fields, fraction: float, width: int) -> None:
    line = layout(f, fraction, width)
    room = max(1, width - 1)
    assert len(line) <= room
    if len(f.percent) > room:  # a terminal narrower than the percentage: all that can be shown
        assert line == f.percent[:room]
        return
    body = line.split()
    if body[0].startswith("[") and body[0].endswith("]"):
        body = body[1:]
    assert f.percent in body, "the percentage is never dropped"
    assert all(w in full(f) for w in body), (line, full(f))


@given(fields(), st.floats(0, 1))
def test_a_wide_terminal_shows_every_field(f: Fields, fraction: float) -> None:
    line = layout(f, fraction, 400)
    assert line.split()[1:] == full(f)
    assert line.startswith("[")
