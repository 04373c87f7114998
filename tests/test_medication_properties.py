"""Properties of the corticosteroids proposed for a medication record written under any name.

One test per invariant, each over the profile's number of examples (2,000 in CI, 200 locally; see
conftest.py). The records come from :mod:`strategies`: every drug under any name of the pack's
vocabulary (or one written there by hand) in any letter case (``SOLU-MEDROL``, ``Decadron``), doses
sometimes recorded twice, at ages either side of 6 h and 12 h. The tocilizumab invariants over the
same records (800 mg, 8 and 12 mg/kg, 8 h, 3 in 24 h, 4 in the episode) are in test_properties.py.

The protocol's numbers are written here, from the clinical notes, never read from the rule pack.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import property_twins
from hypothesis import HealthCheck, Phase, find, given, note, settings
from hypothesis import strategies as st

from crs_rules import Decision, evaluate
from crs_rules.decision import Recommendation
from crs_rules.model import Protocol

from strategies import (
    complete_patient_states,
    drug_of,
    febrile_hypotensive_states,
    patient_states,
    states_after_methylprednisolone,
)

# --------------------------------------------------------------------------------------------
# The protocol, from the clinical notes (never from the YAML)

#: A child: under 18 years; with the age not recorded, under 30 kg.
CHILD_BELOW_YEARS = 18
CHILD_BELOW_KG_IF_AGE_UNKNOWN = 30

#: The corticosteroid regimens in escalation order: (drug, regimen) -> (step, interval).
#: Dexamethasone 10 mg every 12-24 h < every 6 h < methylprednisolone 500 mg every 12 h <
#: methylprednisolone 1,000 mg twice daily.
STEROID_REGIMENS: dict[tuple[str, str], tuple[int, timedelta]] = {
    ("dexamethasone", "every_12_to_24_hours"): (1, timedelta(hours=12)),
    ("dexamethasone", "every_6_hours"): (2, timedelta(hours=6)),
    ("methylprednisolone", "high_dose"): (3, timedelta(hours=12)),
    ("methylprednisolone", "twice_daily_if_not_improving"): (4, timedelta(hours=12)),
}
STEPPED_STEROIDS = frozenset(drug for drug, _ in STEROID_REGIMENS)
METHYLPREDNISOLONE_HIGH_DOSE_MG = 500
METHYLPREDNISOLONE_ESCALATION_MG = 1000


def instant(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(timezone.utc)


def is_child(state: dict[str, Any]) -> bool:
    patient = state["patient"]
    if "age_years" in patient:
        return bool(patient["age_years"] < CHILD_BELOW_YEARS)
    return bool(patient["weight_kg"] < CHILD_BELOW_KG_IF_AGE_UNKNOWN)


def recorded_step(drug: str, dose_mg: float | None) -> int:
    """The step a recorded dose stands at: dexamethasone at its highest (both regimens give
    10 mg); methylprednisolone at 1,000 mg or more the escalation, from 500 mg the high dose, and
    at the escalation when the amount is not recorded or is below 500 mg (the reading that waits
    longest)."""
    if drug == "dexamethasone":
        return 2
    if dose_mg is not None and METHYLPREDNISOLONE_HIGH_DOSE_MG <= dose_mg < METHYLPREDNISOLONE_ESCALATION_MG:
        return 3
    return 4


def last_corticosteroid(state: dict[str, Any]) -> tuple[datetime, int] | None:
    """(when, step) of the last dose of a corticosteroid this protocol doses, under any of its
    names; of two given at the same time, the higher step."""
    doses = [(instant(m["given_at"]), recorded_step(drug_of(m["drug"]), m.get("dose_mg")))
             for m in state.get("medications", []) if drug_of(m["drug"]) in STEPPED_STEROIDS]
    return max(doses) if doses else None


def steroid_recommendations(decision: Decision) -> list[Recommendation]:
    return [r for r in decision.recommendations if r.dose is not None and r.dose.drug in STEPPED_STEROIDS]


def decide(state: dict[str, Any], protocol: Protocol) -> Decision:
    note(f"state: {state!r}")
    return evaluate(state, protocol)


# --------------------------------------------------------------------------------------------
# The invariants


@pytest.mark.parametrize("examples", property_twins())
def test_no_fixed_adult_steroid_amount_is_proposed_for_a_child(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(complete_patient_states(febrile_hypotensive=True), patient_states()))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        proposed = steroid_recommendations(decision)
        if not is_child(state) or not proposed:
            return
        for recommendation in proposed:
            assert recommendation.dose is not None
            assert recommendation.dose.amount_mg is None, f"{recommendation.rule}: an adult amount for a child"
        alerts = {a.id: a.severity for a in decision.alerts}
        assert alerts.get("pediatric_steroid_dose") == "critical"

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_no_steroid_at_the_same_or_a_lower_step_is_proposed_inside_its_interval_after_the_last_one(
    protocol: Protocol, examples: int
) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(complete_patient_states(febrile_hypotensive=True), febrile_hypotensive_states(),
                     states_after_methylprednisolone()))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        last = last_corticosteroid(state)
        now = instant(state["assessed_at"])
        for recommendation in steroid_recommendations(decision):
            assert recommendation.dose is not None
            assert "medications" in state, "a corticosteroid proposed without a record to space it from"
            step, interval = STEROID_REGIMENS[(recommendation.dose.drug, recommendation.dose.regimen)]
            if last is not None and step <= last[1]:
                assert now - last[0] >= interval, (
                    f"{recommendation.rule}: step {step} {now - last[0]} after a step {last[1]} dose")

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_never_both_methylprednisolone_regimens(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(states_after_methylprednisolone(), complete_patient_states(febrile_hypotensive=True)))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        regimens = [r.dose.regimen for r in decision.recommendations
                    if r.dose is not None and r.dose.drug == "methylprednisolone"]
        assert len(set(regimens)) <= 1, regimens

    check()


# --------------------------------------------------------------------------------------------
# The strategies reach what the properties are about

# Search without shrinking: any example will do, the first found is enough. The example found is
# kept in Hypothesis's example database (.hypothesis/, a key per case) and tried first by the next
# run in this folder, regenerated through the current strategies, so it still shows that they reach
# the case; without it (a fresh clone, as in CI, or a strategy changed) the search starts afresh.
COVERAGE_SEARCH = settings(max_examples=3000, phases=[Phase.reuse, Phase.generate],
                           suppress_health_check=list(HealthCheck))


def _other_names(state: dict[str, Any], drugs: frozenset[str]) -> bool:
    """Every record of these drugs is written under another name than the drug's id."""
    written = [m["drug"] for m in state.get("medications", []) if drug_of(m["drug"]) in drugs]
    return bool(written) and all(name not in drugs for name in written)


@pytest.mark.parametrize("case", ["steroid spaced after a dose recorded under another name",
                                  "steroid proposed for a child", "escalation replacing the high dose",
                                  "tocilizumab withheld after doses recorded under other names"])
def test_the_strategies_reach_the_steroid_and_name_cases(protocol: Protocol, case: str) -> None:
    def reached(state: dict[str, Any]) -> bool:
        decision = evaluate(state, protocol)
        if case.startswith("steroid spaced"):
            return _other_names(state, STEPPED_STEROIDS) and any(
                "class_interval_h" in w.limits for w in decision.withheld)
        if case.startswith("steroid proposed"):
            return is_child(state) and bool(steroid_recommendations(decision))
        if case.startswith("escalation"):
            return any(w.limits == ("replaced_by_escalation",) for w in decision.withheld)
        return _other_names(state, frozenset({"tocilizumab"})) and any(
            w.action == "tocilizumab" and set(w.limits) & {"min_interval_h", "max_doses_in_window",
                                                            "max_doses_per_course"} for w in decision.withheld)

    found = find(st.one_of(complete_patient_states(febrile_hypotensive=True), states_after_methylprednisolone()),
                 reached, settings=COVERAGE_SEARCH, database_key=f"{__name__}: the strategies reach {case}".encode())
    assert reached(found)
