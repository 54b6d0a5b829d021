"""The report's sections: one registry, one builder per section.

A section is a template, ``templates/sections/<key>.html.j2``, plus a builder
that turns the stored documents into that template's data, or returns None so
the section is left out. Adding a section means writing those two (the builder
in its own module here, shared helpers in :mod:`.common`) and appending one
:class:`Section` to :data:`SECTIONS`; records whose benchmark no section claims
are listed under "Other records", so nothing is dropped.

Builders hand templates plain values (strings, numbers, flags). Everything
that came from a document is user data and reaches the page only through
Jinja2's autoescaping; nothing here ever marks it safe.
"""

from __future__ import annotations

from typing import Iterable

from ai_ready.report.sections.anomalies import build_anomalies
from ai_ready.report.sections.collectives import COLLECTIVES_BENCHMARK, build_collectives
from ai_ready.report.sections.common import (
    MISSING, PARTS, BuiltSection, Builder, Entry, ReportData, Section, format_bytes, format_number, format_percent,
    format_sci,
)
from ai_ready.report.sections.environment import build_environment
from ai_ready.report.sections.extrapolation import build_extrapolation
from ai_ready.report.sections.gemm import GEMM_BENCHMARK, build_gemm
from ai_ready.report.sections.io import IO_BENCHMARK, IO_NO_CEILING, build_io
from ai_ready.report.sections.memory import MEMORY_BENCHMARKS, build_memory, format_count
from ai_ready.report.sections.other import build_other
from ai_ready.report.sections.overview import build_overview
from ai_ready.report.sections.profile import PROFILE_BENCHMARK, build_profile
from ai_ready.report.sections.rawdata import build_rawdata
from ai_ready.report.sections.recommendations import build_recommendations
from ai_ready.report.sections.sources import build_sources
from ai_ready.report.sections.summary import build_summary
from ai_ready.report.sections.train import TRAIN_BENCHMARK, build_train

__all__ = [
    "PARTS", "build_anomalies", "build_rawdata", "build_recommendations", "build_sources", "build_summary",
    "COLLECTIVES_BENCHMARK", "GEMM_BENCHMARK", "IO_BENCHMARK", "IO_NO_CEILING", "MEMORY_BENCHMARKS", "MISSING",
    "PROFILE_BENCHMARK", "SECTIONS", "TRAIN_BENCHMARK", "BuiltSection", "Builder", "Entry", "ReportData", "Section",
    "build_collectives", "build_environment", "build_extrapolation", "build_gemm", "build_io", "build_memory",
    "build_other", "build_overview", "build_profile", "build_sections", "build_train", "format_bytes", "format_count",
    "format_number", "format_percent", "format_sci",
]


def build_sections(data: ReportData, sections: Iterable[Section] | None = None) -> list[BuiltSection]:
    """Run every builder in registry order; a builder returning None leaves its section out."""
    built = []
    for section in SECTIONS if sections is None else sections:
        content = section.build(data)
        if content is not None:
            built.append(BuiltSection(section.key, section.title, section.template, content, section.part))
    return built


def claimed_benchmarks() -> set[str]:
    """The benchmarks some section presents, read when the report is built (a centre may add sections)."""
    return {b for s in SECTIONS for b in s.benchmarks}


#: The report, in page order, each section in its part (common.PARTS). A new section: a template in
#: templates/sections/, a builder, one line here.
SECTIONS: list[Section] = [
    Section("summary", "Summary", build_summary, part="summary"),
    Section("anomalies", "Anomalies", build_anomalies, part="system"),
    Section("gemm", "GEMM throughput", build_gemm, benchmarks=(GEMM_BENCHMARK,), part="system"),
    Section("collectives", "Collective communication", build_collectives, benchmarks=(COLLECTIVES_BENCHMARK,),
            part="system"),
    Section("memory", "Memory bandwidth and kernels", build_memory, benchmarks=MEMORY_BENCHMARKS, part="system"),
    Section("io", "I/O and data loading", build_io, benchmarks=(IO_BENCHMARK,), part="system"),
    Section("train", "Training workloads", build_train, benchmarks=(TRAIN_BENCHMARK,), part="system"),
    Section("profile", "Your job, profiled", build_profile, benchmarks=(PROFILE_BENCHMARK,), part="job"),
    Section("extrapolation", "At scale: your job on the target systems", build_extrapolation, part="outlook"),
    Section("recommendations", "Recommendations", build_recommendations, part="recommendations"),
    Section("sources", "Assumptions and sources", build_sources, part="sources"),
    Section("overview", "Run notes", build_overview, part="appendix"),
    Section("environment", "Environment", build_environment, part="appendix"),
    Section("rawdata", "Raw data", build_rawdata, part="appendix"),
    Section("other", "Other records", lambda data: build_other(data, claimed_benchmarks()), part="appendix"),
]
