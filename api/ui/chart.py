"""A horizontal bar chart as inline SVG, drawn on the server: no script, no library, no request.

Pure: (label, value) pairs in, markup out, every label escaped.
"""

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 720
LABEL_WIDTH = 220
VALUE_WIDTH = 110
BAR_HEIGHT = 18
GAP = 6


def bar_lengths(values: Sequence[float], span: float) -> list[float]:
    """Each value's bar length in ``span`` units, the largest filling it; negatives draw nothing."""
    top = max((v for v in values if v > 0), default=0.0)
    if top <= 0:
        return [0.0 for _ in values]
    return [round(span * max(v, 0.0) / top, 1) for v in values]


def bar_chart_svg(
    bars: Sequence[tuple[str, float]], title: str, show: Callable[[float], str] = lambda v: f"{v:g}"
) -> Markup:
    """An SVG of one bar per (label, value), with ``show(value)`` printed after each bar."""
    if not bars:
        return Markup('<p class="empty">{}</p>').format(f"no data for {title}")
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = len(bars) * (BAR_HEIGHT + GAP) + GAP
    lengths = bar_lengths([v for _, v in bars], span)
    rows = []
    for i, ((label, value), length) in enumerate(zip(bars, lengths, strict=True)):
        y = GAP + i * (BAR_HEIGHT + GAP)
        text_y = y + BAR_HEIGHT - 4
        rows.append(
            Markup(
                '<text x="{lx}" y="{ty}" text-anchor="end" class="label">{label}</text>'
                '<rect x="{bx}" y="{y}" width="{w}" height="{h}" class="bar">'
                "<title>{label}: {shown}</title></rect>"
                '<text x="{vx}" y="{ty}" class="value">{shown}</text>'
            ).format(
                lx=LABEL_WIDTH - 8,
                ty=text_y,
                label=label,
                bx=LABEL_WIDTH,
                y=y,
                w=length,
                h=BAR_HEIGHT,
                vx=LABEL_WIDTH + length + 6,
                shown=show(value),
            )
        )
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" aria-label="{title}"><title>{title}</title>{rows}</svg>'
    ).format(w=WIDTH, h=height, title=escape(title), rows=Markup("").join(rows))
