"""Other records: benchmarks no section claims, listed so nothing is dropped."""

from __future__ import annotations

from typing import Any

from ai_ready.report.sections.common import ReportData, _other_row


def build_other(data: ReportData) -> dict[str, Any] | None:
    """Records of benchmarks no section presents yet, so an unknown benchmark is listed, never dropped."""
    from ai_ready.report.sections import SECTIONS  # the registry imports this module, so look it up when called
    claimed = {b for s in SECTIONS for b in s.benchmarks}
    rows = [_other_row(e) for e in data.entries if e.record.benchmark not in claimed]
    return {"rows": rows} if rows else None
