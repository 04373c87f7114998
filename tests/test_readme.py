"""The README's examples are run: every ``python`` block, and every ``console`` block's commands
with their shown output (a line ``...`` stands for any further lines; digests may differ)."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest

from crs_rules.cli import run

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


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
    actual = [DIGEST.sub("sha256:<digest>", line) for line in (out.getvalue() + err.getvalue()).splitlines()]
    shown = [DIGEST.sub("sha256:<digest>", line) for line in expected]
    if "..." in shown:
        cut = shown.index("...")
        assert actual[:cut] == shown[:cut]
    else:
        assert actual == shown
