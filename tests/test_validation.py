"""Validation, one concern at a time: each test copies the shipped pack, makes one mistake in one
YAML file and checks the exact problem reported (file, line, column, subject, check, words).

The copy is made a draft without a recorded digest, so editing it raises no release problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import seed_numbers_pack

from crs_rules import engine
from crs_rules.checks import CHECKS, CheckId, grading
from crs_rules.checks.condition_facts import suggestion
from crs_rules.conditions import MAX_DNF_TERMS
from crs_rules.errors import CrsRulesError, InvalidPackError, Problem
from crs_rules.facts import fact_catalogue
from crs_rules.model import Protocol
from crs_rules.pack import load_protocol
from crs_rules.validation import SEMANTIC_CHECKS

from packing import at, draft_copy, edit, only, problems, where

ROOT = Path(__file__).resolve().parent.parent
RULES = seed_numbers_pack()  # a copy of the pack under test with the seed's numbers

REFERENCES = "expected one of ref1, ref10, ref2, ref4, ref5, ref6, ref7, ref8, ref9"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A draft copy of the shipped pack, without its recorded digest."""
    return draft_copy(tmp_path / "pack")


FEVER = ("    when:\n      all:\n        - {fact: vitals.temperature_c, at_least: 38.0}\n"
         "        - not: {fact: vitals.attributed_to_other_cause, includes: fever}\n")


def fever_when(pack: Path, condition: str) -> None:
    """Replace the fever finding's condition (grading.yaml) with ``condition``."""
    edit(pack, "grading.yaml", FEVER, f"    when: {condition}\n")


# --------------------------------------------------------------------------- schema stage, in plain words


def test_a_missing_key_is_named_at_its_element(pack: Path) -> None:
    edit(pack, "dosing.yaml", "    name: Dexamethasone\n    route: IV\n", "    name: Dexamethasone\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "id: dexamethasone")
    assert problem.subject == "dexamethasone"
    assert problem.message == "the key 'route' is missing"
    assert problem.expected == "expected 'route' here"
    assert problem.check.startswith("schema.") and problem.check.endswith("required")


def test_an_unknown_key_is_named_and_the_allowed_keys_listed(pack: Path) -> None:
    edit(pack, "dosing.yaml", "    route: IV\n    amount: {fixed_mg: 10}\n",
         "    route: IV\n    dose: 10\n    amount: {fixed_mg: 10}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "dose: 10")
    assert problem.subject == "dexamethasone"
    assert problem.message == "unknown key 'dose'"
    assert problem.expected == "expected one of the keys amount, citations, id, limits, name, regimens, route"
    assert problem.check == "schema.additionalProperties"


def test_a_wrong_type_echoes_the_value_written(pack: Path) -> None:
    edit(pack, "dosing.yaml", "      max_dose_mg: 800\n", '      max_dose_mg: "800"\n')
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", '"800"')
    assert problem.subject == "tocilizumab"
    assert problem.message == '\'max_dose_mg\' is "800" (a string)'
    assert problem.expected == "expected a number above 0"
    assert problem.check.endswith("/type")


def test_a_value_outside_an_enum_lists_the_allowed_values(pack: Path) -> None:
    edit(pack, "alerts.yaml", "  - id: gm_csf_contraindicated\n    severity: critical\n",
         "  - id: gm_csf_contraindicated\n    severity: urgent\n")
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "urgent")
    assert problem.subject == "gm_csf_contraindicated"
    assert problem.message == '\'severity\' is "urgent" (a string)'
    assert problem.expected == "expected one of critical, warning, info"
    assert problem.check.endswith("/enum")


def test_schema_problems_of_several_files_are_reported_together(pack: Path) -> None:
    edit(pack, "alerts.yaml", "  - id: gm_csf_contraindicated\n    severity: critical\n",
         "  - id: gm_csf_contraindicated\n    severity: urgent\n")
    edit(pack, "dosing.yaml", "      max_dose_mg: 800\n", '      max_dose_mg: "800"\n')
    found = problems(pack)
    assert [(Path(p.file).name, p.subject) for p in found] == [
        ("alerts.yaml", "gm_csf_contraindicated"), ("dosing.yaml", "tocilizumab")]


# --------------------------------------------------------------------------- condition form (pack.py)


def test_a_comparison_with_two_operators_is_refused(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.temperature_c, at_least: 38.0, below: 42}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "{fact: vitals.temperature_c, at_least: 38.0, below")
    assert problem.subject == "finding.fever"
    assert problem.message == "a comparison on vitals.temperature_c has 2 operators (at_least, below)"
    assert problem.expected.startswith("expected exactly one of equals, not_equals, at_least")
    assert problem.check == "condition-form"


def test_a_comparison_without_operator_is_reported_once_in_its_own_words(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.temperature_c}")
    problem = only(pack)  # not also "'exists' cannot be used": the author wrote no operator
    assert where(problem) == at(pack, "grading.yaml", "{fact: vitals.temperature_c}")
    assert problem.subject == "finding.fever"
    assert problem.message == "a comparison on vitals.temperature_c has 0 operators (none)"
    assert problem.check == "condition-form"


def test_a_condition_mixing_a_combiner_and_a_comparison_is_refused(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.temperature_c, at_least: 38.0, all: [{fact: vitals.hypotension, equals: true}]}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "{fact: vitals.temperature_c, at_least: 38.0, all")
    assert problem.subject == "finding.fever"
    assert problem.message == "mixes all, fact in one condition"
    assert problem.expected == "expected exactly one of all, any, not, fact; nest the others"
    assert problem.check == "condition-form"


# --------------------------------------------------------------------------- check_citations_resolve


def test_a_rule_citing_a_missing_reference_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "    citations: [ref2]\n", "    citations: [ref3]\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "id: grade1.tocilizumab")
    assert problem.subject == "grade1.tocilizumab"
    assert problem.message == "cites 'ref3', which is not in the references file"
    assert problem.expected == REFERENCES
    assert problem.check == "citation-resolves"


def test_the_definition_citing_a_missing_reference_points_into_grading(pack: Path) -> None:
    edit(pack, "grading.yaml", "  citations: [ref2]\n\nfindings:", "  citations: [ref3]\n\nfindings:")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "id: crs.definition")
    assert problem.subject == "crs.definition"
    assert problem.message == "cites 'ref3', which is not in the references file"
    assert problem.check == "citation-resolves"


# --------------------------------------------------------------------------- check_unique_ids


def test_a_copied_rule_keeping_its_id_is_a_duplicate(pack: Path) -> None:
    rule = ("  - id: grade2_up.cardiac_monitoring\n"
            "    description: Cardiac monitoring with continuous telemetry and pulse oximetry from grade 2 up.\n"
            "    when: {fact: finding.crs_grade, at_least: 2}\n    recommend: cardiac_monitoring\n    citations: [ref1]\n")
    copy = rule.replace("at grade 2.", "at grade 3.").replace("equals: 2}", "equals: 3}")
    edit(pack, "actions.yaml", rule, rule + "\n" + copy)
    problem = only(pack)
    file, first_line, _ = at(pack, "actions.yaml", "id: grade2_up.cardiac_monitoring")
    assert where(problem) == at(pack, "actions.yaml", "id: grade2_up.cardiac_monitoring", occurrence=2)
    assert problem.subject == "grade2_up.cardiac_monitoring"
    assert problem.message == (f"duplicate rule id 'grade2_up.cardiac_monitoring' "
                               f"(first defined at {file}:{first_line})")
    assert problem.expected == "expected each rule id once"
    assert problem.check == "unique-ids"


def test_a_duplicate_action_id_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "  - id: diagnostic_workup\n    text: Diagnostic workup.\n",
         "  - id: diagnostic_workup\n    text: Diagnostic workup.\n  - id: icu_transfer\n    text: Admit to intensive care.\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "id: icu_transfer", occurrence=2)
    assert problem.subject == "icu_transfer"
    assert problem.message.startswith("duplicate action id 'icu_transfer' (first defined at ")
    assert problem.check == "unique-ids"


# --------------------------------------------------------------------------- check_conditions


def test_a_typo_in_a_fact_path_is_refused_with_the_known_facts_of_its_family(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.temprature_c, at_least: 38.0}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "{fact: vitals.temprature_c")
    assert problem.subject == "finding.fever"
    assert problem.message == "unknown fact 'vitals.temprature_c' (did you mean vitals.temperature_c?)"
    assert problem.expected.startswith("expected a known fact such as ")
    assert "vitals.temperature_c" in problem.expected
    assert problem.check == "fact-path-known"


def test_a_fact_of_an_unknown_family_lists_the_families(pack: Path) -> None:
    fever_when(pack, "{fact: vital.temperature_c, at_least: 38.0}")
    problem = only(pack)
    assert problem.message == "unknown fact 'vital.temperature_c' (did you mean vitals.temperature_c?)"
    assert problem.expected.startswith("expected a fact path starting with patient, therapy, crs")
    assert problem.check == "fact-path-known"


def test_a_fact_path_like_no_known_one_gets_no_suggestion(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.pulse_bpm, at_least: 38.0}")
    problem = only(pack)
    assert problem.message == "unknown fact 'vitals.pulse_bpm'"
    assert problem.check == "fact-path-known"


@pytest.mark.parametrize(("written", "meant"), [
    ("history.tocilizumab.dose_in_course", "history.tocilizumab.doses_in_course"),
    ("vitals.oxygen.devise", "vitals.oxygen.device"),
    ("patient.weight", "patient.weight_kg"),
    ("finding.hypotension_grad", "finding.hypotension_grade"),
    ("proposed.tocilizumb", "proposed.tocilizumab"),
])
def test_an_unknown_fact_path_suggests_the_closest_known_one(protocol: Protocol, written: str, meant: str) -> None:
    assert suggestion(written, fact_catalogue(protocol)) == meant


def test_an_operator_that_does_not_fit_the_fact_is_refused(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.vasopressors, equals: 1}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "{fact: vitals.vasopressors, equals: 1}")
    assert problem.message == "'equals' cannot be used on vitals.vasopressors (list)"
    assert problem.expected == "expected one of count_at_least, includes"
    assert problem.check == "operator-fits-fact"


def test_not_counting_on_an_operator_other_than_count_at_least_is_refused(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.temperature_c, at_least: 38.0, not_counting: [vasopressin]}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "{fact: vitals.temperature_c, at_least: 38.0, not_counting")
    assert problem.subject == "finding.fever"
    assert problem.message == "'not_counting' is only for count_at_least"
    assert problem.check == "operator-fits-fact"


def test_comparing_a_boolean_fact_with_a_number_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "        - {fact: vitals.refractory_hypotension, equals: true}\n",
         "        - {fact: vitals.refractory_hypotension, equals: 1}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "{fact: vitals.refractory_hypotension")
    assert problem.subject == "grade2.dexamethasone"
    assert problem.message == "compares vitals.refractory_hypotension with 1 (a number)"
    assert problem.expected == "expected true or false"
    assert problem.check == "value-fits-fact"


def test_comparing_a_number_fact_with_true_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "{fact: crs.days_since_onset, above: 3}", "{fact: crs.days_since_onset, equals: true}")
    problem = only(pack)
    assert problem.subject == "grade1.tocilizumab"
    assert problem.message == "compares crs.days_since_onset with true (a boolean)"
    assert problem.expected == "expected a number"
    assert problem.check == "value-fits-fact"


def test_an_enum_value_the_fact_never_takes_is_refused(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.oxygen.device, equals: helmet}")
    problem = only(pack)
    assert problem.message == 'compares vitals.oxygen.device with "helmet" (a string)'
    assert problem.expected.startswith("expected one of room_air, ")
    assert "nasal_cannula" in problem.expected
    assert problem.check == "value-fits-fact"


def test_a_grade_that_does_not_exist_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "    when: {fact: finding.crs_grade, equals: 4}\n    consider: mechanical_ventilation\n",
         "    when: {fact: finding.crs_grade, equals: 7}\n    consider: mechanical_ventilation\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "{fact: finding.crs_grade, equals: 7}")
    assert problem.subject == "grade4.mechanical_ventilation"
    assert problem.message == "finding.crs_grade never takes the value 7"
    assert problem.expected == "expected one of 0, 1, 2, 3, 4"
    assert problem.check == "value-fits-fact"


# --------------------------------------------------------------------------- check_no_negated_actions


def test_a_negated_action_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "        - {fact: action.dexamethasone, exists: true}\n",
         "        - {not: {fact: action.dexamethasone, exists: true}}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "{fact: action.dexamethasone")
    assert problem.subject == "steroids.antifungal_prophylaxis"
    assert problem.message.startswith("'action.dexamethasone' is negated; ")
    assert problem.expected == "expected a condition on patient facts or findings instead"
    assert problem.check == "no-negated-actions"


def test_a_doubly_negated_action_is_not_negated(pack: Path) -> None:
    edit(pack, "actions.yaml", "        - {fact: action.dexamethasone, exists: true}\n",
         "        - {not: {not: {fact: action.dexamethasone, exists: true}}}\n")
    assert load_protocol(pack).action_rules


# --------------------------------------------------------------------------- check_condition_size


def test_a_condition_too_large_for_the_engine_is_refused(pack: Path) -> None:
    five = ("[{fact: patient.neutropenic, equals: true}, {fact: therapy.car_t, equals: true}, "
            "{fact: crs.improving, equals: false}, {fact: sepsis.septic_shock, equals: true}, "
            "{fact: crs.suspected_mas, equals: true}]")  # 5 x 5 x 5 = 125 alternatives
    edit(pack, "alerts.yaml", "    when: {fact: neuro.icans_signs, equals: true}\n",
         "    when:\n      all:\n" + "".join(f"        - any: {five}\n" for _ in range(3)))
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "all:\n        - any: [{fact: patient.neutropenic")
    assert problem.subject == "alert.icans_vigilance"
    assert problem.message == "the condition is too complex for the engine"
    assert problem.expected == f"expected at most {MAX_DNF_TERMS} alternatives once expanded; split the rule"
    assert problem.check == "condition-size"


# --------------------------------------------------------------------------- check_actions_known


def test_an_unknown_action_is_refused_with_the_known_actions(pack: Path) -> None:
    edit(pack, "actions.yaml", "    recommend: icu_transfer\n", "    recommend: icu_admission\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "id: severe.icu_transfer")
    assert problem.subject == "severe.icu_transfer"
    assert problem.message == "unknown action 'icu_admission'"
    assert problem.expected.startswith("expected one of antifungal_prophylaxis, cardiac_monitoring, ")
    assert "icu_transfer" in problem.expected
    assert problem.check == "action-known"


def test_an_unknown_drug_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "    dose: {drug: dexamethasone, regimen: every_6_hours}\n",
         "    dose: {drug: dexamethason, regimen: every_6_hours}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "{drug: dexamethason,")
    assert problem.subject == "grade3.dexamethasone"
    assert problem.message == "unknown drug 'dexamethason'"
    assert problem.expected == "expected one of tocilizumab, dexamethasone, methylprednisolone"
    assert problem.check == "drug-known"


def test_an_unknown_regimen_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "    dose: {drug: dexamethasone, regimen: every_6_hours}\n",
         "    dose: {drug: dexamethasone, regimen: every_4_hours}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "{drug: dexamethasone, regimen: every_4_hours}")
    assert problem.message == "unknown regimen 'every_4_hours' of dexamethasone"
    assert problem.expected == "expected one of every_6_hours, every_12_to_24_hours"
    assert problem.check == "drug-known"


# --------------------------------------------------------------------------- check_dose_limits


def test_a_per_kg_dose_without_maximum_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "      max_dose_mg: 800\n", "")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "per_kg:")
    assert problem.subject == "dosing.tocilizumab.weight_based"
    assert problem.message == "a per-kg dose has no cap"
    assert problem.expected == "expected limits.max_dose_mg on the drug"
    assert problem.check == "dose-has-limits"


def test_a_fixed_amount_above_its_own_maximum_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "        replaces: high_dose\n    citations: [ref1]\n",
         "        replaces: high_dose\n    limits:\n      max_dose_mg: 500\n    citations: [ref1]\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "{fixed_mg: 1000}")
    assert problem.subject == "dosing.methylprednisolone.twice_daily_if_not_improving"
    assert problem.message == "the dose of 1000 mg is above the drug's own cap of 500 mg"
    assert problem.expected == "expected an amount at most max_dose_mg"
    assert problem.check == "dose-within-cap"


def test_a_regimen_without_frequency_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "      - id: every_6_hours\n        every_h: 6\n", "      - id: every_6_hours\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "id: every_6_hours")
    assert problem.subject == "dosing.dexamethasone.every_6_hours"
    assert problem.message == "the regimen says nothing about how often"
    assert problem.check == "dose-has-limits"


def test_a_regimen_without_amount_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "      - id: high_dose\n        amount: {fixed_mg: 500}\n", "      - id: high_dose\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "id: high_dose")
    assert problem.subject == "dosing.methylprednisolone.high_dose"
    assert problem.message == "the regimen has no amount"
    assert problem.check == "dose-has-limits"


def test_weight_bands_must_start_at_zero(pack: Path) -> None:
    edit(pack, "dosing.yaml", "{from_weight_kg: 0, mg_per_kg: 12}", "{from_weight_kg: 5, mg_per_kg: 12}")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "per_kg:")
    assert problem.message == "weight bands do not start at 0 kg in increasing order"
    assert problem.check == "dose-has-limits"


def test_more_doses_in_the_window_than_in_the_course_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "      max_doses_per_course: 4\n", "      max_doses_per_course: 2\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "max_dose_mg: 800")
    assert problem.subject == "dosing.tocilizumab"
    assert problem.message == "more doses are allowed in the window than in the whole course"
    assert problem.check == "dose-within-cap"


# --------------------------------------------------------------------------- check_grading_exhaustive_and_exclusive


def _grade0(pack: Path) -> str:
    text = (pack / "grading.yaml").read_text(encoding="utf-8")
    start = text.index("  - id: grade.0\n")
    return text[start:text.index("  - id: grade.1\n")]


def test_a_gap_in_the_grades_is_reported(pack: Path) -> None:
    edit(pack, "grading.yaml", _grade0(pack), "")
    edit(pack, "statements.yaml", "    encoded_by: [grade.0, grade.1,", "    encoded_by: [grade.1,")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "id: grade.1")
    assert problem.subject == "grade.1"
    assert problem.message.startswith("no grade criterion matches ")
    assert "finding.fever=false" in problem.message
    assert problem.expected == "expected the grade criteria to give every patient a grade"
    assert problem.check == "grading-exhaustive"


def test_an_overlap_between_grades_is_reported(pack: Path) -> None:
    edit(pack, "grading.yaml", "        - {fact: finding.cardiorespiratory_grade, equals: 2}\n",
         "        - {fact: finding.cardiorespiratory_grade, one_of: [2, 3]}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "id: grade.3")
    assert problem.subject == "grade.3"
    assert problem.message.startswith("gives a second grade, with grade.2, for ")
    assert "finding.cardiorespiratory_grade=3" in problem.message
    assert problem.expected == "expected the grade criteria to give every patient exactly one grade"
    assert problem.check == "grading-exclusive"


def test_grading_too_large_to_check_is_refused(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grading, "MAX_GRADING_COMBINATIONS", 2)
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "id: grade.0")
    assert problem.message.startswith("the grade criteria read too many facts to check (")
    assert problem.check == "grading-exhaustive"


# --------------------------------------------------------------------------- check_findings_acyclic


def test_a_finding_that_depends_on_itself_is_refused(pack: Path) -> None:
    fever_when(pack, "{fact: finding.fever, equals: true}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "id: fever\n")
    assert problem.subject == "finding.fever"
    assert problem.message == "finding.fever depends on itself through other findings"
    assert problem.check == "findings-acyclic"


def test_two_findings_reading_each_other_are_both_refused(pack: Path) -> None:
    edit(pack, "grading.yaml", "            - {fact: vitals.hypotension, equals: true}\n",
         "            - {fact: finding.cardiorespiratory_grade, equals: 2}\n")
    found = problems(pack)
    assert [(p.subject, p.check) for p in found] == [
        ("finding.hypotension_grade", "findings-acyclic"), ("finding.cardiorespiratory_grade", "findings-acyclic")]
    assert where(found[0]) == at(pack, "grading.yaml", "id: hypotension_grade")
    assert where(found[1]) == at(pack, "grading.yaml", "id: cardiorespiratory_grade")


def test_grading_may_not_read_a_proposed_action(pack: Path) -> None:
    fever_when(pack, "{fact: action.tocilizumab, exists: true}")
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "{fact: action.tocilizumab")
    assert problem.message == "grading reads a proposed action"
    assert problem.check == "findings-acyclic"


# --------------------------------------------------------------------------- check_statements_encoded


def test_a_statement_naming_an_unknown_rule_is_refused(pack: Path) -> None:
    edit(pack, "statements.yaml", "    encoded_by: [severe.icu_transfer]\n", "    encoded_by: [severe.icu_transfr]\n")
    untraced, problem = problems(pack)  # the typo also leaves the real rule traced to no statement
    assert (untraced.subject, untraced.check) == ("severe.icu_transfer", "traced-both-ways")
    assert where(problem) == at(pack, "statements.yaml", "id: S21")
    assert problem.subject == "S21"
    assert problem.message == "names rule 'severe.icu_transfr', which does not exist"
    assert problem.expected == "expected ids of rules of this pack"
    assert problem.check == "statement-encoded"


# --------------------------------------------------------------------------- check_numbers_live_in_data


def test_a_number_in_free_text_is_refused(pack: Path) -> None:
    edit(pack, "actions.yaml", "    description: Supportive care at every CRS grade.\n",
         "    description: Supportive care at every CRS grade, for 3 days.\n")
    problem = only(pack)
    assert where(problem) == at(pack, "actions.yaml", "id: all_grades.supportive_care")
    assert problem.subject == "all_grades.supportive_care"
    assert problem.message == "the text contains a number: 'Supportive care at every CRS grade, for 3 days.'"
    assert problem.expected.startswith("expected numbers only in data fields")
    assert problem.check == "numbers-in-data"


def test_a_number_in_an_alert_text_is_refused(pack: Path) -> None:
    edit(pack, "alerts.yaml", "    text: Do not use GM-CSF (sargramostim, molgramostim) in the setting of CAR T-cell therapy.\n",
         "    text: Do not use GM-CSF (sargramostim, molgramostim) within 30 days of CAR T-cell therapy.\n")
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "id: gm_csf_contraindicated")
    assert problem.subject == "alert.gm_csf_contraindicated"
    assert problem.check == "numbers-in-data"


def test_a_grade_named_in_text_is_not_a_protocol_number(pack: Path) -> None:
    edit(pack, "actions.yaml", "    description: Supportive care at every CRS grade.\n",
         "    description: Supportive care from grade 1 up.\n")
    assert load_protocol(pack).action_rules[0].description == "Supportive care from grade 1 up."


# --------------------------------------------------------------------------- check_engine_size


def test_a_pack_too_large_for_the_engine_is_refused(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MAX_ENGINE_TESTS", 1)
    problem = only(pack)
    assert where(problem) == at(pack, "grading.yaml", "id: grade.0")
    assert problem.subject == "severe-crs-and-sepsis"
    assert problem.message.startswith("the pack compiles to ")
    assert problem.expected == "expected at most 1: merge or simplify rules"
    assert problem.check == "engine-size"


# --------------------------------------------------------------------------- check_vocabulary


def test_a_name_of_two_drugs_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "    synonyms: [leukine]\n", "    synonyms: [leukine, actemra]\n")
    problem = only(pack)
    assert problem.subject == "names.sargramostim"
    assert problem.message == "the name 'actemra' is already a name of tocilizumab"
    assert problem.check == "vocabulary"


@pytest.mark.parametrize(("synonym", "message"), [
    ("gm_csf", "the name 'gm_csf' is the id of a drug class"),
    ("molgramostim", "the name 'molgramostim' is already a name of molgramostim"),
])
def test_a_synonym_shadowing_a_class_or_another_drug_is_refused(pack: Path, synonym: str, message: str) -> None:
    edit(pack, "dosing.yaml", "    synonyms: [leukine]\n", f"    synonyms: [leukine, {synonym}]\n")
    problem = only(pack)
    assert (problem.message, problem.check) == (message, "vocabulary")


def test_names_for_a_drug_the_pack_does_not_name_are_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "  - id: molgramostim\n", "  - id: filgrastim\n")
    problem = only(pack)
    assert problem.message == "names 'filgrastim', which is no drug or class member of the pack"
    assert problem.check == "vocabulary"


# --------------------------------------------------------------------------- every check has tests here

#: The semantic checks (crs_rules/checks/) and the check ids their tests above assert.
TESTED_CHECKS = {
    "check_citations_resolve": {"citation-resolves"},
    "check_unique_ids": {"unique-ids"},
    "check_conditions": {"fact-path-known", "operator-fits-fact", "value-fits-fact"},
    "check_no_negated_actions": {"no-negated-actions"},
    "check_condition_size": {"rule-count", "condition-depth", "condition-size"},  # the first two in test_hostile_packs
    "check_actions_known": {"action-known", "drug-known"},
    "check_dose_limits": {"dose-has-limits", "dose-within-cap"},
    "check_grading_exhaustive_and_exclusive": {"grading-exhaustive", "grading-exclusive"},
    "check_findings_acyclic": {"findings-acyclic"},
    "check_statements_encoded": {"statement-encoded"},
    "check_numbers_live_in_data": {"numbers-in-data"},
    "check_engine_size": {"engine-size"},
    "check_raised_when_unknown_reads_inputs": {"raise-reads-inputs"},
    "check_traced_both_ways": {"traced-both-ways"},
    "check_vocabulary": {"vocabulary"},
}


def test_every_registered_semantic_check_is_tested_here() -> None:
    assert {check.name: set(check.ids) for check in CHECKS} == TESTED_CHECKS
    assert SEMANTIC_CHECKS == tuple(check.run for check in CHECKS)
    source = Path(__file__).read_text(encoding="utf-8") + (Path(__file__).parent / "test_hostile_packs.py").read_text(
        encoding="utf-8")
    for ids in TESTED_CHECKS.values():
        for check_id in ids:
            assert any(f"{before}{check_id}{after}" in source for before, after in (
                ('problem.check == "', '"'), ('"', '")'), ('["', '"]'))), check_id


def test_every_check_says_what_it_catches_and_lives_in_its_own_module() -> None:
    modules = [sys.modules[check.run.__module__] for check in CHECKS]
    assert len(set(modules)) == len(CHECKS)
    for check, module in zip(CHECKS, modules):
        assert check.catches, check.name
        # The module's docstring starts with the ids its problems carry, then what it catches.
        assert module.__doc__ is not None and module.__doc__.startswith(", ".join(check.ids) + ":"), check.name


def test_check_ids_are_distinct_and_written_as_problems_carry_them() -> None:
    values = [check_id.value for check_id in CheckId]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", value) for value in values)


# --------------------------------------------------------------------------- release digest (pack.py)


def test_an_active_pack_without_digest_must_be_released(pack: Path) -> None:
    edit(pack, "manifest.yaml", "status: draft\n", "status: active\n")
    problem = only(pack)
    version = re.search(r'(?m)^version: ("[0-9.]+")', (pack / "manifest.yaml").read_text(encoding="utf-8"))
    assert version is not None
    assert where(problem) == at(pack, "manifest.yaml", version.group(1))
    assert problem.subject == "severe-crs-and-sepsis"
    assert problem.message == "an active pack has no recorded digest"
    assert "crs-rules release" in problem.expected
    assert problem.check == "release-digest"


# --------------------------------------------------------------------------- all problems, sorted, as values


def test_every_problem_is_reported_at_once_sorted_by_file_and_position(pack: Path) -> None:
    edit(pack, "statements.yaml", "    encoded_by: [severe.icu_transfer]\n", "    encoded_by: [severe.icu_transfr]\n")
    fever_when(pack, "{fact: vitals.temprature_c, at_least: 38.0}")
    edit(pack, "actions.yaml", "    recommend: icu_transfer\n", "    recommend: icu_admission\n")
    edit(pack, "actions.yaml", "    citations: [ref2]\n", "    citations: [ref3]\n")
    with pytest.raises(InvalidPackError) as caught:
        load_protocol(pack)
    found = caught.value.problems
    assert [(Path(p.file).name, p.subject, p.check) for p in found] == [
        ("actions.yaml", "grade1.tocilizumab", "citation-resolves"),
        ("actions.yaml", "severe.icu_transfer", "traced-both-ways"),
        ("actions.yaml", "severe.icu_transfer", "action-known"),
        ("grading.yaml", "finding.fever", "fact-path-known"),
        ("statements.yaml", "S21", "statement-encoded"),
    ]
    assert [where(p) for p in found] == sorted(where(p) for p in found)
    assert str(caught.value).splitlines() == ["invalid rule pack (5 problem(s))", *(str(p) for p in found)]


def test_invalid_pack_error_is_a_value_error_carrying_its_problems(pack: Path) -> None:
    edit(pack, "actions.yaml", "    recommend: icu_transfer\n", "    recommend: icu_admission\n")
    with pytest.raises(ValueError) as caught:
        load_protocol(pack)
    error = caught.value
    assert isinstance(error, InvalidPackError) and isinstance(error, CrsRulesError)
    assert isinstance(error.problems, tuple) and len(error.problems) == 1
    assert all(isinstance(p, Problem) for p in error.problems)


def test_a_problem_reads_file_line_column_subject_what_and_expected() -> None:
    problem = Problem("rules/dosing.yaml", 19, 20, "tocilizumab", '\'max_dose_mg\' is "800" (a string)',
                      "expected a number above 0")
    assert str(problem) == 'rules/dosing.yaml:19:20: tocilizumab: \'max_dose_mg\' is "800" (a string); expected a number above 0'
    twice = InvalidPackError([problem, problem])
    assert twice.problems == (problem,)  # the same problem is reported once, and counted once
    assert str(twice).splitlines() == ["invalid rule pack (1 problem(s))", str(problem)]


def test_an_alert_raised_when_unknown_may_read_inputs_only(pack: Path) -> None:
    # The GM-CSF alert is raised unless the record rules it out; a finding cannot be read that way.
    edit(pack, "alerts.yaml", "        - {fact: proposed.gm_csf, equals: true}\n",
         "        - {fact: finding.fever, equals: true}\n")
    problem = only(pack)
    assert problem.subject == "alert.gm_csf_contraindicated"
    assert problem.message == "'finding.fever' is read by an alert with if_unknown: raise"
    assert where(problem) == at(pack, "alerts.yaml", "{fact: finding.fever, equals: true}")
    assert problem.check == "raise-reads-inputs"


def test_a_rule_no_statement_encodes_and_no_addition_declares_is_refused(pack: Path) -> None:
    text = (pack / "statements.yaml").read_text(encoding="utf-8")
    start = text.index("  - rule: alert.sepsis_protocol\n")
    end = text.find("  - rule: ", start + 1)
    edit(pack, "statements.yaml", text[start:end if end != -1 else len(text)], "")
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "id: sepsis_protocol")
    assert problem.subject == "alert.sepsis_protocol"
    assert "additions: [{rule: alert.sepsis_protocol, reason: ...}]" in problem.expected
    assert problem.check == "traced-both-ways"


# --------------------------------------------------------------------------- words for the rarer schema errors


def test_an_empty_value_is_named_null(pack: Path) -> None:
    edit(pack, "dosing.yaml", "      max_dose_mg: 800\n", "      max_dose_mg:\n")
    problem = only(pack)
    assert (problem.file, problem.line) == at(pack, "dosing.yaml", "max_dose_mg:")[:2]
    assert problem.subject == "tocilizumab"
    assert problem.message == "'max_dose_mg' is null"
    assert problem.check.startswith("schema.")


def test_a_constant_is_named_by_its_value(pack: Path) -> None:
    fever_when(pack, "{fact: vitals.temperature_c, exists: false}")
    problem = only(pack)
    assert problem.subject == "fever"
    assert problem.message == "'exists' is false (a boolean)"
    assert problem.expected == "expected true"
    assert problem.check.startswith("schema.") and problem.check.endswith("const")


def test_a_citation_listed_twice_is_refused(pack: Path) -> None:
    edit(pack, "dosing.yaml", "    citations: [ref1, ref6, ref7]\n", "    citations: [ref1, ref6, ref1]\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "[ref1, ref6, ref1]")
    assert problem.subject == "tocilizumab"
    assert problem.expected == "expected each item only once"
    assert problem.check.startswith("schema.") and problem.check.endswith("uniqueItems")


@pytest.mark.parametrize("replaced", ["low_dose", "twice_daily_if_not_improving"])
def test_a_regimen_replacing_no_other_regimen_of_its_drug_is_refused(pack: Path, replaced: str) -> None:
    edit(pack, "dosing.yaml", "        replaces: high_dose\n", f"        replaces: {replaced}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "dosing.yaml", "id: twice_daily_if_not_improving")
    assert problem.subject == "dosing.methylprednisolone"
    assert problem.message == (f"regimen twice_daily_if_not_improving replaces '{replaced}', "
                               "which is no other regimen of the drug")
    assert problem.expected.endswith("the id of another regimen of the same drug")
    assert problem.check == "vocabulary"


def test_an_empty_id_names_no_subject(pack: Path) -> None:
    # Found by the fuzz suite: an empty id was reported as the problem's subject (an empty name).
    edit(pack, "grading.yaml", "  - id: fever\n", "  - id: ''\n")
    found = problems(pack)
    assert found and all(problem.subject for problem in found)
    assert any((problem.file, problem.line) == at(pack, "grading.yaml", "id: ''")[:2] for problem in found)
