"""Adding an input field is one declaration: a property of ``schemas/patient.schema.json`` with its
``x-meaning``. Nothing else is edited, and the field is read, reaches the engine's facts, can be
named by a pack's condition (which validates and grades with it; the grade's basis then names it in
its words), is drawn by the generated population of ``crs-rules diff`` and named in its patient
descriptions, and is listed by ``crs-rules facts``.

The proof runs on a copy of the package whose schema declares one more field, in a child process
(the table of fields is read when the package is imported).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import seed_numbers_pack

from crs_rules.impact import population_inputs
from crs_rules.model import Protocol
from crs_rules.pack import load_protocol

from packing import ROOT, draft_copy, edit


def seed_numbers_protocol() -> Protocol:
    return load_protocol(seed_numbers_pack())


#: The one declaration: a boolean sign of the vitals.
CAPILLARY_LEAK = {
    "x-meaning": "the patient has capillary leak",
    "x-unrecorded": "capillary leak not recorded",
    "$ref": "#/$defs/boolean_or_unknown",
    "description": "Whether the patient has capillary leak. Null or absent when unknown.",
}

#: What the child process does with the copy: the field as the library sees it, end to end.
SCRIPT = r"""
import io, json, sys
import crs_rules
from crs_rules import evaluate, load_protocol
from crs_rules.cli import run
from crs_rules.impact import describe_patient, population_inputs
from crs_rules.facts import INPUT_FACTS, flat_facts
from crs_rules.patient import parse_patient, state_input

pack = load_protocol(sys.argv[1])
data = json.loads(sys.argv[2])
state = parse_patient(data)
unknown = parse_patient({key: value for key, value in data.items() if key != "vitals"})
decision = evaluate(data, pack, allow_draft=True)
unrecorded = evaluate({**data, "vitals": {k: v for k, v in data["vitals"].items() if k != "capillary_leak"}},
                      pack, allow_draft=True)
without = evaluate({**data, "vitals": {**data["vitals"], "capillary_leak": False}}, pack, allow_draft=True)
out, err = io.StringIO(), io.StringIO()
code = run(["facts", sys.argv[1]], out, err)
drawn = [d for _, d in population_inputs((pack,), 200, 1)]
leaks = sorted({json.dumps(d.get("vitals", {}).pop("capillary_leak", "absent")) for d in drawn})
for d in drawn:
    if d.get("vitals") == {}:
        del d["vitals"]
print(json.dumps({
    "drawn": leaks,
    "others": drawn,
    "described": describe_patient(state),
    "package": crs_rules.__file__,
    "inputs": dict(state.inputs),
    "value": state.value("vitals.capillary_leak"),
    "unknown": unknown.value("vitals.capillary_leak"),
    "given_back": state_input(state)["vitals"],
    "fact_type": INPUT_FACTS["vitals.capillary_leak"].kind,
    "fact": flat_facts(state, pack).get("vitals.capillary_leak"),
    "grade": decision.crs_grade,
    "basis": decision.grade_basis,
    "grade_without": without.crs_grade,
    "basis_unrecorded": unrecorded.grade_basis,
    "facts_code": code,
    "facts_lines": [line for line in out.getvalue().splitlines() if "capillary_leak" in line],
}))
"""


def copy_with_the_field(folder: Path) -> tuple[Path, Path]:
    """A copy of the package (its schemas and pack included) whose schema declares
    ``vitals.capillary_leak``, and a draft of the pack under test in it whose hypotension level 2
    also counts capillary leak."""
    package = folder / "site" / "crs_rules"
    shutil.copytree(ROOT / "crs_rules", package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    (package / "data").mkdir()
    shutil.copytree(ROOT / "schemas", package / "data" / "schemas")
    schema_path = package / "data" / "schemas" / "patient.schema.json"
    schema: dict[str, Any] = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["properties"]["vitals"]["properties"]["capillary_leak"] = CAPILLARY_LEAK
    schema_path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
    pack = draft_copy(package / "data" / "rules")
    edit(pack, "grading.yaml",
         "            - {fact: vitals.hypotension, equals: true}\n",
         "            - any: [{fact: vitals.hypotension, equals: true}, {fact: vitals.capillary_leak, equals: true}]\n")
    return package.parent, pack


def test_a_field_declared_in_the_schema_alone_is_read_graded_and_listed(tmp_path: Path) -> None:
    site, pack = copy_with_the_field(tmp_path)
    patient = {"assessed_at": "2026-03-10T12:00:00Z", "patient": {"weight_kg": 70},
               "therapy": {"car_t": True}, "vitals": {"temperature_c": 39.0, "capillary_leak": True,
                                                      "hypotension": False, "oxygen": {"device": "room_air"}}}
    environment = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(pack), json.dumps(patient)], env=environment, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert Path(seen["package"]).is_relative_to(site)  # the copy, not this checkout
    assert seen["inputs"] == {"vitals.capillary_leak": True}
    assert (seen["value"], seen["unknown"]) == (True, None)
    assert seen["given_back"]["capillary_leak"] is True
    assert (seen["fact_type"], seen["fact"]) == ("boolean", True)
    # Fever with capillary leak is grade 2 under the edited pack; without it, grade 1.
    assert (seen["grade"], seen["grade_without"]) == (2, 1)
    # The grade's basis lists the inputs the grade criteria read, in the schema's words.
    assert "capillary leak not recorded" in seen["basis_unrecorded"]
    assert "capillary leak" not in seen["basis"]
    # The generated patients of crs-rules diff draw it (true, false, unknown, absent); the one-line
    # description of a patient names it when true.
    assert seen["drawn"] == sorted(['true', 'false', 'null', '"absent"'])
    # ... and every other value of every patient as this checkout draws it.
    assert seen["others"] == [d for _, d in population_inputs((seed_numbers_protocol(),), 200, 1)]
    assert "; capillary leak;" in seen["described"]
    assert seen["facts_code"] == 0
    assert len(seen["facts_lines"]) == 1
    assert seen["facts_lines"][0].split()[:2] == ["vitals.capillary_leak", "true/false"]
    assert seen["facts_lines"][0].endswith("the patient has capillary leak")
