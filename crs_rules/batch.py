"""Evaluation over an NDJSON stream: one patient state per line in, one JSON line per patient out.

``crs-rules evaluate --ndjson FILE`` (``-`` for standard input) is a thin layer over
:func:`evaluate_ndjson`. Each non-blank input line is one JSON object (a patient state, as
``schemas/patient.schema.json`` describes); for each, in order, one line is written: the decision's
JSON (compact, the same object ``crs-rules evaluate --format json`` prints), or an error object::

    {"line": 3, "error": "invalid input", "problems": [{"file": "...", "line": 3, "column": 14, ...}]}

naming the input line (1-based) and every problem, each at that line and at its column within it.
Blank lines are skipped (they produce no output line). ``error`` is ``invalid input`` (the line is
not a valid patient state: it was not evaluated) or ``engine`` (the rule engine failed on it; no
partial decision). The stream is read one line at a time and decisions are written as they are
made, through :func:`~crs_rules.evaluation.evaluate_many`, so memory stays flat whatever its length.
A line longer than :data:`~crs_rules.patient.MAX_INPUT_BYTES` ends the reading: an error object
for it, and the rest of the stream is not read.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from typing import Protocol as _Protocol

from .errors import EngineError, InvalidInputError, Problem
from .evaluation import evaluate_many
from .model import Protocol
from .patient import MAX_INPUT_BYTES, PatientState, parse_patient_text

__all__ = ["BatchSummary", "Writer", "evaluate_ndjson"]


class Writer(_Protocol):
    """Where the lines go: anything with a text ``write``."""

    def write(self, text: str, /) -> int: ...


@dataclass(frozen=True)
class BatchSummary:
    """What a stream held: patients decided, lines in error, and whether reading stopped early."""

    decided: int
    errors: int
    stopped_early: bool = False


def _problem_dict(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "column": problem.column, "subject": problem.subject,
            "message": problem.message, "expected": problem.expected, "check": problem.check}


class _Lines:
    """The patient states of a binary stream, line by line; writes an error object for each bad line."""

    def __init__(self, stream: IO[bytes], source: str, out: Writer) -> None:
        self.stream, self.source, self.out = stream, source, out
        self.line = 0  # the line of the state last given out
        self.errors = 0
        self.stopped_early = False

    def error(self, line: int, kind: str, problems: list[Problem]) -> None:
        self.errors += 1
        entry = {"line": line, "error": kind, "problems": [_problem_dict(p) for p in problems]}
        self.out.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")

    def _problem(self, line: int, message: str, expected: str, check: str) -> Problem:
        return Problem(self.source, line, 0, "-", message, expected, check=check)

    def states(self) -> Iterator[PatientState]:
        number = 0
        while True:
            raw = self.stream.readline(MAX_INPUT_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_INPUT_BYTES and not raw.endswith(b"\n"):
                self.error(number, "invalid input", [self._problem(
                    number, f"is more than {MAX_INPUT_BYTES} bytes long", "one patient state per line, of at most "
                    f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB; the rest of the stream is not read", "input.size")])
                self.stopped_early = True
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.error(number, "invalid input", [self._problem(
                    number, f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at offset {exc.start})",
                    "UTF-8 text", "input.encoding")])
                continue
            text = text.removeprefix("\ufeff") if number == 1 else text
            if not text.strip():
                continue
            if not text.lstrip().startswith("{"):
                self.error(number, "invalid input", [self._problem(
                    number, "is not a JSON object", "one JSON object holding a patient state per line", "input.json")])
                continue
            try:
                state = parse_patient_text(text, self.source)
            except InvalidInputError as error:
                self.error(number, "invalid input", [self._at_line(p, number) for p in error.problems])
                continue
            self.line = number
            yield state

    def _at_line(self, problem: Problem, number: int) -> Problem:
        # The line was parsed on its own: its positions are on line 1 (or 0, the whole input).
        return dataclasses.replace(problem, file=self.source, line=number)


def evaluate_ndjson(stream: IO[bytes], out: Writer, protocol: Protocol, *, source: str = "<stdin>",
                    allow_draft: bool = False) -> BatchSummary:
    """Evaluate every patient state of an NDJSON ``stream`` (bytes), writing one line per patient to
    ``out`` (see the module docstring); ``source`` names the stream in problems. The protocol is
    checked first (:class:`~crs_rules.errors.InvalidPackError` for a draft without ``allow_draft``)."""
    lines = _Lines(stream, source, out)
    states = lines.states()
    decided = 0
    while True:
        try:
            for decision in evaluate_many(states, protocol, allow_draft=allow_draft):
                out.write(json.dumps(decision.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
                decided += 1
            break
        except InvalidInputError as error:  # found while evaluating (a time beyond the calendar)
            lines.error(lines.line, "invalid input", [lines._at_line(p, lines.line) for p in error.problems])
        except EngineError as error:
            lines.error(lines.line, "engine", [Problem(source, lines.line, 0, "-", str(error), "", check="engine")])
    return BatchSummary(decided, lines.errors, lines.stopped_early)
