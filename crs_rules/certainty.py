"""What a condition's truth depends on when some inputs are unknown: its three-valued reading.

An input that is absent is unknown, never "no". A condition is then read in three values (strong
Kleene logic): it *certainly holds* when it holds whatever the unknowns turn out to be, it
*certainly fails* when it fails whatever they turn out to be, and otherwise it is open. This module
turns a pack condition into two positive formulas, one for each certainty, over atoms the engine
can match:

* :class:`Observed`: a comparison on an input fact that is present (``negated`` for "present and
  failing"); an absent fact satisfies neither, which is what makes unknown data open;
* :class:`Excluded`: a derived finding (``finding.<id>``) cannot take a value. A finding's possible
  values are its values less the excluded ones, so a comparison on a finding certainly holds when
  every value failing it is excluded, and certainly fails when every value passing it is excluded;
* :class:`Proposed` and :class:`RuledOut`: an action is proposed by a rule that certainly holds,
  or every rule that could propose it certainly fails.

Both formulas use only conjunction and disjunction of atoms, so the engine derives certainty by
plain forward chaining, without negation as failure. Reading in this way is sound: a rule that
certainly holds holds in every completion of the unknowns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Union

from .conditions import compare
from .model import AllOf, AnyOf, Comparison, Condition, Not

__all__ = [
    "Observed",
    "Excluded",
    "Proposed",
    "RuledOut",
    "Both",
    "Either",
    "Formula",
    "TRUE",
    "FALSE",
    "certainly",
    "possibly",
    "FindingValue",
    "FINDING_FAMILY",
    "ACTION_FAMILY",
]

FINDING_FAMILY = "finding"
ACTION_FAMILY = "action"

FindingValue = Union[bool, int, str]


@dataclass(frozen=True)
class Observed:
    """An input comparison on a present fact; ``negated``: present and failing."""

    comparison: Comparison
    negated: bool
    or_unknown: bool = False
    """Also satisfied when the fact is absent (the reading of "possibly")."""


@dataclass(frozen=True)
class Excluded:
    """Finding ``finding`` cannot take ``value``."""

    finding: str
    value: FindingValue


@dataclass(frozen=True)
class Proposed:
    """Some rule certainly proposes ``action``."""

    action: str


@dataclass(frozen=True)
class RuledOut:
    """Every rule that could propose ``action`` certainly fails."""

    action: str


@dataclass(frozen=True)
class Both:
    parts: tuple["Formula", ...]


@dataclass(frozen=True)
class Either:
    parts: tuple["Formula", ...]


Atom = Union[Observed, Excluded, Proposed, RuledOut]
Formula = Union[Atom, Both, Either]

#: The empty conjunction (always true) and the empty disjunction (never true).
TRUE: Formula = Both(())
FALSE: Formula = Either(())


def both(parts: list[Formula]) -> Formula:
    """A conjunction, simplified: a FALSE part makes it FALSE, TRUE parts drop out."""
    kept: list[Formula] = []
    for part in parts:
        if part == FALSE:
            return FALSE
        if part == TRUE:
            continue
        kept.extend(part.parts if isinstance(part, Both) else [part])
    return kept[0] if len(kept) == 1 else Both(tuple(dict.fromkeys(kept)))


def either(parts: list[Formula]) -> Formula:
    """A disjunction, simplified: a TRUE part makes it TRUE, FALSE parts drop out."""
    kept: list[Formula] = []
    for part in parts:
        if part == TRUE:
            return TRUE
        if part == FALSE:
            continue
        kept.extend(part.parts if isinstance(part, Either) else [part])
    return kept[0] if len(kept) == 1 else Either(tuple(dict.fromkeys(kept)))



def certainly(
    condition: Condition,
    holding: bool,
    domains: Mapping[str, tuple[FindingValue, ...]],
    passes: Callable[[Comparison, FindingValue], bool] | None = None,
) -> Formula:
    """The formula under which ``condition`` certainly holds (``holding``) or certainly fails.

    ``domains`` gives every finding's values (the grade's include "not applicable" when the pack
    restricts who CRS grading applies to). ``passes`` decides whether a finding value passes a
    comparison (default: the comparison's own meaning; a value that is not a number or a boolean,
    such as "not applicable", passes none).
    """
    test = passes or _passes
    if isinstance(condition, Not):
        return certainly(condition.condition, not holding, domains, passes)
    if isinstance(condition, (AllOf, AnyOf)):
        parts = [certainly(c, holding, domains, passes) for c in condition.conditions]
        conjunctive = isinstance(condition, AllOf) == holding
        return both(parts) if conjunctive else either(parts)
    family, name = condition.family, condition.name
    if family == FINDING_FAMILY:
        domain = domains[name]
        # Certainly holds: every value failing it is excluded; certainly fails: every passing one.
        return both([Excluded(name, v) for v in domain if test(condition, v) != holding])
    if family == ACTION_FAMILY:
        return Proposed(name) if holding else RuledOut(name)
    return Observed(condition, negated=not holding)


def possibly(condition: Condition, holding: bool) -> Formula:
    """The formula under which ``condition`` may hold (``holding``) or may fail: no recorded input
    rules it out. Only for conditions on input facts (findings and actions need negation as
    failure, which the chain does not have): raises ValueError otherwise."""
    if isinstance(condition, Not):
        return possibly(condition.condition, not holding)
    if isinstance(condition, (AllOf, AnyOf)):
        parts = [possibly(c, holding) for c in condition.conditions]
        conjunctive = isinstance(condition, AllOf) == holding
        return both(parts) if conjunctive else either(parts)
    family = condition.family
    if family in (FINDING_FAMILY, ACTION_FAMILY):
        raise ValueError(f"{condition.fact}: only input facts can be read with if_unknown: raise")
    return Observed(condition, negated=not holding, or_unknown=True)


def _passes(comparison: Comparison, value: FindingValue) -> bool:
    if isinstance(value, str):
        return False
    return compare(comparison, value)
