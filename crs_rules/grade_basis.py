"""The grade's basis: why this grade (or why none), in words, for a decision.

The grade criterion's text and the signs that set it, the findings' words, and the observed values
behind them: each input field the pack's grade criteria read, in the words the patient schema gives
it (:mod:`crs_rules.fields`). Part of assembling a decision (:mod:`crs_rules.evaluation`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from .conditions import comparisons, numbers_compared
from .decision import GradeStatus
from .fields import FIELDS, Field
from .model import Condition, Protocol
from .numbers import shown
from .patient import PatientState

__all__ = ["grade_basis"]


def grade_basis(protocol: Protocol, status: GradeStatus, grade: int | None, possible_grades: tuple[int, ...],
                values: Mapping[str, Any], patient: PatientState, missing: tuple[str, ...]) -> str:
    """Why this grade, in words: the grade criterion and the signs behind it; what is not recorded."""
    signs = []
    for finding in protocol.findings:
        value = values[finding.id]
        text = finding.text_for(value) if value is not None else f"{finding.id.replace('_', ' ')} not determined"
        if text:
            signs.append(text)
    observed = _observed(protocol, patient)
    details = f"Signs: {'; '.join(signs)} ({', '.join(observed)})."
    if status == "not_applicable":
        return (f"CRS grading does not apply: the CRS definition ({protocol.definition_id}) is a response "
                f"following immune effector cell therapy, and this patient did not receive it. {details}")
    if status == "indeterminate":
        open_text = f" Not recorded: {', '.join(missing)}." if missing else ""
        return (f"Grade not determined: the data recorded is consistent with grades "
                f"{', '.join(str(g) for g in possible_grades)}.{open_text} {details}")
    criterion = next(g for g in protocol.grades if g.grade == grade)
    text = " ".join(criterion.text.split())
    # The sign(s) that set the grade: levelled findings whose value is the grade itself.
    setting = [f.text_for(values[f.id]) for f in protocol.findings
               if not f.is_boolean and values[f.id] == criterion.grade and f.text_for(values[f.id])]
    set_by = f" Set by: {'; '.join(t for t in setting if t)}." if setting and criterion.grade > 0 else ""
    return f"{text}{set_by} {details}"


def _observed(protocol: Protocol, patient: PatientState) -> list[str]:
    """The observed values behind the grade: each input field the grade criteria read (through
    their findings), in the table's order, in its words (:mod:`crs_rules.fields`: ``observed``
    when known, ``unrecorded`` when unknown, unless the field it requires is not true); the fields
    of one mapping inside a section (``vitals.oxygen``) as one phrase."""
    phrases: dict[str, list[str]] = {}
    for entry in _graded_fields(protocol):
        value = patient.value(entry.path)
        if value is None:
            asked = entry.requires is None or patient.value(entry.requires) is True
            text = entry.unrecorded if asked else None
        elif entry.observed is None or value == ():
            text = None
        elif isinstance(value, tuple):
            text = entry.observed.format(value=", ".join(map(str, value)))
        elif isinstance(value, float):
            text = entry.observed.format(value=shown(value, _thresholds(protocol, entry.path), entry.decimals))
        else:
            text = entry.observed.format(value=value)
        if text:
            keys = entry.keys
            phrases.setdefault(".".join(keys[:-1]) if len(keys) > 2 else entry.path, []).append(text)
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

