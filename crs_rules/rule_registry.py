"""The registry of a pack's rules: the kinds of rule (:class:`RuleFamily`), one rule as every stage
sees it (:class:`PackRule`), what an element of a family offers (:class:`RuleElement`) and how a
family is declared (:class:`RuleFamilyDeclaration`). The declarations themselves, one per family,
are :data:`crs_rules.model.RULE_FAMILIES`, next to the :class:`~crs_rules.model.Protocol` fields
they read; :meth:`~crs_rules.model.Protocol.rules` lists them.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from .model_base import Condition, Source

__all__ = ["RuleFamily", "PackRule", "RuleElement", "RuleFamilyDeclaration"]

#: The protocol type a declaration reads (:class:`crs_rules.model.Protocol`).
P = TypeVar("P")


class RuleFamily(StrEnum):
    """The kinds of rule a pack holds."""

    DEFINITION = "definition"
    FINDING = "finding"
    GRADE = "grade"
    DOSING = "dosing"
    ACTION_RULE = "action rule"
    ALERT = "alert"


@dataclass(frozen=True)
class PackRule:
    """One rule of the pack as every stage sees it: its id and family, where it is written (the
    file kind and the path within that file, and the 1-based position), what it cites, its
    conditions (file order) and its texts for people; ``element`` is the model value itself."""

    id: str
    family: RuleFamily
    source: Source
    file_kind: str
    path: tuple[str | int, ...]
    citations: tuple[str, ...]
    conditions: tuple[Condition, ...]
    texts: tuple[str, ...]
    element: RuleElement = field(repr=False, compare=False)


class RuleElement(typing.Protocol):
    """What an element of a rule family offers the registry (every family's class has these)."""

    @property
    def id(self) -> str: ...

    @property
    def rule_id(self) -> str: ...

    @property
    def source(self) -> Source: ...

    @property
    def citations(self) -> tuple[str, ...]: ...

    def rule_conditions(self) -> tuple[Condition, ...]: ...

    def rule_texts(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class RuleFamilyDeclaration(Generic[P]):
    """One family of rules: where its elements are on the protocol (``elements``, a typed accessor
    such as ``lambda protocol: protocol.findings``), and the file kind and key they are written under
    (``findings`` of ``grading``; a family that is one element, like the definition, is written at
    the key itself). Each element offers what :class:`RuleElement` names."""

    family: RuleFamily
    elements: Callable[[P], tuple[RuleElement, ...]]
    file_kind: str
    key: str
    single: bool = False
    """The family is one element written at ``key`` (not a list under it)."""

    def rules(self, protocol: P) -> tuple[PackRule, ...]:
        """The family's rules on ``protocol``, in file order."""
        elements = self.elements(protocol)
        placed = [(element, (self.key,) if self.single else (self.key, index)) for index, element in enumerate(elements)]
        return tuple(
            PackRule(element.rule_id, self.family, element.source, self.file_kind, path, element.citations,
                     element.rule_conditions(), element.rule_texts(), element)
            for element, path in placed
        )
