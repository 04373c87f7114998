"""The semantic checks of a rule pack: what a JSON Schema cannot express, one module per check.

Each module holds one check: a function that yields :class:`~crs_rules.errors.Problem` values for a
validated-by-schema :class:`~crs_rules.model.Protocol`, its docstring saying what it catches (with a
passing and a failing example), and the :class:`CheckId` values its problems carry. :data:`CHECKS`
registers every check, in the order they run; :func:`semantic_problems` runs them. A new check is a
new module here and one line in :data:`CHECKS` (and one test in ``tests/test_validation.py``, which
fails for a registered check without one).
"""

from __future__ import annotations

from ..errors import Problem
from ..model import Protocol
from .actions_known import check_actions_known
from .base import Check, CheckId, SemanticCheck
from .citations import check_citations_resolve
from .condition_facts import check_conditions
from .condition_size import check_condition_size
from .dose_limits import check_dose_limits
from .drug_vocabulary import check_vocabulary
from .engine_size import check_engine_size
from .findings_acyclic import check_findings_acyclic
from .grading import check_grading_exhaustive_and_exclusive
from .negated_actions import check_no_negated_actions
from .numbers_in_data import check_numbers_live_in_data
from .raise_reads_inputs import check_raised_when_unknown_reads_inputs
from .statements_encoded import check_statements_encoded
from .traced_both_ways import check_traced_both_ways
from .unique_ids import check_unique_ids

__all__ = ["CHECKS", "CheckId", "Check", "SemanticCheck", "semantic_problems"]

#: Every semantic check, in the order they run.
CHECKS: tuple[SemanticCheck, ...] = (
    SemanticCheck(check_citations_resolve, (CheckId.CITATION_RESOLVES,)),
    SemanticCheck(check_unique_ids, (CheckId.UNIQUE_IDS,)),
    SemanticCheck(check_conditions, (CheckId.FACT_PATH_KNOWN, CheckId.OPERATOR_FITS_FACT, CheckId.VALUE_FITS_FACT)),
    SemanticCheck(check_no_negated_actions, (CheckId.NO_NEGATED_ACTIONS,)),
    SemanticCheck(check_raised_when_unknown_reads_inputs, (CheckId.RAISE_READS_INPUTS,)),
    SemanticCheck(check_condition_size, (CheckId.RULE_COUNT, CheckId.CONDITION_DEPTH, CheckId.CONDITION_SIZE),
                  guards=True),
    SemanticCheck(check_actions_known, (CheckId.ACTION_KNOWN, CheckId.DRUG_KNOWN)),
    SemanticCheck(check_dose_limits, (CheckId.DOSE_HAS_LIMITS, CheckId.DOSE_WITHIN_CAP)),
    SemanticCheck(check_grading_exhaustive_and_exclusive, (CheckId.GRADING_EXHAUSTIVE, CheckId.GRADING_EXCLUSIVE)),
    SemanticCheck(check_findings_acyclic, (CheckId.FINDINGS_ACYCLIC,)),
    SemanticCheck(check_statements_encoded, (CheckId.STATEMENT_ENCODED,)),
    SemanticCheck(check_traced_both_ways, (CheckId.TRACED_BOTH_WAYS,)),
    SemanticCheck(check_numbers_live_in_data, (CheckId.NUMBERS_IN_DATA,)),
    SemanticCheck(check_engine_size, (CheckId.ENGINE_SIZE,), expands=True),
    SemanticCheck(check_vocabulary, (CheckId.VOCABULARY,)),
)


def semantic_problems(protocol: Protocol) -> list[Problem]:
    """The problems of every registered check. The guarding checks run first; when they find a
    problem, the checks that expand the pack are skipped (an unbounded expansion takes minutes and
    gigabytes)."""
    guards = [check for check in CHECKS if check.guards]
    problems = [p for check in guards for p in check.run(protocol)]
    bounded = not problems
    for check in CHECKS:
        if check.guards or (check.expands and not bounded):
            continue
        problems.extend(check.run(protocol))
    return problems
