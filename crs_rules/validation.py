"""Validation: every pack file against its JSON Schema, then the checks a schema cannot express.

Two stages, each reporting :class:`~crs_rules.errors.Problem` values:

* the schema stage (:func:`schema_problems`, in :mod:`crs_rules.schema_words`): schema errors in
  plain words (what is wrong; what is expected) at the position of the offending node;
* the semantic stage (:func:`semantic_problems`, in :mod:`crs_rules.checks`): one module per check,
  registered in :data:`crs_rules.checks.CHECKS`, each problem carrying its
  :class:`~crs_rules.checks.CheckId`. Semantic checks run once every file matches its schema
  (before that, the model they read cannot be built).
"""

from __future__ import annotations

from .checks import CHECKS, Check, CheckId, semantic_problems
from .checks.condition_size import MAX_CONDITION_DEPTH, MAX_RULES, expansion_size
from .checks.grading import MAX_GRADING_COMBINATIONS
from .checks.traced_both_ways import check_traced_both_ways
from .schema_words import schema_problems

__all__ = [
    "schema_problems",
    "semantic_problems",
    "SEMANTIC_CHECKS",
    "EXPANDING_CHECKS",
    "CheckId",
    "MAX_GRADING_COMBINATIONS",
    "MAX_RULES",
    "MAX_CONDITION_DEPTH",
    "expansion_size",
    "check_traced_both_ways",
]

#: The function of every registered semantic check, in the order they run.
SEMANTIC_CHECKS: tuple[Check, ...] = tuple(check.run for check in CHECKS)

#: The checks that expand every condition (compile the pack): they run only on a pack within the
#: bounds the guarding check (condition size) finds.
EXPANDING_CHECKS: frozenset[Check] = frozenset(check.run for check in CHECKS if check.expands)
