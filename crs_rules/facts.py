"""The facts the rules speak of: their names, their types, and how a patient state becomes them.

Rule conditions name facts by path. Four families exist:

- input facts, read from the patient state (``vitals.temperature_c``, ``patient.weight_kg``, ...);
- ``history.<drug or class>.<given|doses_in_course|doses_in_window|hours_since_last>`` and
  ``proposed.<drug or class>``, computed from the medication history and the proposed orders for
  every drug and drug class the pack names;
- ``finding.<id>``, set by the pack's findings and grade criteria (``finding.crs_grade``);
- ``action.<id>``, present when a rule of this decision proposes that action.

This module knows no protocol number: thresholds live in the pack, and the names of drugs come from
the pack's drugs and drug classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any, Iterable, Mapping

from .fields import FIELDS
from .model import GRADE_FINDING, Protocol
from .patient import Medication, PatientState
from .vocabulary import unrecognised

__all__ = ["FactType", "INPUT_FACTS", "fact_catalogue", "flat_facts", "history_facts", "input_paths", "SECONDS_PER_HOUR"]

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class FactType:
    """``kind`` is number, boolean, enum, list, level (a finding's whole-number values) or presence."""

    kind: str
    values: tuple[Any, ...] = ()
    description: str = ""


#: The engine's type of each kind of input field (a ``records`` field becomes history facts instead).
_KIND_OF_FIELD: dict[str, str] = {"number": "number", "boolean": "boolean", "choice": "enum", "list": "list"}

#: Facts derived from the input rather than read from one field, and what they say.
_DERIVED_INPUT_FACTS: dict[str, FactType] = {
    "crs.days_since_onset": FactType("number", description="days from crs.onset_at to assessed_at"),
}


def _input_facts() -> dict[str, FactType]:
    """The facts read from the input: every field of the table that fills the patient's state with one
    value (not a time, not a record), in the table's order, and the derived ones after their section."""
    facts: dict[str, FactType] = {}
    for entry in FIELDS:
        kind = _KIND_OF_FIELD.get(entry.type)
        if not entry.in_state or kind is None:
            continue
        facts[entry.path] = FactType(kind, entry.values if kind == "enum" else (), entry.meaning)
    return {**facts, **_DERIVED_INPUT_FACTS}


INPUT_FACTS: dict[str, FactType] = _input_facts()
#: (path, PatientState attribute or None when kept by path) of every input fact read from one field.
_FIELD_FACTS: tuple[tuple[str, str | None], ...] = tuple(
    (f.path, f.attribute) for f in FIELDS if f.path in INPUT_FACTS and (f.attribute is not None or f.by_path))

#: Facts about the names and records of the input (unknown without a record, except a name among
#: the proposed orders), and whether the patient is a child (always known: the weight is required).
RECORD_FACTS: dict[str, FactType] = {
    "record.unrecognised_names": FactType(
        "boolean", description="a name in medications or proposed_orders that the pack's vocabulary does not know"),
    "record.duplicate_doses": FactType("boolean", description="two records of the same drug at the same time"),
    "record.dose_above_limit": FactType(
        "boolean", description="a recorded dose above its drug's max_dose_mg (the pack's or the safety envelope's)"),
    "patient.child": FactType(
        "boolean", description="under the pack's pediatric age; with the age not recorded, under its weight"),
}


def drug_names(protocol: Protocol) -> tuple[str, ...]:
    """Drugs and drug classes the pack names: the keys of ``history.*`` and ``proposed.*``."""
    return tuple(dict.fromkeys([*(d.id for d in protocol.drugs), *(c.id for c in protocol.drug_classes)]))


def fact_catalogue(protocol: Protocol) -> dict[str, FactType]:
    """Every fact path a condition of this pack may name, with its type."""
    catalogue = dict(INPUT_FACTS)
    for name in drug_names(protocol):
        catalogue[f"history.{name}.given"] = FactType("boolean")
        catalogue[f"history.{name}.given_since_onset"] = FactType(
            "boolean", description="given at or after crs.onset_at; unknown when the onset is not recorded")
        catalogue[f"history.{name}.doses_in_course"] = FactType("number")
        catalogue[f"history.{name}.hours_since_last"] = FactType("number")
        catalogue[f"proposed.{name}"] = FactType("boolean")
        catalogue[f"history.{name}.recorded"] = FactType(
            "boolean", description="given according to the medication record; false when no record is given")
    for drug in protocol.drugs:
        if drug.limits.window_h is not None:
            catalogue[f"history.{drug.id}.doses_in_window"] = FactType("number")
        if any(r.for_days is not None for r in drug.regimens):
            catalogue[f"history.{drug.id}.hours_since_first_in_course"] = FactType("number")
    for drug_class in protocol.drug_classes:
        if drug_class.escalation_steps:
            catalogue[f"history.{drug_class.id}.last_step"] = FactType(
                "number", description="the escalation step of the class's last dose (0: a member without steps)")
            catalogue[f"history.{drug_class.id}.hours_since_last_step"] = FactType("number")
    catalogue.update(RECORD_FACTS)
    for finding in protocol.findings:
        kind = "boolean" if finding.is_boolean else "level"
        catalogue[f"finding.{finding.id}"] = FactType(kind, finding.values())
    grades = tuple(sorted({g.grade for g in protocol.grades}))
    catalogue[f"finding.{GRADE_FINDING}"] = FactType("level", grades)
    for action in protocol.actions:
        catalogue[f"action.{action.id}"] = FactType("presence")
    return catalogue


def _members(protocol: Protocol, name: str) -> frozenset[str]:
    for drug_class in protocol.drug_classes:
        if drug_class.id == name:
            return frozenset(drug_class.members)
    return frozenset([name])


def distinct_doses(medications: Iterable[Medication]) -> list[Medication]:
    """The record with repeated records (same drug, same time) counted once."""
    seen: dict[tuple[str, Any], Medication] = {}
    for medication in medications:
        seen.setdefault((medication.drug, medication.given_at), medication)
    return list(seen.values())


def duplicate_records(patient: PatientState) -> tuple[Medication, ...]:
    """Each record that repeats an earlier one (same drug, same time)."""
    seen: set[tuple[str, Any]] = set()
    repeated: list[Medication] = []
    for medication in patient.medications or ():
        if (medication.drug, medication.given_at) in seen:
            repeated.append(medication)
        seen.add((medication.drug, medication.given_at))
    return tuple(repeated)


def doses_above_limit(patient: PatientState, protocol: Protocol) -> tuple[Medication, ...]:
    """Each recorded dose above its drug's per-dose cap: the pack's ``max_dose_mg`` or the safety
    envelope's, the lower (the envelope caps the steroids the pack gives no cap)."""
    caps = _dose_caps(protocol)
    return tuple(m for m in patient.medications or ()
                 if m.drug in caps and m.dose_mg is not None and m.dose_mg > caps[m.drug])


@lru_cache(maxsize=64)
def _dose_caps(protocol: Protocol) -> Mapping[str, float]:
    """Each drug's per-dose cap (see :func:`doses_above_limit`), once per pack."""
    from .envelope import default_envelope  # importing the checks' package, which imports this module

    caps: dict[str, float] = {}
    hard = {d.drug: d.max_dose_mg for d in default_envelope().drugs if d.max_dose_mg is not None}
    for drug in protocol.drugs:
        found = [c for c in (drug.limits.max_dose_mg, hard.get(drug.id)) if c is not None]
        if found:
            caps[drug.id] = min(found)
    return caps


def is_child(patient: PatientState, protocol: Protocol) -> bool:
    """Under the pack's pediatric age; with the age not recorded, under its pediatric weight."""
    pediatric = protocol.pediatric
    if pediatric is None:
        return False
    if patient.age_years is not None:
        return patient.age_years < pediatric.age_below_years
    return patient.weight_kg < pediatric.weight_below_kg_if_age_unknown


def dose_step(protocol: Protocol, medication: Medication) -> int:
    """The escalation step of a recorded dose: the highest step of its drug's regimens whose
    fixed amount the dose reaches (the highest step when the amount is not recorded or reaches
    none); 0 for a drug without steps."""
    drug = protocol.drug(medication.drug)
    stepped = [r for r in drug.regimens if r.step is not None] if drug is not None else []
    if not stepped:
        return 0
    if medication.dose_mg is not None:
        reached = [r.step for r in stepped if r.step is not None and r.amount is not None
                   and r.amount.fixed_mg is not None and medication.dose_mg >= r.amount.fixed_mg]
        if reached:
            return max(reached)
    return max(r.step for r in stepped if r.step is not None)


def _record_facts(patient: PatientState, protocol: Protocol) -> dict[str, Any]:
    facts: dict[str, Any] = {"patient.child": is_child(patient, protocol)}
    names = bool(unrecognised(patient, protocol))
    if patient.medications is None:
        # Without the record, what it would hold is unknown: only a name among the orders is known.
        if names:
            facts["record.unrecognised_names"] = True
        return facts
    facts["record.unrecognised_names"] = names
    facts["record.duplicate_doses"] = bool(duplicate_records(patient))
    facts["record.dose_above_limit"] = bool(doses_above_limit(patient, protocol))
    return facts


def history_facts(patient: PatientState, protocol: Protocol) -> dict[str, Any]:
    """``history.*`` and ``proposed.*`` facts for every drug and class the pack names. Without the
    medication record (``medications`` absent) every ``history.*`` fact is unknown (left out),
    except ``recorded`` (false: nothing is recorded). Repeated records (same drug, same time)
    count once; the course counts the doses at or after ``crs.onset_at`` (every dose when the
    onset is not recorded); the interval and the window count every dose."""
    facts: dict[str, Any] = _record_facts(patient, protocol)
    proposed = patient.proposed_orders
    onset = patient.crs_onset_at
    now = patient.assessed_at
    record = distinct_doses(patient.medications or ())
    unknown = patient.medications is None
    for row in _history_table(protocol):
        members, keys = row.members, row.keys
        given = [m for m in record if m.drug in members] if record else record
        facts[keys.proposed] = not members.isdisjoint(proposed)
        facts[keys.recorded] = bool(given)
        if unknown:
            continue
        if not given:
            facts.update(row.none_given)
            continue
        in_course = given if onset is None else [m for m in given if m.given_at >= onset]
        facts[keys.given] = bool(given)
        facts[keys.doses_in_course] = len(in_course)
        if row.coursed and in_course:
            first = min(m.given_at for m in in_course)
            facts[keys.hours_since_first_in_course] = (now - first).total_seconds() / SECONDS_PER_HOUR
        if row.stepped_class:
            steps = _steps(protocol)
            stepped = [(m.given_at, _step(steps, m)) for m in given]
            stepped = [s for s in stepped if s[1] > 0]
            if stepped:
                last_at = max(at for at, _ in stepped)
                facts[keys.last_step] = max(step for at, step in stepped if at == last_at)
                facts[keys.hours_since_last_step] = (now - last_at).total_seconds() / SECONDS_PER_HOUR
            else:
                facts[keys.last_step] = 0
        if not given:
            facts[keys.given_since_onset] = False
        elif onset is not None:
            facts[keys.given_since_onset] = any(m.given_at >= onset for m in given)
        if given:
            last = max(m.given_at for m in given)
            elapsed = (now - last).total_seconds()
            facts[keys.hours_since_last] = elapsed / SECONDS_PER_HOUR
        if row.window is not None:
            # A dose given exactly one window before the assessment is outside the window. Elapsed
            # time, not a start instant: an instant one window before a year-1 assessment does not exist.
            window = row.window
            facts[keys.doses_in_window] = sum(1 for m in given if now - m.given_at < window)
    return facts


@dataclass(frozen=True)
class _HistoryKeys:
    """The paths of the ``proposed.*`` and ``history.*`` facts of one drug or class."""

    proposed: str
    recorded: str
    given: str
    doses_in_course: str
    hours_since_first_in_course: str
    last_step: str
    hours_since_last_step: str
    given_since_onset: str
    hours_since_last: str
    doses_in_window: str

    @classmethod
    def of(cls, name: str) -> _HistoryKeys:
        history = f"history.{name}"
        return cls(f"proposed.{name}", f"{history}.recorded", f"{history}.given", f"{history}.doses_in_course",
                   f"{history}.hours_since_first_in_course", f"{history}.last_step",
                   f"{history}.hours_since_last_step", f"{history}.given_since_onset", f"{history}.hours_since_last",
                   f"{history}.doses_in_window")


@dataclass(frozen=True)
class _HistoryRow:
    """A drug or class the pack names: its members, whether it is a drug with a course in days,
    whether it is a class with escalation steps, its window, and its facts' paths."""

    members: frozenset[str]
    coursed: bool
    stepped_class: bool
    window: timedelta | None
    keys: _HistoryKeys
    none_given: Mapping[str, Any]
    """Its ``history.*`` facts, in order, when the record holds no dose of it."""


@lru_cache(maxsize=64)
def _history_table(protocol: Protocol) -> tuple[_HistoryRow, ...]:
    """For each drug and class the pack names, once per pack (see :class:`_HistoryRow`)."""
    windows = {d.id: d.limits.window_h for d in protocol.drugs}
    table = []
    for name in drug_names(protocol):
        drug = protocol.drug(name)
        coursed = drug is not None and any(r.for_days is not None for r in drug.regimens)
        stepped_class = any(c.id == name and c.escalation_steps for c in protocol.drug_classes)
        window_h = windows.get(name)
        keys = _HistoryKeys.of(name)
        none_given: dict[str, Any] = {keys.given: False, keys.doses_in_course: 0}
        if stepped_class:
            none_given[keys.last_step] = 0
        none_given[keys.given_since_onset] = False
        if window_h is not None:
            none_given[keys.doses_in_window] = 0
        table.append(_HistoryRow(_members(protocol, name), coursed, stepped_class,
                                 timedelta(hours=window_h) if window_h is not None else None, keys, none_given))
    return tuple(table)


@lru_cache(maxsize=64)
def _steps(protocol: Protocol) -> Mapping[str, tuple[int, tuple[tuple[int, float], ...]]]:
    """For each drug with escalation steps, once per pack: its highest step, and (step, fixed
    amount) of each step with a fixed amount (see :func:`dose_step`)."""
    steps: dict[str, tuple[int, tuple[tuple[int, float], ...]]] = {}
    for drug_id in dict.fromkeys(d.id for d in protocol.drugs):
        drug = protocol.drug(drug_id)  # the first of an id, as dose_step finds it
        assert drug is not None
        stepped = [r for r in drug.regimens if r.step is not None]
        if stepped:
            steps[drug.id] = (max(r.step for r in stepped if r.step is not None),
                              tuple((r.step, r.amount.fixed_mg) for r in stepped if r.step is not None
                                    and r.amount is not None and r.amount.fixed_mg is not None))
    return steps


def _step(steps: Mapping[str, tuple[int, tuple[tuple[int, float], ...]]], medication: Medication) -> int:
    """:func:`dose_step` from the pack's table of steps."""
    found = steps.get(medication.drug)
    if found is None:
        return 0
    highest, fixed = found
    if medication.dose_mg is not None:
        reached = [step for step, amount in fixed if medication.dose_mg >= amount]
        if reached:
            return max(reached)
    return highest


_FIELD_PATHS = tuple(path for path, _ in _FIELD_FACTS)
_ATTRIBUTES = tuple(attribute for _, attribute in _FIELD_FACTS if attribute is not None)
#: Every field fact at once, when each has an attribute of its own (else one by one, see flat_facts).
_READ_FIELDS = attrgetter(*_ATTRIBUTES) if len(_ATTRIBUTES) == len(_FIELD_FACTS) > 1 else None
# Every input fact is encoded, whatever the patient: the fields (the statement and the vasopressors
# among them, read again by flat_facts), then the readings that are no field.
assert {*_FIELD_PATHS, "crs.days_since_onset"} == set(INPUT_FACTS), "every input fact must be encoded"
_STATEMENT = _FIELD_PATHS.index("crs.antipyretic_or_anticytokine")
_VASOPRESSORS = _FIELD_PATHS.index("vitals.vasopressors")


def flat_facts(patient: PatientState, protocol: Protocol) -> dict[str, Any]:
    """The patient's input and history facts as ``{path: value}``; unknown values are left out."""
    # Every field fact as the patient's state holds it (its attribute, or kept by path), from the
    # table: a field added to the contract reaches the engine with no edit here.
    if _READ_FIELDS is not None:
        read = list(_READ_FIELDS(patient))
    else:
        read = [getattr(patient, attribute) if attribute is not None else patient.inputs.get(path)
                for path, attribute in _FIELD_FACTS]
    # The readings that are not the field as given:
    # The clinician's statement adds therapy the record may lack; absent adds nothing.
    read[_STATEMENT] = patient.antipyretic_or_anticytokine is True
    # Not hypotensive: no vasopressor for hypotension (listing one is an input error).
    if patient.hypotension is False:
        read[_VASOPRESSORS] = ()
    values = {path: value for path, value in zip(_FIELD_PATHS, read) if value is not None}
    if patient.crs_onset_at is not None:
        values["crs.days_since_onset"] = (patient.assessed_at - patient.crs_onset_at).total_seconds() / SECONDS_PER_DAY
    # The history facts are never unknown values: an unknown one is left out.
    values.update(history_facts(patient, protocol))
    return values


def input_paths(fact: str, patient: PatientState) -> tuple[str, ...]:
    """The paths of the patient state to record so that an unknown input fact becomes known."""
    family, _, rest = fact.partition(".")
    if family == "history":
        if patient.medications is None:
            return ("medications",)
        return ("crs.onset_at",) if rest.endswith(".given_since_onset") else ()
    if family == "proposed":
        return ("proposed_orders",)
    if family == "record":
        return ("medications",) if patient.medications is None else ()
    if fact == "patient.child":
        return ()  # always known
    if fact == "crs.days_since_onset":
        return ("crs.onset_at",)
    if fact == "vitals.oxygen.device":
        return ("vitals.oxygen",)
    return (fact,)


def list_count_key(not_counting: Iterable[str]) -> str:
    """The attribute under which a list's count without some names is stored for the engine."""
    names = sorted(not_counting)
    return "count_without__" + "__".join(names) if names else "count"
