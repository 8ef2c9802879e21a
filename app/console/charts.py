"""Line and bar charts drawn on the server as SVG strings, for the console's pages.

No script and no ``style`` attribute or element: the console's Content-Security-Policy
(``style-src 'self'``) would block them. Colours, strokes and fonts are SVG
presentation attributes, which the CSP does not govern and which any rule of the
console's stylesheet overrides through these classes:

- ``chart``: the ``<svg>`` element (``chart-line`` or ``chart-bars`` too).
- ``chart-title``: the title text above the plot.
- ``chart-axis``: the two axis lines; ``chart-grid``: the horizontal grid lines.
- ``chart-tick``: tick labels on both axes.
- ``chart-series`` and ``chart-series-0`` … ``chart-series-7``: a line (a
  ``<polyline>``, or a ``<circle>`` for a single point) and its legend swatch, by
  the line's position in the palette.
- ``chart-legend``: a legend entry's ``<g>``.
- ``chart-bar``: a bar; ``chart-bar-label``: its name; ``chart-bar-value``: its value.
- ``chart-empty``: the "no data yet" text.

Every text (titles, legend entries, bar names: tenants' and metric labels' values)
is XML-escaped, and output is deterministic: the same input gives the same bytes.
Each chart has ``role="img"``, a ``<title>`` and a ``<desc>`` with its latest values.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["PALETTE", "bar_chart", "line_chart"]

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
"""Default stroke of each line, by position; the stylesheet may override it by class."""

_FONT = 11
_CHAR_W = 6.2  # average glyph width at _FONT px, to lay out legends and bar labels
_TITLE_H = 22
_AXIS_W = 48
_LABEL_MAX = 28
_SCALES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    unit: str,
    width: int = 560,
    height: int = 180,
    window_s: float = 3600.0,
    now: float | None = None,
) -> str:
    """Lines over the last ``window_s`` seconds, the time axis labelled "-60m" … "now".

    Args:
        series: Legend label -> points ``(unix time, value)``; points before the
            window, and values that are not finite, are left out.
        title: The chart's title (also its accessible name).
        unit: The values' unit, shown after the title ("s", "/s", "%").
        width: The SVG's width in pixels.
        height: Its height in pixels.
        window_s: Seconds the time axis spans.
        now: The time axis's right end; the latest point's time when ``None``.

    Returns:
        An ``<svg>`` element; "no data yet" when no series has a point in the window.
    """
    all_x = [x for points in series.values() for x, y in points if math.isfinite(y)]
    end = now if now is not None else max(all_x, default=0.0)
    start = end - window_s
    lines = {
        label: [(x, y) for x, y in points if start <= x <= end and math.isfinite(y)]
        for label, points in series.items()
    }
    lines = {label: points for label, points in lines.items() if points}
    heading = f"{title} ({unit})" if unit else title
    desc = "; ".join(
        f"{label}: latest {_number(pts[-1][1])} {unit}" for label, pts in lines.items()
    )
    out = _open(width, height, "chart chart-line", heading, desc or "no data yet")
    if not lines:
        out.append(_empty(width, height))
        return _close(out)

    legend = _legend_layout(list(lines), left=_AXIS_W, right=width - 10)
    legend_h = 16 * (legend[-1][1] + 1)
    left, right, top = _AXIS_W, width - 10, _TITLE_H + 6
    bottom = height - legend_h - 18
    y_max, ticks = _y_ticks(max(y for pts in lines.values() for _, y in pts))

    def px(x: float) -> float:
        return left + (x - start) / window_s * (right - left)

    def py(y: float) -> float:
        return bottom - max(y, 0.0) / y_max * (bottom - top)

    for tick in ticks:
        y = py(tick)
        out.append(_line(left, y, right, y, "chart-grid", "#e5e7eb"))
        out.append(_text(left - 4, y + 4, _number(tick), "chart-tick", anchor="end"))
    out.append(_line(left, top, left, bottom, "chart-axis", "#9ca3af"))
    out.append(_line(left, bottom, right, bottom, "chart-axis", "#9ca3af"))
    for i in range(5):
        x = left + i * (right - left) / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        out.append(_text(x, bottom + 13, _ago(window_s * (4 - i) / 4), "chart-tick", anchor=anchor))

    for i, ((label, points), (lx, row)) in enumerate(zip(lines.items(), legend, strict=True)):
        color, cls = PALETTE[i % len(PALETTE)], f"chart-series chart-series-{i % len(PALETTE)}"
        if len(points) == 1:
            out.append(
                f'<circle class="{cls}" cx="{_f(px(points[0][0]))}" cy="{_f(py(points[0][1]))}" '
                f'r="2.5" fill="{color}"/>'
            )
        else:
            coords = " ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in points)
            out.append(
                f'<polyline class="{cls}" points="{coords}" fill="none" stroke="{color}" '
                f'stroke-width="1.5" stroke-linejoin="round"/>'
            )
        ly = bottom + 26 + row * 16
        out.append(
            f'<g class="chart-legend"><title>{_esc(label)}</title>'
            f'<rect class="{cls}" x="{_f(lx)}" y="{_f(ly - 9)}" width="10" height="10" '
            f'fill="{color}"/>{_text(lx + 14, ly, _shorten(label), "chart-tick")}</g>'
        )
    return _close(out)


def bar_chart(
    values: Mapping[str, float],
    *,
    title: str,
    unit: str,
    width: int = 560,
    height: int | None = None,
) -> str:
    """Horizontal bars, the largest first (ties by name), each labelled with its value.

    Args:
        values: Bar name -> value (verdicts by category, cost by tenant); values
            that are not finite are left out, negative ones drawn as zero.
        title: The chart's title (also its accessible name).
        unit: The values' unit, shown after each value and the title.
        width: The SVG's width in pixels.
        height: Its height; when ``None``, what the bars need.

    Returns:
        An ``<svg>`` element; "no data yet" when ``values`` is empty.
    """
    bars = sorted(
        ((name, v) for name, v in values.items() if math.isfinite(v)), key=lambda b: (-b[1], b[0])
    )
    row_h = 20
    height = height if height is not None else _TITLE_H + 8 + max(len(bars), 2) * row_h
    heading = f"{title} ({unit})" if unit else title
    desc = "; ".join(f"{name}: {_number(v)} {unit}".rstrip() for name, v in bars)
    out = _open(width, height, "chart chart-bars", heading, desc or "no data yet")
    if not bars:
        out.append(_empty(width, height))
        return _close(out)

    label_w = min(_LABEL_MAX, max(len(_shorten(name)) for name, _ in bars)) * _CHAR_W + 8
    value_w = max(len(_value(v, unit)) for _, v in bars) * _CHAR_W + 8
    left, right = label_w, width - value_w
    top_value = max((v for _, v in bars), default=0.0)
    scale = (right - left) / top_value if top_value > 0 else 0.0
    for i, (name, v) in enumerate(bars):
        y = _TITLE_H + 8 + i * row_h
        length = max(v, 0.0) * scale
        color = PALETTE[0]
        out.append(
            f"<g><title>{_esc(name)}: {_esc(_value(v, unit))}</title>"
            f"{_text(left - 6, y + 13, _shorten(name), 'chart-bar-label', anchor='end')}"
            f'<rect class="chart-bar" x="{_f(left)}" y="{y + 3}" width="{_f(length)}" '
            f'height="{row_h - 6}" fill="{color}"/>'
            f"{_text(left + length + 4, y + 13, _value(v, unit), 'chart-bar-value')}</g>"
        )
    return _close(out)


def _legend_layout(labels: Sequence[str], *, left: float, right: float) -> list[tuple[float, int]]:
    """Each legend entry's x and row: entries side by side, wrapped at ``right``."""
    placed: list[tuple[float, int]] = []
    x, row = left, 0
    for label in labels:
        entry_w = 14 + len(_shorten(label)) * _CHAR_W + 14
        if x > left and x + entry_w > right:
            x, row = left, row + 1
        placed.append((x, row))
        x += entry_w
    return placed or [(left, 0)]


def _open(width: int, height: int, cls: str, heading: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" role="img" '
        f'aria-label="{_esc(heading)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="{_FONT}">',
        f"<title>{_esc(heading)}</title>",
        f"<desc>{_esc(desc)}</desc>",
        _text(8, 15, heading, "chart-title", weight="bold"),
    ]


def _close(parts: Iterable[str]) -> str:
    return "".join([*parts, "</svg>"])


def _empty(width: int, height: int) -> str:
    return _text(width / 2, height / 2 + 8, "no data yet", "chart-empty", anchor="middle")


def _text(
    x: float, y: float, text: str, cls: str, *, anchor: str = "start", weight: str = ""
) -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    return (
        f'<text class="{cls}" x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" fill="#374151"'
        f"{bold}>{_esc(text)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, cls: str, color: str) -> str:
    return (
        f'<line class="{cls}" x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
        f'stroke="{color}" stroke-width="1"/>'
    )


def _esc(text: str) -> str:
    """``text`` safe in an XML text node or a double-quoted attribute.

    NOTE: XML 1.0 has no way to write most control characters, even as references,
    and a label is anyone's tenant name: they become U+FFFD so the SVG still parses.
    """
    return escape(_INVALID_XML.sub("\ufffd", text), {'"': "&quot;"})


def _shorten(label: str) -> str:
    return label if len(label) <= _LABEL_MAX else label[: _LABEL_MAX - 1] + "…"


def _f(v: float) -> str:
    """A coordinate with one decimal at most, the same on every run."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _number(v: float) -> str:
    """A tick or a value, short: ``1.2k``, ``3.5M``, ``0.025``, ``12``, ``250``."""
    limit, suffix = next(((n, s) for n, s in _SCALES if abs(v) >= n), (1.0, ""))
    scaled = v / limit
    return (f"{scaled:.3g}" if abs(scaled) < 100 else f"{scaled:.0f}") + suffix


def _value(v: float, unit: str) -> str:
    return f"{_number(v)} {unit}".rstrip()


def _ago(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    if seconds >= 120:
        return f"-{round(seconds / 60)}m"
    return f"-{round(seconds)}s"


def _y_ticks(peak: float) -> tuple[float, list[float]]:
    """The axis's top and its ticks: 0 and a few round steps up to at least ``peak``."""
    if peak <= 0:
        return 1.0, [0.0, 0.5, 1.0]
    raw = peak / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = math.ceil(peak / step - 1e-9)
    return count * step, [i * step for i in range(count + 1)]
