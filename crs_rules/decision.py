"""The Decision: what the protocol says for one patient at one moment, and its renderings.

A decision is frozen. ``to_dict()`` gives the JSON form documented by
``schemas/decision.schema.json``; ``render_text()`` gives the form for people: the grade and its
basis, critical alerts first, each recommendation with its dose and source, withheld actions with
the time they become eligible again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

GradeStatus = Literal["graded", "indeterminate", "not_applicable"]

__all__ = [
    "ProtocolRef",
    "TraceEntry",
    "Citation",
    "Dose",
    "Recommendation",
    "Withheld",
    "Alert",
    "Pending",
    "GradeStatus",
    "Decision",
    "iso",
]

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")



class TraceEntry(str):
    """One step of a decision's trace: the text shown (``dosing.tocilizumab.max_doses_in_window@
    grade2_up.tocilizumab``) and, as a value, the pack rule it is the effect of (``rule``), so no
    reader has to take the text apart. It is a ``str``: the trace reads and renders as before.

    Read-only, like the frozen dataclasses of the decision: the compiled pack hands the same entry
    to every decision that draws the conclusion, so no decision may change it.
    """

    rule: str

    def __new__(cls, text: str, rule: str) -> TraceEntry:
        entry = super().__new__(cls, text)
        object.__setattr__(entry, "rule", rule)
        return entry

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a trace entry is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a trace entry is read-only: cannot delete {name!r}")

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # pickled with its rule
        return (str(self), self.rule)


@dataclass(frozen=True)
class ProtocolRef:
    """The exact protocol that produced a decision."""

    id: str
    version: str
    digest: str
    status: str = "active"
    """``active``, or ``draft`` / ``retired``: not for clinical use (evaluated only on request)."""


@dataclass(frozen=True)
class Citation:
    id: str
    seed_number: int | None
    """None for a source the seed protocol does not cite (shown by its id)."""
    title: str


@dataclass(frozen=True)
class Dose:
    drug: str
    amount_mg: int | float | None
    """None when the dose is proposed without an amount (a child's fixed adult dose; a taper)."""
    route: str
    regimen: str
    interval_h: float | None
    interval_up_to_h: float | None
    times_daily: int | None
    for_days: float | None
    then: str | None
    calculation: str
    repeat: str | None = None
    """For a drug repeated only without improvement, when and how often it may be repeated."""
    now: str | None = None
    """What is due now instead of a dose of the regimen (taper, once the regimen's days are over)."""

    def describe(self) -> str:
        if self.now is not None:
            return f"{self.drug} {self.route}: {self.now} now, no amount ({self.calculation})"
        amount = f"{_number(self.amount_mg)} mg " if self.amount_mg is not None else "(amount by the pediatric protocol) "
        text = f"{self.drug} {amount}{self.route}"
        if self.repeat is not None:
            return f"{text} once; {self.repeat}"
        if self.times_daily is not None:
            text += " twice daily" if self.times_daily == 2 else f" {self.times_daily} times daily"
        elif self.interval_h is not None:
            upto = f"-{_number(self.interval_up_to_h)}" if self.interval_up_to_h is not None else ""
            text += f" every {_number(self.interval_h)}{upto} h"
        if self.for_days is not None:
            text += f" for {_number(self.for_days)} days"
        if self.then is not None:
            text += f", then {self.then}"
        return text


@dataclass(frozen=True)
class Recommendation:
    rule: str
    action: str
    strength: str
    dose: Dose | None
    text: str
    citations: tuple[Citation, ...]


@dataclass(frozen=True)
class Withheld:
    rule: str
    action: str
    strength: str
    reason: str
    limits: tuple[str, ...]
    next_eligible_at: datetime | None
    citations: tuple[Citation, ...]


@dataclass(frozen=True)
class Alert:
    id: str
    severity: str
    rule: str
    text: str
    citations: tuple[Citation, ...]


@dataclass(frozen=True)
class Pending:
    """A rule that depends on unknown data: neither proposed nor ruled out, with the inputs
    (paths of the patient state) it waits for."""

    rule: str
    kind: str
    """``action`` or ``alert``."""
    name: str
    """The action id or alert id."""
    strength: str | None
    waits_for: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Decision:
    """The protocol's answer for one patient at one moment.

    ``grade_status`` is ``graded`` (``crs_grade`` is 0-4), ``indeterminate`` (an unknown input
    could change the grade: ``crs_grade`` is None and ``possible_grades`` lists every grade some
    value of the unknowns would give) or ``not_applicable`` (CRS grading does not apply to this
    patient). ``missing`` lists the input paths whose absence kept something open; ``pending``,
    the rules waiting for them. A finding whose value is not determined is None.
    """

    protocol: ProtocolRef
    assessed_at: datetime
    crs_grade: int | None
    grade_basis: str
    findings: tuple[tuple[str, bool | int | None], ...]
    recommendations: tuple[Recommendation, ...]
    withheld: tuple[Withheld, ...]
    alerts: tuple[Alert, ...]
    trace: tuple[TraceEntry, ...]
    grade_status: GradeStatus = "graded"
    possible_grades: tuple[int, ...] = ()
    missing: tuple[str, ...] = ()
    pending: tuple[Pending, ...] = ()

    def actions(self, strength: str | None = None) -> tuple[str, ...]:
        """Action ids recommended or considered (or of one strength), in decision order."""
        return tuple(dict.fromkeys(r.action for r in self.recommendations if strength in (None, r.strength)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see schemas/decision.schema.json)."""
        return {
            "protocol": {"id": self.protocol.id, "version": self.protocol.version, "digest": self.protocol.digest,
                         "status": self.protocol.status},
            "assessed_at": iso(self.assessed_at),
            "grade_status": self.grade_status,
            "crs_grade": self.crs_grade,
            "possible_grades": list(self.possible_grades),
            "grade_basis": self.grade_basis,
            "missing": list(self.missing),
            "findings": {name: value for name, value in self.findings},
            "recommendations": [
                {
                    "rule": r.rule,
                    "action": r.action,
                    "strength": r.strength,
                    "dose": _dose_dict(r.dose),
                    "text": r.text,
                    "citations": [_citation_dict(c) for c in r.citations],
                }
                for r in self.recommendations
            ],
            "withheld": [
                {
                    "rule": w.rule,
                    "action": w.action,
                    "strength": w.strength,
                    "reason": w.reason,
                    "limits": list(w.limits),
                    "next_eligible_at": iso(w.next_eligible_at) if w.next_eligible_at else None,
                    "citations": [_citation_dict(c) for c in w.citations],
                }
                for w in self.withheld
            ],
            "alerts": [
                {
                    "id": a.id,
                    "severity": a.severity,
                    "rule": a.rule,
                    "text": a.text,
                    "citations": [_citation_dict(c) for c in a.citations],
                }
                for a in self.alerts
            ],
            "pending": [
                {
                    "rule": p.rule,
                    "kind": p.kind,
                    "name": p.name,
                    "strength": p.strength,
                    "waits_for": list(p.waits_for),
                    "reason": p.reason,
                }
                for p in self.pending
            ],
            "trace": list(self.trace),
        }

    def render_text(self) -> str:
        """The decision for people: grade and basis, critical alerts first, each recommendation
        with its dose and source, withheld actions with the time they become eligible again."""
        if self.grade_status == "graded":
            headline = f"CRS grade {self.crs_grade}"
        elif self.grade_status == "not_applicable":
            headline = "CRS grade: not applicable"
        else:
            headline = ("CRS grade not determined: possible grades "
                        + ", ".join(str(g) for g in self.possible_grades))
        lines = [headline, f"  {self.grade_basis}"]
        if self.protocol.status != "active":
            lines[:0] = [f"{self.protocol.status.upper()} protocol, not for clinical use "
                         f"({self.protocol.id} {self.protocol.version})", ""]
        if self.missing:
            lines.append(f"  Not recorded: {', '.join(self.missing)}")
        cited: dict[str, Citation] = {}

        def refs(citations: tuple[Citation, ...]) -> str:
            for citation in citations:
                cited.setdefault(citation.id, citation)
            return "".join(f"[{_label(c)}]" for c in citations)

        alerts = sorted(self.alerts, key=lambda a: SEVERITY_ORDER.get(a.severity, 9))
        if alerts:
            lines += ["", "Alerts:"]
            lines += [f"  {a.severity.upper():8} {a.text} {refs(a.citations)} ({a.rule})" for a in alerts]
        lines += ["", "Recommendations:" if self.recommendations else "Recommendations: none"]
        for r in self.recommendations:
            head = f"  {r.strength.upper():9} {r.action}"
            if r.dose:
                calculation = ("" if r.dose.now is not None or r.dose.calculation == f"{_number(r.dose.amount_mg)} mg"
                               else f" ({r.dose.calculation})")
                head += f": {r.dose.describe()}{calculation}"
            lines += [head, f"            {r.text} {refs(r.citations)} ({r.rule})"]
        if self.withheld:
            lines += ["", "Withheld:"]
            for w in self.withheld:
                when = (f"eligible again at {iso(w.next_eligible_at)}" if w.next_eligible_at
                        else "not eligible again under this protocol's limits")
                lines.append(f"  {w.action} ({w.rule}): {w.reason}; {when}. {refs(w.citations)}")
        if self.pending:
            lines += ["", "Pending (waiting for data that is not recorded):"]
            for p in self.pending:
                label = f"{p.strength} {p.name}" if p.strength else f"alert {p.name}"
                lines.append(f"  {label} ({p.rule}): waits for {', '.join(p.waits_for)}")
        if cited:
            lines += ["", "Sources:"]
            lines += [f"  [{_label(c)}] {c.title}"
                      for c in sorted(cited.values(), key=lambda c: (c.seed_number is None, c.seed_number or 0, c.id))]
        status = f" ({self.protocol.status.upper()}, not for clinical use)" if self.protocol.status != "active" else ""
        lines += ["", f"Protocol {self.protocol.id} {self.protocol.version}{status} {self.protocol.digest}; "
                      f"assessed at {iso(self.assessed_at)}"]
        return "\n".join(lines)


def _label(citation: Citation) -> str:
    return str(citation.seed_number) if citation.seed_number is not None else citation.id


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _citation_dict(citation: Citation) -> dict[str, Any]:
    return {"id": citation.id, "seed_number": citation.seed_number, "title": citation.title}


def _dose_dict(dose: Dose | None) -> dict[str, Any] | None:
    if dose is None:
        return None
    return {
        "drug": dose.drug,
        "amount_mg": dose.amount_mg,
        "route": dose.route,
        "regimen": dose.regimen,
        "interval_h": dose.interval_h,
        "interval_up_to_h": dose.interval_up_to_h,
        "times_daily": dose.times_daily,
        "for_days": dose.for_days,
        "then": dose.then,
        "calculation": dose.calculation,
        "repeat": dose.repeat,
        "now": dose.now,
    }
