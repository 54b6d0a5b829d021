"""Other records: benchmarks no section claims, listed so nothing is dropped."""

from __future__ import annotations

from typing import Any, Collection

from ai_ready.report.sections.common import ReportData, _other_row


def build_other(data: ReportData, claimed: Collection[str]) -> dict[str, Any] | None:
    """Records of benchmarks no section presents yet (none of `claimed`), so an unknown benchmark is listed,
    never dropped."""
    rows = [_other_row(e) for e in data.entries if e.record.benchmark not in claimed]
    return {"rows": rows} if rows else None
