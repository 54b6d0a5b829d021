"""The system catalog: provenance of every figure, validation, overrides, the local system."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from ai_ready.catalog import (
    DTYPES,
    ENV_PATH,
    Accelerator,
    Catalog,
    CatalogError,
    Figure,
    System,
    load_catalog,
)
from ai_ready.catalog.loader import SHIPPED_DIR, load_dirs
from ai_ready.catalog.local import LOCAL_CPU, UNKNOWN_GPU, local_system
from ai_ready.errors import InputError

H100_SXM_BF16 = 989
A100_BF16 = 312


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.delenv(ENV_PATH, raising=False)
    return load_catalog()


def cpu_detection(**cpu: Any) -> dict[str, Any]:
    base = {"model": "Test CPU", "cores_physical": 2, "cores_logical": 4, "freq_mhz": 2300.0,
            "flags": ["sse", "avx2", "fma", "avx512f"], "memory_gb": 16.0}
    base.update(cpu)
    return {"host": "testhost", "device": {"kind": "cpu", "name": "cpu", "count": 1},
            "cpu": base, "launcher": {"name": "none", "nodes": None, "world_size": 1}}


def cuda_detection(name: str, count: int = 8, nodes: int | None = 2) -> dict[str, Any]:
    detected = cpu_detection()
    detected["device"] = {"kind": "cuda", "name": name, "count": count, "memory_gb": 79.1,
                          "sm_count": 132, "compute_capability": "9.0"}
    detected["launcher"] = {"name": "slurm", "nodes": nodes, "world_size": count * (nodes or 1)}
    return detected


# ---------------------------------------------------------------- provenance


def iter_figures(obj: Any, path: str) -> Iterator[tuple[str, Figure]]:
    """Every Figure reachable from `obj`, found by walking fields, dicts and nested objects."""
    if isinstance(obj, Figure):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iter_figures(value, f"{path}.{key}")
    elif dataclasses.is_dataclass(obj):
        for field in dataclasses.fields(obj):
            yield from iter_figures(getattr(obj, field.name), f"{path}.{field.name}")


def all_objects(catalog: Catalog) -> Iterator[tuple[str, Any]]:
    for name, accelerator in catalog.accelerators.items():
        yield f"accelerator {name}", accelerator
    for name in catalog.systems:
        if name != "local":
            yield f"system {name}", catalog.systems[name]
    yield "local cpu", catalog.system("local", detected=cpu_detection())
    yield "local cpu no clock", catalog.system("local", detected=cpu_detection(freq_mhz=None))
    yield "local gpu", catalog.system("local", detected=cuda_detection("NVIDIA H100 80GB HBM3"))
    yield "local unknown gpu", catalog.system("local", detected=cuda_detection("Mystery GPU 9000"))


def test_every_figure_has_a_resolvable_source_or_an_assumption(catalog: Catalog) -> None:
    seen = 0
    for label, obj in all_objects(catalog):
        for path, figure in iter_figures(obj, label):
            seen += 1
            assert figure.source or figure.assumption, path
            for source_id in figure.source:
                assert source_id in catalog.sources, f"{path} cites {source_id}"
            assert catalog.cite(figure), path
    assert seen > 300  # the walk really reached the shipped figures


def test_sources_have_a_title_and_a_location(catalog: Catalog) -> None:
    assert {f"S{i}" for i in range(1, 37)} <= set(catalog.sources)
    for source_id, entry in catalog.sources.items():
        assert entry["title"], source_id
        assert entry.get("url") or entry.get("reference"), source_id


def test_every_shipped_file_is_loaded(catalog: Catalog) -> None:
    for folder, loaded in (("accelerators", catalog.accelerators), ("systems", catalog.systems)):
        stems = {path.stem for path in (SHIPPED_DIR / folder).glob("*.yaml")}
        assert stems and stems <= set(loaded), folder
    assert {"dgx-a100-80gb", "dgx-h100"} <= set(catalog.systems)


def test_figures_marked_assumption_say_so(catalog: Catalog) -> None:
    fp16 = catalog.accelerator("h100-sxm").peak("fp16")
    assert fp16 is not None and fp16.is_assumption and fp16.cite().startswith("assumption:")
    bf16 = catalog.accelerator("h100-sxm").peak("bf16")
    assert bf16 is not None and not bf16.is_assumption and catalog.cite(bf16) == "S4, S1"
    assert catalog.accelerator("mi355x").peak("fp64").is_assumption


# ---------------------------------------------------------------- shipped data


@pytest.mark.parametrize(("system", "accelerator", "bf16"), [
    ("dgx-a100-80gb", "a100-sxm-80gb", A100_BF16),
    ("dgx-h100", "h100-sxm", H100_SXM_BF16),
])
def test_dgx_systems(catalog: Catalog, system: str, accelerator: str, bf16: float) -> None:
    found = catalog.system(system)
    assert found.accelerator.name == accelerator
    assert found.total_accelerators == 8
    assert found.accelerator.peak("bf16").value == bf16
    assert found.scale_out["nic_gbps_per_accelerator"].value > 0
    json.dumps(found.to_dict())


def test_peaks_are_ordered_like_the_hardware(catalog: Catalog) -> None:
    """Lower precision is never slower; fp16 equals bf16 on every listed part."""
    for name, accelerator in catalog.accelerators.items():
        value = {dtype: accelerator.peak(dtype).value for dtype in DTYPES if accelerator.peak(dtype)}
        assert set(value) <= set(DTYPES)
        chain = [d for d in ("fp32", "tf32", "bf16", "fp8", "fp4") if d in value]
        assert [value[d] for d in chain] == sorted(value[d] for d in chain), name
        if "fp16" in value:
            assert value["fp16"] == value["bf16"], name
        assert accelerator.memory["capacity_gb"].value > 0, name
        assert accelerator.match, name


def test_system_to_dict_is_json_and_includes_the_accelerator(catalog: Catalog) -> None:
    data = json.loads(json.dumps(catalog.system("jupiter-booster").to_dict()))
    assert data["accelerator"]["name"] == "gh200"
    assert data["total_accelerators"] == 24000
    assert data["nodes"]["source"] == ["S5"]


#: Systems the extrapolation engine (issue 8) needs in the shipped catalog.
REQUIRED_SYSTEMS = ("dgx-a100-80gb", "dgx-h100", "dgx-b200", "gb200-nvl72", "jupiter-booster", "hunter", "alps",
                    "leonardo-booster", "lumi-g", "hammerhai", "gigafactory-100k")
#: Systems whose hardware is not public: every system-level figure must be an assumption.
PLACEHOLDER_SYSTEMS = ("hammerhai", "gigafactory-100k")
GIGAFACTORY_GPUS = 100_000
NVL72_DOMAIN = 72


@pytest.mark.parametrize("name", REQUIRED_SYSTEMS)
def test_required_systems_have_the_extrapolation_inputs(catalog: Catalog, name: str) -> None:
    system = catalog.system(name)
    assert system.total_accelerators > 0
    accelerator = system.accelerator
    assert accelerator.peak("bf16") is not None and accelerator.power_w is not None, accelerator.name
    assert {"link_gbs_per_direction", "domain_size"} <= set(accelerator.scale_up), accelerator.name
    assert {"nic_gbps_per_accelerator", "latency_us"} <= set(system.scale_out)
    assert "pue" in system.power
    assert "failures_per_1000_node_days" in system.reliability


def system_figures(system: System) -> Iterator[tuple[str, Figure]]:
    """The system's own figures, without those of its accelerator entry."""
    yield "nodes", system.nodes
    yield "accelerators_per_node", system.accelerators_per_node
    for section in ("scale_out", "storage", "power", "reliability"):
        yield from iter_figures(getattr(system, section), section)


@pytest.mark.parametrize("name", PLACEHOLDER_SYSTEMS)
def test_placeholder_systems_mark_every_figure_as_an_assumption(catalog: Catalog, name: str) -> None:
    system = catalog.system(name)
    figures = dict(system_figures(system))
    assert len(figures) > 8
    for path, figure in figures.items():
        assert figure.is_assumption, f"{name}: {path}"
    assert "PLACEHOLDER" in system.description and "AI_READY_CATALOG_PATH" in system.description


def test_gigafactory_has_100k_gpus_in_nvl72_domains(catalog: Catalog) -> None:
    system = catalog.system("gigafactory-100k")
    assert system.nodes.value * system.accelerators_per_node.value == GIGAFACTORY_GPUS
    assert system.total_accelerators == GIGAFACTORY_GPUS
    assert system.accelerator.name == "gb300"
    assert system.accelerator.scale_up["domain_size"].value == NVL72_DOMAIN


def test_gb200_nvl72_is_one_rack(catalog: Catalog) -> None:
    system = catalog.system("gb200-nvl72")
    assert system.total_accelerators == NVL72_DOMAIN
    assert system.accelerator.scale_up["domain_size"].value == NVL72_DOMAIN


def test_hunter_records_that_node_counts_differ(catalog: Catalog) -> None:
    nodes = catalog.system("hunter").nodes
    assert nodes.value == 188 and nodes.source == ("S11",)
    assert "136" in nodes.note and "S13" in nodes.note


def test_alps_is_the_gh200_partition(catalog: Catalog) -> None:
    alps = catalog.system("alps")
    assert alps.accelerator.name == "gh200" and alps.total_accelerators == 10752
    assert "alps-gh200" not in catalog.systems  # renamed: the catalog has no aliases


def test_unknown_names_are_input_errors(catalog: Catalog) -> None:
    with pytest.raises(InputError, match=r"unknown accelerator 'x'; known: .*h100-sxm"):
        catalog.accelerator("x")
    with pytest.raises(InputError, match=r"unknown system 'x'; known: .*dgx-h100.*local"):
        catalog.system("x")
    with pytest.raises(InputError, match="unknown dtype"):
        catalog.accelerator("h100-sxm").peak("fp128")


# ---------------------------------------------------------------- matching


@pytest.mark.parametrize(("device", "expected"), [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H200", "h200-sxm"),
    ("NVIDIA GH200 480GB", "gh200"),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm-80gb"),
    ("NVIDIA GB200", "gb200"),
    ("NVIDIA B200", "b200"),
    ("AMD Instinct MI300X", "mi300x"),
    ("AMD Instinct MI300A", "mi300a"),
    ("nvidia h100 pcie", "h100-pcie"),
    ("Tesla T4", None),
    ("", None),
])
def test_match_accelerator(catalog: Catalog, device: str, expected: str | None) -> None:
    found = catalog.match_accelerator(device)
    assert (found.name if found else None) == expected


# ---------------------------------------------------------------- malformed files


def accelerator_doc(name: str = "test-gpu") -> dict[str, Any]:
    return {
        "schema": "ai-ready/catalog-accelerator", "version": 1, "name": name,
        "vendor": "Test", "model": "Test GPU", "match": ["Test GPU"],
        "peak_tflops": {"bf16": {"value": 100, "unit": "TFLOP/s", "source": "S1"}},
        "memory": {"capacity_gb": {"value": 10, "unit": "GB", "assumption": "test"},
                   "bandwidth_tbs": {"value": 1, "unit": "TB/s", "source": ["S1"]}},
    }


def system_doc(name: str = "test-system") -> dict[str, Any]:
    return {
        "schema": "ai-ready/catalog-system", "version": 1, "name": name,
        "accelerator": "h100-sxm",
        "nodes": {"value": 2, "source": "definition"},
        "accelerators_per_node": {"value": 8, "source": "S24"},
    }


def write_doc(root: Path, folder: str, stem: str, doc: Any) -> Path:
    path = root / folder / f"{stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def mutated(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[key]
        doc[last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[key]
        del doc[last]
    return change


BAD_ACCELERATORS = [
    ("wrong schema", _set("schema", "ai-ready/catalog-system"), "'schema'"),
    ("missing schema", _drop("schema"), "'schema'"),
    ("wrong version", _set("version", 2), "'version'"),
    ("name differs from file", _set("name", "other-gpu"), "'name'"),
    ("figure not a mapping", _set("peak_tflops.bf16", 100), "'peak_tflops.bf16'"),
    ("figure without value", _set("peak_tflops.bf16", {"source": "S1"}), "'peak_tflops.bf16'"),
    ("no provenance", _set("peak_tflops.bf16", {"value": 100}), "'peak_tflops.bf16' has neither source nor assumption"),
    ("unknown source", _set("peak_tflops.bf16.source", "S999"), "unknown source 'S999'"),
    ("unknown dtype", _set("peak_tflops.fp128", {"value": 1, "source": "S1"}), "'peak_tflops.fp128'"),
    ("zero peak", _set("peak_tflops.bf16.value", 0), "'peak_tflops.bf16'"),
    ("negative memory", _set("memory.capacity_gb.value", -1), "'memory.capacity_gb'"),
    ("text peak", _set("peak_tflops.bf16.value", "fast"), "'peak_tflops.bf16'"),
    ("wrong unit", _set("memory.bandwidth_tbs.unit", "GB/s"), "'memory.bandwidth_tbs'"),
    ("unknown top-level key", _set("peak_tflop", {}), "'peak_tflop'"),
    ("unknown figure key", _set("peak_tflops.bf16.sorce", "S1"), "'peak_tflops.bf16.sorce'"),
    ("match not a list", _set("match", "Test GPU"), "'match'"),
    ("reserved name", lambda doc: None, "reserved"),  # written as local-cpu below
]

BAD_SYSTEMS = [
    ("unknown accelerator", _set("accelerator", "warp-drive"), "'accelerator'"),
    ("zero nodes", _set("nodes.value", 0), "'nodes'"),
    ("fractional count", _set("accelerators_per_node.value", 1.5), "'accelerators_per_node'"),
    ("missing count", _drop("accelerators_per_node"), "'accelerators_per_node'"),
    ("unknown section key", _set("scale_out", {"nic_gbps": {"value": 1, "source": "S2"}}), "'scale_out.nic_gbps'"),
    ("section not a mapping", _set("storage", [1, 2]), "'storage'"),
]


@pytest.mark.parametrize(("case", "change", "expected"), BAD_ACCELERATORS, ids=[c[0] for c in BAD_ACCELERATORS])
def test_malformed_accelerator_file(tmp_path: Path, case: str, change: Callable, expected: str) -> None:
    stem = "local-cpu" if case == "reserved name" else "test-gpu"
    path = write_doc(tmp_path, "accelerators", stem, mutated(accelerator_doc(stem), change))
    assert_catalog_error(tmp_path, path, expected)


@pytest.mark.parametrize(("case", "change", "expected"), BAD_SYSTEMS, ids=[c[0] for c in BAD_SYSTEMS])
def test_malformed_system_file(tmp_path: Path, case: str, change: Callable, expected: str) -> None:
    path = write_doc(tmp_path, "systems", "test-system", mutated(system_doc(), change))
    assert_catalog_error(tmp_path, path, expected)


def test_unreadable_yaml(tmp_path: Path) -> None:
    path = write_doc(tmp_path, "systems", "broken", "name: broken\nnodes: [1, 2\n")
    assert_catalog_error(tmp_path, path, "not valid YAML")


def test_system_file_may_not_be_called_local(tmp_path: Path) -> None:
    path = write_doc(tmp_path, "systems", "local", system_doc("local"))
    assert_catalog_error(tmp_path, path, "'local'")


def test_bad_sources_file(tmp_path: Path) -> None:
    doc = {"schema": "ai-ready/catalog-sources", "version": 1, "sources": {"X1": {"title": "no location"}}}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert_catalog_error(tmp_path, path, "'sources.X1'")


def assert_catalog_error(root: Path, path: Path, expected: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(extra_dirs=[root])
    message = str(caught.value)
    assert f"catalog file {path}" in message
    assert expected in message
    assert "\n" not in message
    assert isinstance(caught.value, InputError)


def test_missing_catalog_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PATH, str(tmp_path / "nope"))
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog()


# ---------------------------------------------------------------- user folders


def test_user_file_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = {"schema": "ai-ready/catalog-sources", "version": 1,
               "sources": {"my-sheet": {"title": "Our vendor sheet", "reference": "binder 3"}}}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    override = accelerator_doc("h100-sxm")
    override["peak_tflops"]["bf16"] = {"value": 1000, "source": "my-sheet"}
    override["match"] = ["H100 80GB HBM3"]
    write_doc(tmp_path, "accelerators", "h100-sxm", override)
    write_doc(tmp_path, "accelerators", "test-gpu", accelerator_doc())
    write_doc(tmp_path, "systems", "test-system", system_doc())
    monkeypatch.setenv(ENV_PATH, str(tmp_path))

    catalog = load_catalog()
    assert catalog.accelerator("h100-sxm").peak("bf16").value == 1000
    assert catalog.system("dgx-h100").accelerator.peak("bf16").value == 1000  # systems see the override
    assert catalog.system("test-system").total_accelerators == 16
    assert catalog.match_accelerator("Test GPU rev 2").name == "test-gpu"
    assert catalog.sources["my-sheet"]["title"] == "Our vendor sheet"
    assert "S1" in catalog.sources


def test_extra_dirs_override_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir, extra_dir = tmp_path / "env", tmp_path / "extra"
    for root, value in ((env_dir, 111), (extra_dir, 222)):
        write_doc(root, "accelerators", "test-gpu", mutated(accelerator_doc(), _set("peak_tflops.bf16.value", value)))
    monkeypatch.setenv(ENV_PATH, str(env_dir))
    assert load_catalog().accelerator("test-gpu").peak("bf16").value == 111
    assert load_catalog(extra_dirs=[extra_dir]).accelerator("test-gpu").peak("bf16").value == 222


# ---------------------------------------------------------------- local system


def test_local_cpu_peaks_are_declared_from_flags(catalog: Catalog) -> None:
    system = catalog.system("local", detected=cpu_detection())
    accelerator = system.accelerator
    assert accelerator.name == LOCAL_CPU and accelerator.model == "Test CPU"
    fp32 = accelerator.peak("fp32")
    assert fp32.value == pytest.approx(2 * 2300 * 64 / 1e6)
    assert fp32.is_assumption and "2 cores × 2300 MHz × 64 FLOP/cycle" in fp32.assumption
    assert accelerator.peak("fp64").value == pytest.approx(fp32.value / 2)
    assert accelerator.peak("bf16").value == pytest.approx(fp32.value)  # no bf16 ISA: fp32 units
    assert system.total_accelerators == 1


@pytest.mark.parametrize(("flags", "fp32_per_cycle", "bf16_per_cycle"), [
    (["sse", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"], 64, 1024),
    (["sse", "avx2", "fma", "avx512f", "avx512_bf16"], 64, 128),
    (["sse", "avx2", "fma"], 32, 32),
    (["sse", "avx2"], 8, 8),  # AVX2 without FMA falls back to the SSE rate
    (["SSE"], 8, 8),
])
def test_local_cpu_isa_rates(catalog: Catalog, flags: list[str], fp32_per_cycle: int, bf16_per_cycle: int) -> None:
    detected = cpu_detection(flags=flags, cores_physical=4, freq_mhz=1000.0)
    accelerator = catalog.system("local", detected=detected).accelerator
    assert accelerator.peak("fp32").value == pytest.approx(4 * 1000 * fp32_per_cycle / 1e6)
    assert accelerator.peak("bf16").value == pytest.approx(4 * 1000 * bf16_per_cycle / 1e6)


def test_local_cpu_without_clock_or_isa_has_no_peak(catalog: Catalog) -> None:
    no_clock = catalog.system("local", detected=cpu_detection(freq_mhz=None)).accelerator
    assert no_clock.peak_tflops == {} and "clock" in no_clock.description
    no_isa = catalog.system("local", detected=cpu_detection(flags=["asimd"])).accelerator
    assert no_isa.peak_tflops == {} and "ISA" in no_isa.description


def test_local_cpu_falls_back_to_logical_cores(catalog: Catalog) -> None:
    fp32 = catalog.system("local", detected=cpu_detection(cores_physical=None)).accelerator.peak("fp32")
    assert fp32.value == pytest.approx(4 * 2300 * 64 / 1e6)
    assert "logical cores" in fp32.assumption


def test_local_gpu_uses_the_catalog_entry(catalog: Catalog) -> None:
    system = catalog.system("local", detected=cuda_detection("NVIDIA H100 80GB HBM3", count=8, nodes=2))
    assert system.accelerator is catalog.accelerator("h100-sxm")
    assert system.accelerator.peak("bf16").source == ("S4", "S1")
    assert system.total_accelerators == 16
    assert system.nodes.source == ("detected",)


def test_local_unknown_gpu(catalog: Catalog) -> None:
    system = local_system(cuda_detection("Mystery GPU 9000", count=2, nodes=None), catalog)
    accelerator = system.accelerator
    assert accelerator.name == UNKNOWN_GPU and accelerator.model == "Mystery GPU 9000"
    assert accelerator.peak_tflops == {}
    assert "AI_READY_CATALOG_PATH" in accelerator.description
    assert accelerator.memory["capacity_gb"].value == 79.1
    assert accelerator.memory["capacity_gb"].source == ("detected",)
    assert system.total_accelerators == 2


def test_local_is_listed_but_built_only_on_use(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_detect() -> dict[str, Any]:
        calls.append(1)
        return cpu_detection()

    monkeypatch.setitem(sys.modules, "ai_ready.env.detect", types.SimpleNamespace(detect_hardware=fake_detect))
    fresh = load_dirs((SHIPPED_DIR,))
    assert "local" in fresh.systems and "local" in list(fresh.systems) and len(fresh.systems) > 1
    assert calls == []
    assert fresh.system("local").accelerator.name == LOCAL_CPU
    assert fresh.systems["local"] is fresh.system("local")  # detected once, then cached
    assert calls == [1]


def test_public_types(catalog: Catalog) -> None:
    assert isinstance(catalog.accelerator("b200"), Accelerator)
    assert isinstance(catalog.system("lumi-g"), System)
    assert issubclass(CatalogError, InputError)
    assert DTYPES == ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4")
    figure = catalog.accelerator("b200").peak("bf16")
    assert figure.to_dict() == {"value": 2250, "unit": "TFLOP/s", "source": ["S1", "S3"],
                                "assumption": None, "note": None}
