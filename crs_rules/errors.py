"""Errors as values.

Every stage reports what is wrong as :class:`Problem` values (file, line, column, the rule id or
input field concerned, what is wrong, what is expected) and raises them *together* in one
exception, so a pharmacist sees every mistake at once, sorted by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

__all__ = [
    "Problem",
    "CrsRulesError",
    "InvalidPackError",
    "InvalidInputError",
    "EngineError",
]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a pack file or an input, at a position.

    ``line`` and ``column`` are 1-based (0 when the whole file is concerned). ``subject`` is the
    rule id for a pack problem and the field path (``patient.weight_kg``) for an input problem;
    ``-`` when neither applies. ``path`` is where in the document the problem is (keys and list
    indexes) and ``check`` names what found it: a semantic check's id, or the JSON Schema keyword
    path that failed.
    """

    file: str
    line: int
    column: int
    subject: str
    message: str
    expected: str
    path: tuple[str | int, ...] = field(default=(), compare=False)
    check: str = field(default="", compare=False)

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.subject}: {self.message}"
        return f"{text}; {self.expected}" if self.expected else text


def _sorted_unique(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(set(problems)))


class CrsRulesError(Exception):
    """Base class of every error this library raises on purpose."""


class _ProblemsError(CrsRulesError, ValueError):
    """An error that carries its problems as values, sorted by file and position."""

    def __init__(self, problems: Iterable[Problem], summary: str) -> None:
        self.problems: tuple[Problem, ...] = _sorted_unique(problems)
        super().__init__(summary + "\n" + "\n".join(str(p) for p in self.problems))


class InvalidPackError(_ProblemsError):
    """A rule pack is not valid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = _sorted_unique(problems)
        super().__init__(problems, f"invalid rule pack ({len(problems)} problem(s))")


class InvalidInputError(_ProblemsError):
    """A patient state is not valid; ``problems`` names each bad field and what was expected."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = _sorted_unique(problems)
        super().__init__(problems, f"invalid patient input ({len(problems)} problem(s))")


class EngineError(CrsRulesError, RuntimeError):
    """The rule engine failed or misbehaved; no decision was produced."""
