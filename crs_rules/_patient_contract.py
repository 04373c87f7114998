"""The input contract's result: :class:`PatientState`, read from valid input and given back.

A valid input becomes a :class:`PatientState` through :func:`build_state`, field by field as the
table of input fields (:mod:`crs_rules.fields`) declares them; :func:`state_input` gives back the
input a state stands for, so that a state built or changed by a caller can be checked again. The
JSON Schema of the contract (``schemas/patient.schema.json``) is read here, once. The states built
from input that passed every check are recorded (:func:`accepted`), with where they were read from.
The checks are in :mod:`crs_rules._patient_checks`, their words in :mod:`crs_rules._input_words`,
and the public entry points in :mod:`crs_rules.patient`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import weakref
from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction
from functools import cache
from typing import Any, Final

from jsonschema import Draft202012Validator

from ._resources import schema_dir
from .errors import CrsRulesError
from .fields import FIELDS
from .loading import LoadedDocument

__all__ = [
    "Medication", "PatientState", "Path_", "SCHEMA_PATH", "MAX_LIST_ITEMS", "contract_schema", "patient_schema",
    "build_state", "state_input", "accepted", "register", "origin_of",
]

Path_ = tuple[str | int, ...]

#: The input contract as JSON Schema, in ``schemas/`` beside the package.
SCHEMA_PATH: Final = schema_dir() / "patient.schema.json"

#: The most items each list of the input may hold (:mod:`crs_rules.fields`, ``maxItems`` in the
#: schema): far beyond any real patient, and small enough that a hostile list is refused at once
#: instead of being checked item by item (a list longer than its bound is reported once and only
#: its first items are checked).
MAX_LIST_ITEMS: Final[Mapping[str, int]] = {
    f.keys[-1]: f.max_items for f in FIELDS if f.max_items is not None
}

# The fields read as they are (a date-time as its instant, a number as a float).
_SCALARS: Final = tuple(f for f in FIELDS if f.attribute is not None and f.type in ("date-time", "number",
                                                                                     "boolean", "choice"))


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Medication:
    """One dose that was given before the assessment."""

    drug: str
    given_at: datetime
    """Timezone-aware, in UTC."""
    dose_mg: float | None


@dataclasses.dataclass(frozen=True)
class PatientState:
    """A valid patient state. ``None`` means unknown (the field was absent, or a boolean was null)."""

    assessed_at: datetime
    """Timezone-aware, in UTC."""
    weight_kg: float
    age_years: float | None
    neutropenic: bool | None
    significant_comorbidities: bool | None
    car_t: bool | None
    crs_onset_at: datetime | None
    """Timezone-aware, in UTC."""
    antipyretic_or_anticytokine: bool | None
    improving: bool | None
    suspected_mas: bool | None
    septic_shock: bool | None
    sepsis_improving: bool | None
    temperature_c: float | None
    """In °C; ``vitals.temperature_f`` is converted exactly (100.4 °F is 38.0 °C)."""
    hypotension: bool | None
    refractory_hypotension: bool | None
    vasopressors: tuple[str, ...] | None
    """Distinct names, sorted; ``None`` when not recorded (an empty list says none)."""
    oxygen_device: str | None
    oxygen_flow_l_min: float | None
    icans_signs: bool | None
    medications: tuple[Medication, ...] | None
    """Sorted by (given_at, drug, dose_mg or 0); ``None`` when the record is not given (unknown),
    an empty tuple when nothing was given."""
    proposed_orders: tuple[str, ...]
    """Distinct drug names, sorted."""
    attributed_to_other_cause: tuple[str, ...] = ()
    """Signs (``fever``, ``hypotension``, ``hypoxia``) a clinician attributes to another cause, sorted."""


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@cache
def contract_schema() -> dict[str, Any]:
    try:
        text = SCHEMA_PATH.read_text(encoding="utf-8")
    except OSError as exc:  # an installation fault, not an input problem
        raise CrsRulesError(f"the patient schema cannot be read: {exc}") from exc
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def patient_schema() -> dict[str, Any]:
    """A copy of the JSON Schema of the patient state (``schemas/patient.schema.json``)."""
    return copy.deepcopy(contract_schema())


# --------------------------------------------------------------------------------------------
# Building the state from valid data, and the input a state stands for
# --------------------------------------------------------------------------------------------


def _fahrenheit_to_celsius(value: float) -> float:
    """Exact conversion: the decimal the caller wrote, (F - 32) × 5/9, rounded once."""
    return float((Fraction(str(value)) - 32) * 5 / 9)


def _lookup(data: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` in valid data, None when a part is absent."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def build_state(data: dict[str, Any], instants: Mapping[Path_, datetime]) -> PatientState:
    values: dict[str, Any] = {}
    for each in _SCALARS:
        assert each.attribute is not None
        if each.type == "date-time":
            values[each.attribute] = instants.get(each.keys)
        else:
            value = _lookup(data, each.keys)
            values[each.attribute] = float(value) if each.type == "number" and value is not None else value
    vitals = _lookup(data, ("vitals",)) or {}
    if "temperature_f" in vitals:
        values["temperature_c"] = _fahrenheit_to_celsius(vitals["temperature_f"])
    values["vasopressors"] = tuple(sorted(set(vitals["vasopressors"]))) if "vasopressors" in vitals else None
    values["attributed_to_other_cause"] = tuple(sorted(set(vitals.get("attributed_to_other_cause", []))))
    values["medications"] = tuple(
        sorted(
            (
                Medication(
                    drug=item["drug"],
                    given_at=instants[("medications", index, "given_at")],
                    dose_mg=None if item.get("dose_mg") is None else float(item["dose_mg"]),
                )
                for index, item in enumerate(data.get("medications", []))
            ),
            key=lambda m: (m.given_at, m.drug, m.dose_mg or 0.0),
        )
    ) if "medications" in data else None
    values["proposed_orders"] = tuple(sorted({order["drug"] for order in data.get("proposed_orders", [])}))
    return PatientState(**values)


def state_input(state: PatientState) -> dict[str, Any]:
    """The input, following the contract, that a :class:`PatientState` stands for: what
    :func:`~crs_rules.evaluation.evaluate` checks again when given a state rather than a mapping,
    so that a state built or changed by the caller (``PatientState(...)``,
    ``dataclasses.replace``) passes through the same checks as any input. Total over any field
    values: a value of the wrong type is passed on as it is, for the checks to name."""

    def listed(value: Any) -> Any:
        return list(value) if isinstance(value, (tuple, list)) else value

    def medication(item: Any) -> Any:
        if not isinstance(item, Medication):
            return item
        return {"drug": item.drug, "given_at": item.given_at,
                **({} if item.dose_mg is None else {"dose_mg": item.dose_mg})}

    def put(keys: tuple[str, ...], value: Any) -> None:
        holder = data
        for key in keys[:-1]:
            holder = holder.setdefault(key, {})
        holder[keys[-1]] = value

    data: dict[str, Any] = {}
    for each in _SCALARS:
        assert each.attribute is not None
        value = getattr(state, each.attribute)
        if value is not None or each.always_present:
            put(each.keys, value)
    if state.vasopressors is not None:
        put(("vitals", "vasopressors"), listed(state.vasopressors))
    if state.attributed_to_other_cause:
        put(("vitals", "attributed_to_other_cause"), listed(state.attributed_to_other_cause))
    if state.medications is not None:
        medications = state.medications
        data["medications"] = ([medication(item) for item in medications]
                               if isinstance(medications, (tuple, list)) else medications)
    orders = state.proposed_orders
    if orders:
        data["proposed_orders"] = [{"drug": drug} for drug in orders] if isinstance(orders, (tuple, list)) else orders
    return data


# --------------------------------------------------------------------------------------------
# The states built from accepted input
# --------------------------------------------------------------------------------------------


# The states this module built from input it accepted, by identity: evaluate() checks any other
# PatientState again (state_input, then the checks). A state is frozen, so one built here stays
# valid; a copy changed with dataclasses.replace is another object, and is checked.
_accepted: Final[weakref.WeakValueDictionary[int, PatientState]] = weakref.WeakValueDictionary()


def accepted(state: PatientState) -> bool:
    """Whether ``state`` is a state this module built from input that passed every check."""
    return _accepted.get(id(state)) is state


@dataclasses.dataclass(frozen=True)
class _Origin:
    """Where an accepted state was read from: the source's name, its document (for positions)
    and the data as checked (lists in the order written)."""

    source: str
    positions: LoadedDocument | None
    data: Any


_origins: Final[dict[int, _Origin]] = {}


def register(state: PatientState, source: str, positions: LoadedDocument | None, data: Any) -> None:
    """Record ``state`` as built from ``data`` (read from ``source``) after every check passed."""
    _accepted[id(state)] = state
    _origins[id(state)] = _Origin(source, positions, data)
    weakref.finalize(state, _origins.pop, id(state), None)


def origin_of(state: PatientState) -> _Origin | None:
    """Where an accepted state was read from; None for any other state."""
    return _origins.get(id(state)) if accepted(state) else None
