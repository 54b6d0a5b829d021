"""Acceptance suites as data: which benchmarks run with which options, which figures are judged, and
their references, ReFrame-style (``value``, ``lower``, ``upper`` as fractions, ``unit``) keyed by system,
``system:partition``, ``gpu:<accelerator>`` or ``"*"``.

Two suites ship with the package (``accept/suites/quick.yaml``, ``full.yaml``); any other file with the
same schema works. Everything is checked on load, before anything runs: a typo in a suite is a setup
error (exit 2) naming the key, never a benchmark that fails at three in the morning. The format is
described in ``docs/acceptance.md``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from ai_ready.accept.detect import DIRECTIONS, HIGHER, LOWER, OUTLIER_MARGIN, HISTORY_NIGHTS, Reference
from ai_ready.errors import InputError, yaml_problem, checked_mapping

SCHEMA = "ai-ready/accept-suite"
#: Suite-format versions this code reads. Version 1 is the first.
VERSION = 1
SUITES_DIR = Path(__file__).resolve().parent / "suites"
PACKAGED = ("quick", "full")

SUITE_KEYS = ("schema", "version", "name", "benchmarks")
SUITE_OPTIONAL_KEYS = ("description", "settings", "launcher", "scratch")
SETTINGS_KEYS = ("nights", "outlier_margin")
BENCHMARK_KEYS = ("name",)
BENCHMARK_OPTIONAL_KEYS = ("run", "results", "args", "devices", "parallel", "timeout", "metrics", "description")
METRIC_KEYS = ("name", "select")
METRIC_OPTIONAL_KEYS = ("better", "reference", "outlier_margin", "description")
SELECT_KEYS = ("case", "metric", "params")
REFERENCE_KEYS = ("value", "unit")
REFERENCE_OPTIONAL_KEYS = ("lower", "upper", "source")

#: The ai-ready commands a suite may run (the rest of each command line comes from `args`).
COMMANDS = (("bench", "gemm"), ("bench", "memory"), ("bench", "kernels"), ("bench", "collectives"),
            ("bench", "io"), ("train", "gpt"), ("train", "moe"), ("train", "cnn"))
#: Options that the acceptance run sets itself.
RESERVED_OPTIONS = ("output",)
#: Options pointing where a benchmark writes: `{scratch}` unless the suite says otherwise.
SCRATCH_OPTIONS = {"bench io": "path", "train": "data_dir"}
PLACEHOLDER = "{scratch}"
DEVICES = ("cpu", "cuda")
#: Seconds a benchmark may take unless its entry sets `timeout`.
DEFAULT_TIMEOUT_S = 1800
#: Metrics whose smaller figures are better unless the suite says `better:`.
LOWER_IS_BETTER = ("time", "latency", "step_time", "phase_time", "alpha", "peak_memory")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: The widest lower tolerance: -100%, a bound of zero (a wider one would let any figure pass).
LOWEST_LOWER = -1.0
#: Reference keys: a system, a system:partition, a gpu:<accelerator> or "*".
ANY = "*"
GPU_PREFIX = "gpu:"


@dataclass(frozen=True)
class Target:
    """What the suite runs on: catalog system, partition (may be empty) and the accelerator model."""

    system: str
    partition: str = ""
    gpu_model: str = ""

    def keys(self) -> list[str]:
        """Keys of a per-system mapping, most specific first (as ReFrame resolves references)."""
        keys = [f"{self.system}:{self.partition}"] if self.partition else []
        keys.append(self.system)
        if self.gpu_model:
            keys.append(GPU_PREFIX + self.gpu_model)
        return keys + [ANY]

    def label(self) -> str:
        return f"{self.system}" + (f":{self.partition}" if self.partition else "")


def pick(mapping: Mapping[str, Any], target: Target) -> tuple[str, Any] | None:
    """The entry of a per-system mapping that applies to `target`, with its key; None if none does."""
    for key in target.keys():
        if key in mapping:
            return key, mapping[key]
    return None


@dataclass(frozen=True)
class Selector:
    """Which records of a benchmark make a figure: case (a glob), metric name, and params that must match."""

    case: str | None = None
    metric: str | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def matches(self, record: Any) -> bool:
        if self.case is not None and not fnmatch.fnmatchcase(record.case, self.case):
            return False
        if self.metric is not None and record.metric != self.metric:
            return False
        return all(record.params.get(key) == value for key, value in self.params)

    def describe(self) -> str:
        parts = [f"case {self.case}" if self.case else "", f"metric {self.metric}" if self.metric else ""]
        parts += [f"{k}={v}" for k, v in self.params]
        return ", ".join(p for p in parts if p) or "every record"


@dataclass(frozen=True)
class MetricSpec:
    """One judged figure: its name (the JUnit test case), where it comes from, which way is better, references."""

    name: str
    benchmark: str
    select: Selector
    better: str
    references: Mapping[str, Reference] = field(default_factory=dict)
    outlier_margin: float = OUTLIER_MARGIN
    description: str = ""

    def reference(self, target: Target) -> Reference | None:
        found = pick(self.references, target)
        return found[1] if found else None


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark entry: an ai-ready command with options, or stored results to judge instead."""

    name: str
    command: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    results: Path | None = None
    devices: tuple[str, ...] = DEVICES
    parallel: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    metrics: tuple[MetricSpec, ...] = ()
    description: str = ""

    def argv(self, scratch: Path, output: Path) -> list[str]:
        """The ai-ready arguments (after ``ai-ready --quiet``) that run this benchmark into `output`.
        The benchmark runs inside its scratch folder: relative paths in `args` are relative to it."""
        argv = list(self.command)
        for flag, value in self.options:
            if value is True:
                argv.append(flag)
            elif value is not False and value is not None:
                argv += [flag, str(value).replace(PLACEHOLDER, str(scratch))]
        return argv + ["-o", str(output)]


@dataclass(frozen=True)
class Suite:
    """A validated suite."""

    name: str
    source: str
    benchmarks: tuple[BenchmarkSpec, ...]
    description: str = ""
    nights: int = HISTORY_NIGHTS
    launcher: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    scratch: Mapping[str, str] = field(default_factory=dict)

    def metrics(self) -> Iterator[MetricSpec]:
        for benchmark in self.benchmarks:
            yield from benchmark.metrics

    def launcher_for(self, target: Target) -> tuple[str, ...]:
        found = pick(self.launcher, target)
        return tuple(found[1]) if found else ()

    def scratch_for(self, target: Target) -> Path | None:
        found = pick(self.scratch, target)
        return Path(found[1]) if found and found[1] else None


# --------------------------------------------------------------------------- loading

def load_suite(choice: str, known_systems: Sequence[str] = (), known_accelerators: Sequence[str] = ()) -> Suite:
    """`quick`, `full` or a suite file; reference keys are checked against the catalog names given."""
    if choice in PACKAGED:
        path = SUITES_DIR / f"{choice}.yaml"
    else:
        path = Path(choice)
        if not path.is_file():
            raise InputError(f"--suite {choice}: no such suite file; accepted: {', '.join(PACKAGED)} or a suite "
                             "YAML file (schema ai-ready/accept-suite)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--suite {choice}: cannot read {path} ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"suite {path.name}: not valid YAML: {yaml_problem(exc)}") from None
    return parse_suite(data, path, known_systems, known_accelerators)


def parse_suite(data: Any, path: Path, known_systems: Sequence[str] = (),
                known_accelerators: Sequence[str] = ()) -> Suite:
    where = f"suite {path.name}"
    data = checked_mapping(data, where, SUITE_KEYS, SUITE_OPTIONAL_KEYS)
    if data["schema"] != SCHEMA:
        raise InputError(f"{where}: schema is {data['schema']!r}; accepted: {SCHEMA}")
    if data["version"] != VERSION:
        raise InputError(f"{where}: version {data['version']!r} is not one this ai-ready reads; accepted: {VERSION}")
    name = _name(data["name"], f"{where}: name")
    keys = _KeyCheck(known_systems, known_accelerators)
    settings = checked_mapping(data.get("settings") or {}, f"{where}: settings", (), SETTINGS_KEYS)
    nights = _count(settings.get("nights", HISTORY_NIGHTS), f"{where}: settings.nights")
    margin = _fraction(settings.get("outlier_margin", OUTLIER_MARGIN), f"{where}: settings.outlier_margin")
    launcher = {key: tuple(_argv(v, f"{where}: launcher[{key}]"))
                for key, v in _keyed(data.get("launcher") or {}, f"{where}: launcher", keys).items()}
    scratch = {key: _text(v, f"{where}: scratch[{key}]") if v is not None else ""
               for key, v in _keyed(data.get("scratch") or {}, f"{where}: scratch", keys).items()}
    entries = data["benchmarks"]
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where}: benchmarks must be a non-empty list")
    benchmarks = [_benchmark(entry, i, where, path.parent.absolute(), keys, margin) for i, entry in enumerate(entries)]
    _unique([b.name for b in benchmarks], f"{where}: benchmark")
    _unique([m.name for b in benchmarks for m in b.metrics], f"{where}: metric")
    return Suite(name=name, source=str(path), benchmarks=tuple(benchmarks),
                 description=str(data.get("description", "")), nights=nights, launcher=launcher, scratch=scratch)


class _KeyCheck:
    """Per-system keys must name something the catalog knows: a typo would silently never match."""

    def __init__(self, systems: Sequence[str], accelerators: Sequence[str]) -> None:
        self.systems, self.accelerators = set(systems), set(accelerators)

    def __call__(self, key: str, where: str) -> None:
        if key == ANY:
            return
        if key.startswith(GPU_PREFIX):
            model = key[len(GPU_PREFIX):]
            if self.accelerators and model not in self.accelerators:
                raise InputError(f"{where}: unknown accelerator '{model}' in key '{key}'; accepted: gpu:<one of "
                                 f"{', '.join(sorted(self.accelerators))}>")
            return
        system = key.split(":", 1)[0]
        if self.systems and system not in self.systems:
            raise InputError(f"{where}: unknown system '{system}' in key '{key}'; accepted: \"*\", a catalog system "
                             f"({', '.join(sorted(self.systems))}), system:partition or gpu:<accelerator>")


def _benchmark(entry: Any, index: int, where: str, folder: Path, keys: _KeyCheck, margin: float) -> BenchmarkSpec:
    entry = checked_mapping(entry, f"{where}: benchmarks[{index}]", BENCHMARK_KEYS, BENCHMARK_OPTIONAL_KEYS)
    name = _name(entry["name"], f"{where}: benchmarks[{index}].name")
    at = f"{where}: benchmark {name}"
    if ("run" in entry) == ("results" in entry):
        raise InputError(f"{at}: give exactly one of 'run' (an ai-ready command such as [bench, gemm]) or "
                         "'results' (a stored result file to judge)")
    devices = tuple(entry.get("devices", DEVICES))
    if not devices or any(d not in DEVICES for d in devices):
        raise InputError(f"{at}: devices {list(devices)!r}; accepted: a list of {', '.join(DEVICES)}")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT_S)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise InputError(f"{at}: timeout must be a positive number of seconds, got {timeout!r}")
    command: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    results = None
    if "run" in entry:
        command = _command(entry["run"], at)
        options = _options(command, entry.get("args") or {}, at)
    else:
        if "args" in entry:
            raise InputError(f"{at}: 'args' applies to 'run' entries only")
        results = folder / _text(entry["results"], f"{at}.results")
    metrics = entry.get("metrics") or []
    if not isinstance(metrics, list):
        raise InputError(f"{at}: metrics must be a list")
    return BenchmarkSpec(name=name, command=command, options=options, results=results, devices=devices,
                         parallel=bool(entry.get("parallel", False)), timeout_s=float(timeout),
                         metrics=tuple(_metric(m, i, name, at, keys, margin) for i, m in enumerate(metrics)),
                         description=str(entry.get("description", "")))


def _command(run: Any, at: str) -> tuple[str, ...]:
    words = tuple(run.split()) if isinstance(run, str) else tuple(run) if isinstance(run, list) else ()
    if words not in COMMANDS:
        accepted = "; ".join(" ".join(c) for c in COMMANDS)
        raise InputError(f"{at}: run {run!r} is not a command a suite may run; accepted: {accepted}")
    return words


def _click_command(command: tuple[str, ...]) -> Any:
    from ai_ready.commands import load as load_command

    group = load_command(command[0])
    return group.commands[command[1]] if command[0] == "bench" else group


def _options(command: tuple[str, ...], args: Any, at: str) -> tuple[tuple[str, Any], ...]:
    """`args` as (flag, value) pairs, each checked against the command's own options and types."""
    import click

    if not isinstance(args, Mapping):
        raise InputError(f"{at}: args must be a mapping of option names to values")
    options = [p for p in _click_command(command).params if isinstance(p, click.Option) and p.name]
    allowed = [p for p in options if p.name not in RESERVED_OPTIONS]
    by_flag = {flag[2:]: p for p in allowed for flag in p.opts if flag.startswith("--")}
    accepted = ", ".join(sorted(by_flag))
    out = []
    given = set()
    for key, value in args.items():
        param = by_flag.get(str(key).replace("_", "-"))
        if param is None:
            raise InputError(f"{at}: args.{key} is not an option of 'ai-ready {' '.join(command)}' that a suite may "
                             f"set; accepted: {accepted}")
        given.add(param.name)
        out.append(_option(param, value, f"{at}: args.{key}"))
    scratch_option = SCRATCH_OPTIONS.get(" ".join(command)) or SCRATCH_OPTIONS.get(command[0])
    if scratch_option and scratch_option not in given:
        out.append((next(p for p in options if p.name == scratch_option).opts[0], PLACEHOLDER))
    return tuple(out)


def _option(param: Any, value: Any, where: str) -> tuple[str, Any]:
    import click

    flag = param.opts[0]
    if param.is_flag:
        if not isinstance(value, bool):
            raise InputError(f"{where}: is a flag; accepted: true or false")
        if value is False and param.secondary_opts:
            return param.secondary_opts[0], True
        return flag, value
    if isinstance(value, bool) or value is None or isinstance(value, (dict,)):
        raise InputError(f"{where}: needs a value (a number, a word or a list), got {value!r}")
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if PLACEHOLDER not in text:
        try:
            param.type.convert(text, param, None)
        except click.BadParameter as exc:
            raise InputError(f"{where}: {' '.join(exc.format_message().split())}") from None
    elif text.replace(PLACEHOLDER, "x").count("{"):
        raise InputError(f"{where}: the only placeholder is {PLACEHOLDER}")
    return flag, text


def _metric(entry: Any, index: int, benchmark: str, at: str, keys: _KeyCheck, margin: float) -> MetricSpec:
    entry = checked_mapping(entry, f"{at}: metrics[{index}]", METRIC_KEYS, METRIC_OPTIONAL_KEYS)
    name = _name(entry["name"], f"{at}: metrics[{index}].name")
    where = f"{at}: metric {name}"
    select_map = checked_mapping(entry["select"], f"{where}.select", (), SELECT_KEYS)
    if not select_map:
        raise InputError(f"{where}.select: give at least one of {', '.join(SELECT_KEYS)}")
    params = select_map.get("params") or {}
    if not isinstance(params, Mapping):
        raise InputError(f"{where}.select.params: must be a mapping of record params to values")
    select = Selector(case=_optional_text(select_map.get("case"), f"{where}.select.case"),
                      metric=_optional_text(select_map.get("metric"), f"{where}.select.metric"),
                      params=tuple(sorted((str(k), v) for k, v in params.items())))
    better = entry.get("better") or (LOWER if select.metric in LOWER_IS_BETTER else HIGHER)
    if better not in DIRECTIONS:
        raise InputError(f"{where}.better: got {better!r}; accepted: {', '.join(DIRECTIONS)}")
    references = {key: _reference(value, key, f"{where}.reference[{key}]")
                  for key, value in _keyed(entry.get("reference") or {}, f"{where}.reference", keys).items()}
    return MetricSpec(name=name, benchmark=benchmark, select=select, better=better, references=references,
                      outlier_margin=_fraction(entry.get("outlier_margin", margin), f"{where}.outlier_margin"),
                      description=str(entry.get("description", "")))


def _reference(data: Any, key: str, where: str) -> Reference:
    data = checked_mapping(data, where, REFERENCE_KEYS, REFERENCE_OPTIONAL_KEYS)
    value, lower, upper = checked_bounds(data["value"], data.get("lower"), data.get("upper"), where)
    source = data.get("source", "")
    if not isinstance(source, str):
        raise InputError(f"{where}.source: must be text (where the figure comes from), got {source!r}")
    return Reference(value=value, lower=lower, upper=upper, unit=_text(data["unit"], f"{where}.unit"), key=key,
                     source=" ".join(source.split()))


def checked_bounds(value: Any, lower: Any, upper: Any, where: str) -> tuple[float, float | None, float | None]:
    """A reference's value and tolerances, as every reference must have them (a suite's, and a baseline's in
    ai_ready.accept.baseline): a positive value, a lower tolerance from LOWEST_LOWER to 0, an upper one of at
    least 0; a tolerance may be null (that side unbounded)."""
    if not _is_number(value) or value <= 0:
        raise InputError(f"{where}.value: must be a positive number, got {value!r}")
    if lower is not None and (not _is_number(lower) or not LOWEST_LOWER <= lower <= 0):
        raise InputError(f"{where}.lower: must be a fraction from {LOWEST_LOWER:g} to 0 (e.g. -0.1 for 10% below) "
                         f"or null, got {lower!r}")
    if upper is not None and (not _is_number(upper) or upper < 0):
        raise InputError(f"{where}.upper: must be a fraction of at least 0 (e.g. 0.1 for 10% above) or null, "
                         f"got {upper!r}")
    return float(value), None if lower is None else float(lower), None if upper is None else float(upper)


# --------------------------------------------------------------------------- small validators



def _keyed(data: Any, where: str, check: _KeyCheck) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: must be a mapping keyed by \"*\", a system, system:partition or gpu:<accelerator>")
    for key in data:
        check(str(key), where)
    return {str(k): v for k, v in data.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise InputError(f"{where}: {value!r} is not a usable name; accepted: letters, digits, '.', '_' and '-'")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _fraction(value: Any, where: str) -> float:
    if not _is_number(value) or not 0 < value < 1:
        raise InputError(f"{where}: must be a fraction between 0 and 1 (e.g. 0.1 for 10%), got {value!r}")
    return float(value)


def _argv(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{where}: must be a list of words, e.g. [srun, --ntasks-per-node=4]")
    return list(value)


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{what} name '{name}' appears twice; names must be unique")
        seen.add(name)
