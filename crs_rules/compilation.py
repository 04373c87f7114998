"""Compilation: a validated Protocol becomes a durable_rules ruleset that runs by forward chaining.

The chain, each step a rule firing because the facts of the step before exist in the session::

    observation --> finding facts (fever, hypotension_grade, ...) --> finding crs_grade
        --> action facts --> dose facts --> withheld facts (limits reached) ; alert facts

Engine fact kinds (field ``t``): ``observation`` (the patient, one per evaluation), ``finding``
(``name``, ``value``), ``action`` (``action``, ``rule``, ``strength``, ``drug``, ``regimen``),
``dose`` (``rule``, ``drug``, ``regimen``, ``amount_mg``), ``withheld`` (``rule``, ``limit``) and
``alert`` (``alert``, ``rule``).

Each pack rule becomes one engine rule per alternative of its condition (an OR over different
facts cannot be one pattern); a pack rule still takes effect at most once per evaluation. The
dose and limit rules are generated from dosing.yaml, so every number stays in the YAML.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor
from typing import Any, Callable, Sequence

from .conditions import comparisons
from .engine import CompiledRuleset, Firing, RunResult, renew_after_fork
from .facts import flat_facts, list_count_key
from .model import (
    GRADE_FINDING,
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    Drug,
    Not,
    Protocol,
    Regimen,
)
from .patient import PatientState

__all__ = ["CompiledProtocol", "compile_protocol", "engine_program", "FACT_KINDS", "OBSERVATION_FAMILIES", "compute_amount"]

FACT_KINDS = ("observation", "finding", "action", "dose", "withheld", "alert")
OBSERVATION_FAMILIES = ("patient", "therapy", "crs", "sepsis", "vitals", "neuro", "history", "proposed")

Target = tuple[str, str]  # ("observation", "") | ("finding", name) | ("action", id)
Test = dict[str, Any]


def _target(fact: str) -> Target:
    family, _, rest = fact.partition(".")
    if family in ("finding", "action"):
        return (family, rest)
    return ("observation", "")


def _attribute(comparison: Comparison) -> str:
    """The engine attribute a comparison reads, within its target fact."""
    kind, _ = _target(comparison.fact)
    if kind == "finding":
        return "value"
    if comparison.operator == "includes":
        return f"{comparison.fact}.has.{comparison.value}"
    if comparison.operator == "count_at_least":
        return f"{comparison.fact}.{list_count_key(comparison.not_counting)}"
    return comparison.fact


_POSITIVE = {"at_least": "$gte", "above": "$gt", "at_most": "$lte", "below": "$lt"}
_NEGATED = {"at_least": "$lt", "above": "$lte", "at_most": "$gt", "below": "$gte"}


def _leaf(comparison: Comparison, negated: bool) -> Test:
    """One comparison as an engine test. A negated test on a fact that may be absent also
    accepts absence (a comparison on an absent fact is false, so its negation is true)."""
    attribute, op, value = _attribute(comparison), comparison.operator, comparison.value
    kind, name = _target(comparison.fact)
    if kind == "action":
        # An action fact exists or not: the pattern itself is the test (never negated: validated).
        return {"action": name}
    if op == "exists":
        return {"$nex": {attribute: 1}} if negated else {"$ex": {attribute: 1}}
    if op == "includes":
        return {"$nex": {attribute: 1}} if negated else {attribute: True}
    if op == "count_at_least":
        return {"$lt" if negated else "$gte": {attribute: value}}
    if op == "one_of":
        assert isinstance(value, tuple)
        test: Test = ({"$and": [{"$neq": {attribute: v}} for v in value]} if negated
                      else {"$or": [{attribute: v} for v in value]})
    elif op in ("equals", "not_equals"):
        equal = (op == "equals") != negated
        test = {attribute: value} if equal else {"$neq": {attribute: value}}
    else:
        test = {(_NEGATED if negated else _POSITIVE)[op]: {attribute: value}}
    if negated and kind == "observation":
        return {"$or": [test, {"$nex": {attribute: 1}}]}
    return test


def _targets(condition: Condition) -> set[Target]:
    return {_target(c.fact) for c in comparisons(condition)}


def _single_target_test(condition: Condition, negated: bool) -> Test:
    if isinstance(condition, Comparison):
        return _leaf(condition, negated)
    if isinstance(condition, Not):
        return _single_target_test(condition.condition, not negated)
    parts = [_single_target_test(c, negated) for c in condition.conditions]
    if len(parts) == 1:
        return parts[0]
    conjunctive = isinstance(condition, AllOf) != negated
    return {"$and" if conjunctive else "$or": parts}


Term = dict[Target, list[Test]]


def _terms(condition: Condition, negated: bool = False) -> list[Term]:
    """Alternatives (OR) of conjunctions of per-fact tests. A part of the condition that reads one
    fact only stays one engine test; only ORs across different facts split into alternatives."""
    targets = _targets(condition)
    if len(targets) == 1:
        return [{next(iter(targets)): [_single_target_test(condition, negated)]}]
    if isinstance(condition, Not):
        return _terms(condition.condition, not negated)
    assert isinstance(condition, (AllOf, AnyOf))
    parts = [_terms(c, negated) for c in condition.conditions]
    if (isinstance(condition, AllOf)) == negated:  # an OR after De Morgan
        return [term for part in parts for term in part]
    terms: list[Term] = [{}]
    for part in parts:
        terms = [_merge(left, right) for left in terms for right in part]
    return terms


def _merge(left: Term, right: Term) -> Term:
    merged = {target: list(tests) for target, tests in left.items()}
    for target, tests in right.items():
        merged.setdefault(target, []).extend(tests)
    return merged


def _pattern(target: Target, tests: Sequence[Test]) -> Test:
    kind, name = target
    base: list[Test] = [{"t": kind}]
    if kind == "finding":
        base.append({"name": name})
    elif kind == "action":
        base.append({"action": name})
    return {"$and": base + list(tests)}


def _rule_definition(term: Term) -> dict[str, Any]:
    patterns = []
    aliases = {"observation": "o", "finding": "f", "action": "a"}
    for index, (target, tests) in enumerate(sorted(term.items())):
        patterns.append({f"{aliases[target[0]]}{index}": _pattern(target, tests)})
    return {"all": patterns}


def compute_amount(regimen: Regimen, drug: Drug, weight_kg: float) -> tuple[int | float, str]:
    """The amount of one dose, rounded down and capped, with how it was reached, in words."""
    amount = regimen.amount
    assert amount is not None, "validated packs give every regimen an amount"
    if amount.fixed_mg is not None:
        value: Fraction = Fraction(str(amount.fixed_mg))
        how = f"{_number(amount.fixed_mg)} mg"
    else:
        band = [b for b in amount.per_kg if Fraction(str(b.from_weight_kg)) <= Fraction(str(weight_kg))][-1]
        value = Fraction(str(band.mg_per_kg)) * Fraction(str(weight_kg))
        how = f"{_number(band.mg_per_kg)} mg/kg x {_number(weight_kg)} kg = {_number(float(value))} mg"
    if amount.round_down_to_mg is not None:
        step = Fraction(str(amount.round_down_to_mg))
        value = floor(value / step) * step
    cap = drug.limits.max_dose_mg
    if cap is not None and value > Fraction(str(cap)):
        value = Fraction(str(cap))
        how += f", capped at the maximum of {_number(cap)} mg"
    result = int(value) if value.denominator == 1 else float(value)
    return result, how


def _number(value: float) -> str:
    return f"{value:g}" if float(value) != int(value) else str(int(value))


@dataclass
class CompiledProtocol:
    """A protocol ready to evaluate: the engine ruleset plus the encoder of observations."""

    protocol: Protocol
    ruleset: CompiledRuleset
    list_counts: frozenset[tuple[str, tuple[str, ...]]]
    list_members: frozenset[tuple[str, str]] = frozenset()
    """(list fact, name) for every name a condition tests with ``includes``."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _applied: dict[str, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        renew_after_fork(self, _lock=threading.Lock)  # a forked child starts with the lock free

    def observation(self, patient: PatientState) -> dict[str, Any]:
        """The patient as the engine's one observation fact (nested by path, absent when unknown)."""
        fact: dict[str, Any] = {"t": "observation"}
        for path, value in flat_facts(patient, self.protocol).items():
            if isinstance(value, tuple):  # a list of names: counts and membership for the engine
                # Membership only for the names the rules test: the fact's size stays bounded by
                # the pack, whatever the input lists (the engine refuses a fact of ~250 properties).
                has = {name: True for name in value if (path, name) in self.list_members}
                encoded: dict[str, Any] = {"count": len(value), "has": has}
                for list_path, not_counting in self.list_counts:
                    if list_path == path:
                        encoded[list_count_key(not_counting)] = sum(1 for n in value if n not in not_counting)
                if not encoded["has"]:
                    del encoded["has"]
                value = encoded
            node = fact
            *parents, leaf = path.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return fact

    def run(self, patient: PatientState) -> tuple[RunResult, tuple[str, ...]]:
        """Run the chain for one patient: the engine's result and the rules that took effect, in
        order. The lock keeps the once-per-evaluation bookkeeping of one patient whole."""
        observation = self.observation(patient)
        with self._lock:
            self._applied = {}
            result = self.ruleset.run([observation])
            return result, tuple(self._applied)

    def once(self, rule_id: str) -> bool:
        """True the first time a rule takes effect in this evaluation, False after."""
        if rule_id in self._applied:
            return False
        self._applied[rule_id] = None
        return True


def compile_protocol(protocol: Protocol) -> CompiledProtocol:
    """Compile a validated protocol. Compile once per pack per process: engine rulesets are never freed."""
    holder: list[CompiledProtocol] = []
    list_members: set[tuple[str, str]] = set()
    rules, handlers, list_counts = engine_program(protocol, holder, list_members)
    compiled = CompiledProtocol(
        protocol=protocol,
        ruleset=CompiledRuleset(rules, handlers, FACT_KINDS, label=f"{protocol.id}-{protocol.version}"),
        list_counts=frozenset(list_counts),
        list_members=frozenset(list_members),
    )
    holder.append(compiled)
    return compiled


def engine_program(
    protocol: Protocol, holder: list[CompiledProtocol], list_members: set[tuple[str, str]] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Callable[[Firing], None]], set[tuple[str, tuple[str, ...]]]]:
    """The engine rules, their handlers and the list counts the observation needs, without creating
    anything in the engine (validation sizes a pack with it). ``holder`` receives the compiled
    protocol whose bookkeeping the handlers use; ``list_members``, when given, receives (list fact,
    name) for every name a condition tests with ``includes``."""
    rules: dict[str, dict[str, Any]] = {}
    handlers: dict[str, Callable[[Firing], None]] = {}
    list_counts: set[tuple[str, tuple[str, ...]]] = set()

    def add(rule_id: str, condition: Condition, effect: Callable[[Firing], None]) -> None:
        for comparison in comparisons(condition):
            if comparison.operator == "count_at_least":
                list_counts.add((comparison.fact, tuple(sorted(comparison.not_counting))))
            elif comparison.operator == "includes" and list_members is not None:
                list_members.add((comparison.fact, str(comparison.value)))
        for index, term in enumerate(_terms(condition)):
            name = f"{rule_id}#{index}"
            rules[name] = _rule_definition(term)

            def handler(firing: Firing, rule_id: str = rule_id) -> None:
                if holder[0].once(rule_id):
                    effect(firing)

            handlers[name] = handler

    def assert_finding(name: str, value: bool | int, rule: str) -> Callable[[Firing], None]:
        return lambda firing: firing.assert_fact({"t": "finding", "name": name, "value": value, "rule": rule})

    for finding in protocol.findings:
        if finding.when is not None:
            add(finding.rule_id, finding.when, assert_finding(finding.id, True, finding.rule_id))
            add(finding.rule_id + ".false", Not(finding.when, finding.when.source),
                assert_finding(finding.id, False, finding.rule_id))
            continue
        earlier: list[Condition] = []
        for level in finding.levels:
            none_before = [Not(c, c.source) for c in earlier]
            condition = AllOf((level.when, *none_before), level.source) if none_before else level.when
            add(f"{finding.rule_id}.{level.value}", condition, assert_finding(finding.id, level.value, finding.rule_id))
            earlier.append(level.when)
        assert finding.otherwise_value is not None
        otherwise = Not(AnyOf(tuple(earlier), finding.source), finding.source)
        add(f"{finding.rule_id}.{finding.otherwise_value}", otherwise,
            assert_finding(finding.id, finding.otherwise_value, finding.rule_id))

    for grade in protocol.grades:
        add(grade.rule_id, grade.when, assert_finding(GRADE_FINDING, grade.grade, grade.rule_id))

    def assert_copy(fact: dict[str, Any]) -> Callable[[Firing], None]:
        return lambda firing: firing.assert_fact(dict(fact))

    for rule in protocol.action_rules:
        fact: dict[str, Any] = {"t": "action", "action": rule.action, "rule": rule.rule_id, "strength": rule.strength}
        if rule.dose is not None:
            fact.update(drug=rule.dose.drug, regimen=rule.dose.regimen)
        add(rule.rule_id, rule.when, assert_copy(fact))

    for alert in protocol.alerts:
        add(alert.rule_id, alert.when,
            assert_copy({"t": "alert", "alert": alert.id, "rule": alert.rule_id, "severity": alert.severity}))

    for drug in protocol.drugs:
        _add_dose_rules(drug, rules, handlers, holder)

    return rules, handlers, list_counts


def _add_dose_rules(drug: Drug, rules: dict[str, dict[str, Any]], handlers: dict[str, Callable[[Firing], None]],
                    holder: list[CompiledProtocol]) -> None:
    """The dose proposal and the limit checks of one drug, generated from its limits."""

    def _recorded(name: str, effect: Callable[[Firing], None]) -> Callable[[Firing], None]:
        def handler(firing: Firing) -> None:
            # Once per dose: a drug proposed by two rules gets two doses, each checked.
            key = f"{name}@{firing.matched['a' if 'a' in firing.matched else 'd']['rule']}"
            if holder[0].once(key):
                effect(firing)

        return handler
    observation = {"o": {"t": "observation"}}
    proposed_action = {"a": {"$and": [{"t": "action"}, {"drug": drug.id}]}}
    propose = f"{drug.rule_id}.propose"
    rules[propose] = {"all": [proposed_action, observation]}

    def propose_dose(firing: Firing) -> None:
        action, patient = firing.matched["a"], firing.matched["o"]
        regimen = drug.regimen(action["regimen"])
        assert regimen is not None, "validated packs name existing regimens"
        amount, how = compute_amount(regimen, drug, patient["patient"]["weight_kg"])
        firing.assert_fact({"t": "dose", "rule": action["rule"], "action": action["action"], "drug": drug.id,
                            "regimen": regimen.id, "amount_mg": amount, "how": how})

    handlers[propose] = _recorded(propose, propose_dose)

    def limit_rule(limit: str, observation_test: Test, regimen: str | None = None) -> None:
        name = f"{drug.rule_id}.{limit}" + (f".{regimen}" if regimen else "")
        dose_tests: list[Test] = [{"t": "dose"}, {"drug": drug.id}]
        if regimen:
            dose_tests.append({"regimen": regimen})
        rules[name] = {"all": [{"d": {"$and": dose_tests}},
                               {"o": {"$and": [{"t": "observation"}, observation_test]}}]}

        def withhold(firing: Firing) -> None:
            dose = firing.matched["d"]
            firing.assert_fact({"t": "withheld", "rule": dose["rule"], "action": dose["action"],
                                "drug": drug.id, "limit": limit})

        handlers[name] = _recorded(name, withhold)

    history = f"history.{drug.id}"
    limits = drug.limits
    if limits.max_doses_per_course is not None:
        limit_rule("max_doses_per_course", {"$gte": {f"{history}.doses_in_course": limits.max_doses_per_course}})
    if limits.max_doses_in_window is not None:
        limit_rule("max_doses_in_window", {"$gte": {f"{history}.doses_in_window": limits.max_doses_in_window}})
    for regimen in drug.regimens:
        intervals = [h for h in (limits.min_interval_h, regimen.interval_h) if h is not None]
        if intervals:
            limit_rule("min_interval_h", {"$lt": {f"{history}.hours_since_last": max(intervals)}}, regimen.id)
    if limits.repeat_only_if_not_improving:
        limit_rule("repeat_only_if_not_improving",
                   {"$and": [{f"{history}.given": True}, {"crs.improving": True}]})
