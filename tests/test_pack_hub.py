"""The loaded pack is the hub: one registry of the pack's rules, and files read once.

``Protocol.rules()`` is the one list of the pack's rules every stage iterates (rule ids, conditions,
citations, texts, where each is written); a family of rules that is a field of the Protocol but not
declared in ``RULE_FAMILIES`` fails here. Loading keeps the pack's files (``Protocol.files``):
traceability, scenarios and ``diff`` work from the loaded pack with its folder gone, and a release
reads each file of the folder once.
"""

from __future__ import annotations

import builtins
import dataclasses
import pickle
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import pack_under_test

import crs_rules.model as model
from crs_rules import load_protocol
from crs_rules.impact import compare_packs
from crs_rules.loading import read_bounded
from crs_rules.model import RULE_FAMILIES, AllOf, AnyOf, Comparison, Not, Protocol, RuleFamily
from crs_rules.release import draft, release
from crs_rules.scenarios import run_scenarios
from crs_rules.traceability import render_table, trace

RULES = pack_under_test()
_CONDITIONS = (Comparison, AllOf, AnyOf, Not)


def _rule_bearing(value: Any) -> Iterator[Any]:
    """What a value of the model holds that makes it a rule: elements with a rule id, and the
    outermost conditions (a condition's parts belong to it)."""
    if isinstance(value, _CONDITIONS) or hasattr(value, "rule_id"):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _rule_bearing(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _rule_bearing(getattr(value, field.name))


def unregistered(protocol: Protocol) -> list[str]:
    """Every field of the Protocol holding a rule or a condition that :meth:`Protocol.rules` does
    not list (by identity), named with what it holds."""
    elements = {id(rule.element) for rule in protocol.rules()}
    conditions = {id(condition) for rule in protocol.rules() for condition in rule.conditions}
    missing = []
    for field in dataclasses.fields(Protocol):
        if field.name == "files":
            continue  # the files as read, not the model
        for found in _rule_bearing(getattr(protocol, field.name)):
            known = conditions if isinstance(found, _CONDITIONS) else elements
            if id(found) not in known:
                missing.append(f"{field.name}: {getattr(found, 'rule_id', type(found).__name__)}")
    return missing


@pytest.fixture(scope="module")
def shipped() -> Protocol:
    return load_protocol(RULES)


def test_every_rule_and_condition_of_the_protocol_is_in_the_registry(shipped: Protocol) -> None:
    assert unregistered(shipped) == []
    assert {rule.family for rule in shipped.rules()} == set(RuleFamily)
    assert all(family.elements(shipped) for family in RULE_FAMILIES)  # every accessor reads elements


def test_a_family_left_out_of_the_registry_is_found(shipped: Protocol, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "RULE_FAMILIES", tuple(f for f in RULE_FAMILIES if f.family is not RuleFamily.ALERT))
    without_alerts = dataclasses.replace(shipped)  # a new instance: its rules are listed anew
    assert unregistered(without_alerts) == [f"alerts: {alert.rule_id}" for alert in shipped.alerts]
    monkeypatch.setattr(model, "RULE_FAMILIES", RULE_FAMILIES[1:])
    assert unregistered(dataclasses.replace(shipped)) == ["applies_when: Comparison"]  # the definition's condition


def test_each_rule_points_at_its_place_in_the_loaded_documents(shipped: Protocol) -> None:
    assert shipped.files is not None
    ids = [rule.id for rule in shipped.rules()]
    assert len(ids) == len(set(ids)) and tuple(ids) == shipped.rule_ids()
    for rule in shipped.rules():
        document = shipped.files.documents[rule.file_kind]
        data = document.data
        for key in rule.path:
            data = data[key]
        assert data["id"] == rule.element.id, rule.id
        assert (rule.source.file, rule.source.line, rule.source.column) == (document.file, *document.position(rule.path))
        assert rule.citations == tuple(data["citations"])


def _condition_nodes(data: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every ``when`` and ``applies_when`` node of a document's data, in file order
    (a walk of the YAML as loaded, independent of the model)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("when", "applies_when"):
                yield (*path, key)
            else:
                yield from _condition_nodes(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _condition_nodes(item, (*path, index))


def test_the_conditions_are_every_when_of_the_loaded_documents_in_file_order(shipped: Protocol) -> None:
    assert shipped.files is not None
    written = sorted((document.file, *document.position(path))
                     for document in shipped.files.documents.values() for path in _condition_nodes(document.data))
    pairs = shipped.conditions()
    listed = [(c.source.file, c.source.line, c.source.column) for _, c in pairs]
    assert written and sorted(listed) == written
    by_file: dict[str, list[tuple[int, int]]] = {}
    for file, line, column in listed:
        by_file.setdefault(file, []).append((line, column))
    assert all(positions == sorted(positions) for positions in by_file.values())
    assert pairs == tuple((rule.id, c) for rule in shipped.rules() for c in rule.conditions)


def test_a_loaded_document_survives_pickling_with_its_positions(shipped: Protocol) -> None:
    assert shipped.files is not None
    for document in shipped.files.documents.values():
        copy = pickle.loads(pickle.dumps(document))
        assert (copy.file, copy.data) == (document.file, document.data)
        assert dict(copy.value_marks) == dict(document.value_marks) and dict(copy.key_marks) == dict(document.key_marks)
        paths = [path for path in document.value_marks if path][:50]
        assert paths and all(copy.position(p) == document.position(p) and copy.key_position(p) == document.key_position(p)
                             for p in paths)


# --------------------------------------------------------------------------- nothing re-reads


@pytest.mark.slow
def test_trace_scenarios_and_diff_work_from_the_loaded_pack_with_its_folder_gone(tmp_path: Path) -> None:
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    protocol = load_protocol(folder)
    shutil.rmtree(folder)
    _, rows, problems = trace(protocol)
    assert problems == [] and len(rows) == len(protocol.statements)
    assert render_table(protocol, rows) == (RULES / "TRACEABILITY.md").read_text(encoding="utf-8")
    report = run_scenarios(protocol)
    assert report.ok and report.results
    impact = compare_packs(protocol, load_protocol(RULES), population_size=20, workers=1)
    assert impact.pack_changes == () and impact.differing == ()
    assert impact.scenarios >= len(report.results)


def test_no_stage_reads_the_files_again_once_the_pack_is_loaded(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    protocol, other = load_protocol(folder), load_protocol(RULES)
    from crs_rules.pack_diff import pack_changes
    from crs_rules.scenario_reading import load_scenarios

    reads: list[str] = []
    real_open = builtins.open

    def refuse(*arguments: object, **keywords: object) -> bytes:
        reads.append(str(arguments[0]) if arguments else "?")
        raise AssertionError("a pack file was read again")

    real_bytes, real_text = Path.read_bytes, Path.read_text

    def in_a_pack(file: Any) -> bool:
        return str(file).startswith((str(folder), str(RULES)))

    def guarded_open(file: Any, *arguments: Any, **keywords: Any) -> Any:
        if in_a_pack(file):
            refuse(file)
        return real_open(file, *arguments, **keywords)

    def guarded_bytes(path: Path) -> bytes:
        if in_a_pack(path):
            refuse(path)
        return real_bytes(path)

    def guarded_text(path: Path, *arguments: Any, **keywords: Any) -> str:
        if in_a_pack(path):
            refuse(path)
        return real_text(path, *arguments, **keywords)

    # Every way the package reads a file: its bounded reader (under both names), Path and open.
    monkeypatch.setattr("crs_rules.pack_reading.read_bounded", refuse)
    monkeypatch.setattr("crs_rules.loading.read_bounded", refuse)
    monkeypatch.setattr(Path, "read_bytes", guarded_bytes)
    monkeypatch.setattr(Path, "read_text", guarded_text)
    monkeypatch.setattr(builtins, "open", guarded_open)
    _, rows, problems = trace(protocol)
    assert problems == [] and rows
    assert len(load_scenarios(folder, protocol)) > 0
    assert pack_changes(protocol, other) == ()
    monkeypatch.undo()
    assert reads == []


def test_a_release_reads_each_file_of_the_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    target = draft(tmp_path / "rules", tmp_path / "next")
    path = target / "actions.yaml"
    text = path.read_text(encoding="utf-8")
    old = "    description: Consider vasopressors as needed at grade 3 and grade 4.\n"
    assert text.count(old) == 1
    path.write_text(text.replace(old, old.replace(".\n", ", titrated to effect.\n")), encoding="utf-8")
    reads: Counter[str] = Counter()
    real = read_bounded

    def counted(file: Path, *arguments: Any, **keywords: Any) -> bytes:
        reads[str(Path(file).relative_to(target))] += 1
        return real(file, *arguments, **keywords)

    monkeypatch.setattr("crs_rules.pack_reading.read_bounded", counted)
    released = release(target, "patch", "Vasopressors titrated to effect.")
    assert released.status == "active" and released.recorded_digest == released.digest
    assert reads and set(reads.values()) == {1}, reads
    assert {"manifest.yaml", "actions.yaml", "seed-protocol.txt"} <= set(reads)
    assert load_protocol(target).digest == released.digest  # what it returns is what it wrote


def test_the_protocol_knows_where_its_status_is_written(shipped: Protocol) -> None:
    assert shipped.status_source is not None
    lines = Path(shipped.status_source.file).read_text(encoding="utf-8").splitlines()
    line = lines[shipped.status_source.line - 1]
    assert line.startswith("status:") and line[shipped.status_source.column - 1:] == shipped.status


def test_a_replaced_protocol_keeps_its_files_and_one_without_reads_only_its_own_content(
        shipped: Protocol, tmp_path: Path) -> None:
    from crs_rules.errors import InvalidPackError
    from crs_rules.pack import pack_files

    copy = dataclasses.replace(shipped, title=shipped.title + " (copy)")
    assert copy.files is shipped.files and pack_files(copy) is shipped.files
    # Without files (a protocol built by hand), the folder is read and checked against the digest.
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    bare = dataclasses.replace(load_protocol(folder), files=None)
    assert pack_files(bare).documents["grading"].data == pack_files(shipped).documents["grading"].data
    grading = folder / "grading.yaml"
    grading.write_text(grading.read_text(encoding="utf-8").replace(
        "engagement of endogenous", "engagement of the endogenous", 1), encoding="utf-8")
    with pytest.raises(InvalidPackError) as raised:
        pack_files(bare)
    (problem,) = raised.value.problems
    assert problem.file == str(folder / "manifest.yaml")
    assert "not the protocol's content" in problem.message


def test_the_pack_s_own_scenarios_are_not_read_again_under_another_spelling_of_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crs_rules.scenario_reading import load_scenarios

    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    (tmp_path / "link").symlink_to(folder)
    protocol = load_protocol(tmp_path / "link")
    expected = len(load_scenarios(tmp_path / "link", protocol))

    def refuse(*arguments: object, **keywords: object) -> bytes:
        raise AssertionError("a scenario file was read again")

    monkeypatch.setattr("crs_rules.pack_reading.read_bounded", refuse)
    monkeypatch.chdir(tmp_path)
    for spelling in (folder, Path("pack"), Path("link/../pack"), Path("./link")):
        assert len(load_scenarios(spelling, protocol)) == expected > 0, spelling
