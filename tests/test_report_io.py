"""The I/O section: sequential write/read per block size with each read's cache state, random-read IOPS and
latency percentiles, metadata rates, checkpoint save/load (GB/s and seconds), data loading, aggregates over
ranks, every rank's figure, failures with their reasons, ceilings or the line saying there is none, escaping."""

from __future__ import annotations

from conftest import section_of
import re
from html import escape as html_escape

import pytest

from ai_ready.records import Record
from chartstub import real_chart, stub_charts
from ai_ready.report import build_report, charts
from ai_ready.report.sections import IO_NO_CEILING

from test_report import PAYLOAD, SCRIPT, chart_svgs, document, gemm, section_ids

K, M = 1 << 10, 1 << 20
PATH = "/scratch/ai-ready"
O_DIRECT = "O_DIRECT"
DROPPED = "page cache dropped (posix_fadvise DONTNEED)"
FSYNC = "written with fsync inside the timed region"
LUSTRE = {"value": 40.0, "unit": "GB/s", "kind": "catalog", "label": "lustre-exa5 read bandwidth", "source": "S9",
          "references": [{"id": "S9", "title": "DDN EXAScaler sheet", "where": "example.org/exa5"}]}


def stats(value: float, cv: float = 0.02) -> dict:
    return {"n": 5, "median": value, "mean": value, "std": value * cv, "cv": cv, "min": value * 0.95,
            "max": value * 1.05, "p10": value * 0.98, "p90": value * 1.02}


def rec(case: str, metric: str, unit: str, value: float, params: dict, cache: str | None = None, rank: int = 0,
        host: str = "node01", ceiling: dict | None = None, cv: float = 0.02) -> Record:
    return Record(benchmark="io", case=case, params=params, metric=metric, unit=unit, value=value,
                  stats=stats(value, cv), samples=[value] * 5, rank=rank, host=host, device="cpu",
                  timing={"clock": "host", "cache": cache} if cache else {"clock": "host"}, ceiling=ceiling,
                  pct_of_ceiling=100.0 * value / ceiling["value"] if ceiling else None)


def seq(op: str, bs: str, block: int, value: float, rank: int = 0, host: str = "node01", **kw) -> Record:
    params = {"op": f"seq_{op}", "block_bytes": block, "file_bytes": 1 << 30, "repeats": 5, "fs_type": "ext4",
              "path": PATH, "direct": True}
    cache = kw.pop("cache", FSYNC if op == "write" else O_DIRECT)
    return rec(f"seq-{op}-{bs}", "bandwidth", "GB/s", value, params, cache=cache, rank=rank, host=host, **kw)


def not_run(case: str, status: str, reason: str, metric: str = "bandwidth", **params) -> Record:
    return Record(benchmark="io", case=case, params=params, metric=metric, unit="GB/s", status=status,
                  reason=reason, host="node01")


def single_run() -> list[Record]:
    records = [seq("write", "4K", 4 * K, 0.35), seq("read", "4K", 4 * K, 0.52),
               seq("write", "1M", M, 2.1), seq("read", "1M", M, 3.2),
               seq("write", "16M", 16 * M, 2.4), seq("read", "16M", 16 * M, 3.55, cache=DROPPED)]
    rand = {"reads": 20000, "record_bytes": 4096, "file_bytes": 1 << 30, "path": PATH}
    records += [rec("rand-read-4K", "iops", "IOPS", 85400.0, rand, cache=O_DIRECT),
                rec("rand-read-4K", "latency", "us", 93.0, dict(rand, p50_us=91.5, p99_us=412.0), cache=O_DIRECT)]
    records += [rec(f"metadata-{op}", "ops", "ops/s", v, {"files": 10000})
                for op, v in (("unlink", 31000.0), ("create", 18250.0), ("stat", 412000.0))]
    for api, save, load in (("torch", (1.9, 2.26), (3.1, 1.385)), ("dcp", (2.6, 1.65), (4.2, 1.022))):
        for op, (gbs, secs) in (("save", save), ("load", load)):
            p = {"op": op, "bytes": 4 << 30, "file_bytes": (4 << 30) + 4096, "tensors": 64, "repeats": 3,
                 "api": {"torch": "torch.save", "dcp": "torch.distributed.checkpoint"}[api]}
            cache = FSYNC if op == "save" else DROPPED
            records += [rec(f"checkpoint-{op}-{api}", "bandwidth", "GB/s", gbs, p, cache=cache),
                        rec(f"checkpoint-{op}-{api}", "time", "s", secs, p, cache=cache)]
    for workers, sps in ((0, 1200.0), (4, 4650.0), (16, 9875.0)):
        p = {"workers": workers, "samples": 4096, "sample_bytes": 128 * K, "batch_size": 32}
        records += [rec(f"dataloader-w{workers}", "throughput", "samples/s", sps, p, cache=DROPPED),
                    rec(f"dataloader-w{workers}", "bandwidth", "MB/s", sps * 0.131072, p, cache=DROPPED)]
    return records


def section(html: str) -> str:
    start = html.index('<section id="io"')
    return html[start:html.index("</section>", start)]


def table(html: str, kind: str) -> str:
    found = re.findall(rf'<table class="data io io-{kind}">.*?</table>', section(html), flags=re.S)
    assert len(found) == 1, f"expected one {kind} table, found {len(found)}"
    return found[0]


def rows(html: str, kind: str) -> list[str]:
    return re.findall(r"<tr>.*?</tr>", table(html, kind).split("<tbody>")[1], flags=re.S)


def row_with(html: str, kind: str, text: str) -> str:
    matching = [r for r in rows(html, kind) if text in r]
    assert len(matching) == 1, f"expected one {kind} row with {text!r}, found {len(matching)}"
    return matching[0]


@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=("bar",))




# --------------------------------------------------------------------------- presence

def test_section_appears_only_with_io_records_and_claims_them():
    assert "io" not in section_ids(build_report([document([gemm()])]))
    html = build_report([document(single_run(), environment={})])
    assert section_ids(html) == {"overview", "io"}  # no "Other records": the section claims the benchmark
    assert "I/O and data loading" in html
    unknown = Record(benchmark="nvme", case="seq", params={}, metric="bw", unit="GB/s", value=1.0)
    mixed = build_report([document(single_run() + [unknown])])
    other = section_of(mixed, "other")
    assert "nvme" in other and "seq-write-1M" not in other and "dataloader" not in other


def test_section_sits_after_memory():
    from ai_ready.report.sections import SECTIONS

    keys = [s.key for s in SECTIONS]
    assert keys.index("io") == keys.index("memory") + 1


def test_intro_states_units_durability_cache_and_medians():
    text = section(build_report([document(single_run())]))
    assert "GB/s</strong> = 10<sup>9</sup>" in text and "Writes are durable" in text
    assert "<code>fsync</code> runs inside the timed region" in text
    assert "Reads state their cache state" in text and "medians over the repeats" in text


# --------------------------------------------------------------------------- sequential

def test_sequential_rows_per_block_size_with_read_cache_state_beside_the_read(fast_charts):
    html = build_report([document(single_run())])
    text = section(html)
    assert f"<h4><code>{PATH}</code> · ext4</h4>" in text and "O_DIRECT." in text
    blocks = [re.search(r"<code>([^<]+)</code>", r).group(1) for r in rows(html, "seq")]
    assert blocks == ["4KiB", "1MiB", "16MiB"]  # sorted by bytes, not by text
    one = row_with(html, "seq", "<code>1MiB</code>")
    assert ">2.10<" in one and ">3.20<" in one
    assert re.search(r">3\.20</td>\s*<td[^>]*>3\.14–3\.26</td>\s*<td[^>]*>2\.0%</td>\s*<td class=\"io-cache\">O_DIRECT</td>", one,
                     flags=re.S), "the read's cache state follows the read figure"
    assert FSYNC in one  # the write's own statement, under the write figure
    assert DROPPED in row_with(html, "seq", "<code>16MiB</code>")
    assert "1GiB" in one and ">5<" in one  # file size and repeats
    note = html_escape("N" + IO_NO_CEILING[1:] + ".").replace("&#x27;", "&#39;")
    assert text.count(note) == 5  # once per table: seq, rand, metadata, ckpt, loader
    chart = fast_charts[-1]
    assert [g.name for g in chart["groups"]] == ["write, durable (fsync timed)", "read, cache state varies"]  # reads differ in cache state
    assert [b.label for b in chart["groups"][0].bars] == ["4KiB", "1MiB", "16MiB"]
    assert chart["groups"][1].bars[1].value == 3.2


def test_read_without_cache_state_says_so():
    html = build_report([document([seq("read", "1M", M, 3.0, cache=None)])])
    assert "cache state not recorded" in row_with(html, "seq", "<code>1MiB</code>")


def test_catalog_ceiling_is_shown_with_source_and_percentage():
    records = [seq("write", "1M", M, 20.0, ceiling=dict(LUSTRE, label="lustre-exa5 write bandwidth")),
               seq("read", "1M", M, 30.0, ceiling=LUSTRE)]
    html = build_report([document(records)])
    one = row_with(html, "seq", "<code>1MiB</code>")
    assert "75.0%" in one and "50.0%" in one and "of 40.0 GB/s" in one
    assert "catalog: lustre-exa5 read bandwidth; source S9" in one
    text = section(html)
    assert "No catalog ceiling" not in text  # every figure has one
    assert "DDN EXAScaler sheet" in text


# --------------------------------------------------------------------------- random reads, metadata

def test_random_reads_show_iops_and_latency_percentiles():
    html = build_report([document(single_run())])
    row = row_with(html, "rand", "rand-read-4K")
    assert "85,400" in row and ">91.5<" in row and ">412<" in row
    assert "4KiB" in row and "20,000" in row and O_DIRECT in row


def test_metadata_ops_in_order():
    html = build_report([document(single_run())])
    ops = [re.search(r"<code>([^<]+)</code>", r).group(1) for r in rows(html, "metadata")]
    assert ops == ["create", "stat", "unlink"]
    assert "412,000" in row_with(html, "metadata", "<code>stat</code>")
    assert "10,000" in row_with(html, "metadata", "<code>create</code>")
    assert "per rank" not in section(html)  # one rank ran: nothing to list


# --------------------------------------------------------------------------- checkpoints, data loading

def test_checkpoint_save_and_load_rows_with_gbs_seconds_and_bytes():
    html = build_report([document(single_run())])
    cases = [re.search(r"<code>(checkpoint-[^<]+)</code>", r).group(1) for r in rows(html, "checkpoint")]
    assert cases == ["checkpoint-save-torch", "checkpoint-load-torch", "checkpoint-save-dcp", "checkpoint-load-dcp"]
    save = row_with(html, "checkpoint", "checkpoint-save-torch")
    assert ">1.90<" in save and ">2.26<" in save and "4GiB" in save and ">64<" in save and FSYNC in save
    load = row_with(html, "checkpoint", "checkpoint-load-dcp")
    assert ">4.20<" in load and ">1.02<" in load and DROPPED in load
    assert "torch.distributed.checkpoint" in load and "torch.save" in save


def test_dataloader_rows_per_worker_count():
    html = build_report([document(single_run())])
    workers = [re.search(r'<td class="num">(\d+)<', r).group(1) for r in rows(html, "dataloader")]
    assert workers == ["0", "4", "16"]
    row = row_with(html, "dataloader", "dataloader-w16")
    assert "9,875" in row and "1,294" in row and "128KiB" in row and ">32<" in row and DROPPED in row


# --------------------------------------------------------------------------- ranks and aggregates

def test_several_ranks_show_rank_zero_and_list_every_rank():
    records = [seq("write", "1M", M, 2.1, rank=0), seq("write", "1M", M, 1.7, rank=1, host="node02"),
               seq("read", "1M", M, 3.3, rank=1, host="node02"), seq("read", "1M", M, 3.2, rank=0)]
    records.append(not_run("seq-read-1M", "failed", "EIO on rank 2"))
    records[-1].rank, records[-1].host = 2, "node03"
    records.append(rec("metadata-create", "ops", "ops/s", 18000.0, {"files": 1000}))
    html = build_report([document(records)])
    row = row_with(html, "seq", "<code>1MiB</code>")
    assert re.search(r'<td class="num value">2\.10', row)  # rank 0's figure is the main one
    assert "per rank: rank 0 node01: 2.10 · rank 1 node02: 1.70" in row
    assert "rank 0 node01: 3.20 · rank 1 node02: 3.30 · rank 2 node03: failed (EIO on rank 2)" in row
    assert "3 ranks." in section(html) and "node01, node02, node03" in section(html)
    assert "rank 0 only" in row_with(html, "metadata", "<code>create</code>")


def test_aggregates_get_their_own_table_with_slowest_rank_and_spread():
    agg = {"op": "seq_write", "aggregate": True, "ranks": 4, "per_rank_gbs": [2.0, 1.9, 1.2, 2.1], "path": PATH}
    records = [seq("write", "1M", M, 2.0),
               rec("seq-write-1M-aggregate", "bandwidth", "GB/s", 7.2, agg, cache=FSYNC),
               rec("mpiio-read-shared", "bandwidth", "GB/s", 11.0,
                   dict(agg, op="mpiio_read", per_rank_gbs=[2.8, 2.7, 2.75, 2.75]), cache=O_DIRECT),
               not_run("mpiio-write-shared", "skipped", "MPI-IO needs mpi4py", aggregate=True, ranks=4),
               rec("metadata-create-aggregate", "ops", "ops/s", 64000.0,
                   {"files": 1000, "aggregate": True, "ranks": 4, "per_rank": [16500.0, 16000.0, 17000.0, 15800.0],
                    "slowest_rank": 3})]
    html = build_report([document(records)])
    t = table(html, "aggregate")
    assert "Aggregate over 4 ranks" in t
    row = row_with(html, "aggregate", "seq-write-1M-aggregate")
    assert ">7.20 GB/s<" in row and "rank 2: 1.20" in row and "1.20–2.10" in row and "42.9%" in row
    assert "2.00, 1.90, 1.20, 2.10" in row and FSYNC in row
    assert O_DIRECT in row_with(html, "aggregate", "mpiio-read-shared")
    meta = row_with(html, "aggregate", "metadata-create-aggregate")
    assert "64,000 ops/s" in meta and "rank 3: 15,800" in meta and "15,800–17,000" in meta
    assert "io-metadata" not in section(html)  # an aggregate stays out of the per-rank tables
    skipped = row_with(html, "aggregate", "mpiio-write-shared")
    assert "skipped" in skipped and "MPI-IO needs mpi4py" in skipped
    assert "seq-write-1M-aggregate" not in table(html, "seq")


# --------------------------------------------------------------------------- failures, extras, escaping

def test_failed_and_skipped_records_show_reasons_and_no_number():
    records = single_run()[:4] + [
        not_run("seq-write-16M", "failed", "No space left on device", path=PATH, block_bytes=16 * M),
        not_run("seq-read-16M", "skipped", "O_DIRECT not supported; used posix_fadvise", path=PATH,
                block_bytes=16 * M),
        not_run("checkpoint-save-dcp", "skipped", "torch.distributed.checkpoint unavailable", api="dcp", op="save"),
        not_run("dataloader-w8", "failed", "worker 3 died\nTraceback: ...", metric="throughput", workers=8)]
    html = build_report([document(records)])
    row = row_with(html, "seq", "<code>16MiB</code>")
    assert "failed" in row and "No space left on device" in row
    assert "skipped" in row and "O_DIRECT not supported; used posix_fadvise" in row
    assert 'class="num value"' not in row
    ckpt = row_with(html, "checkpoint", "checkpoint-save-dcp")
    assert "torch.distributed.checkpoint unavailable" in ckpt and 'class="num value"' not in ckpt
    loader = row_with(html, "dataloader", "dataloader-w8")
    assert '<pre class="mem-reason">worker 3 died\nTraceback: ...</pre>' in loader


def test_unknown_io_records_are_listed_not_dropped():
    records = [seq("write", "1M", M, 2.0), rec("fio-randrw", "iops", "IOPS", 5.0, {"path": PATH}),
               rec("seq-write-1M", "time", "s", 0.5, {"path": PATH})]
    text = section(build_report([document(records)]))
    extras = text[text.index("Other I/O records"):]
    assert "fio-randrw" in extras and ">time<" in extras


def test_records_without_a_path_join_the_documents_path_and_several_documents_stay_apart():
    html = build_report([document(single_run()), document([seq("write", "1M", M, 1.0, host="node02")])],
                        sources=["a.json", "b.json"])
    text = section(html)
    assert text.count("<h4><code>") == 2 and "From <code>a.json</code>" in text and "From <code>b.json</code>" in text
    assert "path not recorded" not in text


@real_chart
def test_document_text_is_escaped_in_the_io_section():
    hostile = {"op": "seq_read", "block_bytes": M, "path": PAYLOAD, "fs_type": PAYLOAD, "direct": True}
    records = [rec("seq-read-1M", "bandwidth", "GB/s", 3.0, hostile, cache=PAYLOAD, host=PAYLOAD,
                   ceiling=dict(LUSTRE, label=PAYLOAD, source=PAYLOAD)),
               rec("seq-write-1M", "bandwidth", "GB/s", 2.0, dict(hostile, op="seq_write"), rank=1, host=PAYLOAD),
               not_run(PAYLOAD, "failed", PAYLOAD, path=PAYLOAD),
               rec("checkpoint-save-x", "bandwidth", "GB/s", 1.0, {"api": PAYLOAD, "path": PAYLOAD})]
    html = build_report([document(records)])
    text = section(html)
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for svg in chart_svgs(html):
        assert "<script" not in svg and "<img" not in svg
