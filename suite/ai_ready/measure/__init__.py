"""Measurement core: timing harness, statistics and rank coordination used by every benchmark."""

from ai_ready.measure.stats import CV_WARN_THRESHOLD, Summary, summarize

__all__ = ["CV_WARN_THRESHOLD", "Summary", "summarize"]
