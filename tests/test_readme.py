"""The README's examples are run: every ``python`` block, and every ``console`` block's commands
with their shown output, digests included (a line ``...`` stands for any further lines)."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_broken_packs import BROKEN, README_CASE, _files, broken_pack

from crs_rules.cli import run

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README) if lang == language]


def test_the_readme_has_examples_to_run() -> None:
    assert len(blocks("python")) >= 2
    assert len(blocks("console")) >= 1


@pytest.mark.parametrize("code", blocks("python"), ids=lambda c: c.splitlines()[0][:40])
def test_each_python_example_runs(code: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})


def _sessions(body: str) -> list[tuple[str, list[str]]]:
    sessions: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            sessions.append((line[2:], []))
        elif sessions:
            sessions[-1][1].append(line)
    return sessions


CONSOLE = [session for body in blocks("console") for session in _sessions(body)]


@pytest.mark.parametrize("command,expected", CONSOLE, ids=[c for c, _ in CONSOLE])
def test_each_console_example_prints_what_the_readme_shows(
    command: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)
    assert words[0] == "crs-rules"
    out, err = io.StringIO(), io.StringIO()
    run(words[1:], out, err)
    actual = (out.getvalue() + err.getvalue()).splitlines()
    shown = expected
    if "..." in shown:
        cut = shown.index("...")
        assert actual[:cut] == shown[:cut]
    else:
        assert actual == shown


WALKTHROUGH = README[README.index("## Changing the protocol"):README.index("### The safety envelope")]
STEP = re.compile(r"```(shell-session|diff)\n(.*?)```", re.S)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def apply_diff(body: str) -> None:
    """Apply a README diff block: ``--- file``/``+++ file`` headers, hunks separated by ``@@``, each
    a run of context (space), removed (-) and added (+) lines; the old run must be written exactly
    once in the file."""
    hunks: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("--- "):
            continue
        if line.startswith("+++ "):
            hunks.append((line[4:], []))
        elif line.startswith("@@"):
            hunks.append((hunks[-1][0], []))
        else:
            hunks[-1][1].append(line)
    for name, lines in hunks:
        old = "".join(line[1:] + "\n" for line in lines if line[:1] in (" ", "-"))
        new = "".join(line[1:] + "\n" for line in lines if line[:1] in (" ", "+"))
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} is not written exactly once in {name}"
        path.write_text(text.replace(old, new), encoding="utf-8")


def assert_prints(expected: list[str], actual: list[str], *, any_digest: bool = False) -> None:
    """The lines shown (a line ``...`` stands for any further lines). With ``any_digest`` a digest
    stands for any digest: a released one covers the changelog's date (the day the test runs)."""
    if any_digest:
        expected = [DIGEST.sub("sha256:<digest>", line) for line in expected]
        actual = [DIGEST.sub("sha256:<digest>", line) for line in actual]
    if "..." in expected:
        cut = expected.index("...")
        assert actual[:cut] == expected[:cut]
    else:
        assert actual == expected


def run_walkthrough(folder: Path, population: int | None) -> dict[str, str]:
    """Every step of "Changing the protocol", literally, on a copy of the shipped pack in
    ``folder`` (the working directory); ``population`` replaces the diff's default size. Returns the
    output of each command."""
    shutil.copytree(ROOT / "rules", folder / "rules")
    outputs: dict[str, str] = {}
    released = False  # before the release every digest is shown as it is; after it, it covers today's date
    steps = STEP.findall(WALKTHROUGH)
    assert [kind for kind, _ in steps].count("diff") >= 3
    for kind, body in steps:
        if kind == "diff":
            apply_diff(body)
            continue
        for command, expected in _sessions(body):
            words = shlex.split(command)
            assert words[0] == "crs-rules"
            if words[1] == "diff" and population is not None:
                words += ["--population", str(population)]
            out, err = io.StringIO(), io.StringIO()
            code = run(words[1:], out, err)
            actual = (out.getvalue() + err.getvalue()).splitlines()
            released = released or words[1] == "release"
            assert_prints(expected, actual, any_digest=released)
            failing = words[1] == "test" and any(line.startswith("FAIL ") for line in expected)
            assert code == (1 if failing else 0), (command, err.getvalue())
            outputs[command] = out.getvalue()
    return outputs


def test_the_changing_the_protocol_walkthrough_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_walkthrough(tmp_path, population=20)
    released = (tmp_path / "rules-next" / "manifest.yaml").read_text(encoding="utf-8")
    assert 'version: "3.1.0"' in released and "status: active" in released
    assert 'effective_date: "2027-02-01"' in released and "draft_of" not in released


def test_the_walkthrough_without_its_deviation_fails_trace_saying_how_to_declare_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    assert run(["draft", "rules", "rules-next"], io.StringIO(), io.StringIO()) == 0
    dosing = tmp_path / "rules-next" / "dosing.yaml"
    dosing.write_text(dosing.read_text(encoding="utf-8").replace("max_dose_mg: 800", "max_dose_mg: 700"), encoding="utf-8")
    err = io.StringIO()
    assert run(["trace", "--check", "rules-next"], io.StringIO(), err) == 1
    first = err.getvalue().splitlines()[0]
    assert first.startswith("S15: the number 800 mg is found 0 times among grade2_up.tocilizumab, dosing.tocilizumab")
    assert "declare it in statements.yaml, deviations: [{id: D.., statement: S15, instead: ..., reason: ..., " in first
    err = io.StringIO()
    note = "Tocilizumab: no single dose above 700 mg."
    assert run(["release", "rules-next", "--bump", "minor", "--note", note], io.StringIO(), err) == 1
    assert any(line.startswith("traceability: S15: the number 800 mg is found 0 times") for line in err.getvalue().splitlines())


def shown_diff() -> list[str]:
    """The output the walkthrough shows for the full ``crs-rules diff rules rules-next``."""
    block = next(body for body in blocks("text") if "$ crs-rules diff rules rules-next" in body)
    return [line for line in block.split("$ crs-rules diff rules rules-next\n", 1)[1].splitlines() if line != "..."]


def assert_shown_in_order(shown: list[str], output: str) -> None:
    seconds = re.compile(r"\d+(\.\d+)? s in all")
    actual = [seconds.sub("N s in all", line) for line in output.splitlines()]
    remaining = iter(actual)
    for line in (seconds.sub("N s in all", line) for line in shown):
        assert any(candidate == line for candidate in remaining), f"not in the real output, in order: {line!r}"


@pytest.mark.slow
def test_the_changing_the_protocol_walkthrough_shows_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The steps of "Changing the protocol", done for real, and the diff on the default population.
    monkeypatch.chdir(tmp_path)
    outputs = run_walkthrough(tmp_path, population=None)
    assert_shown_in_order(shown_diff(), outputs["crs-rules diff rules rules-next"])


@pytest.mark.slow  # the slow test above checks the same lines, and the rest of the shown output
def test_the_changing_the_protocol_walkthrough_shows_the_real_pack_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same steps; on a small population, only what does not depend on it: the pack's changes.
    monkeypatch.chdir(tmp_path)
    outputs = run_walkthrough(tmp_path, population=20)
    shown = shown_diff()
    pack_part = shown[: next(i for i, line in enumerate(shown) if line.startswith("What that does to patients"))]
    assert len(pack_part) >= 2
    assert_shown_in_order(pack_part, outputs["crs-rules diff rules rules-next"])


def _repository_copy(target: Path) -> None:
    """The project as checked in (package, tests, schemas, rules), without the environment, caches
    or version control; links (the package's data links to rules/ and schemas/) stay links."""
    skipped = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
               ".hypothesis"}
    shutil.copytree(ROOT, target, symlinks=True,
                    ignore=lambda folder, names: {n for n in names if n in skipped or n.endswith(".egg-info")})


@pytest.mark.slow
def test_the_suite_passes_with_the_walkthrough_s_released_pack_in_place_of_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A legitimate change must not break a Python test: the walkthrough's released 700 mg pack
    # replaces rules/ in a copy of the project, and the fast suite runs there (the README's own
    # examples aside: they show the shipped pack's version and digest, literally).
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run_walkthrough(work, population=300)
    project = tmp_path / "project"
    _repository_copy(project)
    shutil.rmtree(project / "rules")
    shutil.copytree(work / "rules-next", project / "rules")
    assert 'version: "3.1.0"' in (project / "rules" / "manifest.yaml").read_text(encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(project), "CRS_RULES_PACK": ""}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-m", "not slow", "-p", "no:cacheprovider",
         "--ignore", "tests/test_readme.py", "tests"],
        cwd=project, env=environment, capture_output=True, text=True, timeout=1800,
    )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    probe = subprocess.run([sys.executable, "-c", "import crs_rules, sys; sys.stdout.write(crs_rules.__file__)"],
                           cwd=project, env=environment, capture_output=True, text=True, timeout=120)
    assert probe.stdout.startswith(str(project))  # the copy was tested, not the clone


# The README shows `crs-rules validate tests/packs/broken/dose-over-cap` from a clone: that folder is
# the shipped pack with its patch (here, since it pins the shipped pack, as the README does).
def test_the_broken_pack_the_readme_shows_is_the_shipped_pack_with_its_patch(tmp_path: Path) -> None:
    expected = _files(broken_pack(README_CASE, tmp_path / README_CASE))
    assert _files(BROKEN / README_CASE) == expected, (
        f"tests/packs/broken/{README_CASE} is not rules/ with the patch {README_CASE}.yaml: "
        "rewrite it with `python tests/test_broken_packs.py` (and the README's example output)")
