"""fact-path-known, operator-fits-fact, value-fits-fact: each comparison names a fact of the pack,
with an operator that applies to the fact's kind and a value of the fact's type.

Passes: ``{fact: vitals.temperature_c, at_least: 38.0}``. Fails: ``{fact: vitals.temprature_c, ...}``
(unknown fact; the problem suggests ``vitals.temperature_c``), ``{fact: vitals.hypotension,
at_least: 1}`` (a bound on a boolean), ``{fact: vitals.oxygen.device, equals: helmet}`` (not a
device of the input contract).
"""

from __future__ import annotations

import difflib
from typing import Iterable, Iterator, Mapping

from ..conditions import comparisons
from ..errors import Problem
from ..facts import FactType, fact_catalogue
from ..model import Comparison, Protocol
from ..operators import operators_for
from ..schema_words import describe
from .base import CheckId, problem

#: How alike an unknown fact path must be to a known one to be suggested (difflib's ratio).
SUGGESTION_CUTOFF = 0.75

_FAMILIES = "patient, therapy, crs, sepsis, vitals, neuro, history, proposed, finding or action"


def suggestion(path: str, known: Iterable[str]) -> str | None:
    """The known fact path closest to ``path``, if one is close enough to be a slip of the keyboard."""
    close = difflib.get_close_matches(path, list(known), n=1, cutoff=SUGGESTION_CUTOFF)
    return close[0] if close else None


def _unknown_fact(rule_id: str, comparison: Comparison, catalogue: Mapping[str, FactType]) -> Problem:
    family = comparison.family
    near = sorted(p for p in catalogue if p.split(".")[0] == family)
    hint = ("expected a known fact such as " + ", ".join(near[:8])) if near else (
        f"expected a fact path starting with {_FAMILIES}")
    message = f"unknown fact '{comparison.fact}'"
    close = suggestion(comparison.fact, catalogue)
    if close is not None:
        message += f" (did you mean {close}?)"
    return problem(comparison.source, rule_id, message, hint, CheckId.FACT_PATH_KNOWN)


def _leaf_problems(rule_id: str, comparison: Comparison, catalogue: Mapping[str, FactType]) -> Iterator[Problem]:
    fact_type = catalogue.get(comparison.fact)
    src = comparison.source
    if fact_type is None:
        yield _unknown_fact(rule_id, comparison, catalogue)
        return
    op, value, kind = comparison.operator, comparison.value, fact_type.kind
    allowed = operators_for(kind)
    if op not in allowed:
        yield problem(src, rule_id, f"'{op}' cannot be used on {comparison.fact} ({kind})",
                      "expected one of " + ", ".join(sorted(allowed)), CheckId.OPERATOR_FITS_FACT)
        return
    if comparison.not_counting and op != "count_at_least":
        yield problem(src, rule_id, "'not_counting' is only for count_at_least", "expected it removed",
                      CheckId.OPERATOR_FITS_FACT)
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if kind in ("number", "level") and (isinstance(item, bool) or not isinstance(item, (int, float))):
            yield problem(src, rule_id, f"compares {comparison.fact} with {describe(item)}",
                          "expected a number", CheckId.VALUE_FITS_FACT)
        elif kind == "boolean" and not isinstance(item, bool):
            yield problem(src, rule_id, f"compares {comparison.fact} with {describe(item)}",
                          "expected true or false", CheckId.VALUE_FITS_FACT)
        elif kind == "enum" and item not in fact_type.values:
            yield problem(src, rule_id, f"compares {comparison.fact} with {describe(item)}",
                          "expected one of " + ", ".join(map(str, fact_type.values)), CheckId.VALUE_FITS_FACT)
        elif kind == "level" and item not in fact_type.values and op in ("equals", "not_equals", "one_of"):
            yield problem(src, rule_id, f"{comparison.fact} never takes the value {item}",
                          "expected one of " + ", ".join(map(str, fact_type.values)), CheckId.VALUE_FITS_FACT)


def check_conditions(protocol: Protocol) -> Iterator[Problem]:
    """Conditions name known facts (an unknown one gets the closest known path suggested), each
    with an operator of the fact's kind and values of the fact's type."""
    catalogue = fact_catalogue(protocol)
    for rule_id, condition in protocol.conditions():
        for comparison in comparisons(condition):
            yield from _leaf_problems(rule_id, comparison, catalogue)
