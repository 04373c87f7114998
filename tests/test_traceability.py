"""The shipped pack encodes the whole seed protocol, and holds the seed's safety numbers.

The first tests use the traceability machinery (statements.yaml, ``crs_rules.traceability``). The
last ones do not: they write the seed's numbers down themselves and read them from the loaded
model, so a bad edit of the YAML fails CI even if statements.yaml was edited to match it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from crs_rules.conditions import comparisons, holds
from crs_rules.model import Comparison, Drug, Protocol, Regimen, WeightBand
from crs_rules.traceability import statement_numbers, trace

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
SEED = RULES / "seed-protocol.txt"


def _words(text: str) -> str:
    return " ".join(text.replace("\u2011", "-").split())


# --------------------------------------------------------------------------- statements <-> seed <-> rules


def test_every_statement_is_encoded_by_rules_that_exist(protocol: Protocol) -> None:
    known = set(protocol.rule_ids())
    deviated = {deviation.statement for deviation in protocol.deviations}
    assert len(protocol.statements) >= 1
    for statement in protocol.statements:
        # a statement a declared deviation replaces entirely may name no rule (tests/test_deviations.py)
        assert statement.encoded_by or statement.id in deviated, f"{statement.id} names no rule and no deviation"
        missing = [rule for rule in statement.encoded_by if rule not in known]
        assert missing == [], f"{statement.id} names rules that do not exist: {missing}"


def test_every_seed_line_is_a_statement_or_a_heading(protocol: Protocol) -> None:
    statements = Counter(_words(s.text) for s in protocol.statements)
    headings = Counter(_words(h) for h in protocol.headings)
    seed_statements: Counter[str] = Counter()
    seed_headings: Counter[str] = Counter()
    for number, line in enumerate(SEED.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        text = _words(line[2:] if line.startswith("- ") else line)
        if text in headings and not line.startswith("- "):
            seed_headings[text] += 1
        else:
            assert text in statements, f"seed line {number} is neither a statement nor a heading: {line!r}"
            seed_statements[text] += 1
    # Each way round: every seed line is encoded, and every statement is a line of the seed (a
    # statement written twice in the seed, such as "Tocilizumab as per Grade 2 ...", is listed twice).
    assert seed_statements == statements
    assert seed_headings == headings


def test_statement_numbers_reads_the_protocol_numbers_with_their_units() -> None:
    assert statement_numbers("Tocilizumab 8 mg/kg IV (maximum 800 mg) 1") == [(8.0, "mg/kg"), (800.0, "mg")]
    assert statement_numbers("Can repeat every 8 hours if no improvement; maximum 3 doses in 24 hours, 4 doses total 1") == [
        (8.0, "hours"), (3.0, "doses"), (24.0, "hours"), (4.0, "doses")]
    assert statement_numbers("Consider dexamethasone 10 mg IV every 12-24 hours for persistent refractory hypotension 1") == [
        (10.0, "mg"), (12.0, "hours"), (24.0, "hours")]
    assert statement_numbers("If not improving, consider methylprednisolone 1,000 mg IV twice daily 1") == [(1000.0, "mg")]
    assert statement_numbers("Cardiac monitoring with continuous telemetry and pulse oximetry for Grade 2+ CRS 1") == []


def test_each_number_of_each_statement_is_written_exactly_once_among_its_rules() -> None:
    protocol, rows, problems = trace(RULES)
    assert problems == []
    assert [row.statement for row in rows] == [s.id for s in protocol.statements]
    counted = 0
    for row, statement in zip(rows, protocol.statements):
        assert [label for label, _ in row.numbers] == [f"{v:g} {u}" for v, u in statement_numbers(statement.text)]
        if row.statement in {d.statement for d in protocol.deviations}:
            continue  # a declared deviation from the seed: the pack does not follow it as written
        for label, found in row.numbers:
            assert len(found) == 1, f"{row.statement}: {label} is found {len(found)} times"
            counted += 1
    assert counted >= 18  # the seed's dosing, timing and grading numbers are all traced


# --------------------------------------------------------------------------- the seed's safety numbers, written here


def _drug(protocol: Protocol, drug_id: str) -> Drug:
    drug = protocol.drug(drug_id)
    assert drug is not None, f"no drug {drug_id}"
    return drug


def _regimen(protocol: Protocol, drug_id: str, regimen_id: str) -> Regimen:
    regimen = _drug(protocol, drug_id).regimen(regimen_id)
    assert regimen is not None, f"no regimen {regimen_id} of {drug_id}"
    return regimen


def _dose_of(protocol: Protocol, rule_id: str) -> tuple[str, str]:
    rule = next(r for r in protocol.action_rules if r.id == rule_id)
    assert rule.dose is not None, f"{rule_id} proposes no dose"
    return rule.dose.drug, rule.dose.regimen


def test_tocilizumab_limits_are_the_seeds(protocol: Protocol) -> None:
    limits = _drug(protocol, "tocilizumab").limits
    deviated = {d.statement for d in protocol.deviations}
    # Where the pack declares a deviation from the seed's statement, it may only be tighter.
    if "S15" in deviated:
        assert limits.max_dose_mg is not None and 0 < limits.max_dose_mg <= 800
    else:
        assert limits.max_dose_mg == 800  # maximum 800 mg
    if "S16" in deviated:
        assert limits.min_interval_h is not None and limits.min_interval_h >= 8
        assert limits.max_doses_in_window is not None and limits.max_doses_in_window <= 3
        assert limits.max_doses_per_course is not None and limits.max_doses_per_course <= 4
    else:
        assert limits.min_interval_h == 8  # can repeat every 8 hours
        assert (limits.max_doses_in_window, limits.window_h) == (3, 24)  # maximum 3 doses in 24 hours
        assert limits.max_doses_per_course == 4  # 4 doses total
    assert limits.repeat_only_if_not_improving is True  # if no improvement


def test_tocilizumab_is_8_mg_per_kg_from_30_kg_and_12_mg_per_kg_below(protocol: Protocol) -> None:
    regimen = _regimen(protocol, "tocilizumab", "weight_based")
    assert regimen.amount is not None
    assert regimen.amount.fixed_mg is None
    assert regimen.amount.per_kg == (WeightBand(0, 12), WeightBand(30, 8))
    for rule in ("grade1.tocilizumab", "grade2_up.tocilizumab"):
        assert _dose_of(protocol, rule) == ("tocilizumab", "weight_based")


def test_dexamethasone_is_10_mg_every_6_hours_or_every_12_to_24_hours(protocol: Protocol) -> None:
    every_6 = _regimen(protocol, "dexamethasone", "every_6_hours")
    every_12_24 = _regimen(protocol, "dexamethasone", "every_12_to_24_hours")
    for regimen in (every_6, every_12_24):
        assert regimen.amount is not None and regimen.amount.fixed_mg == 10
    assert (every_6.every_h, every_6.up_to_every_h) == (6, None)
    assert (every_12_24.every_h, every_12_24.up_to_every_h) == (12, 24)
    assert _dose_of(protocol, "grade2.dexamethasone") == ("dexamethasone", "every_12_to_24_hours")
    assert _dose_of(protocol, "grade3.dexamethasone") == ("dexamethasone", "every_6_hours")


def test_methylprednisolone_is_500_mg_every_12_hours_for_3_days_then_1000_mg_twice_daily(protocol: Protocol) -> None:
    high = _regimen(protocol, "methylprednisolone", "high_dose")
    assert high.amount is not None and high.amount.fixed_mg == 500
    assert (high.every_h, high.for_days, high.then) == (12, 3, "taper")
    escalated = _regimen(protocol, "methylprednisolone", "twice_daily_if_not_improving")
    assert escalated.amount is not None and escalated.amount.fixed_mg == 1000
    assert escalated.times_daily == 2 and escalated.interval_h == 12
    assert _dose_of(protocol, "grade4.methylprednisolone") == ("methylprednisolone", "high_dose")
    assert _dose_of(protocol, "grade4.methylprednisolone_not_improving") == (
        "methylprednisolone", "twice_daily_if_not_improving")


def test_fever_is_a_temperature_of_at_least_38_degrees(protocol: Protocol) -> None:
    fever = protocol.finding("fever")
    assert fever is not None and fever.when is not None
    tests = [(t.fact, t.operator, t.value) for t in comparisons(fever.when)]
    assert ("vitals.temperature_c", "at_least", 38.0) in tests
    none_attributed: tuple[str, ...] = ()
    assert holds(fever.when, {"vitals.temperature_c": 38.0, "vitals.attributed_to_other_cause": none_attributed})
    assert not holds(fever.when, {"vitals.temperature_c": 37.9, "vitals.attributed_to_other_cause": none_attributed})
    # A fever a clinician attributes to another cause is not counted.
    assert not holds(fever.when, {"vitals.temperature_c": 39.0, "vitals.attributed_to_other_cause": ("fever",)})


@pytest.mark.parametrize("flow,level", [(1, 2), (6, 2), (6.1, 3), (10, 3)])
def test_low_flow_nasal_cannula_is_up_to_6_litres_per_minute(protocol: Protocol, flow: float, level: int) -> None:
    hypoxia = protocol.finding("hypoxia_grade")
    assert hypoxia is not None
    flows = [t for lv in hypoxia.levels for t in comparisons(lv.when) if t.fact == "vitals.oxygen.flow_l_min"]
    assert flows == [Comparison("vitals.oxygen.flow_l_min", "above", 6, flows[0].source)]
    facts = {"vitals.oxygen.device": "nasal_cannula", "vitals.oxygen.flow_l_min": flow}
    first = next(lv.value for lv in hypoxia.levels if holds(lv.when, facts))
    assert first == level


def test_prolonged_crs_is_more_than_3_days_and_the_labelled_age_is_2_years(protocol: Protocol) -> None:
    grade1 = next(r for r in protocol.action_rules if r.id == "grade1.tocilizumab")
    assert [(t.operator, t.value) for t in comparisons(grade1.when) if t.fact == "crs.days_since_onset"] == [("above", 3)]
    alert = next(a for a in protocol.alerts if a.id == "tocilizumab_outside_labelled_age")
    assert [(t.operator, t.value) for t in comparisons(alert.when) if t.fact == "patient.age_years"] == [("below", 2)]


def test_traceability_runs_both_ways_and_the_table_shows_the_declarations(protocol: Protocol) -> None:
    """Every rule encodes a statement or is a declared addition; the table lists deviation D01
    (sepsis alone does not follow the seed's first statement) and the additions."""
    encoded = {rule for statement in protocol.statements for rule in statement.encoded_by}
    added = {addition.rule for addition in protocol.additions}
    assert [rule for rule in protocol.rule_ids() if rule not in encoded | added] == []
    table = (RULES / "TRACEABILITY.md").read_text(encoding="utf-8")
    assert "## Declared deviations from the seed" in table and "## Declared additions" in table
    assert "| D01 | S01: For severe Cytokine Release Syndrome (CRS) or sepsis" in table
    assert "| `alert.sepsis_protocol` |" in table
