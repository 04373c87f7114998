"""A patient state shown to people: the input that gives it, and one line of clinical shorthand.

:func:`state_input` is the input, following the contract, that gives a state (times in UTC, the
temperature in °C): what a ``crs-rules diff`` example shows, so that ``crs-rules evaluate`` can be
run on it. :func:`describe_patient` is the state in one line. Both go field by field as the table of
input fields (:mod:`crs_rules.fields`) declares them, so a field added to the contract is shown.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any, Final

from .decision import iso
from .fields import FIELDS, Field
from .patient import PatientState

__all__ = ["state_input", "describe_patient"]


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    holder = data
    for key in keys[:-1]:
        holder = holder.setdefault(key, {})
    holder[keys[-1]] = value


def state_input(state: PatientState) -> dict[str, Any]:
    """The input that gives this state (times in UTC, temperature in °C): what an example shows,
    so that ``crs-rules evaluate`` can be run on it. Field by field as the table reads them (a
    list whose absence reads as empty is left out when empty; any other unknown value is left out)."""
    data: dict[str, Any] = {}
    for entry in FIELDS:
        if not entry.in_state or entry.type == "records":
            continue
        value = state.value(entry.path)
        if value is None or (value == () and entry.path in _EMPTY_WHEN_ABSENT):
            continue
        if isinstance(value, datetime):
            value = iso(value)
        _put(data, entry.path, list(value) if isinstance(value, tuple) else value)
    if state.medications is not None:
        data["medications"] = [{k: v for k, v in (("drug", m.drug), ("dose_mg", m.dose_mg), ("given_at", iso(m.given_at)))
                                if v is not None} for m in state.medications]
    if state.proposed_orders:
        data["proposed_orders"] = [{"drug": drug} for drug in state.proposed_orders]
    return data


#: The lists of the state that are empty, not unknown, when absent from the input.
_EMPTY_WHEN_ABSENT: Final = frozenset(
    f.path for f in FIELDS if f.attribute is not None and f.type == "list"
    and next(d for d in dataclass_fields(PatientState) if d.name == f.attribute).default == ())


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _decimals(value: float) -> str:
    """38.0, 37.95, 38.01: at least one decimal, at most two."""
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


def _tri(value: bool | None, true: str, false: str, unknown: str) -> str:
    return unknown if value is None else true if value else false


#: The fields :func:`describe_patient` words together with others (hypotension with the
#: vasopressors, the temperature in °F as °C) or on their own (improvement, the weight and age).
_DESCRIBED_APART: Final = frozenset({"patient.weight_kg", "patient.age_years", "crs.improving", "crs.onset_at",
                                     "vitals.temperature_c", "vitals.hypotension", "vitals.vasopressors",
                                     "vitals.oxygen.device", "vitals.oxygen.flow_l_min", "assessed_at"})


def _known(entry: Field, value: Any) -> str | None:
    """A field described by the table: a true/false named when true, another value after its name."""
    if entry.type == "boolean":
        return entry.short if value is True else None
    if isinstance(value, tuple):
        return f"{entry.short} {', '.join(map(str, value))}" if value else None
    if isinstance(value, datetime):
        return f"{entry.short} {iso(value)}"
    if isinstance(value, float):
        return f"{entry.short} {_number(value)}" + (f" {entry.unit}" if entry.unit else "")
    return f"{entry.short} {value}"


def describe_patient(state: PatientState) -> str:
    """A patient in one line of clinical shorthand: weight and age, the signs the grade reads,
    the CRS course, then every other field of the table that is known (a true/false when true)."""
    who = f"{_number(state.weight_kg)} kg"
    who += f", {_number(state.age_years)} y" if state.age_years is not None else ", age unknown"
    parts = [who]
    parts.append(f"{_decimals(state.temperature_c)} °C" if state.temperature_c is not None else "no temperature")
    if state.vasopressors:
        parts.append("vasopressors " + ", ".join(state.vasopressors))
    else:
        parts.append(_tri(state.hypotension, "hypotension without vasopressors", "no hypotension",
                          "hypotension unknown"))
    if state.oxygen_device is not None:
        flow = f" {_number(state.oxygen_flow_l_min)} L/min" if state.oxygen_flow_l_min is not None else ""
        parts.append(f"{state.oxygen_device}{flow}")
    else:
        parts.append("no oxygen recorded")
    if state.crs_onset_at is not None:
        days = (state.assessed_at - state.crs_onset_at).total_seconds() / 86400
        parts.append(f"CRS onset {days:.2f}".rstrip("0").rstrip(".") + " days ago")
    parts.append(_tri(state.improving, "improving", "not improving", "improvement unknown"))
    for entry in FIELDS:
        if entry.in_state and entry.type != "records" and entry.path not in _DESCRIBED_APART:
            value = state.value(entry.path)
            text = _known(entry, value) if value is not None else None
            if text:
                parts.append(text)
    given: dict[str, list[str]] = {}
    for medication in state.medications or ():
        hours = (state.assessed_at - medication.given_at).total_seconds() / 3600
        given.setdefault(medication.drug, []).append(f"{hours:.1f}".rstrip("0").rstrip(".") + " h")
    if given:
        parts.append("given " + "; ".join(f"{drug} {', '.join(reversed(times))} ago" for drug, times in given.items()))
    elif state.medications is None:
        parts.append("medication record not given")
    else:
        parts.append("no medication given")
    if state.proposed_orders:
        parts.append("proposed " + ", ".join(state.proposed_orders))
    return "; ".join(parts)
