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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .compilation import HISTORY_UNKNOWN, NOT_APPLICABLE, CompiledProtocol, FactKind, compile_protocol, finding_domains
from .conditions import compare, comparisons
from .decision import (
    Alert,
    Citation,
    Decision,
    Dose,
    GradeStatus,
    Pending,
    ProtocolRef,
    Recommendation,
    TraceEntry,
    Withheld,
    iso,
)
from .dosing import check_dose
from .engine import renew_after_fork
from .errors import EngineError, InvalidInputError, InvalidPackError, Problem
from .facts import doses_above_limit, duplicate_records, flat_facts, input_paths
from .grade_basis import grade_basis
from .model import GRADE_FINDING, ActionRule, AlertRule, AllOf, AnyOf, Condition, Drug, Not, Protocol, Regimen, Source
from .pack import load_protocol
from .patient import Medication, PatientState, accepted, parse_patient, state_input
from .vocabulary import normalise, unrecognised

__all__ = ["evaluate", "evaluate_many", "compiled"]

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


def evaluate(state: PatientState | Mapping[str, Any], protocol: Protocol | None = None, *,
             allow_draft: bool = False) -> Decision:
    """Evaluate one patient's state (a mapping following ``schemas/patient.schema.json``, or a
    :class:`PatientState`) against a protocol (the shipped pack by default).

    One door for input: a mapping is parsed, and a :class:`PatientState` not built by
    :func:`~crs_rules.patient.parse_patient` itself (one the caller built, or changed with
    ``dataclasses.replace``) is checked again as the input it stands for
    (:func:`~crs_rules.patient.state_input`); the rules only ever see a state the input contract
    accepted.

    A draft or retired protocol is not for clinical use: evaluating one needs ``allow_draft=True``
    (its decision then says so), else :class:`~crs_rules.errors.InvalidPackError` is raised.
    Raises :class:`~crs_rules.errors.InvalidInputError` naming every bad field, or
    :class:`~crs_rules.errors.EngineError` if the engine misbehaves; never returns a partial decision.
    """
    patient = _accept(state)  # bad input is reported before a protocol that is not active
    protocol = protocol or _default_protocol()
    if protocol.status != "active" and not allow_draft:
        raise _not_active(protocol)
    return _decide(patient, protocol, compiled(protocol))


def evaluate_many(states: Iterable[PatientState | Mapping[str, Any]], protocol: Protocol | None = None, *,
                  allow_draft: bool = False) -> Iterator[Decision]:
    """Evaluate many patients' states against one protocol: the decisions, one per state, in order.

    Each decision is exactly the one :func:`evaluate` gives for that state; what is done once per
    call instead of once per state is finding the protocol (the shipped pack by default), checking
    that it is active (``allow_draft`` as for :func:`evaluate`) and finding its compiled form. The
    states are read and the decisions given lazily, one at a time, so a stream of any length takes
    the memory of one decision. The protocol is checked at the first ``next()``.

    Raises, at the state concerned, what :func:`evaluate` raises for it
    (:class:`~crs_rules.errors.InvalidInputError`, :class:`~crs_rules.errors.EngineError`); the
    states before it have their decisions. To go on past bad input, catch the error per state
    (``crs-rules evaluate --ndjson`` reports it as a line and goes on).
    """
    protocol = protocol or _default_protocol()
    if protocol.status != "active" and not allow_draft:
        raise _not_active(protocol)
    program = compiled(protocol)
    for state in states:
        yield _decide(_accept(state), protocol, program)


def _accept(state: PatientState | Mapping[str, Any]) -> PatientState:
    """The one door: a state the input contract accepted (see :func:`evaluate`)."""
    if isinstance(state, PatientState):
        return state if accepted(state) else parse_patient(state_input(state))
    return parse_patient(state)


def _decide(patient: PatientState, protocol: Protocol, program: CompiledProtocol) -> Decision:
    written = patient
    patient = normalise(patient, protocol)  # every later stage sees the pack's drug ids
    known = flat_facts(patient, protocol)  # derived once: the observation and the explanations read it
    result, trace, failed = program.run(patient, known)
    return _assemble(protocol, patient, result.facts, trace, failed, written, known)


def _not_active(protocol: Protocol) -> InvalidPackError:
    status = protocol.status_source or Source(str(Path(protocol.path) / "manifest.yaml"), 0, 0)
    return InvalidPackError([Problem(
        status.file, status.line, status.column, protocol.id,
        f"the protocol is {protocol.status} (version {protocol.version}), not for clinical use",
        "expected an active (released) protocol; to try a draft or retired one, opt in with "
        "evaluate(..., allow_draft=True) or crs-rules evaluate --allow-draft",
        ("status",), "status-active",
    )])


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


@lru_cache(maxsize=4096)
def _citations(protocol: Protocol, ids: tuple[str, ...]) -> tuple[Citation, ...]:
    references = []
    for reference_id in ids:
        reference = protocol.reference(reference_id)
        if reference is None:  # validated packs resolve every citation
            raise EngineError(f"citation {reference_id} does not resolve")
        references.append(Citation(reference.id, reference.seed_number, reference.title))
    return tuple(references)


@lru_cache(maxsize=1024)
def _finding_conditions(protocol: Protocol, name: str) -> tuple[Condition, ...]:
    """The conditions that decide a finding's (or the grade's) value."""
    if name == GRADE_FINDING:
        conditions = [g.when for g in protocol.grades]
        if protocol.applies_when is not None:
            conditions.append(protocol.applies_when)
        return tuple(conditions)
    finding = protocol.finding(name)
    assert finding is not None, "validated packs name existing findings"
    return (finding.when,) if finding.when is not None else tuple(level.when for level in finding.levels)


@lru_cache(maxsize=1024)
def _action_conditions(protocol: Protocol, action: str) -> tuple[Condition, ...]:
    """The conditions of the rules proposing an action."""
    return tuple(r.when for r in protocol.action_rules if r.action == action)


#: A condition read for the explanation of a pending rule (see :class:`_Unknowns`): (True, False or
#: None for open, the inputs an open part waits for).
_Read = Callable[["_Unknowns", frozenset[str]], tuple[bool | None, tuple[str, ...]]]


def _reader(condition: Condition) -> _Read:
    """How :class:`_Unknowns` reads a condition, compiled once per pack: the tests on its kind and
    its fact's family are made here, not at each reading."""
    if isinstance(condition, Not):
        inner = _reader(condition.condition)

        def negated(unknowns: _Unknowns, seen: frozenset[str]) -> tuple[bool | None, tuple[str, ...]]:
            value, waiting = inner(unknowns, seen)
            return (None if value is None else not value), waiting

        return negated
    if isinstance(condition, (AllOf, AnyOf)):
        decisive = isinstance(condition, AnyOf)  # the value that settles it: True for any, False for all
        parts = tuple(_reader(part) for part in condition.conditions)

        def combined(unknowns: _Unknowns, seen: frozenset[str]) -> tuple[bool | None, tuple[str, ...]]:
            waiting_all: dict[str, None] = {}
            open_part = False
            for part in parts:
                value, waiting = part(unknowns, seen)
                if value is decisive:
                    return decisive, ()
                if value is None:
                    open_part = True
                    waiting_all.update(dict.fromkeys(waiting))
            return (None, tuple(waiting_all)) if open_part else (not decisive, ())

        return combined
    comparison, family, name, fact = condition, condition.family, condition.name, condition.fact
    if family == "finding":
        def finding(unknowns: _Unknowns, seen: frozenset[str]) -> tuple[bool | None, tuple[str, ...]]:
            passing = [compare(comparison, v) if not isinstance(v, str) else False for v in unknowns.possible[name]]
            if all(passing) or not any(passing):
                return all(passing), ()
            return None, unknowns.waiting_for("finding", name, seen)

        return finding
    if family == "action":
        def action(unknowns: _Unknowns, seen: frozenset[str]) -> tuple[bool | None, tuple[str, ...]]:
            if name in unknowns.proposed_actions:
                return True, ()
            if name not in unknowns.open_actions:
                return False, ()
            return None, unknowns.waiting_for("action", name, seen)

        return action

    def observed(unknowns: _Unknowns, seen: frozenset[str]) -> tuple[bool | None, tuple[str, ...]]:
        known = unknowns.known
        if fact in known:
            return compare(comparison, known[fact]), ()
        return None, input_paths(fact, unknowns.patient)

    return observed


class _Unknowns:
    """Which unknown inputs keep a condition open: the explanation of a pending rule (the decision
    itself comes from the chain). A part of a condition already decided by the data is not waited for."""

    def __init__(self, protocol: Protocol, patient: PatientState, possible: Mapping[str, tuple[Any, ...]],
                 proposed_actions: set[str], open_actions: set[str], known: Mapping[str, Any] | None = None) -> None:
        self.protocol, self.patient, self.possible = protocol, patient, possible
        self.proposed_actions, self.open_actions = proposed_actions, open_actions
        self.known = flat_facts(patient, protocol) if known is None else known
        self.tables = _tables(protocol)
        # What each finding or action waits for, once per evaluation: many conditions read the same
        # finding. An answer cut short by a cycle (``seen``) depends on the path and is not kept.
        self._waits_for: dict[tuple[str, str], tuple[str, ...]] = {}
        self._cut = False

    def of(self, readers: Sequence[_Read], seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The inputs the open ones of these conditions (:func:`_reader`) wait for."""
        paths: dict[str, None] = {}
        for read in readers:
            value, waiting = read(self, seen)
            if value is None:
                paths.update(dict.fromkeys(waiting))
        return tuple(paths)

    def waiting_for(self, family: str, name: str, seen: frozenset[str]) -> tuple[str, ...]:
        """The inputs what decides a finding's value (``family`` ``finding``) or an action's proposal
        (``action``) waits for."""
        if name in seen:
            self._cut = True
            return ()
        found = self._waits_for.get((family, name))
        if found is None:
            cut_before, self._cut = self._cut, False
            found = self.of(self.tables.readers(family, name), seen | {name})
            if not self._cut:
                self._waits_for[(family, name)] = found
            self._cut = self._cut or cut_before
        return found


def _repeat_text(drug: Drug) -> str | None:
    """When and how often a drug repeated only without improvement may be repeated, in words,
    from the pack's limits."""
    limits = drug.limits
    if not limits.repeat_only_if_not_improving or limits.min_interval_h is None:
        return None
    text = f"may repeat after at least {_plain(limits.min_interval_h)} h if no improvement"
    most = []
    if limits.max_doses_in_window is not None and limits.window_h is not None:
        most.append(f"{limits.max_doses_in_window} doses in {_plain(limits.window_h)} h")
    if limits.max_doses_per_course is not None:
        most.append(f"{limits.max_doses_per_course} in the course")
    return text + (f"; at most {' and '.join(most)}" if most else "")


def _plain(value: float) -> str:
    return f"{value:g}"


def _alert_detail(fact: str, protocol: Protocol, patient: PatientState, written: PatientState) -> str:
    """What an alert reading a record fact is about (the names, the records, the doses); empty for
    another fact."""
    def at(medication: Medication) -> str:
        amount = f" {_plain(medication.dose_mg)} mg" if medication.dose_mg is not None else ""
        return f"{medication.drug}{amount} at {iso(medication.given_at)}"

    if fact == "record.unrecognised_names":
        names = unrecognised(written, protocol)
        return "Not recognised: " + ", ".join(names) + "." if names else ""
    if fact == "record.duplicate_doses":
        return "Counted once: " + ", ".join(at(m) for m in duplicate_records(patient)) + "."
    if fact == "record.dose_above_limit":
        return "Recorded: " + ", ".join(dict.fromkeys(at(m) for m in doses_above_limit(patient, protocol))) + "."
    return ""


@lru_cache(maxsize=4096)
def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class _ActionRow:
    """One action rule of the pack and what a decision shows of it, derived once per pack."""

    rule: ActionRule
    rule_id: str
    catalogued: bool
    """Whether the pack's catalogue of actions has its action."""
    text: str
    """Its description on one line."""
    citations: tuple[str, ...]
    """Its citations; for a rule with a dose, the drug's after them."""
    drug: Drug | None
    """For a rule with a dose: its drug and regimen (None only for a pack that did not validate)."""
    regimen: Regimen | None
    interval_h: float | None
    repeat: str | None
    replaces: tuple[str, str] | None
    """(drug, regimen) this rule's regimen replaces when recommended (an escalation)."""
    reader: _Read
    """Its condition, read for the explanation when the rule is pending."""


@dataclass(frozen=True)
class _AlertRow:
    """One alert of the pack and what a decision shows of it, derived once per pack."""

    alert: AlertRule
    rule_id: str
    order: int
    text: str
    """Its text on one line."""
    detailed: tuple[str, ...]
    """The facts its condition reads, in order, that add a detail to the text (:func:`_alert_detail`)."""
    reader: _Read
    """Its condition, read for the explanation when the alert is pending."""


@dataclass(frozen=True)
class _Tables:
    """What a decision reads of a pack that no patient changes, derived once per protocol object."""

    protocol: Protocol
    ref: ProtocolRef
    domains: Mapping[str, tuple[Any, ...]]
    rule_order: Mapping[str, int]
    action_rows: tuple[_ActionRow, ...]
    """Every action rule, in the pack's order."""
    actions: Mapping[str, _ActionRow]
    """The same by rule id."""
    alert_rows: tuple[_AlertRow, ...]
    """Every alert, in the pack's order."""
    alerts: Mapping[str, _AlertRow]
    """The same by alert id."""
    rule_action: tuple[tuple[str, str], ...]
    """(rule id, action) of every action rule, in order."""
    dosed: tuple[tuple[str, tuple[str, str]], ...]
    """(rule id, (drug, regimen)) of every action rule with a dose, in order."""
    grade_rules: Mapping[int, str]
    """The rule of each grade (the first criterion of that grade)."""
    finding_ids: tuple[str, ...]
    _readers: dict[tuple[str, str], tuple[_Read, ...]] = field(default_factory=dict, compare=False)

    def readers(self, family: str, name: str) -> tuple[_Read, ...]:
        """The conditions that decide a finding's (or the grade's) value (``family`` ``finding``) or
        that propose an action (``action``), read for the explanation (derived at their first use)."""
        found = self._readers.get((family, name))
        if found is None:
            conditions = (_finding_conditions(self.protocol, name) if family == "finding"
                          else _action_conditions(self.protocol, name))
            found = self._readers[(family, name)] = tuple(_reader(c) for c in conditions)
        return found


#: The kinds of the engine's facts the decision reads (an enum member's value read once).
_EXCLUDED, _DOSE, _WITHHELD, _ACTION, _ALERT = (kind.value for kind in (
    FactKind.EXCLUDED, FactKind.DOSE, FactKind.WITHHELD, FactKind.ACTION, FactKind.ALERT))

#: The facts whose reading adds a detail to an alert's text (see :func:`_alert_detail`).
_DETAILED_FACTS = frozenset({"record.unrecognised_names", "record.duplicate_doses", "record.dose_above_limit"})


@lru_cache(maxsize=64)
def _tables(protocol: Protocol) -> _Tables:
    catalogue = {a.id for a in protocol.actions}
    action_rows: list[_ActionRow] = []
    dosed: list[tuple[str, tuple[str, str]]] = []
    for rule in protocol.action_rules:
        drug = regimen = None
        citations, interval_h, repeat, replaces = rule.citations, None, None, None
        if rule.dose is not None:
            dosed.append((rule.rule_id, (rule.dose.drug, rule.dose.regimen)))
            drug = protocol.drug(rule.dose.drug)
            regimen = drug.regimen(rule.dose.regimen) if drug else None
            if drug is not None and regimen is not None:
                citations = tuple(dict.fromkeys([*rule.citations, *drug.citations]))
                interval_h = regimen.every_h if regimen.every_h is not None else drug.limits.min_interval_h
                repeat = _repeat_text(drug)
                replaces = (drug.id, regimen.replaces) if regimen.replaces else None
        action_rows.append(_ActionRow(rule, rule.rule_id, rule.action in catalogue, _one_line(rule.description),
                                      citations, drug, regimen, interval_h, repeat, replaces, _reader(rule.when)))
    alert_rows = tuple(_AlertRow(alert, alert.rule_id, order, _one_line(alert.text),
                                 tuple(c.fact for c in comparisons(alert.when) if c.fact in _DETAILED_FACTS),
                                 _reader(alert.when))
                       for order, alert in enumerate(protocol.alerts))
    grade_rules: dict[int, str] = {}
    for criterion in protocol.grades:
        grade_rules.setdefault(criterion.grade, criterion.rule_id)
    return _Tables(
        protocol=protocol,
        ref=ProtocolRef(protocol.id, protocol.version, protocol.digest, protocol.status),
        domains=finding_domains(protocol),
        rule_order={r.rule_id: i for i, r in enumerate(protocol.action_rules)},
        action_rows=tuple(action_rows), actions={row.rule.rule_id: row for row in action_rows},
        alert_rows=alert_rows, alerts={row.alert.id: row for row in alert_rows},
        rule_action=tuple((r.rule_id, r.action) for r in protocol.action_rules),
        dosed=tuple(dosed), grade_rules=grade_rules,
        finding_ids=tuple(f.id for f in protocol.findings),
    )


def _possible_values(tables: _Tables, by_kind: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, tuple[Any, ...]]:
    """Every finding's (and the grade's) possible values: its values less those the chain excluded."""
    excluded: dict[str, set[tuple[type, Any]]] = {}
    for fact in by_kind.get(_EXCLUDED, ()):
        value, name = fact["value"], str(fact["name"])
        values = excluded.get(name)
        if values is None:
            values = excluded[name] = set()
        try:
            # With its type: a boolean finding's True is not a grade's 1.
            values.add((type(value), value))
        except TypeError:
            pass  # an unhashable value is no value of a finding
    possible: dict[str, tuple[Any, ...]] = {}
    for name, domain in tables.domains.items():
        gone = excluded.get(name)
        possible[name] = domain if not gone else tuple(v for v in domain if (type(v), v) not in gone)
    empty = sorted(name for name, values in possible.items() if not values)
    if empty:
        raise EngineError("the rules excluded every value of: " + ", ".join(empty))
    return possible


def _assemble(protocol: Protocol, patient: PatientState, facts: tuple[Mapping[str, Any], ...],
              trace: tuple[TraceEntry, ...], failed: frozenset[str] = frozenset(),
              written: PatientState | None = None, known: Mapping[str, Any] | None = None) -> Decision:
    tables = _tables(protocol)
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for fact in facts:
        kind = str(fact.get("t"))
        found = by_kind.get(kind)
        if found is None:
            by_kind[kind] = [fact]
        else:
            found.append(fact)

    possible = _possible_values(tables, by_kind)
    grades = possible[GRADE_FINDING]
    status: GradeStatus
    if grades == (NOT_APPLICABLE,):
        status, grade = "not_applicable", None
    elif len(grades) == 1:
        status, grade = "graded", int(grades[0])
    else:
        status, grade = "indeterminate", None
    possible_grades = tuple(int(g) for g in grades if g != NOT_APPLICABLE) if status == "indeterminate" else ()
    values = {name: (values[0] if len(values) == 1 else None) for name, values in possible.items()}

    rule_order, rows = tables.rule_order, tables.actions
    doses = {d["rule"]: d for d in by_kind.get(_DOSE, ())}
    engine_withheld: dict[str, list[str]] = {}
    for w in by_kind.get(_WITHHELD, ()):
        engine_withheld.setdefault(str(w["rule"]), []).append(str(w["limit"]))
    proposed = by_kind.get(_ACTION, [])
    proposed_rules = {str(a["rule"]) for a in proposed}
    decided = set(failed)
    decided |= proposed_rules
    decided |= {str(a["rule"]) for a in by_kind.get(_ALERT, ())}
    proposed_actions = {rows[r].rule.action for r in proposed_rules}
    open_actions = {action for rule_id, action in tables.rule_action if rule_id not in decided} - proposed_actions
    unknowns = _Unknowns(protocol, patient, possible, proposed_actions, open_actions, known)

    recommendations: list[Recommendation] = []
    withheld: list[Withheld] = []
    pending: list[Pending] = []
    for action in sorted(proposed, key=lambda a: rule_order[a["rule"]]):
        row = rows[action["rule"]]
        rule = row.rule
        assert row.catalogued
        dose = None
        if rule.dose is not None:
            drug, regimen = row.drug, row.regimen
            proposal = doses.get(row.rule_id)
            if drug is None or regimen is None or proposal is None:
                raise EngineError(f"rule {row.rule_id} proposed {rule.action} without a dose")
            try:
                verdict = check_dose(drug, regimen, proposal.get("amount_mg"), patient, protocol)
            except OverflowError:
                raise _beyond_the_calendar(patient) from None
            limits = tuple(dict.fromkeys([*engine_withheld.get(row.rule_id, ()), *verdict.limits]))
            if HISTORY_UNKNOWN in limits:
                # Neither the rules nor the independent check can clear a dose without the record.
                pending.append(Pending(row.rule_id, "action", rule.action, rule.strength, ("medications",),
                                       "the medication record is not given, so the dose limits cannot be checked"))
                continue
            if limits:
                # Withheld if either the rules or the independent check found a limit reached.
                reasons = list(verdict.reasons) or [f"limit reached: {', '.join(limits)}"]
                withheld.append(Withheld(row.rule_id, rule.action, rule.strength, "; ".join(reasons), limits,
                                         verdict.next_eligible_at, _citations(protocol, row.citations)))
                continue
            dose = Dose(
                drug=drug.id, amount_mg=proposal.get("amount_mg"), route=drug.route, regimen=regimen.id,
                interval_h=row.interval_h, interval_up_to_h=regimen.up_to_every_h, times_daily=regimen.times_daily,
                for_days=regimen.for_days, then=regimen.then, calculation=str(proposal["how"]),
                repeat=row.repeat, now=regimen.then if proposal.get("then_only") else None,
            )
        recommendations.append(Recommendation(row.rule_id, rule.action, rule.strength, dose,
                                              row.text, _citations(protocol, row.citations)))

    # A regimen that replaces another of its drug (an escalation), when recommended, takes its place.
    replacing = {row.replaces: r.rule for r in recommendations if r.dose is not None
                 for row in [rows[r.rule]] if row.replaces is not None}
    if replacing:
        replaced_rules = {rule_id: replacing[key] for rule_id, key in tables.dosed if key in replacing}
        entries: list[Recommendation | Withheld] = [*recommendations, *withheld]
        for entry in entries:
            by = replaced_rules.get(entry.rule)
            if by is not None:
                if isinstance(entry, Recommendation):
                    recommendations.remove(entry)
                else:
                    withheld.remove(entry)
                withheld.append(Withheld(entry.rule, entry.action, entry.strength,
                                         f"replaced by the escalation this decision proposes ({by})",
                                         ("replaced_by_escalation",), None, entry.citations))

    for row in tables.action_rows:
        if row.rule_id not in decided:
            rule = row.rule
            waits = unknowns.of((row.reader,))
            if rule.dose is not None and patient.medications is None and "medications" not in waits:
                waits = (*waits, "medications")  # even once the rule holds, its dose limits need the record
            pending.append(Pending(row.rule_id, "action", rule.action, rule.strength, waits,
                                   "holds for some values of the unknown inputs and not for others"))
    for alert_row in tables.alert_rows:
        if alert_row.rule_id not in decided:
            alert_rule = alert_row.alert
            waits = unknowns.of((alert_row.reader,))
            pending.append(Pending(alert_row.rule_id, "alert", alert_rule.id, None, waits,
                                   "raised for some values of the unknown inputs and not for others"))
    pending.sort(key=lambda p: (rule_order.get(p.rule, len(rule_order)), p.rule))

    details: dict[str, str] = {}

    def alert_text(row: _AlertRow) -> str:
        if not row.detailed:
            return row.text
        read = []
        for fact in row.detailed:
            found = details.get(fact)
            if found is None:
                found = details[fact] = _alert_detail(fact, protocol, patient, written or patient)
            if found:
                read.append(found)
        return " ".join([row.text, *dict.fromkeys(read)])

    alerts = tuple(
        Alert(a["alert"], row.alert.severity, a["rule"], alert_text(row), _citations(protocol, row.alert.citations))
        for a, row in sorted(((a, tables.alerts[a["alert"]]) for a in by_kind.get(_ALERT, ())),
                             key=lambda pair: pair[1].order)
    )
    missing: dict[str, None] = {}
    if status != "graded":
        missing.update(dict.fromkeys(unknowns.of(tables.readers("finding", GRADE_FINDING))))
    for item in pending:
        missing.update(dict.fromkeys(item.waits_for))
    grade_rule = tables.grade_rules.get(grade) if status == "graded" and grade is not None else None
    if grade_rule is not None:
        trace = (*trace, TraceEntry(grade_rule, grade_rule))
    ordered_findings = tuple((name, values[name]) for name in tables.finding_ids) + ((GRADE_FINDING, grade),)
    return Decision(
        protocol=tables.ref,
        assessed_at=patient.assessed_at,
        crs_grade=grade,
        grade_basis=grade_basis(protocol, status, grade, possible_grades, values, patient, tuple(missing)),
        findings=ordered_findings,
        recommendations=tuple(recommendations),
        withheld=tuple(withheld),
        alerts=alerts,
        trace=trace,
        grade_status=status,
        possible_grades=possible_grades,
        missing=tuple(missing),
        pending=tuple(pending),
    )
