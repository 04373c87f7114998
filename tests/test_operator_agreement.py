"""The operator table's two readings agree: plain Python (``conditions.holds``) and the engine.

Each operator of :data:`crs_rules.operators.OPERATOR_TABLE` is declared once with its Python
predicate and its engine test. Two properties hold them together:

* operator by operator, the engine test fires exactly when the Python predicate says so (and the
  negated test exactly when the fact is present and the predicate fails), on generated values,
  including operators the shipped pack does not use;
* for every condition of the shipped pack, on generated patients, the plain-Python reading of the
  whole pack (findings, grade, action rules, alerts, each read with ``holds`` over the patient's
  facts) agrees with the decision the engine reaches, wherever the engine's answer is definite.

Unknown data: the engine reads conditions in three values (:mod:`crs_rules.certainty`) and is
definite only when the unknowns cannot change the answer; ``holds`` reads an absent fact's
comparisons as false, which is one way the unknowns could turn out. So wherever the engine is
definite, the two must agree; where it is open, nothing is compared. With every input a
condition reads present (and the findings and actions it reads decided), the engine must be
definite for it.
"""

from __future__ import annotations

from typing import Any, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crs_rules import evaluate, parse_patient
from crs_rules.compilation import NOT_APPLICABLE
from crs_rules.conditions import comparisons, holds
from crs_rules.decision import Decision
from crs_rules.engine import CompiledRuleset, Firing
from crs_rules.facts import flat_facts
from crs_rules.model import GRADE_FINDING, Comparison, Condition, Protocol, Source
from crs_rules.operators import OPERATORS, operator
from crs_rules.vocabulary import normalise

from strategies import complete_patient_states, febrile_hypotensive_states, patient_states

HERE = Source("test", 1, 1)

# --------------------------------------------------------------------------------------------
# Operator by operator, directly in the engine

#: (attribute on the observation, operator, expected value written in a rule). Values sit where
#: the generated facts below crowd (38 for numbers, a few names for enums and lists).
RULES: tuple[tuple[str, str, Any], ...] = (
    ("number", "equals", 38), ("number", "not_equals", 38), ("number", "at_least", 38), ("number", "above", 38),
    ("number", "at_most", 38.5), ("number", "below", 38.5),
    ("flag", "equals", True), ("flag", "not_equals", True),
    ("device", "equals", "face_mask"), ("device", "not_equals", "face_mask"),
    ("device", "one_of", ("face_mask", "cpap")), ("number", "one_of", (37, 38.5)),
    ("names", "includes", "vasopressin"), ("names", "count_at_least", 2), ("present", "exists", True),
)
NOT_COUNTING = ("vasopressin",)


def _attribute(attribute: str, op: str, expected: Any) -> str:
    # Lists reach the engine as counts and membership flags (see CompiledProtocol.observation).
    if op == "includes":
        return f"{attribute}.has.{expected}"
    if op == "count_at_least":
        return f"{attribute}.counted"
    return attribute


def _name(index: int, negated: bool) -> str:
    return f"r{index}{'.not' if negated else ''}"


@pytest.fixture(scope="module")
def operator_ruleset() -> CompiledRuleset:
    rules: dict[str, dict[str, Any]] = {}
    for index, (attribute, op, expected) in enumerate(RULES):
        for negated in (False, True):
            test = operator(op).engine_test(_attribute(attribute, op, expected), expected, negated)
            rules[_name(index, negated)] = {"all": [{"o": {"$and": [{"t": "observation"}, test]}}]}

    def nothing(firing: Firing) -> None:
        return None

    return CompiledRuleset(rules, dict.fromkeys(rules, nothing), ("observation",), label="operator-table")


def test_the_engine_rules_cover_every_operator() -> None:
    assert {op for _, op, _ in RULES} == set(OPERATORS)




def absent_or(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


numbers = st.one_of(st.sampled_from([37, 38, 38.0, 38.5, 39]), st.floats(36, 41, allow_nan=False).map(lambda x: round(x, 1)))
names = st.lists(st.sampled_from(["norepinephrine", "vasopressin", "phenylephrine", "dopamine"]), unique=True, max_size=4)


@given(number=absent_or(numbers), flag=absent_or(st.booleans()),
       device=absent_or(st.sampled_from(["face_mask", "cpap", "nasal_cannula"])),
       listed=absent_or(names), present=st.booleans())
def test_each_engine_test_fires_exactly_when_the_python_predicate_holds(
        operator_ruleset: CompiledRuleset, number: float | None, flag: bool | None, device: str | None,
        listed: list[str] | None, present: bool) -> None:
    values: dict[str, Any] = {"number": number, "flag": flag, "device": device,
                              "names": tuple(listed) if listed is not None else None,
                              "present": True if present else None}
    observation: dict[str, Any] = {"t": "observation"}
    for attribute, value in values.items():
        if value is None:
            continue  # unknown: absent from the observation
        if attribute == "names":
            observation["names"] = {"count": len(value), "counted": sum(1 for n in value if n not in NOT_COUNTING),
                                    "has": {n: n in value for _, op, n in RULES if op == "includes"}}
        else:
            observation[attribute] = value
    fired = set(operator_ruleset.run([observation]).fired)
    for index, (attribute, op, expected) in enumerate(RULES):
        value = values[attribute]
        comparison = Comparison(attribute, op, expected, HERE, NOT_COUNTING if op == "count_at_least" else ())
        known = value is not None or op == "exists"  # presence is never unknown: absent is "not present"
        passes = holds(comparison, {attribute: value} if value is not None else {})
        fails = known and not passes
        assert (_name(index, False) in fired) is passes, (op, expected, value)
        assert (_name(index, True) in fired) is fails, (op, expected, value, "negated")


# --------------------------------------------------------------------------------------------
# Every condition of the shipped pack, read in plain Python and by the engine


def plain_reading(protocol: Protocol, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The whole pack read with ``holds`` over the patient's facts, an absent fact's comparisons
    false: every finding's value, the grade, and (``action.<id>``, ``rule:<id>``, ``alert:<id>``)
    whether each action is proposed and each action rule and alert holds."""
    facts: dict[str, Any] = dict(inputs)
    findings = {f.id: f for f in protocol.findings}
    open_findings = [*findings, GRADE_FINDING]

    def reads(conditions: list[Any]) -> set[str]:
        return {c.fact.removeprefix("finding.") for cond in conditions for c in comparisons(cond)
                if c.fact.startswith("finding.")}

    while open_findings:  # findings read other findings (never in a loop): each once its inputs are known
        for name in list(open_findings):
            if name == GRADE_FINDING:
                conditions = [g.when for g in protocol.grades]
            else:
                finding = findings[name]
                conditions = [finding.when] if finding.when is not None else [lv.when for lv in finding.levels]
            if reads(conditions) & set(open_findings):
                continue
            open_findings.remove(name)
            if name == GRADE_FINDING:
                applies = protocol.applies_when is None or holds(protocol.applies_when, facts)
                matched = [g.grade for g in protocol.grades if holds(g.when, facts)]
                assert len(matched) == 1 or not applies, f"grading gives {matched}"
                grade = matched[0] if applies else NOT_APPLICABLE
                if grade != NOT_APPLICABLE:  # "not applicable" passes no comparison: absent
                    facts[f"finding.{GRADE_FINDING}"] = grade
                facts["grade"] = grade
            elif finding.when is not None:
                facts[f"finding.{name}"] = holds(finding.when, facts)
            else:
                level = next((lv for lv in finding.levels if holds(lv.when, facts)), None)
                facts[f"finding.{name}"] = level.value if level is not None else finding.otherwise_value
    proposed: set[str] = set()
    while True:  # action rules may read proposed actions (never negated): to the fixed point
        with_actions = {**facts, **{f"action.{a}": True for a in proposed}}
        more = {r.action for r in protocol.action_rules if holds(r.when, with_actions)} - proposed
        if not more:
            break
        proposed |= more
    facts.update({f"action.{a}": True for a in proposed})
    facts.update({f"rule:{r.rule_id}": holds(r.when, facts) for r in protocol.action_rules})
    facts.update({f"alert:{a.rule_id}": holds(a.when, facts) for a in protocol.alerts})
    return facts


def _inputs_read_by(condition: Condition) -> set[str]:
    return {c.fact for c in comparisons(condition) if not c.fact.startswith(("finding.", "action."))}


def _inputs_read(protocol: Protocol) -> set[str]:
    return {fact for _, condition in protocol.conditions() for fact in _inputs_read_by(condition)}


#: A pending action rule whose condition holds, waiting only for the medication record to check
#: its dose limits (evaluation words it so); other pending rules are open.
HELD_FOR_THE_RECORD = "the medication record is not given"


def engine_reading(protocol: Protocol, decision: Decision) -> tuple[dict[str, bool | None], dict[str, bool | None]]:
    """Per action rule and per alert: True (certainly holds), False (certainly fails), None (open)."""
    held = {r.rule for r in decision.recommendations} | {w.rule for w in decision.withheld}
    held |= {p.rule for p in decision.pending if p.reason.startswith(HELD_FOR_THE_RECORD)}
    open_rules = {p.rule for p in decision.pending} - held
    rules = {r.rule_id: (None if r.rule_id in open_rules else r.rule_id in held) for r in protocol.action_rules}
    raised = {a.rule for a in decision.alerts}
    alerts = {a.rule_id: (None if a.rule_id in open_rules else a.rule_id in raised) for a in protocol.alerts}
    return rules, alerts


def _reads(condition: Condition, family: str) -> set[str]:
    return {c.fact.removeprefix(f"{family}.") for c in comparisons(condition) if c.fact.startswith(f"{family}.")}


PATIENTS = st.one_of(patient_states(), complete_patient_states(), complete_patient_states(febrile_hypotensive=True),
                     febrile_hypotensive_states())


@settings(max_examples=25)
@given(PATIENTS)
def test_the_plain_python_reading_agrees_with_the_engine_on_a_few_patients(protocol: Protocol, state: dict[str, Any]) -> None:
    """The fast loop's sample of the property below (which CI runs on the profile's examples)."""
    check_agreement(protocol, state)


@pytest.mark.slow
@given(PATIENTS)
def test_the_plain_python_reading_of_every_condition_agrees_with_the_engine(
        protocol: Protocol, state: dict[str, Any]) -> None:
    check_agreement(protocol, state)


def check_agreement(protocol: Protocol, state: dict[str, Any]) -> None:
    patient = parse_patient(state)
    decision = evaluate(patient, protocol)
    # The engine reads the patient with every drug name as the pack's drug id (two names of one
    # drug count once), as evaluate does.
    inputs = flat_facts(normalise(patient, protocol), protocol)
    plain = plain_reading(protocol, inputs)
    engine_findings: dict[str, Any] = dict(decision.findings)
    if decision.grade_status == "not_applicable":
        engine_findings[GRADE_FINDING] = NOT_APPLICABLE
    rules, alerts = engine_reading(protocol, decision)
    decided_actions = {r.action for r in protocol.action_rules if rules[r.rule_id]} | {
        action for action in {r.action for r in protocol.action_rules}
        if all(rules[r.rule_id] is False for r in protocol.action_rules if r.action == action)}

    def determinable(*conditions: Condition) -> bool:
        """Every input the conditions read is present, and every finding and action they read is
        decided: the engine must then be definite (there is nothing left unknown)."""
        return all(_inputs_read_by(c) <= set(inputs)
                   and all(engine_findings.get(f) is not None for f in _reads(c, "finding"))
                   and _reads(c, "action") <= decided_actions for c in conditions)

    for finding in protocol.findings:
        value = engine_findings[finding.id]
        conditions = [finding.when] if finding.when is not None else [lv.when for lv in finding.levels]
        if value is None:
            assert not determinable(*conditions), f"finding.{finding.id} undetermined with its data known"
        else:
            assert plain[f"finding.{finding.id}"] == value, finding.id
    grading = [g.when for g in protocol.grades] + ([protocol.applies_when] if protocol.applies_when else [])
    if decision.grade_status == "graded":
        assert plain["grade"] == decision.crs_grade
    elif decision.grade_status == "not_applicable":
        assert plain["grade"] == NOT_APPLICABLE
    else:
        assert not determinable(*grading), "the grade is undetermined with its data known"
        assert plain["grade"] == NOT_APPLICABLE or plain["grade"] in decision.possible_grades

    for rule in protocol.action_rules:
        certain = rules[rule.rule_id]
        if certain is None:
            assert not determinable(rule.when), f"{rule.rule_id} open with its data known"
        else:
            assert plain[f"rule:{rule.rule_id}"] is certain, rule.rule_id
    for alert in protocol.alerts:
        certain = alerts[alert.rule_id]
        if certain is None:
            assert not determinable(alert.when), f"{alert.rule_id} open with its data known"
        elif alert.if_unknown == "raise" and certain and not determinable(alert.when):
            continue  # raised while it may hold ("possibly"): not a certain answer to compare
        else:
            assert plain[f"alert:{alert.rule_id}"] is certain, alert.rule_id
