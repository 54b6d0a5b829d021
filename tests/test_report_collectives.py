"""The collectives section: nccl-tests' tables per backend, buffers, world size and dtype, busbw beside
its ceiling, failures with their reasons, stragglers named, alpha-beta fits, and everything escaped."""

from __future__ import annotations

from conftest import section_of
import re

import pytest

from ai_ready.records import Record
from chartstub import real_chart, stub_charts
from ai_ready.report import build_report, charts
from ai_ready.report.sections import format_bytes

from test_report import PAYLOAD, SCRIPT, chart_svgs, document, gemm, section_ids

MiB = 1 << 20
UNITS = {"time": "us", "algbw": "GB/s", "busbw": "GB/s", "wrong": "elements"}
FACTORS = {"all_reduce": 1.75, "all_gather": 0.875, "reduce_scatter": 0.875, "all_to_all": 0.875,
           "broadcast": 1.0, "sendrecv": 1.0}  # n = 8
NVLINK = {"value": 450.0, "unit": "GB/s", "kind": "catalog", "label": "h100 nvlink4 per-gpu busbw",
          "source": "S9", "references": [{"id": "S9", "title": "NVLink4 sheet", "where": "example.org/nvlink"}]}
STRAGGLER = {"rank": 1, "host": "n2", "ratio": 1.25}


def params(op: str, placement: str, size: int | None, **extra) -> dict:
    p = {"op": op, "backend": "nccl", "buffers": "device", "placement": placement, "bytes": size,
         "count": size // 4 if size else None, "dtype": "float32", "world_size": 8,
         "redop": "sum" if op in ("all_reduce", "reduce_scatter") else "none", "root": None}
    p.update(extra)
    return p


def metric_record(op: str, placement: str, size: int, metric: str, value: float, straggler: dict | None = None,
                  ceiling: dict | None = None, host: str = "n1", **extra) -> Record:
    """An ok point record as the benchmark writes it: median of three samples, per-rank timing."""
    timing = {"clock": "cuda-event", "inner": 20, "samples": 3, "aggregate": "max over ranks per sample",
              "per_rank": [{"rank": 0, "host": host, "median_us": 10.0},
                           {"rank": 1, "host": "n2", "median_us": 12.5}],
              "straggler": straggler}
    pct = 100.0 * value / ceiling["value"] if ceiling and metric == "busbw" else None
    return Record.from_samples([value * 0.99, value, value * 1.01] if value else [0, 0, 0],
                               benchmark="collectives", case=f"{op}-{placement}-{size}B",
                               params=params(op, placement, size, **extra), metric=metric, unit=UNITS[metric],
                               host=host, device="cuda:0", timing=timing,
                               ceiling=ceiling if metric == "busbw" else None, pct_of_ceiling=pct)


def point(op: str, placement: str, size: int, busbw: float, wrong: int = 0, **kwargs) -> list[Record]:
    """The four records of one point, derived from its busbw: algbw = busbw / factor, t = S / algbw."""
    algbw = busbw / FACTORS.get(op, 1.0)
    time_us = size / (algbw * 1e3)
    return [metric_record(op, placement, size, "time", time_us, **kwargs),
            metric_record(op, placement, size, "algbw", algbw, **kwargs),
            metric_record(op, placement, size, "busbw", busbw, **kwargs),
            metric_record(op, placement, size, "wrong", wrong, **kwargs)]


def not_ok(op: str, placement: str | None, size: int | None, metric: str, status: str, reason: str,
           value: float | None = None, **extra) -> Record:
    return Record(benchmark="collectives", case=f"{op}-{placement}-{size}B",
                  params=params(op, placement, size, **extra), metric=metric, unit=UNITS[metric], status=status, reason=reason, value=value)


def fit(op: str, placement: str, alpha: float | None, beta: float | None, status: str = "ok",
        reason: str | None = None, **extra) -> list[Record]:
    p = {"op": op, "backend": "nccl", "buffers": "device", "placement": placement, "dtype": "float32",
         "world_size": 8, "min_bytes": 8, "max_bytes": 1 << 30, "points": 28, "r2": 0.99871,
         "model": "t = alpha + S/beta"}
    p.update(extra)
    return [Record(benchmark="collectives", case=f"fit-{op}-{placement}", params=p, metric=metric, unit=unit,
                   value=value if status == "ok" else None, status=status, reason=reason, stats=None, samples=[])
            for metric, unit, value in (("alpha", "us", alpha), ("beta", "GB/s", beta))]


def all_reduce_sweep() -> list[Record]:
    """all_reduce out-of-place busbw 100, 200, 330 GB/s at 1, 4, 16 MiB and a failure at 64 MiB; in-place too."""
    records = []
    for size, busbw in ((MiB, 100.0), (4 * MiB, 200.0), (16 * MiB, 330.0)):
        records += point("all_reduce", "out-of-place", size, busbw, ceiling=NVLINK)
        records += point("all_reduce", "in-place", size, busbw * 0.9, ceiling=NVLINK)
    records.append(not_ok("all_reduce", "out-of-place", 64 * MiB, "time", "failed",
                          "timed out after 300 s waiting for rank 5"))
    records += point("all_reduce", "in-place", 64 * MiB, 390.0, ceiling=NVLINK)
    return records


def section(html: str) -> str:
    start = html.index('<section id="collectives"')
    return html[start:html.index("</section>", start)]


def table_of(html: str, op: str, index: int = 0) -> str:
    tables = [t for t in re.findall(r"<table class=\"data collectives\">.*?</table>", section(html), flags=re.S)
              if re.search(rf"<caption>{re.escape(op)}\b", t)]
    return tables[index]


def row_of(table: str, size_label: str) -> str:
    rows = [r for r in re.findall(r"<tr[ >].*?</tr>", table, flags=re.S) if f">{size_label}<span" in r
            or f">{size_label}</td>" in r]
    assert len(rows) == 1, f"expected one row for {size_label}, found {len(rows)}"
    return rows[0]


def cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]


@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=("line",))




# --------------------------------------------------------------------------- presence

def test_section_appears_only_with_collectives_records_and_claims_them():
    html = build_report([document(all_reduce_sweep(), environment={})])
    assert section_ids(html) == {"overview", "collectives"}  # no "Other records": the section claims them
    assert "Collective communication" in html
    assert "collectives" not in section_ids(build_report([document([gemm()])]))
    unknown = Record(benchmark="nvme", case="seq", params={}, metric="bw", unit="GB/s", value=1.0)
    mixed = build_report([document(all_reduce_sweep() + [unknown, gemm()])])
    other = section_of(mixed, "other")
    assert "nvme" in other and "all_reduce" not in other and "collectives" not in other


def test_intro_defines_algbw_and_busbw():
    text = section(build_report([document(all_reduce_sweep())]))
    assert "algbw</strong> = S / t" in text
    assert "2(n−1)/n for all_reduce" in text and "(n−1)/n for all_gather, reduce_scatter" in text
    assert "× 1 for broadcast and sendrecv" in text and "docs/collectives.md" in text


# --------------------------------------------------------------------------- tables

def test_table_shows_time_algbw_busbw_and_wrong_for_both_placements():
    html = build_report([document(all_reduce_sweep())])
    table = table_of(html, "all_reduce")
    assert "busbw = algbw × 2(n−1)/n, n = 8" in table and "redop sum" in table
    row = row_of(table, "1MiB")
    size, count, dtype, *figures = cells(row)
    assert size == ["1MiB", "1048576", "B"] and count == ["262144"] and dtype == ["float32"]
    # out-of-place: busbw 100, algbw 100/1.75 = 57.1, t = 1048576 B / 57.1 GB/s = 18.4 us; in-place at 90%
    assert figures[0] == ["18.4"] and figures[1] == ["57.1"] and figures[2][0] == "100" and figures[3] == ["0"]
    assert figures[4] == ["20.4"] and figures[5] == ["51.4"] and figures[6][0] == "90.0" and figures[7] == ["0"]
    assert "22.2% of ceiling" in row and "20.0% of ceiling" in row  # 100 / 450 and 90 / 450


def test_average_busbw_is_the_mean_of_ok_points_of_both_placements():
    """As nccl-tests' BenchTime: every timed point, out-of-place and in-place, adds its busbw to one mean."""
    table = table_of(build_report([document(all_reduce_sweep())]), "all_reduce")
    footer = table[table.index("<tfoot>"):]
    assert "avg busbw" in footer
    # (100 + 200 + 330 + 90 + 180 + 297 + 390) / 7 = 226.7; the failed 64 MiB out-of-place point is left out
    assert "227 GB/s" in footer
    assert "mean over 7 of 8 points" in footer


def test_ceiling_is_named_with_its_source_and_listed():
    text = section(build_report([document(all_reduce_sweep())]))
    assert "Ceiling: <strong>450 GB/s</strong>" in text
    assert "catalog: h100 nvlink4 per-gpu busbw; source S9" in text
    assert "NVLink4 sheet" in text and "example.org/nvlink" in text


def test_host_buffers_say_why_there_is_no_ceiling():
    records = point("all_reduce", "out-of-place", MiB, 2.5, backend="gloo", buffers="host")
    text = section(build_report([document(records)]))
    assert "No ceiling known: host buffers: no catalog ceiling for CPU memory-to-memory transfers." in text
    assert "of ceiling" not in text and "Ceiling:" not in text
    assert "gloo · host buffers · 8 ranks · float32" in text


def test_failed_point_shows_its_reason_and_no_figures():
    wrong = not_ok("all_gather", "out-of-place", MiB, "wrong", "failed", "12 wrong elements on rank 3", value=12)
    good = [r for r in point("all_gather", "out-of-place", MiB, 987.6) if r.metric != "wrong"]
    records = good + [wrong] + point("all_gather", "in-place", MiB, 80.0)
    html = build_report([document(records)])
    row = row_of(table_of(html, "all_gather"), "1MiB")
    assert "failed" in row and "12 wrong elements on rank 3" in row
    out_of_place = row[:row.index("12 wrong elements")]
    assert "987" not in out_of_place and "1,129" not in out_of_place  # no busbw, no algbw (987.6 / 0.875)
    assert "80.0" in row  # the in-place point still stands
    assert "mean over 1 of 2 points" in table_of(html, "all_gather")  # only the in-place point counts


def test_timeout_failure_spans_its_placement_only():
    row = row_of(table_of(build_report([document(all_reduce_sweep())]), "all_reduce"), "64MiB")
    assert "failed" in row and "timed out after 300 s waiting for rank 5" in row
    assert "390" in row  # in-place ran


def test_skipped_device_buffers_appear_with_their_reason():
    skipped = Record(benchmark="collectives", case="all_reduce-device",
                     params={"op": "all_reduce", "backend": "mpi", "buffers": "device", "world_size": 8,
                             "dtype": "float32"},
                     metric="time", unit="us", status="skipped", reason="MPI library is not CUDA-aware")
    host = point("all_reduce", "out-of-place", MiB, 3.0, backend="mpi", buffers="host")
    html = build_report([document(host + [skipped])])
    text = section(html)
    assert "mpi · device buffers · 8 ranks · float32" in text and "mpi · host buffers · 8 ranks · float32" in text
    device = text[:text.index("mpi · host buffers")]  # device sorts before host
    assert "skipped" in device and "all_reduce: MPI library is not CUDA-aware" in device
    assert "<table" not in device  # nothing ran there: one line, no empty table
    assert row_of(table_of(html, "all_reduce"), "1MiB")  # the host group keeps its table


def test_straggler_is_named_on_its_row():
    records = point("broadcast", "out-of-place", MiB, 40.0, straggler=STRAGGLER) + \
        point("broadcast", "in-place", MiB, 41.0)
    row = row_of(table_of(build_report([document(records)]), "broadcast"), "1MiB")
    assert "straggler" in row and "rank 1 on n2, 25% slower than the fastest" in row
    assert row.count("straggler</span>") == 1  # only the placement that had one


def test_fit_table_shows_alpha_beta_r2_and_size_range():
    records = all_reduce_sweep() + fit("all_reduce", "out-of-place", 23.456, 361.2) + \
        fit("all_reduce", "in-place", None, None, status="failed", reason="fewer than 3 ok points")
    text = section(build_report([document(records)]))
    fits = text[text.index('<table class="data coll-fits">'):]
    fits = fits[:fits.index("</table>")]
    ok_row, failed_row = re.findall(r"<tr>.*?</tr>|<tr class=.*?</tr>", fits[fits.index("<tbody>"):], flags=re.S)
    assert cells(ok_row) == [["all_reduce"], ["out-of-place"], ["23.5"], ["361"], ["0.9987"],
                                          ["8B", "–", "1GiB"], ["28"]]
    assert "failed" in failed_row and "fewer than 3 ok points" in failed_row and "in-place" in failed_row


def test_groups_split_by_backend_buffers_world_size_and_dtype(fast_charts):
    records = (point("all_reduce", "out-of-place", MiB, 100.0)
               + point("all_reduce", "out-of-place", MiB, 50.0, dtype="bfloat16")
               + point("all_reduce", "out-of-place", MiB, 20.0, world_size=16))
    text = section(build_report([document(records)]))
    titles = re.findall(r"<h4>(.*?)</h4>", text)
    assert titles[:3] == ["nccl · device buffers · 8 ranks · bfloat16",
                          "nccl · device buffers · 8 ranks · float32",
                          "nccl · device buffers · 16 ranks · float32"]
    assert len(fast_charts) == 3


def test_documents_are_never_merged_and_are_named():
    html = build_report([document(point("all_reduce", "out-of-place", MiB, 100.0)),
                         document(point("all_reduce", "out-of-place", MiB, 90.0, host="n7"))],
                        sources=["node01.json", "node07.json"])
    text = section(html)
    assert text.count("<h4>nccl · device buffers · 8 ranks · float32</h4>") == 2
    assert "From <code>node01.json</code>" in text and "From <code>node07.json</code>" in text


def test_records_that_fit_no_table_are_listed_and_repeats_are_counted():
    odd = Record(benchmark="collectives", case="all_reduce-latency", params=params("all_reduce", "out-of-place", MiB),
                 metric="latency_p99", unit="us", value=42.5)
    repeat = point("all_reduce", "out-of-place", MiB, 100.0) + [metric_record("all_reduce", "out-of-place", MiB,
                                                                             "busbw", 555.0)]
    text = section(build_report([document(repeat + [odd])]))
    extras = text[text.index("Other collectives records"):]
    assert "all_reduce-latency" in extras and "latency_p99" in extras and "42.5" in extras
    assert "1 record repeated a point already shown" in text
    assert "555" not in text.split("Other collectives records")[0]  # the first of the two busbw records is shown


def test_chart_has_one_line_per_op_and_placement_and_the_ceiling(fast_charts):
    records = all_reduce_sweep() + point("all_gather", "out-of-place", MiB, 70.0, ceiling=NVLINK)
    text = section(build_report([document(records)]))
    assert text.count('<img src="data:image/svg+xml;base64,') == 1
    (call,) = fast_charts
    lines = {(line.label, line.color_key, line.dashed): line.points for line in call["lines"]}
    assert lines[("all_reduce out-of-place", "all_reduce", False)] == [(MiB, 100.0), (4 * MiB, 200.0),
                                                                       (16 * MiB, 330.0)]
    assert len(lines[("all_reduce in-place", "all_reduce", True)]) == 4
    assert ("all_gather out-of-place", "all_gather", False) in lines
    assert call["ceilings"] == [(450.0, "h100 nvlink4 per-gpu busbw")]
    assert call["x_log2"] and call["x_tick_format"] is format_bytes
    assert "Line chart of bus bandwidth" in call["alt"] and 'alt="Line chart of bus bandwidth' in text


# --------------------------------------------------------------------------- safety and drawing

@real_chart
def test_document_text_is_escaped_in_tables_and_chart():
    records = (point(PAYLOAD, "out-of-place", MiB, 10.0, backend=PAYLOAD, host=PAYLOAD,
                     straggler={"rank": 1, "host": PAYLOAD, "ratio": 1.5}, ceiling=dict(NVLINK, label=PAYLOAD))
               + [not_ok(PAYLOAD, "in-place", MiB, "time", "failed", PAYLOAD, backend=PAYLOAD)]
               + fit(PAYLOAD, PAYLOAD, 1.0, 2.0, backend=PAYLOAD))
    html = build_report([document(records)])
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(html)
    svgs = chart_svgs(section(html))
    assert len(svgs) == 1 and "<script" not in svgs[0] and "<img" not in svgs[0]


@real_chart
def test_real_chart_with_six_ops_and_two_placements_is_svg_with_text_as_paths():
    records = []
    for op in FACTORS:
        for placement in ("out-of-place", "in-place"):
            for exp in range(3, 31, 3):
                records.append(metric_record(op, placement, 1 << exp, "busbw", 0.001 * (1 << (exp // 2)),
                                             ceiling=NVLINK))
    (svg,) = chart_svgs(section(build_report([document(records)])))
    assert svg.lstrip().startswith("<?xml") and "<text" not in svg


# --------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("size, text", [(8, "8B"), (1023, "1023B"), (1024, "1KiB"), (1536, "1.5KiB"),
                                        (MiB, "1MiB"), (1 << 30, "1GiB"), (None, "—")])
def test_format_bytes(size, text):
    assert format_bytes(size) == text


def test_log2_ticks_stay_few_and_land_on_binary_units():
    assert charts.log2_ticks(8, 8 << 30) == [5, 10, 15, 20, 25, 30]  # 32B, 1KiB, 32KiB, 1MiB, 32MiB, 1GiB
    assert charts.log2_ticks(1 << 20, 1 << 24) == [20, 21, 22, 23, 24]
    assert charts.log2_ticks(1024, 1024) == [10]


def test_a_group_where_nothing_ran_is_one_line_per_reason():
    reason = "no CUDA device here: MPI on device buffers not measured"
    records = [Record(benchmark="collectives", case=f"{op}-device-buffers", metric="time", unit="us",
                      params={"op": op, "backend": "mpi", "buffers": "device", "dtype": "float32"},
                      status="skipped", reason=reason) for op in ("all_reduce", "all_gather")]
    text = section(build_report([document(records)]))
    assert text.count(reason) == 1 and "all_reduce, all_gather" in text
    assert "<table" not in text  # no empty tables
