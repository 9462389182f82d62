"""Tests for client.progress_bar.ProgressBar with a fake clock and an in-memory stream."""

import io

import pytest

from stagegate.client.progress_bar import REDRAW_EVERY, ProgressBar
from stagegate.progress import Progress

WIDTH = 200


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("LINES", "50")


def make_bar() -> tuple[ProgressBar, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return ProgressBar(stream=stream, clock=clock), stream, clock


def last_line(stream: io.StringIO) -> str:
    return stream.getvalue().split("\r")[-1]


def p(done: int, total: int = 1000, files: int = 0, files_total: int = 10, **kw: int) -> Progress:
    return Progress(files_total=files_total, bytes_total=total, files_done=files, bytes_done=done, **kw)


def test_first_draw_shows_percentage_and_unknown_eta() -> None:
    bar, stream, _ = make_bar()
    bar(p(100, files=1))
    line = last_line(stream)
    assert stream.getvalue().startswith("\r")
    assert " 10.0%" in line
    assert "100 B / 1.0 kB" in line
    assert "ETA --:--" in line  # no rate yet
    assert "files 1/10" in line
    assert line.startswith("[") and "]" in line
    assert "\n" not in stream.getvalue()


def test_rate_and_eta_follow_the_bytes() -> None:
    bar, stream, clock = make_bar()
    bar(p(100))
    clock.now += 1.0
    bar(p(300))
    line = last_line(stream)
    assert " 30.0%" in line
    assert "200 B/s" in line
    assert "ETA 0:04" in line  # 700 bytes left at 200 B/s = 3.5 s, rounded


def test_bar_fill_matches_fraction() -> None:
    bar, stream, _ = make_bar()
    bar(p(500))
    line = last_line(stream)
    inside = line[1 : line.index("]")]
    assert set(inside) <= {"#", "."}
    assert inside.count("#") == len(inside) // 2
    assert len(line) <= WIDTH - 1


def test_redraws_are_throttled() -> None:
    bar, stream, clock = make_bar()
    bar(p(100))
    before = stream.getvalue()
    clock.now += REDRAW_EVERY / 2
    bar(p(200))
    assert stream.getvalue() == before
    clock.now += REDRAW_EVERY
    bar(p(300))
    assert stream.getvalue() != before
    assert " 30.0%" in last_line(stream)


def test_the_final_update_is_always_drawn() -> None:
    bar, stream, clock = make_bar()
    bar(p(100))
    clock.now += 0.001
    bar(p(1000, files=10))
    assert "100.0%" in last_line(stream)
    assert "files 10/10" in last_line(stream)


def test_skipped_bytes_are_not_throughput() -> None:
    bar, stream, clock = make_bar()
    bar(p(0))
    clock.now += 1.0
    bar(p(600, files=2, files_skipped=2, bytes_skipped=500))
    line = last_line(stream)
    assert "100 B/s" in line  # 100 bytes copied in a second; 500 were already there
    assert " 60.0%" in line


def test_rate_follows_a_change_of_pace() -> None:
    bar, stream, clock = make_bar()
    total = 10**6
    bar(p(0, total))
    clock.now += 1.0
    bar(p(10_000, total))  # fast start: 10 kB/s
    assert "10.0 kB/s" in last_line(stream)
    done = 10_000
    for _ in range(10):  # then 100 B/s for ten seconds
        clock.now += 1.0
        done += 100
        bar(p(done, total))
    # only the last few seconds count, so the fast start is forgotten
    assert "100 B/s" in last_line(stream)


def test_zero_byte_dataset_is_complete() -> None:
    bar, stream, _ = make_bar()
    bar(p(0, total=0, files=0, files_total=0))
    assert "100.0%" in last_line(stream)


def test_long_lines_are_cut_to_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    bar, stream, _ = make_bar()
    bar(p(5 * 10**11, total=10**12, files=123456, files_total=999999))
    assert len(last_line(stream)) <= 39


def test_finish_ends_the_line_once() -> None:
    bar, stream, _ = make_bar()
    bar(p(100))
    bar.finish()
    assert stream.getvalue().endswith("\n")
    text = stream.getvalue()
    bar.finish()
    assert stream.getvalue() == text


def test_finish_without_a_bar_writes_nothing() -> None:
    bar, stream, _ = make_bar()
    bar.finish()
    assert stream.getvalue() == ""


def test_a_note_is_appended_to_the_line() -> None:
    bar, stream, _ = make_bar()
    bar(p(100, files=1), note="nodes 1/2 ready")
    assert last_line(stream).endswith("files 1/10  nodes 1/2 ready")


def test_a_given_rate_replaces_the_bars_own() -> None:
    bar, stream, clock = make_bar()
    bar(p(100), rate=50.0)
    line = last_line(stream)
    assert "50 B/s" in line
    assert "ETA 0:18" in line  # 900 bytes left at 50 B/s
    clock.now += 1.0
    bar(p(300))  # without one, the bar measures again: 200 bytes in a second
    assert "200 B/s" in last_line(stream)


def _wide_words(monkeypatch: pytest.MonkeyPatch, progress: Progress, note: str) -> list[str]:
    bar, stream, _ = make_bar()
    bar(progress, note=note)
    return last_line(stream).split()


@pytest.mark.parametrize("columns", [80, 40])
def test_a_narrow_terminal_loses_whole_fields_never_part_of_a_word(
    monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    big = p(41_300_000_000, total=62_500_000_000, files=845012, files_total=1281167)
    wide = _wide_words(monkeypatch, big, "nodes 1/2 ready")
    monkeypatch.setenv("COLUMNS", str(columns))
    bar, stream, _ = make_bar()
    bar(big, note="nodes 1/2 ready")
    line = last_line(stream)
    assert len(line) <= columns - 1
    words = line.split()
    assert words[0].startswith("[") and words[0].endswith("]"), "the bar is kept, whole"
    assert all(w in wide for w in words[1:]), f"a word was cut: {line!r}"
    assert "66.1%" in words and "41.3" in words, "the percentage and the bytes come first"
    if columns == 80:
        assert "ETA" in words and "files" in words


def test_finish_with_the_summarys_rate_redraws_the_last_line_with_it() -> None:
    bar, stream, clock = make_bar()
    bar(p(0))
    clock.now += 1.0
    bar(p(1000, files=10))  # 1 kB in the last second: the bar's own window says 1.0 kB/s
    assert "1.0 kB/s" in last_line(stream)
    bar.finish(rate=250.0)  # the whole staging, planning included, averaged 250 B/s
    final = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert "250 B/s" in final and "100.0%" in final
    assert stream.getvalue().endswith("\n")
