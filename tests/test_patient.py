"""The input contract: a valid patient state parses to a PatientState; bad input raises
InvalidInputError naming every bad field, echoing its value and saying what was expected."""

from __future__ import annotations

import copy
import dataclasses
import gc
import io
import json
import pickle
import sys
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import property_twins
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from crs_rules._patient_contract import _fahrenheit_to_celsius, _registry, accepted, new_state, origin_of, replaced
from crs_rules.errors import InvalidInputError, Problem
from crs_rules.patient import (
    SCHEMA_PATH,
    Medication,
    PatientState,
    parse_patient,
    parse_patient_text,
    patient_schema,
    read_patient,
)

UTC = timezone.utc

# The example of the contract, as the data a JSON or YAML reader gives.
EXAMPLE: dict[str, Any] = {
    "assessed_at": "2026-03-10T12:00:00Z",
    "patient": {"weight_kg": 82, "age_years": 54, "neutropenic": False, "significant_comorbidities": False},
    "therapy": {"car_t": True},
    "crs": {
        "onset_at": "2026-03-08T06:00:00Z",
        "antipyretic_or_anticytokine": False,
        "improving": None,
        "suspected_mas": False,
    },
    "sepsis": {"septic_shock": False, "improving": None},
    "vitals": {
        "temperature_c": 39.2,
        "hypotension": True,
        "vasopressors": ["norepinephrine"],
        "oxygen": {"device": "nasal_cannula", "flow_l_min": 4},
        "refractory_hypotension": False,
    },
    "neuro": {"icans_signs": False},
    "medications": [{"drug": "tocilizumab", "dose_mg": 656, "given_at": "2026-03-10T03:00:00Z"}],
    "proposed_orders": [{"drug": "sargramostim"}],
}

EXPECTED_STATE = PatientState(
    assessed_at=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
    weight_kg=82.0,
    age_years=54.0,
    neutropenic=False,
    significant_comorbidities=False,
    car_t=True,
    crs_onset_at=datetime(2026, 3, 8, 6, 0, tzinfo=UTC),
    antipyretic_or_anticytokine=False,
    improving=None,
    suspected_mas=False,
    septic_shock=False,
    sepsis_improving=None,
    temperature_c=39.2,
    hypotension=True,
    refractory_hypotension=False,
    vasopressors=("norepinephrine",),
    oxygen_device="nasal_cannula",
    oxygen_flow_l_min=4.0,
    icans_signs=False,
    medications=(Medication(drug="tocilizumab", given_at=datetime(2026, 3, 10, 3, 0, tzinfo=UTC), dose_mg=656.0),),
    proposed_orders=("sargramostim",),
)

WEIGHT_EXPECTED = "a body weight in kg from 0.2 to 650"
CELSIUS_EXPECTED = "a temperature in °C from 13 to 47"
DATE_TIME_EXPECTED = "an ISO 8601 date-time with a UTC offset (Z or +hh:mm), like 2026-03-10T12:00:00Z"
DEVICES = (
    "room_air, blow_by, nasal_cannula, high_flow_nasal_cannula, face_mask, non_rebreather, venturi, "
    "cpap, bipap, mechanical_ventilation"
)


def example(change: Callable[[dict[str, Any]], object] = lambda data: None) -> dict[str, Any]:
    """A fresh copy of the example, changed in place by ``change``."""
    data = copy.deepcopy(EXAMPLE)
    change(data)
    return data


def problems_of(data: Any) -> tuple[Problem, ...]:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(data)
    return raised.value.problems


def the_problem(data: Any) -> Problem:
    """The one problem ``data`` has (failing if it has none, or several)."""
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------------------------
# Valid input
# --------------------------------------------------------------------------------------------


def test_the_contract_example_parses_to_the_expected_state() -> None:
    assert parse_patient(EXAMPLE) == EXPECTED_STATE


def test_the_contract_example_as_json_text_parses_to_the_same_state() -> None:
    assert parse_patient_text(json.dumps(EXAMPLE, indent=2), "patient.json") == EXPECTED_STATE


def test_the_contract_example_as_yaml_with_quoted_times_parses_to_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "patient.yaml"
    path.write_text(
        """\
assessed_at: '2026-03-10T12:00:00Z'
patient: {weight_kg: 82, age_years: 54, neutropenic: false, significant_comorbidities: false}
therapy: {car_t: true}
crs: {onset_at: '2026-03-08T06:00:00Z', antipyretic_or_anticytokine: false, improving: null, suspected_mas: false}
sepsis: {septic_shock: false, improving: null}
vitals:
  temperature_c: 39.2
  hypotension: true
  vasopressors: [norepinephrine]
  oxygen: {device: nasal_cannula, flow_l_min: 4}
  refractory_hypotension: false
neuro: {icans_signs: false}
medications: [{drug: tocilizumab, dose_mg: 656, given_at: '2026-03-10T03:00:00Z'}]
proposed_orders: [{drug: sargramostim}]
""",
        encoding="utf-8",
    )
    assert read_patient(str(path)) == EXPECTED_STATE


def test_only_assessed_at_and_weight_are_required_and_everything_else_is_unknown() -> None:
    state = parse_patient({"assessed_at": "2026-03-10T12:00:00Z", "patient": {"weight_kg": 3.5}})
    assert state.weight_kg == 3.5
    assert (state.age_years, state.neutropenic, state.car_t, state.crs_onset_at) == (None, None, None, None)
    assert (state.temperature_c, state.hypotension, state.oxygen_device, state.oxygen_flow_l_min) == (
        None,
        None,
        None,
        None,
    )
    # Unknown, not "none": no vasopressor list and no medication record were given.
    assert (state.vasopressors, state.medications, state.proposed_orders) == (None, None, ())


def test_times_with_an_offset_are_converted_to_utc() -> None:
    state = parse_patient(
        example(lambda d: d.update(assessed_at="2026-03-10T14:30:00+02:00"))
    )
    assert state.assessed_at == datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    assert state.assessed_at.utcoffset() == timedelta(0)


def test_aware_datetime_objects_are_accepted_like_their_iso_text() -> None:
    eastern = timezone(timedelta(hours=-5))
    state = parse_patient(example(lambda d: d.update(assessed_at=datetime(2026, 3, 10, 7, 0, tzinfo=eastern))))
    assert state.assessed_at == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_vasopressors_and_proposed_orders_are_distinct_and_sorted() -> None:
    def change(d: dict[str, Any]) -> None:
        d["vitals"]["vasopressors"] = ["vasopressin", "norepinephrine", "vasopressin"]
        d["proposed_orders"] = [{"drug": "sargramostim"}, {"drug": "filgrastim"}, {"drug": "sargramostim"}]

    state = parse_patient(example(change))
    assert state.vasopressors == ("norepinephrine", "vasopressin")
    assert state.proposed_orders == ("filgrastim", "sargramostim")


def test_medications_are_sorted_by_time_then_drug_then_dose() -> None:
    def change(d: dict[str, Any]) -> None:
        d["medications"] = [
            {"drug": "tocilizumab", "dose_mg": 656, "given_at": "2026-03-10T03:00:00Z"},
            {"drug": "dexamethasone", "dose_mg": 10, "given_at": "2026-03-10T03:00:00Z"},
            {"drug": "dexamethasone", "dose_mg": 20, "given_at": "2026-03-09T23:00:00-05:00"},
            {"drug": "dexamethasone", "given_at": "2026-03-09T03:00:00Z"},
        ]

    state = parse_patient(example(change))
    assert state.medications is not None
    assert [(m.given_at.isoformat(), m.drug, m.dose_mg) for m in state.medications] == [
        ("2026-03-09T03:00:00+00:00", "dexamethasone", None),
        ("2026-03-10T03:00:00+00:00", "dexamethasone", 10.0),
        ("2026-03-10T03:00:00+00:00", "tocilizumab", 656.0),
        ("2026-03-10T04:00:00+00:00", "dexamethasone", 20.0),
    ]


def test_a_dose_given_exactly_at_the_assessment_time_is_accepted() -> None:
    state = parse_patient(example(lambda d: d["medications"][0].update(given_at="2026-03-10T12:00:00Z")))
    assert state.medications is not None and state.medications[0].given_at == state.assessed_at


# --------------------------------------------------------------------------------------------
# Fahrenheit
# --------------------------------------------------------------------------------------------


def fahrenheit(value: float) -> dict[str, Any]:
    def change(d: dict[str, Any]) -> None:
        del d["vitals"]["temperature_c"]
        d["vitals"]["temperature_f"] = value

    return example(change)


def test_fahrenheit_100_4_is_exactly_38_celsius_the_fever_threshold() -> None:
    assert parse_patient(fahrenheit(100.4)).temperature_c == 38.0


@given(st.floats(min_value=55.4, max_value=116.6)
       | st.decimals(min_value="55.4", max_value="116.6", places=1).map(float)
       | st.decimals(min_value="55.4", max_value="116.6", places=3).map(float)
       | st.integers(min_value=56, max_value=116))
def test_fahrenheit_is_converted_as_exact_fraction_arithmetic_would(written: float) -> None:
    # The conversion runs in integers; it must give the float that (F - 32) x 5/9 on the exact
    # fraction written gives, rounded once.
    assert _fahrenheit_to_celsius(written) == float((Fraction(str(written)) - 32) * 5 / 9)


def test_fahrenheit_100_2_is_below_38_celsius() -> None:
    celsius = parse_patient(fahrenheit(100.2)).temperature_c
    assert celsius is not None and celsius < 38.0


def test_fahrenheit_is_converted_from_the_decimal_written_not_from_the_nearest_float() -> None:
    # (56.3 - 32) * 5 / 9 in floats is 13.499999999999998; 56.3 °F is exactly 13.5 °C.
    assert (56.3 - 32) * 5 / 9 != 13.5
    assert parse_patient(fahrenheit(56.3)).temperature_c == 13.5


# --------------------------------------------------------------------------------------------
# Bad values: each names the field, echoes the value and says what was expected
# --------------------------------------------------------------------------------------------


def test_a_missing_weight_is_named_and_its_expected_value_described() -> None:
    problem = the_problem(example(lambda d: d["patient"].pop("weight_kg")))
    assert (problem.subject, problem.message, problem.expected) == ("patient.weight_kg", "is missing", WEIGHT_EXPECTED)
    assert problem.path == ("patient", "weight_kg")
    assert problem.check == "schema.required"
    assert (problem.file, problem.line, problem.column) == ("<input>", 0, 0)


def test_a_missing_assessment_time_is_named() -> None:
    problem = the_problem(example(lambda d: d.pop("assessed_at")))
    assert (problem.subject, problem.message, problem.expected) == ("assessed_at", "is missing", DATE_TIME_EXPECTED)


@pytest.mark.parametrize(
    ("weight", "message", "check"),
    [
        (0, "is 0 (a number)", "schema.minimum"),
        (-4, "is -4 (a number)", "schema.minimum"),
        (900, "is 900 (a number)", "schema.maximum"),
        (650.5, "is 650.5 (a number)", "schema.maximum"),
    ],
)
def test_a_weight_no_living_human_has_is_refused(weight: float, message: str, check: str) -> None:
    problem = the_problem(example(lambda d: d["patient"].update(weight_kg=weight)))
    assert (problem.subject, problem.message, problem.expected, problem.check) == (
        "patient.weight_kg",
        message,
        WEIGHT_EXPECTED,
        check,
    )


def test_the_plausibility_bounds_themselves_are_accepted() -> None:
    def change(d: dict[str, Any]) -> None:
        d["patient"].update(weight_kg=650, age_years=0)
        d["vitals"].update(temperature_c=47, oxygen={"device": "nasal_cannula", "flow_l_min": 0})

    state = parse_patient(example(change))
    assert (state.weight_kg, state.age_years, state.temperature_c, state.oxygen_flow_l_min) == (650, 0, 47, 0)


@pytest.mark.parametrize(("celsius", "check"), [(60, "schema.maximum"), (5, "schema.minimum")])
def test_a_temperature_no_living_human_has_is_refused(celsius: float, check: str) -> None:
    problem = the_problem(example(lambda d: d["vitals"].update(temperature_c=celsius)))
    assert (problem.subject, problem.message, problem.expected, problem.check) == (
        "vitals.temperature_c",
        f"is {celsius} (a number)",
        CELSIUS_EXPECTED,
        check,
    )


def test_a_fahrenheit_temperature_out_of_bounds_is_refused_in_fahrenheit() -> None:
    problem = the_problem(fahrenheit(140))
    assert (problem.subject, problem.message, problem.expected) == (
        "vitals.temperature_f",
        "is 140 (a number)",
        "a temperature in °F from 55.4 to 116.6",
    )


def test_an_age_over_130_is_refused() -> None:
    problem = the_problem(example(lambda d: d["patient"].update(age_years=131)))
    assert (problem.subject, problem.expected) == ("patient.age_years", "an age in years from 0 to 130")


def test_an_unknown_oxygen_device_is_refused_listing_the_devices() -> None:
    problem = the_problem(example(lambda d: d["vitals"]["oxygen"].update(device="tent")))
    assert (problem.subject, problem.message, problem.check) == ("vitals.oxygen.device", 'is "tent" (a string)', "schema.enum")
    assert problem.expected == f"an oxygen device, one of: {DEVICES}"


def test_a_negative_oxygen_flow_is_refused() -> None:
    problem = the_problem(example(lambda d: d["vitals"]["oxygen"].update(flow_l_min=-2)))
    assert (problem.subject, problem.message, problem.expected) == (
        "vitals.oxygen.flow_l_min",
        "is -2 (a number)",
        "an oxygen flow in L/min from 0 to 100",
    )


def test_a_nasal_cannula_without_a_flow_is_refused_because_the_flow_sets_the_grade() -> None:
    problem = the_problem(example(lambda d: d["vitals"]["oxygen"].pop("flow_l_min")))
    assert problem.subject == "vitals.oxygen.flow_l_min"
    assert problem.message == (
        "is missing, and is required when device is nasal_cannula: "
        "low-flow and high-flow nasal cannula are graded differently"
    )
    assert problem.expected == "an oxygen flow in L/min from 0 to 100"


def test_other_devices_do_not_need_a_flow() -> None:
    state = parse_patient(example(lambda d: d["vitals"].update(oxygen={"device": "non_rebreather"})))
    assert (state.oxygen_device, state.oxygen_flow_l_min) == ("non_rebreather", None)


def test_a_flow_on_room_air_is_a_contradiction() -> None:
    problem = the_problem(example(lambda d: d["vitals"].update(oxygen={"device": "room_air", "flow_l_min": 3})))
    assert (problem.subject, problem.check) == ("vitals.oxygen.flow_l_min", "input.room-air-with-flow")
    assert problem.message.startswith("is 3 (a number), but the device is room_air")


def test_a_time_without_an_offset_is_refused_as_ambiguous() -> None:
    problem = the_problem(example(lambda d: d.update(assessed_at="2026-03-10T12:00:00")))
    assert problem.subject == "assessed_at"
    assert problem.message == 'is "2026-03-10T12:00:00" (a string), which has no UTC offset, so the instant is ambiguous'
    assert (problem.expected, problem.check) == (DATE_TIME_EXPECTED, "input.date-time-offset")


def test_a_naive_datetime_object_is_refused_like_a_time_without_an_offset() -> None:
    problem = the_problem(example(lambda d: d["crs"].update(onset_at=datetime(2026, 3, 8, 6, 0))))
    assert (problem.subject, problem.check) == ("crs.onset_at", "input.date-time-offset")


@pytest.mark.parametrize("text", ["2026-02-30T12:00:00Z", "2026-03-10T24:00:00Z", "yesterday at noon", ""])
def test_an_unparseable_time_is_refused(text: str) -> None:
    problem = the_problem(example(lambda d: d["medications"][0].update(given_at=text)))
    assert (problem.subject, problem.expected, problem.check) == (
        "medications[0].given_at",
        DATE_TIME_EXPECTED,
        "input.date-time",
    )
    assert problem.message == f"is {json.dumps(text)} (a string), which is not a valid date and time"


@pytest.mark.parametrize("text", ["20260310T120000Z", "2026-03-10T12:00:00+0200", "2026-03-10T12:00:00Z\n"])
def test_a_time_python_could_read_but_not_written_as_the_contract_says_is_refused(text: str) -> None:
    problem = the_problem(example(lambda d: d.update(assessed_at=text)))
    assert (problem.subject, problem.expected) == ("assessed_at", DATE_TIME_EXPECTED)
    assert problem.check in {"input.date-time-form", "input.date-time"}


def test_a_medication_given_after_the_assessment_time_is_refused() -> None:
    # 13:01 at +01:00 is 12:01Z, one minute after the assessment at 12:00Z.
    problem = the_problem(example(lambda d: d["medications"][0].update(given_at="2026-03-10T13:01:00+01:00")))
    assert (problem.subject, problem.check) == ("medications[0].given_at", "input.given-after-assessment")
    assert problem.message == (
        'is "2026-03-10T13:01:00+01:00", given after the assessment time "2026-03-10T12:00:00Z"'
    )
    assert problem.expected == "a time at or before assessed_at: medications lists doses already given"


def test_a_medication_given_at_the_same_instant_in_another_offset_is_not_after() -> None:
    state = parse_patient(example(lambda d: d["medications"][0].update(given_at="2026-03-10T13:00:00+01:00")))
    assert state.medications is not None and state.medications[0].given_at == state.assessed_at


def test_a_crs_onset_after_the_assessment_time_is_refused() -> None:
    problem = the_problem(example(lambda d: d["crs"].update(onset_at="2026-03-11T06:00:00Z")))
    assert (problem.subject, problem.check) == ("crs.onset_at", "input.onset-after-assessment")
    assert problem.expected == "a CRS onset at or before assessed_at"


def test_a_string_for_the_weight_is_refused_echoing_the_string() -> None:
    problem = the_problem(example(lambda d: d["patient"].update(weight_kg="82")))
    assert (problem.subject, problem.message, problem.expected, problem.check) == (
        "patient.weight_kg",
        'is "82" (a string)',
        WEIGHT_EXPECTED,
        "schema.type",
    )


def test_true_for_the_weight_is_refused_although_python_counts_true_as_1() -> None:
    problem = the_problem(example(lambda d: d["patient"].update(weight_kg=True)))
    assert (problem.subject, problem.message, problem.check) == ("patient.weight_kg", "is true (a boolean)", "schema.type")


@pytest.mark.parametrize(("value", "message"), [(1, "is 1 (a number)"), (0, "is 0 (a number)"), ("true", 'is "true" (a string)')])
def test_a_boolean_must_be_a_real_boolean(value: object, message: str) -> None:
    problem = the_problem(example(lambda d: d["patient"].update(neutropenic=value)))
    assert (problem.subject, problem.message, problem.expected, problem.check) == (
        "patient.neutropenic",
        message,
        "true or false, or null when unknown",
        "schema.type",
    )


def test_null_is_refused_for_a_number_and_the_field_may_be_left_out_instead() -> None:
    problem = the_problem(example(lambda d: d["patient"].update(age_years=None)))
    assert (problem.subject, problem.message) == ("patient.age_years", "is null")
    assert problem.expected == "an age in years from 0 to 130 (leave the field out when unknown: only booleans may be null)"


def test_not_a_number_is_refused_for_a_number() -> None:
    problem = the_problem(example(lambda d: d["patient"].update(weight_kg=float("nan"))))
    assert (problem.subject, problem.message, problem.expected, problem.check) == (
        "patient.weight_kg",
        "is NaN (not a number)",
        WEIGHT_EXPECTED,
        "input.not-a-number",
    )


def test_infinity_is_refused_for_a_number() -> None:
    problem = the_problem(example(lambda d: d["vitals"].update(temperature_c=float("inf"))))
    assert (problem.subject, problem.message) == ("vitals.temperature_c", "is Infinity (a number)")


def test_an_integer_too_long_to_print_is_refused_without_printing_it() -> None:
    problem = the_problem(example(lambda d: d["vitals"]["oxygen"].update(device=10**5000)))
    assert problem.subject == "vitals.oxygen.device"
    assert problem.message == "is an integer of about 5000 digits (a number)"


def test_a_misspelt_key_is_named_with_a_suggestion() -> None:
    def change(d: dict[str, Any]) -> None:
        d["vitals"]["temprature_c"] = d["vitals"].pop("temperature_c")

    problem = the_problem(example(change))
    assert (problem.subject, problem.message, problem.check) == (
        "vitals.temprature_c",
        "is not a known field (did you mean temperature_c?)",
        "schema.additionalProperties",
    )
    assert problem.expected == (
        "one of the fields of vitals: temperature_c, temperature_f, hypotension, vasopressors, oxygen, "
        "attributed_to_other_cause, refractory_hypotension"
    )


def test_unknown_keys_are_refused_at_every_level_each_as_its_own_problem() -> None:
    def change(d: dict[str, Any]) -> None:
        d["notes"] = "stable"
        d["medications"][0]["route"] = "iv"
        d["proposed_orders"][0]["dose_mg"] = 400

    problems = problems_of(example(change))
    assert [p.subject for p in problems] == ["medications[0].route", "notes", "proposed_orders[0].dose_mg"]
    assert {p.check for p in problems} == {"schema.additionalProperties"}


def test_a_drug_name_may_be_in_any_letter_case_but_only_letters_digits_spaces_and_dashes() -> None:
    parse_patient(example(lambda d: d["medications"][0].update(drug="Actemra")))
    parse_patient(example(lambda d: d["medications"][0].update(drug="Angiotensin II")))
    problem = the_problem(example(lambda d: d["medications"][0].update(drug="Actemra;")))
    assert (problem.subject, problem.message, problem.check) == ("medications[0].drug", 'is "Actemra;" (a string)', "schema.pattern")
    assert problem.expected.startswith("a drug's name")


def test_a_drug_name_with_a_trailing_newline_is_refused() -> None:
    problem = the_problem(example(lambda d: d["vitals"].update(vasopressors=["norepinephrine\n"])))
    assert problem.subject == "vitals.vasopressors[0]"


def test_both_temperatures_are_refused_as_ambiguous() -> None:
    problem = the_problem(example(lambda d: d["vitals"].update(temperature_f=102.6)))
    assert (problem.subject, problem.check) == ("vitals.temperature_f", "input.both-temperatures")
    assert (problem.message, problem.expected) == (
        "is given together with vitals.temperature_c",
        "one temperature: temperature_c or temperature_f, not both",
    )


@pytest.mark.parametrize(("change", "stated"), [
    (lambda vitals: vitals.update(hypotension=False), "is false"),
    (lambda vitals: vitals.update(hypotension=None), "is null (unknown)"),
    (lambda vitals: vitals.pop("hypotension"), "is missing"),
])
def test_vasopressors_require_hypotension_to_be_true(change: Callable[[dict[str, Any]], object], stated: str) -> None:
    problem = the_problem(example(lambda d: change(d["vitals"])))
    assert (problem.subject, problem.check) == ("vitals.hypotension", "input.vasopressors-without-hypotension")
    assert problem.message == (
        f'{stated}, but vasopressors are listed ("norepinephrine"): '
        "hypotension requiring vasopressors must say hypotension: true"
    )
    assert problem.expected == "true when vitals.vasopressors lists any vasopressor"


def test_an_empty_vasopressor_list_does_not_require_hypotension() -> None:
    state = parse_patient(example(lambda d: d["vitals"].update(vasopressors=[], hypotension=False)))
    assert (state.vasopressors, state.hypotension) == ((), False)


def test_refractory_hypotension_requires_hypotension_to_be_true() -> None:
    def change(d: dict[str, Any]) -> None:
        d["vitals"].update(hypotension=False, vasopressors=[], refractory_hypotension=True)

    problem = the_problem(example(change))
    assert (problem.subject, problem.check) == ("vitals.hypotension", "input.refractory-without-hypotension")
    assert problem.expected == "true when vitals.refractory_hypotension is true"


def test_something_other_than_a_mapping_is_refused_as_a_whole() -> None:
    problem = the_problem(["assessed_at"])
    assert (problem.subject, problem.message) == ("-", "is a list of 1 item")
    assert problem.expected.startswith("a mapping with the fields assessed_at (required), patient (required), therapy")


def test_several_problems_are_reported_at_once_sorted_by_field() -> None:
    def change(d: dict[str, Any]) -> None:
        d["patient"]["weight_kg"] = -4
        d["patient"]["neutropenic"] = "no"
        d["vitals"]["oxygen"]["device"] = "tent"
        d["vitals"]["temperature_f"] = 101
        d["medications"][0]["given_at"] = "2026-03-10T12:00:00"
        d["extra"] = 1

    problems = problems_of(example(change))
    assert [(p.subject, p.check) for p in problems] == [
        ("extra", "schema.additionalProperties"),
        ("medications[0].given_at", "input.date-time-offset"),
        ("patient.neutropenic", "schema.type"),
        ("patient.weight_kg", "schema.minimum"),
        ("vitals.oxygen.device", "schema.enum"),
        ("vitals.temperature_f", "input.both-temperatures"),
    ]
    assert all(p.expected for p in problems)


def test_the_error_message_lists_every_problem_on_its_own_line() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(example(lambda d: d["patient"].update(weight_kg=900, age_years=-1)))
    assert str(raised.value).splitlines() == [
        "invalid patient input (2 problem(s))",
        "<input>:0:0: patient.age_years: is -1 (a number); an age in years from 0 to 130",
        f"<input>:0:0: patient.weight_kg: is 900 (a number); {WEIGHT_EXPECTED}",
    ]


def test_the_source_name_given_is_used_in_problems() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient({}, source="bed-12")
    assert {p.file for p in raised.value.problems} == {"bed-12"}
    assert [p.subject for p in raised.value.problems] == ["assessed_at", "patient"]


# --------------------------------------------------------------------------------------------
# Files, text and standard input
# --------------------------------------------------------------------------------------------

YAML_WITH_PROBLEMS = """\
assessed_at: '2026-03-10T12:00:00Z'
patient:
  weight_kg: -4
vitals:
  temprature_c: 39.2
"""


def test_a_yaml_problem_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "patient.yaml"
    path.write_text(YAML_WITH_PROBLEMS, encoding="utf-8")
    with pytest.raises(InvalidInputError) as raised:
        read_patient(str(path))
    assert [(p.file, p.line, p.column, p.subject) for p in raised.value.problems] == [
        (str(path), 3, 14, "patient.weight_kg"),  # at the value -4
        (str(path), 5, 3, "vitals.temprature_c"),  # at the unknown key
    ]


def test_a_missing_field_in_yaml_is_reported_at_the_mapping_that_lacks_it() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient_text("assessed_at: '2026-03-10T12:00:00Z'\npatient:\n  age_years: 40\n", "p.yaml")
    (problem,) = raised.value.problems
    assert (problem.line, problem.column, problem.subject, problem.message) == (3, 3, "patient.weight_kg", "is missing")


def test_an_unquoted_yaml_time_is_read_as_written_and_still_checked() -> None:
    # The contract writes times unquoted; they are kept as text and checked like quoted ones.
    state = parse_patient_text("assessed_at: 2026-03-10T12:00:00Z\npatient: {weight_kg: 82}\n", "p.yaml")
    assert state.assessed_at == datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    with pytest.raises(InvalidInputError) as raised:
        parse_patient_text("assessed_at: 2026-03-10T12:00:00\npatient: {weight_kg: 82}\n", "p.yaml")
    (problem,) = raised.value.problems
    assert (problem.line, problem.subject) == (1, "assessed_at")
    assert "offset" in problem.message + problem.expected


def test_a_json_problem_is_reported_at_its_line_and_column() -> None:
    text = json.dumps(example(lambda d: d["patient"].update(weight_kg=900)), indent=2)
    with pytest.raises(InvalidInputError) as raised:
        parse_patient_text(text, "patient.json")
    (problem,) = raised.value.problems
    line = next(number for number, content in enumerate(text.splitlines(), 1) if '"weight_kg": 900' in content)
    assert (problem.file, problem.line, problem.subject) == ("patient.json", line, "patient.weight_kg")
    assert problem.column == text.splitlines()[line - 1].index("900") + 1


def test_invalid_json_is_reported_at_the_syntax_error() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient_text('{\n  "assessed_at": ,\n}', "patient.json")
    (problem,) = raised.value.problems
    assert (problem.line, problem.column, problem.check) == (2, 18, "input.json")
    assert problem.message.startswith("is not valid JSON")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000, "cannot be read as JSON: it is nested too deeply"),
        ('{"patient": {"weight_kg": ' + "9" * 5000 + "}}", "cannot be read as JSON: it holds a number with too many digits"),
    ],
)
def test_json_python_cannot_read_gives_one_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient_text(text, "patient.json")
    (problem,) = raised.value.problems
    assert (problem.subject, problem.message, problem.check) == ("-", message, "input.json")


def test_a_key_repeated_in_json_is_refused_rather_than_the_last_one_kept() -> None:
    text = '{"assessed_at": "2026-03-10T12:00:00Z", "patient": {"weight_kg": 8, "weight_kg": 80}}'
    with pytest.raises(InvalidInputError) as raised:
        parse_patient_text(text, "patient.json")
    (problem,) = raised.value.problems
    assert (problem.subject, problem.check) == ("patient.weight_kg", "input.duplicate-key")


def test_reading_dash_reads_json_from_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(EXAMPLE)))
    assert read_patient("-") == EXPECTED_STATE


def test_reading_dash_reads_yaml_from_standard_input_and_names_it_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(YAML_WITH_PROBLEMS))
    with pytest.raises(InvalidInputError) as raised:
        read_patient("-")
    assert [(p.file, p.line, p.subject) for p in raised.value.problems] == [
        ("<stdin>", 3, "patient.weight_kg"),
        ("<stdin>", 5, "vitals.temprature_c"),
    ]


def test_a_missing_file_gives_one_problem_not_an_os_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(InvalidInputError) as raised:
        read_patient(str(path))
    (problem,) = raised.value.problems
    assert (problem.file, problem.subject, problem.check) == (str(path), "-", "input.readable")
    assert problem.message == "cannot be read: No such file or directory"
    assert problem.expected == "a readable UTF-8 text file holding one patient state in YAML or JSON"


def test_a_directory_gives_one_problem_not_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as raised:
        read_patient(str(tmp_path))
    (problem,) = raised.value.problems
    assert (problem.file, problem.check) == (str(tmp_path), "input.readable")


def test_a_file_that_is_not_utf8_gives_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "patient.yaml"
    path.write_bytes(b"assessed_at: '2026-03-10T12:00:00Z'\npatient: {weight_kg: \xff}\n")
    with pytest.raises(InvalidInputError) as raised:
        read_patient(str(path))
    (problem,) = raised.value.problems
    assert problem.check == "input.readable"
    assert "not UTF-8" in problem.message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "patient.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInputError) as raised:
        read_patient(str(path))
    assert len(raised.value.problems) == 1


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_field_in_the_schema_is_described_and_every_object_is_closed() -> None:
    schema = patient_schema()
    undescribed, open_objects = [], []

    def visit(node: dict[str, Any], where: str) -> None:
        if node.get("type") == "object":
            if node.get("additionalProperties") is not False:
                open_objects.append(where)
            for name, sub in node.get("properties", {}).items():
                if not sub.get("description"):
                    undescribed.append(f"{where}.{name}")
                visit(sub, f"{where}.{name}")
        if "items" in node:
            visit(node["items"], f"{where}[]")

    visit(schema, "")
    assert (undescribed, open_objects) == ([], [])


def test_every_number_in_the_schema_has_a_lower_and_an_upper_bound() -> None:
    # Unbounded numbers let absurd values through, and an int too large for a float would fail
    # when the state is built.
    unbounded = []

    def visit(node: dict[str, Any], where: str) -> None:
        if node.get("type") == "number":
            has_low = "minimum" in node or "exclusiveMinimum" in node
            if not (has_low and "maximum" in node):
                unbounded.append(where)
        for name, sub in node.get("properties", {}).items():
            visit(sub, f"{where}.{name}")
        if "items" in node:
            visit(node["items"], f"{where}[]")

    visit(patient_schema(), "")
    assert unbounded == []


def test_a_dose_of_more_than_a_kilogram_is_refused() -> None:
    problem = the_problem(example(lambda d: d["medications"][0].update(dose_mg=10**400)))
    assert (problem.subject, problem.message, problem.expected) == (
        "medications[0].dose_mg",
        "is an integer of about 400 digits (a number)",
        "a dose in mg above 0 and at most 1000000",
    )


def test_the_schema_accepts_the_example_as_it_stands() -> None:
    assert list(Draft202012Validator(patient_schema()).iter_errors(EXAMPLE)) == []


def test_patient_schema_returns_a_copy_that_callers_cannot_corrupt() -> None:
    patient_schema()["properties"].clear()
    assert parse_patient(EXAMPLE) == EXPECTED_STATE


# --------------------------------------------------------------------------------------------
# Any input at all: a state or InvalidInputError, nothing else
# --------------------------------------------------------------------------------------------

FIELD_NAMES = sorted(
    {
        "assessed_at", "patient", "weight_kg", "age_years", "neutropenic", "significant_comorbidities", "therapy",
        "car_t", "crs", "onset_at", "antipyretic_or_anticytokine", "improving", "suspected_mas", "sepsis",
        "septic_shock", "vitals", "temperature_c", "temperature_f", "hypotension", "vasopressors", "oxygen",
        "device", "flow_l_min", "refractory_hypotension", "neuro", "icans_signs", "medications", "drug",
        "dose_mg", "given_at", "proposed_orders",
    }
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["2026-03-10T12:00:00Z", "2026-03-11T00:00:00+05:00", "nasal_cannula", "room_air", "norepinephrine"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)


def state_or_input_error(data: Any) -> PatientState | InvalidInputError:
    try:
        return parse_patient(data)
    except InvalidInputError as error:
        return error


def assert_well_formed(outcome: PatientState | InvalidInputError) -> None:
    if isinstance(outcome, InvalidInputError):
        assert outcome.problems, "an InvalidInputError must list at least one problem"
        for problem in outcome.problems:
            assert problem.subject and problem.message and problem.expected and problem.check, problem
    else:
        assert isinstance(outcome, PatientState)
        assert 0 < outcome.weight_kg <= 650
        assert outcome.assessed_at.utcoffset() == timedelta(0)
        assert all(m.given_at <= outcome.assessed_at for m in outcome.medications or ())


@pytest.mark.parametrize("examples", property_twins(300))
def test_any_json_like_value_gives_a_state_or_an_input_error_and_nothing_else(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(json_values)
    def check(data: Any) -> None:
        assert_well_formed(state_or_input_error(data))

    check()


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += _paths(sub, (*path, index))
    return found


EXAMPLE_PATHS = _paths(EXAMPLE)[1:]


@pytest.mark.parametrize("examples", property_twins(300))
def test_the_example_with_any_field_replaced_by_any_value_gives_a_state_or_an_input_error(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(st.sampled_from(EXAMPLE_PATHS), json_values)
    def check(path: tuple[str | int, ...], value: Any) -> None:
        data = copy.deepcopy(EXAMPLE)
        parent: Any = data
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
        outcome = state_or_input_error(data)
        assert_well_formed(outcome)
        if isinstance(outcome, InvalidInputError):
            # The problem is about the replaced field, inside it, or a check that reads it.
            assert any(p.path[: len(path)] == path or p.check.startswith("input.") for p in outcome.problems)

    check()


# --------------------------------------------------------------------------------------------
# A state made at once
# --------------------------------------------------------------------------------------------


class _Marked(PatientState):
    """A caller's subclass: made and replaced through __init__, as dataclasses.replace does."""


def test_a_state_made_at_once_is_the_state_its_fields_make() -> None:
    state = parse_patient(EXAMPLE)
    values = {f.name: getattr(state, f.name) for f in dataclasses.fields(PatientState)}
    at_once, through_init = new_state(dict(values)), PatientState(**values)
    assert type(at_once) is PatientState
    assert at_once == through_init and hash(at_once) == hash(through_init) and repr(at_once) == repr(through_init)
    shuffled = dict(reversed(list(values.items())))  # the order the values come in does not show
    assert list(vars(new_state(shuffled))) == list(vars(through_init))
    assert pickle.dumps(new_state(shuffled)) == pickle.dumps(through_init)
    with pytest.raises(dataclasses.FrozenInstanceError):
        at_once.weight_kg = 1.0  # type: ignore[misc]
    changed = replaced(state, proposed_orders=("tocilizumab",), vasopressors=None)
    assert changed == dataclasses.replace(state, proposed_orders=("tocilizumab",), vasopressors=None) != state
    marked = _Marked(**values)
    assert type(replaced(marked, weight_kg=70.0)) is _Marked


def test_a_state_missing_a_field_or_with_an_unknown_one_is_refused_as_init_refuses_it() -> None:
    values = {f.name: getattr(parse_patient(EXAMPLE), f.name) for f in dataclasses.fields(PatientState)}
    del values["weight_kg"]
    with pytest.raises(TypeError, match="weight_kg"):
        new_state(values)
    with pytest.raises(TypeError, match="weight"):
        replaced(parse_patient(EXAMPLE), weight=70.0)


def test_an_accepted_state_is_known_as_accepted_until_it_is_gone_and_no_copy_of_it_is() -> None:
    gc.collect()
    before = len(_registry)
    states = [parse_patient(EXAMPLE, f"patient-{index}.json") for index in range(100)]
    assert all(accepted(state) for state in states) and len(_registry) == before + 100
    origin = origin_of(states[7])
    assert origin is not None and origin.source == "patient-7.json" and origin.data == EXAMPLE
    copy_ = dataclasses.replace(states[7])
    assert copy_ == states[7] and not accepted(copy_) and origin_of(copy_) is None
    del states, copy_
    gc.collect()
    assert len(_registry) == before
