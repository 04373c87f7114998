"""Batch evaluation: ``evaluate_many`` and ``crs-rules evaluate --ndjson``.

Every decision of a batch is the decision ``evaluate`` gives for the same state; bad input stops
``evaluate_many`` at that state and becomes an error line (with its line number) in a stream.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crs_rules import InvalidInputError, InvalidPackError, evaluate, evaluate_many
from crs_rules.cli import run
from crs_rules.model import Protocol
from crs_rules.patient import MAX_INPUT_BYTES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted((ROOT / "examples").glob("*.yaml"))]


def _line(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False) + "\n"


def _run(arguments: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(arguments, out, err)
    return code, out.getvalue(), err.getvalue()


def test_evaluate_many_gives_the_decisions_evaluate_gives_in_order(protocol: Protocol) -> None:
    batch = [d.to_dict() for d in evaluate_many(EXAMPLES, protocol)]
    assert batch == [evaluate(data, protocol).to_dict() for data in EXAMPLES]
    assert len(batch) == len(EXAMPLES) >= 7


def test_evaluate_many_is_lazy_and_stops_at_the_bad_state(protocol: Protocol) -> None:
    bad = {**EXAMPLES[0], "patient": {"weight_kg": -1}}
    decisions = evaluate_many([EXAMPLES[0], EXAMPLES[1], bad, EXAMPLES[2]], protocol)
    first, second = next(decisions), next(decisions)
    assert first.to_dict() == evaluate(EXAMPLES[0], protocol).to_dict()
    assert second.to_dict() == evaluate(EXAMPLES[1], protocol).to_dict()
    with pytest.raises(InvalidInputError) as raised:
        next(decisions)
    assert [p.subject for p in raised.value.problems] == ["patient.weight_kg"]


def test_evaluate_many_refuses_a_draft_unless_asked(protocol: Protocol) -> None:
    draft = dataclasses.replace(protocol, status="draft")
    with pytest.raises(InvalidPackError):
        next(evaluate_many(EXAMPLES, draft))
    assert next(evaluate_many(EXAMPLES, draft, allow_draft=True)).protocol.status == "draft"


def test_ndjson_writes_one_decision_per_line_as_evaluate_json_does(tmp_path: Path, protocol: Protocol) -> None:
    stream = tmp_path / "patients.ndjson"
    stream.write_text("".join(_line(d) for d in EXAMPLES), encoding="utf-8")
    code, out, err = _run(["evaluate", "--ndjson", str(stream)])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [json.loads(line) for line in lines] == [evaluate(d, protocol).to_dict() for d in EXAMPLES]


def test_ndjson_reports_bad_lines_with_their_numbers_and_decides_the_others(tmp_path: Path) -> None:
    stream = tmp_path / "patients.ndjson"
    no_weight = {**EXAMPLES[1], "patient": {}}
    stream.write_bytes(
        _line(EXAMPLES[0]).encode() + b"\n" + b"[1, 2]\n" + _line(no_weight).encode() + b"\xff{}\n"
        + _line(EXAMPLES[2]).encode()
    )
    code, out, err = _run(["evaluate", "--ndjson", str(stream)])
    assert code == 1
    assert err == "3 line(s) in error, 2 patient(s) decided\n"
    entries = [json.loads(line) for line in out.splitlines()]
    assert len(entries) == 5  # the blank line 2 gives none
    assert "grade_status" in entries[0] and "grade_status" in entries[4]
    assert [(e["line"], e["error"]) for e in entries[1:4]] == [(3, "invalid input"), (4, "invalid input"),
                                                              (5, "invalid input")]
    assert [p["check"] for p in entries[1]["problems"]] == ["input.json"]
    assert [(p["file"], p["line"], p["subject"]) for p in entries[2]["problems"]] == [
        (str(stream), 4, "patient.weight_kg")]
    assert entries[3]["problems"][0]["message"] == "is not UTF-8 text (byte 0xFF at offset 0)"


def test_ndjson_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    data = "".join(_line(d) for d in EXAMPLES[:2]).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, _ = _run(["evaluate", "--ndjson", "-"])
    assert code == 0 and len(out.splitlines()) == 2


def test_ndjson_stops_reading_at_a_line_longer_than_the_input_limit(tmp_path: Path) -> None:
    stream = tmp_path / "patients.ndjson"
    stream.write_bytes(_line(EXAMPLES[0]).encode() + b"{" + b" " * MAX_INPUT_BYTES + b"}\n" + _line(EXAMPLES[1]).encode())
    code, out, err = _run(["evaluate", "--ndjson", str(stream)])
    assert code == 1
    entries = [json.loads(line) for line in out.splitlines()]
    assert len(entries) == 2  # the patient after the long line is not read
    assert (entries[1]["line"], entries[1]["problems"][0]["check"]) == (2, "input.size")
    assert err.endswith("reading stopped at the line too long\n")


def test_ndjson_keeps_every_line_valid_json_with_terminal_controls_in_values(tmp_path: Path) -> None:
    stream = tmp_path / "patients.ndjson"
    odd = {**EXAMPLES[0], "medications": [{"drug": "x\u0085\u202e", "given_at": "2026-03-10T08:00:00Z"}]}
    stream.write_text(_line(odd), encoding="utf-8")
    code, out, _ = _run(["evaluate", "--ndjson", str(stream)])
    assert "\u0085" not in out and "\u202e" not in out
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and entry["error"] == "invalid input"
    assert any("\u0085" in p["message"] for p in entry["problems"])  # the value, escaped, still JSON
