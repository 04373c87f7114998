"""Every broken pack under tests/packs/broken is refused with exactly the problems its expected.txt
lists, as a pharmacist sees them from `crs-rules validate`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crs_rules.cli import run

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "packs" / "broken"
CASES = sorted(folder.name for folder in BROKEN.iterdir() if folder.is_dir())
REQUIRED = {
    "wrong-type",
    "unknown-action",
    "dangling-citation",
    "missing-limit",
    "duplicate-id",
    "overlapping-grades",
    "dose-over-cap",
    "yaml-duplicate-key",
    "unknown-fact",
    "several-mistakes",
}
PACK_FILES = sorted([*(p.name for p in (ROOT / "rules").iterdir() if p.suffix == ".yaml"), "seed-protocol.txt"])
POSITION = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): ")
CONSOLE_SCRIPT = Path(sys.executable).parent / "crs-rules"


def relative(case: str) -> str:
    return f"tests/packs/broken/{case}"


def expected_lines(case: str) -> list[str]:
    return (BROKEN / case / "expected.txt").read_text(encoding="utf-8").splitlines()


def summary(count: int) -> str:
    return f"{count} problem(s): invalid rule pack"


def test_every_required_case_is_present() -> None:
    assert REQUIRED <= set(CASES), sorted(REQUIRED - set(CASES))


@pytest.mark.parametrize("case", CASES)
def test_each_case_is_a_whole_draft_pack_without_digest(case: str) -> None:
    folder = BROKEN / case
    present = sorted(p.name for p in folder.iterdir() if p.name != "expected.txt")
    assert present == PACK_FILES
    manifest = (folder / "manifest.yaml").read_text(encoding="utf-8").splitlines()
    assert "status: draft" in manifest
    assert not any(line.startswith("digest:") for line in manifest)


@pytest.mark.parametrize("case", CASES)
def test_expected_problems_are_positioned_in_the_case_and_sorted(case: str) -> None:
    lines = expected_lines(case)
    assert lines, "expected.txt must list at least one problem"
    keys = []
    for line in lines:
        match = POSITION.match(line)
        assert match, f"not file:line:column: {line!r}"
        assert match["file"].startswith(relative(case) + "/"), line
        assert int(match["line"]) >= 1 and int(match["column"]) >= 1, line
        assert "; " in line[match.end():], f"no expectation after what is wrong: {line!r}"
        keys.append((match["file"], int(match["line"]), int(match["column"])))
    assert keys == sorted(keys)


@pytest.mark.parametrize("case", CASES)
def test_validate_prints_exactly_the_expected_problems(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out, err = io.StringIO(), io.StringIO()
    code = run(["validate", relative(case)], out, err)
    expected = expected_lines(case)
    assert code == 1
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [*expected, summary(len(expected))]
    assert "Traceback" not in err.getvalue()


def test_several_mistakes_are_all_reported_across_two_files() -> None:
    lines = expected_lines("several-mistakes")
    files = {Path(line.split(":", 1)[0]).name for line in lines}
    assert len(lines) == 3
    assert files == {"actions.yaml", "grading.yaml"}


@pytest.mark.parametrize("case", ["several-mistakes", "yaml-duplicate-key"])
def test_the_installed_command_refuses_a_broken_pack_without_traceback(case: str) -> None:
    assert CONSOLE_SCRIPT.is_file(), f"the crs-rules console script is not installed next to {sys.executable}"
    result = subprocess.run([str(CONSOLE_SCRIPT), "validate", relative(case)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    expected = expected_lines(case)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [*expected, summary(len(expected))]
