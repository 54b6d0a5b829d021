"""Fast charts for report tests: matplotlib is slow, so only tests marked @real_chart draw real charts.

The stubs return a tiny SVG data URI and remember what they were asked to draw (for the kinds a test
file records), so tests can check a chart's data without rendering it.
"""

from __future__ import annotations

from typing import Any

import pytest

from ai_ready.report import charts


def real_chart(test: Any) -> Any:
    """Mark a test that needs matplotlib to draw its charts."""
    test.real_chart = True
    return test


def _stub(alt: str) -> charts.Chart:
    return charts.Chart(charts.svg_data_uri(b"<svg/>"), alt)


def stub_charts(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
                record: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Replace bar, line and scaling charts unless the test is @real_chart; calls of the kinds in `record` are kept."""
    calls: list[dict[str, Any]] = []
    if getattr(request.function, "real_chart", False):
        return calls

    def bar_chart(groups: Any, title: str, xlabel: str, alt: str) -> charts.Chart:
        if "bar" in record:
            calls.append({"groups": groups, "title": title, "alt": alt})
        return _stub(alt)

    def line_chart(lines: Any, title: str, xlabel: str, ylabel: str, alt: str, **kwargs: Any) -> charts.Chart:
        if "line" in record:
            calls.append({"lines": lines, "title": title, "alt": alt, **kwargs})
        return _stub(alt)

    def scaling_chart(series: Any, title: str, throughput_label: str, alt: str) -> charts.Chart:
        if "scaling" in record:
            calls.append({"series": series, "title": title, "alt": alt, "throughput_label": throughput_label})
        return _stub(alt)

    monkeypatch.setattr(charts, "bar_chart", bar_chart)
    monkeypatch.setattr(charts, "line_chart", line_chart)
    monkeypatch.setattr(charts, "scaling_chart", scaling_chart)
    return calls
