"""findings-acyclic: a finding may read other findings, never itself through a loop; grading reads
no proposed action.

Passes: ``cardiorespiratory_grade`` reading ``hypotension_grade`` and ``hypoxia_grade``. Fails:
``fever`` reading ``fever_not_required`` while that reads ``fever``; a grade criterion reading
``action.tocilizumab``.
"""

from __future__ import annotations

from typing import Iterator

from ..conditions import comparisons
from ..errors import Problem
from ..model import GRADE_FINDING, Protocol
from .base import CheckId, problem


def _finding_dependencies(protocol: Protocol) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for finding in protocol.findings:
        graph[finding.id] = {c.name for cond in finding.rule_conditions() for c in comparisons(cond)
                             if c.family == "finding"}
    graph[GRADE_FINDING] = {c.name for g in protocol.grades for c in comparisons(g.when)
                            if c.family == "finding"}
    return graph


def check_findings_acyclic(protocol: Protocol) -> Iterator[Problem]:
    """A finding may read other findings, but never itself through a loop; grading reads no action."""
    graph = _finding_dependencies(protocol)
    by_id = {f.id: f for f in protocol.findings}
    for start in graph:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    source = by_id[start].source if start in by_id else protocol.grades[0].source
                    yield problem(source, f"finding.{start}", f"finding.{start} depends on itself through other findings",
                                  "expected findings that do not depend on themselves", CheckId.FINDINGS_ACYCLIC)
                    stack = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
    grade_rules = {g.rule_id for g in protocol.grades}
    for rule_id, condition in protocol.conditions():
        if rule_id.startswith("finding.") or rule_id in grade_rules:
            for comparison in comparisons(condition):
                if comparison.family == "action":
                    yield problem(comparison.source, rule_id, "grading reads a proposed action",
                                  "expected findings and grades to read patient facts and findings only",
                                  CheckId.FINDINGS_ACYCLIC)
