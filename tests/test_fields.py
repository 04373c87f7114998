"""The table of input fields (``crs_rules/fields.py``) is read from the contract's JSON Schema: it
has the schema's fields with their type, range, values and requirement, and the parsed state and
the engine's input facts agree with it field by field."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from crs_rules.errors import CrsRulesError, InvalidInputError
from crs_rules.facts import INPUT_FACTS
from crs_rules.fields import FIELDS, REQUIRED_MAPPINGS, Field, field, fields_of
from crs_rules.model import Protocol
from crs_rules.patient import MAX_LIST_ITEMS, PatientState, parse_patient, state_input

ROOT = Path(__file__).resolve().parent.parent
SCHEMA: dict[str, Any] = json.loads((ROOT / "schemas" / "patient.schema.json").read_text(encoding="utf-8"))


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


@dataclasses.dataclass(frozen=True)
class SchemaField:
    path: str
    node: dict[str, Any]
    """As written (its ``$ref`` kept)."""
    required: bool


def schema_fields(node: dict[str, Any], prefix: str = "") -> Iterator[SchemaField]:
    """Every field the schema declares: the leaves and the lists, not the mappings holding them."""
    required = set(node.get("required", []))
    for key, sub in node["properties"].items():
        path = f"{prefix}{key}"
        resolved = resolve(sub)
        if resolved.get("type") == "object":
            yield from schema_fields(resolved, f"{path}.")
            continue
        yield SchemaField(path, sub, key in required)
        items = resolved.get("items", {})
        if resolve(items).get("type") == "object":
            yield from schema_fields(resolve(items), f"{path}[].")


DECLARED = {f.path: f for f in schema_fields(SCHEMA)}
REF = {"date-time": "#/$defs/date_time", "boolean": "#/$defs/boolean_or_unknown", "name": "#/$defs/generic_name"}


def test_the_schema_declares_exactly_the_fields_of_the_table() -> None:
    assert list(DECLARED) == [f.path for f in FIELDS]


def test_the_mappings_the_schema_requires_are_those_of_the_table() -> None:
    def required_mappings(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key in node.get("required", []):
            sub = resolve(node["properties"][key])
            if sub.get("type") == "object":
                yield f"{prefix}{key}"
                yield from required_mappings(sub, f"{prefix}{key}.")

    assert set(required_mappings(SCHEMA)) == REQUIRED_MAPPINGS == {"patient"}


@pytest.mark.parametrize("entry", FIELDS, ids=lambda f: f.path)
def test_each_field_has_the_type_range_unit_values_and_requirement_of_the_table(entry: Field) -> None:
    declared = DECLARED[entry.path]
    node = resolve(declared.node)
    assert declared.required == entry.required
    if entry.type in REF:
        assert declared.node.get("$ref") == REF[entry.type]
    elif entry.type == "number":
        assert node["type"] == "number"
    elif entry.type == "choice":
        assert node["type"] == "string" and tuple(node["enum"]) == entry.values
    else:
        assert node["type"] == "array" and node["maxItems"] == entry.max_items
        items = node["items"]
        if entry.type == "records":
            assert items["type"] == "object"
        elif entry.items == "name":
            assert items["$ref"] == REF["name"] and not entry.values
        else:
            assert entry.items == "choice" and tuple(items["enum"]) == entry.values
    assert (node.get("minimum"), node.get("exclusiveMinimum"), node.get("maximum")) == (
        entry.minimum, entry.above, entry.maximum)
    if entry.type == "number":
        assert entry.unit is not None and f"in {entry.unit}" in node["title"], node["title"]
    else:
        assert entry.unit is None


def test_the_numbers_and_lists_of_the_table_are_the_contracts_bounds() -> None:
    # Written here: the plausibility bounds of the contract, and the list bounds.
    assert (field("patient.weight_kg").minimum, field("patient.weight_kg").maximum) == (0.2, 650)
    assert (field("vitals.temperature_c").minimum, field("vitals.temperature_c").maximum) == (13, 47)
    assert (field("vitals.temperature_f").minimum, field("vitals.temperature_f").maximum) == (55.4, 116.6)
    assert (field("medications[].dose_mg").above, field("medications[].dose_mg").maximum) == (0, 1_000_000)
    assert MAX_LIST_ITEMS == {"medications": 1000, "proposed_orders": 100, "vasopressors": 20,
                              "attributed_to_other_cause": 20}


def test_every_attribute_of_the_parsed_state_is_read_from_one_field() -> None:
    attributes = [f.attribute for f in FIELDS if f.attribute is not None]
    assert len(attributes) == len(set(attributes))
    # Every other field is kept by path, in ``inputs``.
    assert set(attributes) == {f.name for f in dataclasses.fields(PatientState)} - {"inputs"}


def test_the_engines_input_facts_are_fields_of_the_table_with_their_values() -> None:
    derived = {"crs.days_since_onset"}  # computed from crs.onset_at and assessed_at
    kinds = {"number": "number", "boolean": "boolean", "choice": "enum", "list": "list"}
    for path, fact in INPUT_FACTS.items():
        if path in derived:
            continue
        entry = field(path)
        assert kinds[entry.type] == fact.kind, path
        if entry.type == "choice":
            assert fact.values == entry.values


def test_a_full_input_is_read_and_given_back_through_the_table() -> None:
    data = {
        "assessed_at": "2026-03-10T12:00:00Z",
        "patient": {"weight_kg": 82, "age_years": 54, "neutropenic": False, "significant_comorbidities": True},
        "therapy": {"car_t": True},
        "crs": {"onset_at": "2026-03-08T06:00:00+02:00", "antipyretic_or_anticytokine": False, "improving": None,
                "suspected_mas": False},
        "sepsis": {"septic_shock": False, "improving": True},
        "vitals": {"temperature_f": 100.4, "hypotension": True, "vasopressors": ["vasopressin", "Levophed"],
                   "oxygen": {"device": "nasal_cannula", "flow_l_min": 4}, "refractory_hypotension": False,
                   "attributed_to_other_cause": ["hypoxia", "hypoxia"]},
        "neuro": {"icans_signs": True},
        "medications": [{"drug": "ACTEMRA", "dose_mg": 656, "given_at": "2026-03-10T03:00:00Z"}],
        "proposed_orders": [{"drug": "leukine"}, {"drug": "leukine"}],
    }
    state = parse_patient(data)
    assert (state.weight_kg, state.age_years, state.significant_comorbidities, state.improving) == (82.0, 54.0, True, None)
    assert state.crs_onset_at is not None and state.crs_onset_at.isoformat() == "2026-03-08T04:00:00+00:00"
    assert (state.temperature_c, state.sepsis_improving, state.icans_signs) == (38.0, True, True)
    assert (state.oxygen_device, state.oxygen_flow_l_min) == ("nasal_cannula", 4.0)
    assert state.vasopressors == ("Levophed", "vasopressin")
    assert state.attributed_to_other_cause == ("hypoxia",)
    assert state.proposed_orders == ("leukine",)
    again = state_input(state)
    assert again["vitals"]["temperature_c"] == 38.0 and "temperature_f" not in again["vitals"]
    assert "improving" not in again["crs"]  # unknown: left out
    assert parse_patient(again) == state


def test_a_field_the_schema_adds_is_kept_by_path_with_its_meaning() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["vitals"]["properties"]["capillary_leak"] = {
        "x-meaning": "the patient has capillary leak", "$ref": "#/$defs/boolean_or_unknown",
        "description": "Whether the patient has capillary leak."}
    table, _ = fields_of(schema)
    added = next(f for f in table if f.path == "vitals.capillary_leak")
    assert (added.type, added.meaning, added.attribute, added.by_path, added.in_state) == (
        "boolean", "the patient has capillary leak", None, True, True)
    assert [f.path for f in table if f.path != added.path] == [f.path for f in FIELDS]


def test_a_field_without_its_meaning_is_refused_by_name() -> None:
    schema = copy.deepcopy(SCHEMA)
    del schema["properties"]["vitals"]["properties"]["temperature_c"]["x-meaning"]
    with pytest.raises(CrsRulesError, match="vitals.temperature_c needs x-meaning"):
        fields_of(schema)


def test_a_field_that_requires_a_field_that_is_not_a_boolean_is_refused_by_name() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["vitals"]["properties"]["vasopressors"]["x-requires"] = "vitals.temperature_c"
    with pytest.raises(CrsRulesError, match="vitals.vasopressors requires vitals.temperature_c"):
        fields_of(schema)


ADDED_FIELDS_THE_READING_DOES_NOT_HANDLE = {
    "an integer": ({"x-meaning": "breaths per minute", "type": "integer"},
                   r"vitals.respiratory_rate is of type 'integer'"),
    "a text": ({"x-meaning": "a note", "type": "string"}, r"vitals.respiratory_rate is of type 'string'"),
    "an unknown kind": ({"x-meaning": "a note", "$ref": "#/$defs/nothing"},
                        r"vitals.respiratory_rate refers to #/\$defs/nothing"),
    "a conversion no code does": ({"x-meaning": "weight in pounds", "type": "number",
                                   "x-reads-into": "patient.weight_kg"},
                                  r"vitals.respiratory_rate reads into patient.weight_kg.*would be lost"),
    "a closed vocabulary no code checks": ({"x-meaning": "inotropes", "type": "array", "x-vocabulary": "vasopressor",
                                            "items": {"$ref": "#/$defs/generic_name"}},
                                           r"vitals.respiratory_rate names a closed vocabulary"),
    "drug names kept by path": ({"x-meaning": "inotropes", "type": "array",
                                 "items": {"$ref": "#/$defs/generic_name"}},
                                r"vitals.respiratory_rate holds drug names"),
}


@pytest.mark.parametrize("case", sorted(ADDED_FIELDS_THE_READING_DOES_NOT_HANDLE))
def test_a_field_the_contracts_reading_would_not_handle_is_refused_by_name(case: str) -> None:
    # Accepted by the schema and then lost (not a fact, not converted, names not checked) would be
    # worse than an error: the table refuses it, naming the field.
    node, message = ADDED_FIELDS_THE_READING_DOES_NOT_HANDLE[case]
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["vitals"]["properties"]["respiratory_rate"] = node
    with pytest.raises(CrsRulesError, match=message):
        fields_of(schema)


REQUIRING = [f for f in FIELDS if f.requires is not None]


@pytest.mark.parametrize("entry", REQUIRING, ids=lambda f: f.path)
def test_a_field_given_while_the_field_it_requires_is_false_is_an_input_error(entry: Field, protocol: Protocol) -> None:
    # x-requires is what the checks enforce: given (true, or a non-empty list) with the required field false is refused.
    if entry.type == "boolean":
        value: Any = True
    else:
        members = next(c.members for c in protocol.drug_classes if c.id == entry.vocabulary)
        value = [members[0]]
    required = entry.requires
    assert required is not None
    data: dict[str, Any] = {"assessed_at": "2026-03-10T12:00:00Z", "patient": {"weight_kg": 70}}
    for path, given in ((required, False), (entry.path, value)):
        section, key = path.split(".")
        data.setdefault(section, {})[key] = given
    with pytest.raises(InvalidInputError) as caught:
        parse_patient(data)
    assert [p.subject for p in caught.value.problems] == [required]
    section, key = required.split(".")
    data[section][key] = True
    assert parse_patient(data).value(entry.path) is not None
