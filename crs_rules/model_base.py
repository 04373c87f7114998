"""The smallest values of the rule model: where an element is written (:class:`Source`) and the
conditions (:class:`Comparison`, :class:`AllOf`, :class:`AnyOf`, :class:`Not`). Both the model
(:mod:`crs_rules.model`, which re-exports them) and the rule registry
(:mod:`crs_rules.rule_registry`) are built on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["Scalar", "Source", "Comparison", "AllOf", "AnyOf", "Not", "Condition"]

Scalar = Union[str, int, float, bool]

@dataclass(frozen=True)
class Source:
    """Where an element is written: file and 1-based line and column."""

    file: str
    line: int
    column: int


@dataclass(frozen=True)
class Comparison:
    """A test on one named fact, e.g. ``vitals.temperature_c at_least 38.0``; ``operator`` is a
    name of :data:`crs_rules.operators.OPERATOR_TABLE`."""

    fact: str
    operator: str
    value: Scalar | tuple[Scalar, ...]
    source: Source
    not_counting: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The fact's family, the part of its path before the first dot: ``vitals``, ``finding``,
        ``action``, ``history``... (read here, once, so no other module splits the path)."""
        return self.fact.partition(".")[0]

    @property
    def name(self) -> str:
        """The fact's path within its family: ``temperature_c`` for ``vitals.temperature_c``."""
        return self.fact.partition(".")[2]


@dataclass(frozen=True)
class AllOf:
    conditions: tuple["Condition", ...]
    source: Source


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple["Condition", ...]
    source: Source


@dataclass(frozen=True)
class Not:
    condition: "Condition"
    source: Source


Condition = Union[Comparison, AllOf, AnyOf, Not]
