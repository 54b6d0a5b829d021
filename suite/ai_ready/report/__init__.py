"""Readiness reports: self-contained HTML rendered from stored result documents.

``build_report`` returns the page; ``write_report`` writes it atomically.
Sections are registered in :mod:`ai_ready.report.sections` (see docs/report.md).
"""

from ai_ready.report.render import DEFAULT_TITLE, build_report, write_report

__all__ = ["DEFAULT_TITLE", "build_report", "write_report"]
