"""The input fields: every field of the patient contract, declared once.

Each :class:`Field` names a field by its path in the input (``vitals.temperature_c``; ``[]`` for
the items of a list: ``medications[].given_at``), its type, its unit, what it accepts (a range, a
closed list of values, or the rule pack's vocabulary) and what it means, in the words of the data
dictionary ``crs-rules facts`` prints. ``attribute`` names the :class:`~crs_rules.patient.PatientState`
attribute the field is read into.

Derived from this table: the reading of a valid input into a ``PatientState`` and back
(:mod:`crs_rules.patient`), the bounds of the lists, and the data dictionary. The JSON Schema
(``schemas/patient.schema.json``), which carries the longer descriptions and the error wording,
is tested to agree with it field by field: type, unit, range, values, list bounds, required.

The ranges are plausibility bounds of the input contract (values no living human has), not
protocol numbers: the protocol's thresholds live in the rule pack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Field", "FieldType", "FIELDS", "REQUIRED_MAPPINGS", "field", "section_of", "OXYGEN_DEVICES", "SIGNS"]

#: ``boolean``: true, false, or null / absent for unknown. ``name``: a drug's name (any name the
#: rule pack's vocabulary knows, in any letter case; others are accepted and reported, except in
#: a closed vocabulary). ``list``: a list of names or choices; ``records``: a list of mappings,
#: whose fields follow as ``path[].field``.
FieldType = Literal["date-time", "number", "boolean", "choice", "name", "list", "records"]

OXYGEN_DEVICES: Final = ("room_air", "blow_by", "nasal_cannula", "high_flow_nasal_cannula", "face_mask",
                         "non_rebreather", "venturi", "cpap", "bipap", "mechanical_ventilation")
SIGNS: Final = ("fever", "hypotension", "hypoxia")
#: The mappings the input must hold (``patient``); every other mapping may be left out.
REQUIRED_MAPPINGS: Final = frozenset({"patient"})


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
    """The :class:`~crs_rules.patient.PatientState` attribute it is read into; None for a field
    read into another's attribute (``temperature_f`` into ``temperature_c``) or into records."""

    @property
    def keys(self) -> tuple[str, ...]:
        """The path's parts, ``[]`` marking the items of a list: ``("medications[]", "drug")``."""
        return tuple(self.path.split("."))

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


def _boolean(path: str, meaning: str, attribute: str) -> Field:
    return Field(path, "boolean", meaning, attribute=attribute)


#: Every field of the contract, in the order of the schema. A mapping (``patient``, ``vitals``,
#: ``vitals.oxygen``) is not a field: its fields are.
FIELDS: Final[tuple[Field, ...]] = (
    Field("assessed_at", "date-time", "when the state was observed: the moment the decision is for",
          required=True, attribute="assessed_at"),
    Field("patient.weight_kg", "number", "body weight, for weight-based doses", unit="kg", minimum=0.2,
          maximum=650, required=True, attribute="weight_kg"),
    Field("patient.age_years", "number", "age; fractions for infants", unit="years", minimum=0, maximum=130,
          attribute="age_years"),
    _boolean("patient.neutropenic", "the patient is neutropenic", "neutropenic"),
    _boolean("patient.significant_comorbidities", "the patient has significant comorbidities",
             "significant_comorbidities"),
    _boolean("therapy.car_t", "the patient received CAR T-cell (immune effector cell) therapy", "car_t"),
    Field("crs.onset_at", "date-time", "when CRS began: the start of the episode and of its tocilizumab course; not after assessed_at",
          attribute="crs_onset_at"),
    _boolean("crs.antipyretic_or_anticytokine",
             "the clinician states antipyretic or anticytokine therapy was given (fever may be masked)",
             "antipyretic_or_anticytokine"),
    _boolean("crs.improving", "CRS is improving", "improving"),
    _boolean("crs.suspected_mas", "macrophage activation syndrome (MAS/HLH) is suspected", "suspected_mas"),
    _boolean("sepsis.septic_shock", "the patient is in septic shock", "septic_shock"),
    _boolean("sepsis.improving", "sepsis is improving", "sepsis_improving"),
    Field("vitals.temperature_c", "number", "body temperature; not with temperature_f", unit="°C", minimum=13,
          maximum=47, attribute="temperature_c"),
    Field("vitals.temperature_f", "number",
          "body temperature, converted exactly to °C ((F - 32) x 5/9); not with temperature_c",
          unit="°F", minimum=55.4, maximum=116.6),
    _boolean("vitals.hypotension", "the patient is hypotensive; true when vasopressors are listed", "hypotension"),
    Field("vitals.vasopressors", "list", "the vasopressors running now ([] says none; absent, unknown)",
          items="name", vocabulary="vasopressor", max_items=20, attribute="vasopressors"),
    Field("vitals.oxygen.device", "choice", "how oxygen is delivered (room_air: none); vitals.oxygen absent "
          "means not recorded", values=OXYGEN_DEVICES, required=True, attribute="oxygen_device"),
    Field("vitals.oxygen.flow_l_min", "number", "oxygen flow; required for nasal_cannula, 0 on room_air",
          unit="L/min", minimum=0, maximum=100, attribute="oxygen_flow_l_min"),
    Field("vitals.attributed_to_other_cause", "list",
          "signs a clinician attributes to a cause other than CRS: they do not count toward the grade",
          items="choice", values=SIGNS, max_items=20, attribute="attributed_to_other_cause"),
    _boolean("vitals.refractory_hypotension", "hypotension persists despite fluids (and tocilizumab)",
             "refractory_hypotension"),
    _boolean("neuro.icans_signs", "the patient has signs of ICANS (neurotoxicity)", "icans_signs"),
    Field("medications", "records", "the medication record: doses already given ([] says none; absent, unknown)",
          max_items=1000, attribute="medications"),
    Field("medications[].drug", "name", "the drug given", required=True),
    Field("medications[].dose_mg", "number", "the dose given", unit="mg", above=0, maximum=1_000_000),
    Field("medications[].given_at", "date-time", "when the dose was given; not after assessed_at", required=True),
    Field("proposed_orders", "records", "drugs someone is about to order, so that the rules can warn",
          max_items=100, attribute="proposed_orders"),
    Field("proposed_orders[].drug", "name", "the drug to be ordered", required=True),
)

_BY_PATH: Final = {f.path: f for f in FIELDS}


def field(path: str) -> Field:
    """The field at ``path`` (``vitals.temperature_c``, ``medications[].drug``); KeyError if none."""
    return _BY_PATH[path]


def section_of(path: str) -> str:
    """The first part of a field's path: its section (``vitals``), or the field itself at the top."""
    return path.split(".")[0].removesuffix("[]")
