"""The rule model: a validated pack as frozen, typed values.

Everything clinical (thresholds, doses, limits, drug names) lives in these values, read from the
pack's YAML; nothing here knows a protocol number. Each element keeps its :class:`Source` so any
later stage can point back into the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from .model_base import AllOf, AnyOf, Comparison, Condition, Not, Scalar, Source
from .rule_registry import PackRule, RuleElement, RuleFamily, RuleFamilyDeclaration

if TYPE_CHECKING:
    from .pack_files import PackFiles

__all__ = [
    "Scalar",
    "Source",
    "Comparison",
    "AllOf",
    "AnyOf",
    "Not",
    "Condition",
    "Reference",
    "FindingLevel",
    "Finding",
    "GradeCriterion",
    "WeightBand",
    "Amount",
    "Regimen",
    "DoseLimits",
    "Drug",
    "DrugClass",
    "DrugName",
    "Pediatric",
    "Action",
    "DoseRef",
    "ActionRule",
    "AlertRule",
    "Statement",
    "Deviation",
    "Addition",
    "ChangelogEntry",
    "Protocol",
    "Definition",
    "RuleFamily",
    "RuleFamilyDeclaration",
    "RULE_FAMILIES",
    "PackRule",
    "RuleElement",
    "GRADE_FINDING",
    "HOURS_PER_DAY",
]

#: The finding the grade criteria set (``finding.crs_grade``).
GRADE_FINDING = "crs_grade"

#: Unit conversion, not protocol content: "twice daily" means an interval of 24 h / 2.
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Reference:
    id: str
    seed_number: int | None
    title: str
    source_text: str
    source: Source


@dataclass(frozen=True)
class FindingLevel:
    value: int
    text: str | None
    when: Condition
    source: Source


@dataclass(frozen=True)
class Finding:
    """A derived finding. Boolean (``when``) or levelled (first matching level, else otherwise)."""

    id: str
    description: str
    when: Condition | None
    true_text: str | None
    false_text: str | None
    levels: tuple[FindingLevel, ...]
    otherwise_value: int | None
    otherwise_text: str | None
    citations: tuple[str, ...]
    source: Source

    @property
    def rule_id(self) -> str:
        return f"finding.{self.id}"

    def rule_conditions(self) -> tuple[Condition, ...]:
        """Its condition (boolean) or its levels' conditions, in file order."""
        own = () if self.when is None else (self.when,)
        return (*own, *(level.when for level in self.levels))

    def rule_texts(self) -> tuple[str, ...]:
        """Its texts for people: description, value texts and level texts."""
        texts = (self.description, self.true_text, self.false_text, self.otherwise_text,
                 *(level.text for level in self.levels))
        return tuple(text for text in texts if text)

    @property
    def is_boolean(self) -> bool:
        return self.when is not None

    def values(self) -> tuple[bool | int, ...]:
        """Every value this finding can take."""
        if self.is_boolean:
            return (True, False)
        values = [level.value for level in self.levels]
        assert self.otherwise_value is not None
        return tuple(dict.fromkeys([*values, self.otherwise_value]))

    def text_for(self, value: bool | int) -> str | None:
        if self.is_boolean:
            return self.true_text if value else self.false_text
        for level in self.levels:
            if level.value == value:
                return level.text
        return self.otherwise_text


@dataclass(frozen=True)
class GradeCriterion:
    id: str
    grade: int
    text: str
    when: Condition
    citations: tuple[str, ...]
    source: Source

    @property
    def rule_id(self) -> str:
        return self.id

    def rule_conditions(self) -> tuple[Condition, ...]:
        return (self.when,)

    def rule_texts(self) -> tuple[str, ...]:
        return (self.text,)


@dataclass(frozen=True)
class WeightBand:
    """A per-kg amount that applies from ``from_weight_kg`` (inclusive) up to the next band's."""

    from_weight_kg: float
    mg_per_kg: float


@dataclass(frozen=True)
class Amount:
    """How much one dose is: a fixed amount, or per kg by weight band, rounded down."""

    fixed_mg: float | None
    per_kg: tuple[WeightBand, ...]
    round_down_to_mg: float | None
    source: Source


@dataclass(frozen=True)
class Regimen:
    id: str
    amount: Amount | None
    every_h: float | None
    up_to_every_h: float | None
    times_daily: int | None
    for_days: float | None
    then: str | None
    source: Source
    step: int | None = None
    """The escalation step within the drug's class (classes with ``escalation_steps``)."""
    replaces: str | None = None
    """The id of a regimen of the same drug that this one replaces when proposed."""

    @property
    def interval_h(self) -> float | None:
        """The shortest time between two doses that this regimen allows."""
        if self.every_h is not None:
            return self.every_h
        if self.times_daily is not None:
            return HOURS_PER_DAY / self.times_daily
        return None


@dataclass(frozen=True)
class DoseLimits:
    max_dose_mg: float | None = None
    min_interval_h: float | None = None
    max_doses_in_window: int | None = None
    window_h: float | None = None
    max_doses_per_course: int | None = None
    repeat_only_if_not_improving: bool = False
    source: Source | None = None

    def is_empty(self) -> bool:
        return (
            self.max_dose_mg is None
            and self.min_interval_h is None
            and self.max_doses_in_window is None
            and self.max_doses_per_course is None
            and not self.repeat_only_if_not_improving
        )


@dataclass(frozen=True)
class Drug:
    id: str
    name: str
    route: str
    regimens: tuple[Regimen, ...]
    limits: DoseLimits
    citations: tuple[str, ...]
    source: Source

    @property
    def rule_id(self) -> str:
        return f"dosing.{self.id}"

    def rule_conditions(self) -> tuple[Condition, ...]:
        return ()  # a dose rule applies to every proposal of its drug

    def rule_texts(self) -> tuple[str, ...]:
        return ()  # its name is a name, not a text for people

    def regimen(self, regimen_id: str) -> Regimen | None:
        return next((r for r in self.regimens if r.id == regimen_id), None)


@dataclass(frozen=True)
class DrugClass:
    id: str
    description: str
    members: tuple[str, ...]
    source: Source
    escalation_steps: bool = False
    vocabulary_of: str | None = None
    """The input list (``vitals.vasopressors``) that accepts only this class's members."""
    refused_from: str | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class DrugName:
    """The names a drug may be written under: its id and its synonyms (lowercase)."""

    id: str
    synonyms: tuple[str, ...]
    citations: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class Pediatric:
    """Who is a child: under ``age_below_years``; with the age not recorded, under
    ``weight_below_kg_if_age_unknown``."""

    age_below_years: float
    weight_below_kg_if_age_unknown: float


@dataclass(frozen=True)
class Action:
    id: str
    text: str
    source: Source


@dataclass(frozen=True)
class DoseRef:
    drug: str
    regimen: str
    source: Source


@dataclass(frozen=True)
class ActionRule:
    id: str
    description: str
    when: Condition
    action: str
    strength: str  # "recommend" or "consider"
    dose: DoseRef | None
    citations: tuple[str, ...]
    source: Source

    @property
    def rule_id(self) -> str:
        return self.id

    def rule_conditions(self) -> tuple[Condition, ...]:
        return (self.when,)

    def rule_texts(self) -> tuple[str, ...]:
        return (self.description,)


@dataclass(frozen=True)
class AlertRule:
    id: str
    severity: str
    description: str
    text: str
    when: Condition
    citations: tuple[str, ...]
    source: Source
    if_unknown: str = "pending"
    """``pending`` or ``raise``: raised unless the recorded data rules it out."""

    @property
    def rule_id(self) -> str:
        return f"alert.{self.id}"

    def rule_conditions(self) -> tuple[Condition, ...]:
        return (self.when,)

    def rule_texts(self) -> tuple[str, ...]:
        return (self.description, self.text)


@dataclass(frozen=True)
class Statement:
    id: str
    text: str
    encoded_by: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class Deviation:
    """A seed statement the pack does not follow as written: what it does instead, why, and who
    decided when. ``rules`` are the rule ids that carry out what it does instead."""

    id: str
    statement: str
    instead: str
    reason: str
    decided_by: str
    date: str
    rules: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class Addition:
    """A rule (or a reading of one) that no seed statement asks for, and why the pack has it."""

    rule: str
    reason: str
    source: Source


@dataclass(frozen=True)
class ChangelogEntry:
    version: str
    date: str
    note: str


@dataclass(frozen=True)
class Definition:
    """The CRS definition (grading.yaml ``definition``): a text, its citations and who it applies to.
    A rule id of the pack, though not a rule that fires on its own (:attr:`Protocol.definition`)."""

    id: str
    text: str
    citations: tuple[str, ...]
    source: Source
    applies_when: Condition | None = None

    @property
    def rule_id(self) -> str:
        return self.id

    def rule_conditions(self) -> tuple[Condition, ...]:
        return () if self.applies_when is None else (self.applies_when,)

    def rule_texts(self) -> tuple[str, ...]:
        return ()  # the seed's words, quoted: the numbers-in-data check does not read it


@dataclass(frozen=True, eq=False)
class Protocol:
    """A validated rule pack. Compare packs by ``digest``; instances compare by identity."""

    id: str
    title: str
    version: str
    status: str
    effective_date: str
    digest: str
    recorded_digest: str | None
    changelog: tuple[ChangelogEntry, ...]
    definition_id: str
    definition_text: str
    definition_citations: tuple[str, ...]
    references: tuple[Reference, ...]
    findings: tuple[Finding, ...]
    grades: tuple[GradeCriterion, ...]
    drugs: tuple[Drug, ...]
    drug_classes: tuple[DrugClass, ...]
    actions: tuple[Action, ...]
    action_rules: tuple[ActionRule, ...]
    alerts: tuple[AlertRule, ...]
    statements: tuple[Statement, ...]
    headings: tuple[str, ...]
    path: str
    #: Where the definition is written (its citations are checked against the references).
    definition_source: Source | None = None
    #: Who the CRS definition applies to (e.g. patients who received immune effector cell
    #: therapy); when it certainly fails, the patient has no CRS grade ("not applicable").
    applies_when: Condition | None = None
    #: Seed statements the pack declares it does not follow as written (statements.yaml).
    deviations: tuple[Deviation, ...] = ()
    #: Rules no seed statement asks for, each with its reason (statements.yaml).
    additions: tuple[Addition, ...] = ()
    #: The names each drug may be written under (dosing.yaml ``names``).
    names: tuple[DrugName, ...] = ()
    #: Who is a child, for the fixed (adult) amounts (dosing.yaml ``pediatric``).
    pediatric: Pediatric | None = None
    #: Where the manifest's ``status`` is written (what a refusal of a draft or retired pack points at).
    status_source: Source | None = None
    #: The pack's files as loaded (documents with positions, the seed, the scenario files): what
    #: traceability, scenarios, release and ``diff`` read instead of the folder. None only for a
    #: protocol built by hand. ``dataclasses.replace`` keeps it, like every field: a copy with other
    #: values still carries the files of the pack it was loaded from.
    files: PackFiles | None = field(default=None, repr=False, compare=False)

    @cached_property
    def definition(self) -> Definition:
        """The CRS definition as one element, like the pack's other rules."""
        return Definition(self.definition_id, self.definition_text, self.definition_citations,
                          self.definition_source or Source(self.path, 0, 0), self.applies_when)

    def rules(self) -> tuple[PackRule, ...]:
        """THE list of the pack's rules, in file order, one :class:`PackRule` each (see
        :data:`RULE_FAMILIES`). Every stage that goes over "every rule" iterates this."""
        return self._rules

    @cached_property
    def _rules(self) -> tuple[PackRule, ...]:
        return tuple(rule for family in RULE_FAMILIES for rule in family.rules(self))

    def drug(self, drug_id: str) -> Drug | None:
        return next((d for d in self.drugs if d.id == drug_id), None)

    def reference(self, reference_id: str) -> Reference | None:
        return next((r for r in self.references if r.id == reference_id), None)

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def action(self, action_id: str) -> Action | None:
        return next((a for a in self.actions if a.id == action_id), None)

    def conditions(self) -> tuple[tuple[str, Condition], ...]:
        """(rule id, condition) for every condition of the pack, in file order."""
        return tuple((rule.id, condition) for rule in self.rules() for condition in rule.conditions)

    def rule_ids(self) -> tuple[str, ...]:
        """Every rule id of the pack, in file order."""
        return tuple(rule.id for rule in self.rules())


#: Every family of rules, in file order: the one list :meth:`Protocol.rules` is built from. A family
#: is declared here once; a new one also needs its element class (with what
#: :class:`~crs_rules.rule_registry.RuleElement` names), its field of :class:`Protocol`, the pack
#: builder's reading of its data (:mod:`crs_rules.pack`) and whatever stage gives it its meaning (the
#: engine, the scenario outcomes).
RULE_FAMILIES: tuple[RuleFamilyDeclaration[Protocol], ...] = (
    RuleFamilyDeclaration(RuleFamily.DEFINITION, lambda protocol: (protocol.definition,), "grading", "definition",
                          single=True),
    RuleFamilyDeclaration(RuleFamily.FINDING, lambda protocol: protocol.findings, "grading", "findings"),
    RuleFamilyDeclaration(RuleFamily.GRADE, lambda protocol: protocol.grades, "grading", "grades"),
    RuleFamilyDeclaration(RuleFamily.DOSING, lambda protocol: protocol.drugs, "dosing", "drugs"),
    RuleFamilyDeclaration(RuleFamily.ACTION_RULE, lambda protocol: protocol.action_rules, "actions", "rules"),
    RuleFamilyDeclaration(RuleFamily.ALERT, lambda protocol: protocol.alerts, "alerts", "alerts"),
)
