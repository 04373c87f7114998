"""The independent dose check (``crs_rules.dosing``) called directly, on the shipped pack's drugs.

The rules never propose an amount above a drug's cap (they cap it), so the check's own cap branch is
reached only by calling it with such an amount: what it must do if the rules ever got it wrong.
Amounts, limits and reasons are written here from ``rules/dosing.yaml``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import pytest

from crs_rules import parse_patient
from crs_rules.dosing import check_dose
from crs_rules.model import Drug, Protocol, Regimen
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
