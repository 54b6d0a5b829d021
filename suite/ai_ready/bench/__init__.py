"""Micro-benchmarks. Each module holds one benchmark: its cases, check, timed body, FLOP/byte count and ceiling."""
