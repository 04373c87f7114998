"""The input fields: every field of the patient contract, declared once, in its JSON Schema.

``schemas/patient.schema.json`` declares each field: its type, range, closed values, list bound,
whether it is required, its title and description (the words of input errors), and, as ``x-``
annotations JSON Schema ignores, its meaning in the data dictionary's words (``x-meaning``), its
unit (``x-unit``), the rule pack's class whose members are its only names (``x-vocabulary``) and
the field it is converted into (``x-reads-into``). This module reads it into a table of typed
:class:`Field` values, :data:`FIELDS`: each names a field by its path in the input
(``vitals.temperature_c``; ``[]`` for the items of a list: ``medications[].given_at``).

Derived from this table: the reading of a valid input into a ``PatientState`` and back
(:mod:`crs_rules.patient`), the bounds of the lists, the engine's input facts
(:mod:`crs_rules.facts`), the data dictionary ``crs-rules facts`` prints, and the generated
patients of ``crs-rules diff``. A field the library's code reads by name has an attribute of its
own on ``PatientState`` (:data:`ATTRIBUTES`); any other is kept by path (``PatientState.inputs``),
so adding a field to the contract is adding its property to the schema.

The ranges are plausibility bounds of the input contract (values no living human has), not
protocol numbers: the protocol's thresholds live in the rule pack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._resources import schema_dir
from .errors import CrsRulesError

__all__ = ["ATTRIBUTES", "Field", "FieldType", "FIELDS", "REQUIRED_MAPPINGS", "SCHEMA_PATH", "field", "fields_of",
           "read_schema", "section_of"]

#: ``boolean``: true, false, or null / absent for unknown. ``name``: a drug's name (any name the
#: rule pack's vocabulary knows, in any letter case; others are accepted and reported, except in
#: a closed vocabulary). ``list``: a list of names or choices; ``records``: a list of mappings,
#: whose fields follow as ``path[].field``.
FieldType = Literal["date-time", "number", "boolean", "choice", "name", "list", "records"]



@dataclass(frozen=True)
class Field:
    """One field of the patient contract."""

    path: str
    type: FieldType
    meaning: str
    unit: str | None = None
    minimum: float | None = None
    """Inclusive lower bound."""
    above: float | None = None
    """Exclusive lower bound."""
    maximum: float | None = None
    """Inclusive upper bound."""
    values: tuple[str, ...] = ()
    """The closed list of values of a ``choice``, or of the items of a ``list`` of choices."""
    vocabulary: str | None = None
    """For names: the rule pack's class whose members (under any of their names) are the only
    names accepted (``vasopressor``); None when any name is accepted."""
    items: FieldType | None = None
    """For a ``list``: the type of its items (``name`` or ``choice``)."""
    max_items: int | None = None
    required: bool = False
    """Required in its mapping (a field of a list item: in each item)."""
    attribute: str | None = None
    """The :class:`~crs_rules.patient.PatientState` attribute of its own it is read into; None for
    a field read into another field (``reads_into``), a field of a list's items (read into its
    records), or a field kept by path (:attr:`by_path`)."""
    reads_into: str | None = None
    """The field this one is converted into when given (``temperature_f`` into ``temperature_c``)."""
    requires: str | None = None
    """The boolean field that must be true for this one to be given (listing vasopressors
    requires ``vitals.hypotension``); while it is not true, this one is not asked for."""
    observed: str | None = None
    """How a known value reads among the observed values behind a grade (``temperature {value}
    °C``); None: not shown. The fields of one mapping inside a section (``vitals.oxygen``) read
    as one phrase."""
    unrecorded: str | None = None
    """How an unknown value reads there (``temperature not recorded``); None: not shown."""
    decimals: int = 0
    """The fewest decimals a number is shown with (``38.0`` °C: 1)."""
    shorthand: str | None = None
    """The field in a one-line clinical shorthand (``CAR T``; by default its key's words:
    ``septic shock``): a true/false field is named when true."""
    none: str | None = None
    """For a choice: the value that means none (``room_air``: no supplemental oxygen)."""

    @property
    def keys(self) -> tuple[str, ...]:
        """The path's parts, ``[]`` marking the items of a list: ``("medications[]", "drug")``."""
        return tuple(self.path.split("."))

    @property
    def short(self) -> str:
        """The field in clinical shorthand: its ``shorthand``, else its key's words."""
        return self.shorthand or self.keys[-1].removesuffix("[]").replace("_", " ")

    @property
    def by_path(self) -> bool:
        """Kept by its path in :attr:`PatientState.inputs <crs_rules.patient.PatientState.inputs>`:
        a field of the state with no attribute of its own. A field declared in the table alone is one."""
        return (self.attribute is None and self.reads_into is None and self.type != "records"
                and "[]" not in self.path)

    @property
    def in_state(self) -> bool:
        """Read into the state as one value of its own (an attribute, or by path)."""
        return self.attribute is not None or self.by_path

    @property
    def always_present(self) -> bool:
        """Required, and so is every mapping it is in: every valid input holds it."""
        return self.required and all(".".join(self.keys[:end]) in REQUIRED_MAPPINGS
                                     for end in range(1, len(self.keys)))

    @property
    def accepts(self) -> str:
        """What the field accepts, in words: its range, its values or its vocabulary."""
        if self.type == "boolean":
            return "true, false, or null (unknown)"
        if self.type == "date-time":
            return "ISO 8601 with a UTC offset (Z or +hh:mm)"
        if self.values:
            return "one of: " + ", ".join(self.values)
        if self.vocabulary is not None:
            return f"a {self.vocabulary} of the rule pack, under any of its names"
        if self.type == "name":
            return "any drug name; the rule pack's names count as their drug"
        if self.minimum is not None and self.maximum is not None:
            return f"from {_number(self.minimum)} to {_number(self.maximum)}"
        parts = []
        if self.minimum is not None:
            parts.append(f"at least {_number(self.minimum)}")
        if self.above is not None:
            parts.append(f"above {_number(self.above)}")
        if self.maximum is not None:
            parts.append(f"at most {_number(self.maximum)}")
        if self.max_items is not None:
            parts.append(f"at most {self.max_items} items")
        return ", ".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


#: The attributes of :class:`~crs_rules.patient.PatientState` of their own, by field path: the
#: fields the library's code reads by name. Any other field of the schema is kept by path
#: (:attr:`Field.by_path`), so a field is added to the contract in the schema alone.
ATTRIBUTES: Final[Mapping[str, str]] = {
    "assessed_at": "assessed_at",
    "patient.weight_kg": "weight_kg",
    "patient.age_years": "age_years",
    "patient.neutropenic": "neutropenic",
    "patient.significant_comorbidities": "significant_comorbidities",
    "therapy.car_t": "car_t",
    "crs.onset_at": "crs_onset_at",
    "crs.antipyretic_or_anticytokine": "antipyretic_or_anticytokine",
    "crs.improving": "improving",
    "crs.suspected_mas": "suspected_mas",
    "sepsis.septic_shock": "septic_shock",
    "sepsis.improving": "sepsis_improving",
    "vitals.temperature_c": "temperature_c",
    "vitals.hypotension": "hypotension",
    "vitals.vasopressors": "vasopressors",
    "vitals.oxygen.device": "oxygen_device",
    "vitals.oxygen.flow_l_min": "oxygen_flow_l_min",
    "vitals.attributed_to_other_cause": "attributed_to_other_cause",
    "vitals.refractory_hypotension": "refractory_hypotension",
    "neuro.icans_signs": "icans_signs",
    "medications": "medications",
    "proposed_orders": "proposed_orders",
}

#: The input contract as JSON Schema, in ``schemas/`` beside the package: the one declaration of
#: the fields.
SCHEMA_PATH: Final = schema_dir() / "patient.schema.json"

#: The annotations a field of the schema carries for this table (JSON Schema ignores them): its
#: meaning in the data dictionary's words (required), its unit, the pack's class whose members are
#: its only names, the field it is converted into.
_ANNOTATIONS: Final = {"x-meaning": "meaning", "x-unit": "unit", "x-vocabulary": "vocabulary",
                       "x-reads-into": "reads_into", "x-requires": "requires", "x-observed": "observed",
                       "x-unrecorded": "unrecorded", "x-decimals": "decimals", "x-none": "none",
                       "x-shorthand": "shorthand"}
_REFS: Final[Mapping[str, FieldType]] = {"#/$defs/date_time": "date-time", "#/$defs/boolean_or_unknown": "boolean",
                                         "#/$defs/generic_name": "name"}


def read_schema() -> dict[str, Any]:
    """The contract's JSON Schema as written (its annotations included); CrsRulesError when it
    cannot be read, which is an installation fault, not an input problem."""
    try:
        schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CrsRulesError(f"the patient schema cannot be read: {exc}") from exc
    return schema


#: What the contract's reading does by code, for the fields that declare it: the one conversion
#: into another field (``x-reads-into``) and the one closed vocabulary (``x-vocabulary``). A field
#: declaring either elsewhere is refused: its input would be accepted and then not converted, or its
#: names not checked.
_CONVERTED: Final = frozenset({"vitals.temperature_f"})
_CLOSED_VOCABULARIES: Final = frozenset({"vitals.vasopressors"})


def _kind(node: Mapping[str, Any], path: str) -> tuple[FieldType | None, tuple[str, ...]]:
    """The field type a schema node declares (None for a mapping) and its closed values;
    CrsRulesError naming the field for a type the contract's reading does not handle."""
    if "$ref" in node:
        if node["$ref"] not in _REFS:
            raise CrsRulesError(f"the patient schema's field {path} refers to {node['$ref']}, which is not "
                                f"one of the contract's kinds ({', '.join(sorted(_REFS))})")
        return _REFS[node["$ref"]], ()
    if node.get("type") == "object":
        return None, ()
    if node.get("type") == "array":
        return ("records" if node["items"].get("type") == "object" else "list"), ()
    if "enum" in node:
        return "choice", tuple(node["enum"])
    if node.get("type") != "number":
        raise CrsRulesError(f"the patient schema's field {path} is of type {node.get('type')!r}: the contract "
                            "reads numbers, true/false, choices, names, times and lists of them")
    return "number", ()


def fields_of(schema: Mapping[str, Any]) -> tuple[tuple[Field, ...], frozenset[str]]:
    """The fields a patient schema declares, in its order, and the mappings it requires (every
    mapping holding a field is left out of the fields: its fields are listed). CrsRulesError
    naming the field when a field lacks its meaning or carries a value of the wrong type."""
    found: list[Field] = []
    required_mappings: set[str] = set()

    def walk(node: Mapping[str, Any], prefix: str, required_here: bool) -> None:
        required = set(node.get("required", ()))
        for key, sub in node["properties"].items():
            path = f"{prefix}{key}"
            kind, values = _kind(sub, path)
            if kind is None:
                if key in required and required_here:
                    required_mappings.add(path)
                walk(sub, f"{path}.", key in required and required_here)
                continue
            extra: dict[str, Any] = {name: sub[key_] for key_, name in _ANNOTATIONS.items() if key_ in sub}
            decimals = extra.get("decimals", 0)
            if not isinstance(extra.get("meaning"), str) or not (
                    all(isinstance(v, str) for k, v in extra.items() if k != "decimals")
                    and isinstance(decimals, int) and not isinstance(decimals, bool) and decimals >= 0):
                raise CrsRulesError(f"the patient schema's field {path} needs x-meaning, and its x- annotations "
                                    "must be texts (x-decimals a whole number)")
            items: FieldType | None = None
            if kind == "list":
                items, values = _kind(sub["items"], f"{path}[]")
            found.append(Field(
                path, kind, extra.pop("meaning"), minimum=sub.get("minimum"), above=sub.get("exclusiveMinimum"),
                maximum=sub.get("maximum"), values=values, items=items, max_items=sub.get("maxItems"),
                required=key in required, attribute=ATTRIBUTES.get(path), **extra))
            if kind == "records":
                walk(sub["items"], f"{path}[].", False)

    walk(schema, "", True)
    booleans = {f.path for f in found if f.type == "boolean"}
    for entry in found:
        if entry.reads_into is not None and entry.path not in _CONVERTED:
            raise CrsRulesError(f"the patient schema's field {entry.path} reads into {entry.reads_into}, "
                                "but the contract's reading converts no such field: it would be lost")
        if entry.vocabulary is not None and entry.path not in _CLOSED_VOCABULARIES:
            raise CrsRulesError(f"the patient schema's field {entry.path} names a closed vocabulary, "
                                "but the contract's reading checks no such field's names")
        if entry.by_path and "name" in (entry.type, entry.items):
            raise CrsRulesError(f"the patient schema's field {entry.path} holds drug names, which are read by "
                                "the rule pack's vocabulary: it needs an attribute of the patient state")
        if entry.none is not None and entry.none not in entry.values:
            raise CrsRulesError(f"the patient schema's field {entry.path} means none by {entry.none}, "
                                "which is not one of its values")
        if entry.requires is not None and entry.requires not in booleans:
            raise CrsRulesError(f"the patient schema's field {entry.path} requires {entry.requires}, "
                                "which is not a true/false field")
    return tuple(found), frozenset(required_mappings)


_TABLE: Final = fields_of(read_schema())
#: Every field of the contract, in the order of the schema. A mapping (``patient``, ``vitals``,
#: ``vitals.oxygen``) is not a field: its fields are.
FIELDS: Final[tuple[Field, ...]] = _TABLE[0]
#: The mappings the input must hold (``patient``); every other mapping may be left out.
REQUIRED_MAPPINGS: Final[frozenset[str]] = _TABLE[1]

_BY_PATH: Final = {f.path: f for f in FIELDS}


def field(path: str) -> Field:
    """The field at ``path`` (``vitals.temperature_c``, ``medications[].drug``); KeyError if none."""
    return _BY_PATH[path]


def section_of(path: str) -> str:
    """The first part of a field's path: its section (``vitals``), or the field itself at the top."""
    return path.split(".")[0].removesuffix("[]")
