"""Unit tests of ``evaluate``: every grade boundary, every dose limit, the steroid, antifungal,
hemoperfusion and alert rules, each shipped example, two packs in one process, and the frozen
Decision.

Every expected number is written here from the clinical notes, never read from the rule pack.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import seed_numbers_pack

from crs_rules import Decision, InvalidInputError, evaluate, load_protocol, parse_patient, read_patient
from crs_rules.compilation import compute_amount
from crs_rules.decision import Recommendation, Withheld
from crs_rules.dosing import check_dose
from crs_rules.model import Protocol

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
AT = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def protocol(seed_protocol: Protocol) -> Protocol:
    """The numbers reasoned with here are the seed's (conftest.SEED_NUMBERS), written into a copy of
    the pack under test when it says others; the pack's own exact doses are checked by its scenarios."""
    return seed_protocol


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def make(
    *,
    weight: float = 70,
    age: float | None = 50,
    temp_c: float | None = 38.5,
    temp_f: float | None = None,
    hypotension: bool | None = False,
    vasopressors: tuple[str, ...] = (),
    refractory: bool | None = None,
    device: str | None = "room_air",
    flow: float | None = None,
    masked: bool | None = None,
    improving: bool | None = None,
    onset_hours: float | None = None,
    comorbidities: bool | None = None,
    neutropenic: bool | None = None,
    car_t: bool | None = True,
    icans: bool | None = None,
    mas: bool | None = None,
    septic_shock: bool | None = None,
    sepsis_improving: bool | None = None,
    meds: tuple[tuple[str, timedelta], ...] = (),
    orders: tuple[str, ...] = (),
    at: datetime = AT,
) -> dict[str, Any]:
    """A patient state at ``at``; ``meds`` are (drug, how long before ``at``)."""
    patient: dict[str, Any] = {"weight_kg": weight}
    if age is not None:
        patient["age_years"] = age
    if comorbidities is not None:
        patient["significant_comorbidities"] = comorbidities
    if neutropenic is not None:
        patient["neutropenic"] = neutropenic
    vitals: dict[str, Any] = {"hypotension": hypotension}
    if temp_c is not None and temp_f is None:
        vitals["temperature_c"] = temp_c
    if temp_f is not None:
        vitals["temperature_f"] = temp_f
    if vasopressors or hypotension is True:
        vitals["vasopressors"] = list(vasopressors)  # stated, even when none
    if refractory is not None:
        vitals["refractory_hypotension"] = refractory
    if device is not None:
        vitals["oxygen"] = {"device": device} if flow is None else {"device": device, "flow_l_min": flow}
    crs: dict[str, Any] = {"antipyretic_or_anticytokine": masked, "improving": improving}
    if onset_hours is not None:
        crs["onset_at"] = stamp(at - timedelta(hours=onset_hours))
    state: dict[str, Any] = {
        "assessed_at": stamp(at),
        "patient": patient,
        "therapy": {"car_t": car_t},
        "crs": crs,
        "vitals": vitals,
        "neuro": {"icans_signs": icans},
        "medications": [{"drug": drug, "given_at": stamp(at - ago)} for drug, ago in meds],
        "proposed_orders": [{"drug": drug} for drug in orders],
    }
    state["crs"]["suspected_mas"] = mas
    if septic_shock is not None or sepsis_improving is not None:
        state["sepsis"] = {"septic_shock": septic_shock, "improving": sepsis_improving}
    return state


def h(hours: float = 0, minutes: float = 0, seconds: float = 0) -> timedelta:
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def actions(decision: Decision, strength: str) -> set[str]:
    return {r.action for r in decision.recommendations if r.strength == strength}


def recommended(decision: Decision, action: str) -> list[Any]:
    return [r for r in decision.recommendations if r.action == action]


def withheld(decision: Decision, action: str) -> list[Any]:
    return [w for w in decision.withheld if w.action == action]


def alert_ids(decision: Decision) -> dict[str, str]:
    return {a.id: a.severity for a in decision.alerts}


# --------------------------------------------------------------------------------------------
# Grade boundaries


@pytest.mark.parametrize(("vitals", "grade"), [
    ({"temp_c": 37.9}, 0),
    ({"temp_c": 37.99}, 0),
    ({"temp_c": 38.0}, 1),
    ({"temp_c": 38}, 1),
    ({"temp_c": 38.01}, 1),
    ({"temp_f": 100.4}, 1),
    ({"temp_f": 100.39}, 0),
    ({"temp_f": 100.3}, 0),
    ({"temp_f": 100.5}, 1),
], ids=lambda v: repr(v))
def test_fever_starts_at_38_0_celsius_and_100_4_fahrenheit(protocol: Protocol, vitals: dict[str, Any], grade: int) -> None:
    decision = evaluate(make(**vitals), protocol)
    assert decision.crs_grade == grade
    assert dict(decision.findings)["fever"] is (grade == 1)


def test_100_4_fahrenheit_converts_to_exactly_38_celsius(protocol: Protocol) -> None:
    patient = parse_patient(make(temp_f=100.4))
    assert patient.temperature_c == 38.0
    assert "temperature 38.0 °C" in evaluate(patient, protocol).grade_basis


@pytest.mark.parametrize(("device", "flow", "grade"), [
    ("room_air", None, 1),
    ("blow_by", None, 2),
    ("nasal_cannula", 0.5, 2),
    ("nasal_cannula", 6, 2),
    ("nasal_cannula", 6.0, 2),
    ("nasal_cannula", 6.01, 3),
    ("nasal_cannula", 6.1, 3),
    ("nasal_cannula", 15, 3),
    ("high_flow_nasal_cannula", 40, 3),
    ("face_mask", 4, 3),
    ("face_mask", None, 3),
    ("non_rebreather", 15, 3),
    ("venturi", None, 3),
    ("cpap", None, 4),
    ("bipap", None, 4),
    ("mechanical_ventilation", None, 4),
])
def test_hypoxia_grades_by_device_and_nasal_cannula_flow_around_6_l_min(
    protocol: Protocol, device: str | None, flow: float | None, grade: int
) -> None:
    decision = evaluate(make(device=device, flow=flow), protocol)
    assert decision.crs_grade == grade
    assert dict(decision.findings)["hypoxia_grade"] == (0 if grade == 1 else grade)


@pytest.mark.parametrize(("hypotension", "vasopressors", "grade"), [
    (False, (), 1),
    (True, (), 2),
    (True, ("vasopressin",), 3),
    (True, ("norepinephrine",), 3),
    (True, ("vasopressin", "norepinephrine"), 3),
    (True, ("norepinephrine", "norepinephrine"), 3),
    (True, ("norepinephrine", "epinephrine"), 4),
    (True, ("phenylephrine", "dopamine"), 4),
    (True, ("norepinephrine", "phenylephrine", "vasopressin"), 4),
])
def test_hypotension_grades_by_vasopressors_with_vasopressin_counted_once_at_most(
    protocol: Protocol, hypotension: bool | None, vasopressors: tuple[str, ...], grade: int
) -> None:
    decision = evaluate(make(hypotension=hypotension, vasopressors=vasopressors), protocol)
    assert decision.crs_grade == grade
    assert dict(decision.findings)["hypotension_grade"] == (0 if grade == 1 else grade)


def test_the_grade_is_the_more_severe_of_hypotension_and_hypoxia(protocol: Protocol) -> None:
    assert evaluate(make(hypotension=True, device="face_mask"), protocol).crs_grade == 3
    assert evaluate(make(hypotension=True, vasopressors=("vasopressin",), device="cpap"), protocol).crs_grade == 4
    assert evaluate(make(hypotension=True, vasopressors=("norepinephrine", "epinephrine"),
                         device="nasal_cannula", flow=2), protocol).crs_grade == 4


def test_without_fever_or_therapy_the_grade_is_0_whatever_the_vitals_and_the_basis_says_why(protocol: Protocol) -> None:
    decision = evaluate(make(temp_c=37.9, hypotension=True, vasopressors=("norepinephrine", "epinephrine"),
                             device="mechanical_ventilation", masked=False), protocol)
    assert decision.crs_grade == 0
    findings = dict(decision.findings)
    assert findings["hypotension_grade"] == 4 and findings["hypoxia_grade"] == 4
    assert findings["fever"] is False and findings["fever_not_required"] is False
    assert decision.grade_basis.startswith("CRS criteria not met")
    assert decision.recommendations == () and decision.withheld == ()


@pytest.mark.parametrize("masking", [
    {"masked": True},
    {"meds": (("tocilizumab", h(10)),)},
    {"meds": (("dexamethasone", h(30)),)},
    {"meds": (("methylprednisolone", h(2)),)},
    {"meds": (("hydrocortisone", h(5)),)},
    {"meds": (("prednisone", h(48)),)},
    {"meds": (("prednisolone", h(1)),)},
    {"meds": (("acetaminophen", h(3)),)},
    {"meds": (("siltuximab", h(20)),)},
    {"meds": (("anakinra", h(6)),)},
], ids=["flag", "tocilizumab", "dexamethasone", "methylprednisolone", "hydrocortisone", "prednisone", "prednisolone",
        "acetaminophen", "siltuximab", "anakinra"])
def test_after_antipyretic_anticytokine_or_corticosteroid_since_onset_fever_is_not_required(
    protocol: Protocol, masking: dict[str, Any]
) -> None:
    masking = {**masking, "onset_hours": 72}  # every dose above is after the onset
    hypotensive = evaluate(make(temp_c=37.0, hypotension=True, **masking), protocol)
    assert hypotensive.crs_grade == 2
    assert dict(hypotensive.findings)["fever_not_required"] is True
    assert "fever not required" in hypotensive.grade_basis
    assert evaluate(make(temp_c=None, device="bipap", **masking), protocol).crs_grade == 4
    # Masked fever with no hypotension and no hypoxia is not CRS: grade 0, not 1.
    assert evaluate(make(temp_c=37.0, **masking), protocol).crs_grade == 0


@pytest.mark.parametrize("drug", ["dexamethasone", "acetaminophen", "tocilizumab"])
def test_a_dose_before_the_onset_does_not_mask_fever(protocol: Protocol, drug: str) -> None:
    # A premedication 30 h ago, CRS began 20 h ago: the afebrile hypotensive patient is not graded CRS.
    decision = evaluate(make(temp_c=37.0, hypotension=True, onset_hours=20, meds=((drug, h(30)),)), protocol)
    assert decision.grade_status == "graded" and decision.crs_grade == 0
    assert dict(decision.findings)["fever_not_required"] is False


def test_with_the_onset_unknown_a_masking_dose_leaves_the_grade_open(protocol: Protocol) -> None:
    decision = evaluate(make(temp_c=37.0, hypotension=True, meds=(("dexamethasone", h(30)),)), protocol)
    assert decision.grade_status == "indeterminate" and decision.crs_grade is None
    assert decision.possible_grades == (0, 2)
    assert "crs.onset_at" in decision.missing
    assert dict(decision.findings)["fever_not_required"] is None


def test_without_masking_therapy_the_same_afebrile_patient_is_grade_0(protocol: Protocol) -> None:
    assert evaluate(make(temp_c=37.0, hypotension=True, masked=False,
                         meds=(("cefepime", h(3)),)), protocol).crs_grade == 0
    assert evaluate(make(temp_c=37.0, hypotension=True, masked=None), protocol).crs_grade == 0


# --------------------------------------------------------------------------------------------
# Tocilizumab dose and limits


@pytest.mark.parametrize(("weight", "mg"), [
    (24.3, 291),    # 12 x 24.3 = 291.6
    (29.9, 358),    # 12 x 29.9 = 358.8
    (29.99, 359),   # 12 x 29.99 = 359.88
    (30, 240),      # 8 x 30
    (30.0, 240),
    (30.01, 240),   # 8 x 30.01 = 240.08
    (64.5, 516),
    (99.9, 799),    # 8 x 99.9 = 799.2
    (99.99, 799),   # 799.92
    (100, 800),
    (100.0, 800),
    (100.1, 800),   # 800.8, and never above 800
    (105, 800),     # 840, capped
    (650, 800),
])
def test_tocilizumab_is_12_mg_per_kg_below_30_kg_8_from_30_rounded_down_at_most_800(
    protocol: Protocol, weight: float, mg: int
) -> None:
    decision = evaluate(make(weight=weight, hypotension=True), protocol)
    (dose,) = [r.dose for r in recommended(decision, "tocilizumab")]
    assert dose is not None and dose.amount_mg == mg and dose.drug == "tocilizumab"
    assert dose.route == "IV" and dose.interval_h == 8


def test_a_dose_exactly_8_hours_after_the_last_is_allowed(protocol: Protocol) -> None:
    decision = evaluate(make(hypotension=True, meds=(("tocilizumab", h(8)),)), protocol)
    assert [r.dose.amount_mg for r in recommended(decision, "tocilizumab") if r.dose] == [560]
    assert withheld(decision, "tocilizumab") == []


@pytest.mark.parametrize(("ago", "wait"), [(h(7, 59), h(minutes=1)), (h(7, 59, 59), h(seconds=1)), (h(1), h(7))])
def test_a_dose_less_than_8_hours_after_the_last_is_withheld_until_8_hours(
    protocol: Protocol, ago: timedelta, wait: timedelta
) -> None:
    decision = evaluate(make(hypotension=True, meds=(("tocilizumab", ago),)), protocol)
    assert recommended(decision, "tocilizumab") == []
    (entry,) = withheld(decision, "tocilizumab")
    assert entry.limits == ("min_interval_h",)
    assert entry.next_eligible_at == AT + wait
    assert decision.to_dict()["withheld"][0]["next_eligible_at"] == stamp(AT + wait)


def test_next_eligible_at_is_never_shown_before_the_dose_is_eligible(protocol: Protocol) -> None:
    # Given at 04:00:00.5: eligible at 12:00:00.5, shown to the second as 12:00:01, not 12:00:00.
    state = make(hypotension=True)
    state["medications"] = [{"drug": "tocilizumab", "given_at": "2026-03-10T04:00:00.5Z"}]
    state["assessed_at"] = "2026-03-10T10:00:00Z"
    (entry,) = withheld(evaluate(state, protocol), "tocilizumab")
    assert stamp(entry.next_eligible_at) == "2026-03-10T12:00:01Z"
    state["assessed_at"] = "2026-03-10T12:00:00Z"
    assert [w.limits for w in withheld(evaluate(state, protocol), "tocilizumab")] == [("min_interval_h",)]
    state["assessed_at"] = "2026-03-10T12:00:01Z"
    assert len(recommended(evaluate(state, protocol), "tocilizumab")) == 1


def test_a_dose_exactly_24_hours_ago_is_outside_the_rolling_window(protocol: Protocol) -> None:
    history = (("tocilizumab", h(24)), ("tocilizumab", h(16)), ("tocilizumab", h(8)))
    decision = evaluate(make(hypotension=True, meds=history), protocol)
    assert len(recommended(decision, "tocilizumab")) == 1
    assert withheld(decision, "tocilizumab") == []


def test_a_fourth_dose_in_24_hours_is_withheld_until_the_oldest_leaves_the_window(protocol: Protocol) -> None:
    history = (("tocilizumab", h(23, 59)), ("tocilizumab", h(16)), ("tocilizumab", h(8)))
    decision = evaluate(make(hypotension=True, meds=history), protocol)
    assert recommended(decision, "tocilizumab") == []
    (entry,) = withheld(decision, "tocilizumab")
    assert entry.limits == ("max_doses_in_window",)
    assert entry.next_eligible_at == AT + h(minutes=1)


def test_the_fourth_dose_of_the_course_is_allowed_and_the_fifth_never(protocol: Protocol) -> None:
    three = (("tocilizumab", h(72)), ("tocilizumab", h(48)), ("tocilizumab", h(24)))
    fourth = evaluate(make(hypotension=True, meds=three), protocol)
    assert len(recommended(fourth, "tocilizumab")) == 1 and withheld(fourth, "tocilizumab") == []

    four = (("tocilizumab", h(96)), *three)
    fifth = evaluate(make(hypotension=True, meds=four), protocol)
    assert recommended(fifth, "tocilizumab") == []
    (entry,) = withheld(fifth, "tocilizumab")
    assert entry.limits == ("max_doses_per_course",)
    assert entry.next_eligible_at is None
    assert fifth.to_dict()["withheld"][0]["next_eligible_at"] is None


def test_interval_and_window_together_wait_for_the_later_of_the_two(protocol: Protocol) -> None:
    history = (("tocilizumab", h(23)), ("tocilizumab", h(15)), ("tocilizumab", h(2)))
    (entry,) = withheld(evaluate(make(hypotension=True, meds=history), protocol), "tocilizumab")
    assert set(entry.limits) == {"min_interval_h", "max_doses_in_window"}
    assert entry.next_eligible_at == AT + h(6)  # 8 h after the last; the oldest leaves at +1 h


@pytest.mark.parametrize(("improving", "repeat"), [(True, False), (None, True), (False, True)])
def test_no_repeat_dose_while_improving_but_unknown_improvement_does_not_block(
    protocol: Protocol, improving: bool | None, repeat: bool
) -> None:
    decision = evaluate(make(hypotension=True, improving=improving, meds=(("tocilizumab", h(10)),)), protocol)
    assert len(recommended(decision, "tocilizumab")) == (1 if repeat else 0)
    if not repeat:
        (entry,) = withheld(decision, "tocilizumab")
        assert entry.limits == ("repeat_only_if_not_improving",)
        assert entry.next_eligible_at is None


def test_improving_does_not_block_a_first_dose(protocol: Protocol) -> None:
    assert len(recommended(evaluate(make(hypotension=True, improving=True), protocol), "tocilizumab")) == 1


@pytest.mark.parametrize(("extra", "strength"), [
    ({}, None),
    ({"onset_hours": 72}, None),        # exactly 3 days: not more than 3
    ({"onset_hours": 73}, "consider"),
    ({"comorbidities": True}, "consider"),
    ({"comorbidities": None}, None),
])
def test_grade_1_considers_tocilizumab_for_prolonged_crs_or_comorbidities(
    protocol: Protocol, extra: dict[str, Any], strength: str | None
) -> None:
    decision = evaluate(make(**extra), protocol)
    assert decision.crs_grade == 1
    strengths = [r.strength for r in recommended(decision, "tocilizumab")]
    assert strengths == ([] if strength is None else [strength])


@pytest.mark.parametrize("vitals", [
    {"hypotension": True},
    {"hypotension": True, "vasopressors": ("norepinephrine",)},
    {"hypotension": True, "vasopressors": ("norepinephrine", "epinephrine")},
])
def test_grades_2_to_4_recommend_tocilizumab(protocol: Protocol, vitals: dict[str, Any]) -> None:
    decision = evaluate(make(**vitals), protocol)
    assert decision.crs_grade in (2, 3, 4)
    assert [r.strength for r in recommended(decision, "tocilizumab")] == ["recommend"]


# --------------------------------------------------------------------------------------------
# Steroids by grade, antifungal prophylaxis, hemoperfusion


def steroid_doses(decision: Decision) -> dict[tuple[str, str], Any]:
    return {(r.action, r.strength): r.dose for r in decision.recommendations
            if r.action in ("dexamethasone", "methylprednisolone")}


def test_no_steroid_at_grade_1_or_at_grade_2_without_refractory_hypotension(protocol: Protocol) -> None:
    assert steroid_doses(evaluate(make(), protocol)) == {}
    assert steroid_doses(evaluate(make(hypotension=True, refractory=False), protocol)) == {}
    assert steroid_doses(evaluate(make(hypotension=True, refractory=None), protocol)) == {}


def test_grade_2_with_refractory_hypotension_considers_dexamethasone_10_mg_every_12_to_24_h(protocol: Protocol) -> None:
    decision = evaluate(make(hypotension=True, refractory=True), protocol)
    assert decision.crs_grade == 2
    doses = steroid_doses(decision)
    assert set(doses) == {("dexamethasone", "consider")}
    dose = doses["dexamethasone", "consider"]
    assert (dose.amount_mg, dose.interval_h, dose.interval_up_to_h) == (10, 12, 24)


def test_grade_3_recommends_dexamethasone_10_mg_every_6_h(protocol: Protocol) -> None:
    decision = evaluate(make(hypotension=True, vasopressors=("norepinephrine",), refractory=True), protocol)
    assert decision.crs_grade == 3
    doses = steroid_doses(decision)
    assert set(doses) == {("dexamethasone", "recommend")}
    dose = doses["dexamethasone", "recommend"]
    assert (dose.amount_mg, dose.interval_h, dose.interval_up_to_h) == (10, 6, None)


def test_grade_4_recommends_methylprednisolone_500_mg_every_12_h_instead_of_dexamethasone(protocol: Protocol) -> None:
    decision = evaluate(make(device="mechanical_ventilation", improving=False), protocol)
    assert decision.crs_grade == 4
    doses = steroid_doses(decision)
    assert set(doses) == {("methylprednisolone", "recommend")}  # no escalation before any methylprednisolone
    dose = doses["methylprednisolone", "recommend"]
    assert (dose.amount_mg, dose.interval_h, dose.for_days, dose.then) == (500, 12, 3, "taper")


@pytest.mark.parametrize(("improving", "escalate"), [(False, True), (None, False), (True, False)])
def test_grade_4_not_improving_after_methylprednisolone_considers_1000_mg_twice_daily(
    protocol: Protocol, improving: bool | None, escalate: bool
) -> None:
    decision = evaluate(make(device="bipap", improving=improving, meds=(("methylprednisolone", h(13)),)), protocol)
    doses = steroid_doses(decision)
    if escalate:
        # The escalation replaces the 500 mg regimen: never both.
        dose = doses["methylprednisolone", "consider"]
        assert (dose.amount_mg, dose.times_daily) == (1000, 2)
        assert ("methylprednisolone", "recommend") not in doses
        (replaced,) = withheld(decision, "methylprednisolone")
        assert replaced.limits == ("replaced_by_escalation",) and replaced.next_eligible_at is None
    else:
        assert doses["methylprednisolone", "recommend"].amount_mg == 500
        assert ("methylprednisolone", "consider") not in doses


def test_antifungal_prophylaxis_with_a_corticosteroid_in_the_history_even_at_grade_0(protocol: Protocol) -> None:
    decision = evaluate(make(temp_c=36.8, meds=(("prednisone", h(20)),)), protocol)
    assert decision.crs_grade == 0
    assert actions(decision, "consider") == {"antifungal_prophylaxis"}
    assert actions(decision, "recommend") == set()


@pytest.mark.parametrize(("vitals", "antifungal"), [
    ({"hypotension": True, "vasopressors": ("norepinephrine",)}, True),   # grade 3: dexamethasone proposed
    ({"device": "cpap"}, True),                                          # grade 4: methylprednisolone proposed
    ({"hypotension": True, "refractory": True}, True),                   # grade 2: dexamethasone considered
    ({"hypotension": True}, False),                                      # grade 2: no steroid
    ({}, False),                                                         # grade 1
    ({"temp_c": 37.0}, False),                                           # grade 0
])
def test_antifungal_prophylaxis_when_the_decision_proposes_a_corticosteroid(
    protocol: Protocol, vitals: dict[str, Any], antifungal: bool
) -> None:
    decision = evaluate(make(**vitals), protocol)
    assert ("antifungal_prophylaxis" in actions(decision, "consider")) is antifungal
    assert "antifungal_prophylaxis" not in actions(decision, "recommend")


REFRACTORY = {"hypotension": True, "vasopressors": ("norepinephrine",), "improving": False,
              "meds": (("tocilizumab", h(10)), ("dexamethasone", h(7)))}


@pytest.mark.parametrize(("change", "hemoperfusion"), [
    ({}, True),
    ({"vasopressors": ("norepinephrine", "epinephrine")}, True),
    ({"improving": None}, False),
    ({"improving": True}, False),
    ({"meds": (("tocilizumab", h(10)),)}, False),
    ({"meds": (("dexamethasone", h(7)),)}, False),
    ({"vasopressors": ()}, False),  # grade 2: not severe
])
def test_severe_crs_refractory_to_tocilizumab_and_steroids_considers_hemoperfusion(
    protocol: Protocol, change: dict[str, Any], hemoperfusion: bool
) -> None:
    decision = evaluate(make(**{**REFRACTORY, **change}), protocol)
    assert ("hemoperfusion" in actions(decision, "consider")) is hemoperfusion
    assert "hemoperfusion" not in actions(decision, "recommend")


@pytest.mark.parametrize(("improving", "hemoperfusion"), [(False, True), (None, False), (True, False)])
def test_septic_shock_not_improving_considers_hemoperfusion(
    protocol: Protocol, improving: bool | None, hemoperfusion: bool
) -> None:
    decision = evaluate(make(temp_c=37.2, septic_shock=True, sepsis_improving=improving), protocol)
    assert decision.crs_grade == 0
    assert actions(decision, "consider") == ({"hemoperfusion"} if hemoperfusion else set())


# --------------------------------------------------------------------------------------------
# Alerts


def test_icans_signs_raise_a_warning_and_do_not_change_the_grade(protocol: Protocol) -> None:
    with_icans = evaluate(make(hypotension=True, icans=True), protocol)
    without = evaluate(make(hypotension=True, icans=False), protocol)
    assert alert_ids(with_icans)["icans_vigilance"] == "warning"
    assert "icans_vigilance" not in alert_ids(without)
    assert with_icans.crs_grade == without.crs_grade == 2


def test_suspected_mas_raises_a_warning(protocol: Protocol) -> None:
    assert alert_ids(evaluate(make(mas=True), protocol))["mas_suspected"] == "warning"
    assert "mas_suspected" not in alert_ids(evaluate(make(mas=None), protocol))


@pytest.mark.parametrize(("age", "alert"), [(1.9, True), (0, True), (1, True), (2, False), (17, False), (None, False)])
def test_tocilizumab_below_age_2_is_flagged_and_still_recommended(
    protocol: Protocol, age: float | None, alert: bool
) -> None:
    decision = evaluate(make(weight=11, age=age, hypotension=True), protocol)
    assert [r.dose.amount_mg for r in recommended(decision, "tocilizumab") if r.dose] == [132]  # 12 x 11
    assert (alert_ids(decision).get("tocilizumab_outside_labelled_age") == "warning") is alert


def test_age_below_2_without_tocilizumab_raises_no_age_alert(protocol: Protocol) -> None:
    decision = evaluate(make(weight=11, age=1), protocol)
    assert decision.crs_grade == 1 and "tocilizumab_outside_labelled_age" not in alert_ids(decision)


@pytest.mark.parametrize("gm_csf", ["sargramostim", "molgramostim"])
def test_gm_csf_on_car_t_is_a_critical_alert(protocol: Protocol, gm_csf: str) -> None:
    decision = evaluate(make(orders=("acetaminophen", gm_csf)), protocol)
    assert alert_ids(decision)["gm_csf_contraindicated"] == "critical"
    assert decision.alerts[0].id == "gm_csf_contraindicated"
    assert "gm_csf_contraindicated" not in alert_ids(evaluate(make(car_t=False, orders=(gm_csf,)), protocol))
    # CAR T status not recorded: the alert is raised all the same (only "no CAR T" silences it).
    assert "gm_csf_contraindicated" in alert_ids(evaluate(make(car_t=None, orders=(gm_csf,)), protocol))


# --------------------------------------------------------------------------------------------
# The shipped examples


@dataclasses.dataclass(frozen=True)
class Expected:
    grade: int | None
    recommend: set[str]
    consider: set[str]
    doses_mg: dict[tuple[str, str], int]            # (action, strength) -> mg
    withheld: dict[str, tuple[tuple[str, ...], str | None]]  # action -> (limits, next_eligible_at)
    alerts: dict[str, str]
    engine_limits: set[str]                         # trace entries dosing.<drug>.<limit>...@<rule>
    status: str = "graded"
    possible_grades: tuple[int, ...] = ()
    pending: frozenset[str] = frozenset()           # action and alert ids pending


WORKUP_AND_CARE = {"supportive_care", "diagnostic_workup"}
SEVERE = {"cardiac_monitoring", "icu_transfer"}
AS_NEEDED_SEVERE = {"vasopressors", "supplemental_oxygen"}  # "as needed": considered, never recommended

EXPECTED = {
    "at-24h-limit.yaml": Expected(
        grade=3,  # vasopressin alone is one vasopressor
        recommend=WORKUP_AND_CARE | SEVERE,
        consider={"diagnostic_workup", "echocardiogram", "antifungal_prophylaxis"} | AS_NEEDED_SEVERE,
        doses_mg={},
        withheld={
            # Three doses in 24 h (the last exactly 8 h ago): eligible when the 12:30 dose leaves.
            "tocilizumab": (("max_doses_in_window",), "2026-03-11T12:30:00Z"),
            # Dexamethasone every 6 h, last given at 09:00 (corticosteroids are spaced as a class).
            "dexamethasone": (("class_interval_h",), "2026-03-11T15:00:00Z"),
        },
        alerts={"do_not_delay_treatment": "info", "early_steroid_use": "info"},
        engine_limits={"dosing.tocilizumab.max_doses_in_window@grade2_up.tocilizumab",
                       "dosing.dexamethasone.class_interval_h.every_6_hours@grade3.dexamethasone"},
        # Not recorded: neutropenia, improvement, sepsis, ICANS, MAS.
        pending=frozenset({"empiric_antibiotics", "hemoperfusion", "icans_vigilance", "mas_suspected"}),
    ),
    "child-under-30kg.yaml": Expected(
        grade=2,
        recommend=WORKUP_AND_CARE | {"tocilizumab", "cardiac_monitoring"},
        consider={"diagnostic_workup", "iv_fluid_bolus"},  # hypotension: fluid boluses as needed
        doses_mg={("tocilizumab", "recommend"): 291},  # 12 mg/kg x 24.3 kg = 291.6
        withheld={},
        alerts={"do_not_delay_treatment": "info"},
        engine_limits=set(),
        pending=frozenset({"dexamethasone", "antifungal_prophylaxis", "early_steroid_use", "empiric_antibiotics",
                           "hemoperfusion", "icans_vigilance", "mas_suspected",
                           "pediatric_steroid_dose"}),  # refractory hypotension not recorded
    ),
    "grade0-no-fever.yaml": Expected(
        grade=0, recommend=set(), consider=set(), doses_mg={}, withheld={}, alerts={}, engine_limits=set(),
        pending=frozenset({"hemoperfusion", "icans_vigilance", "mas_suspected"}),  # sepsis, ICANS, MAS not recorded
    ),
    "grade1-prolonged.yaml": Expected(
        grade=1,  # 101.3 °F = 38.5 °C, no hypotension, room air
        recommend=WORKUP_AND_CARE,
        consider={"diagnostic_workup", "empiric_antibiotics", "tocilizumab"},
        doses_mg={("tocilizumab", "consider"): 516},  # 8 mg/kg x 64.5 kg
        withheld={},
        alerts={"gm_csf_contraindicated": "critical"},
        engine_limits=set(),
        pending=frozenset({"hemoperfusion", "icans_vigilance", "mas_suspected"}),
    ),
    "grade2-adult.yaml": Expected(
        grade=2,  # nasal cannula 4 L/min; one dose 9 h ago, improvement unknown
        recommend=WORKUP_AND_CARE | {"tocilizumab", "cardiac_monitoring"},
        consider={"diagnostic_workup"},  # no IV fluid boluses: grade 2 by hypoxia alone
        doses_mg={("tocilizumab", "recommend"): 656},  # 8 mg/kg x 82 kg
        withheld={},
        alerts={"do_not_delay_treatment": "info"},
        engine_limits=set(),
        pending=frozenset({"hemoperfusion"}),  # sepsis not recorded
    ),
    "grade3-adult.yaml": Expected(
        grade=3,
        recommend=WORKUP_AND_CARE | SEVERE | {"tocilizumab", "dexamethasone"},
        consider={"diagnostic_workup", "empiric_antibiotics", "echocardiogram", "antifungal_prophylaxis"}
        | AS_NEEDED_SEVERE,
        doses_mg={("tocilizumab", "recommend"): 800, ("dexamethasone", "recommend"): 10},  # 105 kg: 840, capped
        withheld={},
        alerts={"icans_vigilance": "warning", "do_not_delay_treatment": "info", "early_steroid_use": "info"},
        engine_limits=set(),
        pending=frozenset({"hemoperfusion", "mas_suspected"}),
    ),
    "grade4-refractory.yaml": Expected(
        grade=4,  # afebrile after tocilizumab; two vasopressors and BiPAP
        recommend=WORKUP_AND_CARE | SEVERE,
        consider={"diagnostic_workup", "echocardiogram", "methylprednisolone", "hemoperfusion", "antifungal_prophylaxis",
                  "mechanical_ventilation"} | AS_NEEDED_SEVERE,
        # Not improving after methylprednisolone: 1,000 mg twice daily replaces the 500 mg regimen.
        doses_mg={("methylprednisolone", "consider"): 1000},
        withheld={"tocilizumab": (("min_interval_h",), "2026-03-11T14:00:00Z"),  # last dose at 06:00
                  "methylprednisolone": (("replaced_by_escalation",), None)},
        alerts={"do_not_delay_treatment": "info", "early_steroid_use": "info"},
        engine_limits={"dosing.tocilizumab.min_interval_h.weight_based@grade2_up.tocilizumab"},
        pending=frozenset({"empiric_antibiotics", "icans_vigilance", "mas_suspected"}),
    ),
    "indeterminate-no-temperature.yaml": Expected(
        grade=None, status="indeterminate", possible_grades=(0, 4),  # febrile: 4; afebrile: criteria not met
        recommend=set(), consider=set(), doses_mg={}, withheld={}, alerts={}, engine_limits=set(),
        pending=frozenset({"supportive_care", "diagnostic_workup", "cardiac_monitoring", "echocardiogram",
                           "icu_transfer", "vasopressors", "supplemental_oxygen", "tocilizumab", "methylprednisolone",
                           "mechanical_ventilation", "antifungal_prophylaxis", "do_not_delay_treatment",
                           "early_steroid_use"}),
    ),
    "not-applicable-sepsis.yaml": Expected(
        grade=None, status="not_applicable",  # no CAR T: no CRS grade, no CRS treatment
        recommend=set(), consider={"hemoperfusion"}, doses_mg={}, withheld={},
        alerts={"sepsis_protocol": "warning"}, engine_limits=set(),
    ),
}


def test_every_example_has_its_expectations() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_gets_the_grade_and_actions_the_protocol_prescribes(protocol: Protocol, name: str) -> None:
    expected = EXPECTED[name]
    decision = evaluate(read_patient(EXAMPLES / name), protocol)
    assert decision.crs_grade == expected.grade
    assert decision.grade_status == expected.status
    assert decision.possible_grades == expected.possible_grades
    assert {p.name for p in decision.pending} == expected.pending
    assert actions(decision, "recommend") == expected.recommend
    assert actions(decision, "consider") == expected.consider
    doses = {(r.action, r.strength): r.dose.amount_mg for r in decision.recommendations if r.dose}
    assert doses == expected.doses_mg
    shown = {w["action"]: (tuple(w["limits"]), w["next_eligible_at"]) for w in decision.to_dict()["withheld"]}
    assert shown == expected.withheld
    assert alert_ids(decision) == expected.alerts
    if expected.grade == 0:
        assert decision.grade_basis.startswith("CRS criteria not met")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_on_each_example_the_rules_withholding_and_the_independent_dose_check_agree(
    protocol: Protocol, name: str
) -> None:
    decision = evaluate(read_patient(EXAMPLES / name), protocol)
    patient = read_patient(EXAMPLES / name)
    limit_entries = {t for t in decision.trace if t.startswith("dosing.") and ".propose@" not in t}
    assert limit_entries == EXPECTED[name].engine_limits
    rules = {r.rule_id: r for r in protocol.action_rules}
    proposed = {t.partition("@")[2] for t in decision.trace if re.match(r"dosing\.\w+\.propose@", t)}
    entries: list[Recommendation | Withheld] = [*decision.recommendations, *decision.withheld]
    assert proposed == {e.rule for e in entries if rules[e.rule].dose}
    for rule_id in proposed:
        dose_ref = rules[rule_id].dose
        assert dose_ref is not None
        drug = protocol.drug(dose_ref.drug)
        assert drug is not None
        regimen = drug.regimen(dose_ref.regimen)
        assert regimen is not None
        amount, _ = compute_amount(regimen, drug, patient.weight_kg)
        verdict = check_dose(drug, regimen, amount, patient, protocol)
        by_rules = {t.partition("@")[0].split(".")[2] for t in limit_entries if t.endswith("@" + rule_id)}
        assert by_rules == set(verdict.limits)
        entry = [w for w in decision.withheld if w.rule == rule_id and w.limits != ("replaced_by_escalation",)]
        replaced = [w for w in decision.withheld if w.rule == rule_id and w.limits == ("replaced_by_escalation",)]
        if verdict.allowed:
            assert entry == [] and (any(r.rule == rule_id for r in decision.recommendations) or replaced)
        else:
            assert set(entry[0].limits) == set(verdict.limits)
            assert entry[0].next_eligible_at == verdict.next_eligible_at


# --------------------------------------------------------------------------------------------
# Two versions of the pack in one process


def test_two_pack_versions_in_one_process_each_give_their_own_answer(tmp_path: Path, protocol: Protocol) -> None:
    draft_dir = tmp_path / "rules-700"
    shutil.copytree(seed_numbers_pack(), draft_dir)
    dosing = draft_dir / "dosing.yaml"
    text = dosing.read_text(encoding="utf-8")
    assert text.count("max_dose_mg: 800") == 1
    dosing.write_text(text.replace("max_dose_mg: 800", "max_dose_mg: 700"), encoding="utf-8")
    manifest = draft_dir / "manifest.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = [line.replace("status: active", "status: draft") for line in lines if not line.startswith("digest:")]
    manifest.write_text("".join(lines), encoding="utf-8")

    shipped = load_protocol(seed_numbers_pack())
    draft = load_protocol(draft_dir)
    assert draft.status == "draft" and draft.recorded_digest is None
    assert draft.digest != shipped.digest

    patient = make(weight=100, hypotension=True)
    for _ in range(4):
        for pack, cap in ((shipped, 800), (draft, 700), (protocol, 800)):
            decision = evaluate(patient, pack, allow_draft=True)  # the draft needs the opt-in
            assert [r.dose.amount_mg for r in recommended(decision, "tocilizumab") if r.dose] == [cap]
            assert decision.protocol.digest == pack.digest
    child = make(weight=29.9, hypotension=True)  # 358 mg: under both caps
    assert [r.dose.amount_mg for r in recommended(evaluate(child, draft, allow_draft=True), "tocilizumab") if r.dose] == [358]
    assert [r.dose.amount_mg for r in recommended(evaluate(child, shipped), "tocilizumab") if r.dose] == [358]


# --------------------------------------------------------------------------------------------
# Valid input at the edges of what the contract allows


def _spellings(name: str, count: int) -> tuple[str, ...]:
    """``count`` letter-case spellings of one name."""
    return tuple("".join(c.upper() if i >> (k % 16) & 1 else c for k, c in enumerate(name)) for i in range(count))


def test_as_many_vasopressor_names_as_the_contract_allows_are_graded_and_more_are_refused(protocol: Protocol) -> None:
    # The contract allows 20 names (the engine refuses a fact of about 250 properties).
    names = _spellings("noradrenaline", 10) + _spellings("epinephrine", 10)
    assert evaluate(make(hypotension=True, vasopressors=names), protocol).crs_grade == 4
    assert evaluate(make(hypotension=True, vasopressors=_spellings("argipressin", 20)), protocol).crs_grade == 3
    with pytest.raises(InvalidInputError) as raised:
        evaluate(make(hypotension=True, vasopressors=_spellings("noradrenaline", 300)), protocol)
    assert {p.subject for p in raised.value.problems} == {"vitals.vasopressors"}


def test_a_rule_testing_for_one_list_member_still_sees_it_in_a_full_list(tmp_path: Path) -> None:
    pack = tmp_path / "rules-includes"
    shutil.copytree(seed_numbers_pack(), pack)
    with (pack / "alerts.yaml").open("a", encoding="utf-8") as alerts:
        alerts.write(
            "\n  - id: vasopressin_running\n    severity: info\n    description: Vasopressin is running.\n"
            "    text: Vasopressin is running.\n    when: {fact: vitals.vasopressors, includes: vasopressin}\n"
            "    citations: [ref1]\n")
    with (pack / "statements.yaml").open("a", encoding="utf-8") as statements:  # additions come last
        statements.write("  - rule: alert.vasopressin_running\n    reason: A test alert.\n")
    manifest = pack / "manifest.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    manifest.write_text("".join(line.replace("status: active", "status: draft") for line in lines
                                if not line.startswith("digest:")), encoding="utf-8")
    with_alert = load_protocol(pack)
    others = _spellings("norepinephrine", 10) + _spellings("adrenaline", 9)  # with vasopressin: 20 names

    def alerts_for(vasopressors: tuple[str, ...]) -> dict[str, str]:
        return alert_ids(evaluate(make(hypotension=True, vasopressors=vasopressors), with_alert, allow_draft=True))

    assert "vasopressin_running" in alerts_for((*others, "vasopressin"))
    assert "vasopressin_running" in alerts_for(("vasopressin",))
    assert "vasopressin_running" not in alerts_for(others)


def test_an_assessment_on_the_first_day_of_the_calendar_is_evaluated(protocol: Protocol) -> None:
    first = datetime(1, 1, 1, 6, 0, tzinfo=timezone.utc)
    decision = evaluate(make(hypotension=True, at=first, meds=(("tocilizumab", h(6)),)), protocol)
    assert decision.crs_grade == 2
    (entry,) = withheld(decision, "tocilizumab")
    assert entry.limits == ("min_interval_h",) and entry.next_eligible_at == first + h(2)


def test_an_eligibility_time_beyond_the_calendar_is_refused_as_input_not_a_crash(protocol: Protocol) -> None:
    last = datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc)
    with pytest.raises(InvalidInputError) as raised:
        evaluate(make(hypotension=True, at=last, meds=(("tocilizumab", h(1)),)), protocol)
    assert [p.subject for p in raised.value.problems] == ["assessed_at"]
    # Nothing to wait for: the same moment gives a decision.
    assert evaluate(make(hypotension=True, at=last), protocol).crs_grade == 2


# --------------------------------------------------------------------------------------------
# The Decision is frozen


def test_a_decision_and_everything_in_it_is_frozen(protocol: Protocol) -> None:
    decision = evaluate(read_patient(EXAMPLES / "grade3-adult.yaml"), protocol)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.crs_grade = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.recommendations[0].strength = "consider"  # type: ignore[misc]
    dose = next(r.dose for r in decision.recommendations if r.dose)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dose.amount_mg = 10_000  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.protocol.version = "9.9.9"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.alerts[0].severity = "info"  # type: ignore[misc]
    for collection in (decision.recommendations, decision.withheld, decision.alerts, decision.findings, decision.trace):
        assert isinstance(collection, tuple)
    # The JSON form is a copy: changing it changes nothing in the decision.
    output = decision.to_dict()
    output["crs_grade"] = 0
    output["recommendations"].clear()
    assert decision.crs_grade == 3 and decision.recommendations
    assert decision.to_dict()["crs_grade"] == 3


def _leaves(node: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in node.items():
        path = f"{prefix}{key}"
        found |= _leaves(value, path + ".") if isinstance(value, dict) else {path}
    return found


@pytest.mark.parametrize("example", sorted(path.name for path in EXAMPLES.glob("*.yaml")))
def test_the_engines_observation_holds_every_fact_the_rules_read_and_no_other(protocol: Protocol, example: str) -> None:
    from crs_rules.evaluation import compiled
    from crs_rules.facts import flat_facts
    from crs_rules.vocabulary import normalise

    program = compiled(protocol)
    reads = program.observation_reads
    assert reads is not None and {"patient.weight_kg", "patient.child"} <= reads  # the dose handlers' reads
    patient = normalise(read_patient(EXAMPLES / example), protocol)
    known = flat_facts(patient, protocol)
    leaves = _leaves(program.observation(patient, known)) - {"t"}
    lists = {path for path, value in known.items() if isinstance(value, tuple)}

    def encoded_list(attribute: str) -> str | None:
        return next((path for path in lists if attribute.startswith(path + ".")), None)

    # Nothing but what is read: a fact read by no rule is left out (a list is encoded whole).
    for leaf in leaves:
        assert leaf in reads or encoded_list(leaf) is not None, leaf
    # Everything read that the patient records is there.
    for attribute in reads:
        if attribute in known or (encoded_list(attribute) is not None and attribute.endswith(".count")):
            assert attribute in leaves, attribute
    # And the facts read by no rule, which the patient does record, are not.
    unread = {path for path in known if path not in reads and not any(a.startswith(path + ".") for a in reads)}
    assert unread
    assert not any(leaf == path or leaf.startswith(path + ".") for path in unread for leaf in leaves)


def test_a_decisions_trace_cannot_be_changed_so_no_later_decision_sees_a_change(protocol: Protocol) -> None:
    patient = read_patient(EXAMPLES / "grade3-adult.yaml")
    first = evaluate(patient, protocol)
    before = [(str(entry), entry.rule) for entry in first.trace]
    assert before
    entry = first.trace[0]
    with pytest.raises(AttributeError, match="read-only"):
        entry.rule = "tampered"
    with pytest.raises(AttributeError, match="read-only"):
        del entry.rule
    assert [(str(e), e.rule) for e in evaluate(patient, protocol).trace] == before
    for again in (pickle.loads(pickle.dumps(entry)), copy.deepcopy(entry)):
        assert again == entry and again.rule == entry.rule
