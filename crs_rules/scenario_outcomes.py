"""Scenarios, stage 2: a decision against what its scenario expects, and the rules it shows.

:func:`differences` words how a decision differs from the expectation; :func:`fired_rules` and
:func:`checked_rules` say which rules of the pack the decision shows took effect and whose outcome
the expectation checks (the coverage rules are in :mod:`crs_rules.scenarios`)."""

from __future__ import annotations

from datetime import datetime

from .decision import Decision, iso
from .model import Protocol
from .scenario_model import Expectation

__all__ = ["differences", "fired_rules", "checked_rules"]

def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _mg(value: float | None) -> str:
    return "without an amount" if value is None else f"{_number(value)} mg"


def _strength(strength: str) -> str:
    return "recommended" if strength == "recommend" else "considered"


def _what_happened(decision: Decision, action: str) -> str:
    """What the decision did with an action, in words."""
    parts = []
    for r in decision.recommendations:
        if r.action == action:
            dose = f", {_mg(r.dose.amount_mg)}" if r.dose else ""
            parts.append(f"{_strength(r.strength)} ({r.rule}{dose})")
    for w in decision.withheld:
        if w.action == action:
            parts.append(f"withheld ({w.rule}: {w.reason})")
    for p in decision.pending:
        if p.name == action:
            parts.append(f"pending ({p.rule}: waits for {', '.join(p.waits_for)})")
    if any(a.id == action for a in decision.alerts):
        parts.append("raised")
    return "it was " + "; ".join(parts) if parts else "it was not proposed"


def _until(moment: datetime | None) -> str:
    return f"until {iso(moment)}" if moment else "for good (not eligible again under the protocol's limits)"


def differences(expect: Expectation, decision: Decision) -> tuple[str, ...]:
    """How a decision differs from what a scenario expects, in clinical words."""
    found: list[str] = []

    def grade_words(status: str, grade: int | None, possible: tuple[int, ...]) -> str:
        if status == "graded":
            return f"grade {grade}"
        if status == "not_applicable":
            return "no CRS grade (not applicable)"
        return "an undetermined grade (possible " + ", ".join(map(str, possible)) + ")"

    outcome = grade_words(decision.grade_status, decision.crs_grade, decision.possible_grades)
    if expect.grade is not None and (decision.grade_status != "graded" or decision.crs_grade != expect.grade):
        found.append(f"expected grade {expect.grade}, got {outcome}")
    elif expect.grade_status is not None and decision.grade_status != expect.grade_status:
        found.append(f"expected {expect.grade_status.replace('_', ' ')}, got {outcome}")
    if expect.possible_grades is not None and decision.possible_grades != tuple(sorted(expect.possible_grades)):
        found.append("expected possible grades " + ", ".join(map(str, sorted(expect.possible_grades)))
                     + f", got {outcome}")
    pending_names = {p.name for p in decision.pending}
    for name in expect.pending:
        if name not in pending_names:
            found.append(f"expected {name} to be pending (waiting for unknown data), {_what_happened(decision, name)}")
    for strength, wanted in (("recommend", expect.recommended), ("consider", expect.considered)):
        for action in wanted:
            if action not in decision.actions(strength):
                found.append(f"expected {action} to be {_strength(strength)}, {_what_happened(decision, action)}")
    for action in expect.absent:
        if action in decision.actions():
            found.append(f"expected {action} to be neither recommended nor considered, "
                         f"{_what_happened(decision, action)}")
    for withheld in expect.withheld:
        got = [w.next_eligible_at for w in decision.withheld if w.action == withheld.action]
        if withheld.next_eligible_at in got:
            continue
        wanted_text = f"expected {withheld.action} withheld {_until(withheld.next_eligible_at)}"
        if got:
            found.append(f"{wanted_text}, got withheld {' and '.join(_until(t) for t in got)}")
        else:
            found.append(f"{wanted_text}, {_what_happened(decision, withheld.action)}")
    raised = {a.id: a for a in decision.alerts}
    for alert in expect.alerts:
        if alert not in raised:
            found.append(f"expected the alert {alert}, it was not raised")
    for alert in expect.alerts_absent:
        if alert in raised:
            found.append(f"expected no alert {alert}, it was raised ({raised[alert].rule})")
    for dose in expect.doses:
        amounts = [r.dose.amount_mg for r in decision.recommendations if r.action == dose.action and r.dose]
        if dose.amount_mg in amounts:
            continue
        wanted_text = f"expected {dose.action} {_mg(dose.amount_mg)}"
        if amounts:
            found.append(f"{wanted_text}, got {' and '.join(_mg(a) for a in amounts)}")
        else:
            found.append(f"{wanted_text}, {_what_happened(decision, dose.action)}")
    return tuple(found)


def fired_rules(decision: Decision, protocol: Protocol) -> frozenset[str]:
    """The rule ids of the pack a decision shows took effect (see the module's documentation)."""
    known = set(protocol.rule_ids())
    fired: set[str] = set()

    def take(rule_id: str) -> None:
        if rule_id in known:
            fired.add(rule_id)

    def dose_rule(rule_id: str) -> None:
        rule = next((r for r in protocol.action_rules if r.rule_id == rule_id), None)
        drug = protocol.drug(rule.dose.drug) if rule is not None and rule.dose is not None else None
        if drug is not None:
            fired.add(drug.rule_id)

    for entry in decision.trace:
        take(entry.rule)
    for recommendation in decision.recommendations:
        take(recommendation.rule)
        if recommendation.dose is not None:
            dose_rule(recommendation.rule)
    for withheld in decision.withheld:
        take(withheld.rule)
        dose_rule(withheld.rule)
    for alert in decision.alerts:
        take(alert.rule)
    grades = [g.grade for g in protocol.grades]
    if grades and decision.crs_grade is not None and decision.crs_grade > min(grades):
        fired.add(protocol.definition_id)
    return frozenset(fired & known)


def checked_rules(expect: Expectation, decision: Decision, protocol: Protocol) -> frozenset[str]:
    """The rule ids whose outcome ``expect`` checks in ``decision`` (see the module's documentation)."""
    checked: set[str] = set()
    proposed = {r.rule: r for r in decision.recommendations}
    withheld = {w.rule for w in decision.withheld}
    pending = {p.rule for p in decision.pending}
    raised = {a.rule for a in decision.alerts}
    dosed = {d.action for d in expect.doses}
    withheld_expected = {w.action for w in expect.withheld}
    for rule in protocol.action_rules:
        rule_id, action = rule.rule_id, rule.action
        strength_list = expect.recommended if rule.strength == "recommend" else expect.considered
        outcome_checked = (
            (rule_id in proposed and (action in strength_list or action in dosed))  # proposed, as expected
            or (rule_id in withheld and action in withheld_expected)
            or (rule_id in pending and action in expect.pending)
            or (rule_id not in proposed and action in expect.absent)
        )
        if outcome_checked:
            checked.add(rule_id)
        if rule.dose is not None and (action in dosed and rule_id in proposed
                                      or action in withheld_expected and rule_id in withheld):
            drug = protocol.drug(rule.dose.drug)
            if drug is not None:
                checked.add(drug.rule_id)
    for alert in protocol.alerts:
        if (alert.id in expect.alerts and alert.rule_id in raised
                or alert.id in expect.alerts_absent and alert.rule_id not in raised
                or alert.id in expect.pending and alert.rule_id in pending):
            checked.add(alert.rule_id)
    grade_checked = expect.grade is not None or expect.grade_status is not None or expect.possible_grades is not None
    expected_grades = {expect.grade} if expect.grade is not None else set(expect.possible_grades or ())
    checked.update(g.rule_id for g in protocol.grades if g.grade in expected_grades)
    if grade_checked:
        fired = fired_rules(decision, protocol)
        checked.update(f.rule_id for f in protocol.findings if f.rule_id in fired)
        lowest = min((g.grade for g in protocol.grades), default=0)
        if expect.grade_status == "not_applicable" or (expect.grade is not None and expect.grade > lowest):
            checked.add(protocol.definition_id)
    return frozenset(checked)
