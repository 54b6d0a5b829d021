"""Read and check a job directory's ``ai-ready.yaml`` before anything runs.

``ai-ready profile`` runs the user's own training command unmodified, so the
only thing we can check up front is the description of that command. Every
check fails with one line that names the file (or the command line), the key
path and what is accepted, because a typo found after a 15-minute job start
wastes the user's allocation. Unknown keys are errors for the same reason: a
misspelt ``stepz`` must not silently fall back to the default.

This module must stay light (no torch): it runs before the job starts.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn, Sequence

import yaml

from ai_ready.errors import InputError, yaml_problem

#: The job description a job directory may hold.
SPEC_FILE = "ai-ready.yaml"
#: How the command is started on this node; "none" runs it as one process.
LAUNCHERS = ("none", "torchrun", "mpiexec", "srun")
#: Model kinds a target may describe; "generic" carries sizes without a shape rule.
MODEL_KINDS = ("transformer", "generic")

TOP_KEYS = ("name", "command", "launcher", "nproc", "env", "profile", "target")
PROFILE_KEYS = ("warmup_steps", "steps", "timeout_s", "trace")
TARGET_KEYS = ("model", "tokens", "systems", "global_batch", "precision", "tokens_per_step", "software")
#: Number formats a target may train in (those the performance model knows).
TARGET_PRECISIONS = ("bf16", "fp16", "fp8", "fp32")
MODEL_SIZE_KEYS = ("layers", "hidden", "heads", "seq_len", "vocab", "kv_heads", "ffn_hidden", "experts", "top_k")
MODEL_KEYS = ("kind", *MODEL_SIZE_KEYS)
#: Sizes a model of each kind must state; the extrapolation needs them all.
MODEL_REQUIRED = {"transformer": ("layers", "hidden", "heads", "seq_len", "vocab"), "generic": ()}
#: Settings the CLI flags may override, on top of the file.
OVERRIDE_KEYS = ("name", "launcher", "nproc", *PROFILE_KEYS)

#: A job name is a label in reports and file names: one line, not a paragraph.
NAME_MAX_CHARS = 200
#: POSIX portable environment variable names.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: How much of a bad value an error message shows.
SHOW_MAX_CHARS = 60
#: An executable whose name starts with this is taken to be a Python interpreter.
PYTHON_PREFIX = "python"
#: Python options after which the rest of the argv belongs to a module or code string, not a script.
PYTHON_STOP_OPTIONS = ("-m", "-c")

NO_COMMAND_HINT = "write {spec} with a command: [python, train.py] or run `ai-ready profile {dir} -- python train.py`"


@dataclass(frozen=True)
class ProfileSettings:
    """How much of the job to measure: a few warm-up steps are discarded, then `steps` are timed."""

    warmup_steps: int = 3
    steps: int = 20
    timeout_s: float = 900.0
    trace: bool = False


@dataclass(frozen=True)
class TargetModel:
    """The model the user means to train at scale, which may be larger than the one profiled."""

    kind: str
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    seq_len: int | None = None
    vocab: int | None = None
    kv_heads: int | None = None
    ffn_hidden: int | None = None
    experts: int | None = None
    top_k: int | None = None


@dataclass(frozen=True)
class Target:
    """What to extrapolate to; system names are checked against the catalog later, where it is loaded."""

    model: TargetModel | None = None
    tokens: float | None = None
    systems: tuple[str, ...] = ()
    global_batch: int | None = None
    precision: str | None = None
    #: Tokens one optimizer step of the profiled job trains on, for a job whose inputs the profile cannot read.
    tokens_per_step: float | None = None
    #: The training stack at scale (a preset of ai_ready/model/data/software.yaml); default: the profiled one.
    software: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """A checked job: everything needed to start it, with the file it came from for later messages."""

    directory: Path
    name: str
    command: tuple[str, ...]
    launcher: str
    nproc: int
    env: dict[str, str]
    profile: ProfileSettings
    target: Target | None
    source: Path | None


# ---------------------------------------------------------------- errors


@dataclass(frozen=True)
class _Where:
    """Where a value came from (the job file or the command line), so errors can name it."""

    label: str

    def fail(self, message: str) -> NoReturn:
        raise InputError(_one_line(f"{self.label}: {message}"))


def _one_line(message: str) -> str:
    """The CLI prints errors as one line; a path or value with a newline must not break that."""
    return " ".join(message.splitlines())


def _show(value: Any) -> str:
    """A bad value as the user wrote it, short, and saying what type YAML made of it."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, (dict, list)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        text = repr(value)
        return kind if len(text) > SHOW_MAX_CHARS else f"{kind} {text}"
    text = repr(value)
    return text if len(text) <= SHOW_MAX_CHARS else text[: SHOW_MAX_CHARS - 3] + "..."


def _check_keys(where: _Where, mapping: Mapping[Any, Any], accepted: Sequence[str], prefix: str = "") -> None:
    """Unknown keys are errors: a typo must not silently keep the default."""
    for key in mapping:
        if key not in accepted:
            where.fail(f"unknown key '{prefix}{key}'; accepted: {', '.join(accepted)}")


def _section(where: _Where, label: str, value: Any) -> dict[Any, Any]:
    """A nested mapping; an empty or null section counts as absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        where.fail(f"{label} must be a mapping of keys to values, got {_show(value)}")
    return value


# ---------------------------------------------------------------- scalar checks


def _is_int(value: Any) -> bool:
    """YAML `true` is a bool, and bool is an int in Python; never accept it as a count."""
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(where: _Where, label: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        where.fail(f"{label} must be a positive integer, got {_show(value)}")
    return value


def _non_negative_int(where: _Where, label: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        where.fail(f"{label} must be an integer >= 0, got {_show(value)}")
    return value


def _positive_number(where: _Where, label: str, value: Any) -> float:
    """A finite number > 0. Strings like "2.0e12" are accepted because YAML 1.1 reads them as text."""
    number: float | None = None
    if _is_int(value) or isinstance(value, float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        where.fail(f"{label} must be a number > 0, got {_show(value)}")
    return number


def _boolean(where: _Where, label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        where.fail(f"{label} must be true or false, got {_show(value)}")
    return value


def _name(where: _Where, label: str, value: Any) -> str:
    """Free text, but one short line: it labels reports and result files."""
    if not isinstance(value, str) or not value.strip():
        where.fail(f"{label} must be non-empty text (quote numbers), got {_show(value)}")
    if "\n" in value or "\r" in value or len(value) > NAME_MAX_CHARS:
        where.fail(f"{label} must be a single line of at most {NAME_MAX_CHARS} characters, got {_show(value)}")
    return value.strip()


def _launcher(where: _Where, label: str, value: Any) -> str:
    if value not in LAUNCHERS or not isinstance(value, str):
        where.fail(f"{label} must be one of {', '.join(LAUNCHERS)}, got {_show(value)}")
    return value


Check = Callable[[_Where, str, Any], Any]

PROFILE_CHECKS: dict[str, Check] = {
    "warmup_steps": _non_negative_int,
    "steps": _positive_int,
    "timeout_s": _positive_number,
    "trace": _boolean,
}
TOP_CHECKS: dict[str, Check] = {"name": _name, "launcher": _launcher, "nproc": _positive_int}


# ---------------------------------------------------------------- sections


def _command(where: _Where, value: Any) -> tuple[str, ...]:
    """An argv list: we never run a shell, so a plain string is refused with the list to write instead."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        where.fail(f"command must be a non-empty list of strings (argv), got a string: "
                   f"write [{', '.join(words) or 'python, train.py'}] (no shell is used)")
    if not isinstance(value, (list, tuple)) or not value:
        where.fail(f"command must be a non-empty list of strings (argv) such as [python, train.py], got {_show(value)}")
    for index, word in enumerate(value):
        if not isinstance(word, str):
            where.fail(f"command[{index}] must be a string, got {_show(word)}; quote it, e.g. \"{word}\"")
    if not value[0]:
        where.fail("command[0] (the program to run) must not be empty")
    return tuple(value)


def _env(where: _Where, value: Any) -> dict[str, str]:
    """Variables set for the job; numbers become text, anything else is a mistake."""
    result: dict[str, str] = {}
    for key, item in _section(where, "env", value).items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            where.fail(f"env key {_show(key)} is not a valid environment variable name; "
                       f"accepted: letters, digits and _, not starting with a digit")
        if isinstance(item, str):
            result[key] = item
        elif _is_int(item) or isinstance(item, float):
            result[key] = str(item)
        else:
            where.fail(f"env.{key} must be a string or a number, got {_show(item)}; quote it, e.g. \"1\"")
    return result


def _profile(file: _Where, value: Any, cli: _Where, overrides: Mapping[str, Any]) -> ProfileSettings:
    raw = _section(file, "profile", value)
    _check_keys(file, raw, PROFILE_KEYS, "profile.")
    settings: dict[str, Any] = {}
    for key, check in PROFILE_CHECKS.items():
        where, label, item = (cli, key, overrides[key]) if key in overrides else (file, f"profile.{key}", raw.get(key))
        if item is not None:
            settings[key] = check(where, label, item)
    return ProfileSettings(**settings)


def _target(where: _Where, value: Any) -> Target | None:
    if value is None:
        return None
    raw = _section(where, "target", value)
    _check_keys(where, raw, TARGET_KEYS, "target.")
    tokens = raw.get("tokens")
    precision = raw.get("precision")
    if precision is not None and precision not in TARGET_PRECISIONS:
        where.fail(f"target.precision must be one of {', '.join(TARGET_PRECISIONS)}, got {_show(precision)}")
    batch = raw.get("global_batch")
    per_step = raw.get("tokens_per_step")
    software = raw.get("software")  # a preset name, checked against the presets by the command before the job runs
    if software is not None and not isinstance(software, str):
        where.fail(f"target.software must be the name of a software preset, got {_show(software)}")
    return Target(
        model=_target_model(where, raw.get("model")),
        tokens=None if tokens is None else _positive_number(where, "target.tokens", tokens),
        systems=_systems(where, raw.get("systems")),
        global_batch=None if batch is None else _positive_int(where, "target.global_batch", batch),
        precision=precision,
        tokens_per_step=None if per_step is None else _positive_number(where, "target.tokens_per_step", per_step),
        software=software,
    )


def _systems(where: _Where, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        where.fail(f"target.systems must be a list of system names such as [jupiter-booster], got {_show(value)}")
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            where.fail(f"target.systems[{index}] must be a system name, got {_show(name)}")
    return tuple(name.strip() for name in value)


def _target_model(where: _Where, value: Any) -> TargetModel | None:
    if value is None:
        return None
    raw = _section(where, "target.model", value)
    _check_keys(where, raw, MODEL_KEYS, "target.model.")
    kind = raw.get("kind")
    if kind not in MODEL_KINDS or not isinstance(kind, str):
        found = _show(kind) if "kind" in raw else "nothing (missing)"
        where.fail(f"target.model.kind must be one of {', '.join(MODEL_KINDS)}, got {found}")
    sizes = {key: _positive_int(where, f"target.model.{key}", raw[key])
             for key in MODEL_SIZE_KEYS if raw.get(key) is not None}
    missing = [key for key in MODEL_REQUIRED[kind] if key not in sizes]
    if missing:
        where.fail(f"target.model of kind {kind} needs {', '.join(missing)} "
                   f"(required: {', '.join(MODEL_REQUIRED[kind])})")
    _check_model_shape(where, sizes)
    return TargetModel(kind=kind, **sizes)


def _check_model_shape(where: _Where, sizes: Mapping[str, int]) -> None:
    """Relations that any attention/MoE model obeys; breaking one means a typo in a size."""
    hidden, heads, kv_heads = sizes.get("hidden"), sizes.get("heads"), sizes.get("kv_heads")
    experts, top_k = sizes.get("experts"), sizes.get("top_k")
    if hidden is not None and heads is not None and hidden % heads:
        where.fail(f"target.model.heads ({heads}) must divide target.model.hidden ({hidden})")
    if heads is not None and kv_heads is not None and heads % kv_heads:
        where.fail(f"target.model.kv_heads ({kv_heads}) must divide target.model.heads ({heads})")
    if top_k is not None and (experts is None or top_k > experts):
        where.fail(f"target.model.top_k ({top_k}) needs target.model.experts >= top_k "
                   f"(experts: {experts if experts is not None else 'not given'})")


# ---------------------------------------------------------------- files and the command


def _job_directory(directory: Path | str) -> Path:
    path = Path(directory).expanduser()
    if not path.exists():
        raise InputError(_one_line(f"job directory {path} does not exist; give the folder that holds your "
                                   f"training script (and {SPEC_FILE})"))
    if not path.is_dir():
        raise InputError(_one_line(f"job directory {path} is not a directory; give the folder that holds your "
                                   f"training script (and {SPEC_FILE})"))
    return path.resolve()


def _read_spec(path: Path, where: _Where) -> dict[Any, Any]:
    """Parse the job file into a mapping; YAML errors become one line with the line number."""
    if not path.is_file():
        where.fail("exists but is not a regular file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where.fail(f"not valid YAML ({yaml_problem(exc)}); accepted: a mapping with keys {', '.join(TOP_KEYS)}")
    except (OSError, UnicodeDecodeError) as exc:
        where.fail(f"cannot be read ({exc})")
    if not isinstance(doc, dict):
        found = "an empty file" if doc is None else _show(doc)
        where.fail(f"top level must be a mapping with keys {', '.join(TOP_KEYS)}, got {found}")
    return doc


def _is_python(program: str) -> bool:
    return Path(program).name.startswith(PYTHON_PREFIX)


def _python_script(command: Sequence[str]) -> int | None:
    """Index of the script a `python [options] script.py` command runs, or None (e.g. `python -m mod`)."""
    if not _is_python(command[0]):
        return None
    for index in range(1, len(command)):
        word = command[index]
        if word in PYTHON_STOP_OPTIONS:
            return None
        if not word.startswith("-"):
            return index if word.endswith(".py") else None
    return None


def _check_program(directory: Path, command: tuple[str, ...], env: Mapping[str, str], origin: str) -> None:
    """Fail now, not after the launcher started, if the program or its script cannot be found."""
    program = command[0]
    separators = tuple(sep for sep in (os.sep, os.altsep) if sep)
    if any(sep in program for sep in separators):
        path = directory / program
        if not path.is_file():
            raise InputError(_one_line(f"command not found: {program} (from {origin}); {path} does not exist; "
                                       f"a path in the command is relative to the job directory {directory}"))
        if not os.access(path, os.X_OK):
            raise InputError(_one_line(f"command {program} (from {origin}) is not executable; "
                                       f"run `chmod +x {path}` or start it with its interpreter"))
    else:
        search = env.get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=search) is None:
            raise InputError(_one_line(f"command not found: {program} (from {origin}); accepted: a program on "
                                       f"PATH (load its module or activate its environment) or a path relative "
                                       f"to the job directory {directory}"))
    script = _python_script(command)
    if script is not None and not (directory / command[script]).is_file():
        raise InputError(_one_line(f"script not found: {command[script]} (command[{script}] from {origin}); "
                                   f"{directory / command[script]} does not exist; the command runs in the job "
                                   f"directory {directory}, so give the script's path relative to it"))


def _split_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """CLI flags that were given; an unknown key is a bug in the caller, not user input."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    unknown = sorted(set(given) - set(OVERRIDE_KEYS))
    if unknown:
        raise ValueError(f"unknown job overrides {unknown}; accepted: {', '.join(OVERRIDE_KEYS)}")
    return given


# ---------------------------------------------------------------- public


def load_job(
    directory: Path,
    command: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> JobSpec:
    """Load DIR/ai-ready.yaml (if any), apply the command after `--` and the CLI flags, and check it all.

    Raises InputError with one line naming the file, the key and what is accepted.
    """
    root = _job_directory(directory)
    spec_path = root / SPEC_FILE
    file = _Where(f"job file {spec_path}")
    cli = _Where("command line")
    given = _split_overrides(overrides)
    doc = _read_spec(spec_path, file) if spec_path.exists() else None
    raw = doc if doc is not None else {}
    _check_keys(file, raw, TOP_KEYS)

    if command:
        argv, origin = _command(cli, list(command)), "the command after --"
    elif raw.get("command") is not None:
        argv, origin = _command(file, raw["command"]), f"{spec_path} command"
    elif doc is not None:
        file.fail(f"command is missing; accepted: command: [python, train.py] in the file, "
                  f"or run `ai-ready profile {root} -- python train.py`")
    else:
        raise InputError(_one_line(f"no {SPEC_FILE} in {root} and no command after --; accepted: "
                                   + NO_COMMAND_HINT.format(spec=spec_path, dir=root)))

    top: dict[str, Any] = {"name": root.name or "job", "launcher": "none", "nproc": 1}
    for key, check in TOP_CHECKS.items():
        if key in given:
            top[key] = check(cli, key, given[key])
        elif raw.get(key) is not None:
            top[key] = check(file, key, raw[key])
    if top["launcher"] == "none" and top["nproc"] != 1:
        where = cli if "nproc" in given or "launcher" in given else file
        where.fail(f"nproc is {top['nproc']} but launcher is none, which runs one process; "
                   f"for several ranks pick a launcher: {', '.join(LAUNCHERS[1:])}")

    env = _env(file, raw.get("env"))
    profile = _profile(file, raw.get("profile"), cli, given)
    target = _target(file, raw.get("target"))
    _check_program(root, argv, env, origin)  # last: the file's own mistakes come first
    return JobSpec(
        directory=root,
        name=top["name"],
        command=argv,
        launcher=top["launcher"],
        nproc=top["nproc"],
        env=env,
        profile=profile,
        target=target,
        source=spec_path if doc is not None else None,
    )


def launch_argv(spec: JobSpec, mpiexec: str = "mpiexec", torchrun: str = "torchrun", srun: str = "srun") -> list[str]:
    """The argv that starts the job with its launcher on this node.

    torchrun starts Python itself, so a leading interpreter is dropped (`python -m mod` becomes `-m mod`);
    a command that is not a plain `python script.py` or `python -m mod` keeps its own program behind
    `--no-python`. `--standalone` gives torchrun a private rendezvous, so two jobs on a node never clash.
    """
    command = list(spec.command)
    nproc = str(spec.nproc)
    if spec.launcher == "none":
        return command
    if spec.launcher == "mpiexec":
        return [mpiexec, "-n", nproc, *command]
    if spec.launcher == "srun":
        return [srun, f"--ntasks={nproc}", *command]
    if spec.launcher == "torchrun":
        return [torchrun, "--standalone", "--nproc-per-node", nproc, *_torchrun_tail(command)]
    raise ValueError(f"unknown launcher {spec.launcher!r}; known: {', '.join(LAUNCHERS)}")


def _torchrun_tail(command: list[str]) -> list[str]:
    """What follows torchrun's own options: a script, `-m module`, or `--no-python` and a program."""
    if _is_python(command[0]) and len(command) > 1:
        if command[1] == "-m" and len(command) > 2:
            return ["-m", *command[2:]]
        if not command[1].startswith("-"):
            return command[1:]
    return ["--no-python", *command]
