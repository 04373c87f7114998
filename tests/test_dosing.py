"""The independent dose check (``crs_rules.dosing``) called directly, on the shipped pack's drugs.

The rules never propose an amount above a drug's cap (they cap it), so the check's own cap branch is
reached only by calling it with such an amount: what it must do if the rules ever got it wrong.
Amounts, limits and reasons are written here from ``rules/dosing.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crs_rules import parse_patient
from crs_rules.dose_rules import compute_amount
from crs_rules.dosing import check_dose, largest_allowed_mg
from crs_rules.envelope import default_envelope
from crs_rules.model import Drug, Pediatric, Protocol, Regimen
from crs_rules.patient import PatientState

ASSESSED_AT = "2026-03-10T12:00:00Z"


@pytest.fixture(scope="session")
def protocol(seed_protocol: Protocol) -> Protocol:
    """The numbers reasoned with here are the seed's (conftest.SEED_NUMBERS), written into a copy of
    the pack under test when it says others; the pack's own exact doses are checked by its scenarios."""
    return seed_protocol


def patient(weight_kg: float, medications: list[dict[str, Any]] | None = None) -> PatientState:
    data: dict[str, Any] = {"assessed_at": ASSESSED_AT, "patient": {"weight_kg": weight_kg}}
    data["medications"] = medications or []  # the record: nothing given unless listed
    return parse_patient(data)


def drug_and_regimen(protocol: Protocol, drug_id: str, regimen_id: str) -> tuple[Drug, Regimen]:
    drug = protocol.drug(drug_id)
    assert drug is not None
    regimen = drug.regimen(regimen_id)
    assert regimen is not None
    return drug, regimen


def test_a_tocilizumab_dose_above_the_800_mg_cap_is_withheld_for_good(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "tocilizumab", "weight_based")
    adult = patient(120)  # 8 mg/kg would be 960 mg: the cap of 800 mg applies
    verdict = check_dose(drug, regimen, 801, adult)
    assert not verdict.allowed
    assert verdict.largest_allowed_mg == Fraction(800)
    assert verdict.limits == ("max_dose_mg",)
    assert verdict.reasons == ("801 mg is above the 800 mg this patient may receive in one dose",)
    assert verdict.next_eligible_at is None  # waiting does not make the amount smaller
    at_cap = check_dose(drug, regimen, 800, adult)
    assert at_cap.allowed and at_cap.limits == () and at_cap.reasons == ()


def test_a_tocilizumab_dose_above_the_per_kg_amount_under_the_cap_is_withheld(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "tocilizumab", "weight_based")
    child = patient(20)  # 12 mg/kg below 30 kg: 240 mg
    verdict = check_dose(drug, regimen, 240.5, child)
    assert not verdict.allowed
    assert verdict.largest_allowed_mg == Fraction(240)
    assert verdict.limits == ("max_dose_mg",)
    assert verdict.reasons == ("240.5 mg is above the 240 mg this patient may receive in one dose",)
    assert check_dose(drug, regimen, 240, child).allowed


@pytest.mark.parametrize("amount", [0, -10])
def test_no_dose_at_all_is_not_allowed(protocol: Protocol, amount: float) -> None:
    drug, regimen = drug_and_regimen(protocol, "tocilizumab", "weight_based")
    verdict = check_dose(drug, regimen, amount, patient(70))
    assert not verdict.allowed and verdict.limits == ("max_dose_mg",) and verdict.next_eligible_at is None


def test_an_over_cap_dose_that_is_also_too_early_is_never_eligible(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "tocilizumab", "weight_based")
    given = [{"drug": "tocilizumab", "dose_mg": 800, "given_at": "2026-03-10T10:00:00Z"}]  # 2 h ago, 8 h apart
    verdict = check_dose(drug, regimen, 900, patient(120, given))
    assert verdict.limits == ("max_dose_mg", "min_interval_h")
    assert verdict.reasons == (
        "900 mg is above the 800 mg this patient may receive in one dose",
        "last dose 2.0 h ago (at least 8 h between doses)",
    )
    assert verdict.next_eligible_at is None
    # The same dose at the cap becomes eligible 8 h after the last one.
    at_cap = check_dose(drug, regimen, 800, patient(120, given))
    assert at_cap.limits == ("min_interval_h",)
    assert at_cap.next_eligible_at == datetime(2026, 3, 10, 18, 0, tzinfo=timezone.utc)


def test_a_fixed_dose_above_its_fixed_amount_is_withheld(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "dexamethasone", "every_6_hours")
    verdict = check_dose(drug, regimen, 11, patient(70))  # dexamethasone is 10 mg, whatever the weight
    assert verdict.largest_allowed_mg == Fraction(10)
    assert verdict.limits == ("max_dose_mg",)
    assert verdict.reasons == ("11 mg is above the 10 mg this patient may receive in one dose",)
    assert check_dose(drug, regimen, 10, patient(70)).allowed


def child_or_adult(age_years: float | None, weight_kg: float) -> PatientState:
    data: dict[str, Any] = {"assessed_at": ASSESSED_AT, "patient": {"weight_kg": weight_kg}, "medications": []}
    if age_years is not None:
        data["patient"]["age_years"] = age_years
    return parse_patient(data)


@pytest.mark.parametrize(("age_years", "weight_kg"), [(17, 70), (10, 35), (None, 29.9)])
def test_a_fixed_adult_amount_is_never_given_to_a_child(protocol: Protocol, age_years: float | None,
                                                       weight_kg: float) -> None:
    # A child: under 18 years, or (the age not recorded) under 30 kg (rules/dosing.yaml, pediatric).
    drug, regimen = drug_and_regimen(protocol, "dexamethasone", "every_6_hours")
    verdict = check_dose(drug, regimen, 10, child_or_adult(age_years, weight_kg), protocol)
    assert not verdict.allowed
    assert verdict.limits == ("pediatric_fixed_dose",)
    assert verdict.reasons == ("10 mg is a fixed adult amount and this patient is a child: dose by the pediatric protocol",)
    assert verdict.next_eligible_at is None  # waiting does not make a child an adult


@pytest.mark.parametrize(("age_years", "weight_kg"), [(18, 25), (54, 82), (None, 30)])
def test_an_adult_gets_the_fixed_amount(protocol: Protocol, age_years: float | None, weight_kg: float) -> None:
    drug, regimen = drug_and_regimen(protocol, "dexamethasone", "every_6_hours")
    verdict = check_dose(drug, regimen, 10, child_or_adult(age_years, weight_kg), protocol)
    assert verdict.allowed and verdict.limits == ()


ENVELOPE_CHILD = ("10 mg is a fixed adult amount and this patient is a child by the safety envelope's definition: "
                  "dose by the pediatric protocol")


def test_without_the_protocol_the_envelope_still_refuses_a_fixed_amount_for_a_child(protocol: Protocol) -> None:
    # The safety envelope holds its own definition of a child (under 18 years; under 30 kg with the
    # age not recorded): a check called without the pack still applies it.
    drug, regimen = drug_and_regimen(protocol, "dexamethasone", "every_6_hours")
    verdict = check_dose(drug, regimen, 10, child_or_adult(10, 35))
    assert not verdict.allowed and verdict.next_eligible_at is None
    assert verdict.limits == ("envelope_pediatric_fixed_dose",)
    assert verdict.reasons == (ENVELOPE_CHILD,)
    assert check_dose(drug, regimen, 10, child_or_adult(None, 29.9)).limits == ("envelope_pediatric_fixed_dose",)
    assert check_dose(drug, regimen, 10, child_or_adult(18, 25)).allowed
    assert check_dose(drug, regimen, 10, child_or_adult(None, 30)).allowed


@pytest.mark.parametrize("pediatric", [None, Pediatric(1, 3)], ids=["no pediatric block", "age below 1 year"])
def test_a_pack_that_defines_fewer_children_cannot_give_a_child_an_adult_steroid(protocol: Protocol,
                                                                                 pediatric: Pediatric | None) -> None:
    # A pack (bypassing validation) with no pediatric block or "under 1 year": a 3-year-old of 10 kg
    # is still a child by the envelope's definition; methylprednisolone 500 mg is refused.
    loose = dataclasses.replace(protocol, pediatric=pediatric)
    drug, regimen = drug_and_regimen(loose, "methylprednisolone", "high_dose")
    verdict = check_dose(drug, regimen, 500, child_or_adult(3, 10), loose)
    assert not verdict.allowed and verdict.next_eligible_at is None
    assert verdict.limits == ("envelope_pediatric_fixed_dose",)
    assert verdict.reasons == ("500 mg is a fixed adult amount and this patient is a child by the safety envelope's "
                               "definition: dose by the pediatric protocol",)


def test_a_pack_that_defines_more_children_is_followed_too(protocol: Protocol) -> None:
    # Child if the envelope OR the pack says so: a pack counting under 21 years refuses a 19-year-old.
    wider = dataclasses.replace(protocol, pediatric=Pediatric(21, 30))
    drug, regimen = drug_and_regimen(wider, "dexamethasone", "every_6_hours")
    verdict = check_dose(drug, regimen, 10, child_or_adult(19, 70), wider)
    assert verdict.limits == ("pediatric_fixed_dose",)
    assert check_dose(drug, regimen, 10, child_or_adult(19, 70), protocol).allowed


def test_the_pack_and_the_envelope_name_a_child_once(protocol: Protocol) -> None:
    # Both definitions agree on the shipped pack: the refusal is named once, as the pack's.
    drug, regimen = drug_and_regimen(protocol, "dexamethasone", "every_6_hours")
    assert check_dose(drug, regimen, 10, child_or_adult(3, 10), protocol).limits == ("pediatric_fixed_dose",)


def test_a_per_kg_amount_is_never_larger_than_the_cap_nor_than_the_weight_band(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "tocilizumab", "weight_based")
    assert largest_allowed_mg(drug, regimen, 29.9) == Fraction(358)  # 12 mg/kg of 29.9 kg, rounded down
    assert largest_allowed_mg(drug, regimen, 30) == Fraction(240)  # 8 mg/kg from 30 kg
    assert largest_allowed_mg(drug, regimen, 150) == Fraction(800)


def _as_written(number: float) -> Fraction:
    return Fraction(str(number))


@settings(max_examples=300, deadline=None)
@given(weight_kg=st.one_of(st.integers(1, 300).map(float),
                           st.decimals("0.5", "300", places=2).map(float),
                           st.floats(0.5, 300, allow_nan=False, allow_infinity=False)))
def test_the_proposed_and_the_largest_allowed_amount_are_the_decimals_as_written(protocol: Protocol,
                                                                                 weight_kg: float) -> None:
    """mg/kg times the weight as the decimals written (72.35 kg, not its binary float), rounded down
    and capped; the amount the rules propose is exactly the most the independent check allows."""
    for drug in protocol.drugs:
        for regimen in drug.regimens:
            amount = regimen.amount
            if amount is None:
                continue
            if amount.fixed_mg is not None:
                expected = _as_written(amount.fixed_mg)
            else:
                band = [b for b in amount.per_kg if _as_written(b.from_weight_kg) <= _as_written(weight_kg)][-1]
                expected = _as_written(band.mg_per_kg) * _as_written(weight_kg)
            if amount.round_down_to_mg is not None:
                step = _as_written(amount.round_down_to_mg)
                expected = math.floor(expected / step) * step
            if drug.limits.max_dose_mg is not None:
                expected = min(expected, _as_written(drug.limits.max_dose_mg))
            assert largest_allowed_mg(drug, regimen, weight_kg) == expected
            proposed, _ = compute_amount(regimen, drug, weight_kg)
            assert _as_written(proposed) == expected and isinstance(proposed, int) == (expected.denominator == 1)


def test_a_weight_below_every_band_or_a_regimen_without_amount_allows_nothing(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "tocilizumab", "weight_based")
    assert regimen.amount is not None
    from_30_kg = dataclasses.replace(regimen, amount=dataclasses.replace(
        regimen.amount, per_kg=tuple(b for b in regimen.amount.per_kg if b.from_weight_kg >= 30)))
    assert largest_allowed_mg(drug, from_30_kg, 20) == 0
    verdict = check_dose(drug, from_30_kg, 1, patient(20))
    assert not verdict.allowed and verdict.limits == ("max_dose_mg",)
    assert verdict.reasons == ("1 mg is above the 0 mg this patient may receive in one dose",)
    no_amount = dataclasses.replace(regimen, amount=None)
    assert largest_allowed_mg(drug, no_amount, 70) == 0


def test_a_drug_the_envelope_does_not_bound_is_never_proposed(protocol: Protocol) -> None:
    drug, regimen = drug_and_regimen(protocol, "dexamethasone", "every_6_hours")
    shipped = default_envelope()
    assert shipped.drug("dexamethasone") is not None
    without = dataclasses.replace(shipped, drugs=tuple(d for d in shipped.drugs if d.drug != "dexamethasone"))
    verdict = check_dose(drug, regimen, 10, patient(70), protocol, without)
    assert not verdict.allowed
    assert verdict.limits == ("envelope_unknown_drug",)
    assert verdict.reasons == ("dexamethasone has no hard limits in the safety envelope, so no dose of it is proposed",)
    assert verdict.next_eligible_at is None
    assert check_dose(drug, regimen, 10, patient(70), protocol, shipped).allowed
