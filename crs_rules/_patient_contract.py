"""The input contract's result: :class:`PatientState`, read from valid input and given back.

A valid input becomes a :class:`PatientState` through :func:`build_state`, field by field as the
table of input fields (:mod:`crs_rules.fields`) declares them (a field without an attribute of its
own into :attr:`PatientState.inputs`, by path); :func:`state_input` gives back the input a state
stands for, so that a state built or changed by a caller can be checked again. The JSON Schema of
the contract (``schemas/patient.schema.json``, read by :mod:`crs_rules.fields`) is given to the
checks here, once, without the table's ``x-`` annotations. The states built
from input that passed every check are recorded (:func:`accepted`), with where they were read from.
The checks are in :mod:`crs_rules._patient_checks`, their words in :mod:`crs_rules._input_words`,
and the public entry points in :mod:`crs_rules.patient`.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Final, NamedTuple

from jsonschema import Draft202012Validator

from .fields import FIELDS, SCHEMA_PATH, Field, field, read_schema
from .loading import LoadedDocument

__all__ = [
    "Medication", "PatientState", "FieldValues", "Path_", "SCHEMA_PATH", "MAX_LIST_ITEMS", "contract_schema", "patient_schema",
    "build_state", "state_input", "accepted", "register", "origin_of", "new_state", "replaced",
]

Path_ = tuple[str | int, ...]


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
# The fields kept by path: every field of the table without an attribute of its own.
_BY_PATH: Final = tuple(f for f in FIELDS if f.by_path)
# How build_state reads them, worked out once: (attribute, keys) of the date-times; the other
# fields by the mapping holding them (_by_mapping); (path, keys, field) of the fields kept by path.
_TIMES: Final = tuple((f.attribute, f.keys) for f in _SCALARS if f.attribute is not None and f.type == "date-time")


def _by_mapping(fields: tuple[Field, ...]) -> tuple[tuple[tuple[str, ...], tuple[tuple[str, str, bool], ...]], ...]:
    """The fields read from the input's mappings, by the keys of the mapping that holds them:
    (attribute, key, whether it is read as a number)."""
    reads: dict[tuple[str, ...], list[tuple[str, str, bool]]] = {}
    for each in fields:
        if each.attribute is not None and each.type != "date-time":
            reads.setdefault(each.keys[:-1], []).append((each.attribute, each.keys[-1], each.type == "number"))
    return tuple((mapping, tuple(found)) for mapping, found in reads.items())


_READS: Final = _by_mapping(_SCALARS)
_KEPT: Final = tuple((f.path, f.keys, f) for f in _BY_PATH)


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


class FieldValues(Mapping[str, Any]):
    """A read-only mapping of field paths to values (``{"vitals.capillary_leak": True}``), hashable
    and compared by content like the rest of a :class:`PatientState`."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})

    def __getitem__(self, path: str) -> Any:
        return self._values[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items(), key=lambda item: str(item[0]))))

    def __repr__(self) -> str:
        return f"FieldValues({self._values!r})"


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
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=FieldValues)
    """The fields of the table (:mod:`crs_rules.fields`) without an attribute of their own, by path,
    as given: a number as a float, a list as its distinct items sorted, a date-time as a UTC instant.
    An unknown field (absent, or a null boolean) is left out."""

    def value(self, path: str) -> Any:
        """The value of the input field at ``path`` (``vitals.temperature_c``), whether it has an
        attribute of its own or is kept by path; None when unknown. KeyError for a path that is no
        field of the state."""
        entry = field(path)
        if entry.attribute is not None:
            return getattr(self, entry.attribute)
        if not entry.by_path:
            raise KeyError(path)
        return self.inputs.get(path)


_FIELD_ORDER: Final = tuple(f.name for f in dataclasses.fields(PatientState))
_FIELD_NAMES: Final = frozenset(_FIELD_ORDER)
# A frozen dataclass's __init__ sets each field with a call of object.__setattr__; a state whose
# every field is given is the same object made at once, as long as __init__ does nothing else.
_AT_ONCE: Final = (all(f.init for f in dataclasses.fields(PatientState))
                   and not hasattr(PatientState, "__post_init__") and "__slots__" not in vars(PatientState))


def _at_once(values: dict[str, Any]) -> PatientState:
    state: PatientState = object.__new__(PatientState)
    # In the fields' order, as __init__ sets them (the same pickled bytes, the same vars()).
    vars(state).update({name: values[name] for name in _FIELD_ORDER})
    return state


def new_state(values: dict[str, Any]) -> PatientState:
    """``PatientState(**values)``, made at once when ``values`` gives every field (else through
    ``__init__``, which names what is missing or unknown)."""
    if _AT_ONCE and values.keys() == _FIELD_NAMES:
        return _at_once(values)
    return PatientState(**values)


def replaced(state: PatientState, **changes: Any) -> PatientState:
    """``dataclasses.replace(state, **changes)``, made at once for a :class:`PatientState` itself."""
    values = {**vars(state), **changes}
    if _AT_ONCE and type(state) is PatientState and values.keys() == _FIELD_NAMES:
        return _at_once(values)
    return dataclasses.replace(state, **changes)


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


def _without_annotations(node: Any) -> Any:
    """The schema without the table's ``x-`` annotations (:mod:`crs_rules.fields`), which no
    validator reads."""
    if isinstance(node, dict):
        return {key: _without_annotations(value) for key, value in node.items() if not key.startswith("x-")}
    if isinstance(node, list):
        return [_without_annotations(item) for item in node]
    return node


@cache
def contract_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _without_annotations(read_schema())
    Draft202012Validator.check_schema(schema)
    return schema


def patient_schema() -> dict[str, Any]:
    """A copy of the JSON Schema of the patient state (``schemas/patient.schema.json``) as the
    checks read it: without the annotations of the table of fields (``x-meaning``, ...)."""
    return copy.deepcopy(contract_schema())


# --------------------------------------------------------------------------------------------
# Building the state from valid data, and the input a state stands for
# --------------------------------------------------------------------------------------------


def _fahrenheit_to_celsius(value: float) -> float:
    """Exact conversion: the decimal the caller wrote, (F - 32) × 5/9, rounded once.

    With ``str(value)`` = n/d exactly, (n/d - 32) × 5/9 = 5(n - 32d) / 9d, and the division of two
    ints is rounded once to the nearest float (as ``float(Fraction)`` does, whose arithmetic in
    Python costs several times more)."""
    numerator, denominator = Decimal(str(value)).as_integer_ratio()
    return 5 * (numerator - 32 * denominator) / (9 * denominator)


def _lookup(data: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` in valid data, None when a part is absent."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def build_state(data: dict[str, Any], instants: Mapping[Path_, datetime]) -> PatientState:
    values: dict[str, Any] = {}
    for attribute, keys in _TIMES:
        values[attribute] = instants.get(keys)
    for mapping_keys, reads in _READS:
        mapping = _lookup(data, mapping_keys)
        for attribute, key, number in reads:
            value = mapping.get(key) if isinstance(mapping, dict) else None
            values[attribute] = float(value) if number and value is not None else value
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
    inputs = {}
    for path, keys, each in _KEPT:
        value = instants.get(keys) if each.type == "date-time" else _lookup(data, keys)
        if value is not None:
            inputs[path] = _read(each, value)
    values["inputs"] = FieldValues(inputs)
    return new_state(values)


def _read(entry: Field, value: Any) -> Any:
    """A valid value of a field kept by path, as the state holds it."""
    if entry.type == "number":
        return float(value)
    if entry.type == "list":
        return tuple(sorted(set(value)))
    return value


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
            inner = holder.get(key)
            if not isinstance(inner, dict):  # a caller's value put there first: the checks name it
                inner = holder[key] = {}
            holder = inner
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
    inputs = state.inputs
    if isinstance(inputs, Mapping):
        for path, value in inputs.items():
            if isinstance(path, str):
                put(tuple(path.split(".")), listed(value))  # a path that is no field: the checks name it
            else:
                data[path] = value
    else:
        data["inputs"] = inputs  # not a mapping: no key of the contract, so the checks name it
    return data


# --------------------------------------------------------------------------------------------
# The states built from accepted input
# --------------------------------------------------------------------------------------------


class _Origin(NamedTuple):
    """Where an accepted state was read from: the source's name, its document (for positions)
    and the data as checked (lists in the order written)."""

    source: str
    positions: LoadedDocument | None
    data: Any


# The states this module built from input it accepted, by identity, each with where it was read
# from: evaluate() checks any other PatientState again (state_input, then the checks). A state is
# frozen, so one built here stays valid; a copy changed with dataclasses.replace is another object,
# and is checked. An entry goes when its state does (the weak reference's callback).
_registry: Final[dict[int, tuple[weakref.KeyedRef[int, PatientState], _Origin]]] = {}


def _forget(reference: weakref.KeyedRef[int, PatientState],
            registry: dict[int, tuple[weakref.KeyedRef[int, PatientState], _Origin]] = _registry) -> None:
    # The registry is bound here, not looked up: this may run while the interpreter shuts down.
    entry = registry.get(reference.key)
    if entry is not None and entry[0] is reference:
        del registry[reference.key]


def accepted(state: PatientState) -> bool:
    """Whether ``state`` is a state this module built from input that passed every check."""
    entry = _registry.get(id(state))
    return entry is not None and entry[0]() is state


def register(state: PatientState, source: str, positions: LoadedDocument | None, data: Any) -> None:
    """Record ``state`` as built from ``data`` (read from ``source``) after every check passed."""
    _registry[id(state)] = (weakref.KeyedRef(state, _forget, id(state)), _Origin(source, positions, data))


def origin_of(state: PatientState) -> _Origin | None:
    """Where an accepted state was read from; None for any other state."""
    entry = _registry.get(id(state))
    return entry[1] if entry is not None and entry[0]() is state else None
