"""Scenarios: patients with the outcome the protocol must give them, written next to the rules.

A pack's ``scenarios/`` folder holds YAML files (``schemas/scenario.schema.json``), each a list of
scenarios: a ``name``, a ``description`` in clinical words, a ``patient`` (the input of
:func:`~crs_rules.evaluation.evaluate`, exactly as ``crs-rules evaluate`` reads it) and ``expect``,
the outcome worked out by hand from the protocol:

* ``grade``: the exact CRS grade;
* ``recommended`` / ``considered``: actions the decision must propose with that strength;
* ``absent``: actions it must neither recommend nor consider (a withheld action is neither);
* ``withheld``: actions it must withhold, each with ``next_eligible_at`` (null: never again);
* ``alerts`` / ``alerts_absent``: alerts it must / must not raise;
* ``doses``: an action proposed with exactly ``amount_mg``.

Every list is "must contain": what a scenario does not name is not checked.

Scenario files are tests, not protocol content: :func:`~crs_rules.pack.content_digest` reads only
the files the manifest lists, so editing a scenario never calls for a release.

**Rule coverage counts outcomes a scenario checks**, not rules that merely fired. A rule id of the pack
(:meth:`Protocol.rule_ids`) is *covered* by a scenario when the scenario's ``expect`` checks that
rule's outcome in the decision:

* an action rule: the scenario expects its action ``recommended`` or ``considered`` at the rule's
  strength (or a dose of it) and this rule proposed it; or ``withheld`` and this rule's dose is
  withheld; or ``pending`` and this rule is pending; or ``absent`` and this rule did not propose it;
* an alert: expected in ``alerts`` (and raised by it), ``alerts_absent`` (and not raised) or
  ``pending`` (and pending);
* a grade criterion: the scenario expects that grade, or lists it among ``possible_grades``;
* a finding: it fired (see below) in a scenario that checks the grade (``grade``, ``grade_status``
  or ``possible_grades``), since every finding feeds the grade;
* ``dosing.<drug>``: the scenario checks a dose of, or a withheld dose of, an action dosed with it;
* the CRS definition: the scenario expects a grade above the lowest (CRS found) or ``not_applicable``.

``crs-rules test`` lists every rule whose outcome no scenario checks. A rule is *fired* by a
scenario when its decision shows that the rule took effect (the trace, used for findings):

* a trace entry names it: the entry (its ``@<rule>`` suffix, which names the action rule a dose
  belongs to, removed) is the rule id itself or starts with the rule id followed by a dot, the
  longest such rule id taking it. So ``finding.hypoxia_grade.2`` and ``finding.fever.false`` fire
  ``finding.hypoxia_grade`` and ``finding.fever`` (every finding is evaluated for every patient, so
  any scenario fires every finding), and ``dosing.tocilizumab.propose@grade2_up.tocilizumab`` or
  ``dosing.tocilizumab.max_doses_in_window@...`` fire the dose-limit rule ``dosing.tocilizumab``;
* or the decision shows its work: the rule of a recommendation, of a withheld action or of an alert,
  and ``dosing.<drug>`` for a dose proposed or withheld;
* the CRS definition (text, not a condition) is fired by a decision that finds CRS: a grade above the
  pack's lowest grade (``CRS criteria not met``).

Failing scenarios count for coverage too: coverage says which outcomes the scenarios check, and a
failure is reported on its own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from .decision import Decision, iso
from .errors import CrsRulesError, InvalidInputError, InvalidPackError, Problem
from .evaluation import evaluate
from .loading import LoadedDocument, load_yaml_bytes, load_yaml_text
from .model import Protocol, Source
from .pack import MAX_PACK_BYTES, load_protocol, read_pack_file
from .patient import PatientState, parse_patient
from .validation import schema_problems

__all__ = [
    "SCENARIO_FOLDER",
    "ExpectedWithheld",
    "ExpectedDose",
    "Expectation",
    "Scenario",
    "ScenarioResult",
    "ScenarioReport",
    "load_scenarios",
    "run_scenario",
    "run_scenarios",
    "differences",
    "fired_rules",
    "checked_rules",
]

#: The folder of a pack that holds its scenario files (``*.yaml``).
SCENARIO_FOLDER = "scenarios"

_SCHEMA = "scenario"
_ACTION_LISTS = ("recommended", "considered", "absent")
_ALERT_LISTS = ("alerts", "alerts_absent")

PathKey = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------
# The scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedWithheld:
    """An action the decision must withhold, and when it becomes eligible again (None: never)."""

    action: str
    next_eligible_at: datetime | None


@dataclass(frozen=True)
class ExpectedDose:
    """An action the decision must propose with exactly this dose."""

    action: str
    amount_mg: int | float | None
    """None: proposed without an amount."""


@dataclass(frozen=True)
class Expectation:
    """What a scenario expects. Lists are "must contain"; ``absent`` and ``alerts_absent`` "must not"."""

    grade: int | None
    """The exact CRS grade (the decision is then ``graded``); None when not checked."""
    recommended: tuple[str, ...] = ()
    considered: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    withheld: tuple[ExpectedWithheld, ...] = ()
    alerts: tuple[str, ...] = ()
    alerts_absent: tuple[str, ...] = ()
    doses: tuple[ExpectedDose, ...] = ()
    grade_status: str | None = None
    possible_grades: tuple[int, ...] | None = None
    pending: tuple[str, ...] = ()
    """Action or alert ids some rule of which must be pending (waiting for unknown data)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    patient: PatientState
    expect: Expectation
    source: Source


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _display(pack: Path, name: str) -> str:
    folder = pack / SCENARIO_FOLDER
    return str(folder / name) if str(pack) != "." else f"{SCENARIO_FOLDER}/{name}"


def _read(raw: bytes, name: str) -> tuple[LoadedDocument | None, list[Problem]]:
    """Load one scenario file's bytes; unquoted date-times stay text (they are checked where they
    are used)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # The loader words it (not UTF-8 at line:column); refuse the file.
        _, problems = load_yaml_bytes(raw, name)
        return None, problems or [Problem(name, 0, 0, "-", "the file is not UTF-8 text", "a UTF-8 YAML file")]
    return load_yaml_text(text, name, times_as_text=True)


def _value_at(data: Any, path: PathKey) -> Any:
    for key in path:
        data = data[key]
    return data


def _sub_document(document: LoadedDocument, prefix: PathKey) -> LoadedDocument:
    """The part of a document at ``prefix``, as a document of its own whose positions still point
    into the file (so the patient's problems carry the scenario file's line and column)."""
    size = len(prefix)

    def below(marks: Mapping[PathKey, tuple[int, int]]) -> Mapping[PathKey, tuple[int, int]]:
        return MappingProxyType({path[size:]: where for path, where in marks.items() if path[:size] == prefix})

    return LoadedDocument(document.file, _value_at(document.data, prefix),
                          value_marks=below(document.value_marks), key_marks=below(document.key_marks))


def _parse_time(text: str) -> datetime | None:
    """A date-time the schema's pattern accepted, as an instant in UTC; None if it is not real."""
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    if parsed.utcoffset() is None:
        return None
    return parsed.astimezone(timezone.utc)


def _scenario_name(item: Any, index: int) -> str:
    """How problems name a scenario: its name, or its place in the file when it has none."""
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else f"scenarios[{index}]"


class _File:
    """Collects the scenarios and problems of one scenario file."""

    def __init__(self, document: LoadedDocument, protocol: Protocol) -> None:
        self.document = document
        self.protocol = protocol
        self.problems: list[Problem] = []
        self.schema_paths: set[PathKey] = set()
        self.actions = [a.id for a in protocol.actions]
        self.dosed = list(dict.fromkeys(r.action for r in protocol.action_rules if r.dose is not None))
        self.alerts = [a.id for a in protocol.alerts]
        self.grades = sorted({g.grade for g in protocol.grades})

    def add(self, path: PathKey, subject: str, message: str, expected: str, check: str) -> None:
        line, column = self.document.position(path)
        self.problems.append(Problem(self.document.file, line, column, subject, message, expected, path, check))

    def load(self) -> list[Scenario]:
        data = self.document.data
        items = data.get("scenarios") if isinstance(data, dict) else None
        listed = items if isinstance(items, list) else []
        names = {index: _scenario_name(item, index) for index, item in enumerate(listed)}
        for problem in schema_problems(self.document, _SCHEMA):
            self.schema_paths.add(problem.path)
            index = problem.path[1] if len(problem.path) > 1 and problem.path[0] == "scenarios" else None
            if problem.subject == "-" and isinstance(index, int) and index in names:
                problem = dataclasses.replace(problem, subject=names[index])
            self.problems.append(problem)
        scenarios = []
        for index, item in enumerate(listed):
            if isinstance(item, dict):
                scenario = self.scenario(item, ("scenarios", index), names[index])
                if scenario is not None:
                    scenarios.append(scenario)
        return scenarios

    def scenario(self, item: dict[str, Any], prefix: PathKey, name: str) -> Scenario | None:
        before = len(self.problems)
        own_schema_problems = any(path[:len(prefix)] == prefix for path in self.schema_paths)
        patient = None
        if isinstance(item.get("patient"), dict):
            patient = self.patient(item["patient"], (*prefix, "patient"), name)
        expect = item.get("expect")
        expectation = self.expectation(expect, (*prefix, "expect"), name) if isinstance(expect, dict) else None
        if own_schema_problems or len(self.problems) > before or patient is None or expectation is None:
            return None
        line, column = self.document.position(prefix)
        return Scenario(name, " ".join(str(item["description"]).split()), patient, expectation,
                        Source(self.document.file, line, column))

    def patient(self, data: dict[str, Any], prefix: PathKey, name: str) -> PatientState | None:
        try:
            return parse_patient(data, self.document.file, _sub_document(self.document, prefix))
        except InvalidInputError as error:
            for problem in error.problems:
                field_name = f"patient.{problem.subject}" if problem.subject != "-" else "patient"
                self.problems.append(dataclasses.replace(
                    problem, subject=name, message=f"{field_name} {problem.message}", path=(*prefix, *problem.path)))
            return None

    def expectation(self, expect: dict[str, Any], prefix: PathKey, name: str) -> Expectation | None:
        """The expectation, after checking every id it names against the pack (None without a whole
        grade; the caller drops the scenario if any problem was found)."""

        def texts(key: str) -> Iterator[tuple[PathKey, str]]:
            values = expect.get(key, [])
            for index, value in enumerate(values if isinstance(values, list) else []):
                path = (*prefix, key, index)
                if isinstance(value, str) and path not in self.schema_paths:
                    yield path, value

        def entries(key: str) -> Iterator[tuple[PathKey, dict[str, Any]]]:
            values = expect.get(key, [])
            for index, value in enumerate(values if isinstance(values, list) else []):
                if isinstance(value, dict):
                    yield (*prefix, key, index), value

        def known(path: PathKey, value: Any, catalogue: list[str], kind: str) -> str | None:
            """The id if the pack has it; None (reported, unless the schema already did) if not."""
            if not isinstance(value, str) or path in self.schema_paths:
                return None
            if value in catalogue:
                return value
            self.add(path, name, f"unknown {kind} '{value}'", "expected one of " + ", ".join(catalogue),
                     f"scenario.{kind}-known")
            return None

        grade = expect.get("grade")
        whole = isinstance(grade, int) and not isinstance(grade, bool)
        if whole and (*prefix, "grade") not in self.schema_paths and grade not in self.grades:
            self.add((*prefix, "grade"), name, f"grade {grade} is not a grade of this pack",
                     "expected one of " + ", ".join(map(str, self.grades)), "scenario.grade-known")
        lists: dict[str, list[str]] = {}
        for key in _ACTION_LISTS:
            lists[key] = [value for path, value in texts(key) if known(path, value, self.actions, "action")]
        for key in _ALERT_LISTS:
            lists[key] = [value for path, value in texts(key) if known(path, value, self.alerts, "alert")]
        for key, other in (("recommended", "absent"), ("considered", "absent"), ("alerts", "alerts_absent")):
            for path, value in texts(other):
                if value in lists[key]:
                    self.add(path, name, f"'{value}' is listed under both {key} and {other}",
                             f"expected it in {key} or in {other}, not both", "scenario.consistent")

        withheld = []
        for path, entry in entries("withheld"):
            action = known((*path, "action"), entry.get("action"), self.actions, "action")
            when = entry.get("next_eligible_at")
            if action is None:
                continue
            if when is None:
                withheld.append(ExpectedWithheld(action, None))
            elif isinstance(when, str) and (*path, "next_eligible_at") not in self.schema_paths:
                instant = _parse_time(when)
                if instant is None:
                    self.add((*path, "next_eligible_at"), name, f"'{when}' is not a real date and time",
                             "expected a date-time such as 2026-03-11T12:30:00Z", "scenario.date-time")
                else:
                    withheld.append(ExpectedWithheld(action, instant))

        doses = []
        for path, entry in entries("doses"):
            action = known((*path, "action"), entry.get("action"), self.actions, "action")
            amount = entry.get("amount_mg")
            if action is None:
                continue
            if action not in self.dosed:
                self.add((*path, "action"), name, f"no rule of this pack doses {action}",
                         "expected an action some rule proposes with a dose: " + ", ".join(self.dosed),
                         "scenario.dose-known")
            elif amount is None or (isinstance(amount, (int, float)) and not isinstance(amount, bool)):
                doses.append(ExpectedDose(action, amount))

        status = expect.get("grade_status")
        if not isinstance(grade, int) and not isinstance(status, str):
            return None
        possible = expect.get("possible_grades")
        pending = [value for path, value in texts("pending")
                   if known(path, value, sorted({*self.actions, *self.alerts}), "action or alert")]
        return Expectation(
            grade=grade if isinstance(grade, int) else None,
            grade_status=status if isinstance(status, str) else ("graded" if isinstance(grade, int) else None),
            possible_grades=tuple(possible) if isinstance(possible, list) else None,
            pending=tuple(pending),
            recommended=tuple(lists["recommended"]), considered=tuple(lists["considered"]),
            absent=tuple(lists["absent"]), withheld=tuple(withheld),
            alerts=tuple(lists["alerts"]), alerts_absent=tuple(lists["alerts_absent"]), doses=tuple(doses),
        )


def load_scenarios(pack_dir: str | Path, protocol: Protocol | None = None) -> list[Scenario]:
    """The scenarios of ``PACK/scenarios/*.yaml`` (files in name order, scenarios in file order).

    ``protocol`` is the pack the expectations are checked against (loaded from ``pack_dir`` when not
    given). A pack without a scenarios folder has no scenarios. Raises
    :class:`~crs_rules.errors.InvalidPackError` with every problem of every scenario file, each at
    its file, line and column: YAML and schema problems, the patient's problems (as
    ``crs-rules evaluate`` words them), ids of actions and alerts the pack does not have, and a
    scenario name used twice.
    """
    pack = Path(pack_dir)
    if protocol is None:
        protocol = load_protocol(pack)
    folder = pack / SCENARIO_FOLDER
    if not folder.is_dir():
        return []
    problems: list[Problem] = []
    scenarios: list[Scenario] = []
    first: dict[str, Source] = {}
    total = 0
    for path in sorted(folder.glob("*.yaml")):
        # Read like the pack's own files: a regular file inside the pack, at most 1 MiB (no FIFO,
        # device or link out of the pack is opened), and at most MAX_PACK_BYTES for all of them.
        raw, found = read_pack_file(pack, f"{SCENARIO_FOLDER}/{path.name}")
        document = None
        if raw is not None and total + len(raw) > MAX_PACK_BYTES:
            found = [Problem(_display(pack, path.name), 0, 0, "-",
                             f"the scenario files reach {total + len(raw)} bytes with this one",
                             f"expected at most {MAX_PACK_BYTES} bytes "
                             f"({MAX_PACK_BYTES // (1024 * 1024)} MiB) for all the scenario files",
                             (), "pack-file")]
        elif raw is not None:
            total += len(raw)
            document, found = _read(raw, _display(pack, path.name))
        problems.extend(found)
        if document is None:
            continue
        scenario_file = _File(document, protocol)
        loaded = scenario_file.load()
        problems.extend(scenario_file.problems)
        data = document.data if isinstance(document.data, dict) else {}
        items = data.get("scenarios")
        for index, item in enumerate(items if isinstance(items, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            line, column = document.position(("scenarios", index, "name"))
            if name in first:
                seen = first[name]
                problems.append(Problem(document.file, line, column, name,
                                        f"the scenario name '{name}' is used twice (first at {seen.file}:{seen.line})",
                                        "expected each scenario name once in the pack",
                                        ("scenarios", index, "name"), "scenario.unique-name"))
            else:
                first[name] = Source(document.file, line, column)
        scenarios.extend(loaded)
    if problems:
        raise InvalidPackError(problems)
    return scenarios


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario run: the decision (None if the evaluation failed), the differences from what
    was expected, in clinical words (empty when it passed), and the rule ids it fired."""

    scenario: Scenario
    decision: Decision | None
    differences: tuple[str, ...]
    fired: frozenset[str]
    checked: frozenset[str] = frozenset()
    """The rule ids whose outcome this scenario's expectations check."""

    @property
    def passed(self) -> bool:
        return not self.differences


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

    def take(entry: str) -> None:
        parts = entry.split("@", 1)[0].split(".")
        for size in range(len(parts), 0, -1):
            candidate = ".".join(parts[:size])
            if candidate in known:
                fired.add(candidate)
                return

    def dose_rule(rule_id: str) -> None:
        rule = next((r for r in protocol.action_rules if r.rule_id == rule_id), None)
        drug = protocol.drug(rule.dose.drug) if rule is not None and rule.dose is not None else None
        if drug is not None:
            fired.add(drug.rule_id)

    for entry in decision.trace:
        take(entry)
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


def run_scenario(scenario: Scenario, protocol: Protocol) -> ScenarioResult:
    """Evaluate one scenario's patient against the protocol and compare with what it expects."""
    try:
        decision = evaluate(scenario.patient, protocol, allow_draft=True)  # scenarios test drafts too
    except CrsRulesError as error:
        return ScenarioResult(scenario, None, (f"no decision: {error}",), frozenset())
    return ScenarioResult(scenario, decision, differences(scenario.expect, decision), fired_rules(decision, protocol),
                          checked_rules(scenario.expect, decision, protocol))


def _rule_sources(protocol: Protocol) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    definition = getattr(protocol, "definition_source", None)  # recorded by packs that know it
    if isinstance(definition, Source):
        sources[protocol.definition_id] = definition
    sources.update((f.rule_id, f.source) for f in protocol.findings)
    sources.update((g.rule_id, g.source) for g in protocol.grades)
    sources.update((d.rule_id, d.source) for d in protocol.drugs)
    sources.update((r.rule_id, r.source) for r in protocol.action_rules)
    sources.update((a.rule_id, a.source) for a in protocol.alerts)
    return sources


@dataclass(frozen=True)
class ScenarioReport:
    """The scenarios of a pack, run: results, counts and rule coverage.

    ``ok`` is true when there is at least one scenario, every scenario passed and the outcome of
    every rule id of the pack is checked by some scenario (100 % coverage).
    """

    protocol: Protocol = field(repr=False)
    results: tuple[ScenarioResult, ...]

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def failures(self) -> tuple[ScenarioResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return self.protocol.rule_ids()

    @property
    def coverage(self) -> tuple[str, ...]:
        """The pack's rule ids whose outcome at least one scenario checks, in pack order."""
        checked = frozenset().union(*(r.checked for r in self.results))
        return tuple(rule_id for rule_id in self.rule_ids if rule_id in checked)

    @property
    def uncovered(self) -> tuple[str, ...]:
        """The pack's rule ids whose outcome no scenario checks, in pack order."""
        covered = set(self.coverage)
        return tuple(rule_id for rule_id in self.rule_ids if rule_id not in covered)

    @property
    def coverage_percent(self) -> int:
        """Rounded down, so 100 means every rule id is covered."""
        total = len(self.rule_ids)
        return 100 if total == 0 else math.floor(100 * len(self.coverage) / total)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.failed == 0 and not self.uncovered

    def render(self) -> str:
        lines: list[str] = []
        for result in self.failures:
            source = result.scenario.source
            lines.append(f"FAIL {result.scenario.name} ({source.file}:{source.line})")
            lines += [f"  {difference}" for difference in result.differences]
        if not self.results:
            lines.append(f"no scenarios: add YAML files to {Path(self.protocol.path) / SCENARIO_FOLDER}")
        lines.append(f"{self.passed} passed, {self.failed} failed")
        lines.append(f"rule coverage: {len(self.coverage)}/{len(self.rule_ids)} ({self.coverage_percent} %)")
        sources = _rule_sources(self.protocol)
        for rule_id in self.uncovered:
            where = sources.get(rule_id)
            lines.append(f"outcome not checked: {rule_id}" + (f" ({where.file}:{where.line})" if where else ""))
        return "\n".join(lines)


def run_scenarios(protocol: Protocol) -> ScenarioReport:
    """Run every scenario of the protocol's own folder (``protocol.path``) against it.

    Raises :class:`~crs_rules.errors.InvalidPackError` when a scenario file is not valid.
    """
    scenarios = load_scenarios(protocol.path, protocol)
    return ScenarioReport(protocol, tuple(run_scenario(scenario, protocol) for scenario in scenarios))
