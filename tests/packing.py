"""Helpers for tests that copy the shipped pack, edit it and read the problems reported.

Plain functions, not fixtures (a fixture imported into a test module shadows the parameter of the
same name: ruff F811). A test module's own ``pack`` fixture calls :func:`draft_copy`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from conftest import seed_numbers_pack

from crs_rules.cli import run
from crs_rules.errors import InvalidPackError, Problem
from crs_rules.pack import load_protocol

ROOT = Path(__file__).resolve().parent.parent


def make_draft(folder: Path) -> None:
    """Make the pack in ``folder`` a draft without a recorded digest, so editing it raises no release problem."""
    manifest = folder / "manifest.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("digest:"))
    assert text.count("status: active\n") == 1
    manifest.write_text(text.replace("status: active\n", "status: draft\n"), encoding="utf-8")


@functools.cache
def _checked_draft() -> Path:
    """A draft copy of the pack under test (with the seed's numbers), made once per process and checked to be valid unedited."""
    parent = Path(tempfile.mkdtemp(prefix="crs-rules-draft-"))
    atexit.register(shutil.rmtree, parent, True)
    folder = parent / "pack"
    shutil.copytree(seed_numbers_pack(), folder)  # the pack under test, with the seed's numbers
    make_draft(folder)
    load_protocol(folder)  # the unedited copy is valid
    return folder


def draft_copy(folder: Path) -> Path:
    """A draft copy of the shipped pack (scenarios and seed included) in ``folder``, without its
    recorded digest; the unedited copy is valid."""
    shutil.copytree(_checked_draft(), folder)
    return folder


def edit(pack: Path, name: str, old: str, new: str) -> None:
    """Replace ``old``, which must be written exactly once in ``name``, by ``new``."""
    path = pack / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not written exactly once in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """(1-based line, 1-based column) of an occurrence of ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def at(pack: Path, name: str, needle: str, occurrence: int = 1) -> tuple[str, int, int]:
    """(file as reported, 1-based line, 1-based column) of an occurrence of ``needle``."""
    return (str(pack / name), *position((pack / name).read_text(encoding="utf-8"), needle, occurrence))


def problems(pack: Path) -> tuple[Problem, ...]:
    """The problems ``load_protocol`` refuses the pack with (it must refuse it)."""
    with pytest.raises(InvalidPackError) as caught:
        load_protocol(pack)
    return caught.value.problems


def only(pack: Path) -> Problem:
    """The one problem of the pack."""
    found = problems(pack)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def where(problem: Problem) -> tuple[str, int, int]:
    return problem.file, problem.line, problem.column


def cli(*arguments: str) -> tuple[int, str, str]:
    """``crs-rules ARGUMENTS`` in this process: (exit code, standard output, standard error); never a traceback."""
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()


class Hung(BaseException):
    """Not an OSError (as TimeoutError is), so that no handler of the code under test catches it."""


@contextlib.contextmanager
def hang_fails_after(seconds: int = 10) -> Iterator[None]:
    """Turn a hang (a FIFO opened for reading blocks forever) into a failure after ``seconds``."""
    def hung(signum: int, frame: object) -> None:
        raise Hung(f"hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
