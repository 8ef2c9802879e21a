"""The console's SVG charts: well-formed, escaped, deterministic, and drawn to scale."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.console.charts import bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"
NOW = 1_700_000_000.0


def _parse(svg: str) -> ET.Element:
    """The chart as XML; a chart that is not well-formed raises."""
    return ET.fromstring(svg)  # noqa: S314 - our own output, parsed to check it


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def _classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def _points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [
        (float(x), float(y)) for x, y in (p.split(",") for p in polyline.get("points", "").split())
    ]


def _hour(values: list[float]) -> list[tuple[float, float]]:
    """One point a minute, the last one at ``NOW``."""
    return [(NOW - 60 * (len(values) - 1 - i), v) for i, v in enumerate(values)]


def test_line_chart_draws_a_polyline_per_series_with_axes_legend_and_time_labels() -> None:
    root = _parse(
        line_chart(
            {"p50": _hour([0.1] * 61), "p99": _hour([0.5 + i / 100 for i in range(61)])},
            title="Turn latency",
            unit="s",
        )
    )
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.findtext(f"{SVG}title") == "Turn latency (s)"
    assert "p99: latest 1.1 s" in (root.findtext(f"{SVG}desc") or "")
    lines = root.findall(f"{SVG}polyline")
    assert [_classes(p) for p in lines] == [
        {"chart-series", "chart-series-0"},
        {"chart-series", "chart-series-1"},
    ]
    assert all(len(_points(p)) == 61 for p in lines)
    texts = _texts(root)
    assert [t for t in texts if t.startswith("-") or t == "now"] == [
        "-60m",
        "-45m",
        "-30m",
        "-15m",
        "now",
    ]
    assert {"p50", "p99", "Turn latency (s)"} <= set(texts)
    assert len([e for e in root.iter() if "chart-axis" in _classes(e)]) == 2


def test_line_chart_places_points_on_the_hour_and_the_largest_value_highest() -> None:
    root = _parse(
        line_chart(
            {"rps": [(NOW - 3600, 0.0), (NOW - 1800, 8.0), (NOW, 2.0)]}, title="t", unit="/s"
        )
    )
    (first, middle, last) = _points(root.findall(f"{SVG}polyline")[0])
    assert first[0] < middle[0] < last[0]
    assert middle[0] - first[0] == last[0] - middle[0]
    assert middle[1] < last[1] < first[1]  # SVG's y grows downwards
    axis_y = [float(e.get("y1", 0)) for e in root.iter(f"{SVG}line") if "chart-axis" in _classes(e)]
    assert first[1] == max(axis_y)  # zero sits on the time axis


def test_line_chart_ticks_are_round_and_cover_the_peak() -> None:
    root = _parse(line_chart({"x": _hour([0.0, 7.3])}, title="t", unit=""))
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"][:-1]
    assert ticks == ["0", "2", "4", "6", "8"]


def test_line_chart_without_points_in_the_window_says_no_data_yet() -> None:
    empties: list[dict[str, list[tuple[float, float]]]] = [
        {},
        {"rps": []},
        {"rps": [(NOW - 7200, 1.0)]},  # before the window
    ]
    for series in empties:
        root = _parse(line_chart(series, title="Requests", unit="/s", now=NOW))
        assert root.findall(f"{SVG}polyline") == []
        assert "no data yet" in _texts(root)
        assert root.findtext(f"{SVG}title") == "Requests (/s)"


def test_a_single_point_is_drawn_as_a_dot() -> None:
    root = _parse(line_chart({"only": [(NOW, 3.0)]}, title="t", unit=""))
    assert root.findall(f"{SVG}polyline") == []
    assert len(root.findall(f"{SVG}circle")) == 1


def test_many_lines_wrap_the_legend_inside_the_chart() -> None:
    series = {f"category number {i}": _hour([float(i)] * 5) for i in range(10)}
    root = _parse(line_chart(series, title="Verdicts", unit=""))
    swatches = [r for r in root.iter(f"{SVG}rect") if "chart-series" in _classes(r)]
    assert len(swatches) == 10
    assert all(float(r.get("x", 0)) + 10 <= 560 for r in swatches)
    assert len({r.get("y") for r in swatches}) > 1


def test_labels_are_escaped_everywhere() -> None:
    """Guards the console against markup in tenant names and metric labels."""
    evil = "<script>x</script> & 'co\""
    svgs = [
        line_chart({evil: _hour([1.0, 2.0])}, title=evil, unit=evil),
        bar_chart({evil: 3.0, "fine": 1.0}, title=evil, unit="$"),
    ]
    for svg in svgs:
        assert "<script" not in svg
        root = _parse(svg)
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        assert evil in _texts(root)  # the legend entry or the bar's name, read back whole
        assert root.get("aria-label", "").startswith(evil)
        assert (root.findtext(f"{SVG}title") or "").startswith(evil)


def test_control_characters_in_a_label_still_give_well_formed_xml() -> None:
    root = _parse(bar_chart({"bell\x07tenant\x00": 1.0}, title="Cost", unit=""))
    assert "bell\ufffdtenant\ufffd" in _texts(root)


def test_long_labels_are_shortened_on_screen_and_whole_in_the_tooltip() -> None:
    name = "a-very-long-tenant-name-that-goes-on-and-on"
    root = _parse(bar_chart({name: 1.0}, title="Cost", unit=""))
    assert name not in _texts(root)
    assert any(t.endswith("…") for t in _texts(root))
    assert any((g.findtext(f"{SVG}title") or "").startswith(name) for g in root.iter(f"{SVG}g"))


def test_no_inline_style_or_script_reaches_the_page() -> None:
    """Guards the CSP: ``style-src 'self'`` blocks style attributes and elements."""
    for svg in (
        line_chart({"a": _hour([1.0, 2.0, 3.0])}, title="t", unit="s"),
        bar_chart({"a": 1.0}, title="t", unit=""),
        line_chart({}, title="t", unit=""),
    ):
        for element in _parse(svg).iter():
            assert "style" not in element.attrib
            assert element.tag not in (f"{SVG}style", f"{SVG}script")
            assert not any(name.startswith("on") for name in element.attrib)


def test_bar_chart_sorts_largest_first_and_scales_widths() -> None:
    root = _parse(bar_chart({"b": 5.0, "a": 10.0, "c": 5.0, "zero": 0.0}, title="t", unit="$"))
    labels = [t.text for t in root.iter(f"{SVG}text") if "chart-bar-label" in _classes(t)]
    assert labels == ["a", "b", "c", "zero"]
    widths = [float(r.get("width", 0)) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1] == 2 * widths[2]
    assert widths[3] == 0
    values = [t.text for t in root.iter(f"{SVG}text") if "chart-bar-value" in _classes(t)]
    assert values == ["10 $", "5 $", "5 $", "0 $"]
    assert int(root.get("height", 0)) >= 4 * 20


def test_bar_chart_values_use_short_numbers() -> None:
    root = _parse(
        bar_chart({"big": 1_234_567.0, "small": 0.000125, "mid": 250.4}, title="t", unit="")
    )
    values = [t.text for t in root.iter(f"{SVG}text") if "chart-bar-value" in _classes(t)]
    assert values == ["1.23M", "250", "0.000125"]


def test_empty_bar_chart_says_no_data_yet() -> None:
    root = _parse(bar_chart({}, title="Cost per tenant", unit="$"))
    assert "no data yet" in _texts(root)
    assert root.findall(f"{SVG}rect") == []


def test_output_is_deterministic() -> None:
    series = {"p50": _hour([0.1, 0.2, 0.15]), "p95": _hour([0.3, 0.9, 0.4])}
    assert line_chart(series, title="t", unit="s") == line_chart(dict(series), title="t", unit="s")
    bars = {"x": 1.0, "y": 2.0}
    assert bar_chart(bars, title="t", unit="") == bar_chart(
        {"y": 2.0, "x": 1.0}, title="t", unit=""
    )
