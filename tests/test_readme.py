"""The README's examples are run: every ``python`` block, and every ``console`` block's commands
with their shown output, digests included (a line ``...`` stands for any further lines)."""

from __future__ import annotations

import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

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


def released_next_pack(folder: Path) -> None:
    """The steps of "Changing the protocol" before the diff, done for real on copies of the shipped
    pack in ``folder`` (the working directory): edit, validate (fails), release."""
    shutil.copytree(ROOT / "rules", folder / "rules")
    shutil.copytree(ROOT / "rules", folder / "rules-next")
    dosing = folder / "rules-next" / "dosing.yaml"
    dosing.write_text(dosing.read_text(encoding="utf-8").replace("max_dose_mg: 800", "max_dose_mg: 700"), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert run(["validate", "rules-next"], out, err) == 1  # changed but not released
    assert "crs-rules release" in err.getvalue()
    note = "Tocilizumab: no single dose above 700 mg."
    assert run(["release", "rules-next", "--bump", "minor", "--note", note], io.StringIO(), io.StringIO()) == 0


def shown_diff() -> list[str]:
    """The output the walkthrough shows for ``crs-rules diff rules rules-next`` (up to ``...``)."""
    block = next(body for body in blocks("text") if "$ crs-rules diff rules rules-next" in body)
    shown = block.split("$ crs-rules diff rules rules-next\n", 1)[1].splitlines()
    return shown[: shown.index("...")] if "..." in shown else shown


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
    released_next_pack(tmp_path)
    out = io.StringIO()
    assert run(["diff", "rules", "rules-next"], out, io.StringIO()) == 0
    assert_shown_in_order(shown_diff(), out.getvalue())


def test_the_changing_the_protocol_walkthrough_shows_the_real_pack_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same steps; on a small population, only what does not depend on it: the pack's changes.
    monkeypatch.chdir(tmp_path)
    released_next_pack(tmp_path)
    out = io.StringIO()
    assert run(["diff", "rules", "rules-next", "--population", "300"], out, io.StringIO()) == 0
    shown = shown_diff()
    pack_part = shown[: next(i for i, line in enumerate(shown) if line.startswith("What that does to patients"))]
    assert len(pack_part) >= 3
    assert_shown_in_order(pack_part, out.getvalue())
