"""Scenarios, stage 1: reading a pack's scenario files into :class:`~crs_rules.scenario_model.Scenario`
values, every problem of every file reported at its line and column (YAML and schema problems, the
patient's problems as ``crs-rules evaluate`` words them, ids the pack does not have, a name used
twice)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from .errors import InvalidInputError, InvalidPackError, Problem
from .loading import LoadedDocument, load_yaml_bytes, load_yaml_text
from .model import Protocol, Source
from .pack import load_protocol, read_scenario_files
from .patient import PatientState, parse_patient
from .scenario_model import Expectation, ExpectedDose, ExpectedWithheld, PathKey, Scenario
from .validation import schema_problems

__all__ = ["load_scenarios", "ScenarioCheck"]


class ScenarioCheck(StrEnum):
    """The id each problem of a scenario file carries in ``Problem.check`` (besides ``schema.*``,
    ``yaml.*``, ``pack-file`` and the patient's ``input.*``)."""

    ACTION_KNOWN = "scenario.action-known"
    ALERT_KNOWN = "scenario.alert-known"
    PENDING_KNOWN = "scenario.action or alert-known"
    GRADE_KNOWN = "scenario.grade-known"
    CONSISTENT = "scenario.consistent"
    DATE_TIME = "scenario.date-time"
    DOSE_KNOWN = "scenario.dose-known"
    UNIQUE_NAME = "scenario.unique-name"


_KNOWN = {"action": ScenarioCheck.ACTION_KNOWN, "alert": ScenarioCheck.ALERT_KNOWN,
          "action or alert": ScenarioCheck.PENDING_KNOWN}

_SCHEMA = "scenario"
_ACTION_LISTS = ("recommended", "considered", "absent")
_ALERT_LISTS = ("alerts", "alerts_absent")

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

    def add(self, path: PathKey, subject: str, message: str, expected: str, check: ScenarioCheck) -> None:
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
                     _KNOWN[kind])
            return None

        grade = expect.get("grade")
        whole = isinstance(grade, int) and not isinstance(grade, bool)
        if whole and (*prefix, "grade") not in self.schema_paths and grade not in self.grades:
            self.add((*prefix, "grade"), name, f"grade {grade} is not a grade of this pack",
                     "expected one of " + ", ".join(map(str, self.grades)), ScenarioCheck.GRADE_KNOWN)
        lists: dict[str, list[str]] = {}
        for key in _ACTION_LISTS:
            lists[key] = [value for path, value in texts(key) if known(path, value, self.actions, "action")]
        for key in _ALERT_LISTS:
            lists[key] = [value for path, value in texts(key) if known(path, value, self.alerts, "alert")]
        for key, other in (("recommended", "absent"), ("considered", "absent"), ("alerts", "alerts_absent")):
            for path, value in texts(other):
                if value in lists[key]:
                    self.add(path, name, f"'{value}' is listed under both {key} and {other}",
                             f"expected it in {key} or in {other}, not both", ScenarioCheck.CONSISTENT)

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
                             "expected a date-time such as 2026-03-11T12:30:00Z", ScenarioCheck.DATE_TIME)
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
                         ScenarioCheck.DOSE_KNOWN)
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
    given); when it was loaded from ``pack_dir``, its scenario files are the ones read with it
    (:attr:`Protocol.files`), not read again. A pack without a scenarios folder has no scenarios. Raises
    :class:`~crs_rules.errors.InvalidPackError` with every problem of every scenario file, each at
    its file, line and column: YAML and schema problems, the patient's problems (as
    ``crs-rules evaluate`` words them), ids of actions and alerts the pack does not have, and a
    scenario name used twice.
    """
    pack = Path(pack_dir)
    if protocol is None:
        protocol = load_protocol(pack)
    files = protocol.files
    # The pack's own scenario files were read with it; another folder's are read now.
    own = files is not None and (Path(files.folder) == pack or Path(files.folder).resolve() == pack.resolve())
    read = files.scenarios if files is not None and own else read_scenario_files(pack)
    problems: list[Problem] = []
    scenarios: list[Scenario] = []
    first: dict[str, Source] = {}
    for item in read or ():
        # Read like the pack's own files: a regular file inside the pack, at most 1 MiB (no FIFO,
        # device or link out of the pack is opened), the pack's files together at most
        # MAX_PACK_BYTES (a file refused is a problem here, its bytes were never kept).
        raw, found = item.raw, list(item.problems)
        document = None
        if raw is not None:
            document, found = _read(raw, item.display)
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
                                        ("scenarios", index, "name"), ScenarioCheck.UNIQUE_NAME))
            else:
                first[name] = Source(document.file, line, column)
        scenarios.extend(loaded)
    if problems:
        raise InvalidPackError(problems)
    return scenarios
