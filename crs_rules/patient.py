"""The input contract: one patient's state at one moment.

:func:`parse_patient` turns JSON-like data (from JSON, YAML or built in memory) into a
:class:`PatientState`, or raises :class:`~crs_rules.errors.InvalidInputError` listing *every*
problem found: each names the field (``patient.weight_kg``, ``medications[1].given_at``), echoes the
bad value and its type, and says what was expected. Bad input never produces a state, so it can
never produce a recommendation.

Two layers find problems, and both report them the same way:

* ``schemas/patient.schema.json`` (JSON Schema draft 2020-12): the fields, their types, the enums,
  no unknown keys anywhere, and plausibility bounds that keep out values no living human has.
* the checks a schema cannot express: every date-time is a real instant with a UTC offset; nothing
  was given, and CRS did not begin, after ``assessed_at``; not both temperatures; vasopressors or
  refractory hypotension only with ``hypotension: true``; no oxygen flow on room air; no NaN.

:func:`read_patient` reads a file (or standard input for ``-``); YAML goes through
:mod:`crs_rules.loading`, so problems carry the line and column of the bad value.

The work is split by job, each in its own module: the contract's result and the table-driven
reading of a valid input (:mod:`crs_rules._patient_contract`, from :mod:`crs_rules.fields`), the
plain words of problems (:mod:`crs_rules._input_words`), the checks (:mod:`crs_rules._patient_checks`),
and here, reading text and files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, Final

from ._input_words import Report, subject_of
from ._patient_checks import collect, value_at
from ._patient_contract import (
    MAX_LIST_ITEMS,
    SCHEMA_PATH,
    Medication,
    Path_,
    PatientState,
    accepted,
    origin_of,
    patient_schema,
    state_input,
)
from .errors import InvalidInputError, Problem
from .loading import LoadedDocument, load_yaml_text

__all__ = [
    "Medication",
    "PatientState",
    "parse_patient",
    "parse_patient_text",
    "read_patient",
    "state_input",
    "patient_schema",
    "accepted",
    "input_problem",
    "MAX_LIST_ITEMS",
    "MAX_INPUT_BYTES",
    "SCHEMA_PATH",
]


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def parse_patient(
    data: Any, source: str = "<input>", positions: LoadedDocument | None = None
) -> PatientState:
    """The patient state in ``data``, or :class:`InvalidInputError` listing every problem.

    ``source`` names the input in problems (a file name, ``<stdin>``); ``positions``, the document
    ``data`` was loaded from, gives each problem its line and column (0, 0 without it). Date-times
    may be ISO 8601 strings or timezone-aware :class:`datetime` objects.
    """
    report = Report(source, positions)
    state = collect(data, report)
    if state is None:
        raise InvalidInputError(report.problems)
    return state


def input_problem(state: PatientState, path: Path_, value: object, message: str, expected: str,
                  check: str) -> Problem:
    """A problem a later stage finds in the input ``state`` was read from (a name the rule pack
    refuses), reported as this module reports its own: for a state this module built, with the
    source's name and, when ``path`` is a list holding ``value``, the path, line and column of
    the first item equal to it; otherwise at ``<input>``, line 0."""
    origin = origin_of(state)
    source = origin.source if origin is not None else "<input>"
    if origin is not None:
        try:
            items = value_at(origin.data, path)
        except (KeyError, IndexError, TypeError):
            items = None
        if isinstance(items, list) and value in items:
            path = (*path, items.index(value))
    report = Report(source, origin.positions if origin is not None else None)
    report.add(path, message, expected, check)
    return report.problems[0]


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that remembers the keys it had more than once."""

    duplicates: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _DuplicateKeys()
    result.duplicates = []
    for key, value in pairs:
        if key in result and key not in result.duplicates:
            result.duplicates.append(key)
        result[key] = value
    return result


def _duplicate_keys(data: Any) -> Iterator[Path_]:
    stack: list[tuple[Path_, Any]] = [((), data)]
    while stack:  # no recursion: the nesting depth is the caller's
        path, value = stack.pop()
        if isinstance(value, _DuplicateKeys):
            yield from ((*path, key) for key in value.duplicates)
            stack.extend(((*path, key), sub) for key, sub in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, index), sub) for index, sub in enumerate(value))


def _looks_like_json(text: str, source: str) -> bool:
    return text.lstrip().startswith("{") or source.lower().endswith(".json")


def parse_patient_text(text: str, source: str = "<input>") -> PatientState:
    """The patient state in a JSON or YAML text (JSON when it starts with ``{`` or ``source`` ends
    in ``.json``), or :class:`InvalidInputError` listing every problem with its line and column."""
    text = text.removeprefix("\ufeff")
    report_problems: list[Problem] = []
    if _looks_like_json(text, source):
        try:
            data = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                [
                    Problem(
                        source, exc.lineno, exc.colno, "-", f"is not valid JSON: {exc.msg}",
                        "one JSON object holding the patient state", check="input.json",
                    )
                ]
            ) from None
        except (ValueError, RecursionError) as exc:
            # Python's reader refuses ints of more than 4300 digits, and nesting deeper than its
            # recursion limit; neither can be a patient state.
            wrong = "is nested too deeply" if isinstance(exc, RecursionError) else "holds a number with too many digits"
            raise InvalidInputError(
                [
                    Problem(
                        source, 0, 0, "-", f"cannot be read as JSON: it {wrong}",
                        "one JSON object holding the patient state", check="input.json",
                    )
                ]
            ) from None
        # JSON has the same structure when read as YAML: the YAML reader gives the positions.
        positions, _ = load_yaml_text(text, source)
        report = Report(source, positions)
        for path in _duplicate_keys(data):
            report.add(
                path,
                "appears more than once in the same mapping; JSON readers keep only the last one",
                "each field at most once",
                "input.duplicate-key",
                at_key=True,
            )
    else:
        # Unquoted date-times are fine here (the contract writes them so); each is checked below.
        positions, yaml_problems = load_yaml_text(text, source, times_as_text=True)
        # The loader names no field; the path it gives does.
        report_problems = [
            dataclasses.replace(p, subject=subject_of(p.path)) if p.subject == "-" and p.path else p
            for p in yaml_problems
        ]
        if positions is None:
            raise InvalidInputError(
                report_problems
                or [Problem(source, 0, 0, "-", "cannot be read as YAML", "a YAML mapping holding the patient state", check="input.yaml")]
            )
        data = positions.data
        report = Report(source, positions)
    state = collect(data, report)
    problems = report_problems + report.problems
    if problems or state is None:
        raise InvalidInputError(problems)
    return state


#: The most bytes :func:`read_patient` reads (1 MiB): a patient state is a few hundred bytes, and
#: 1,000 medications a hundred KiB. A FIFO or a pipe is read too (``-``, process substitution), but
#: never more than this.
MAX_INPUT_BYTES: Final = 1024 * 1024


class _TooLarge(Exception):
    pass


def _read_bounded_text(path: str | os.PathLike[str]) -> str:
    """The text of a file (or of standard input for ``-``), reading at most ``MAX_INPUT_BYTES + 1``
    bytes; newlines as text mode reads them. Raises :class:`_TooLarge` past the limit."""
    if path == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # a text-only stream: at most 4 bytes a character
            text = str(sys.stdin.read(MAX_INPUT_BYTES + 1))
            if len(text.encode("utf-8", errors="surrogatepass")) > MAX_INPUT_BYTES:
                raise _TooLarge
            return text
        raw: bytes = buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with open(path, "rb") as file:  # a FIFO blocks until its writer opens it, as for any reader
            raw = file.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise _TooLarge
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def read_patient(path: str | os.PathLike[str]) -> PatientState:
    """The patient state in a JSON or YAML file; ``-`` reads standard input. At most
    :data:`MAX_INPUT_BYTES` are read.

    A file that cannot be read raises :class:`InvalidInputError` with one problem, never OSError.
    """
    source = "<stdin>" if path == "-" else os.fspath(path)
    try:
        text = _read_bounded_text(path)
    except _TooLarge:
        raise InvalidInputError(
            [
                Problem(
                    source, 0, 0, "-", f"is more than {MAX_INPUT_BYTES} bytes",
                    f"a patient state of at most {MAX_INPUT_BYTES // (1024 * 1024)} MiB ({MAX_INPUT_BYTES} bytes)",
                    check="input.size",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            reason = f"it is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at offset {exc.start})"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        else:
            reason = str(exc)
        raise InvalidInputError(
            [
                Problem(
                    source, 0, 0, "-", f"cannot be read: {reason}",
                    "a readable UTF-8 text file holding one patient state in YAML or JSON",
                    check="input.readable",
                )
            ]
        ) from None
    return parse_patient_text(text, source)
