"""The third stage of ``crs-rules diff``: what a decision does for a patient, and how two differ.

An :class:`Outcome` keeps what a decision does (grade, actions and doses, withheld actions,
alerts) and nothing else; :func:`outcome_differences` names each difference by kind
(:data:`DIFFERENCE_KINDS`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .decision import Decision, Dose, iso

__all__ = ["DIFFERENCE_KINDS", "GRADE_CHANGED", "ACTION_ADDED", "ACTION_REMOVED", "DOSE_CHANGED", "WITHHELD_CHANGED",
           "ALERT_CHANGED", "Outcome", "outcome_differences", "dose_pairs"]

GRADE_CHANGED = "grade changed"
ACTION_ADDED = "action added"
ACTION_REMOVED = "action removed"
DOSE_CHANGED = "dose changed"
WITHHELD_CHANGED = "withheld changed"
ALERT_CHANGED = "alert changed"

#: The kinds of difference between two decisions for one patient, in report order.
DIFFERENCE_KINDS = (GRADE_CHANGED, ACTION_ADDED, ACTION_REMOVED, DOSE_CHANGED, WITHHELD_CHANGED, ALERT_CHANGED)



def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"



@dataclass(frozen=True)
class Outcome:
    """What a decision does for a patient, and nothing else (no texts, citations or trace).

    ``recommendations``: (action, strength, rule, dose without its calculation text);
    ``withheld``: (action, strength, rule, limits, next eligible time or None, reason);
    ``alerts``: (id, severity, text).
    """

    grade: str
    """``0``-``4``, ``not applicable`` or ``one of 0, 4`` (indeterminate)."""
    recommendations: tuple[tuple[str, str, str, Dose | None], ...]
    withheld: tuple[tuple[str, str, str, tuple[str, ...], str | None, str], ...]
    alerts: tuple[tuple[str, str, str], ...]

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        if decision.grade_status == "graded":
            grade = str(decision.crs_grade)
        elif decision.grade_status == "not_applicable":
            grade = "not applicable"
        else:
            grade = "one of " + ", ".join(str(g) for g in decision.possible_grades)
        return cls(
            grade,
            tuple((r.action, r.strength, r.rule, replace(r.dose, calculation="") if r.dose else None)
                  for r in decision.recommendations),
            tuple((w.action, w.strength, w.rule, w.limits, iso(w.next_eligible_at) if w.next_eligible_at else None,
                   w.reason) for w in decision.withheld),
            tuple((a.id, a.severity, a.text) for a in decision.alerts),
        )

    def summary(self) -> str:
        """The outcome in one line: grade; recommended; considered; withheld; alerts."""
        def action(item: tuple[str, str, str, Dose | None]) -> str:
            return item[3].describe() if item[3] is not None else item[0]

        parts = [f"grade {self.grade}"]
        for strength in ("recommend", "consider"):
            chosen = [action(r) for r in self.recommendations if r[1] == strength]
            if chosen:
                parts.append(f"{strength} " + ", ".join(chosen))
        if self.withheld:
            parts.append("withheld " + ", ".join(
                f"{w[0]} ({', '.join(w[3])}; " + (f"eligible again at {w[4]})" if w[4] else "not again)")
                for w in self.withheld))
        parts.append("alerts " + ", ".join(f"{a[0]} ({a[1]})" for a in self.alerts) if self.alerts else "no alerts")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "crs_grade": self.grade,
            "recommendations": [{"action": a, "strength": s, "rule": r,
                                 "dose": d.describe() if d else None, "amount_mg": d.amount_mg if d else None}
                                for a, s, r, d in self.recommendations],
            "withheld": [{"action": a, "strength": s, "rule": r, "limits": list(limits), "next_eligible_at": when,
                          "reason": reason} for a, s, r, limits, when, reason in self.withheld],
            "alerts": [{"id": i, "severity": severity} for i, severity, _ in self.alerts],
        }


def _dose_change(old: Dose | None, new: Dose | None) -> str:
    if (old is not None and new is not None and old.amount_mg is not None and new.amount_mg is not None
            and replace(old, amount_mg=new.amount_mg) == new):
        return f"{old.drug} {_number(old.amount_mg)} mg -> {_number(new.amount_mg)} mg"
    return f"{old.describe() if old else 'no dose'} -> {new.describe() if new else 'no dose'}"


def _paired(before: list[Dose | None], after: list[Dose | None]) -> list[tuple[Dose | None, Dose | None]]:
    olds = [d for d in before if d not in after] or [None]
    news = [d for d in after if d not in before] or [None]
    return list(zip(olds, news))


def _doses(outcome: Outcome) -> dict[tuple[str, str], list[Dose | None]]:
    """The doses of an outcome's proposed actions, by (action, strength)."""
    proposed: dict[tuple[str, str], list[Dose | None]] = {}
    for action, strength, _, dose in outcome.recommendations:
        proposed.setdefault((action, strength), []).append(dose)
    return proposed


def dose_pairs(old: Outcome, new: Outcome) -> list[tuple[Dose | None, Dose | None]]:
    """The doses that differ between two outcomes of one patient, as (old, new) pairs of the same
    proposed action (a dose counted as :data:`DOSE_CHANGED` by :func:`outcome_differences`)."""
    before, after = _doses(old), _doses(new)
    return [pair for key in before if key in after and before[key] != after[key]
            for pair in _paired(before[key], after[key])]


def outcome_differences(old: Outcome, new: Outcome) -> list[tuple[str, str]]:
    """How one patient's outcome differs, as (kind, change) pairs; empty when they are the same.

    Actions are matched by (action, strength), not by rule, so a patient whose grade changes keeps
    "recommend tocilizumab" when both grades recommend it (its dose is then compared).
    """
    found: list[tuple[str, str]] = []
    if old.grade != new.grade:
        found.append((GRADE_CHANGED, f"grade {old.grade} -> {new.grade}"))

    before, after = _doses(old), _doses(new)
    for key in after:
        if key not in before:
            found.append((ACTION_ADDED, f"{key[1]} {key[0]}"))
    for key in before:
        if key not in after:
            found.append((ACTION_REMOVED, f"{key[1]} {key[0]}"))
    for key in before:
        if key in after and before[key] != after[key]:
            for old_dose, new_dose in _paired(before[key], after[key]):
                found.append((DOSE_CHANGED, _dose_change(old_dose, new_dose)))

    def withheld(outcome: Outcome) -> dict[str, tuple[tuple[str, ...], str | None, str]]:
        return {w[0] if w[1] == "recommend" else f"{w[0]} ({w[1]})": (w[3], w[4], w[5]) for w in outcome.withheld}

    held_before, held_after = withheld(old), withheld(new)
    for action, (limits, when, reason) in held_after.items():
        if action not in held_before:
            found.append((WITHHELD_CHANGED, f"{action} now withheld ({', '.join(limits)})"))
            continue
        old_limits, old_when, old_reason = held_before[action]
        if old_limits != limits:
            found.append((WITHHELD_CHANGED, f"{action} withheld for {', '.join(old_limits)} -> {', '.join(limits)}"))
        elif old_when != when:
            if old_when is None or when is None:
                found.append((WITHHELD_CHANGED, f"{action} eligible again: {'at a time' if old_when else 'never'} -> "
                                                f"{'at a time' if when else 'never'}"))
            else:
                shift = (datetime.fromisoformat(when.replace("Z", "+00:00"))
                         - datetime.fromisoformat(old_when.replace("Z", "+00:00"))).total_seconds() / 3600
                found.append((WITHHELD_CHANGED, f"{action} eligible again {shift:+g} h"))
        elif old_reason != reason:
            found.append((WITHHELD_CHANGED, f"{action} withheld, reason worded differently"))
    for action, (limits, _, _) in held_before.items():
        if action not in held_after:
            found.append((WITHHELD_CHANGED, f"{action} no longer withheld (was {', '.join(limits)})"))

    alerts_before = {a[0]: a for a in old.alerts}
    alerts_after = {a[0]: a for a in new.alerts}
    for alert, (_, severity, text) in alerts_after.items():
        if alert not in alerts_before:
            found.append((ALERT_CHANGED, f"alert {alert} now raised ({severity})"))
        elif alerts_before[alert][1] != severity:
            found.append((ALERT_CHANGED, f"alert {alert} severity {alerts_before[alert][1]} -> {severity}"))
        elif alerts_before[alert][2] != text:
            found.append((ALERT_CHANGED, f"alert {alert} text changed"))
    for alert in alerts_before:
        if alert not in alerts_after:
            found.append((ALERT_CHANGED, f"alert {alert} no longer raised"))
    return found
