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

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Iterable

from ._resources import schema_dir
from .model import GRADE_FINDING, Protocol
from .patient import PatientState

__all__ = ["FactType", "INPUT_FACTS", "fact_catalogue", "flat_facts", "history_facts", "SECONDS_PER_HOUR"]

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class FactType:
    """``kind`` is number, boolean, enum, list, level (a finding's whole-number values) or presence."""

    kind: str
    values: tuple[Any, ...] = ()
    description: str = ""


@lru_cache(maxsize=1)
def _oxygen_devices() -> tuple[str, ...]:
    # One source of truth for the device names: the input contract's schema.
    schema = json.loads((schema_dir() / "patient.schema.json").read_text(encoding="utf-8"))
    device = schema["properties"]["vitals"]["properties"]["oxygen"]["properties"]["device"]
    return tuple(device["enum"])


def _input_facts() -> dict[str, FactType]:
    number, boolean = FactType("number"), FactType("boolean")
    return {
        "patient.weight_kg": number,
        "patient.age_years": number,
        "patient.neutropenic": boolean,
        "patient.significant_comorbidities": boolean,
        "therapy.car_t": boolean,
        "crs.days_since_onset": FactType("number", description="days from crs.onset_at to assessed_at"),
        "crs.antipyretic_or_anticytokine": boolean,
        "crs.improving": boolean,
        "crs.suspected_mas": boolean,
        "sepsis.septic_shock": boolean,
        "sepsis.improving": boolean,
        "vitals.temperature_c": FactType("number", description="temperature_f converted exactly"),
        "vitals.hypotension": boolean,
        "vitals.refractory_hypotension": boolean,
        "vitals.vasopressors": FactType("list"),
        "vitals.oxygen.device": FactType("enum", _oxygen_devices()),
        "vitals.oxygen.flow_l_min": number,
        "neuro.icans_signs": boolean,
    }


INPUT_FACTS: dict[str, FactType] = _input_facts()


def drug_names(protocol: Protocol) -> tuple[str, ...]:
    """Drugs and drug classes the pack names: the keys of ``history.*`` and ``proposed.*``."""
    return tuple(dict.fromkeys([*(d.id for d in protocol.drugs), *(c.id for c in protocol.drug_classes)]))


def fact_catalogue(protocol: Protocol) -> dict[str, FactType]:
    """Every fact path a condition of this pack may name, with its type."""
    catalogue = dict(INPUT_FACTS)
    for name in drug_names(protocol):
        catalogue[f"history.{name}.given"] = FactType("boolean")
        catalogue[f"history.{name}.doses_in_course"] = FactType("number")
        catalogue[f"history.{name}.hours_since_last"] = FactType("number")
        catalogue[f"proposed.{name}"] = FactType("boolean")
    for drug in protocol.drugs:
        if drug.limits.window_h is not None:
            catalogue[f"history.{drug.id}.doses_in_window"] = FactType("number")
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


def history_facts(patient: PatientState, protocol: Protocol) -> dict[str, Any]:
    """``history.*`` and ``proposed.*`` facts for every drug and class the pack names."""
    facts: dict[str, Any] = {}
    windows = {d.id: d.limits.window_h for d in protocol.drugs}
    proposed = set(patient.proposed_orders)
    for name in drug_names(protocol):
        members = _members(protocol, name)
        given = [m for m in patient.medications if m.drug in members]
        facts[f"history.{name}.given"] = bool(given)
        facts[f"history.{name}.doses_in_course"] = len(given)
        if given:
            last = max(m.given_at for m in given)
            elapsed = (patient.assessed_at - last).total_seconds()
            facts[f"history.{name}.hours_since_last"] = elapsed / SECONDS_PER_HOUR
        window_h = windows.get(name)
        if window_h is not None:
            # A dose given exactly one window before the assessment is outside the window. Elapsed
            # time, not a start instant: an instant one window before a year-1 assessment does not exist.
            window = timedelta(hours=window_h)
            facts[f"history.{name}.doses_in_window"] = sum(
                1 for m in given if patient.assessed_at - m.given_at < window)
        facts[f"proposed.{name}"] = bool(proposed & members)
    return facts


def flat_facts(patient: PatientState, protocol: Protocol) -> dict[str, Any]:
    """The patient's input and history facts as ``{path: value}``; unknown values are left out."""
    days_since_onset = None
    if patient.crs_onset_at is not None:
        days_since_onset = (patient.assessed_at - patient.crs_onset_at).total_seconds() / SECONDS_PER_DAY
    values: dict[str, Any] = {
        "patient.weight_kg": patient.weight_kg,
        "patient.age_years": patient.age_years,
        "patient.neutropenic": patient.neutropenic,
        "patient.significant_comorbidities": patient.significant_comorbidities,
        "therapy.car_t": patient.car_t,
        "crs.days_since_onset": days_since_onset,
        "crs.antipyretic_or_anticytokine": patient.antipyretic_or_anticytokine,
        "crs.improving": patient.improving,
        "crs.suspected_mas": patient.suspected_mas,
        "sepsis.septic_shock": patient.septic_shock,
        "sepsis.improving": patient.sepsis_improving,
        "vitals.temperature_c": patient.temperature_c,
        "vitals.hypotension": patient.hypotension,
        "vitals.refractory_hypotension": patient.refractory_hypotension,
        "vitals.vasopressors": tuple(patient.vasopressors),
        "vitals.oxygen.device": patient.oxygen_device,
        "vitals.oxygen.flow_l_min": patient.oxygen_flow_l_min,
        "neuro.icans_signs": patient.icans_signs,
    }
    assert set(values) == set(INPUT_FACTS), "every input fact must be encoded"
    values.update(history_facts(patient, protocol))
    return {path: value for path, value in values.items() if value is not None}


def list_count_key(not_counting: Iterable[str]) -> str:
    """The attribute under which a list's count without some names is stored for the engine."""
    names = sorted(not_counting)
    return "count_without__" + "__".join(names) if names else "count"
