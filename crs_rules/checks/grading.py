"""grading-exhaustive, grading-exclusive: every combination of the values the grade criteria read
gives exactly one grade.

The check enumerates the facts the grade criteria read (findings, each with its values; input facts
at and around each threshold they are compared with, and absent). Fails: removing the grade 1
criterion (a febrile patient gets no grade), or a grade 2 criterion that also matches grade 3.
"""

from __future__ import annotations

from itertools import product
from typing import Any, Iterator

from ..conditions import comparisons, holds
from ..errors import Problem
from ..facts import FactType, fact_catalogue
from ..model import Comparison, Protocol
from .base import CheckId, problem

#: The grading check enumerates every combination of the values the grade criteria read.
MAX_GRADING_COMBINATIONS = 200_000


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _sample_values(fact_type: FactType, tests: list[Comparison]) -> list[Any]:
    """Values that reach every side of every test on one fact, plus 'absent'."""
    absent = _ABSENT
    if fact_type.kind == "boolean":
        # Findings are always set (true or false); patient facts may also be unknown.
        return list(fact_type.values) if fact_type.values else [True, False, absent]
    if fact_type.kind == "level":
        return list(fact_type.values)
    if fact_type.kind == "enum":
        return [*fact_type.values, absent]
    if fact_type.kind == "presence":
        return [True, absent]
    if fact_type.kind == "list":
        names = sorted({str(t.value) for t in tests if t.operator == "includes"}
                       | {n for t in tests for n in t.not_counting} | {"other_a", "other_b", "other_c"})
        return [tuple(names[:size]) for size in range(len(names) + 1)] + [tuple(names[-3:])]
    thresholds = sorted({float(v) for t in tests for v in (t.value if isinstance(t.value, tuple) else (t.value,))
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
    points: set[float] = set()
    for threshold in thresholds:
        points.update({threshold - 0.5, threshold, threshold + 0.5})
    return [*sorted(points), absent] if points else [0.0, absent]


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_grading_exhaustive_and_exclusive(protocol: Protocol) -> Iterator[Problem]:
    """Every combination of the facts the grade criteria read gives exactly one grade."""
    if not protocol.grades:
        return
    catalogue = fact_catalogue(protocol)
    tests: dict[str, list[Comparison]] = {}
    for grade in protocol.grades:
        for comparison in comparisons(grade.when):
            tests.setdefault(comparison.fact, []).append(comparison)
    if any(fact not in catalogue for fact in tests):
        return  # reported by check_conditions
    facts = sorted(tests)
    domains = [_sample_values(catalogue[f], tests[f]) for f in facts]
    size = 1
    for domain in domains:
        size *= len(domain)
    first = protocol.grades[0].source
    if size > MAX_GRADING_COMBINATIONS:
        yield problem(first, protocol.grades[0].rule_id,
                      f"the grade criteria read too many facts to check ({size} combinations)",
                      f"expected grade criteria over findings, at most {MAX_GRADING_COMBINATIONS} combinations",
                      CheckId.GRADING_EXHAUSTIVE)
        return
    gaps: list[str] = []
    overlaps: dict[tuple[str, ...], str] = {}
    for combination in product(*domains):
        flat = {f: v for f, v in zip(facts, combination) if v is not _ABSENT}
        matched = tuple(g.rule_id for g in protocol.grades if holds(g.when, flat))
        described = ", ".join(f"{f}={'absent' if v is _ABSENT else _plain(v)}" for f, v in zip(facts, combination))
        if not matched:
            gaps.append(described)
        elif len(matched) > 1:
            overlaps.setdefault(matched, described)
    if gaps:
        more = f" (and {len(gaps) - 1} more)" if len(gaps) > 1 else ""
        yield problem(first, protocol.grades[0].rule_id,
                      f"no grade criterion matches {gaps[0]}{more}",
                      "expected the grade criteria to give every patient a grade", CheckId.GRADING_EXHAUSTIVE)
    by_rule = {g.rule_id: g for g in protocol.grades}
    for matched, described in overlaps.items():
        second = by_rule[matched[1]]
        yield problem(second.source, second.rule_id,
                      f"gives a second grade, with {', '.join(matched[:1])}, for {described}",
                      "expected the grade criteria to give every patient exactly one grade", CheckId.GRADING_EXCLUSIVE)
