"""What every semantic check shares: the typed check ids, the shape of a check, and helpers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Iterator

from ..errors import Problem
from ..model import Protocol, RuleFamily, Source

__all__ = ["CheckId", "Check", "SemanticCheck", "problem", "cited", "rule_sources"]


class CheckId(StrEnum):
    """The id each problem of a pack carries in ``Problem.check`` (besides ``schema.*`` and
    ``yaml.*``, which name the schema keyword or the YAML trap): which check found it."""

    # the pack's files and their form (pack.py)
    PACK_FILE = "pack-file"
    CONDITION_FORM = "condition-form"
    RELEASE_DIGEST = "release-digest"
    # limits and amounts beyond the safety envelope (envelope.py)
    SAFETY_ENVELOPE = "safety-envelope"
    # semantic checks (this package)
    CITATION_RESOLVES = "citation-resolves"
    UNIQUE_IDS = "unique-ids"
    FACT_PATH_KNOWN = "fact-path-known"
    OPERATOR_FITS_FACT = "operator-fits-fact"
    VALUE_FITS_FACT = "value-fits-fact"
    NO_NEGATED_ACTIONS = "no-negated-actions"
    RAISE_READS_INPUTS = "raise-reads-inputs"
    RULE_COUNT = "rule-count"
    CONDITION_DEPTH = "condition-depth"
    CONDITION_SIZE = "condition-size"
    ACTION_KNOWN = "action-known"
    DRUG_KNOWN = "drug-known"
    DOSE_HAS_LIMITS = "dose-has-limits"
    DOSE_WITHIN_CAP = "dose-within-cap"
    GRADING_EXHAUSTIVE = "grading-exhaustive"
    GRADING_EXCLUSIVE = "grading-exclusive"
    FINDINGS_ACYCLIC = "findings-acyclic"
    STATEMENT_ENCODED = "statement-encoded"
    TRACED_BOTH_WAYS = "traced-both-ways"
    NUMBERS_IN_DATA = "numbers-in-data"
    ENGINE_SIZE = "engine-size"
    VOCABULARY = "vocabulary"


Check = Callable[[Protocol], Iterator[Problem]]


@dataclass(frozen=True)
class SemanticCheck:
    """A registered check: the function that yields its problems and the ids they carry.

    ``guards``: it bounds the pack's size; when it finds a problem, the ``expands`` checks (which
    compile or enumerate the pack) are not run, since an unbounded expansion takes minutes."""

    run: Check
    ids: tuple[CheckId, ...]
    guards: bool = False
    expands: bool = False

    @property
    def name(self) -> str:
        return self.run.__name__

    @property
    def catches(self) -> str:
        """What the check catches, in words: its docstring."""
        return " ".join((self.run.__doc__ or "").split())


def problem(source: Source, subject: str, message: str, expected: str, check: CheckId) -> Problem:
    return Problem(source.file, source.line, source.column, subject, message, expected, (), check)


def cited(protocol: Protocol) -> Iterator[tuple[str, tuple[str, ...], Source]]:
    """(rule id, citations, source) for every rule of the pack (:meth:`Protocol.rules`), the CRS
    definition first."""
    for rule in protocol.rules():
        yield rule.id, rule.citations, rule.source


def rule_sources(protocol: Protocol) -> Iterator[tuple[str, Source]]:
    """(rule id, source) for every rule of the pack that takes effect on its own: every family of
    :meth:`Protocol.rules` but the CRS definition (a text, not a rule of its own)."""
    for rule in protocol.rules():
        if rule.family is not RuleFamily.DEFINITION:
            yield rule.id, rule.source
