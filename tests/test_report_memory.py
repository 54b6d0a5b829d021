"""The memory section: STREAM-class bandwidth, host transfers and memory-bound kernels per device, each figure
beside the measured copy ceiling (and the catalog peak on a GPU) with its source; launch latency plain and in a
graph; failures with their reasons, skipped cases grouped, and everything escaped."""

from __future__ import annotations

from conftest import section_of
import re

import pytest

from ai_ready.records import Record
from chartstub import real_chart, stub_charts
from ai_ready.report import build_report, charts
from ai_ready.report.sections import format_count

from test_report import PAYLOAD, SCRIPT, chart_svgs, document, gemm, section_ids

M = 1 << 20
ELEMENTS = 64 * M
WORDS = {"copy": 2, "scale": 2, "add": 3, "triad": 3, "d2d-copy": 2, "reduce-sum": 1, "bias-gelu": 2}
CHECK = {"passed": True, "metric": "max_rel_error", "value": 2.4e-7, "tolerance": 1e-6, "reference": "NumPy float64"}
HOST_COPY = {"value": 12.5, "unit": "GB/s", "kind": "measured", "label": "measured host copy (torch, 2 threads)",
             "source": "this run, case copy"}
D2D_COPY = {"value": 2900.0, "unit": "GB/s", "kind": "measured",
            "label": "measured device-to-device copy (cudaMemcpy)", "source": "this run, case d2d-copy"}
HBM = {"value": 3350.0, "unit": "GB/s", "kind": "catalog", "label": "h100-sxm HBM bandwidth", "source": "S4, S1",
       "references": [{"id": "S4", "title": "NVIDIA H100 datasheet", "where": "example.org/h100"}]}
NO_GPU = "no CUDA device: torch.cuda.is_available() is False"
NO_GPU_KERNELS = "no CUDA device: CuPy kernels need a GPU"
COMPILER_ERROR = ('kernel.cu(12): error: identifier "floot4" is undefined\n'
                  "    floot4 v = x[i];\n    ^\n1 error detected in the compilation of \"kernel.cu\".")


def stats(value: float, cv: float = 0.02) -> dict:
    return {"n": 20, "median": value, "mean": value, "std": value * cv, "cv": cv, "min": value * 0.95,
            "max": value * 1.05, "p10": value * 0.98, "p90": value * 1.02}


def bandwidth(op: str, value: float, device: str = "cpu", ceiling: dict | None = None,
              others: list[dict] | None = None, benchmark: str = "memory", case: str | None = None,
              **params) -> Record:
    """An ok bandwidth record as the benchmark writes it; stats are given, not derived, to keep figures exact."""
    p = {"op": op, "impl": "torch-cpu" if device == "cpu" else "cupy-rawkernel", "elements": ELEMENTS,
         "dtype": "float32", "bytes_moved": WORDS.get(op, 2) * 4 * ELEMENTS, "device": device}
    p.update({"threads": 2} if device == "cpu" else {"vector_width": 4})
    p.update(params)
    pct = 100.0 * value / ceiling["value"] if ceiling else None
    others = [dict(o, pct=100.0 * value / o["value"]) for o in others or []]
    return Record(benchmark=benchmark, case=case or op, params=p, metric="bandwidth", unit="GB/s", value=value,
                  stats=stats(value), samples=[value] * 20, host="node01",
                  device="cpu" if device == "cpu" else "cuda:0", ceiling=ceiling, pct_of_ceiling=pct,
                  other_ceilings=others, check=CHECK)


def not_run(benchmark: str, case: str, status: str, reason: str, metric: str = "bandwidth",
            record_device: str = "Xeon 8480+", **params) -> Record:
    """A skipped or failed case as the benchmark writes it: on a CPU node it names the host's processor."""
    return Record(benchmark=benchmark, case=case, params={"op": case, "device": "cuda", **params}, metric=metric,
                  unit="GB/s" if metric == "bandwidth" else "us", status=status, reason=reason, host="node01",
                  device=record_device)


def launch(case: str, value: float) -> Record:
    return Record(benchmark="kernels", case=case, metric="latency", unit="us", value=value, stats=stats(value),
                  samples=[value] * 20, host="node01", device="cuda:0",
                  params={"op": case, "impl": "cupy-rawkernel", "device": "cuda",
                          "kernels_per_call": 100 if case.endswith("graph") else 1},
                  check={"passed": True, "metric": "launch completed", "value": None, "tolerance": None,
                         "reference": "cudaStreamSynchronize returned success"})


def cpu_run() -> list[Record]:
    """A CPU-only node: copy is the measured ceiling, the other three against it; every GPU case skipped."""
    records = [bandwidth("copy", 12.5, role="ceiling"),
               bandwidth("scale", 12.0, ceiling=HOST_COPY),
               bandwidth("add", 13.75, ceiling=HOST_COPY),
               bandwidth("triad", 13.5, ceiling=HOST_COPY)]
    records += [not_run("memory", c, "skipped", NO_GPU) for c in
                ("d2d-copy", "h2d-pinned", "h2d-pageable", "d2h-pinned", "d2h-pageable")]
    records += [not_run("kernels", c, "skipped", NO_GPU_KERNELS) for c in
                ("reduce-sum", "bias-gelu", "launch-empty", "launch-empty-graph")]
    return records


def gpu_run() -> list[Record]:
    """An H100: d2d-copy is the measured ceiling; triad and the kernels against it and the catalog HBM figure."""
    def gpu(op: str, value: float, **kw) -> Record:
        return bandwidth(op, value, device="cuda", ceiling=D2D_COPY, others=[HBM], **kw)

    return [
        bandwidth("d2d-copy", 2900.0, device="cuda", impl="cudaMemcpy", role="ceiling", others=[HBM]),
        gpu("copy", 2800.0), gpu("triad", 2378.5),
        transfer("h2d", "pinned", 52.3), transfer("d2h", "pageable", 18.4),
        gpu("reduce-sum", 2610.0, benchmark="kernels"),
        gpu("bias-gelu", 2500.0, benchmark="kernels", rows=8192, cols=8192),
        launch("launch-empty", 5.25), launch("launch-empty-graph", 1.5),
    ]


def transfer(op: str, memory: str, value: float) -> Record:
    return Record(benchmark="memory", case=f"{op}-{memory}", metric="bandwidth", unit="GB/s", value=value,
                  stats=stats(value), samples=[value] * 20, host="node01", device="cuda:0",
                  params={"op": op, "memory": memory, "bytes_moved": 256 * M, "device": "cuda"})


def section(html: str) -> str:
    start = html.index('<section id="memory"')
    return html[start:html.index("</section>", start)]


def row_of(html: str, op: str) -> str:
    rows = [r for r in re.findall(r"<tr[ >].*?</tr>", section(html), flags=re.S) if f"<code>{op}</code>" in r]
    assert len(rows) == 1, f"expected one row for {op}, found {len(rows)}"
    return rows[0]


@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=("bar",))




# --------------------------------------------------------------------------- presence

def test_section_appears_only_with_memory_or_kernels_records_and_claims_them():
    assert "memory" not in section_ids(build_report([document([gemm()])]))
    html = build_report([document(cpu_run(), environment={})])
    assert section_ids(html) == {"overview", "memory"}  # no "Other records": the section claims both benchmarks
    assert "Memory bandwidth and kernels" in html
    kernels_only = build_report([document([launch("launch-empty", 5.0)], environment={})])
    assert section_ids(kernels_only) == {"overview", "memory"}
    unknown = Record(benchmark="nvme", case="seq", params={}, metric="bw", unit="GB/s", value=1.0)
    mixed = build_report([document(gpu_run() + [unknown])])
    other = section_of(mixed, "other")
    assert "nvme" in other and "triad" not in other and "launch-empty" not in other


def test_intro_states_the_byte_count_units_and_cache_state():
    text = section(build_report([document(cpu_run())]))
    assert "each input\narray read once and each output array written once" in text
    assert "move 2 words per element" in text and "add (a = b + c) and triad (a = b + q·c) move 3" in text
    assert "1 GB/s = 10<sup>9</sup> bytes per second" in text
    assert "far larger than the\nlast-level cache" in text and "Figures are medians" in text


# --------------------------------------------------------------------------- CPU run

def test_cpu_run_shows_copy_as_the_measured_ceiling_and_the_others_against_it():
    html = build_report([document(cpu_run())])
    copy = row_of(html, "copy")
    assert "this is the measured ceiling" in copy and "no ceiling known" not in copy
    assert "64M" in copy and "512MiB" in copy  # 2 words × 4 B × 64M elements
    triad = row_of(html, "triad")
    assert ">13.5<" in triad and "768MiB" in triad
    assert "12.5 GB/s" in triad and "measured host copy (torch, 2 threads); source this run, case copy" in triad
    assert "108.0%" in triad  # 13.5 / 12.5: add and triad can beat copy on a CPU
    assert "96.0%" in row_of(html, "scale")
    assert "pass" in triad and "max_rel_error 2.4e-07 / tol 1.0e-06 vs NumPy float64" in triad
    assert "<th class=\"num\">Threads</th>" in section(html) and '<td class="num">2</td>' in triad
    assert "Other ceilings" not in section(html)  # no catalog figure for host memory


def test_cpu_run_groups_skipped_gpu_cases_by_reason():
    text = section(build_report([document(cpu_run())]))
    assert "<h4>cpu</h4>" in text and "<h4>cuda</h4>" in text
    gpu = text[text.index("<h4>cuda</h4>"):]
    assert gpu.count(NO_GPU) == 1 and gpu.count(NO_GPU_KERNELS) == 1
    assert "d2d-copy, h2d-pinned, h2d-pageable, d2h-pinned, d2h-pageable" in gpu
    assert "reduce-sum, bias-gelu, launch-empty, launch-empty-graph" in gpu
    assert "<table" not in gpu  # nothing ran there: lines, no empty tables
    assert "Device:" not in gpu  # a skipped record names this host's device, not a GPU


def test_skipped_case_beside_ok_ones_is_a_row_in_their_table():
    records = cpu_run()[:4] + [not_run("memory", "triad-fp64", "skipped", "float64 not requested", device="cpu")]
    text = section(build_report([document(records)]))
    table = re.search(r'<table class="data memory">.*?</table>', text, flags=re.S).group(0)
    assert "skipped" in table and "<code>triad-fp64</code>: float64 not requested" in table


# --------------------------------------------------------------------------- GPU run

def test_gpu_triad_shows_measured_copy_and_catalog_hbm_with_sources():
    html = build_report([document(gpu_run())])
    d2d = row_of(html, "d2d-copy")
    assert "this is the measured ceiling" in d2d and "cudaMemcpy" in d2d
    assert "86.6%" in d2d and "of catalog 3,350 GB/s" in d2d  # the ceiling itself against the catalog
    triad = row_of(html, "triad")
    assert "2,380" in triad or "2,378" in triad
    assert "2,900 GB/s" in triad and "measured device-to-device copy (cudaMemcpy)" in triad
    assert "source this run, case d2d-copy" in triad
    assert "82.0%" in triad  # 2378.5 / 2900
    assert "71.0%" in triad and "of catalog 3,350 GB/s" in triad  # 2378.5 / 3350
    assert "h100-sxm HBM bandwidth; source S4, S1" in triad
    assert "vector width 4" in triad
    text = section(html)
    assert "Sources of the ceilings" in text and "NVIDIA H100 datasheet" in text and "example.org/h100" in text
    assert ("Measured ceiling: <strong>2,900 GB/s</strong> (measured device-to-device copy (cudaMemcpy); "
            "source this run, case d2d-copy)") in text
    assert "Other ceiling: <strong>3,350 GB/s</strong> (catalog: h100-sxm HBM bandwidth; source S4, S1)" in text
    assert "Threads" not in text


def test_gpu_transfers_have_their_own_table_and_no_ceiling():
    html = build_report([document(gpu_run())])
    text = section(html)
    assert "<caption>memory · cuda · host↔device transfers</caption>" in text
    h2d = row_of(html, "h2d")
    assert "pinned host memory" in h2d and "52.3" in h2d and "256MiB" in h2d
    assert "no ceiling known" in h2d and "no catalog ceiling for the host link" in h2d
    assert "pageable host memory" in row_of(html, "d2h")


def test_skipped_transfer_beside_ok_gpu_cases_stays_with_the_transfers():
    records = gpu_run()[:3] + [not_run("memory", "h2d-pinned", "skipped", "pinned host memory unavailable")]
    text = section(build_report([document(records)]))
    assert "Device: cuda:0." in text
    # Nothing else of its table ran: one line under the table's name, no empty table.
    assert "memory · cuda · host↔device transfers: <code>h2d-pinned</code>: pinned host memory unavailable" in text
    assert "<caption>memory · cuda · host↔device transfers</caption>" not in text


def test_kernels_get_their_own_table_against_the_same_ceilings():
    html = build_report([document(gpu_run())])
    assert "<caption>kernels · cuda</caption>" in section(html)
    gelu = row_of(html, "bias-gelu")
    assert "86.2%" in gelu and "74.6%" in gelu  # 2500 / 2900 and 2500 / 3350


def test_launch_latency_plain_beside_graph_replay():
    text = section(build_report([document(gpu_run())]))
    table = re.search(r'<table class="data memory-launch">.*?</table>', text, flags=re.S).group(0)
    plain, graph = re.findall(r"<tr>\s*<td>.*?</tr>", table[table.index("<tbody>"):], flags=re.S)
    assert "plain launch" in plain and "per launch" in plain and "5.25" in plain
    assert "CUDA-graph replay" in graph and "per kernel in a graph replay" in graph and "1.50" in graph
    assert "kernels_per_call=1<" in plain and "kernels_per_call=100" in graph
    assert "launch completed vs cudaStreamSynchronize returned success" in graph and "tol" not in graph
    assert "<strong>1.50 µs</strong> against\n<strong>5.25 µs</strong> per plain launch: 3.50× less" in text


# --------------------------------------------------------------------------- failures and safety

def test_failed_compile_shows_the_compilers_message_escaped_and_no_figure():
    failed = not_run("kernels", "bias-gelu", "failed", COMPILER_ERROR + "\n" + SCRIPT, record_device="cuda:0",
                     impl="cupy-rawkernel")
    html = build_report([document(gpu_run()[:3] + [failed])])
    row = row_of(html, "bias-gelu")
    assert "row-bad" in row and "failed" in row
    assert '<pre class="mem-reason">kernel.cu(12): error: identifier &#34;floot4&#34; is undefined\n' in row
    assert "    floot4 v = x[i];\n    ^\n" in row
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row and SCRIPT not in html


@real_chart
def test_document_text_is_escaped_in_tables_and_chart():
    hostile = dict(HBM, label=PAYLOAD, source=PAYLOAD, references=[{"id": PAYLOAD, "title": PAYLOAD}])
    records = [bandwidth(PAYLOAD, 10.0, device=PAYLOAD, ceiling=dict(D2D_COPY, label=PAYLOAD), others=[hostile],
                         impl=PAYLOAD, dtype=PAYLOAD, threads=PAYLOAD),
               not_run(PAYLOAD, PAYLOAD, "skipped", PAYLOAD),
               not_run("memory", PAYLOAD, "failed", PAYLOAD, device=PAYLOAD),
               Record(benchmark="kernels", case="launch-empty", metric="latency", unit="us", value=3.0,
                      params={PAYLOAD: PAYLOAD, "device": PAYLOAD}),
               Record(benchmark="kernels", case=PAYLOAD, params={}, metric=PAYLOAD, unit=PAYLOAD, value=1.0)]
    html = build_report([document(records)], sources=[PAYLOAD])
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(html)
    svgs = chart_svgs(section(html))
    assert len(svgs) == 1 and "<script" not in svgs[0] and "<img" not in svgs[0] and "<text" not in svgs[0]


# --------------------------------------------------------------------------- chart

def test_chart_has_a_panel_per_table_and_the_ceilings_as_dashed_lines(fast_charts):
    text = section(build_report([document(gpu_run())]))
    assert text.count('<img src="data:image/svg+xml;base64,') == 1
    (call,) = fast_charts
    panels = {g.name: g for g in call["groups"]}
    assert list(panels) == ["memory, cuda", "memory, cuda, host transfers (no ceiling)", "kernels, cuda"]
    memory = panels["memory, cuda"]
    assert [(b.label, b.value) for b in memory.bars] == [("d2d-copy (cudaMemcpy)", 2900.0),
                                                         ("copy (cupy-rawkernel)", 2800.0),
                                                         ("triad (cupy-rawkernel)", 2378.5)]
    assert memory.bars[0].note == "measured ceiling" and memory.bars[2].note == "82%, 71% of catalog"
    assert memory.ceilings == [(2900.0, "measured device-to-device copy (cudaMemcpy)"),
                               (3350.0, "h100-sxm HBM bandwidth")]
    assert panels["memory, cuda, host transfers (no ceiling)"].ceilings == []
    assert "Bar chart of median memory bandwidth" in call["alt"]


def test_cpu_chart_draws_the_ceiling_row_when_no_other_row_cites_it(fast_charts):
    build_report([document(cpu_run()[:1])])
    (call,) = fast_charts
    assert call["groups"][0].ceilings == [(12.5, "measured ceiling, copy")]


@real_chart
def test_real_chart_is_svg_with_text_as_paths():
    (svg,) = chart_svgs(section(build_report([document(gpu_run() + cpu_run()[:4])])))
    assert svg.lstrip().startswith("<?xml") and "<text" not in svg


# --------------------------------------------------------------------------- helpers and odd input

@pytest.mark.parametrize("count, text", [(1000, "1000"), (1024, "1K"), (ELEMENTS, "64M"), (3 * M // 2, "1.5M"),
                                         (1 << 30, "1G"), (None, "—")])
def test_format_count(count, text):
    assert format_count(count) == text


def test_older_records_without_other_ceilings_and_odd_fields_still_render():
    odd = bandwidth("triad", 10.0, ceiling=HOST_COPY, elements="many", bytes_moved=None, threads=None)
    odd.other_ceilings = None
    odd.check = "yes"
    odd2 = bandwidth("scale", 9.0)
    odd2.ceiling = {"value": "n/a"}
    odd2.other_ceilings = [{"value": "n/a"}, "junk"]
    html = build_report([document([odd, odd2])])
    row = row_of(html, "triad")
    assert "not checked" in row and "—" in row
    scale = row_of(html, "scale")
    assert "no ceiling known" in scale and "no measured copy ceiling in this run" in scale
