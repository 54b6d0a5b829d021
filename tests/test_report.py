"""The HTML report: sections follow the data, every figure sits beside its ceiling and source,
document text is always escaped, and the page loads nothing from anywhere."""

from __future__ import annotations

from conftest import section_of
import base64
import re
from html.parser import HTMLParser

import pytest

from ai_ready.records import Record, ResultDocument, load_results
from chartstub import real_chart, stub_charts
from ai_ready.report import build_report, write_report
from ai_ready.report import charts
from ai_ready.report.sections import SECTIONS, format_number

SCRIPT = "<script>alert(1)</script>"
ATTR_BREAK = '"><img src=x onerror=alert(2)>'
PAYLOAD = SCRIPT + ATTR_BREAK

BF16_CEILING = {"value": 989.4, "unit": "TFLOP/s", "kind": "catalog", "label": "h100-sxm bf16 dense peak",
                "source": "S4, S1"}
CHECK_OK = {"passed": True, "metric": "rel_fro_error", "value": 3.1e-3, "tolerance": 1e-2, "reference": "float64"}
ENVIRONMENT = {
    "host": "node01",
    "device": {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 8, "memory_gb": 79.6, "sm_count": 132,
               "compute_capability": "9.0", "driver": "550.54", "cuda": "12.4", "nccl": None},
    "cpu": {"model": "Xeon 8480+", "cores_physical": 112, "cores_logical": None, "flags": ["avx2", "amx_bf16"]},
    "launcher": {"name": "slurm", "rank": 0, "world_size": 8},
    "versions": {"python": "3.12.3", "torch": "2.5.1"},
}


def gemm(n: int = 2048, dtype: str = "bf16", value: float = 612.5, ceiling: dict | None = BF16_CEILING,
         **kwargs) -> Record:
    """An ok GEMM record shaped like the benchmark's; stats are given, not derived, to keep figures exact."""
    pct = 100.0 * value / ceiling["value"] if ceiling else None
    fields = dict(
        benchmark="gemm", case=f"square-{n}-{dtype}",
        params={"shape": "square", "m": n, "n": n, "k": n, "dtype": dtype},
        metric="throughput", unit="TFLOP/s", value=value,
        stats={"n": 15, "median": value, "mean": value, "std": 1.0, "cv": 0.02, "min": value - 5,
               "max": value + 5, "p10": value - 3, "p90": value + 3, "q1": value - 1, "q3": value + 1, "iqr": 2.0},
        samples=[value] * 15, host="node01", device="cuda:0", ceiling=ceiling, pct_of_ceiling=pct,
        check=CHECK_OK, timing={"clock": "cuda-event", "inner": 10},
    )
    fields.update(kwargs)
    return Record(**fields)


def failed_gemm(reason: str = "CUDA out of memory at 16384", **kwargs) -> Record:
    fields = dict(benchmark="gemm", case="square-16384-bf16",
                  params={"shape": "square", "m": 16384, "n": 16384, "k": 16384, "dtype": "bf16"},
                  metric="throughput", unit="TFLOP/s", status="failed", reason=reason)
    fields.update(kwargs)
    return Record(**fields)


def document(records: list[Record], status: str = "complete", environment: dict | None = None,
             **meta) -> ResultDocument:
    return ResultDocument(meta={"ai_ready_version": "0.1.0", "created": "2025-01-01T00:00:00+00:00",
                                "command": ["ai-ready", "bench", "gemm"], "status": status,
                                "environment": ENVIRONMENT if environment is None else environment, **meta},
                          records=records)


#: Sections that read every input (verdicts, anomalies, sources, raw data): present whenever their data is,
#: so the per-benchmark tests below leave them out of the sets they compare.
CROSS_CUTTING = {"summary", "anomalies", "recommendations", "sources", "rawdata"}


def section_ids(html: str) -> set[str]:
    """The page's sections, without the parts that hold them and the cross-cutting sections."""
    return {i for i in re.findall(r'<section id="([^"]+)"', html)
            if not i.startswith("part-") and i not in CROSS_CUTTING}


def row_of(html: str, case: str) -> str:
    """The table row naming `case` in the GEMM section."""
    gemm_html = section_of(html, "gemm")
    rows = [r for r in re.findall(r"<tr[ >].*?</tr>", gemm_html, flags=re.S) if f"<code>{case}</code>" in r]
    assert len(rows) == 1, f"expected one row for {case}, found {len(rows)}"
    return rows[0]


def chart_svgs(html: str) -> list[str]:
    return [base64.b64decode(b).decode("utf-8") for b in re.findall(r'data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)', html)]




@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=())


# --------------------------------------------------------------------------- sections follow the data

def test_gemm_figure_sits_beside_its_ceiling_percentage_and_source():
    html = build_report([document([gemm(value=612.5)])])
    row = row_of(html, "square-2048-bf16")
    assert "2048×2048×2048" in row
    assert "612" in row and "989 TFLOP/s" in row
    assert "catalog: h100-sxm bf16 dense peak" in row
    assert "61.9%" in row  # 612.5 / 989.4
    assert "S4, S1" in row
    assert "pass" in row and "3.1e-03" in row and "1.0e-02" in row
    assert ">15<" in row  # samples n


def test_gemm_without_ceiling_says_so_and_why():
    html = build_report([document([gemm(dtype="tf32", value=300.0, ceiling=None)])])
    row = row_of(html, "square-2048-tf32")
    assert "no ceiling known" in row
    assert "no catalog entry or declared peak for cuda:0 at tf32" in row
    assert "%" not in re.sub(r"<span class=\"sub\">.*?</span>", "", row.split("no ceiling known")[1])


def test_failed_and_skipped_cases_show_reason_and_never_a_number():
    skipped = failed_gemm(case="llm-mlp-up-t4096-h4096-fp8", status="skipped", reason="fp8 needs sm_89",
                          params={"shape": "llm-mlp-up", "m": 4096, "n": 16384, "k": 4096, "dtype": "fp8"})
    html = build_report([document([gemm(), failed_gemm(value=4321.5), skipped])])
    failed_row = row_of(html, "square-16384-bf16")
    assert "failed" in failed_row and "CUDA out of memory at 16384" in failed_row
    assert "4321" not in html and "4,321" not in html
    assert "fp8 needs sm_89" in row_of(html, "llm-mlp-up-t4096-h4096-fp8")
    overview = html[html.index('<section id="overview"'):html.index('<section id="environment"')]
    assert "CUDA out of memory at 16384" in overview and "fp8 needs sm_89" in overview


def test_sections_are_omitted_when_their_data_is_missing():
    other = Record(benchmark="allreduce", case="1GiB", params={}, metric="busbw", unit="GB/s", value=421.5)
    html = build_report([document([other], environment={})])
    assert section_ids(html) == {"overview", "other"}
    full = build_report([document([gemm(), other])])
    assert section_ids(full) == {"overview", "environment", "gemm", "other"}


def test_unknown_benchmarks_are_listed_not_dropped():
    ok = Record(benchmark="nvme-read", case="seq-1M", params={"qd": 32}, metric="bandwidth", unit="GB/s",
                value=6.75)
    bad = Record(benchmark="nvme-read", case="rand-4k", params={}, metric="iops", unit="IOPS", status="failed",
                 reason="fio not installed", value=99999.0)
    html = build_report([document([ok, bad])])
    other = section_of(html, "other")
    for text in ("nvme-read", "seq-1M", "bandwidth", "6.75", "GB/s", "rand-4k", "iops", "fio not installed"):
        assert text in other
    assert "99999" not in html and "99,999" not in html


def test_empty_inputs_still_render():
    for documents in ([], [document([], environment={})]):
        html = build_report(documents)
        assert "No records" in html
        assert "gemm" not in section_ids(html)
        assert "</html>" in html


def test_raw_samples_stay_out_of_the_page():
    html = build_report([document([gemm(value=612.5, samples=[777.123, 444.987] * 8)])])
    assert "777.1" not in html and "444.9" not in html and "445" not in html


def test_partial_and_interrupted_runs_get_a_banner():
    for status in ("partial", "interrupted", "running"):
        html = build_report([document([gemm()], status=status)], sources=["run.json"])
        assert 'class="banner banner-incomplete"' in html
        assert f"run.json has status “{status}”" in html
    assert 'class="banner banner-incomplete"' not in build_report([document([gemm()])])


def test_noisy_records_and_warnings_are_flagged():
    noisy = gemm(stats={"n": 20, "median": 500.0, "cv": 0.14, "p10": 400.0, "p90": 600.0},
                 warnings=["square-2048-bf16: CV 14.0% > 10% over 20 samples; rerun on an idle node"])
    html = build_report([document([noisy])])
    overview = html[html.index('<section id="overview"'):html.index('<section id="environment"')]
    assert "Noisy measurements" in overview and "14.0%" in overview
    assert "CV 14.0% &gt; 10% over 20 samples" in overview
    assert 'flag flag-warn" title="noisy">14.0%' in row_of(html, "square-2048-bf16")
    quiet = build_report([document([gemm()])])
    assert "Noisy measurements" not in quiet and "without failures, warnings or noisy samples" in quiet


def test_environment_renders_what_is_there_and_splits_when_documents_differ():
    other_env = {"host": "node02", "device": {"name": "NVIDIA A100"}, "extra_probe": {"numa": 2}}
    html = build_report([document([gemm()]), document([gemm(host="node02")], environment=other_env)],
                        sources=["a.json", "b.json"])
    env = section_of(html, "environment")
    assert "Environment 1" in env and "Environment 2" in env
    assert "8 × NVIDIA H100 80GB HBM3 (cuda)" in env and "79.6 GB each" in env and "NVIDIA A100" in env
    assert "slurm" in env and "rank 0 of 8" in env and "2.5.1" in env
    assert "avx2, amx_bf16 (2 flags reported)" in env and "112 physical" in env
    assert "extra_probe" in env and "numa=2" in env  # unknown detector keys are shown, not dropped
    assert "NCCL" not in env  # None values are left out


def test_several_ranks_get_a_where_column():
    one = build_report([document([gemm()])])
    assert "<th>Where</th>" not in section_of(one, "gemm")
    two = build_report([document([gemm(rank=0), gemm(rank=1, host="node02", value=600.0)])])
    assert "<th>Where</th>" in two
    assert "rank 1 · node02 · cuda:0" in two


def test_odd_optional_fields_do_not_break_the_report():
    odd = gemm(stats={"cv": "high", "p10": None}, ceiling=None, check="yes", warnings=[123],
               params={"shape": None, "m": "big", "dtype": "bf16"})
    odd.ceiling = {"value": "n/a"}
    html = build_report([document([odd], environment={"device": "gpu0", "cpu": None, "versions": ["x"]})])
    row = row_of(html, "square-2048-bf16")
    assert "?×?×?" in row and "no ceiling known" in row and "not checked" in row


def test_header_and_footer_name_title_version_and_inputs():
    html = build_report([document([gemm()])], sources=["results/gemm-h100.json"])
    assert "<title>ai-ready report</title>" in html
    assert "ai-ready 0.1.0" in html and "Generated " in html
    footer = html[html.index("<footer"):]
    assert "results/gemm-h100.json" in footer
    assert "<title>Node 7</title>" in build_report([], title="Node 7")


def test_report_reads_documents_loaded_from_disk(tmp_path):
    path = document([gemm(), failed_gemm()]).save(tmp_path / "results.json")
    html = build_report([load_results(path)], sources=[path.name])
    assert "61.9%" in row_of(html, "square-2048-bf16")


# --------------------------------------------------------------------------- security and self-containment

def hostile_document() -> ResultDocument:
    hostile_ceiling = dict(BF16_CEILING, label=PAYLOAD, source=PAYLOAD)
    records = [
        gemm(case=PAYLOAD, host=PAYLOAD, device=PAYLOAD, ceiling=hostile_ceiling,
             params={"shape": PAYLOAD, "m": 64, "n": 64, "k": 64, "dtype": PAYLOAD}, warnings=[PAYLOAD]),
        gemm(dtype="fp16", ceiling=None, device=PAYLOAD),
        failed_gemm(reason=PAYLOAD, case=PAYLOAD),
        Record(benchmark=PAYLOAD, case=PAYLOAD, params={"x": PAYLOAD}, metric=PAYLOAD, unit=PAYLOAD, value=1.0),
    ]
    env = {"host": PAYLOAD, "device": {"name": PAYLOAD, "count": PAYLOAD}, "cpu": {"flags": [PAYLOAD]},
           "versions": {PAYLOAD: PAYLOAD}, PAYLOAD: PAYLOAD}
    return document(records, status=PAYLOAD, environment=env, command=[PAYLOAD], created=PAYLOAD)


@real_chart
def test_document_text_is_always_escaped():
    html = build_report([hostile_document(), document([], status="partial")], title=PAYLOAD,
                        sources=[PAYLOAD, "ok.json"])
    assert SCRIPT not in html
    assert "<img src=x" not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # rendered, escaped, not dropped
    svgs = chart_svgs(html)
    assert svgs, "the GEMM chart should be drawn"
    for svg in svgs:
        assert "<script" not in svg and "<img" not in svg


class _Resources(HTMLParser):
    """Every attribute of every tag and every <style> body: where a page could name another host."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
URL_ATTRIBUTES = ("src", "href", "action", "poster", "srcset", "data", "formaction", "background")


@real_chart
def test_page_loads_nothing_from_anywhere():
    html = build_report([document([gemm(), gemm(n=4096, value=700.0), gemm(dtype="tf32", ceiling=None)]),
                         hostile_document()], sources=["a.json", "b.json"])
    parser = _Resources()
    parser.feed(html)
    tag_names = {tag for tag, _ in parser.tags}
    assert "script" not in tag_names and "link" not in tag_names and "iframe" not in tag_names
    for tag, attrs in parser.tags:
        for name in URL_ATTRIBUTES:
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:image/svg+xml;base64,", "data:text/csv;base64,",
                                         "data:application/json;base64,")), f"<{tag} {name}={value!r}>"
                if value.startswith(("data:text/csv", "data:application/json")):  # raw data: downloads only
                    assert tag == "a" and attrs.get("download"), f"<{tag} {name}=...> without a download name"
        assert "url(" not in (attrs.get("style") or "")
    css = "".join(parser.styles)
    assert "@import" not in css
    for value in re.findall(r"url\(\s*['\"]?([^'\")]*)", css, re.I):
        assert not REMOTE.match(value) and not value.lower().startswith("http"), value
    page = re.sub(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+", "data:", html)
    assert "http://" not in page and "https://" not in page
    assert '<img src="data:image/svg+xml;base64,' in html and 'alt="Bar chart of median GEMM throughput' in html


@real_chart
def test_chart_is_svg_with_text_as_paths():
    html = build_report([document([gemm(), gemm(dtype="fp16", value=650.0)])])
    (svg,) = chart_svgs(html)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<text" not in svg  # svg.fonttype = path: no font needed to view it


# --------------------------------------------------------------------------- writing

def test_write_report_is_atomic_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "reports" / "node.html"
    path = write_report([document([gemm()])], out, title="node", sources=["r.json"])
    assert path == out and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["node.html"]


def test_failed_render_leaves_existing_report_untouched(tmp_path, monkeypatch):
    out = tmp_path / "node.html"
    out.write_text("previous report", encoding="utf-8")

    def broken_chart(*args, **kwargs):
        raise RuntimeError("chart failed")

    monkeypatch.setattr(charts, "bar_chart", broken_chart)
    with pytest.raises(RuntimeError, match="chart failed"):
        write_report([document([gemm()])], out)
    assert out.read_text(encoding="utf-8") == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["node.html"]


# --------------------------------------------------------------------------- registry and formatting

def test_every_registered_section_has_a_template():
    from ai_ready.resources import resource_dir

    templates = resource_dir("templates")
    for section in SECTIONS:
        assert (templates / section.template).is_file(), section.template
    assert len({s.key for s in SECTIONS}) == len(SECTIONS)


@pytest.mark.parametrize("value, text", [(612.5, "612"), (98.76, "98.8"), (999.6, "1,000"), (1234.4, "1,234"),
                                         (0.0123, "0.0123"), (0, "0"), (None, "—"), (float("nan"), "—")])
def test_format_number(value, text):
    assert format_number(value) == text


def test_catalog_sources_of_ceilings_are_listed() -> None:
    from ai_ready.records import Record, ResultDocument
    from ai_ready.report import build_report

    ceiling = {"value": 989.0, "unit": "TFLOP/s", "kind": "catalog", "label": "h100-sxm bf16 dense peak",
               "source": "S4", "references": [{"id": "S4", "title": "NVIDIA H100 sheet", "where": "example.org/h100"}]}
    record = Record.from_samples([700.0, 710.0], benchmark="gemm", case="square-8192-bf16",
                                 params={"shape": "square", "m": 8192, "n": 8192, "k": 8192, "dtype": "bf16"},
                                 metric="throughput", unit="TFLOP/s", ceiling=ceiling, pct_of_ceiling=71.3)
    html = build_report([ResultDocument(meta={}, records=[record])])
    assert "Sources of the ceilings" in html and "NVIDIA H100 sheet" in html and "example.org/h100" in html
