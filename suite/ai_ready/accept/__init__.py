"""Nightly system acceptance: suites of benchmarks, a history database, and verdicts per metric and node.

suite (what runs, references) -> run (benchmarks as processes, result documents) -> verdict (detect:
reference, history, change point, fleet) -> history (stored), junit, prometheus, trend (outputs).
``ai-ready accept`` (ai_ready.cli.accept) drives it; ``docs/acceptance.md`` describes it.
"""
