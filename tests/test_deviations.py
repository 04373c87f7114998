"""Declared deviations and additions: traceability runs both ways.

Every seed statement has rules that encode it or a declared deviation (what the pack does instead,
why, who decided when); every rule of the pack encodes a statement or is a declared addition with
its reason. Each test copies the shipped pack (a draft without recorded digest, so editing it raises
no release problem), removes or breaks one declaration, and checks the exact problem reported by
``load_protocol`` / ``crs-rules validate`` and ``crs-rules trace --check``; then that the declaration
makes the copy valid again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import seed_numbers_pack

from crs_rules.model import Protocol
from crs_rules.pack import load_protocol
from crs_rules.traceability import TABLE, render_table, trace
from crs_rules.validation import SEMANTIC_CHECKS, check_traced_both_ways

from packing import at, cli, draft_copy, edit, only, problems, where

ROOT = Path(__file__).resolve().parent.parent
RULES = seed_numbers_pack()  # a copy of the pack under test with the seed's numbers
CHECK = "traced-both-ways"

NEW_ALERT = """
  - id: fluid_balance_review
    severity: info
    description: A fluid balance review for a hypotensive patient.
    text: Review the fluid balance.
    when: {fact: vitals.hypotension, equals: true}
    citations: [ref1]
"""

NEW_ADDITION = """  - rule: alert.fluid_balance_review
    reason: >-
      A local nursing reminder the seed does not ask for.
"""


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A draft copy of the shipped pack, without its recorded digest."""
    return draft_copy(tmp_path / "pack")


def item(pack: Path, name: str, first_line: str) -> str:
    """The text of the list item starting with ``first_line`` (up to the next item, blank line or
    comment at the item's indentation, or the end of the file)."""
    text = (pack / name).read_text(encoding="utf-8")
    assert text.count(first_line) == 1, f"{first_line!r} is not written exactly once in {name}"
    start = text.index(first_line)
    indent = first_line[: len(first_line) - len(first_line.lstrip())]
    end = start + len(first_line)
    for line in text[end:].splitlines(keepends=True):
        if not line.strip() or not line.startswith(indent + "  ") or line.startswith(indent + "- "):
            break
        end += len(line)
    return text[start:end]


def remove_item(pack: Path, name: str, first_line: str) -> None:
    edit(pack, name, item(pack, name, first_line), "")


def add_to_list(pack: Path, key: str, entry: str) -> None:
    """Append ``entry`` to the top-level list ``key:`` of statements.yaml (which is the last or is
    followed by a blank line or comment)."""
    path = pack / "statements.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n{key}:\n") + len(f"\n{key}:\n")
    end = start
    for line in text[start:].splitlines(keepends=True):
        if line.strip() and not line.startswith(" "):
            break
        end += len(line)
    body = text[start:end].rstrip("\n") + "\n"
    path.write_text(text[:start] + body + entry + "\n" + text[end:].lstrip("\n"), encoding="utf-8")


# --------------------------------------------------------------------------- the shipped pack


def test_the_check_is_registered() -> None:
    assert check_traced_both_ways in SEMANTIC_CHECKS


def test_the_shipped_pack_declares_that_sepsis_alone_does_not_follow_the_first_statement(protocol: Protocol) -> None:
    deviation = next(d for d in protocol.deviations if d.id == "D01")
    assert deviation.statement == "S01"
    assert protocol.statements[0].id == "S01" and protocol.statements[0].text.startswith("For severe Cytokine")
    assert "therapy.car_t false" in deviation.instead and "alert.sepsis_protocol" in deviation.instead
    assert "hemoperfusion" in deviation.instead
    assert "label warns against use in serious infection" in deviation.reason
    assert "following immune therapy" in deviation.reason
    assert deviation.decided_by.startswith("clinical pharmacy")
    assert deviation.date == "2026-12-01"
    assert set(deviation.rules) >= {"alert.sepsis_protocol", "refractory.hemoperfusion"}


def test_every_rule_of_the_shipped_pack_encodes_a_statement_or_is_a_declared_addition(protocol: Protocol) -> None:
    encoded = {rule for statement in protocol.statements for rule in statement.encoded_by}
    added = {addition.rule: addition.reason for addition in protocol.additions}
    assert [rule for rule in protocol.rule_ids() if rule not in encoded and rule not in added] == []
    assert "alert.sepsis_protocol" in added
    assert "applies_when" in added["crs.definition"]
    assert all(reason.strip() for reason in added.values())
    assert list(check_traced_both_ways(protocol)) == []


def test_the_table_shows_the_deviation_and_the_additions(protocol: Protocol) -> None:
    traced, rows, found = trace(RULES)
    assert found == []
    table = render_table(traced, rows)
    assert (RULES / TABLE).read_text(encoding="utf-8") == table
    lines = table.splitlines()
    s01 = next(line for line in lines if line.startswith("| S01 |"))
    assert "deviation D01" in s01
    deviations = lines.index("## Declared deviations from the seed")
    additions = lines.index("## Declared additions")
    assert deviations < additions
    d01 = next(line for line in lines[deviations:additions] if line.startswith("| D01 |"))
    cells = [cell.strip() for cell in d01.strip("|").split(" | ")]
    assert cells[1].startswith("S01: For severe Cytokine Release Syndrome (CRS) or sepsis")
    assert "alert.sepsis_protocol" in cells[2]  # instead
    assert "serious infection" in cells[3]  # reason
    assert cells[4].startswith("clinical pharmacy")  # decided by
    assert cells[5] == "2026-12-01"
    sepsis = next(line for line in lines[additions:] if line.startswith("| `alert.sepsis_protocol` |"))
    assert "sepsis protocol" in sepsis and sepsis.endswith("| carries out D01 |")
    definition = next(line for line in lines[additions:] if line.startswith("| `crs.definition` |"))
    assert "applies_when" in definition and "encodes S02" in definition


# --------------------------------------------------------------------------- rules -> statement or addition


def test_a_rule_no_statement_encodes_and_no_addition_declares_is_refused(pack: Path) -> None:
    remove_item(pack, "statements.yaml", "  - rule: alert.sepsis_protocol\n")
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "id: sepsis_protocol")
    assert problem.subject == "alert.sepsis_protocol"
    assert problem.check == CHECK
    assert problem.message == "no seed statement encodes this rule and no addition declares it"
    assert problem.expected == (
        "expected its id in a statement's encoded_by in statements.yaml, or an addition there with its "
        "reason: additions: [{rule: alert.sepsis_protocol, reason: ...}]")


def test_a_new_rule_must_be_declared_an_addition_with_its_reason(pack: Path) -> None:
    path = pack / "alerts.yaml"
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + "\n" + NEW_ALERT, encoding="utf-8")
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "id: fluid_balance_review")
    assert (problem.subject, problem.check) == ("alert.fluid_balance_review", CHECK)
    assert "additions: [{rule: alert.fluid_balance_review, reason: ...}]" in problem.expected

    add_to_list(pack, "additions", NEW_ADDITION)
    protocol = load_protocol(pack)
    assert protocol.additions[-1].rule == "alert.fluid_balance_review"
    assert protocol.additions[-1].reason == "A local nursing reminder the seed does not ask for."


def test_an_addition_naming_an_unknown_rule_is_refused(pack: Path) -> None:
    edit(pack, "statements.yaml", "  - rule: crs.definition\n", "  - rule: crs.definitions\n")
    found = problems(pack)
    assert {(p.subject, p.message) for p in found} == {
        ("crs.definitions", "an addition declares rule 'crs.definitions', which does not exist"),
    }
    problem = found[0]
    assert where(problem) == at(pack, "statements.yaml", "rule: crs.definitions")
    assert (problem.check, problem.expected) == (CHECK, "expected the id of a rule of this pack")


def test_a_rule_declared_an_addition_twice_is_refused(pack: Path) -> None:
    add_to_list(pack, "additions", "  - rule: alert.sepsis_protocol\n    reason: Declared again.\n")
    problem = only(pack)
    assert where(problem) == at(pack, "statements.yaml", "rule: alert.sepsis_protocol\n    reason: Declared again.")
    assert problem.check == CHECK
    assert problem.message.startswith("rule 'alert.sepsis_protocol' is declared an addition twice (first at ")


# --------------------------------------------------------------------------- statements -> rules or deviation


def test_a_statement_without_rules_needs_a_deviation(pack: Path) -> None:
    s28 = item(pack, "statements.yaml", "  - id: S28\n")
    encoded = next(line for line in s28.splitlines(keepends=True) if "encoded_by:" in line)
    edit(pack, "statements.yaml", s28, s28.replace(encoded, "    encoded_by: []\n"))
    problem = only(pack)
    assert where(problem) == at(pack, "statements.yaml", "id: S28")
    assert (problem.subject, problem.check) == ("S28", CHECK)
    assert problem.message == "no rule encodes this statement and no deviation replaces it"
    assert problem.expected.startswith("expected its rule ids in encoded_by, or a deviation in statements.yaml: "
                                       "deviations: [{id: D.., statement: S28, ")

    add_to_list(pack, "deviations", (
        "  - id: D02\n"
        "    statement: S28\n"
        "    instead: Hemoperfusion is considered by its own statements only.\n"
        "    reason: A local decision for this test.\n"
        "    decided_by: clinical pharmacy\n"
        '    date: "2026-12-01"\n'))
    protocol = load_protocol(pack)
    assert [d.id for d in protocol.deviations][-1] == "D02"
    code, out, err = cli("trace", str(pack))
    assert (code, err) == (0, "")
    code, out, err = cli("trace", str(pack), "--check")
    assert (code, err) == (0, "")
    table = (pack / TABLE).read_text(encoding="utf-8")
    assert "| S28 | For cases refractory to tocilizumab and steroids, consider: | none<br>deviation D02 |" in table
    assert "| D02 | S28: For cases refractory to tocilizumab and steroids, consider: |" in table


def test_a_deviation_naming_an_unknown_statement_is_refused(pack: Path) -> None:
    edit(pack, "statements.yaml", "    statement: S01\n", "    statement: S99\n")
    problem = only(pack)
    assert where(problem) == at(pack, "statements.yaml", "id: D01")
    assert (problem.subject, problem.check) == ("D01", CHECK)
    assert problem.message == "names statement 'S99', which does not exist"
    assert problem.expected == "expected the id of a statement of statements.yaml"


def test_a_deviation_naming_an_unknown_rule_is_refused(pack: Path) -> None:
    d01 = item(pack, "statements.yaml", "  - id: D01\n")
    rules = next(line for line in d01.splitlines(keepends=True) if line.startswith("    rules:"))
    edit(pack, "statements.yaml", d01, d01.replace(rules, "    rules: [alert.sepsis_protocols]\n"))
    problem = only(pack)
    assert where(problem) == at(pack, "statements.yaml", "id: D01")
    assert (problem.subject, problem.check) == ("D01", CHECK)
    assert problem.message == "names rule 'alert.sepsis_protocols', which does not exist"


def test_a_duplicate_deviation_id_is_refused(pack: Path) -> None:
    add_to_list(pack, "deviations", (
        "  - id: D01\n"
        "    statement: S02\n"
        "    instead: Something else.\n"
        "    reason: A second entry under the same id.\n"
        "    decided_by: clinical pharmacy\n"
        '    date: "2026-12-01"\n'))
    problem = only(pack)
    assert (problem.subject, problem.check) == ("D01", CHECK)
    assert problem.message.startswith("duplicate deviation id 'D01' (first defined at ")


# --------------------------------------------------------------------------- the schema of a declaration


def test_a_deviation_without_who_decided_is_refused(pack: Path) -> None:
    d01 = item(pack, "statements.yaml", "  - id: D01\n")
    decided = next(line for line in d01.splitlines(keepends=True) if line.startswith("    decided_by:"))
    edit(pack, "statements.yaml", d01, d01.replace(decided, ""))
    problem = only(pack)
    assert where(problem) == at(pack, "statements.yaml", "id: D01")
    assert problem.message == "the key 'decided_by' is missing"


def test_a_digit_in_a_reason_is_refused(pack: Path) -> None:
    edit(pack, "statements.yaml", "    reason: >-\n      Tocilizumab is labelled for CRS",
         "    reason: >-\n      Tocilizumab (since 2017) is labelled for CRS")
    problem = only(pack)
    assert problem.subject == "D01"
    assert problem.expected == "expected a non-empty text without digits (numbers live in the rules' data)"


def test_an_addition_without_reason_is_refused(pack: Path) -> None:
    addition = item(pack, "statements.yaml", "  - rule: alert.sepsis_protocol\n")
    edit(pack, "statements.yaml", addition, "  - rule: alert.sepsis_protocol\n")
    problem = only(pack)
    assert where(problem) == at(pack, "statements.yaml", "rule: alert.sepsis_protocol")
    assert problem.message == "the key 'reason' is missing"


# --------------------------------------------------------------------------- the command line


def test_validate_and_trace_check_name_an_undeclared_rule(pack: Path) -> None:
    remove_item(pack, "statements.yaml", "  - rule: alert.sepsis_protocol\n")
    file, line, column = at(pack, "alerts.yaml", "id: sepsis_protocol")
    expected = (f"{file}:{line}:{column}: alert.sepsis_protocol: no seed statement encodes this rule and no "
                "addition declares it; expected its id in a statement's encoded_by in statements.yaml, or an "
                "addition there with its reason: additions: [{rule: alert.sepsis_protocol, reason: ...}]")
    for command in (("validate", str(pack)), ("trace", str(pack), "--check")):
        code, out, err = cli(*command)
        assert (code, out) == (1, ""), command
        assert err.splitlines() == [expected, "1 problem(s): invalid rule pack"], command
