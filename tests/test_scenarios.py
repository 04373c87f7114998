"""Scenario files (PACK/scenarios/*.yaml) and ``crs-rules test``.

The shipped scenarios are run here, one test each, so the pytest suite runs every scenario a
pharmacist wrote; the other tests show that a wrong expectation fails in clinical words, that a bad
scenario file is refused at its line and column, and that coverage notices a rule no scenario fires.
"""

from __future__ import annotations

import io
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from crs_rules import Decision, evaluate, load_protocol
from crs_rules.cli import run
from crs_rules.errors import InvalidPackError
from crs_rules.loading import load_yaml_text
from crs_rules.model import Protocol
from crs_rules.patient import parse_patient_text
from crs_rules.scenario_reading import ScenarioCheck
from crs_rules.scenarios import (
    Expectation,
    ExpectedDose,
    ExpectedWithheld,
    Scenario,
    checked_rules,
    differences,
    fired_rules,
    load_scenarios,
    run_scenario,
    run_scenarios,
)

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "rules"
SHIPPED = load_scenarios(PACK)


def copy_pack(tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    shutil.copytree(PACK, target)
    return target


def cli(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    return code, out.getvalue(), err.getvalue()


SCENARIO = """\
scenarios:
  - name: adult-70kg
    description: Adult of 70 kg at grade 2.
    patient:
      assessed_at: 2026-03-10T12:00:00Z
      patient: {{weight_kg: 70}}
      therapy: {{car_t: true}}
      crs: {{antipyretic_or_anticytokine: false}}
      vitals: {{temperature_c: 38.5, hypotension: true, vasopressors: [], oxygen: {{device: room_air}}}}
      medications: []
    expect:
{expect}
"""


# --------------------------------------------------------------------------- the shipped pack


@pytest.mark.parametrize("scenario", SHIPPED, ids=[s.name for s in SHIPPED])
def test_each_shipped_scenario_passes(scenario: Scenario, protocol: Protocol) -> None:
    assert run_scenario(scenario, protocol).differences == ()


def test_the_shipped_scenarios_all_pass_and_fire_every_rule(protocol: Protocol) -> None:
    report = run_scenarios(protocol)
    assert len(report.results) == len(SHIPPED) >= 40
    assert report.failed == 0, report.render()
    assert report.passed == len(SHIPPED)
    assert report.uncovered == (), report.render()
    assert report.coverage == protocol.rule_ids()
    assert report.ok


def test_the_shipped_scenarios_have_unique_names_and_clinical_descriptions() -> None:
    names = [s.name for s in SHIPPED]
    assert len(names) == len(set(names))
    assert all(len(s.description.split()) >= 5 for s in SHIPPED)
    assert sorted(p.name for p in (PACK / "scenarios").glob("*.yaml")) == [
        "alerts.yaml", "applicability.yaml", "attribution.yaml", "fever-masking.yaml", "grading.yaml",
        "medications.yaml", "refractory-and-sepsis.yaml", "steroids.yaml", "supportive-care.yaml", "tocilizumab.yaml",
        "unknown-data.yaml",
    ]


def test_crs_rules_test_on_the_shipped_pack_exits_0_with_full_coverage() -> None:
    code, out, err = cli("test", str(PACK))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert f"{len(SHIPPED)} passed, 0 failed" in lines
    total = len(load_protocol(PACK).rule_ids())
    assert lines[-1] == f"rule coverage: {total}/{total} (100 %)"


# --------------------------------------------------------------------------- failures in clinical words


def test_a_wrong_expected_dose_fails_in_clinical_words(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    expect = "      grade: 2\n      doses: [{action: tocilizumab, amount_mg: 700}]"
    (pack / "scenarios" / "wrong.yaml").write_text(SCENARIO.format(expect=expect), encoding="utf-8")
    report = run_scenarios(load_protocol(pack))
    [failure] = report.failures
    assert failure.scenario.name == "adult-70kg"
    assert failure.differences == ("expected tocilizumab 700 mg, got 560 mg",)
    assert (report.passed, report.failed) == (len(SHIPPED), 1)
    assert not report.ok
    lines = report.render().splitlines()
    assert lines[:2] == [f"FAIL adult-70kg ({pack / 'scenarios' / 'wrong.yaml'}:2)",
                         "  expected tocilizumab 700 mg, got 560 mg"]
    assert f"{len(SHIPPED)} passed, 1 failed" in lines

    code, out, _ = cli("test", str(pack))
    assert code == 1
    assert "  expected tocilizumab 700 mg, got 560 mg" in out.splitlines()


def _decision(text: str) -> Decision:
    return evaluate(parse_patient_text(text, "patient.yaml"), load_protocol(PACK))


AT_LIMIT = """\
assessed_at: 2026-03-11T12:00:00Z
patient: {weight_kg: 90}
therapy: {car_t: true}
crs: {antipyretic_or_anticytokine: true, improving: false}
vitals: {temperature_c: 38.1, hypotension: true, vasopressors: [norepinephrine], oxygen: {device: room_air}}
medications:
  - {drug: tocilizumab, dose_mg: 720, given_at: 2026-03-10T13:00:00Z}
  - {drug: tocilizumab, dose_mg: 720, given_at: 2026-03-10T20:00:00Z}
  - {drug: tocilizumab, dose_mg: 720, given_at: 2026-03-11T04:00:00Z}
"""


def test_an_unexpected_grade_status_reads_in_clinical_words() -> None:
    decision = _decision(AT_LIMIT.replace("therapy: {car_t: true}\n", ""))  # CAR T status not recorded
    assert differences(Expectation(grade=3), decision) == (
        "expected grade 3, got an undetermined grade (possible 3)",)
    assert differences(Expectation(grade=None, grade_status="not_applicable"), decision) == (
        "expected not applicable, got an undetermined grade (possible 3)",)
    assert differences(Expectation(grade=None, grade_status="indeterminate", possible_grades=(2, 3)), decision) == (
        "expected possible grades 2, 3, got an undetermined grade (possible 3)",)
    # Without the CAR T status ICU transfer waits for it; GM-CSF was not ordered, so its alert does not.
    assert differences(Expectation(grade=None, grade_status="indeterminate", pending=("icu_transfer",)), decision) == ()
    assert differences(Expectation(grade=None, grade_status="indeterminate",
                                   pending=("gm_csf_contraindicated",)), decision) == (
        "expected gm_csf_contraindicated to be pending (waiting for unknown data), it was not proposed",)


def test_each_kind_of_difference_is_worded_for_a_pharmacist() -> None:
    decision = _decision(AT_LIMIT)  # grade 3, tocilizumab withheld until 13:00 (3 doses in 24 h)
    expect = Expectation(
        grade=2,
        recommended=("tocilizumab",),
        considered=("dexamethasone", "hemoperfusion"),
        absent=("dexamethasone",),
        withheld=(ExpectedWithheld("tocilizumab", datetime(2026, 3, 11, 12, 30, tzinfo=timezone.utc)),
                  ExpectedWithheld("dexamethasone", None)),
        alerts=("icans_vigilance",),
        alerts_absent=("early_steroid_use",),
        doses=(ExpectedDose("dexamethasone", 8), ExpectedDose("tocilizumab", 720)),
    )
    assert differences(expect, decision) == (
        "expected grade 2, got grade 3",
        "expected tocilizumab to be recommended, it was withheld (grade2_up.tocilizumab: "
        "3 doses in the last 24 h (at most 3))",
        "expected dexamethasone to be considered, it was recommended (grade3.dexamethasone, 10 mg)",
        "expected hemoperfusion to be considered, it was pending (refractory.hemoperfusion: waits for "
        "sepsis.septic_shock, sepsis.improving)",
        "expected dexamethasone to be neither recommended nor considered, "
        "it was recommended (grade3.dexamethasone, 10 mg)",
        "expected tocilizumab withheld until 2026-03-11T12:30:00Z, got withheld until 2026-03-11T13:00:00Z",
        "expected dexamethasone withheld for good (not eligible again under the protocol's limits), "
        "it was recommended (grade3.dexamethasone, 10 mg)",
        "expected the alert icans_vigilance, it was not raised",
        "expected no alert early_steroid_use, it was raised (alert.early_steroid_use)",
        "expected dexamethasone 8 mg, got 10 mg",
        "expected tocilizumab 720 mg, it was withheld (grade2_up.tocilizumab: 3 doses in the last 24 h (at most 3))",
    )
    exact = Expectation(grade=3, recommended=("dexamethasone",), absent=("tocilizumab",),
                        withheld=(ExpectedWithheld("tocilizumab", datetime(2026, 3, 11, 13, tzinfo=timezone.utc)),),
                        alerts=("early_steroid_use",), doses=(ExpectedDose("dexamethasone", 10),))
    assert differences(exact, decision) == ()


# --------------------------------------------------------------------------- invalid scenario files


def test_schema_and_patient_problems_point_into_the_scenario_file(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    (pack / "scenarios" / "broken.yaml").write_text("""\
scenarios:
  - name: child-wrong
    description: A child with a bad weight and a bad expectation.
    patient:
      assessed_at: 2026-03-10T12:00:00Z
      patient: {weight_kg: -3}
      vitals: {temperature_c: 38.5, oxygen: {device: nasal_cannula}}
    expect:
      grade: two
      recommended: [tocilizumab, teleportation]
      alerts: [no_such_alert]
      withheld: [{action: tocilizumab, next_eligible_at: 2026-02-30T10:00:00Z}]
      doses: [{action: icu_transfer, amount_mg: 5}]
      exactly: true
  - name: grade2-adult-70kg-560mg
    description: A name already used in tocilizumab.yaml.
    patient: {assessed_at: 2026-03-10T12:00:00Z, patient: {weight_kg: 70}}
    expect: {grade: 0}
""", encoding="utf-8")
    file = pack / "scenarios" / "broken.yaml"
    with pytest.raises(InvalidPackError) as raised:
        load_scenarios(pack)
    shown = [str(p).replace(str(pack), "PACK") for p in raised.value.problems]
    assert shown == [
        "PACK/scenarios/broken.yaml:6:28: child-wrong: patient.patient.weight_kg is -3 (a number); "
        "a body weight in kg from 0.2 to 650",
        "PACK/scenarios/broken.yaml:7:45: child-wrong: patient.vitals.oxygen.flow_l_min is missing, and is "
        "required when device is nasal_cannula: low-flow and high-flow nasal cannula are graded differently; "
        "an oxygen flow in L/min from 0 to 100",
        "PACK/scenarios/broken.yaml:9:14: child-wrong: 'grade' is \"two\" (a string); expected a whole number, "
        "the exact CRS grade the decision must give (one of the pack's grades); the decision must then be graded",
        "PACK/scenarios/broken.yaml:10:34: child-wrong: unknown action 'teleportation'; expected one of "
        + ", ".join(a.id for a in load_protocol(PACK).actions),
        "PACK/scenarios/broken.yaml:11:16: child-wrong: unknown alert 'no_such_alert'; expected one of "
        + ", ".join(a.id for a in load_protocol(PACK).alerts),
        "PACK/scenarios/broken.yaml:12:58: child-wrong: '2026-02-30T10:00:00Z' is not a real date and time; "
        "expected a date-time such as 2026-03-11T12:30:00Z",
        "PACK/scenarios/broken.yaml:13:24: child-wrong: no rule of this pack doses icu_transfer; expected an "
        "action some rule proposes with a dose: tocilizumab, dexamethasone, methylprednisolone",
        "PACK/scenarios/broken.yaml:14:7: child-wrong: unknown key 'exactly'; expected one of the keys absent, "
        "alerts, alerts_absent, considered, doses, grade, grade_status, pending, possible_grades, recommended, "
        "withheld",
        # Files are read in name order: the name is first used in broken.yaml.
        "PACK/scenarios/tocilizumab.yaml:6:11: grade2-adult-70kg-560mg: the scenario name 'grade2-adult-70kg-560mg' "
        "is used twice (first at PACK/scenarios/broken.yaml:15); expected each scenario name once in the pack",
    ]
    assert [str(p.check) for p in raised.value.problems] == [
        "schema.minimum", "schema.required", "schema.properties/scenarios/items/properties/expect/properties/grade/type",
        ScenarioCheck.ACTION_KNOWN, ScenarioCheck.ALERT_KNOWN,
        ScenarioCheck.DATE_TIME, ScenarioCheck.DOSE_KNOWN, "schema.additionalProperties", ScenarioCheck.UNIQUE_NAME,
    ]
    assert file.is_file()

    code, out, err = cli("test", str(pack))
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == "9 problem(s): invalid scenarios, nothing was run"
    assert f"{file}:6:28: child-wrong: patient.patient.weight_kg is -3 (a number)" in err


def test_yaml_traps_in_a_scenario_file_are_refused_at_their_position(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    (pack / "scenarios" / "traps.yaml").write_text(
        "scenarios:\n  - name: a\n    name: b\n    description: x\n", encoding="utf-8")
    with pytest.raises(InvalidPackError) as raised:
        load_scenarios(pack)
    [problem] = raised.value.problems
    assert (problem.file, problem.line, problem.column) == (str(pack / "scenarios" / "traps.yaml"), 3, 5)
    assert "appears twice" in problem.message


def test_a_scenario_line_that_yaml_cannot_read_names_its_line(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    (pack / "scenarios" / "syntax.yaml").write_text(
        "scenarios:\n  - name: a\n    description: dose: 5 mg\n", encoding="utf-8")
    code, out, err = cli("test", str(pack))
    assert code == 1
    assert err.startswith(f"{pack / 'scenarios' / 'syntax.yaml'}:3:22: -: a colon followed by a space")


# --------------------------------------------------------------------------- coverage


def _unchecked(scenario_folder: Path, alert: str) -> int:
    """Remove ``alert`` from every scenario's expectations; the number of lists it was in."""
    removed = 0
    for scenario_file in sorted(scenario_folder.glob("*.yaml")):
        document, problems = load_yaml_text(scenario_file.read_text(encoding="utf-8"), str(scenario_file),
                                            times_as_text=True)
        assert document is not None and not problems
        for scenario in document.data["scenarios"]:
            for key in ("alerts", "alerts_absent", "pending"):
                names = scenario["expect"].get(key, [])
                if alert in names:
                    scenario["expect"][key] = [n for n in names if n != alert]
                    removed += 1
        scenario_file.write_text(yaml.safe_dump(dict(document.data), sort_keys=False, allow_unicode=True),
                                 encoding="utf-8")
    return removed


def test_a_rule_that_fires_but_whose_outcome_no_scenario_checks_is_listed(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    assert _unchecked(pack / "scenarios", "tocilizumab_outside_labelled_age") >= 2
    protocol = load_protocol(pack)
    report = run_scenarios(protocol)
    assert report.failed == 0
    # The toddler's decision still raises the alert: it fires, but no scenario checks it any more.
    assert any("alert.tocilizumab_outside_labelled_age" in r.fired for r in report.results)
    assert report.uncovered == ("alert.tocilizumab_outside_labelled_age",)
    assert not report.ok
    total = len(protocol.rule_ids())
    where = next(a.source for a in protocol.alerts if a.id == "tocilizumab_outside_labelled_age")
    assert report.render().splitlines()[-3:] == [
        f"{len(SHIPPED)} passed, 0 failed",
        f"rule coverage: {total - 1}/{total} ({100 * (total - 1) // total} %)",
        f"outcome not checked: alert.tocilizumab_outside_labelled_age ({where.file}:{where.line})",
    ]
    code, out, err = cli("test", str(pack))
    assert (code, err) == (1, "")
    assert out.splitlines()[-1].startswith("outcome not checked: alert.tocilizumab_outside_labelled_age (")


def test_an_outcome_is_checked_by_present_absent_withheld_or_pending(protocol: Protocol) -> None:
    decision = _decision(AT_LIMIT)  # grade 3, tocilizumab withheld (3 doses in 24 h), dexamethasone recommended
    assert checked_rules(Expectation(grade=None, grade_status="indeterminate"), decision, protocol) >= {
        "finding.fever"}
    assert "grade3.dexamethasone" in checked_rules(Expectation(grade=3, recommended=("dexamethasone",)),
                                                    decision, protocol)
    withheld = checked_rules(Expectation(grade=3, withheld=(ExpectedWithheld("tocilizumab", None),)),
                             decision, protocol)
    assert {"grade2_up.tocilizumab", "dosing.tocilizumab"} <= withheld
    # Expecting methylprednisolone absent checks the grade-4 rule's outcome: it did not propose it.
    assert "grade4.methylprednisolone" in checked_rules(Expectation(grade=3, absent=("methylprednisolone",)),
                                                         decision, protocol)
    # Expecting dexamethasone considered does not check the rule that recommended it.
    assert "grade3.dexamethasone" not in checked_rules(Expectation(grade=3, considered=("dexamethasone",)),
                                                        decision, protocol)
    assert "grade.3" in checked_rules(Expectation(grade=3), decision, protocol)
    assert "grade.3" not in checked_rules(Expectation(grade=2), decision, protocol)


def test_a_pack_without_scenarios_runs_none_and_fails(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    shutil.rmtree(pack / "scenarios")
    report = run_scenarios(load_protocol(pack))
    assert (report.results, report.passed, report.failed, report.coverage) == ((), 0, 0, ())
    assert not report.ok
    code, out, _ = cli("test", str(pack))
    assert code == 1
    assert out.splitlines()[0] == f"no scenarios: add YAML files to {pack / 'scenarios'}"
    assert "0 passed, 0 failed" in out.splitlines()


def test_rules_fired_are_read_from_the_trace_precisely(protocol: Protocol) -> None:
    no_crs = _decision("""\
assessed_at: 2026-03-10T12:00:00Z
patient: {weight_kg: 70}
therapy: {car_t: true}
vitals: {temperature_c: 37.0, hypotension: true, vasopressors: [], oxygen: {device: room_air}}
medications: []
""")
    findings = {f.rule_id for f in protocol.findings}
    # Every finding is evaluated (some to false or 0); grade 0 fires nothing else, not even the definition.
    assert fired_rules(no_crs, protocol) == findings | {"grade.0"}

    decision = _decision(AT_LIMIT)
    fired = fired_rules(decision, protocol)
    assert "dosing.tocilizumab.max_doses_in_window@grade2_up.tocilizumab" in decision.trace
    assert {"dosing.tocilizumab", "dosing.dexamethasone", "grade2_up.tocilizumab", "crs.definition",
            "alert.early_steroid_use", "grade.3"} <= fired
    assert not {"dosing.methylprednisolone", "grade4.methylprednisolone", "grade.2", "grade.4",
                "alert.mas_suspected"} & fired
    assert fired <= set(protocol.rule_ids())


# --------------------------------------------------------------------------- scenarios are not protocol content


def test_scenario_files_are_not_part_of_the_digest(tmp_path: Path, protocol: Protocol) -> None:
    pack = copy_pack(tmp_path)
    _unchecked(pack / "scenarios", "tocilizumab_outside_labelled_age")
    (pack / "scenarios" / "extra.yaml").write_text(SCENARIO.format(expect="      grade: 2"), encoding="utf-8")
    edited = load_protocol(pack)  # an active pack whose content changed would fail validation
    assert edited.digest == protocol.digest == edited.recorded_digest
    code, out, _ = cli("validate", str(pack))
    assert (code, out) == (0, f"OK {protocol.id} {protocol.version} {protocol.digest}\n")
