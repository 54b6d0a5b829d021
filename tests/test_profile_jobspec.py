"""The job file as users write it: real ai-ready.yaml files, one-line errors that name the key, launcher argv."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from ai_ready.errors import InputError
from ai_ready.profile import jobspec
from ai_ready.profile.jobspec import (
    LAUNCHERS,
    SPEC_FILE,
    JobSpec,
    ProfileSettings,
    Target,
    TargetModel,
    launch_argv,
    load_job,
)

FULL_SPEC = """\
name: my-llm
command: [python, train.py, --batch-size, "8"]
launcher: torchrun
nproc: 4
env: {OMP_NUM_THREADS: "2", NCCL_DEBUG: WARN, SEED: 7}
profile: {warmup_steps: 2, steps: 10, timeout_s: 300, trace: true}
target:
  model: {kind: transformer, layers: 80, hidden: 8192, heads: 64, seq_len: 4096, vocab: 128000,
          kv_heads: 8, ffn_hidden: 28672}
  tokens: 2.0e12
  systems: [jupiter-booster, hammerhai, gigafactory-100k]
"""

MODEL = "{kind: transformer, layers: 2, hidden: 64, heads: 4, seq_len: 128, vocab: 1000}"


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture()
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A job directory with train.py, and a PATH holding only a fake `python` and `trainer`."""
    bin_dir = tmp_path / "bin"
    _executable(bin_dir / "python")
    _executable(bin_dir / "trainer")
    monkeypatch.setenv("PATH", str(bin_dir))
    directory = tmp_path / "my-job"
    directory.mkdir()
    (directory / "train.py").write_text("print('training')\n")
    return directory


def write(directory: Path, text: str) -> Path:
    path = directory / SPEC_FILE
    path.write_text(text)
    return path


def expect_error(*fragments: str, **kwargs: Any) -> str:
    """load_job must refuse with one line that contains every fragment."""
    with pytest.raises(InputError) as info:
        load_job(**kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------- valid jobs


def test_full_file_loads_every_field(job: Path) -> None:
    source = write(job, FULL_SPEC)
    spec = load_job(job)
    assert spec == JobSpec(
        directory=job.resolve(),
        name="my-llm",
        command=("python", "train.py", "--batch-size", "8"),
        launcher="torchrun",
        nproc=4,
        env={"OMP_NUM_THREADS": "2", "NCCL_DEBUG": "WARN", "SEED": "7"},
        profile=ProfileSettings(warmup_steps=2, steps=10, timeout_s=300.0, trace=True),
        target=Target(
            model=TargetModel(kind="transformer", layers=80, hidden=8192, heads=64, seq_len=4096, vocab=128000,
                              kv_heads=8, ffn_hidden=28672),
            tokens=2.0e12,  # YAML 1.1 reads `2.0e12` as text; it is still accepted as a number
            systems=("jupiter-booster", "hammerhai", "gigafactory-100k"),
        ),
        source=source.resolve(),
    )
    assert spec.directory.is_absolute() and isinstance(spec.profile.timeout_s, float)


def test_minimal_file_takes_defaults(job: Path) -> None:
    write(job, "command: [python, train.py]\n")
    spec = load_job(job)
    assert spec.name == "my-job" and spec.launcher == "none" and spec.nproc == 1
    assert spec.env == {} and spec.target is None
    assert spec.profile == ProfileSettings() == ProfileSettings(3, 20, 900.0, False)


def test_empty_sections_count_as_absent(job: Path) -> None:
    write(job, "command: [python, train.py]\nenv:\nprofile: {}\ntarget: {}\n")
    spec = load_job(job)
    assert spec.env == {} and spec.profile == ProfileSettings() and spec.target == Target(None, None, ())


def test_defaults_are_not_shared(job: Path) -> None:
    write(job, "command: [python, train.py]\n")
    first, second = load_job(job), load_job(job)
    first.env["X"] = "1"
    assert second.env == {}


def test_generic_model_needs_no_sizes(job: Path) -> None:
    write(job, "command: [python, train.py]\ntarget: {model: {kind: generic, layers: 3}, tokens: 1000}\n")
    target = load_job(job).target
    assert target == Target(model=TargetModel(kind="generic", layers=3), tokens=1000.0, systems=())


def test_cli_command_overrides_file(job: Path) -> None:
    source = write(job, "name: n\ncommand: [python, missing.py]\nprofile: {steps: 5}\n")
    spec = load_job(job, command=["trainer", "--fast"])
    assert spec.command == ("trainer", "--fast") and spec.profile.steps == 5
    assert spec.source == source.resolve()  # the file still supplied the other settings


def test_no_file_with_command(job: Path) -> None:
    spec = load_job(job, command=("python", "train.py", "--lr", "1e-3"))
    assert spec.command == ("python", "train.py", "--lr", "1e-3") and spec.source is None
    assert spec.name == "my-job" and spec.profile == ProfileSettings()


def test_overrides_apply_on_top_of_file(job: Path) -> None:
    write(job, "name: from-file\ncommand: [python, train.py]\nprofile: {steps: 5, trace: true}\n")
    spec = load_job(job, overrides={"name": "from-cli", "launcher": "mpiexec", "nproc": 2, "warmup_steps": 0,
                                    "steps": 7, "timeout_s": 1.5, "trace": None})
    assert (spec.name, spec.launcher, spec.nproc) == ("from-cli", "mpiexec", 2)
    assert spec.profile == ProfileSettings(warmup_steps=0, steps=7, timeout_s=1.5, trace=True)


def test_unknown_override_is_a_bug_not_input(job: Path) -> None:
    with pytest.raises(ValueError, match="stepz"):
        load_job(job, command=["trainer"], overrides={"stepz": 3})


def test_program_found_on_the_spec_path(job: Path, tmp_path: Path) -> None:
    _executable(tmp_path / "tools" / "special-run")
    write(job, f"command: [special-run]\nenv: {{PATH: '{tmp_path / 'tools'}'}}\n")
    assert load_job(job).command == ("special-run",)


def test_relative_program_in_job_directory(job: Path) -> None:
    _executable(job / "run.sh")
    assert load_job(job, command=["./run.sh"]).command == ("./run.sh",)
    (job / "data.txt").write_text("x")
    expect_error("not executable", "./data.txt", directory=job, command=["./data.txt"])
    expect_error("command not found: ./nope.sh", "the command after --", directory=job, command=["./nope.sh"])


# ---------------------------------------------------------------- refused input


BAD_FILES = [
    ("command: [python, train.py\nname: x\n", ["not valid YAML", "line 2"]),
    ("- python\n- train.py\n", ["top level must be a mapping", "name, command"]),
    ("", ["top level must be a mapping", "empty file"]),
    ("command: [python, train.py]\nnprocs: 2\n", ["unknown key 'nprocs'", "accepted:", "nproc"]),
    ("command: [python, train.py]\nprofile: {stepz: 3}\n", ["unknown key 'profile.stepz'", "warmup_steps, steps"]),
    ("command: [python, train.py]\ntarget: {modle: {}}\n", ["unknown key 'target.modle'", "model, tokens"]),
    ("command: [python, train.py]\ntarget: {model: {kind: transformer, layerz: 2}}\n",
     ["unknown key 'target.model.layerz'", "layers"]),
    ("command: []\n", ["command must be a non-empty list of strings"]),
    ("command: {python: train.py}\n", ["command must be a non-empty list of strings"]),
    ("command: [python, train.py, --batch-size, 8]\n", ["command[3] must be a string", "quote it"]),
    ("command: ['', train.py]\n", ["command[0]"]),
    ("command: [python, train.py]\nnproc: two\n", ["nproc must be a positive integer, got 'two'"]),
    ("command: [python, train.py]\nlauncher: torchrun\nnproc: 0\n", ["nproc must be a positive integer, got 0"]),
    ("command: [python, train.py]\nnproc: 1.5\n", ["nproc must be a positive integer"]),
    ("command: [python, train.py]\nlauncher: mpirun\n", ["launcher must be one of none, torchrun, mpiexec, srun",
                                                          "'mpirun'"]),
    ("command: [python, train.py]\nenv: [A, B]\n", ["env must be a mapping"]),
    ("command: [python, train.py]\nenv: {A: {B: 1}}\n", ["env.A must be a string or a number"]),
    ("command: [python, train.py]\nenv: {A: [1, 2]}\n", ["env.A must be a string or a number"]),
    ("command: [python, train.py]\nenv: {A: true}\n", ["env.A must be a string or a number", "boolean"]),
    ("command: [python, train.py]\nenv: {A: null}\n", ["env.A must be a string or a number"]),
    ("command: [python, train.py]\nenv: {1BAD: x}\n", ["env key '1BAD' is not a valid environment variable name"]),
    ("command: [python, train.py]\nenv: {'A-B': x}\n", ["env key 'A-B'"]),
    ("command: [python, train.py]\nprofile: {steps: 0}\n", ["profile.steps must be a positive integer, got 0"]),
    ("command: [python, train.py]\nprofile: {warmup_steps: -1}\n", ["profile.warmup_steps must be an integer >= 0"]),
    ("command: [python, train.py]\nprofile: {timeout_s: 0}\n", ["profile.timeout_s must be a number > 0"]),
    ("command: [python, train.py]\nprofile: {timeout_s: .inf}\n", ["profile.timeout_s must be a number > 0"]),
    ("command: [python, train.py]\nprofile: {timeout_s: soon}\n", ["profile.timeout_s must be a number > 0"]),
    ("command: [python, train.py]\nprofile: {trace: yes please}\n", ["profile.trace must be true or false"]),
    ("command: [python, train.py]\nprofile: [steps, 3]\n", ["profile must be a mapping"]),
    ("command: [python, train.py]\nname: 42\n", ["name must be non-empty text", "42"]),
    ("command: [python, train.py]\nname: '  '\n", ["name must be non-empty text"]),
    ("command: [python, train.py]\nname: \"two\\nlines\"\n", ["name must be a single line"]),
    (f"command: [python, train.py]\nname: {'x' * 201}\n", ["name must be a single line of at most 200"]),
    ("command: [python, train.py]\ntarget: [a]\n", ["target must be a mapping"]),
    ("command: [python, train.py]\ntarget: {tokens: -5}\n", ["target.tokens must be a number > 0"]),
    ("command: [python, train.py]\ntarget: {tokens: lots}\n", ["target.tokens must be a number > 0"]),
    ("command: [python, train.py]\ntarget: {systems: hammerhai}\n", ["target.systems must be a list"]),
    ("command: [python, train.py]\ntarget: {systems: [hammerhai, '']}\n", ["target.systems[1]"]),
    ("command: [python, train.py]\ntarget: {systems: [hammerhai, 3]}\n", ["target.systems[1]"]),
    ("command: [python, train.py]\ntarget: {model: {layers: 2}}\n",
     ["target.model.kind must be one of transformer, generic", "missing"]),
    ("command: [python, train.py]\ntarget: {model: {kind: cnn}}\n", ["target.model.kind", "'cnn'"]),
    ("command: [python, train.py]\ntarget: {model: {kind: transformer, layers: 2, hidden: 64}}\n",
     ["target.model of kind transformer needs heads, seq_len, vocab"]),
    ("command: [python, train.py]\ntarget: {model: {kind: transformer, layers: 2, hidden: 64, heads: 5, "
     "seq_len: 8, vocab: 10}}\n", ["target.model.heads (5) must divide target.model.hidden (64)"]),
    ("command: [python, train.py]\ntarget: {model: {kind: generic, heads: 8, kv_heads: 3}}\n",
     ["target.model.kv_heads (3) must divide target.model.heads (8)"]),
    ("command: [python, train.py]\ntarget: {model: {kind: generic, top_k: 2}}\n", ["target.model.top_k (2)"]),
    ("command: [python, train.py]\ntarget: {model: {kind: generic, experts: 8, top_k: 9}}\n",
     ["target.model.top_k (9)"]),
    ("command: [python, train.py]\ntarget: {model: {kind: generic, layers: 0}}\n",
     ["target.model.layers must be a positive integer, got 0"]),
    ("name: only-a-name\n", ["command is missing", "command: [python, train.py]"]),
]


@pytest.mark.parametrize("text, fragments", BAD_FILES, ids=[f"bad-{i}" for i in range(len(BAD_FILES))])
def test_bad_file_is_one_line_naming_file_and_key(job: Path, text: str, fragments: list[str]) -> None:
    path = write(job, text)
    expect_error(f"job file {path.resolve()}", *fragments, directory=job)


def test_plain_string_command_gets_the_list_to_write(job: Path) -> None:
    write(job, "command: python train.py --batch-size 8\n")
    expect_error("command must be a non-empty list of strings (argv), got a string",
                 "write [python, train.py, --batch-size, 8]", directory=job)


@pytest.mark.parametrize("text, key", [
    ("nproc: true", "nproc"),
    ("launcher: mpiexec\nnproc: true", "nproc"),
    ("profile: {steps: true}", "profile.steps"),
    ("profile: {warmup_steps: false}", "profile.warmup_steps"),
    ("profile: {timeout_s: true}", "profile.timeout_s"),
    ("target: {tokens: true}", "target.tokens"),
    ("target: {model: {kind: generic, layers: true}}", "target.model.layers"),
])
def test_booleans_are_not_numbers(job: Path, text: str, key: str) -> None:
    write(job, f"command: [python, train.py]\n{text}\n")
    expect_error(f"{key} must be", "true (a boolean)" if "true" in text else "false (a boolean)", directory=job)


def test_trace_must_be_a_real_boolean(job: Path) -> None:
    write(job, "command: [python, train.py]\nprofile: {trace: 1}\n")
    expect_error("profile.trace must be true or false, got 1", directory=job)


@pytest.mark.parametrize("overrides, fragments", [
    ({"nproc": 0}, ["command line", "nproc must be a positive integer, got 0"]),
    ({"nproc": True}, ["nproc must be a positive integer", "boolean"]),
    ({"launcher": "slurm"}, ["launcher must be one of", "'slurm'"]),
    ({"steps": 0}, ["steps must be a positive integer"]),
    ({"warmup_steps": -2}, ["warmup_steps must be an integer >= 0"]),
    ({"timeout_s": -1.0}, ["timeout_s must be a number > 0"]),
    ({"trace": "yes"}, ["trace must be true or false"]),
    ({"name": "a\nb"}, ["name must be a single line"]),
])
def test_bad_overrides_are_refused_like_the_file(job: Path, overrides: dict[str, Any], fragments: list[str]) -> None:
    expect_error(*fragments, directory=job, command=["trainer"], overrides=overrides)


def test_no_file_and_no_command(job: Path) -> None:
    root = job.resolve()
    for command in (None, []):
        expect_error(f"no ai-ready.yaml in {root} and no command after --",
                     f"write {root / SPEC_FILE} with a command: [python, train.py]",
                     f"`ai-ready profile {root} -- python train.py`", directory=job, command=command)


def test_job_directory_must_exist(tmp_path: Path) -> None:
    expect_error(f"job directory {tmp_path / 'nope'} does not exist", directory=tmp_path / "nope", command=["x"])
    (tmp_path / "file").write_text("")
    expect_error("is not a directory", directory=tmp_path / "file", command=["x"])


def test_spec_path_that_is_a_folder(job: Path) -> None:
    (job / SPEC_FILE).mkdir()
    expect_error("job file", "not a regular file", directory=job)


def test_missing_script(job: Path) -> None:
    write(job, "command: [python, trian.py, --epochs, '1']\n")
    expect_error("script not found: trian.py", f"{job.resolve() / 'trian.py'}", "relative to it", directory=job)
    expect_error("script not found: sub/x.py", "the command after --",
                 directory=job, command=["python", "-u", "sub/x.py"])


def test_python_module_and_code_are_not_scripts(job: Path) -> None:
    assert load_job(job, command=["python", "-m", "pkg.train", "x.py"]).command[1] == "-m"
    assert load_job(job, command=["python", "-c", "print(1)"]).command[1] == "-c"


def test_command_not_on_path(job: Path) -> None:
    path = write(job, "command: [no-such-trainer, --fast]\n")
    expect_error("command not found: no-such-trainer", f"from {path.resolve()} command", "PATH", directory=job)


def test_command_path_uses_the_spec_env(job: Path, tmp_path: Path) -> None:
    write(job, f"command: [python, train.py]\nenv: {{PATH: '{tmp_path / 'empty'}'}}\n")
    expect_error("command not found: python", directory=job)


@pytest.mark.parametrize("text, overrides, where", [
    ("nproc: 4", None, "job file"),
    ("launcher: none\nnproc: 2", None, "job file"),
    ("", {"nproc": 8}, "command line"),
    ("launcher: torchrun\nnproc: 4", {"launcher": "none"}, "command line"),
])
def test_several_ranks_need_a_launcher(job: Path, text: str, overrides: dict[str, Any] | None, where: str) -> None:
    write(job, f"command: [python, train.py]\n{text}\n")
    expect_error(where, "launcher is none", "pick a launcher: torchrun, mpiexec, srun",
                 directory=job, overrides=overrides)


def test_error_messages_stay_on_one_line_with_odd_paths(tmp_path: Path) -> None:
    odd = tmp_path / "two\nlines"
    expect_error("does not exist", directory=odd, command=["x"])


# ---------------------------------------------------------------- launch argv


def _spec(command: tuple[str, ...], launcher: str = "none", nproc: int = 1) -> JobSpec:
    return JobSpec(directory=Path("/job"), name="j", command=command, launcher=launcher, nproc=nproc, env={},
                   profile=ProfileSettings(), target=None, source=None)


@pytest.mark.parametrize("command, launcher, expected", [
    (("python", "train.py", "--bs", "8"), "none", ["python", "train.py", "--bs", "8"]),
    (("python", "train.py"), "mpiexec", ["MPI", "-n", "4", "python", "train.py"]),
    (("./run.sh",), "srun", ["SRUN", "--ntasks=4", "./run.sh"]),
    (("python", "train.py", "--bs", "8"), "torchrun",
     ["TR", "--standalone", "--nproc-per-node", "4", "train.py", "--bs", "8"]),
    (("/usr/bin/python3.11", "train.py"), "torchrun", ["TR", "--standalone", "--nproc-per-node", "4", "train.py"]),
    (("python", "-m", "pkg.train", "--bs", "8"), "torchrun",
     ["TR", "--standalone", "--nproc-per-node", "4", "-m", "pkg.train", "--bs", "8"]),
    (("./run.sh", "--fast"), "torchrun",
     ["TR", "--standalone", "--nproc-per-node", "4", "--no-python", "./run.sh", "--fast"]),
    (("python", "-u", "train.py"), "torchrun",  # interpreter options survive only with the user's own python
     ["TR", "--standalone", "--nproc-per-node", "4", "--no-python", "python", "-u", "train.py"]),
])
def test_launch_argv(command: tuple[str, ...], launcher: str, expected: list[str]) -> None:
    nproc = 1 if launcher == "none" else 4
    assert launch_argv(_spec(command, launcher, nproc), mpiexec="MPI", torchrun="TR", srun="SRUN") == expected


def test_launch_argv_defaults_and_loaded_spec(job: Path) -> None:
    write(job, "command: [python, train.py]\nlauncher: torchrun\nnproc: 2\n")
    assert launch_argv(load_job(job)) == ["torchrun", "--standalone", "--nproc-per-node", "2", "train.py"]
    assert launch_argv(_spec(("t",), "mpiexec", 2))[:3] == ["mpiexec", "-n", "2"]
    assert launch_argv(_spec(("t",), "srun", 3))[0] == "srun"
    assert set(LAUNCHERS) == {"none", "torchrun", "mpiexec", "srun"}


def test_module_stays_light() -> None:
    """It runs before the job starts: no torch, and nothing from the package but the error type."""
    tree = ast.parse(Path(jobspec.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "torch" for name in imported), imported
    assert {name for name in imported if name.startswith("ai_ready")} == {"ai_ready.errors"}
