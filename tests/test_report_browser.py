"""The full readiness report in a real browser: headless Chromium, driven by Playwright.

Every benchmark runs for real (quick sizes) on this machine, plus a profile and an extrapolation; the
report over all of them is opened in Debian's Chromium (never a downloaded browser). The page must raise
no console error, request nothing but itself, hold every part, stay under the size budget, print to a
PDF, and leave a screenshot and the PDF as test artifacts (``reports/test-artifacts/``, or
``$AI_READY_TEST_ARTIFACTS``) for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_cli

#: Parts a report over every kind of input holds, in page order.
ALL_PARTS = ("summary", "system", "job", "outlook", "recommendations", "sources", "appendix")
#: "Keep a typical report under 2 MB."
MAX_REPORT_BYTES = 2_000_000
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOSTILE = "<script>alert(1)</script>"


def _chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _artifacts() -> Path:
    folder = Path(os.environ.get("AI_READY_TEST_ARTIFACTS", REPO / "reports" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _ok(proc) -> None:  # noqa: ANN001 - subprocess.CompletedProcess
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Outputs of every benchmark, a training workload, a profile and two extrapolations (quick sizes)."""
    out = tmp_path_factory.mktemp("inputs")
    scratch = out / "scratch"
    scratch.mkdir()
    runs = {
        "gemm.json": ("bench", "gemm", "--quick"),
        "memory.json": ("bench", "memory", "--quick"),
        "kernels.json": ("bench", "kernels"),
        "io.json": ("bench", "io", "--quick", "--path", str(scratch)),
        "collectives.json": ("bench", "collectives", "--quick", "--ranks", "2", "--ops", "all_reduce,all_gather"),
        "train.json": ("train", "gpt", "--steps", "5", "--warmup-steps", "1"),
    }
    files = []
    for name, args in runs.items():
        _ok(run_cli("-q", *args, "-o", str(out / name), cwd=out, timeout=600))
        files.append(out / name)
    profile = json.loads((REPO / "tests" / "data" / "profile_myjob.json").read_text())
    profile["meta"]["profile"]["job"]["name"] = HOSTILE  # a user's job name reaches the page as text
    (out / "profile.json").write_text(json.dumps(profile))
    files.append(out / "profile.json")
    for system in ("jupiter-booster", "gigafactory-100k"):
        path = out / f"gpt3-{system}.json"
        _ok(run_cli("extrapolate", str(REPO / "examples" / "workloads" / "gpt3-175b.yaml"), "--system", system,
                    "--scaling", "-o", str(path), cwd=out, timeout=600))
        files.append(path)
    return files


@pytest.fixture(scope="module")
def report(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "full.html"
    _ok(run_cli("report", *map(str, inputs), "-o", str(path), "--title", f"Onboarding {HOSTILE}", timeout=600))
    return path


def test_full_report_is_small_and_holds_every_part(report: Path) -> None:
    html = report.read_text()
    assert report.stat().st_size < MAX_REPORT_BYTES, f"{report.stat().st_size} bytes"
    for part in ALL_PARTS:
        assert f'<section id="part-{part}"' in html, part
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_chromium_shows_the_report_offline_without_errors(report: Path) -> None:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
    artifacts = _artifacts()
    console: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as exc:  # noqa: BLE001 - a browser that cannot start here is a skip, said why
            pytest.skip(f"Chromium at {executable} does not start headless: {str(exc).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(report.as_uri(), wait_until="load")
            visible = page.evaluate(
                "() => [...document.querySelectorAll('section.part')].map(s => [s.id, s.offsetHeight > 0])")
            broken = page.evaluate(
                "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
            page.screenshot(path=str(artifacts / "report.png"), full_page=True)
            page.emulate_media(media="print")
            page.pdf(path=str(artifacts / "report.pdf"), format="A4", print_background=True)
        finally:
            browser.close()
    assert console == []
    assert requests == [report.as_uri()], requests  # the page itself and nothing else
    assert dialogs == []  # no script ran, hostile names included
    assert [part for part, shown in visible if shown] == [f"part-{p}" for p in ALL_PARTS]
    assert broken == []  # every chart is an inline image that decodes
    assert (artifacts / "report.png").stat().st_size > 0 and (artifacts / "report.pdf").stat().st_size > 0
