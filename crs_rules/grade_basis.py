"""The grade's basis: why this grade (or why none), in words, for a decision.

The grade criterion's text and the signs that set it, the findings' words, and the observed values
behind them: each input field the pack's grade criteria read, in the words the patient schema gives
it (:mod:`crs_rules.fields`). Part of assembling a decision (:mod:`crs_rules.evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any, Callable, Mapping

from .conditions import comparisons, numbers_compared
from .decision import GradeStatus
from .fields import FIELDS, Field, field
from .model import Condition, GradeCriterion, Protocol
from .numbers import shown
from .patient import PatientState

__all__ = ["grade_basis"]


def grade_basis(protocol: Protocol, status: GradeStatus, grade: int | None, possible_grades: tuple[int, ...],
                values: Mapping[str, Any], patient: PatientState, missing: tuple[str, ...]) -> str:
    """Why this grade, in words: the grade criterion and the signs behind it; what is not recorded."""
    table = _table(protocol)
    signs = []
    text: str | None
    for finding_id, texts, otherwise, undetermined in table.findings:
        value = values[finding_id]
        if value is None:
            text = undetermined
        elif texts is None:  # a boolean finding: (its text when true, when false)
            text = otherwise[0] if value else otherwise[1]
        else:
            text = texts.get(value, otherwise)
        if text:
            signs.append(text)
    observed = _observed(table, patient)
    details = f"Signs: {'; '.join(signs)} ({', '.join(observed)})."
    if status == "not_applicable":
        return (f"CRS grading does not apply: the CRS definition ({protocol.definition_id}) is a response "
                f"following immune effector cell therapy, and this patient did not receive it. {details}")
    if status == "indeterminate":
        open_text = f" Not recorded: {', '.join(missing)}." if missing else ""
        return (f"Grade not determined: the data recorded is consistent with grades "
                f"{', '.join(str(g) for g in possible_grades)}.{open_text} {details}")
    assert grade is not None, "a graded decision has a grade"
    criterion, words = table.grades[grade]
    # The sign(s) that set the grade: levelled findings whose value is the grade itself.
    setting = [texts.get(values[finding_id], otherwise) for finding_id, texts, otherwise, _ in table.findings
               if texts is not None and values[finding_id] == criterion.grade
               and texts.get(values[finding_id], otherwise)]
    set_by = f" Set by: {'; '.join(t for t in setting if t)}." if setting and criterion.grade > 0 else ""
    return f"{words}{set_by} {details}"


@dataclass(frozen=True)
class _Observed:
    """An input field the grade criteria read, and how it reads among the observed values."""

    entry: Field
    read: Callable[[PatientState], Any]
    requires: Callable[[PatientState], Any] | None
    thresholds: tuple[float, ...]
    phrase: str
    """The phrase it is part of: its mapping inside a section (``vitals.oxygen``), else its path."""


@dataclass(frozen=True)
class _Table:
    """What the grade's basis reads of a pack, derived once per protocol object."""

    findings: tuple[tuple[str, Mapping[Any, str | None] | None, Any, str], ...]
    """(id, text of each level's value, text of any other value, text when not determined) of each
    levelled finding; (id, None, (text when true, text when false), text when not determined) of each
    boolean finding (:meth:`~crs_rules.model.Finding.text_for`)."""
    observed: tuple[_Observed, ...]
    grades: Mapping[int, tuple[GradeCriterion, str]]
    """The criterion of each grade (the first of that grade) and its text on one line."""


def _reader(path: str) -> Callable[[PatientState], Any]:
    """How :meth:`PatientState.value` reads the field at ``path``."""
    entry = field(path)
    if entry.attribute is not None:
        return attrgetter(entry.attribute)
    return lambda patient: patient.value(path)


@lru_cache(maxsize=64)
def _table(protocol: Protocol) -> _Table:
    findings: list[tuple[str, Mapping[Any, str | None] | None, Any, str]] = []
    for finding in protocol.findings:
        undetermined = f"{finding.id.replace('_', ' ')} not determined"
        if finding.is_boolean:
            findings.append((finding.id, None, (finding.true_text, finding.false_text), undetermined))
            continue
        texts: dict[Any, str | None] = {}
        for level in finding.levels:
            texts.setdefault(level.value, level.text)  # the first level of a value
        findings.append((finding.id, texts, finding.otherwise_text, undetermined))
    observed = tuple(
        _Observed(entry, _reader(entry.path), _reader(entry.requires) if entry.requires is not None else None,
                  _thresholds(protocol, entry.path),
                  ".".join(entry.keys[:-1]) if len(entry.keys) > 2 else entry.path)
        for entry in _graded_fields(protocol))
    grades: dict[int, tuple[GradeCriterion, str]] = {}
    for criterion in protocol.grades:
        grades.setdefault(criterion.grade, (criterion, " ".join(criterion.text.split())))
    return _Table(tuple(findings), observed, grades)


def _observed(table: _Table, patient: PatientState) -> list[str]:
    """The observed values behind the grade: each input field the grade criteria read (through
    their findings), in the table's order, in its words (:mod:`crs_rules.fields`: ``observed``
    when known, ``unrecorded`` when unknown, unless the field it requires is not true); the fields
    of one mapping inside a section (``vitals.oxygen``) as one phrase."""
    phrases: dict[str, list[str]] = {}
    for item in table.observed:
        entry = item.entry
        value = item.read(patient)
        if value is None:
            asked = item.requires is None or item.requires(patient) is True
            text = entry.unrecorded if asked else None
        elif entry.observed is None or value == ():
            text = None
        elif isinstance(value, tuple):
            text = entry.observed.format(value=", ".join(map(str, value)))
        elif isinstance(value, float):
            text = entry.observed.format(value=shown(value, item.thresholds, entry.decimals))
        else:
            text = entry.observed.format(value=value)
        if text:
            phrases.setdefault(item.phrase, []).append(text)
    return [" ".join(words) for words in phrases.values()]


@lru_cache(maxsize=64)
def _graded_fields(protocol: Protocol) -> tuple[Field, ...]:
    """The input fields the grade criteria read, directly or through the findings they read, in
    the table's order."""
    findings = {f.id: f for f in protocol.findings}
    read: set[str] = set()
    pending: list[Condition] = [g.when for g in protocol.grades]
    seen: set[str] = set()
    while pending:
        for comparison in comparisons(pending.pop()):
            family, name = comparison.family, comparison.name
            finding = findings.get(name) if family == "finding" else None
            if finding is None:
                read.add(comparison.fact)
            elif name not in seen:
                seen.add(name)
                pending.extend([finding.when] if finding.when is not None else [])
                pending.extend(level.when for level in finding.levels)
    return tuple(f for f in FIELDS if f.path in read and f.in_state)


@lru_cache(maxsize=64)
def _thresholds(protocol: Protocol, fact: str) -> tuple[float, ...]:
    """Every number the pack compares an input fact with (values are never shown across them)."""
    return tuple(numbers_compared((c for _, condition in protocol.conditions() for c in comparisons(condition)), fact))

