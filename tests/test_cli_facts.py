"""``crs-rules facts``: the data dictionary of the input fields, and the pack's drug vocabulary."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from crs_rules import load_protocol
from crs_rules.cli import run
from crs_rules.fields import FIELDS
from crs_rules.vocabulary import canonical_names

ROOT = Path(__file__).resolve().parent.parent
VASOPRESSORS = ["norepinephrine", "epinephrine", "phenylephrine", "dopamine", "angiotensin_ii", "vasopressin",
                "terlipressin"]


def cli(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    return code, out.getvalue(), err.getvalue()


def rows(text: str) -> dict[str, list[str]]:
    """The table's rows by their first cell, cells split at two or more spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("FIELD ", "DRUG ")))
    table = lines[start + 1:lines.index("", start)]
    return {cells[0]: cells for cells in (re.split(r" {2,}", line) for line in table)}


def test_facts_prints_one_row_per_input_field_with_type_unit_range_and_meaning() -> None:
    code, out, err = cli("facts")
    assert (code, err) == (0, "")
    version = load_protocol().version  # the pack it reads: the shipped one
    assert out.splitlines()[0] == f"Input fields of a patient state for severe-crs-and-sepsis {version} (schemas/patient.schema.json)."
    table = rows(out)
    assert list(table) == [f.path for f in FIELDS]
    assert table["patient.weight_kg"] == ["patient.weight_kg", "number, required", "kg", "from 0.2 to 650",
                                          "body weight, for weight-based doses"]
    assert table["vitals.temperature_f"][1:4] == ["number", "°F", "from 55.4 to 116.6"]
    assert table["vitals.oxygen.flow_l_min"][1:4] == ["number", "L/min", "from 0 to 100"]
    assert table["medications[].dose_mg"][1:4] == ["number", "mg", "above 0, at most 1000000"]
    assert table["vitals.oxygen.device"][1] == "choice, required in vitals.oxygen"
    assert table["vitals.oxygen.device"][2].startswith("one of: room_air, blow_by, nasal_cannula, ")
    assert table["crs.improving"][1:3] == ["true/false", "true, false, or null (unknown)"]
    assert table["medications"][1:3] == ["list of records", "at most 1000 items"]
    assert table["medications[].drug"][1] == "drug name, required in each"
    # The closed vocabulary of vasopressors is the pack's.
    assert table["vitals.vasopressors"][2] == "the pack's vasopressors, by any name, at most 20 items"
    assert (f"The pack's vasopressors (vitals.vasopressors): {', '.join(VASOPRESSORS)}; "
            "their other names: crs-rules facts --vocabulary.") in out.splitlines()


def test_facts_as_json_gives_every_field_with_its_bounds_and_the_packs_vasopressors() -> None:
    code, out, err = cli("facts", "--format", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["protocol"] == {"id": "severe-crs-and-sepsis", "version": load_protocol().version}
    fields = {f["field"]: f for f in data["fields"]}
    assert list(fields) == [f.path for f in FIELDS]
    assert {k: fields["patient.weight_kg"][k] for k in ("type", "unit", "minimum", "maximum", "required")} == {
        "type": "number", "unit": "kg", "minimum": 0.2, "maximum": 650, "required": True}
    assert (fields["medications[].dose_mg"]["above"], fields["medications[].dose_mg"]["maximum"]) == (0, 1000000)
    assert fields["vitals.vasopressors"]["vocabulary"] == VASOPRESSORS
    assert fields["vitals.vasopressors"]["type"] == "list of name"
    assert fields["vitals.attributed_to_other_cause"]["values"] == ["fever", "hypotension", "hypoxia"]


def test_facts_vocabulary_lists_each_drug_with_its_other_names_and_the_closed_vasopressor_list() -> None:
    code, out, err = cli("facts", "--vocabulary")
    assert (code, err) == (0, "")
    table = rows(out)
    assert table["tocilizumab"][1] == "anticytokine"
    assert {"actemra", "tocilizumab-aazg", "tocilizumab-bavi", "tocilizumab-anoh"} <= set(table["tocilizumab"][2].split(", "))
    assert table["sargramostim"] == ["sargramostim", "gm_csf", "leukine"]
    assert table["norepinephrine"][1:] == ["vasopressor", "noradrenaline, levophed, norepinephrine bitartrate"]
    assert table["dobutamine"] == ["dobutamine", "inotrope", "-"]
    lines = out.splitlines()
    assert (f"vitals.vasopressors is a closed vocabulary: {', '.join(VASOPRESSORS)}, under any of their names; "
            "any other name is an input error.") in lines
    assert ("Refused from vitals.vasopressors, with the reason: dobutamine, milrinone "
            "(is an inotrope, not a vasopressor).") in lines


def test_every_name_facts_prints_is_read_as_its_drug_by_evaluate() -> None:
    code, out, _ = cli("facts", "--vocabulary", "--format", "json")
    assert code == 0
    data = json.loads(out)
    known = canonical_names(load_protocol(ROOT / "rules"))
    printed = [(name, drug["id"]) for drug in data["drugs"] for name in [drug["id"], *drug["names"]]]
    assert len(printed) > len(data["drugs"])
    for name, drug in printed:
        for written in (name, name.upper(), name.title()):
            assert known[written.lower()] == drug, written
    assert [c["field"] for c in data["closed"]] == ["vitals.vasopressors"]
    assert data["closed"][0]["accepts"] == VASOPRESSORS
    assert data["closed"][0]["refuses"] == [{"names": ["dobutamine", "milrinone"],
                                             "reason": "is an inotrope, not a vasopressor"}]


def test_facts_reads_the_vocabulary_of_the_pack_it_is_given(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "rules", pack)
    assert cli("draft", str(pack), str(tmp_path / "draft"))[0] == 0
    dosing = tmp_path / "draft" / "dosing.yaml"
    text = dosing.read_text(encoding="utf-8")
    dosing.write_text(text.replace("    synonyms: [leukine]\n", "    synonyms: [leukine, gm-csf-x]\n"), encoding="utf-8")
    code, out, err = cli("facts", str(tmp_path / "draft"), "--vocabulary")
    assert (code, err) == (0, "")
    assert rows(out)["sargramostim"][2] == "leukine, gm-csf-x"


def test_facts_of_an_invalid_pack_prints_its_problems_and_exits_1(tmp_path: Path) -> None:
    code, out, err = cli("facts", str(tmp_path / "missing"))
    assert code == 1 and out == ""
    assert err.strip().endswith("problem(s): invalid rule pack")


@pytest.mark.parametrize(("arguments", "named"), [
    (("facts", "--format", "xml"), "argument --format: invalid choice: 'xml'"),
    (("facts", "--vocabularies"), "unrecognized arguments: --vocabularies"),
])
def test_facts_usage_errors_exit_2_naming_the_argument(arguments: tuple[str, ...], named: str) -> None:
    code, out, err = cli(*arguments)
    assert code == 2 and out == ""
    assert named in err and "usage: crs-rules" in err
