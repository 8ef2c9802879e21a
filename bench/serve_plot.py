"""The serving benchmark's plot: output tokens/s against TTFT p95, one line per
server through its load points, drawn with Pillow (no plotting library needed).

TTFT is on a log scale: the servers' TTFTs under load differ by orders of magnitude.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from pathlib import Path

COLOURS = {"ragserve": (200, 40, 40), "llama.cpp": (40, 90, 200), "naive": (90, 90, 90)}
WIDTH, HEIGHT, MARGIN = 900, 600, 70


def plot(results: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Write the plot of ``results`` (server -> load point -> summary) to ``path``."""
    series = {
        server: [
            (p["ttft_s"]["p95"], p["output_tokens_per_s"], point)
            for point, p in points.items()
            if "ttft_s" in p and not point.startswith(("multi", "ws"))
        ]
        for server, points in results.items()
    }
    values = [v for line in series.values() for v in line]
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 15), f"Output tokens/s vs TTFT p95 -- {title}", fill="black")
    if not values:
        image.save(path)
        return path
    low = math.log10(max(min(v[0] for v in values), 1e-3)) - 0.1
    high = math.log10(max(v[0] for v in values)) + 0.1
    top = max(v[1] for v in values) * 1.1

    def at(ttft: float, tokens: float) -> tuple[float, float]:
        x = MARGIN + (math.log10(max(ttft, 1e-3)) - low) / (high - low) * (WIDTH - 2 * MARGIN)
        y = HEIGHT - MARGIN - tokens / top * (HEIGHT - 2 * MARGIN)
        return x, y

    draw.rectangle((MARGIN, MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN), outline="black")
    for exponent in range(math.floor(low), math.ceil(high) + 1):
        for mantissa in (1, 2, 5):
            tick = mantissa * 10.0**exponent
            if low <= math.log10(tick) <= high:
                x, _ = at(tick, 0)
                draw.line((x, HEIGHT - MARGIN, x, HEIGHT - MARGIN + 5), fill="black")
                draw.text((x - 10, HEIGHT - MARGIN + 8), f"{tick:g}", fill="black")
    for n in range(6):
        tokens = top * n / 5
        _, y = at(1, tokens)
        draw.line((MARGIN - 5, y, MARGIN, y), fill="black")
        draw.text((10, y - 6), f"{tokens:.0f}", fill="black")
    draw.text((WIDTH // 2 - 40, HEIGHT - 30), "TTFT p95 (s, log)", fill="black")
    draw.text((10, MARGIN - 25), "output tok/s", fill="black")
    for n, (server, line) in enumerate(series.items()):
        colour = COLOURS.get(server, (0, 150, 0))
        points = sorted(line, key=lambda v: v[0])
        xy = [at(ttft, tokens) for ttft, tokens, _ in points]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for (x, y), (_, _, label) in zip(xy, points, strict=True):
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
            draw.text((x + 6, y - 12), label, fill=colour)
        draw.text((WIDTH - MARGIN - 120, MARGIN + 10 + 16 * n), server, fill=colour)
    image.save(path)
    return path
