"""`crs-rules validate --format json` and `crs-rules test --format json`: what editors and CI read.
Every problem is an object (file, line, column, rule, message, expected, check) and every scenario
result one too; the exit codes are those of the text format."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import pack_under_test

from crs_rules.cli import run

PROBLEM_KEYS = {"file", "line", "column", "rule", "message", "expected", "check"}


def cli_json(*arguments: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, json.loads(out.getvalue()), err.getvalue()


def edit(pack: Path, name: str, old: str, new: str) -> None:
    path = pack / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not written exactly once in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    """A draft copy of the pack under test, edited freely by a test."""
    code, _, _ = cli_json_or_text("draft", str(pack_under_test()), str(tmp_path / "draft"))
    assert code == 0
    return tmp_path / "draft"


def cli_json_or_text(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    return code, out.getvalue(), err.getvalue()


def test_validate_json_of_a_valid_pack_names_it_and_no_problem() -> None:
    pack = pack_under_test()
    manifest = yaml.safe_load((pack / "manifest.yaml").read_text(encoding="utf-8"))
    code, found, err = cli_json("validate", "--format", "json", str(pack))
    assert (code, err) == (0, "")
    assert found["ok"] is True and found["problems"] == []
    assert found["protocol"]["id"] == manifest["protocol"]
    assert found["protocol"]["version"] == manifest["version"]
    assert found["protocol"]["status"] == "active"
    assert found["protocol"]["digest"] == manifest["digest"]


def test_validate_json_lists_every_problem_as_an_object_at_its_position(draft: Path) -> None:
    # Two mistakes in one draft: a tenfold cap and a tenfold shorter interval, both beyond the envelope.
    text = (draft / "dosing.yaml").read_text(encoding="utf-8")
    cap_line = next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith("max_dose_mg:"))
    cap_column = text.splitlines()[cap_line - 1].index("max_dose_mg:") + len("max_dose_mg: ") + 1
    cap = text.splitlines()[cap_line - 1].split(":", 1)[1].strip()
    edit(draft, "dosing.yaml", f"max_dose_mg: {cap}\n", "max_dose_mg: 9000\n")
    edit(draft, "dosing.yaml", "min_interval_h: 8\n", "min_interval_h: 0.8\n")
    code, found, err = cli_json("validate", "--format", "json", str(draft))
    assert code == 1 and err == ""
    assert found["ok"] is False and found["protocol"] is None
    problems = found["problems"]
    assert len(problems) == 2 and all(set(p) == PROBLEM_KEYS for p in problems)
    assert problems == sorted(problems, key=lambda p: (p["file"], p["line"], p["column"]))
    envelope = [p for p in problems if "9000 mg" in p["message"]]
    assert len(envelope) == 1 and envelope[0]["check"] == "safety-envelope"
    assert envelope[0]["file"] == str(draft / "dosing.yaml")
    assert (envelope[0]["line"], envelope[0]["column"]) == (cap_line, cap_column)
    assert envelope[0]["rule"] == "dosing.tocilizumab"
    assert "800 mg" in envelope[0]["message"]
    assert (envelope[0]["line"] + 1, "dosing.tocilizumab") == (problems[1]["line"], problems[1]["rule"])
    assert "0.8 h" in problems[1]["message"] and "8 h" in problems[1]["message"]


def test_validate_json_of_a_missing_folder_is_a_problem_object(tmp_path: Path) -> None:
    code, found, _ = cli_json("validate", "--format", "json", str(tmp_path / "nowhere"))
    assert code == 1 and found["ok"] is False
    assert len(found["problems"]) == 1 and set(found["problems"][0]) == PROBLEM_KEYS


def test_test_json_gives_each_scenario_and_the_coverage(draft: Path) -> None:
    # One expectation made wrong on purpose: that scenario, and only it, fails.
    scenarios = draft / "scenarios" / "grading.yaml"
    text = scenarios.read_text(encoding="utf-8")
    assert "expect:\n      grade: 1\n" in text
    scenarios.write_text(text.replace("expect:\n      grade: 1\n", "expect:\n      grade: 2\n", 1), encoding="utf-8")
    names = [s["name"] for document in [yaml.safe_load(p.read_text(encoding="utf-8"))
                                        for p in sorted((draft / "scenarios").glob("*.yaml"))]
             for s in document["scenarios"]]
    code, found, err = cli_json("test", "--format", "json", str(draft))
    assert code == 1 and err == ""
    assert found["ok"] is False and found["protocol"]["status"] == "draft"
    assert sorted(s["name"] for s in found["scenarios"]) == sorted(names)
    assert all(set(s) == {"name", "file", "line", "passed", "differences"} for s in found["scenarios"])
    failed = [s for s in found["scenarios"] if not s["passed"]]
    assert len(failed) == 1 and (found["passed"], found["failed"]) == (len(names) - 1, 1)
    assert failed[0]["file"] == str(scenarios)
    assert failed[0]["differences"] == ["expected grade 2, got grade 1"]
    coverage = found["coverage"]
    assert coverage["checked"] <= coverage["rules"] and 0 <= coverage["percent"] <= 100


def test_test_json_names_each_rule_whose_outcome_no_scenario_checks(draft: Path) -> None:
    shutil.rmtree(draft / "scenarios")
    (draft / "scenarios").mkdir()
    (draft / "scenarios" / "one.yaml").write_text(
        "scenarios:\n"
        "  - name: afebrile-adult\n"
        "    description: An adult without fever; nothing to grade.\n"
        "    patient:\n"
        "      assessed_at: 2026-03-10T12:00:00Z\n"
        "      patient: {weight_kg: 70, age_years: 61}\n"
        "      therapy: {car_t: true}\n"
        "      crs: {antipyretic_or_anticytokine: false}\n"
        "      vitals: {temperature_c: 36.8, hypotension: false, oxygen: {device: room_air}}\n"
        "      medications: []\n"
        "    expect:\n"
        "      grade: 0\n",
        encoding="utf-8",
    )
    code, found, _ = cli_json("test", "--format", "json", str(draft))
    assert code == 1 and found["ok"] is False
    assert (found["passed"], found["failed"]) == (1, 0)
    missing = found["coverage"]["not_checked"]
    assert len(missing) == found["coverage"]["rules"] - found["coverage"]["checked"] > 0
    assert all(set(m) == {"rule", "file", "line"} for m in missing)
    assert all(m["file"] is None or m["file"].startswith(str(draft)) for m in missing)
    assert found["coverage"]["percent"] < 100


def test_test_json_of_invalid_scenarios_lists_their_problems(draft: Path) -> None:
    (draft / "scenarios" / "broken.yaml").write_text("scenarios:\n  - name: x\n", encoding="utf-8")
    code, found, _ = cli_json("test", "--format", "json", str(draft))
    assert code == 1 and found["ok"] is False and found["protocol"]["status"] == "draft"
    assert found["problems"] and all(p["file"] == str(draft / "scenarios" / "broken.yaml") for p in found["problems"])
    assert "scenarios" not in found
