"""``crs-rules evaluate`` and the names of drugs: a name that is not a vasopressor in
``vitals.vasopressors`` is an input error naming the value at its line and column (exit 1, no
decision); a medication or order name the vocabulary does not know gives a warning and a decision."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import crs_rules
from crs_rules import InvalidInputError, load_protocol
from crs_rules.cli import run

ROOT = Path(__file__).resolve().parent.parent

PATIENT = """\
assessed_at: 2026-03-10T12:00:00Z
patient: {weight_kg: 70, age_years: 50}
therapy: {car_t: true}
crs: {onset_at: 2026-03-10T00:00:00Z, improving: false}
vitals:
  temperature_c: 39.0
  hypotension: true
  vasopressors: [%s]
  oxygen: {device: room_air}
medications: %s
"""


def evaluate(tmp_path: Path, vasopressors: str, medications: str = "[]", *options: str) -> tuple[int, str, str]:
    patient = tmp_path / "patient.yaml"
    patient.write_text(PATIENT % (vasopressors, medications), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = run(["evaluate", str(patient), *options], out, err)
    return code, out.getvalue(), err.getvalue()


EXPECTED = ("vasopressors only: angiotensin_ii, dopamine, epinephrine, norepinephrine, phenylephrine, "
            "terlipressin, vasopressin (or one of their other names)")


@pytest.mark.parametrize(("written", "column", "problem"), [
    ("norepinephrin", 18, "is 'norepinephrin', not a vasopressor this rule pack knows"),
    ("pressor7", 18, "is 'pressor7', not a vasopressor this rule pack knows"),
    ("dobutamine", 18, "is 'dobutamine', which is an inotrope, not a vasopressor"),
    ("MILRINONE", 18, "is 'MILRINONE', which is an inotrope, not a vasopressor"),
])
def test_a_name_that_is_not_a_vasopressor_exits_1_naming_the_value_at_its_position(
    tmp_path: Path, written: str, column: int, problem: str
) -> None:
    code, out, err = evaluate(tmp_path, written)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"{tmp_path / 'patient.yaml'}:8:{column}: vitals.vasopressors[0]: {problem}; {EXPECTED}",
        "1 problem(s): invalid input, nothing was evaluated",
    ]


def test_every_refused_vasopressor_is_named_at_its_own_item_beside_accepted_names(tmp_path: Path) -> None:
    code, out, err = evaluate(tmp_path, "Noradrenaline, norepinephrin, argipressin, Dobutamine")
    assert code == 1 and out == ""
    source = tmp_path / "patient.yaml"
    assert err.splitlines() == [
        f"{source}:8:33: vitals.vasopressors[1]: is 'norepinephrin', not a vasopressor this rule pack knows; {EXPECTED}",
        f"{source}:8:61: vitals.vasopressors[3]: is 'Dobutamine', which is an inotrope, not a vasopressor; {EXPECTED}",
        "2 problem(s): invalid input, nothing was evaluated",
    ]


def test_unknown_medication_names_give_the_warning_and_still_a_decision(tmp_path: Path) -> None:
    medications = ("[{drug: Tocilizumab-XYZ, given_at: 2026-03-10T08:00:00Z}, "
                   "{drug: zoledronate, given_at: 2026-03-10T09:00:00Z}]")
    code, out, err = evaluate(tmp_path, "norepinephrine", medications, "--format", "json")
    assert (code, err) == (0, "")
    decision = json.loads(out)
    assert decision["grade_status"] == "graded" and decision["crs_grade"] == 3
    alerts = {a["id"]: a for a in decision["alerts"]}
    assert alerts["unrecognised_medication"]["severity"] == "warning"
    assert "Tocilizumab-XYZ" in alerts["unrecognised_medication"]["text"]
    assert "zoledronate" in alerts["unrecognised_medication"]["text"]
    # A dose under a name the vocabulary does not know counts toward no limit: tocilizumab now.
    assert [r["dose"]["amount_mg"] for r in decision["recommendations"] if r["action"] == "tocilizumab"] == [560]


def test_only_the_unknown_names_are_listed_beside_known_names_in_any_case(tmp_path: Path) -> None:
    # A name the vocabulary knows, in another letter case, is counted: listing it as "not
    # recognised" would tell the clinician its dose was not counted.
    medications = ("[{drug: ACTEMRA, given_at: 2026-03-10T08:00:00Z}, {drug: Actemra, given_at: 2026-03-09T08:00:00Z}, "
                   "{drug: zzfoo, given_at: 2026-03-10T09:00:00Z}]")
    code, out, err = evaluate(tmp_path, "norepinephrine", medications, "--format", "json")
    assert (code, err) == (0, "")
    text = {a["id"]: a["text"] for a in json.loads(out)["alerts"]}["unrecognised_medication"]
    assert "zzfoo" in text
    assert "ACTEMRA" not in text and "Actemra" not in text


def test_a_brand_name_in_any_case_counts_as_its_drug_on_the_command_line(tmp_path: Path) -> None:
    medications = "[{drug: ACTEMRA, given_at: 2026-03-10T08:00:00Z}]"
    code, out, err = evaluate(tmp_path, "Noradrenaline", medications, "--format", "json")
    assert (code, err) == (0, "")
    decision = json.loads(out)
    assert "unrecognised_medication" not in {a["id"] for a in decision["alerts"]}
    withheld = [w for w in decision["withheld"] if w["action"] == "tocilizumab"]
    assert [w["limits"] for w in withheld] == [["min_interval_h"]]
    assert withheld[0]["next_eligible_at"] == "2026-03-10T16:00:00Z"


def test_the_library_names_each_refused_vasopressor_by_its_item() -> None:
    state = {"assessed_at": "2026-03-10T12:00:00Z", "patient": {"weight_kg": 70},
             "vitals": {"hypotension": True, "vasopressors": ["ADRENALINE", "milrinone", "pressor7"]}}
    with pytest.raises(InvalidInputError) as raised:
        crs_rules.evaluate(state, load_protocol(ROOT / "rules"))
    assert [(p.file, p.line, p.column, p.subject, p.path, p.check) for p in raised.value.problems] == [
        ("<input>", 0, 0, "vitals.vasopressors[1]", ("vitals", "vasopressors", 1), "input.vasopressor-vocabulary"),
        ("<input>", 0, 0, "vitals.vasopressors[2]", ("vitals", "vasopressors", 2), "input.vasopressor-vocabulary"),
    ]
    assert [p.message for p in raised.value.problems] == [
        "is 'milrinone', which is an inotrope, not a vasopressor",
        "is 'pressor7', not a vasopressor this rule pack knows",
    ]
