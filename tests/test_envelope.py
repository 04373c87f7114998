"""The safety envelope: hard limits owned apart from the pack (``schemas/safety-envelope.yaml``).

A tenfold mistake in the pack fails ``crs-rules validate`` at the pack's number, naming both
numbers; a tighter pack passes; the envelope itself is checked against its recorded digest; and the
independent dose check withholds a dose beyond the envelope even when a pack (bypassing validation)
allows it. Numbers are written here from the tocilizumab label and the seed protocol.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import seed_numbers_pack

from crs_rules import evaluate, load_protocol, parse_patient
from crs_rules._resources import default_pack_dir, schema_dir
from crs_rules.cli import run
from crs_rules.dosing import check_dose
from crs_rules.envelope import ENVELOPE_FILE, ENVELOPE_SHA256, EnvelopeError, default_envelope, load_envelope
from crs_rules.errors import InvalidPackError, Problem
from crs_rules.model import DoseLimits, Protocol, WeightBand

ROOT = Path(__file__).resolve().parent.parent
RULES = seed_numbers_pack()  # a copy of the pack under test with the seed's numbers


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    """A draft copy of the shipped pack (no recorded digest), so only the envelope can fail."""
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    manifest = folder / "manifest.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("digest:"))
    manifest.write_text(text.replace("status: active\n", "status: draft\n"), encoding="utf-8")
    return folder


def edit(pack: Path, name: str, old: str, new: str) -> int:
    """Replace ``old`` (written once) by ``new``; returns the 1-based line of the edit."""
    path = pack / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not written exactly once in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def envelope_problems_of(pack: Path) -> list[Problem]:
    with pytest.raises(InvalidPackError) as caught:
        load_protocol(pack)
    return list(caught.value.problems)


# --------------------------------------------------------------------------- validate refuses tenfold mistakes


def test_a_tenfold_tocilizumab_cap_fails_validate_naming_both_numbers(draft: Path) -> None:
    line = edit(draft, "dosing.yaml", "      max_dose_mg: 800\n", "      max_dose_mg: 8000\n")
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert (problem.file, problem.line, problem.column) == (str(draft / "dosing.yaml"), line, 20)
    assert problem.subject == "dosing.tocilizumab"
    assert problem.message == "max_dose_mg 8000 mg is above the safety envelope's 800 mg for tocilizumab"
    assert problem.expected.startswith("expected at most 800 mg")


def test_a_tenfold_tocilizumab_amount_per_kg_fails_validate_naming_both_numbers(draft: Path) -> None:
    line = edit(draft, "dosing.yaml", "{from_weight_kg: 30, mg_per_kg: 8}", "{from_weight_kg: 30, mg_per_kg: 80}")
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert (problem.file, problem.line) == (str(draft / "dosing.yaml"), line)
    assert problem.message == ("mg_per_kg 80 mg/kg from 30 kg is above the safety envelope's 8 mg/kg from 30 kg "
                               "for tocilizumab")


def test_the_adult_band_at_the_childs_rate_fails_validate_band_by_band(draft: Path) -> None:
    # 12 mg/kg is the label's rate below 30 kg only: from 30 kg it is 8 mg/kg (a 50 kg adult: 400 mg, not 600).
    line = edit(draft, "dosing.yaml", "{from_weight_kg: 30, mg_per_kg: 8}", "{from_weight_kg: 30, mg_per_kg: 12}")
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert (problem.file, problem.line) == (str(draft / "dosing.yaml"), line)
    assert problem.message == ("mg_per_kg 12 mg/kg from 30 kg is above the safety envelope's 8 mg/kg from 30 kg "
                               "for tocilizumab")
    assert problem.expected.startswith("expected at most 8 mg/kg from 30 kg")


def test_a_pack_band_reaching_into_the_adult_weights_fails_validate(draft: Path) -> None:
    # The child band moved to 40 kg: 12 mg/kg would then apply from 30 to 40 kg, above the envelope's 8.
    edit(draft, "dosing.yaml", "{from_weight_kg: 30, mg_per_kg: 8}", "{from_weight_kg: 40, mg_per_kg: 8}")
    [problem] = envelope_problems_of(draft)
    assert problem.message == ("mg_per_kg 12 mg/kg below 40 kg is above the safety envelope's 8 mg/kg from 30 kg "
                               "for tocilizumab")


def test_a_tighter_band_split_passes(draft: Path) -> None:
    # Bands within the envelope's for every weight they cover: 12 mg/kg below 20 kg, 8 from 20 kg.
    edit(draft, "dosing.yaml", "{from_weight_kg: 30, mg_per_kg: 8}", "{from_weight_kg: 20, mg_per_kg: 8}")
    drug = load_protocol(draft).drug("tocilizumab")
    assert drug is not None and drug.regimens[0].amount is not None
    assert [(b.from_weight_kg, b.mg_per_kg) for b in drug.regimens[0].amount.per_kg] == [(0, 12), (20, 8)]


PEDIATRIC = "pediatric:\n  age_below_years: 18\n  weight_below_kg_if_age_unknown: 30\n"


def test_a_pack_without_a_pediatric_definition_fails_validate(draft: Path) -> None:
    edit(draft, "dosing.yaml", PEDIATRIC, "")
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert problem.subject == "dosing.pediatric"
    assert problem.message == "the pack does not define who is a child (pediatric)"
    assert problem.expected.startswith(
        "expected pediatric with age_below_years at least 18 and weight_below_kg_if_age_unknown at least 30")


@pytest.mark.parametrize("old,new,column,message", [
    ("  age_below_years: 18\n", "  age_below_years: 1\n", 20,
     "age_below_years 1 years is below the safety envelope's 18 years: the pack would count fewer patients as children"),
    ("  weight_below_kg_if_age_unknown: 30\n", "  weight_below_kg_if_age_unknown: 3\n", 35,
     "weight_below_kg_if_age_unknown 3 kg is below the safety envelope's 30 kg: the pack would count fewer patients "
     "as children"),
])
def test_a_looser_pediatric_definition_fails_validate_naming_both_numbers(draft: Path, old: str, new: str, column: int,
                                                                         message: str) -> None:
    line = edit(draft, "dosing.yaml", old, new)
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert (problem.file, problem.line, problem.column) == (str(draft / "dosing.yaml"), line, column)
    assert problem.subject == "dosing.pediatric"
    assert problem.message == message


def test_a_wider_pediatric_definition_passes(draft: Path) -> None:
    edit(draft, "dosing.yaml", "  age_below_years: 18\n", "  age_below_years: 21\n")
    protocol = load_protocol(draft)
    assert protocol.pediatric is not None and protocol.pediatric.age_below_years == 21


def test_a_tenfold_dexamethasone_dose_fails_validate_naming_both_numbers(draft: Path) -> None:
    line = edit(draft, "dosing.yaml", "amount: {fixed_mg: 10}", "amount: {fixed_mg: 100}")
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert (problem.file, problem.line) == (str(draft / "dosing.yaml"), line)
    assert problem.subject == "dosing.dexamethasone"
    assert problem.message == "fixed_mg 100 mg is above the safety envelope's 10 mg for dexamethasone"


def test_a_tenth_of_the_tocilizumab_interval_fails_validate_naming_both_numbers(draft: Path) -> None:
    line = edit(draft, "dosing.yaml", "      min_interval_h: 8\n", "      min_interval_h: 0.8\n")
    [problem] = envelope_problems_of(draft)
    assert problem.check == "safety-envelope"
    assert (problem.file, problem.line, problem.column) == (str(draft / "dosing.yaml"), line, 23)
    assert problem.message == "min_interval_h 0.8 h is below the safety envelope's 8 h for tocilizumab"
    assert problem.expected.startswith("expected at least 8 h")


def test_the_command_prints_the_envelope_problem_at_the_pack_number(draft: Path) -> None:
    edit(draft, "dosing.yaml", "      max_dose_mg: 800\n", "      max_dose_mg: 8000\n")
    out, err = io.StringIO(), io.StringIO()
    assert run(["validate", str(draft)], out, err) == 1
    assert "max_dose_mg 8000 mg is above the safety envelope's 800 mg for tocilizumab" in err.getvalue()


@pytest.mark.parametrize("old,new,message", [
    ("      max_doses_per_course: 4\n", "      max_doses_per_course: 40\n",
     "max_doses_per_course 40 doses is above the safety envelope's 4 doses for tocilizumab"),
    ("{doses: 3, window_h: 24}", "{doses: 30, window_h: 24}",
     "max_doses_in_window.doses 30 doses is above the safety envelope's 3 doses for tocilizumab"),
    ("{doses: 3, window_h: 24}", "{doses: 3, window_h: 2.4}",
     "max_doses_in_window.window_h 2.4 h is below the safety envelope's 24 h for tocilizumab"),
    ("        amount: {fixed_mg: 500}\n", "        amount: {fixed_mg: 1000}\n",
     "fixed_mg 1000 mg is above the safety envelope's 500 mg for methylprednisolone"),
    ("        every_h: 12\n        for_days: 3\n", "        every_h: 1.2\n        for_days: 3\n",
     "every_h 1.2 h is below the safety envelope's 12 h for methylprednisolone"),
    ("        times_daily: 2\n", "        times_daily: 20\n",
     "times_daily 20 (every 1.2 h) is more often than the safety envelope's every 12 h for methylprednisolone"),
])
def test_every_other_limit_beyond_the_envelope_fails_validate(draft: Path, old: str, new: str, message: str) -> None:
    edit(draft, "dosing.yaml", old, new)
    problems = [p for p in envelope_problems_of(draft) if p.check == "safety-envelope"]
    assert [p.message for p in problems] == [message]


def test_a_drug_the_envelope_does_not_know_fails_validate(draft: Path) -> None:
    edit(draft, "dosing.yaml", "  - id: dexamethasone\n    name: Dexamethasone\n",
         "  - id: dexamethasone_new\n    name: Dexamethasone\n")
    problems = envelope_problems_of(draft)
    assert any(p.check == "safety-envelope" and p.message == "dexamethasone_new has no hard limits in the safety envelope"
               for p in problems)


def test_a_tighter_pack_passes(draft: Path) -> None:
    edit(draft, "dosing.yaml", "      max_dose_mg: 800\n", "      max_dose_mg: 700\n")
    edit(draft, "dosing.yaml", "      min_interval_h: 8\n", "      min_interval_h: 12\n")
    protocol = load_protocol(draft)
    tocilizumab = protocol.drug("tocilizumab")
    assert tocilizumab is not None and tocilizumab.limits.max_dose_mg == 700


# --------------------------------------------------------------------------- the envelope itself


def test_the_envelope_ships_with_the_library_apart_from_the_pack() -> None:
    envelope = default_envelope()
    assert envelope.digest == ENVELOPE_SHA256
    assert Path(envelope.file) == schema_dir() / ENVELOPE_FILE
    assert not Path(envelope.file).resolve().is_relative_to(default_pack_dir().resolve())
    tocilizumab = envelope.drug("tocilizumab")
    assert tocilizumab is not None
    assert (tocilizumab.max_dose_mg, tocilizumab.min_interval_h) == (800, 8)
    assert [(b.from_weight_kg, b.max_mg_per_kg) for b in tocilizumab.max_mg_per_kg] == [(0, 12), (30, 8)]
    bands = [tocilizumab.mg_per_kg_band(weight) for weight in (29.9, 30, 150)]
    assert [band.max_mg_per_kg if band else None for band in bands] == [12, 8, 8]
    assert (envelope.pediatric.age_below_years, envelope.pediatric.weight_below_kg_if_age_unknown) == (18, 30)
    assert (tocilizumab.max_doses_in_window, tocilizumab.window_h, tocilizumab.max_doses_per_course) == (3, 24, 4)
    dexamethasone = envelope.drug("dexamethasone")
    assert dexamethasone is not None
    assert (dexamethasone.max_dose_for("every_6_hours"), dexamethasone.min_interval_for("every_6_hours")) == (10, 6)
    methylprednisolone = envelope.drug("methylprednisolone")
    assert methylprednisolone is not None
    assert methylprednisolone.max_dose_for("high_dose") == 500
    assert methylprednisolone.max_dose_for("twice_daily_if_not_improving") == 1000
    assert methylprednisolone.min_interval_for("high_dose") == 12


def test_a_changed_envelope_without_its_digest_updated_fails_loudly(tmp_path: Path) -> None:
    changed = tmp_path / ENVELOPE_FILE
    text = (schema_dir() / ENVELOPE_FILE).read_text(encoding="utf-8")
    assert text.count("    max_dose_mg: 800\n") == 1
    changed.write_text(text.replace("    max_dose_mg: 800\n", "    max_dose_mg: 8000\n"), encoding="utf-8")
    with pytest.raises(EnvelopeError) as caught:
        load_envelope(changed)
    message = str(caught.value)
    assert "the safety envelope" in message and "has changed" in message
    assert ENVELOPE_SHA256 in message and "ENVELOPE_SHA256 in crs_rules/envelope.py" in message


def test_an_envelope_that_breaks_its_schema_is_refused_even_with_its_digest(tmp_path: Path) -> None:
    import hashlib

    broken = tmp_path / ENVELOPE_FILE
    broken.write_text("envelope: x\ndecided_by: a role\ndrugs:\n  - drug: tocilizumab\n    max_dose_mg: -1\n",
                      encoding="utf-8")
    digest = "sha256:" + hashlib.sha256(broken.read_bytes()).hexdigest()
    with pytest.raises(EnvelopeError) as caught:
        load_envelope(broken, recorded=digest)
    assert "the safety envelope is not valid" in str(caught.value)
    assert "'source' is missing" in str(caught.value)


# --------------------------------------------------------------------------- the dose check holds the envelope


def loosened(protocol: Protocol, **limits: Any) -> Protocol:
    """The pack with tocilizumab's limits and per-kg amount loosened as a wrong pack would have them,
    bypassing validation: what the independent check must still stop."""
    drugs = []
    for drug in protocol.drugs:
        if drug.id == "tocilizumab":
            regimen = drug.regimens[0]
            assert regimen.amount is not None
            amount = regimen.amount
            if "mg_per_kg" in limits:  # one band for every weight
                amount = dataclasses.replace(amount, per_kg=(WeightBand(0, limits.pop("mg_per_kg")),))
            drug = dataclasses.replace(drug, regimens=(dataclasses.replace(regimen, amount=amount),),
                                       limits=dataclasses.replace(drug.limits, **limits))
        drugs.append(drug)
    return dataclasses.replace(protocol, drugs=tuple(drugs))


GRADE_3: dict[str, Any] = {
    "assessed_at": "2026-03-10T12:00:00Z",
    "patient": {"weight_kg": 82, "age_years": 54},
    "therapy": {"car_t": True},
    "vitals": {"temperature_c": 39.2, "hypotension": True, "vasopressors": ["norepinephrine"],
               "oxygen": {"device": "nasal_cannula", "flow_l_min": 4}},
    "medications": [],
}


def test_a_dose_above_the_envelope_is_withheld_even_when_the_pack_allows_it(protocol: Protocol) -> None:
    wrong = loosened(protocol, max_dose_mg=8000.0, mg_per_kg=80.0)
    drug = wrong.drug("tocilizumab")
    assert drug is not None and isinstance(drug.limits, DoseLimits)
    adult = parse_patient({**GRADE_3})
    pack_only = check_dose(drug, drug.regimens[0], 6560, adult)
    assert pack_only.limits == ("envelope_max_dose_mg", "envelope_max_mg_per_kg")
    assert pack_only.reasons[0] == "6560 mg is above the safety envelope's hard limit of 800 mg a dose of tocilizumab"
    assert pack_only.reasons[1] == ("6560 mg is above the safety envelope's hard limit of 8 mg/kg from 30 kg "
                                    "(656 mg for 82 kg)")
    assert not pack_only.allowed and pack_only.next_eligible_at is None

    decision = evaluate(GRADE_3, wrong, allow_draft=True)
    assert "tocilizumab" not in decision.actions()
    [withheld] = [w for w in decision.withheld if w.action == "tocilizumab"]
    assert "envelope_max_dose_mg" in withheld.limits and withheld.next_eligible_at is None


def test_a_repeat_dose_sooner_than_the_envelope_allows_is_withheld_until_the_envelope_interval(
    protocol: Protocol,
) -> None:
    wrong = loosened(protocol, min_interval_h=0.8)
    given = {"drug": "tocilizumab", "dose_mg": 656, "given_at": "2026-03-10T10:00:00Z"}
    decision = evaluate({**GRADE_3, "medications": [given]}, wrong, allow_draft=True)
    assert "tocilizumab" not in decision.actions()
    [withheld] = [w for w in decision.withheld if w.action == "tocilizumab"]
    assert withheld.limits == ("envelope_min_interval_h",)
    assert withheld.reason == "last dose 2.0 h ago (the safety envelope requires at least 8 h between doses)"
    assert withheld.next_eligible_at == datetime(2026, 3, 10, 18, 0, tzinfo=timezone.utc)


def test_the_adult_rate_of_the_envelope_holds_when_the_pack_gives_adults_the_childs_rate(protocol: Protocol) -> None:
    # A pack (bypassing validation) with 12 mg/kg for every weight: a 50 kg adult would get 600 mg;
    # the label's 8 mg/kg from 30 kg allows 400 mg.
    wrong = loosened(protocol, mg_per_kg=12.0)
    drug = wrong.drug("tocilizumab")
    assert drug is not None
    adult = parse_patient({**GRADE_3, "patient": {"weight_kg": 50, "age_years": 40}})
    verdict = check_dose(drug, drug.regimens[0], 600, adult)
    assert verdict.limits == ("envelope_max_mg_per_kg",)
    assert verdict.reasons == ("600 mg is above the safety envelope's hard limit of 8 mg/kg from 30 kg (400 mg for 50 kg)",)
    assert not verdict.allowed and verdict.next_eligible_at is None
    assert check_dose(drug, drug.regimens[0], 400, adult).allowed
    child = parse_patient({**GRADE_3, "patient": {"weight_kg": 29.9, "age_years": 8}})
    assert check_dose(drug, drug.regimens[0], 358, child).allowed  # 12 mg/kg below 30 kg
    steeper = loosened(protocol, mg_per_kg=20.0).drug("tocilizumab")
    assert steeper is not None
    verdict = check_dose(steeper, steeper.regimens[0], 400, child)
    assert verdict.limits == ("envelope_max_mg_per_kg",)
    assert verdict.reasons == ("400 mg is above the safety envelope's hard limit of 12 mg/kg from 0 kg "
                               "(358.8 mg for 29.9 kg)",)

    decision = evaluate({**GRADE_3, "patient": {"weight_kg": 50, "age_years": 40}}, wrong, allow_draft=True)
    assert "tocilizumab" not in decision.actions()
    [withheld] = [w for w in decision.withheld if w.action == "tocilizumab"]
    assert withheld.limits == ("envelope_max_mg_per_kg",)


def test_a_pack_without_children_still_gives_a_child_no_adult_methylprednisolone(protocol: Protocol) -> None:
    # A pack (bypassing validation) without its pediatric block: the rules see an adult and propose
    # methylprednisolone 500 mg for a 3-year-old of 10 kg at grade 4; the envelope's child refuses it.
    wrong = dataclasses.replace(protocol, pediatric=None)
    grade_4 = {**GRADE_3, "patient": {"weight_kg": 10, "age_years": 3},
               "vitals": {**GRADE_3["vitals"], "vasopressors": ["norepinephrine", "epinephrine"]}}
    decision = evaluate(grade_4, wrong, allow_draft=True)
    assert decision.crs_grade == 4
    assert "methylprednisolone" not in decision.actions()
    [withheld] = [w for w in decision.withheld if w.action == "methylprednisolone"]
    assert withheld.limits == ("envelope_pediatric_fixed_dose",)
    assert withheld.next_eligible_at is None
    schema = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    assert [e.message for e in validator.iter_errors(decision.to_dict())] == []


@pytest.mark.parametrize("drug,dose_mg,flagged", [
    ("dexamethasone", 100, True), ("dexamethasone", 10, False),
    ("methylprednisolone", 10000, True), ("methylprednisolone", 1000, False),
    ("tocilizumab", 5000, True), ("tocilizumab", 400, False),
])
def test_a_recorded_dose_above_the_envelope_cap_is_flagged(protocol: Protocol, drug: str, dose_mg: float,
                                                           flagged: bool) -> None:
    # The pack caps only tocilizumab (800 mg); the envelope caps dexamethasone at 10 mg and
    # methylprednisolone at 1,000 mg a dose: a record above either is flagged.
    given = {"drug": drug, "dose_mg": dose_mg, "given_at": "2026-03-09T12:00:00Z"}
    decision = evaluate({**GRADE_3, "medications": [given]}, protocol, allow_draft=True)
    assert ("recorded_dose_above_limit" in {a.id for a in decision.alerts}) is flagged


def test_the_envelope_is_not_named_twice_when_the_pack_already_stops_the_dose(protocol: Protocol) -> None:
    drug = protocol.drug("tocilizumab")
    assert drug is not None
    verdict = check_dose(drug, drug.regimens[0], 801, parse_patient({**GRADE_3, "patient": {"weight_kg": 120}}))
    assert verdict.limits == ("max_dose_mg",)
