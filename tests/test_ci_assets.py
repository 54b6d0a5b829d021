"""The nightly-acceptance assets in ci/: they parse, they call ai-ready the way its CLI accepts.

None of these needs Slurm, GitLab or Jenkins: the checks are static (bash -n, YAML, shellcheck when it
is installed, cron syntax) plus the one that matters most when the CLI changes: every option the
assets pass to `ai-ready accept` is one `ai-ready accept --help` lists.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

CI = REPO / "ci"
SBATCH = CI / "slurm" / "nightly.sbatch"
GITLAB = CI / "gitlab-ci.yml"
JENKINSFILE = CI / "Jenkinsfile"
CRON = CI / "cron.example"
ACCEPT_DOC = REPO / "docs" / "acceptance.md"
SCRIPT_ASSETS = (SBATCH, GITLAB, JENKINSFILE, CRON)

#: Options the nightly script must pass to `ai-ready accept` (the interface the guide documents).
SBATCH_ACCEPT_OPTIONS = ("--system", "--suite", "--db", "--junit", "--report", "--prometheus", "--baseline")
#: Exit codes of `ai-ready accept`: all passed, a check failed or regressed, usage or setup error.
EXIT_FAILED, EXIT_SETUP = 1, 2

_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
_ACCEPT_CALL = re.compile(r"\b(?:ai-ready|ai_ready)\s+accept\b(?P<rest>.*)")
#: srun where it is a command (line start, after `if !`, `&&`, `||`, `;`, `|`, `(`), not a word in a message.
_SRUN_COMMAND = re.compile(r"(?:^|[;&|]|(?<!=)\(|\bif\s+!?|\bthen\b|\bexec\b)\s*srun\s")

# Cron fields: (low, high) and the names allowed in months and days of the week.
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = (None, None, None,
               "jan feb mar apr may jun jul aug sep oct nov dec".split(), "sun mon tue wed thu fri sat".split())


# --------------------------------------------------------------------------- helpers

def logical_lines(text: str) -> list[str]:
    """Lines with backslash-newline continuations joined, as the shell reads them."""
    return text.replace("\\\n", " ").splitlines()


def accept_calls(text: str) -> list[tuple[str, list[str]]]:
    """Each `ai-ready accept [baseline] ...` command in a file: (subcommand or "", its option names)."""
    calls = []
    for line in logical_lines(text):
        if line.lstrip().startswith(("#", "//")):
            continue
        match = _ACCEPT_CALL.search(line)
        if match is None or line[: match.start()].count('"') % 2:  # words in a message, not a command
            continue
        rest = match.group("rest")
        sub = "baseline" if re.match(r"\s+baseline\b", rest) else ""
        # Only this command's words: stop at the next shell operator.
        words = re.split(r"\s(?:&&|\|\||;|\||>>?|2>&1)\s", rest)[0]
        calls.append((sub, _OPTION.findall(words)))
    return calls


def help_options(*args: str) -> set[str]:
    """The option names `ai-ready ARGS --help` lists (click's CliRunner, no subprocess)."""
    from click.testing import CliRunner

    from ai_ready.cli import cli

    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return set(_OPTION.findall(result.output))


def cron_entries(text: str) -> list[str]:
    """Crontab lines that are jobs: not comments, not blank, not VAR=value settings."""
    entries = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", stripped):
            continue
        entries.append(stripped)
    return entries


def cron_field_ok(field: str, index: int) -> bool:
    low, high = _CRON_RANGES[index]
    names = _CRON_NAMES[index]

    def number(token: str) -> int | None:
        if token.isdigit():
            return int(token)
        if names and token.lower() in names:
            return names.index(token.lower()) + (1 if index == 3 else 0)
        return None

    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return False
        if base == "*":
            continue
        first, _, last = base.partition("-")
        values = [number(first)] + ([number(last)] if last else [])
        if any(v is None or not low <= v <= high for v in values):
            return False
        if last and values[0] > values[1]:
            return False
    return True


def cron_command(entry: str) -> str:
    """The command of a cron entry, as the shell will get it (`\\%` is a literal %)."""
    return entry.split(None, 5)[5].replace("\\%", "%")


def gitlab_jobs() -> dict[str, dict]:
    config = yaml.safe_load(GITLAB.read_text())
    return {name: job for name, job in config.items() if isinstance(job, dict) and ("script" in job or "extends" in job)}


def merged_job(name: str) -> dict:
    """A GitLab job with its `extends` template merged in (one level, as this file uses it)."""
    config = yaml.safe_load(GITLAB.read_text())
    job = dict(config[name])
    parent = job.pop("extends", None)
    return {**config[parent], **job} if parent else job


# --------------------------------------------------------------------------- the Slurm script

def test_assets_exist() -> None:
    for path in (*SCRIPT_ASSETS, ACCEPT_DOC):
        assert path.is_file(), f"missing {path.relative_to(REPO)}"


def test_sbatch_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_sbatch_header_and_safety() -> None:
    text = SBATCH.read_text()
    lines = text.splitlines()
    assert lines[0] in ("#!/bin/bash", "#!/usr/bin/env bash")
    # sbatch stops reading #SBATCH directives at the first command: they must all come before it.
    first_command = next(i for i, line in enumerate(lines[1:], 1) if line.strip() and not line.startswith("#"))
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert directives and max(directives) < first_command
    assert "set -euo pipefail" in lines[first_command]
    assert re.search(r"^#SBATCH --time=", text, re.M), "a job time limit, so a hung night ends"


def test_sbatch_runs_accept_under_its_documented_options() -> None:
    text = SBATCH.read_text()
    assert any(_SRUN_COMMAND.search(line) for line in logical_lines(text)), "the script runs steps with srun"
    calls = [options for sub, options in accept_calls(text) if sub == ""]
    assert len(calls) == 1, "exactly one `ai-ready accept` run per night"
    for option in SBATCH_ACCEPT_OPTIONS:
        assert option in calls[0], f"the nightly run does not pass {option}"


def test_sbatch_steps_are_time_limited() -> None:
    """Every srun the script runs itself, and the accept run, has a time limit (srun --time, timeout).
    The launcher it hands to the suite has none: accept stops each benchmark at the suite's timeout."""
    commands = 0
    for line in logical_lines(SBATCH.read_text()):
        if line.lstrip().startswith("#"):
            continue
        code = line.split(" #", 1)[0]
        if _SRUN_COMMAND.search(code):
            commands += 1
            assert re.search(r"--time[= ]", code), f"srun without --time: {line.strip()}"
        match = _ACCEPT_CALL.search(code)
        if match and not code[: match.start()].count('"') % 2:
            assert re.search(r"\btimeout\b.*\bai-ready accept\b", code), f"accept without a time limit: {line.strip()}"
    assert commands >= 1


def test_sbatch_documents_its_variables() -> None:
    """Every AI_READY_* variable the script reads is described in its header comment and in the guide."""
    text = SBATCH.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    used = set(re.findall(r"\$\{?(AI_READY_[A-Z_]+)", text))
    assert used, "the script is configured through AI_READY_* variables"
    guide = ACCEPT_DOC.read_text()
    for name in sorted(used):
        assert name in header, f"{name} is not documented at the top of {SBATCH.name}"
        assert name in guide, f"{name} is not in docs/acceptance.md"


def test_sbatch_setup_error_and_exit_code(tmp_path: Path) -> None:
    """Outside Slurm, with nothing set up, the script stops at once with exit 2 and says why."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AI_READY_OUTPUT_ROOT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(SBATCH)], capture_output=True, text=True, env=env, check=False,
                            timeout=60)
    assert result.returncode == EXIT_SETUP, result.stdout + result.stderr
    assert "SLURM" in result.stderr or "srun" in result.stderr or "ai-ready" in result.stderr


@pytest.mark.parametrize("asset", SCRIPT_ASSETS, ids=lambda p: p.name)
def test_ci_assets_only_use_options_accept_takes(asset: Path) -> None:
    try:
        importlib.import_module("ai_ready.cli.accept")
    except ImportError as exc:
        pytest.skip(f"ai_ready.cli.accept cannot be imported yet ({exc}); the option check needs the command")
    accepted = {"": help_options("accept"), "baseline": help_options("accept", "baseline")}
    calls = accept_calls(asset.read_text())
    for sub, options in calls:
        unknown = sorted(set(options) - accepted[sub])
        assert not unknown, (f"{asset.name}: `ai-ready accept {sub}` is given {unknown}, which "
                             f"`ai-ready accept {sub} --help` does not list")


# --------------------------------------------------------------------------- GitLab

def test_gitlab_pipeline_parses_and_is_scheduled() -> None:
    config = yaml.safe_load(GITLAB.read_text())
    rules = config["workflow"]["rules"]
    assert any('$CI_PIPELINE_SOURCE == "schedule"' in rule.get("if", "") for rule in rules)
    assert config["stages"]


def test_gitlab_nightly_jobs_publish_junit_report_and_prometheus() -> None:
    nightly = [name for name, job in gitlab_jobs().items()
               if "nightly.sbatch" in " ".join(merged_job(name).get("script", []))]
    assert nightly, "a job that runs ci/slurm/nightly.sbatch"
    for name in nightly:
        job = merged_job(name)
        artifacts = job["artifacts"]
        assert artifacts["when"] == "always", f"{name}: a failed night's results must be kept"
        junit = artifacts["reports"]["junit"]
        assert junit.endswith(".xml")
        folder = junit.rsplit("/", 1)[0] + "/"
        assert folder in artifacts["paths"], f"{name}: the report and Prometheus file live in {folder}"
        assert job["allow_failure"] == {"exit_codes": EXIT_FAILED}, "exit 1 warns, exit 2 fails"
        assert job.get("tags"), f"{name}: must run on a runner that reaches Slurm"


def test_gitlab_output_folder_matches_artifacts() -> None:
    config = yaml.safe_load(GITLAB.read_text())
    out = config["variables"]["AI_READY_OUTPUT_DIR"]
    assert out == "$CI_PROJECT_DIR/nightly"
    assert merged_job("nightly-sbatch")["artifacts"]["reports"]["junit"] == "nightly/junit.xml"


def test_gitlab_shell_lines_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); the GitLab script lines are unchecked")
    for name in gitlab_jobs():
        job = merged_job(name)
        lines = [*job.get("before_script", []), *job.get("script", []), *job.get("after_script", [])]
        script = tmp_path / f"{name}.sh"
        script.write_text("#!/bin/bash\n" + "\n".join(lines) + "\n")
        # SC2086: AI_READY_SBATCH_ARGS is split into several sbatch options on purpose.
        # SC1090: `source "$AI_READY_SETUP"` is the site's own file, unknown here by design.
        result = subprocess.run([shellcheck, "-s", "bash", "-e", "SC2086,SC1090", str(script)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}:\n{result.stdout}"


# --------------------------------------------------------------------------- Jenkins

def test_jenkinsfile_runs_the_script_and_publishes() -> None:
    text = JENKINSFILE.read_text()
    assert re.search(r"^pipeline\s*\{", text, re.M), "a declarative pipeline"
    assert re.search(r"triggers\s*\{\s*cron\('[^']+'\)", text), "a nightly cron trigger"
    cron = re.search(r"cron\('([^']+)'\)", text).group(1).split()
    assert len(cron) == 5
    assert "sbatch --wait" in text and "ci/slurm/nightly.sbatch" in text
    assert re.search(r"\bjunit\s*\(?\s*(testResults:\s*)?'nightly/junit\.xml'", text)
    assert "publishHTML" in text and "archiveArtifacts" in text
    assert "returnStatus: true" in text
    assert re.search(r"rc == 1\)\s*\{\s*unstable\(", text), "exit 1 marks the build unstable"
    assert re.search(r"rc != 0\)\s*\{\s*error\(", text), "exit 2 (and others) fail the build"
    assert text.count("{") == text.count("}"), "unbalanced braces"


# --------------------------------------------------------------------------- cron

def test_cron_entries_are_valid() -> None:
    entries = cron_entries(CRON.read_text())
    assert entries, "at least one cron entry"
    for entry in entries:
        fields = entry.split(None, 5)
        assert len(fields) == 6, f"not 5 time fields and a command: {entry}"
        for index, field in enumerate(fields[:5]):
            assert cron_field_ok(field, index), f"bad cron field {index + 1} '{field}' in: {entry}"
        command = fields[5]
        assert not re.search(r"(?<!\\)%", command), f"unescaped % (cron turns it into a newline): {entry}"


def test_cron_nightly_entry_locks_logs_and_reports() -> None:
    nightly = [e for e in cron_entries(CRON.read_text()) if "nightly.sbatch" in e]
    assert len(nightly) == 1
    command = cron_command(nightly[0])
    assert "flock -n" in command, "no overlapping nights"
    assert "sbatch --wait" in command
    assert ">>" in command and "2>&1" in command, "a log per night"
    assert "|| echo" in command and "$?" in command, "a failing night says its exit code (cron mails it)"


def test_cron_commands_pass_bash_and_shellcheck(tmp_path: Path) -> None:
    for number, entry in enumerate(cron_entries(CRON.read_text())):
        script = tmp_path / f"cron-{number}.sh"
        script.write_text("#!/bin/bash\n" + cron_command(entry) + "\n")
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{entry}\n{result.stderr}"
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); only bash -n was run")
    for script in sorted(tmp_path.glob("cron-*.sh")):
        result = subprocess.run([shellcheck, "-s", "bash", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{script.read_text()}\n{result.stdout}"


# --------------------------------------------------------------------------- shellcheck on the script

def test_sbatch_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); the batch script is unchecked")
    result = subprocess.run([shellcheck, "-s", "bash", str(SBATCH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


# --------------------------------------------------------------------------- the guide

def test_guide_names_every_asset_and_exit_code() -> None:
    guide = ACCEPT_DOC.read_text()
    for path in SCRIPT_ASSETS:
        assert str(path.relative_to(REPO)) in guide, f"docs/acceptance.md does not explain {path.name}"
    for code in ("0", str(EXIT_FAILED), str(EXIT_SETUP)):
        assert re.search(rf"\|\s*`?{code}`?\s*\|", guide), f"exit code {code} missing from the guide's table"


def test_guide_commands_use_options_accept_takes() -> None:
    try:
        importlib.import_module("ai_ready.cli.accept")
    except ImportError as exc:
        pytest.skip(f"ai_ready.cli.accept cannot be imported yet ({exc}); the option check needs the command")
    accepted = {"": help_options("accept"), "baseline": help_options("accept", "baseline")}
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", ACCEPT_DOC.read_text(), re.S)
    calls = [call for block in blocks for call in accept_calls(block)]
    assert calls, "the guide shows `ai-ready accept` commands"
    for sub, options in calls:
        unknown = sorted(set(options) - accepted[sub])
        assert not unknown, f"docs/acceptance.md: `ai-ready accept {sub}` with {unknown}, not in its --help"




# --------------------------------------------------------------------------- the script, run against stubs

STUB_SRUN = r"""#!/bin/bash
# srun stand-in: log the options; write the files --output/--error name (node "node1"); exit STUB_SRUN_RC.
args="$*"
echo "srun ${args//$'\n'/ }" >> "$STUB_LOG"
for arg in "$@"; do
    case $arg in
        --output=*) file=${arg#--output=}; echo '{}' > "${file//%N/node1}" ;;
        --error=*) file=${arg#--error=}; printf '%s' "${STUB_SRUN_ERR:-}" > "${file//%N/node1}" ;;
    esac
done
exit "${STUB_SRUN_RC:-0}"
"""
STUB_SQUEUE = """#!/bin/bash
echo "${STUB_TIME_LEFT:-3:00:00}"
"""
STUB_AI_READY = r"""#!/bin/bash
# ai-ready stand-in: log the command line and SLURM_NTASKS; `accept` writes its outputs and exits STUB_ACCEPT_RC.
echo "ai-ready $* SLURM_NTASKS=${SLURM_NTASKS-unset}" >> "$STUB_LOG"
[[ ${1:-} == accept ]] || exit 0
while (( $# )); do
    case $1 in --junit) junit=$2 ;; --report) report=$2 ;; --prometheus) prom=$2 ;; esac
    shift
done
echo "accept: running"
sleep "${STUB_ACCEPT_SLEEP:-0}"
if [[ ${STUB_ACCEPT_WRITES:-1} == 1 ]]; then
    echo '<testsuites><testsuite name="stub" tests="0"/></testsuites>' > "$junit"
    echo '<html></html>' > "$report"
    echo 'ai_ready_accept_failed_cases{system="x",suite="y"} 0' > "$prom"
fi
exit "${STUB_ACCEPT_RC:-0}"
"""
NODES, GPUS, CPUS = 2, 4, 64


def run_sbatch(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The batch script as Slurm would run it on the first node of a 2-node job with 4 GPUs per node,
    with srun, squeue and ai-ready replaced by stand-ins; returns the result and the commands logged."""
    import os
    import sys

    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name, text in (("srun", STUB_SRUN), ("squeue", STUB_SQUEUE), ("ai-ready", STUB_AI_READY)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    log = tmp_path / "commands.log"
    log.unlink(missing_ok=True)
    base = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(tmp_path), "STUB_LOG": str(log),
            "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": str(NODES), "SLURM_JOB_NODELIST": "node[1-2]",
            "SLURM_JOB_PARTITION": "gpu", "SLURM_GPUS_ON_NODE": str(GPUS), "SLURM_CPUS_ON_NODE": str(CPUS),
            "SLURM_NTASKS": str(NODES), "SLURM_PROCID": "0", "AI_READY_PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "suite"), os.environ.get("PYTHONPATH", "")) if p)}
    result = subprocess.run(["bash", str(SBATCH)], capture_output=True, text=True, env={**base, **env}, check=False,
                            timeout=120)
    commands = log.read_text().splitlines() if log.exists() else []
    return result, commands


def accept_argv(commands: list[str]) -> list[str]:
    lines = [c for c in commands if c.startswith("ai-ready accept ")]
    assert len(lines) == 1, commands
    return lines[0].split()


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def night_folder(tmp_path: Path) -> Path:
    folders = [p for p in (tmp_path / "ai-ready-nightly" / "local_gpu").iterdir() if p.name != "latest"]
    assert len(folders) == 1
    return folders[0]


def test_sbatch_night_runs_preflight_then_accept_over_all_nodes(tmp_path: Path) -> None:
    from ai_ready.accept.suite import Target, load_suite

    result, commands = run_sbatch(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = night_folder(tmp_path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d{6}-job4242", out.name)
    assert (out.parent / "latest").resolve() == out.resolve()
    assert (out / "exit-code").read_text().strip() == "0"
    assert (out / "nodes" / "node1.json").is_file() and not (out / "nodes" / "node1.err").exists()
    assert "accept: running" in (out / "accept.log").read_text()

    preflight, mpi_check = [c for c in commands if c.startswith("srun ")]
    assert "--ntasks-per-node=1" in preflight and "--time=5" in preflight and "info --json" in preflight
    assert f"--ntasks={NODES * GPUS}" in mpi_check and "--time=5" in mpi_check and "mpi4py" in mpi_check

    argv = accept_argv(commands)
    assert argv[-1] == "SLURM_NTASKS=unset", "the job's task count must not reach accept's benchmarks"
    assert option(argv, "--system") == "local:gpu"
    assert option(argv, "--db") == f"sqlite:///{tmp_path}/ai-ready-nightly/history.sqlite"
    for flag, name in (("--junit", "junit.xml"), ("--report", "report.html"), ("--prometheus", "accept.prom"),
                       ("--results", "results")):
        assert option(argv, flag) == str(out / name)
    assert "--baseline" not in argv
    # The packaged suite names no launcher for this system: the copy runs parallel entries under srun.
    suite_file = Path(option(argv, "--suite"))
    assert suite_file == out / "suite.yaml"
    suite = load_suite(str(suite_file), known_systems=["local"])
    assert suite.name == "full"
    assert suite.launcher_for(Target("local", "gpu")) == (
        "srun", f"--nodes={NODES}", f"--ntasks={NODES * GPUS}", f"--ntasks-per-node={GPUS}",
        f"--cpus-per-task={CPUS // GPUS}", "--kill-on-bad-exit=1")


@pytest.mark.parametrize("code", [EXIT_FAILED, 0])
def test_sbatch_keeps_accepts_exit_code_and_junit(tmp_path: Path, code: int) -> None:
    result, _ = run_sbatch(tmp_path, STUB_ACCEPT_RC=str(code), AI_READY_BASELINE="good-nights")
    assert result.returncode == code, result.stderr
    out = night_folder(tmp_path)
    assert "stub" in (out / "junit.xml").read_text(), "accept's own JUnit file is kept as it is"
    assert (out / "exit-code").read_text().strip() == str(code)


def test_sbatch_passes_baseline_and_database(tmp_path: Path) -> None:
    result, commands = run_sbatch(tmp_path, AI_READY_BASELINE="good-nights",
                                  AI_READY_DB="postgresql://acc:s3cret@db.example.org/accept")
    assert result.returncode == 0, result.stderr
    argv = accept_argv(commands)
    assert option(argv, "--baseline") == "good-nights"
    assert option(argv, "--db") == "postgresql://acc:s3cret@db.example.org/accept"
    assert "s3cret" not in result.stdout + result.stderr, "the password is never printed"


def test_sbatch_setup_error_writes_a_junit_failure(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    result, _ = run_sbatch(tmp_path, STUB_ACCEPT_RC=str(EXIT_SETUP), STUB_ACCEPT_WRITES="0")
    assert result.returncode == EXIT_SETUP
    failures = ET.parse(night_folder(tmp_path) / "junit.xml").getroot().findall(".//failure")
    assert len(failures) == 1 and "setup error" in failures[0].get("message", "")
    assert "accept: running" in (failures[0].text or ""), "the log's tail is in the failure"


def test_sbatch_stops_a_hung_accept(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    result, _ = run_sbatch(tmp_path, AI_READY_TIMEOUT="1", STUB_ACCEPT_SLEEP="60", STUB_ACCEPT_WRITES="0")
    assert result.returncode == 124, result.stdout + result.stderr
    failures = ET.parse(night_folder(tmp_path) / "junit.xml").getroot().findall(".//failure")
    assert "outlasted" in failures[0].get("message", "")


def test_sbatch_timeout_follows_the_jobs_time_left(tmp_path: Path) -> None:
    result, _ = run_sbatch(tmp_path, STUB_TIME_LEFT="1-00:20:00")
    assert result.returncode == 0
    assert f"may run {24 * 3600 + 20 * 60 - 600} s" in result.stdout


def test_sbatch_preflight_failure_is_a_setup_error(tmp_path: Path) -> None:
    result, commands = run_sbatch(tmp_path, STUB_SRUN_RC="1", STUB_SRUN_ERR="libcuda.so.1: cannot open")
    assert result.returncode == EXIT_SETUP
    assert "preflight" in result.stderr and "node1" in result.stderr
    assert not any(c.startswith("ai-ready accept") for c in commands), "no night without every node"
    assert (night_folder(tmp_path) / "junit.xml").is_file()


def test_sbatch_keeps_the_suites_own_launcher(tmp_path: Path) -> None:
    from ai_ready.accept.suite import SUITES_DIR

    data = yaml.safe_load((SUITES_DIR / "quick.yaml").read_text())
    data["launcher"] = {"local": ["mpiexec", "-n", "2"]}
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump(data))
    result, commands = run_sbatch(tmp_path, AI_READY_SUITE=str(own))
    assert result.returncode == 0, result.stderr
    assert option(accept_argv(commands), "--suite") == str(own)
    result, commands = run_sbatch(tmp_path, AI_READY_LAUNCHER="suite", AI_READY_OUTPUT_DIR=str(tmp_path / "ci"))
    assert result.returncode == 0, result.stderr
    assert option(accept_argv(commands), "--suite") == "full"
    assert option(accept_argv(commands), "--junit") == str(tmp_path / "ci" / "junit.xml")


def test_sbatch_refuses_a_folder_that_holds_a_night(tmp_path: Path) -> None:
    folder = tmp_path / "ci"
    folder.mkdir()
    (folder / "junit.xml").write_text("last night")
    result, commands = run_sbatch(tmp_path, AI_READY_OUTPUT_DIR=str(folder))
    assert result.returncode == EXIT_SETUP and "already holds a night" in result.stderr
    assert (folder / "junit.xml").read_text() == "last night"
    assert not commands
