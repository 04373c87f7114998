"""One door for input: every state ``evaluate`` sees is checked by the input contract, whether the
caller passes a mapping or a :class:`PatientState` it built (or changed with
``dataclasses.replace``); and the contract's times, ranges and list sizes are strict."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crs_rules import InvalidInputError, evaluate, parse_patient
from crs_rules.errors import Problem
from crs_rules.model import Protocol
from crs_rules.patient import MAX_LIST_ITEMS, Medication, PatientState, patient_schema

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
VALID: dict[str, Any] = {
    "assessed_at": "2026-03-10T12:00:00Z",
    "patient": {"weight_kg": 82, "age_years": 54},
    "therapy": {"car_t": True},
    "crs": {"onset_at": "2026-03-09T12:00:00Z"},
    "vitals": {"temperature_c": 39.2, "hypotension": True, "vasopressors": ["norepinephrine"],
               "oxygen": {"device": "nasal_cannula", "flow_l_min": 4}},
    "medications": [{"drug": "tocilizumab", "dose_mg": 656, "given_at": "2026-03-10T03:00:00Z"}],
}


def valid(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data.update(changes)
    return data


def refused(state: Any, protocol: Protocol) -> list[Problem]:
    with pytest.raises(InvalidInputError) as raised:
        evaluate(state, protocol)
    return list(raised.value.problems)


def subjects(state: Any, protocol: Protocol) -> list[str]:
    return [p.subject for p in refused(state, protocol)]


@pytest.fixture(scope="module")
def state() -> PatientState:
    return parse_patient(VALID)


# ---------------------------------------------------------------------- a PatientState is re-checked


def test_a_valid_state_and_its_mapping_give_the_same_decision(state: PatientState, protocol: Protocol) -> None:
    assert evaluate(state, protocol) == evaluate(VALID, protocol)


@pytest.mark.parametrize("changes, subject", [
    ({"weight_kg": 5000.0}, "patient.weight_kg"),
    ({"weight_kg": -1.0}, "patient.weight_kg"),
    ({"weight_kg": 0.0}, "patient.weight_kg"),
    ({"weight_kg": float("nan")}, "patient.weight_kg"),
    ({"weight_kg": "82"}, "patient.weight_kg"),
    ({"temperature_c": "39.2"}, "vitals.temperature_c"),
    ({"temperature_c": 60.0}, "vitals.temperature_c"),
    ({"hypotension": False}, "vitals.hypotension"),  # vasopressors listed without hypotension
    ({"hypotension": None}, "vitals.hypotension"),
    ({"assessed_at": datetime(2026, 3, 10, 12, 0)}, "assessed_at"),  # naive
    ({"crs_onset_at": AT + timedelta(hours=1)}, "crs.onset_at"),
    ({"medications": (Medication("tocilizumab", AT + timedelta(seconds=1), None),)}, "medications[0].given_at"),
    ({"medications": (Medication("tocilizumab", datetime(2026, 3, 10, 3, 0), None),)}, "medications[0].given_at"),
    ({"medications": (Medication("1-tocilizumab", AT, None),)}, "medications[0].drug"),
    ({"medications": (Medication("tocilizumab", AT, -5.0),)}, "medications[0].dose_mg"),
    ({"medications": ("tocilizumab",)}, "medications[0]"),
    ({"medications": "tocilizumab"}, "medications"),
    ({"vasopressors": ("norepinephrine",) * (MAX_LIST_ITEMS["vasopressors"] + 1)}, "vitals.vasopressors"),
    ({"vasopressors": ("1-norepinephrine",)}, "vitals.vasopressors[0]"),
    ({"oxygen_device": "nasal_tube"}, "vitals.oxygen.device"),
    ({"oxygen_device": None}, "vitals.oxygen.device"),  # a flow without a device
    ({"oxygen_flow_l_min": None}, "vitals.oxygen.flow_l_min"),  # a nasal cannula without a flow
    ({"car_t": 1}, "therapy.car_t"),
    ({"proposed_orders": ("GM/CSF",)}, "proposed_orders[0].drug"),
    ({"attributed_to_other_cause": ("sepsis",)}, "vitals.attributed_to_other_cause[0]"),
])
def test_a_caller_built_state_is_checked_like_a_mapping(state: PatientState, protocol: Protocol,
                                                        changes: dict[str, Any], subject: str) -> None:
    bad = dataclasses.replace(state, **changes)
    assert subject in subjects(bad, protocol)


def test_every_problem_of_a_caller_built_state_is_an_input_problem_naming_a_field(
        state: PatientState, protocol: Protocol) -> None:
    bad = dataclasses.replace(state, weight_kg=5000.0, temperature_c="hot", assessed_at=datetime(2026, 3, 10))  # type: ignore[arg-type]  # a caller's mistake
    assert sorted(subjects(bad, protocol)) == ["assessed_at", "patient.weight_kg", "vitals.temperature_c"]


def test_a_caller_built_state_is_normalised_like_a_parsed_one(state: PatientState, protocol: Protocol) -> None:
    # Unsorted and repeated names, a non-UTC offset: the decision is the parsed state's.
    plus_two = datetime(2026, 3, 10, 14, 0, tzinfo=datetime.fromisoformat("2026-01-01T00:00+02:00").tzinfo)
    odd = dataclasses.replace(state, vasopressors=("vasopressin", "norepinephrine", "vasopressin"), assessed_at=plus_two)
    same = valid()
    same["vitals"]["vasopressors"] = ["norepinephrine", "vasopressin"]
    assert evaluate(odd, protocol) == evaluate(same, protocol)


# ---------------------------------------------------------------------- strict times


@pytest.mark.parametrize("text", [
    "2026-03-10T12:00:00.0000001Z",
    "2026-03-10T12:00:00.1234567+00:00",
    "2026-03-10T12:00:00." + "0" * 40 + "Z",
])
def test_more_than_six_fractional_digits_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(valid(assessed_at=text))
    (problem,) = raised.value.problems
    assert (problem.subject, problem.check) == ("assessed_at", "input.date-time-fraction")
    assert "at most 6 digits" in problem.message


def test_a_dose_a_fraction_of_a_microsecond_after_the_assessment_is_not_truncated_into_the_past() -> None:
    data = valid(medications=[{"drug": "tocilizumab", "given_at": "2026-03-10T12:00:00.0000009Z"}])
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(data)
    assert [p.subject for p in raised.value.problems] == ["medications[0].given_at"]


def test_a_dose_just_under_eight_hours_ago_is_not_truncated_to_eight_hours(protocol: Protocol) -> None:
    data = valid(medications=[{"drug": "tocilizumab", "given_at": "2026-03-10T04:00:00.0000001Z"}])
    with pytest.raises(InvalidInputError) as raised:
        evaluate(data, protocol)
    assert [p.subject for p in raised.value.problems] == ["medications[0].given_at"]


def test_six_fractional_digits_are_exact() -> None:
    state = parse_patient(valid(assessed_at="2026-03-10T12:00:00.123456Z"))
    assert state.assessed_at == datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("offset", ["+00:60", "+05:99", "-01:75", "+24:00", "+25:00", "-99:00"])
def test_an_offset_out_of_range_is_refused(offset: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(valid(assessed_at=f"2026-03-10T12:00:00{offset}"))
    (problem,) = raised.value.problems
    assert (problem.subject, problem.check) == ("assessed_at", "input.date-time-offset-range")
    assert "hours 00-23 and minutes 00-59" in problem.message


@pytest.mark.parametrize("offset, hours", [("+23:59", 23 + 59 / 60), ("-00:00", 0), ("+14:00", 14), ("-12:30", -12.5)])
def test_an_offset_in_range_is_accepted(offset: str, hours: float) -> None:
    state = parse_patient(valid(assessed_at=f"2026-03-10T12:00:00{offset}", crs={},
                                medications=[]))
    assert state.assessed_at == AT - timedelta(hours=hours)


# ---------------------------------------------------------------------- weights and list sizes


@pytest.mark.parametrize("weight", [1e-9, 0.01, 0.19])
def test_a_weight_below_the_smallest_surviving_newborn_is_refused(weight: float, protocol: Protocol) -> None:
    data = valid(patient={"weight_kg": weight})
    (problem,) = refused(data, protocol)
    assert problem.subject == "patient.weight_kg"
    assert problem.expected == "a body weight in kg from 0.2 to 650"


def test_the_smallest_weight_is_accepted(protocol: Protocol) -> None:
    assert evaluate(valid(patient={"weight_kg": 0.2}), protocol).assessed_at == AT


def test_the_schema_states_the_weight_bounds_it_checks() -> None:
    weight = patient_schema()["properties"]["patient"]["properties"]["weight_kg"]
    assert (weight["minimum"], weight["maximum"]) == (0.2, 650)
    assert "exclusiveMinimum" not in weight
    assert "At least 0.2 kg" in weight["description"] and "at most 650 kg" in weight["description"]


def test_the_list_bounds_are_the_schemas_and_are_sane() -> None:
    schema = patient_schema()
    vitals = schema["properties"]["vitals"]["properties"]
    declared = {
        "medications": schema["properties"]["medications"]["maxItems"],
        "proposed_orders": schema["properties"]["proposed_orders"]["maxItems"],
        "vasopressors": vitals["vasopressors"]["maxItems"],
        "attributed_to_other_cause": vitals["attributed_to_other_cause"]["maxItems"],
    }
    assert declared == MAX_LIST_ITEMS == {"medications": 1000, "proposed_orders": 100, "vasopressors": 20,
                                          "attributed_to_other_cause": 20}


def many(path: str, count: int) -> dict[str, Any]:
    data = valid(crs={})
    if path == "medications":
        data["medications"] = [{"drug": "acetaminophen", "given_at": "2026-03-10T11:00:00Z"}] * count
    elif path == "proposed_orders":
        data["proposed_orders"] = [{"drug": "cefepime"}] * count
    elif path == "vasopressors":
        data["vitals"]["vasopressors"] = ["norepinephrine"] * count
    else:
        data["vitals"]["attributed_to_other_cause"] = ["fever"] * count
    return data


@pytest.mark.parametrize("name, subject", [
    ("medications", "medications"), ("proposed_orders", "proposed_orders"),
    ("vasopressors", "vitals.vasopressors"), ("attributed_to_other_cause", "vitals.attributed_to_other_cause"),
])
def test_a_list_over_its_bound_is_refused_naming_the_field_and_the_bound(name: str, subject: str,
                                                                         protocol: Protocol) -> None:
    bound = MAX_LIST_ITEMS[name]
    evaluate(many(name, bound), protocol)  # at the bound: a decision
    (problem,) = refused(many(name, bound + 1), protocol)
    assert (problem.subject, problem.check) == (subject, "input.too-many-items")
    assert problem.message == f"is a list of {bound + 1} items"
    assert problem.expected.endswith(f"at most {bound} items")


def test_a_huge_list_is_refused_without_checking_every_item() -> None:
    data = many("medications", 100_000)
    data["medications"] = data["medications"] + [{"drug": 5, "given_at": "never"}]  # beyond the bound
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(data)
    assert [p.subject for p in raised.value.problems] == ["medications"]


def test_problems_within_the_bound_of_a_long_list_are_still_reported() -> None:
    data = many("medications", 1001)
    data["medications"] = [{"drug": "9bad", "given_at": "2026-03-10T11:00:00Z"}] + data["medications"][1:]
    with pytest.raises(InvalidInputError) as raised:
        parse_patient(data)
    assert [p.subject for p in raised.value.problems] == ["medications", "medications[0].drug"]


def test_a_long_list_in_a_json_file_is_refused_with_its_position(tmp_path: Path) -> None:
    from crs_rules import read_patient

    path = tmp_path / "patient.json"
    path.write_text(json.dumps(many("proposed_orders", 101), indent=1), encoding="utf-8")
    with pytest.raises(InvalidInputError) as raised:
        read_patient(path)
    (problem,) = raised.value.problems
    assert problem.subject == "proposed_orders" and problem.line > 1


def test_the_readme_states_the_bounds() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for words in ("at most 1,000 medications", "100 proposed orders", "20 vasopressors", "below 0.2 kg",
                  "at most 6 fractional digits", "whether a mapping or a `PatientState`"):
        assert words in readme, words
