"""Broken packs: each case under tests/packs/broken is the shipped pack (a draft copy of ``rules/``)
with a small patch, so a case never drifts from the pack it breaks. ``crs-rules validate`` must
refuse the patched copy with exactly the problems the case lists, as a pharmacist sees them.

A case (``<name>.yaml``) holds ``mistake`` (what is wrong, in words), ``edits`` (each one replaces
``old`` by ``new`` in ``file``: ``old`` written exactly once, or its first occurrence after
``after``, which is written exactly once), ``problems`` (each printed at the position of the text
``at`` names, its ``occurrence``-th one, followed by ``says``) and optionally ``lines`` (named line
numbers of texts, written ``{name}`` in ``says``; ``{pack}`` is the pack folder as given to the
command). Run this file (``python tests/test_broken_packs.py``) to rewrite the copy the README
shows, ``tests/packs/broken/dose-over-cap/``, after the shipped pack changed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from crs_rules.cli import run

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when run as a script

from packing import draft_copy, position  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "packs" / "broken"
CASES = sorted(path.stem for path in BROKEN.glob("*.yaml"))
REQUIRED = {
    "wrong-type",
    "unknown-action",
    "dangling-citation",
    "missing-limit",
    "duplicate-id",
    "definition-id",
    "overlapping-grades",
    "dose-over-cap",
    "yaml-duplicate-key",
    "unknown-fact",
    "several-mistakes",
}
#: The case the README shows from a clone (``crs-rules validate tests/packs/broken/dose-over-cap``).
README_CASE = "dose-over-cap"
CONSOLE_SCRIPT = Path(sys.executable).parent / "crs-rules"


def case_data(case: str) -> dict[str, Any]:
    data = yaml.safe_load((BROKEN / f"{case}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and set(data) <= {"mistake", "edits", "lines", "problems"}, case
    assert data["mistake"] and data["edits"] and data["problems"], case
    return data


def apply_edit(folder: Path, edit: dict[str, Any]) -> None:
    path = folder / edit["file"]
    text = path.read_text(encoding="utf-8")
    start = 0
    if "after" in edit:
        assert text.count(edit["after"]) == 1, f"{edit['after']!r} is not written exactly once in {edit['file']}"
        start = text.index(edit["after"]) + len(edit["after"])
    else:
        assert text.count(edit["old"]) == 1, f"{edit['old']!r} is not written exactly once in {edit['file']}"
    index = text.index(edit["old"], start)
    path.write_text(text[:index] + edit["new"] + text[index + len(edit["old"]):], encoding="utf-8")


def broken_pack(case: str, folder: Path) -> Path:
    """The shipped pack as a draft in ``folder`` (its scenarios left out), with the case's edits."""
    draft_copy(folder)
    shutil.rmtree(folder / "scenarios")
    for edit in case_data(case)["edits"]:
        apply_edit(folder, edit)
    return folder


def expected_lines(case: str, folder: Path, shown: str) -> list[str]:
    """The problems ``validate`` must print for the patched copy in ``folder``, given as ``shown``."""
    data = case_data(case)

    def place(at: dict[str, Any]) -> tuple[int, int]:
        text = (folder / at["file"]).read_text(encoding="utf-8")
        return position(text, at["text"], at.get("occurrence", 1))

    names = {name: str(place(at)[0]) for name, at in (data.get("lines") or {}).items()}
    lines = []
    for problem in data["problems"]:
        line, column = place(problem["at"])
        says = problem["says"].replace("{pack}", shown)
        for name, number in names.items():
            says = says.replace("{" + name + "}", number)
        lines.append(f"{shown}/{problem['at']['file']}:{line}:{column}: {says}")
    return lines


def summary(count: int) -> str:
    return f"{count} problem(s): invalid rule pack"


def test_every_required_case_is_present() -> None:
    assert REQUIRED <= set(CASES), sorted(REQUIRED - set(CASES))


def test_the_unedited_draft_copy_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # So that the problems of a case are its edits' only.
    monkeypatch.chdir(tmp_path)
    draft_copy(tmp_path / "pack")
    out, err = io.StringIO(), io.StringIO()
    assert run(["validate", "pack"], out, err) == 0, err.getvalue()
    assert out.getvalue().startswith("OK ")


@pytest.mark.parametrize("case", CASES)
def test_each_edit_changes_the_pack(case: str, tmp_path: Path) -> None:
    folder = broken_pack(case, tmp_path / case)
    for edit in case_data(case)["edits"]:
        assert edit["old"] != edit["new"]
        assert (folder / edit["file"]).read_text(encoding="utf-8") != (ROOT / "rules" / edit["file"]).read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_validate_prints_exactly_the_expected_problems(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    broken_pack(case, tmp_path / case)
    expected = expected_lines(case, tmp_path / case, case)
    out, err = io.StringIO(), io.StringIO()
    code = run(["validate", case], out, err)
    assert code == 1
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [*expected, summary(len(expected))]
    assert "Traceback" not in err.getvalue()


def test_several_mistakes_are_all_reported_across_two_files(tmp_path: Path) -> None:
    lines = expected_lines("several-mistakes", broken_pack("several-mistakes", tmp_path / "pack"), "pack")
    files = {Path(line.split(":", 1)[0]).name for line in lines}
    assert len(lines) == 3
    assert files == {"actions.yaml", "grading.yaml"}


@pytest.mark.parametrize("case", ["several-mistakes", "yaml-duplicate-key"])
def test_the_installed_command_refuses_a_broken_pack_without_traceback(case: str, tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.is_file(), f"the crs-rules console script is not installed next to {sys.executable}"
    broken_pack(case, tmp_path / case)
    result = subprocess.run([str(CONSOLE_SCRIPT), "validate", case], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    expected = expected_lines(case, tmp_path / case, case)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [*expected, summary(len(expected))]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


if __name__ == "__main__":
    target = BROKEN / README_CASE
    shutil.rmtree(target, ignore_errors=True)
    broken_pack(README_CASE, target)
    print(f"wrote {target.relative_to(ROOT)}")
