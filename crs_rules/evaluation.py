"""Evaluation: one patient's state at one moment in, one :class:`Decision` out.

The input is checked first (bad input never reaches the rules); the compiled pack runs by forward
chaining; then every proposed dose goes through the independent dose check, and the decision is
assembled from the facts the engine holds. Anything inconsistent in the engine's result (no grade,
two grades, a finding missing) raises :class:`~crs_rules.errors.EngineError`: never a partial
decision.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any, Mapping

from .compilation import CompiledProtocol, compile_protocol
from .engine import renew_after_fork
from .decision import Alert, Citation, Decision, Dose, ProtocolRef, Recommendation, Withheld, iso
from .dosing import check_dose
from .errors import EngineError, InvalidInputError, Problem
from .model import GRADE_FINDING, Protocol
from .pack import load_protocol
from .patient import PatientState, parse_patient

__all__ = ["evaluate", "compiled"]

_lock = threading.Lock()
renew_after_fork(sys.modules[__name__], _lock=threading.Lock)  # a forked child starts with it free
_default: list[Protocol] = []
_compiled: dict[int, CompiledProtocol] = {}


def _default_protocol() -> Protocol:
    with _lock:
        if not _default:
            _default.append(load_protocol())
        return _default[0]


def compiled(protocol: Protocol) -> CompiledProtocol:
    """The compiled form of a protocol, compiled once per protocol object in this process."""
    with _lock:
        found = _compiled.get(id(protocol))
        if found is None or found.protocol is not protocol:
            found = compile_protocol(protocol)
            _compiled[id(protocol)] = found
        return found


def evaluate(state: PatientState | Mapping[str, Any], protocol: Protocol | None = None) -> Decision:
    """Evaluate one patient's state (a mapping following ``schemas/patient.schema.json``, or a
    parsed :class:`PatientState`) against a protocol (the shipped pack by default).

    Raises :class:`~crs_rules.errors.InvalidInputError` naming every bad field, or
    :class:`~crs_rules.errors.EngineError` if the engine misbehaves; never returns a partial decision.
    """
    patient = state if isinstance(state, PatientState) else parse_patient(state)
    protocol = protocol or _default_protocol()
    program = compiled(protocol)
    result, trace = program.run(patient)
    return _assemble(protocol, patient, result.facts, trace)


def _beyond_the_calendar(patient: PatientState) -> InvalidInputError:
    # The time a dose becomes eligible again would be after 9999-12-31: refuse the input rather
    # than give a decision without it (or crash).
    return InvalidInputError([Problem(
        "<input>", 0, 0, "assessed_at",
        f"is {iso(patient.assessed_at)}, so near the end of the calendar that the time a dose "
        "becomes eligible again cannot be written",
        "an assessment time at least a few days before 9999-12-31",
        path=("assessed_at",), check="input.date-time-range",
    )])


def _citations(protocol: Protocol, ids: tuple[str, ...]) -> tuple[Citation, ...]:
    references = []
    for reference_id in ids:
        reference = protocol.reference(reference_id)
        if reference is None:  # validated packs resolve every citation
            raise EngineError(f"citation {reference_id} does not resolve")
        references.append(Citation(reference.id, reference.seed_number, reference.title))
    return tuple(references)


def _assemble(protocol: Protocol, patient: PatientState, facts: tuple[Mapping[str, Any], ...],
              trace: tuple[str, ...]) -> Decision:
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for fact in facts:
        by_kind.setdefault(str(fact.get("t")), []).append(fact)

    findings = by_kind.get("finding", [])
    counts = Counter(f["name"] for f in findings)
    expected = {f.id for f in protocol.findings} | {GRADE_FINDING}
    wrong = {name for name in expected if counts[name] != 1} | (set(counts) - expected)
    if wrong:
        raise EngineError("the rules did not set each finding exactly once: "
                          + ", ".join(f"{n} set {counts[n]} time(s)" for n in sorted(wrong)))
    values = {f["name"]: f["value"] for f in findings}
    grade = int(values[GRADE_FINDING])
    grade_rule = next(f["rule"] for f in findings if f["name"] == GRADE_FINDING)

    rule_order = {r.rule_id: i for i, r in enumerate(protocol.action_rules)}
    rules = {r.rule_id: r for r in protocol.action_rules}
    doses = {d["rule"]: d for d in by_kind.get("dose", [])}
    engine_withheld: dict[str, list[str]] = {}
    for w in by_kind.get("withheld", []):
        engine_withheld.setdefault(str(w["rule"]), []).append(str(w["limit"]))

    recommendations: list[Recommendation] = []
    withheld: list[Withheld] = []
    for action in sorted(by_kind.get("action", []), key=lambda a: rule_order[a["rule"]]):
        rule = rules[action["rule"]]
        catalogue = protocol.action(rule.action)
        assert catalogue is not None
        citations = rule.citations
        dose = None
        if rule.dose is not None:
            drug = protocol.drug(rule.dose.drug)
            regimen = drug.regimen(rule.dose.regimen) if drug else None
            proposal = doses.get(rule.rule_id)
            if drug is None or regimen is None or proposal is None:
                raise EngineError(f"rule {rule.rule_id} proposed {rule.action} without a dose")
            citations = tuple(dict.fromkeys([*rule.citations, *drug.citations]))
            try:
                verdict = check_dose(drug, regimen, proposal["amount_mg"], patient)
            except OverflowError:
                raise _beyond_the_calendar(patient) from None
            limits = tuple(dict.fromkeys([*engine_withheld.get(rule.rule_id, []), *verdict.limits]))
            if limits:
                # Withheld if either the rules or the independent check found a limit reached.
                reasons = list(verdict.reasons) or [f"limit reached: {', '.join(limits)}"]
                withheld.append(Withheld(rule.rule_id, rule.action, rule.strength, "; ".join(reasons), limits,
                                         verdict.next_eligible_at, _citations(protocol, citations)))
                continue
            dose = Dose(
                drug=drug.id, amount_mg=proposal["amount_mg"], route=drug.route, regimen=regimen.id,
                interval_h=regimen.every_h if regimen.every_h is not None else drug.limits.min_interval_h,
                interval_up_to_h=regimen.up_to_every_h, times_daily=regimen.times_daily,
                for_days=regimen.for_days, then=regimen.then, calculation=str(proposal["how"]),
            )
        text = " ".join(rule.description.split())
        recommendations.append(Recommendation(rule.rule_id, rule.action, rule.strength, dose,
                                              text, _citations(protocol, citations)))

    alert_order = {a.id: i for i, a in enumerate(protocol.alerts)}
    alerts_by_id = {a.id: a for a in protocol.alerts}
    alerts = tuple(
        Alert(a["alert"], alerts_by_id[a["alert"]].severity, a["rule"], " ".join(alerts_by_id[a["alert"]].text.split()),
              _citations(protocol, alerts_by_id[a["alert"]].citations))
        for a in sorted(by_kind.get("alert", []), key=lambda a: alert_order[a["alert"]])
    )
    ordered_findings = tuple((f.id, values[f.id]) for f in protocol.findings) + ((GRADE_FINDING, grade),)
    return Decision(
        protocol=ProtocolRef(protocol.id, protocol.version, protocol.digest),
        assessed_at=patient.assessed_at,
        crs_grade=grade,
        grade_basis=_basis(protocol, grade_rule, values, patient),
        findings=ordered_findings,
        recommendations=tuple(recommendations),
        withheld=tuple(withheld),
        alerts=alerts,
        trace=trace,
    )


def _basis(protocol: Protocol, grade_rule: str, values: Mapping[str, Any], patient: PatientState) -> str:
    """Why this grade, in words: the grade criterion and the signs behind it."""
    criterion = next(g for g in protocol.grades if g.rule_id == grade_rule)
    signs = []
    for finding in protocol.findings:
        text = finding.text_for(values[finding.id])
        if text:
            signs.append(text)
    observed = []
    if patient.temperature_c is not None:
        observed.append(f"temperature {patient.temperature_c:.1f} °C")
    else:
        observed.append("no temperature recorded")
    if patient.vasopressors:
        observed.append("vasopressors: " + ", ".join(patient.vasopressors))
    if patient.oxygen_device is not None:
        flow = f" at {patient.oxygen_flow_l_min:g} L/min" if patient.oxygen_flow_l_min is not None else ""
        observed.append(f"oxygen: {patient.oxygen_device}{flow}")
    text = " ".join(criterion.text.split())
    # The sign(s) that set the grade: levelled findings whose value is the grade itself.
    setting = [f.text_for(values[f.id]) for f in protocol.findings
               if not f.is_boolean and values[f.id] == criterion.grade and f.text_for(values[f.id])]
    set_by = f" Set by: {'; '.join(t for t in setting if t)}." if setting and criterion.grade > 0 else ""
    return f"{text}{set_by} Signs: {'; '.join(signs)} ({', '.join(observed)})."
