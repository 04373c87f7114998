"""Properties of ``evaluate``: one test per invariant, each over the profile's number of examples
(2,000 in CI, 200 locally; see conftest.py).

The protocol's numbers are written here, from the clinical notes, and never read from the rule
pack: a wrong edit of the YAML makes these tests fail. The medication records are written under any
name of the pack's vocabulary, in any letter case (``ACTEMRA``, ``Tocilizumab-AAZG``): the
references below read them with :func:`strategies.drug_of`. The reference grading and the reference
dose limits below are plain Python, sharing no code with the library.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import property_twins
from hypothesis import HealthCheck, Phase, find, given, note, settings
from hypothesis import strategies as st

from crs_rules import Decision, InvalidInputError, evaluate, parse_patient
from crs_rules.compilation import compute_amount
from crs_rules.decision import Alert, Recommendation, Withheld
from crs_rules.dosing import check_dose
from crs_rules.facts import is_child
from crs_rules.model import Protocol
from crs_rules.vocabulary import normalise

from strategies import (
    CORTICOSTEROIDS,
    GM_CSF,
    OXYGEN_DEVICES,
    VASOPRESSIN_LIKE,
    VASOPRESSOR_NAMES,
    VASOPRESSORS,
    complete_patient_states,
    drug_of,
    febrile_hypotensive_states,
    invalid_patient_states,
    patient_states,
    written_names,
)

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# The protocol, from the clinical notes (never from the YAML)

FEVER_C = Fraction(38)
LOW_FLOW_MAX_L_MIN = Fraction(6)
# Antipyretics, anticytokines and corticosteroids mask fever when given at or after the CRS onset.
MASKING_DRUGS = frozenset({"tocilizumab", "siltuximab", "anakinra", "acetaminophen", "paracetamol", "ibuprofen",
                           *CORTICOSTEROIDS})
HIGH_FLOW_DEVICES = frozenset({"high_flow_nasal_cannula", "face_mask", "non_rebreather", "venturi"})
POSITIVE_PRESSURE_DEVICES = frozenset({"cpap", "bipap", "mechanical_ventilation"})

TOCILIZUMAB_MG_PER_KG_FROM_30_KG = 8
TOCILIZUMAB_MG_PER_KG_BELOW_30_KG = 12
TOCILIZUMAB_CHILD_BAND_BELOW_KG = Decimal(30)
TOCILIZUMAB_MAX_MG = 800
TOCILIZUMAB_MIN_INTERVAL = timedelta(hours=8)
TOCILIZUMAB_WINDOW = timedelta(hours=24)
TOCILIZUMAB_MAX_IN_WINDOW = 3
TOCILIZUMAB_MAX_IN_COURSE = 4
PROLONGED_CRS = timedelta(days=3)

# The safety envelope's own limits (applied by the independent check when the pack's rules did not
# reach them, e.g. a dose of unknown amount) wait or refuse in the same way as the pack's.
PACK_TIME_BASED_LIMITS = frozenset({"min_interval_h", "max_doses_in_window", "class_interval_h"})
TIME_BASED_LIMITS = PACK_TIME_BASED_LIMITS | {"envelope_min_interval_h", "envelope_max_doses_in_window"}
NEVER_ELIGIBLE_LIMITS = frozenset({"max_dose_mg", "max_doses_per_course", "repeat_only_if_not_improving",
                                   "pediatric_fixed_dose", "replaced_by_escalation",
                                   "envelope_max_dose_mg", "envelope_max_mg_per_kg",
                                   "envelope_max_doses_per_course", "envelope_unknown_drug"})
TOCILIZUMAB_RULES = {"grade1.tocilizumab", "grade2_up.tocilizumab"}


def instant(value: str | datetime) -> datetime:
    """A date-time of the input contract as an instant in UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(timezone.utc)


def temperature_c(state: dict[str, Any]) -> Fraction | None:
    """The temperature in °C, exactly: the decimal the caller wrote, °F converted by (F - 32) × 5/9."""
    vitals = state.get("vitals", {})
    if "temperature_c" in vitals:
        return Fraction(repr(vitals["temperature_c"]))
    if "temperature_f" in vitals:
        return (Fraction(repr(vitals["temperature_f"])) - 32) * Fraction(5, 9)
    return None


def reference_hypotension_grade(state: dict[str, Any]) -> int:
    vitals = state.get("vitals", {})
    pressors = {VASOPRESSOR_NAMES[n.lower()] for n in vitals.get("vasopressors", [])}
    if len(pressors - VASOPRESSIN_LIKE) >= 2:
        return 4
    if pressors:
        return 3
    return 2 if vitals.get("hypotension") is True else 0


def reference_hypoxia_grade(state: dict[str, Any]) -> int:
    oxygen = state.get("vitals", {}).get("oxygen")
    device = oxygen["device"] if oxygen else None
    if device in POSITIVE_PRESSURE_DEVICES:
        return 4
    if device in HIGH_FLOW_DEVICES:
        return 3
    if device == "nasal_cannula":
        assert oxygen is not None
        return 3 if Fraction(repr(oxygen["flow_l_min"])) > LOW_FLOW_MAX_L_MIN else 2
    if device == "blow_by":
        return 2
    return 0


def reference_fever_masked(state: dict[str, Any]) -> bool:
    """The clinician's flag, or a masking drug given at or after the onset (complete states record it)."""
    crs = state.get("crs", {})
    if crs.get("antipyretic_or_anticytokine") is True:
        return True
    onset = instant(crs["onset_at"])
    return any(drug_of(m["drug"]) in MASKING_DRUGS and instant(m["given_at"]) >= onset
               for m in state.get("medications", []))


def reference_grade(state: dict[str, Any]) -> int:
    """ASTCT grading as the clinical notes state it."""
    temperature = temperature_c(state)
    fever = temperature is not None and temperature >= FEVER_C
    if not fever and not reference_fever_masked(state):
        return 0
    cardiorespiratory = max(reference_hypotension_grade(state), reference_hypoxia_grade(state))
    if cardiorespiratory == 0:
        return 1 if fever else 0
    return cardiorespiratory


def reference_tocilizumab_mg(weight: int | float) -> int:
    """8 mg/kg from 30 kg, 12 mg/kg below, rounded down to a whole mg, at most 800 mg."""
    kg = Decimal(repr(weight))
    per_kg = TOCILIZUMAB_MG_PER_KG_BELOW_30_KG if kg < TOCILIZUMAB_CHILD_BAND_BELOW_KG else TOCILIZUMAB_MG_PER_KG_FROM_30_KG
    return min(TOCILIZUMAB_MAX_MG, int((per_kg * kg).to_integral_value(rounding=ROUND_FLOOR)))


def tocilizumab_times(state: dict[str, Any]) -> list[datetime]:
    """Every tocilizumab dose, under any of its names (``ACTEMRA``, ``Tocilizumab-AAZG``), a dose
    recorded twice (same time, any names) counted once."""
    return sorted({instant(m["given_at"]) for m in state.get("medications", [])
                   if drug_of(m["drug"]) == "tocilizumab"})


def tocilizumab_course(state: dict[str, Any]) -> list[datetime]:
    """The doses of this episode: at or after the CRS onset (every dose when it is not recorded)."""
    onset = state.get("crs", {}).get("onset_at")
    return [t for t in tocilizumab_times(state) if onset is None or t >= instant(onset)]


def reference_tocilizumab_limits(state: dict[str, Any]) -> set[str]:
    """The limits a new tocilizumab dose would break now."""
    now = instant(state["assessed_at"])
    given = tocilizumab_times(state)
    limits = set()
    if len(tocilizumab_course(state)) >= TOCILIZUMAB_MAX_IN_COURSE:
        limits.add("max_doses_per_course")
    # A dose given exactly 24 h before the assessment is outside the window.
    if sum(1 for t in given if now - t < TOCILIZUMAB_WINDOW) >= TOCILIZUMAB_MAX_IN_WINDOW:
        limits.add("max_doses_in_window")
    if given and now - given[-1] < TOCILIZUMAB_MIN_INTERVAL:
        limits.add("min_interval_h")
    if given and state.get("crs", {}).get("improving") is True:
        limits.add("repeat_only_if_not_improving")
    if reference_tocilizumab_mg(state["patient"]["weight_kg"]) <= 0:
        limits.add("max_dose_mg")
    return limits


def reference_tocilizumab_strength(state: dict[str, Any], grade: int) -> str | None:
    """recommend from grade 2; consider at grade 1 for CRS over 3 days or significant comorbidities."""
    if grade >= 2:
        return "recommend"
    if grade == 1:
        crs = state.get("crs", {})
        prolonged = "onset_at" in crs and instant(state["assessed_at"]) - instant(crs["onset_at"]) > PROLONGED_CRS
        if prolonged or state["patient"].get("significant_comorbidities") is True:
            return "consider"
    return None


def decide(state: dict[str, Any], protocol: Protocol) -> Decision:
    note(f"state: {state!r}")
    return evaluate(state, protocol)


def tocilizumab_entries(decision: Decision) -> tuple[list[Any], list[Any]]:
    recommended = [r for r in decision.recommendations if r.action == "tocilizumab"]
    withheld = [w for w in decision.withheld if w.action == "tocilizumab"]
    return recommended, withheld


@pytest.fixture(scope="session")
def protocol(seed_protocol: Protocol) -> Protocol:
    """The numbers reasoned with here are the seed's (conftest.SEED_NUMBERS), written into a copy of
    the pack under test when it says others; the pack's own exact doses are checked by its scenarios."""
    return seed_protocol


@pytest.fixture(scope="module")
def decision_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def pack_references() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "rules" / "references.yaml").read_text(encoding="utf-8"))
    return {r["id"]: r for r in data["references"]}


# --------------------------------------------------------------------------------------------
# Doses


@pytest.mark.parametrize("examples", property_twins())
def test_tocilizumab_dose_is_never_above_800_mg_or_the_per_kg_amount(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(febrile_hypotensive_states(), patient_states()))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        weight = Decimal(repr(state["patient"]["weight_kg"]))
        per_kg = 12 if weight < 30 else 8
        for recommendation in tocilizumab_entries(decision)[0]:
            assert recommendation.dose is not None
            amount = Decimal(repr(recommendation.dose.amount_mg))
            assert 0 < amount <= 800
            assert amount <= (per_kg * weight).to_integral_value(rounding=ROUND_FLOOR)
            assert amount == reference_tocilizumab_mg(state["patient"]["weight_kg"]), "the dose the protocol prescribes"
            assert recommendation.dose.drug == "tocilizumab"

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_no_recommended_tocilizumab_dose_breaks_the_window_course_interval_or_improving_limit(
    protocol: Protocol, examples: int
) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(febrile_hypotensive_states(), patient_states(), complete_patient_states(),
                     complete_patient_states(febrile_hypotensive=True)))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        now = instant(state["assessed_at"])
        given_at = tocilizumab_times(state)
        recommended, _ = tocilizumab_entries(decision)
        if recommended:
            assert "medications" in state, "recommended without a medication record to check the limits on"
        for _ in recommended:
            assert sum(1 for t in given_at if now - t < timedelta(hours=24)) <= 2, "would be the 4th in 24 h"
            assert len(tocilizumab_course(state)) <= 3, "would be the 5th in the course"
            assert not given_at or now - given_at[-1] >= timedelta(hours=8), "within 8 h of the last dose"
            assert not (given_at and state.get("crs", {}).get("improving") is True), "a repeat while improving"

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_with_the_data_recorded_tocilizumab_is_withheld_exactly_when_a_limit_is_reached(
    protocol: Protocol, examples: int
) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(complete_patient_states(), complete_patient_states(febrile_hypotensive=True)))
    def check(state: dict[str, Any]) -> None:
        # Withheld exactly when a limit is reached, at the strength the grade calls for (a dose withheld
        # without reason delays treatment).
        decision = decide(state, protocol)
        recommended, withheld = tocilizumab_entries(decision)
        if any(p.name == "tocilizumab" for p in decision.pending):  # grade 1 with comorbidities not recorded
            assert reference_grade(state) == 1
            return
        strength = reference_tocilizumab_strength(state, reference_grade(state))
        entries = [*recommended, *withheld]
        if strength is None:
            assert entries == []
            return
        assert len(entries) == 1 and entries[0].strength == strength and entries[0].rule in TOCILIZUMAB_RULES
        expected_limits = reference_tocilizumab_limits(state)
        if expected_limits:
            assert recommended == [] and set(withheld[0].limits) == expected_limits
        else:
            assert withheld == [] and len(recommended) == 1

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_the_engines_withholding_agrees_with_the_independent_dose_check(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(febrile_hypotensive_states(), patient_states()))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        # The check reads the pack's drug ids, as evaluate() gives them: names mapped once, at the input.
        patient = normalise(parse_patient(state), protocol)
        rules = {r.rule_id: r for r in protocol.action_rules}
        entries: list[Recommendation | Withheld] = [*decision.recommendations, *decision.withheld]
        for entry in entries:
            dose_ref = rules[entry.rule].dose
            if dose_ref is None:
                continue
            drug = protocol.drug(dose_ref.drug)
            assert drug is not None
            regimen = drug.regimen(dose_ref.regimen)
            assert regimen is not None
            engine_limits = set()
            for fired in decision.trace:
                name, _, rule = fired.partition("@")
                parts = name.split(".")
                if rule == entry.rule and parts[:2] == ["dosing", drug.id] and parts[2] != "propose":
                    engine_limits.add(parts[2])
            if isinstance(entry, Withheld) and entry.limits == ("replaced_by_escalation",):
                continue  # not withheld by a limit: replaced by the escalation proposed beside it
            amount: int | float | None
            amount, _ = compute_amount(regimen, drug, patient.weight_kg)
            if isinstance(entry, Recommendation):
                assert entry.dose is not None
                if entry.dose.amount_mg is None:  # a child's fixed adult amount, or the taper
                    assert regimen.amount is not None and (regimen.amount.fixed_mg is not None or entry.dose.now)
                    amount = None
                assert entry.dose.amount_mg == amount
            elif regimen.amount is not None and regimen.amount.fixed_mg is not None and is_child(patient, protocol):
                amount = None
            verdict = check_dose(drug, regimen, amount, patient, protocol)
            # The rules cap the amount instead of withholding it; the check alone sees a zero dose. The
            # safety envelope is a second layer the rules do not encode: only the check applies it (a dose
            # it stops is withheld all the same, below).
            pack_limits = {limit for limit in verdict.limits if not limit.startswith("envelope_")}
            assert engine_limits == pack_limits - {"max_dose_mg"}
            if isinstance(entry, Withheld):
                assert set(entry.limits) == engine_limits | set(verdict.limits)
            else:
                assert verdict.allowed and not engine_limits

    check()


# --------------------------------------------------------------------------------------------
# Grading


@pytest.mark.parametrize("examples", property_twins())
def test_the_grade_equals_the_reference_grading(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(complete_patient_states())
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        assert decision.grade_status == "graded"
        findings = dict(decision.findings)
        assert findings["hypotension_grade"] == reference_hypotension_grade(state)
        assert findings["hypoxia_grade"] == reference_hypoxia_grade(state)
        assert decision.crs_grade == reference_grade(state)
        assert findings["crs_grade"] == decision.crs_grade

    check()


OXYGEN_TIER = {
    "room_air": 0,
    "blow_by": 1,
    "nasal_cannula": 1,  # 2 above 6 L/min: see oxygen_tier()
    "high_flow_nasal_cannula": 2,
    "face_mask": 2,
    "non_rebreather": 2,
    "venturi": 2,
    "cpap": 3,
    "bipap": 3,
    "mechanical_ventilation": 3,
}


def oxygen_tier(oxygen: dict[str, Any] | None) -> int:
    """How intensive the oxygen support is, clinically: none, low flow, high flow, positive pressure."""
    if not oxygen:
        return 0
    if oxygen["device"] == "nasal_cannula" and oxygen["flow_l_min"] > 6:
        return 2
    return OXYGEN_TIER[oxygen["device"]]


@st.composite
def worsened(draw: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(what got worse, a state, the same state with one vital sign worse)."""
    state = draw(complete_patient_states())
    worse = copy.deepcopy(state)
    vitals = worse.setdefault("vitals", {})
    sign = draw(st.sampled_from(("temperature", "hypotension", "vasopressor", "oxygen")))
    if sign == "temperature":
        if "temperature_f" in vitals:
            low = max(vitals["temperature_f"], 100.4 if draw(st.booleans()) else vitals["temperature_f"])
            vitals["temperature_f"] = draw(st.floats(low, 116.6))
        else:
            old = vitals.get("temperature_c", 13.0)
            low = max(old, 38.0) if draw(st.booleans()) else old
            vitals["temperature_c"] = draw(st.one_of(st.just(low), st.floats(low, 47.0)))
    elif sign == "hypotension":
        vitals["hypotension"] = True
        vitals.setdefault("vasopressors", [])  # stated: none yet
    elif sign == "vasopressor":
        vitals["hypotension"] = True
        vitals["vasopressors"] = [*vitals.get("vasopressors", []), draw(st.sampled_from(VASOPRESSORS))]
    else:
        old = vitals.get("oxygen", {})
        old_tier = oxygen_tier(old)
        device = draw(st.sampled_from([d for d in OXYGEN_DEVICES if OXYGEN_TIER[d] >= old_tier
                                       or (d == "nasal_cannula" and old_tier < 3)]))
        oxygen: dict[str, Any] = {"device": device}
        if device == "nasal_cannula":
            if old.get("device") == "nasal_cannula":
                low = old["flow_l_min"]  # the same cannula, the same flow or more
            else:
                low = 6.000001 if old_tier >= 2 else 0  # high flow stays high flow
            oxygen["flow_l_min"] = draw(st.one_of(st.just(low), st.floats(low, 100.0)))
        assert oxygen_tier(oxygen) >= old_tier
        vitals["oxygen"] = oxygen
    return sign, state, worse


@pytest.mark.parametrize("examples", property_twins())
def test_worsening_one_vital_sign_never_lowers_the_grade(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(worsened())
    def check(case: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
        sign, state, worse = case
        before, after = decide(state, protocol), decide(worse, protocol)
        note(f"worse {sign}: {worse!r}")
        assert before.crs_grade is not None and after.crs_grade is not None  # complete data: graded
        assert after.crs_grade >= before.crs_grade
        for finding in ("hypotension_grade", "hypoxia_grade", "cardiorespiratory_grade"):
            old, new = dict(before.findings)[finding], dict(after.findings)[finding]
            assert old is not None and new is not None and new >= old

    check()


# --------------------------------------------------------------------------------------------
# Citations, determinism, invalid input, the output schema


@pytest.mark.parametrize("examples", property_twins())
def test_every_recommendation_withheld_entry_and_alert_cites_references_of_the_pack(
    protocol: Protocol, pack_references: dict[str, dict[str, Any]], examples: int
) -> None:
    @settings(max_examples=examples)
    @given(patient_states())
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        entries: list[Recommendation | Withheld | Alert] = [*decision.recommendations, *decision.withheld, *decision.alerts]
        for entry in entries:
            assert entry.citations, f"{entry.rule} cites nothing"
            for citation in entry.citations:
                assert citation.id in pack_references, f"{entry.rule} cites {citation.id}, not in references.yaml"
                reference = pack_references[citation.id]
                assert (citation.seed_number, citation.title) == (reference.get("seed_number"), reference["title"])

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_evaluation_is_deterministic_and_independent_of_list_order(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(patient_states(), st.randoms(use_true_random=False))
    def check(state: dict[str, Any], random: Any) -> None:
        untouched = copy.deepcopy(state)
        first = decide(state, protocol)
        assert state == untouched, "evaluate changed its input"
        assert decide(state, protocol).to_dict() == first.to_dict()
        shuffled = copy.deepcopy(state)
        for section, key in (("", "medications"), ("", "proposed_orders"), ("vitals", "vasopressors")):
            holder = shuffled.get(section, {}) if section else shuffled
            if key in holder:
                random.shuffle(holder[key])
        again = decide(shuffled, protocol)
        assert again.to_dict() == first.to_dict()
        assert again == first
        assert again.render_text() == first.render_text()

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_every_invalid_input_raises_invalid_input_error_never_a_decision(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(invalid_patient_states())
    def check(case: tuple[str, dict[str, Any]]) -> None:
        wrong, state = case
        note(f"{wrong}: {state!r}")
        with pytest.raises(InvalidInputError) as raised:
            evaluate(state, protocol)
        assert raised.value.problems, f"{wrong}: no problem named"

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_every_decision_validates_against_the_decision_schema(
    protocol: Protocol, decision_validator: jsonschema.protocols.Validator, examples: int
) -> None:
    @settings(max_examples=examples)
    @given(patient_states())
    def check(state: dict[str, Any]) -> None:
        output = decide(state, protocol).to_dict()
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in decision_validator.iter_errors(output)]
        assert errors == []
        assert json.loads(json.dumps(output, allow_nan=False)) == output

    check()


# --------------------------------------------------------------------------------------------
# Alerts and eligibility


@pytest.mark.parametrize("examples", property_twins())
def test_gm_csf_proposed_on_car_t_always_raises_the_critical_alert(protocol: Protocol, examples: int) -> None:
    @settings(max_examples=examples)
    @given(patient_states(), st.lists(st.sampled_from(GM_CSF).flatmap(written_names), min_size=1, max_size=2),
           st.booleans())
    def check(state: dict[str, Any], gm_csf: list[str], with_others: bool) -> None:
        state["therapy"] = {"car_t": True}
        orders = [{"drug": d} for d in gm_csf]
        state["proposed_orders"] = [*state.get("proposed_orders", []), *orders] if with_others else orders
        alerts = {a.id: a for a in decide(state, protocol).alerts}
        assert "gm_csf_contraindicated" in alerts
        assert alerts["gm_csf_contraindicated"].severity == "critical"

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_withheld_doses_become_eligible_at_next_eligible_at_for_their_time_based_reasons(
    protocol: Protocol, examples: int
) -> None:
    @settings(max_examples=examples)
    @given(st.one_of(febrile_hypotensive_states(), patient_states()))
    def check(state: dict[str, Any]) -> None:
        decision = decide(state, protocol)
        output = decision.to_dict()
        for entry, shown in zip(decision.withheld, output["withheld"]):
            limits = set(entry.limits)
            if limits & NEVER_ELIGIBLE_LIMITS:
                assert entry.next_eligible_at is None and shown["next_eligible_at"] is None
                continue
            assert limits <= TIME_BASED_LIMITS
            assert entry.next_eligible_at is not None and entry.next_eligible_at > decision.assessed_at
            # The time people read is the one they act on: re-evaluate at it, same history.
            later = copy.deepcopy(state)
            later["assessed_at"] = shown["next_eligible_at"]
            assert instant(later["assessed_at"]) > instant(state["assessed_at"])
            again = decide(later, protocol)
            assert again.crs_grade == decision.crs_grade
            still = [w for w in again.withheld if w.rule == entry.rule]
            assert all(not set(w.limits) & TIME_BASED_LIMITS for w in still), (
                f"{entry.rule} still withheld at {shown['next_eligible_at']}: {[w.reason for w in still]}")
            assert still or any(r.rule == entry.rule for r in again.recommendations)

    check()


# --------------------------------------------------------------------------------------------
# The strategies reach what the properties are about


# Search without shrinking: any example will do, the first found is enough. The example found is
# kept in Hypothesis's example database (.hypothesis/, a key per case) and tried first by the next
# run in this folder, regenerated through the current strategies, so it still shows that they reach
# the case; without it (a fresh clone, as in CI, or a strategy changed) the search starts afresh.
COVERAGE_SEARCH = settings(max_examples=3000, phases=[Phase.reuse, Phase.generate],
                           suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("limit", sorted(PACK_TIME_BASED_LIMITS | {"max_doses_per_course", "repeat_only_if_not_improving"}))
def test_the_strategies_reach_every_dose_limit(protocol: Protocol, limit: str) -> None:
    found = find(
        febrile_hypotensive_states(),
        lambda s: any(limit in w.limits for w in evaluate(s, protocol).withheld),
        settings=COVERAGE_SEARCH, database_key=f"{__name__}: the strategies reach {limit}".encode(),
    )
    assert any(limit in w.limits for w in evaluate(found, protocol).withheld)


@pytest.mark.parametrize("grade", range(5))
def test_the_strategies_reach_every_grade(protocol: Protocol, grade: int) -> None:
    found = find(
        complete_patient_states(),
        lambda s: evaluate(s, protocol).crs_grade == grade,
        settings=COVERAGE_SEARCH, database_key=f"{__name__}: the strategies reach grade {grade}".encode(),
    )
    assert reference_grade(found) == grade
