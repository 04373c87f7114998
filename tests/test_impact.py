"""``crs-rules diff``: what changed between two packs, and what that does to patients.

Each changed pack is a copy of the shipped pack with one edit, re-released (a new version with its
digest), as a pharmacist would make it. What the report says about patients is checked against an
independent reckoning: the test works out from the edit itself which patients must change.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import multiprocessing
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from math import floor
from pathlib import Path
from typing import Any

import pytest
from conftest import pack_under_test, record_digest

from crs_rules import evaluate, impact_runner, load_protocol, parse_patient, read_patient
from crs_rules.cli import run
from crs_rules.decision import Dose
from crs_rules.dose_effects import dose_effects, weight_breakpoints
from crs_rules.impact import (
    DIFFERENCE_KINDS,
    ImpactReport,
    Outcome,
    compare_packs,
    evaluate_one,
    outcome_differences,
    pack_changes,
    population_inputs,
    state_input,
)
from crs_rules.model import Protocol
from crs_rules.outcomes import DOSE_CHANGED, dose_pairs
from crs_rules.population import scenario_patients

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"


# The numbers these tests reason with, written here: the fixture pack is a copy of the pack under
# test with them set, whatever that pack says (its own numbers are checked by its scenarios).
# (file, pattern of the field, value, occurrence): tocilizumab is the first drug of dosing.yaml.
FIXTURE_NUMBERS = (
    ("dosing.yaml", r"max_dose_mg: [0-9.]+", "max_dose_mg: 800"),
    ("dosing.yaml", r"\{from_weight_kg: 0, mg_per_kg: [0-9.]+\}", "{from_weight_kg: 0, mg_per_kg: 12}"),
    ("dosing.yaml", r"\{from_weight_kg: (?!0,)[0-9.]+, mg_per_kg: [0-9.]+\}", "{from_weight_kg: 30, mg_per_kg: 8}"),
    ("dosing.yaml", r"min_interval_h: [0-9.]+", "min_interval_h: 8"),
    ("grading.yaml", r"\{fact: vitals\.oxygen\.flow_l_min, above: [0-9.]+\}", "{fact: vitals.oxygen.flow_l_min, above: 6}"),
)


def fixture_pack(folder: Path) -> Path:
    """A copy of the pack under test with :data:`FIXTURE_NUMBERS` written in, its digest recorded."""
    shutil.copytree(pack_under_test(), folder)
    for name, pattern, value in FIXTURE_NUMBERS:
        path = folder / name
        text, count = re.subn(pattern, value, path.read_text(encoding="utf-8"), count=1)
        assert count == 1, (name, pattern)
        path.write_text(text, encoding="utf-8")
    record_digest(folder)
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_pack(tmp_path_factory.mktemp("base") / "rules")


def changed_copy(base: Path, folder: Path, file: str, old: str, new: str, note: str) -> Path:
    """A copy of the fixture pack with one edit, recorded as the next minor version. The version
    and digest are written here rather than by ``release``, whose gates (the scenarios, the seed's
    numbers) an edit made only to be compared need not pass."""
    shutil.copytree(base, folder)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not written exactly once in {file}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    manifest = folder / "manifest.yaml"
    version = re.compile(r'^version: "(\d+)\.(\d+)\.\d+"$', re.M)
    manifest.write_text(version.sub(lambda m: f'version: "{m.group(1)}.{int(m.group(2)) + 1}.0"',
                                    manifest.read_text(encoding="utf-8"), count=1), encoding="utf-8")
    record_digest(folder)
    assert load_protocol(folder).version != load_protocol(base).version, note
    return folder


@pytest.fixture(scope="module")
def shipped(base: Path) -> Protocol:
    """The fixture pack: the pack under test with the numbers these tests reason with."""
    return load_protocol(base)


@pytest.fixture(scope="module")
def cap_700(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return changed_copy(base, tmp_path_factory.mktemp("cap") / "rules-700", "dosing.yaml",
                        "max_dose_mg: 800", "max_dose_mg: 700", "Tocilizumab: no single dose above 700 mg.")


@pytest.fixture(scope="module")
def cap_report(shipped: Protocol, cap_700: Path) -> ImpactReport:
    """The default population, as `crs-rules diff` runs it (12,000 patients: for the slow tests)."""
    return compare_packs(shipped, load_protocol(cap_700))


@pytest.fixture(scope="module")
def small_cap_report(shipped: Protocol, cap_700: Path) -> ImpactReport:
    """400 generated patients evaluated in this process: for what does not depend on the size."""
    return compare_packs(shipped, load_protocol(cap_700), population_size=400, workers=1)


def tocilizumab_per_kg_amount(weight_kg: float) -> int:
    """The shipped pack's tocilizumab dose before its cap, worked out here: 12 mg/kg below 30 kg,
    8 mg/kg from 30 kg, rounded down to the mg."""
    weight = Fraction(str(weight_kg))
    return floor(weight * (12 if weight < 30 else 8))


# --------------------------------------------------------------------------------------------
# What changed in the pack
# --------------------------------------------------------------------------------------------


def test_a_lowered_cap_is_named_by_its_path_and_numbers_and_nothing_else(
    shipped: Protocol, small_cap_report: ImpactReport
) -> None:
    cap_report = small_cap_report  # what changed in the pack does not depend on the population
    assert [c.describe() for c in cap_report.pack_changes] == [
        "dose limits: drugs.tocilizumab.limits.max_dose_mg: 800 mg -> 700 mg"
    ]
    change = cap_report.pack_changes[0]
    assert (change.path, change.old, change.new, change.file) == ("drugs.tocilizumab.limits.max_dose_mg", 800, 700,
                                                                 "dosing.yaml")
    assert change.line == next(i for i, line in enumerate((Path(shipped.path) / "dosing.yaml").read_text().splitlines(), 1)
                               if "max_dose_mg: 800" in line)
    text = cap_report.render()
    assert f"version {shipped.version} -> {cap_report.new.version}" in text
    assert "dose limits: drugs.tocilizumab.limits.max_dose_mg: 800 mg -> 700 mg  (dosing.yaml:" in text
    assert (change.unit, change.rule, change.rule_description) == ("mg", "dosing.tocilizumab", "Tocilizumab")
    assert "    rule dosing.tocilizumab (Tocilizumab)\n" in text
    # The release record (digest, changelog) is not reported as a change of the protocol.
    assert "changelog" not in text and "digest" not in text


def test_elements_with_ids_are_matched_by_id_not_by_position(tmp_path: Path) -> None:
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    actions = folder / "actions.yaml"
    text = actions.read_text(encoding="utf-8")
    # Remove one rule: every rule after it moves up one place, yet only the removal is reported.
    start = text.index("  - id: grade2.dexamethasone\n")
    end = text.index("  - id: grade2_up.cardiac_monitoring\n")
    actions.write_text(text[:start] + text[end:], encoding="utf-8")
    statements = folder / "statements.yaml"
    statements.write_text(statements.read_text(encoding="utf-8").replace(
        "encoded_by: [grade2.dexamethasone, dosing.dexamethasone]", "encoded_by: [dosing.dexamethasone]"),
        encoding="utf-8")
    record_digest(folder)
    changes = [c for c in pack_changes(load_protocol(RULES), load_protocol(folder)) if c.file == "actions.yaml"]
    assert [c.describe() for c in changes] == ["rules: grade2.dexamethasone removed"]
    assert changes[0].path == "rules.grade2.dexamethasone" and changes[0].change == "removed"
    # The rule named is the old pack's (the registry's), not one the new pack has at that place.
    assert changes[0].rule == "grade2.dexamethasone"


def test_identical_packs_have_no_pack_changes() -> None:
    assert pack_changes(load_protocol(RULES), load_protocol(RULES)) == ()


# --------------------------------------------------------------------------------------------
# What that does to patients
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_lowered_cap_changes_the_dose_of_exactly_the_patients_above_it(
    shipped: Protocol, cap_report: ImpactReport
) -> None:
    assert cap_report.generated == 12_000 and cap_report.population_size >= 10_000
    assert check_the_lowered_cap(shipped, cap_report) > 500, "the population must reach many patients above the new cap"


def test_a_lowered_cap_changes_the_dose_of_exactly_the_patients_above_it_in_a_small_population(
    shipped: Protocol, small_cap_report: ImpactReport
) -> None:
    assert small_cap_report.generated == 400
    assert check_the_lowered_cap(shipped, small_cap_report) > 50, "the population must reach patients above the new cap"


def check_the_lowered_cap(shipped: Protocol, cap_report: ImpactReport) -> int:
    """Check the report of the 700 mg cap against an independent reckoning; the number of patients
    whose dose changes."""
    assert len(cap_report.patients) == cap_report.population_size

    # Independently: a patient's dose can change only if the per-kg amount was above 700 mg; it
    # changes if the shipped pack then recommended or considered tocilizumab (not withheld it).
    expected: dict[str, str] = {}
    for patient in cap_report.patients:
        amount = tocilizumab_per_kg_amount(patient.state.weight_kg)
        if amount <= 700:
            continue
        decision = evaluate(patient.state, shipped)
        doses = [r.dose for r in decision.recommendations if r.action == "tocilizumab" and r.dose is not None]
        if doses:
            assert [d.amount_mg for d in doses] == [min(amount, 800)]
            expected[patient.label] = f"tocilizumab {min(amount, 800)} mg -> 700 mg"

    # A lower cap also flags recorded doses between the two caps (recorded_dose_above_limit).
    assert [k.kind for k in cap_report.kinds] in (["dose changed"], ["dose changed", "alert changed"])
    dose = cap_report.kinds[0]
    assert len(dose.patients) == len(expected)
    assert set(dose.patients) == set(expected)
    flagged = set(cap_report.kinds[1].patients) if len(cap_report.kinds) > 1 else set()
    for patient in cap_report.patients:
        if patient.label in flagged:
            recorded = [m.dose_mg for m in patient.state.medications or () if m.drug == "tocilizumab" and m.dose_mg]
            assert any(700 < mg <= 800 for mg in recorded), patient.label
    assert set(cap_report.differing) == set(expected) | flagged
    # Summarised by the patients affected: every one of them weighs 87.5 kg or more (700 mg / 8 mg/kg)
    # and now gets 700 mg instead of their capped per-kg amount; one line for all of them.
    assert all(cap_report.patients[[p.label for p in cap_report.patients].index(label)].state.weight_kg > 87.5
               for label in expected)
    lowest = min(int(change.split()[1]) for change in expected.values())
    assert [(c.change, set(c.patients)) for c in dose.changes] == [
        (f"tocilizumab 700 mg instead of {lowest} to 800 mg for patients of 87.5 kg and more", set(expected))]

    # The example is a patient of the full cap (an adult of 100 kg or more), with the amounts.
    assert dose.example.changes == ("tocilizumab 800 mg -> 700 mg",)
    assert dose.example.patient in dose.changes[0].patients
    assert any(r[0] == "tocilizumab" and r[3] is not None and r[3].amount_mg == 800
               for r in dose.example.old.recommendations)
    assert any(r[0] == "tocilizumab" and r[3] is not None and r[3].amount_mg == 700
               for r in dose.example.new.recommendations)
    text = cap_report.render()
    assert f"dose changed: {len(expected):,} patients" in text
    assert (f"    tocilizumab 700 mg instead of {lowest} to 800 mg for patients of 87.5 kg and more: "
            f"{len(expected):,} patients\n") in text
    assert re.search(r"old: grade \d; .*tocilizumab 800 mg IV", text)
    assert re.search(r"new: grade \d; .*tocilizumab 700 mg IV", text)
    for kind in DIFFERENCE_KINDS:
        if kind not in ("dose changed", "alert changed"):  # alert: recorded doses above the new cap
            assert f"{kind}:" not in text
    return len(expected)


def test_a_changed_oxygen_threshold_regrades_only_nasal_cannula_between_the_two_flows(
    shipped: Protocol, tmp_path: Path
) -> None:
    folder = changed_copy(Path(shipped.path), tmp_path / "rules-flow", "grading.yaml", "{fact: vitals.oxygen.flow_l_min, above: 6}",
                          "{fact: vitals.oxygen.flow_l_min, above: 5}", "High-flow oxygen from above 5 L/min.")
    lowered = load_protocol(folder)
    report = compare_packs(shipped, lowered, population_size=300, workers=1)
    assert [c.describe() for c in report.pack_changes] == [
        "grading: findings.hypoxia_grade.levels[1].when.all[0].any[1].all[1].above: 6 L/min -> 5 L/min"
    ]
    assert report.pack_changes[0].rule == "finding.hypoxia_grade"
    # Independently: a nasal cannula above 5 and at most 6 L/min was low-flow (grade 2) and is now
    # high-flow (grade 3); that regrades the patients the shipped pack gave grade 2 (or grade 2 among
    # the grades their unknown data leaves possible), and no one else.
    expected = set()
    for patient in report.patients:
        state = patient.state
        if state.oxygen_device == "nasal_cannula" and state.oxygen_flow_l_min is not None \
                and 5 < state.oxygen_flow_l_min <= 6:
            old = evaluate(state, shipped)
            new = evaluate(state, lowered)
            if (old.crs_grade == 2 or 2 in old.possible_grades) and \
                    (old.crs_grade, old.possible_grades) != (new.crs_grade, new.possible_grades):
                expected.add(patient.label)
    assert expected, "the population must reach nasal cannula flows between the two thresholds"
    grades = report.kind("grade changed")
    assert grades is not None
    assert set(grades.patients) == expected

    def grade_set(text: str) -> set[str]:  # "2", "one of 0, 2" or "not applicable"
        return set(text.removeprefix("grade ").removeprefix("one of ").split(", "))

    for change in grades.changes:  # in each, grade 2 became grade 3 and nothing else moved
        old_text, new_text = change.change.split(" -> ")
        assert grade_set(new_text) == {"3" if g == "2" else g for g in grade_set(old_text)}, change.change
    # Everything else that differs follows from the new grade, for the same patients.
    assert set(report.differing) == expected


def test_identical_packs_give_no_differences_at_all(shipped: Protocol) -> None:
    report = compare_packs(shipped, load_protocol(shipped.path), population_size=100, workers=1)
    assert report.pack_changes == () and report.kinds == () and report.differing == ()
    assert "no patient gets a different decision" in report.render()
    assert "nothing, the content is the same" in report.render()


def test_the_scenarios_of_one_folder_compared_with_itself_are_read_once(
    shipped: Protocol, cap_700: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crs_rules import scenarios

    read: list[str] = []
    load_scenarios = scenarios.load_scenarios

    def counting(path: str, protocol: Protocol) -> list[scenarios.Scenario]:
        read.append(path)
        return load_scenarios(path, protocol)

    monkeypatch.setattr(scenarios, "load_scenarios", counting)
    names = [f"scenario {s.name}" for s in load_scenarios(shipped.path, shipped)]
    assert names
    read.clear()
    notes: list[str] = []
    twice = scenario_patients((shipped, load_protocol(shipped.path)), notes)
    assert (read, [p.label for p in twice], notes) == ([shipped.path], names, [])
    read.clear()
    # Another pack (another folder, other content) is read for itself.
    scenario_patients((shipped, load_protocol(cap_700)), [])
    assert read == [shipped.path, str(cap_700)]
    # So is a copy with other content that still carries the folder's files and digest: its
    # scenarios are checked against its own rules (here they fail, and a note says so).
    read.clear()
    changed = dataclasses.replace(shipped, alerts=())
    for packs in ((shipped, changed), (changed, shipped)):
        notes.clear()
        kept = scenario_patients(packs, notes)
        assert [p.label for p in kept] == names and len(notes) == 1 and "were not used" in notes[0]
    assert read == [shipped.path] * 4


@pytest.mark.slow
def test_the_report_is_the_same_on_every_run_and_with_any_number_of_workers(
    shipped: Protocol, cap_700: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = load_protocol(cap_700)
    started: list[str] = []
    get_context = multiprocessing.get_context

    def recording_get_context(method: str) -> multiprocessing.context.BaseContext:
        started.append(method)
        return get_context(method)

    monkeypatch.setattr(multiprocessing, "get_context", recording_get_context)
    # 1,000 patients: enough for two workers to evaluate in processes.
    first = compare_packs(shipped, new, population_size=1_000, workers=1).to_dict()
    assert started == []
    second = compare_packs(shipped, new, population_size=1_000, workers=2).to_dict()
    assert len(started) == 1, "two workers must evaluate in processes"
    for report in (first, second):
        report.pop("elapsed_seconds")
    assert first == second
    assert first["differences"], "a report with nothing in it would prove nothing"


@pytest.mark.slow
def test_the_default_population_is_deterministic_and_sweeps_the_edges(shipped: Protocol, cap_700: Path) -> None:
    packs = (shipped, load_protocol(cap_700))
    inputs = population_inputs(packs)
    assert len(inputs) == 12_000
    assert inputs == population_inputs(packs)
    patients = [data for _, data in inputs]
    # Each edge is drawn often (by chance, one weight of 0.1 kg resolution would turn up a few times).
    weights = Counter(p["patient"]["weight_kg"] for p in patients)
    for edge in (29.9, 30.0, 87.4, 87.5, 87.6, 99.9, 100.0, 100.1):  # the band, both packs' cap starts
        assert weights[edge] > 50, edge
    assert min(weights) >= 10 and max(weights) <= 150
    assert sum(n for w, n in weights.items() if 10 <= w < 30) > 1_000
    assert sum(n for w, n in weights.items() if 80 <= w <= 110) > 2_000
    vitals = [p.get("vitals", {}) for p in patients]
    temperatures = Counter(v["temperature_c"] for v in vitals if "temperature_c" in v)
    for edge in (37.9, 37.99, 38.0, 38.01):
        assert temperatures[edge] > 50, edge
    devices = {v["oxygen"]["device"] for v in vitals if "oxygen" in v}
    assert len(devices) == 10
    flows = Counter(v["oxygen"]["flow_l_min"] for v in vitals if v.get("oxygen", {}).get("device") == "nasal_cannula")
    for edge in (5.99, 6.0, 6.01):
        assert flows[edge] > 20, edge
    vasopressors = [set(v.get("vasopressors", ())) for v in vitals]
    assert any("vasopressin" in v and len(v) > 1 for v in vasopressors)
    assert any(len(v) > 1 and "vasopressin" not in v for v in vasopressors)
    assert {p.get("crs", {}).get("improving", "absent") for p in patients} == {True, False, None, "absent"}
    courses = [sorted(m["given_at"] for m in p.get("medications", []) if m["drug"] == "tocilizumab") for p in patients]
    assert {len(c) for c in courses} == {0, 1, 2, 3, 4}
    spacings: set[float] = set()
    for course in courses:
        times = [_hours(t) for t in course]
        spacings.update(round(b - a, 4) for a, b in zip(times, times[1:]))
    assert {8.0, 24.0} <= spacings
    assert any(m["drug"] == "dexamethasone" for p in patients for m in p.get("medications", []))


def _hours(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() / 3600


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_an_example_input_gives_back_the_same_patient(example: Path) -> None:
    state = read_patient(example)
    assert parse_patient(state_input(state)) == state


def test_outcome_differences_name_each_kind() -> None:
    base = Outcome("2", (("tocilizumab", "recommend", "grade2_up.tocilizumab", None),), (), (("a", "info", "text"),))
    assert outcome_differences(base, base) == []
    regraded = Outcome("one of 3, 4", (("tocilizumab", "recommend", "grade2_up.tocilizumab", None),
                           ("icu_transfer", "recommend", "severe.icu_transfer", None)),
                       (("dexamethasone", "recommend", "grade3.dexamethasone", ("min_interval_h",), None, "r"),), ())
    assert outcome_differences(base, regraded) == [
        ("grade changed", "grade 2 -> one of 3, 4"),
        ("action added", "recommend icu_transfer"),
        ("withheld changed", "dexamethasone now withheld (min_interval_h)"),
        ("alert changed", "alert a no longer raised"),
    ]


# --------------------------------------------------------------------------------------------
# How the patients are evaluated: in batches, only the differences sent back
# --------------------------------------------------------------------------------------------


def test_the_workers_send_back_a_patients_outcomes_only_when_they_differ(shipped: Protocol, cap_700: Path) -> None:
    new = load_protocol(cap_700)
    inputs = population_inputs((shipped, new), 100)
    results = impact_runner._Evaluator(shipped, new).run(inputs)
    assert [state for state, _ in results] == [parse_patient(data, label) for label, data in inputs]
    differing = 0
    for state, difference in results:
        old_outcome, new_outcome = evaluate_one(state, shipped), evaluate_one(state, new)
        found = outcome_differences(old_outcome, new_outcome)
        if not found:
            assert difference is None
            continue
        differing += 1
        pairs = dose_pairs(old_outcome, new_outcome)
        assert difference == (old_outcome, new_outcome, tuple(found), tuple(pairs))
        assert bool(pairs) == any(kind == DOSE_CHANGED for kind, _ in found)
    assert differing > 5, "a population with no differing patient would prove nothing"


def test_the_population_is_sent_in_batches_that_shrink_towards_the_end() -> None:
    items = [(f"population #{i}", {"i": i}) for i in range(2_345)]
    kept: list[tuple[str, Any]] = []
    batches = list(impact_runner._batches(iter(items), len(items), 2, kept))
    assert [item for batch in batches for item in batch] == items == kept
    sizes = [len(batch) for batch in batches]
    assert sizes[0] == impact_runner._BATCH == max(sizes)
    assert sizes == sorted(sizes, reverse=True)  # never more than the batch before
    assert sizes[-2] == impact_runner._LAST_BATCH >= sizes[-1]  # the last ones small: the workers end together


def test_the_collector_is_paused_while_the_report_is_made_and_left_as_it_was(
    shipped: Protocol, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def recording(protocols: Sequence[Protocol], notes: list[str]) -> list[Any]:
        seen.append(gc.isenabled())
        return []  # whether the collector runs is all this test asks: no scenarios to evaluate

    monkeypatch.setattr(impact_runner, "scenario_patients", recording)
    was_enabled = gc.isenabled()
    try:
        gc.enable()
        compare_packs(shipped, shipped, population_size=10, workers=1)
        assert seen == [False] and gc.isenabled()
        with pytest.raises(ValueError, match="population size"):
            compare_packs(shipped, shipped, population_size=-1, workers=1)
        assert gc.isenabled()
        gc.disable()
        compare_packs(shipped, shipped, population_size=10, workers=1)
        assert seen == [False, False] and not gc.isenabled()
    finally:
        (gc.enable if was_enabled else gc.disable)()


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("population", [pytest.param(None, marks=pytest.mark.slow, id="default"), 100])
def test_crs_rules_diff_rules_rules_exits_0_and_finds_nothing(population: int | None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out, err = io.StringIO(), io.StringIO()
    size = ["--population", str(population)] if population is not None else []
    assert run(["diff", "rules", "rules", *size], out, err) == 0
    text = out.getvalue()
    assert "What changed in the pack: nothing, the content is the same" in text
    assert "What that does to patients: no patient gets a different decision." in text
    assert f"{population or 12_000:,} generated patients" in text


def test_crs_rules_diff_json_parses_and_differences_exit_0(base: Path, cap_700: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(["diff", str(base), str(cap_700), "--format", "json", "--population", "100"], out, err) == 0, err.getvalue()
    report = json.loads(out.getvalue())
    assert [c["path"] for c in report["pack_changes"]] == ["drugs.tocilizumab.limits.max_dose_mg"]
    assert report["version"]["new"] != report["version"]["old"]
    assert report["population"]["generated"] == 100
    assert [d["kind"] for d in report["differences"]] in (["dose changed"], ["dose changed", "alert changed"])
    dose = report["differences"][0]
    assert dose["patients"] == sum(c["patients"] for c in dose["changes"]) > 0
    assert dose["example"]["input"]["patient"]["weight_kg"] > 87.5


def test_crs_rules_diff_reports_every_problem_of_both_invalid_packs(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(RULES, broken)
    dosing = broken / "dosing.yaml"
    dosing.write_text(re.sub("max_dose_mg: [0-9]+", "max_dose_mg: 1", dosing.read_text(encoding="utf-8"), count=1),
                      encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert run(["diff", str(tmp_path / "missing"), str(broken)], out, err) == 1
    problems = err.getvalue()
    assert "missing" in problems and "is not a folder" in problems
    assert str(broken / "manifest.yaml") in problems  # an active pack whose digest no longer matches
    assert out.getvalue() == ""


def test_crs_rules_diff_refuses_a_population_that_is_not_a_number() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(["diff", "rules", "rules", "--population", "many"], out, err) == 2
    assert "--population" in err.getvalue()


def _dose(amount: float, interval_h: float = 8) -> Dose:
    return Dose("tocilizumab", amount, "IV", "weight_based", interval_h, None, None, None, None, "")


def test_dose_changes_are_summarised_by_weight_range_between_the_packs_dose_breakpoints(
    shipped: Protocol, cap_700: Path
) -> None:
    packs = (shipped, load_protocol(cap_700))
    # The fixture's tocilizumab: 12 mg/kg below 30 kg, 8 mg/kg from 30 kg, capped at 800 then 700 mg
    # (reached at 100 kg, then at 87.5 kg).
    assert weight_breakpoints(packs, "tocilizumab") == [30, 87.5, 100]
    effects = dose_effects([
        ("a", 95.0, _dose(760), _dose(700)),
        ("b", 120.0, _dose(800), _dose(700)),
        ("c", 20.0, _dose(240), _dose(200)),
        ("d", 50.0, _dose(400), _dose(400, interval_h=9)),
        ("e", 88.0, _dose(704), _dose(700)),
    ], packs)
    assert [(e.describe(), e.patients) for e in effects] == [
        ("tocilizumab 200 mg instead of 240 mg for patients under 30 kg", ("c",)),
        ("tocilizumab 700 mg instead of 704 to 800 mg for patients of 87.5 kg and more", ("a", "e", "b")),
        ("tocilizumab, same amount, given differently (\"...mg IV every 8 h\" -> \"...mg IV every 9 h\"), for all patients", ("d",)),
    ]
    # Ranges with different new amounts on both sides stay apart.
    apart = dose_effects([("a", 95.0, _dose(760), _dose(750)), ("b", 120.0, _dose(800), _dose(700))], packs)
    assert [e.describe() for e in apart] == [
        "tocilizumab 750 mg instead of 760 mg for patients of 87.5 to under 100 kg",
        "tocilizumab 700 mg instead of 800 mg for patients of 100 kg and more",
    ]


def test_the_rule_a_change_is_inside_comes_from_the_registry(tmp_path: Path) -> None:
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    grading, dosing = folder / "grading.yaml", folder / "dosing.yaml"
    grading.write_text(grading.read_text(encoding="utf-8").replace(
        "engagement of endogenous", "engagement of the endogenous", 1), encoding="utf-8")
    dosing.write_text(dosing.read_text(encoding="utf-8").replace(
        "Anticytokine therapy; it can mask fever.", "Anti-cytokine therapy; it can mask fever.", 1), encoding="utf-8")
    record_digest(folder)
    old = load_protocol(RULES)
    changes = pack_changes(old, load_protocol(folder))
    definition = next(rule for rule in old.rules() if rule.path == ("definition",))
    assert [(c.path, c.rule) for c in changes] == [("definition.text", definition.id),
                                                   ("drug_classes.anticytokine.description", "class anticytokine")]
