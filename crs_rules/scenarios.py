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

The stages live in their modules: the values (:mod:`crs_rules.scenario_model`), reading the files
(:mod:`crs_rules.scenario_reading`), comparing a decision with its expectation and the rules it
shows (:mod:`crs_rules.scenario_outcomes`); this module runs scenarios and reports on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .decision import Decision
from .errors import CrsRulesError
from .evaluation import evaluate
from .model import Protocol, Source
from .scenario_model import SCENARIO_FOLDER, Expectation, ExpectedDose, ExpectedWithheld, Scenario
from .scenario_outcomes import checked_rules, differences, fired_rules
from .scenario_reading import load_scenarios

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



def run_scenario(scenario: Scenario, protocol: Protocol) -> ScenarioResult:
    """Evaluate one scenario's patient against the protocol and compare with what it expects."""
    try:
        decision = evaluate(scenario.patient, protocol, allow_draft=True)  # scenarios test drafts too
    except CrsRulesError as error:
        return ScenarioResult(scenario, None, (f"no decision: {error}",), frozenset())
    return ScenarioResult(scenario, decision, differences(scenario.expect, decision), fired_rules(decision, protocol),
                          checked_rules(scenario.expect, decision, protocol))


def _rule_sources(protocol: Protocol) -> dict[str, Source]:
    """Where each rule of the pack is written (:meth:`Protocol.rules`)."""
    return {rule.id: rule.source for rule in protocol.rules()}


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
    """Run every scenario of the protocol's own folder (``protocol.path``) against it: the scenario
    files read when the pack was loaded (:attr:`Protocol.files`), not read again.

    Raises :class:`~crs_rules.errors.InvalidPackError` when a scenario file is not valid.
    """
    scenarios = load_scenarios(protocol.path, protocol)
    return ScenarioReport(protocol, tuple(run_scenario(scenario, protocol) for scenario in scenarios))
