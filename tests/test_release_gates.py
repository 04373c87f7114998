"""`crs-rules release` gates, `crs-rules draft`, and the protocol's status in every decision.

A release is refused (listing why, writing nothing) when a scenario fails, the traceability check
fails, or nothing changed; it sets ``status: active`` and the effective date. ``draft`` starts a
change on a copy. A draft or retired pack is evaluated only on request, and its decision says so.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import pack_under_test

from crs_rules import InvalidPackError, evaluate, load_protocol
from crs_rules.cli import run
from crs_rules.pack import content_digest, read_pack_documents
from crs_rules.release import ReleaseRefusedError, release
from crs_rules.scenarios import load_scenarios

ROOT = Path(__file__).resolve().parent.parent
RULES = pack_under_test()
NOTE = "Vasopressors titrated to effect at grade 3 and grade 4."
GRADE_2: dict[str, Any] = {
    "assessed_at": "2026-03-10T12:00:00Z",
    "patient": {"weight_kg": 82, "age_years": 54},
    "therapy": {"car_t": True},
    "vitals": {"temperature_c": 39.2, "hypotension": True, "vasopressors": [],
               "oxygen": {"device": "nasal_cannula", "flow_l_min": 4}},
    "medications": [],
}


def patch_of(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def cli(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    return code, out.getvalue(), err.getvalue()


def manifest(pack: Path) -> dict[str, Any]:
    data = yaml.safe_load((pack / "manifest.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def edit(pack: Path, name: str, old: str, new: str) -> None:
    path = pack / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not written exactly once in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


VERSION = str(manifest(RULES)["version"])


def harmless_change(pack: Path) -> None:
    edit(pack, "actions.yaml", "    description: Consider vasopressors as needed at grade 3 and grade 4.\n",
         "    description: Consider vasopressors as needed at grade 3 and grade 4, titrated to effect.\n")


@pytest.fixture(scope="module")
def drafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``crs-rules draft`` of a copy of the shipped pack, made once for the module; not edited."""
    folder = tmp_path_factory.mktemp("drafted")
    shutil.copytree(RULES, folder / "rules")
    code, out, err = cli("draft", str(folder / "rules"), str(folder / "next"))
    assert (code, err) == (0, "")
    return folder / "next"


@pytest.fixture
def draft(drafted: Path, tmp_path: Path) -> Path:
    """A copy of :func:`drafted` (``crs-rules draft`` of a copy of the shipped pack) for one test to edit."""
    shutil.copytree(drafted, tmp_path / "next")
    return tmp_path / "next"


# --------------------------------------------------------------------------- draft


def test_draft_copies_the_pack_as_a_draft_recording_where_it_started(draft: Path) -> None:
    data = manifest(draft)
    assert data["status"] == "draft" and "digest" not in data
    assert str(data["draft_of"]).startswith("sha256:")
    assert data["version"] == manifest(RULES)["version"]
    assert sorted(p.name for p in (draft / "scenarios").iterdir()) == sorted(p.name for p in (RULES / "scenarios").iterdir())
    assert load_protocol(draft).status == "draft"
    shipped = (RULES / "manifest.yaml").read_text(encoding="utf-8")
    assert "# The rule pack's identity" in (draft / "manifest.yaml").read_text(encoding="utf-8")  # comments kept
    assert shipped.count("\n") == (draft / "manifest.yaml").read_text(encoding="utf-8").count("\n")


def test_validate_says_a_draft_is_a_draft(draft: Path) -> None:
    protocol = load_protocol(draft)
    code, out, err = cli("validate", str(draft))
    assert (code, err) == (0, "")
    assert out == (f"OK {protocol.id} {VERSION} {protocol.digest} (draft: not for clinical use, until released)\n")


def test_draft_defaults_to_pack_draft_and_never_writes_over_a_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(RULES, tmp_path / "rules")
    assert cli("draft", "rules")[0] == 0
    assert manifest(tmp_path / "rules-draft")["status"] == "draft"
    code, out, err = cli("draft", "rules")
    assert (code, out) == (1, "")
    assert err.startswith("error: rules-draft already exists; expected a new folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules", "rules-draft"]  # no staging folder left


def test_an_edited_active_pack_points_to_draft_not_to_release(tmp_path: Path) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    harmless_change(tmp_path / "rules")
    code, _, err = cli("validate", str(tmp_path / "rules"))
    assert code == 1
    assert "make a change in a draft (crs-rules draft PACK DEST copies the pack as a draft)" in err


# --------------------------------------------------------------------------- release gates


def test_release_of_a_changed_draft_sets_active_and_the_effective_date(draft: Path) -> None:
    harmless_change(draft)
    code, out, err = cli("release", str(draft), "--bump", "patch", "--note", NOTE, "--effective", "2027-03-01")
    assert (code, err) == (0, "")
    assert out.endswith("(active, effective 2027-03-01)\n")
    data = manifest(draft)
    assert (data["status"], data["effective_date"], data["version"]) == ("active", "2027-03-01", patch_of(VERSION))
    assert "draft_of" not in data
    assert cli("validate", str(draft))[0] == 0


def test_release_without_effective_date_takes_today(draft: Path) -> None:
    harmless_change(draft)
    release(draft, "patch", NOTE, today=date(2027, 4, 2))
    assert manifest(draft)["effective_date"] == "2027-04-02"


def test_a_release_whose_final_check_fails_writes_nothing(draft: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The released manifest is validated before it is written: a refusal of that last check
    leaves the manifest byte for byte as it was."""
    from crs_rules import pack as pack_module
    from crs_rules import release as release_module
    from crs_rules.errors import Problem

    harmless_change(draft)
    before = (draft / "manifest.yaml").read_bytes()
    checked = pack_module.protocol_from_files

    def refusing_the_released_pack(files: Any, *, check_release: bool = True) -> Any:
        if check_release:  # the final check of the released pack (the gates run without it)
            raise InvalidPackError([Problem(files.documents["manifest"].file, 1, 1, "-", "refused", "expected")])
        return checked(files, check_release=check_release)

    monkeypatch.setattr(release_module, "protocol_from_files", refusing_the_released_pack)
    with pytest.raises(InvalidPackError):
        release(draft, "patch", NOTE)
    assert (draft / "manifest.yaml").read_bytes() == before


def test_release_refuses_an_unchanged_draft(draft: Path) -> None:
    before = (draft / "manifest.yaml").read_bytes()
    code, out, err = cli("release", str(draft), "--bump", "patch", "--note", NOTE)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "the draft says the same as the version it was started from (draft_of); expected a changed protocol: "
        "a release records a change",
        "release refused (1 reason(s)); the pack is unchanged",
    ]
    assert (draft / "manifest.yaml").read_bytes() == before


def test_release_refuses_an_unchanged_active_pack(tmp_path: Path) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    with pytest.raises(ReleaseRefusedError) as refused:
        release(tmp_path / "rules", "patch", NOTE)
    assert refused.value.reasons[0].startswith(f"nothing changed since version {VERSION} was released")
    assert (tmp_path / "rules" / "manifest.yaml").read_bytes() == (RULES / "manifest.yaml").read_bytes()


def test_release_refuses_a_failing_scenario_naming_it(draft: Path) -> None:
    harmless_change(draft)
    (draft / "scenarios" / "wrong.yaml").write_text(
        "scenarios:\n"
        "  - name: afebrile-adult-expected-grade-2\n"
        "    description: An adult without fever, expected (wrongly) to be graded 2.\n"
        "    patient:\n"
        "      assessed_at: 2026-03-10T12:00:00Z\n"
        "      patient: {weight_kg: 70, age_years: 61}\n"
        "      therapy: {car_t: true}\n"
        "      crs: {antipyretic_or_anticytokine: false}\n"
        "      vitals: {temperature_c: 36.8, hypotension: false, oxygen: {device: room_air}}\n"
        "      medications: []\n"
        "    expect:\n"
        "      grade: 2\n", encoding="utf-8")
    before = (draft / "manifest.yaml").read_bytes()
    with pytest.raises(ReleaseRefusedError) as refused:
        release(draft, "minor", NOTE)
    failing = [r for r in refused.value.reasons if r.startswith("scenario ")]
    assert failing == [f"scenario afebrile-adult-expected-grade-2 fails ({draft / 'scenarios' / 'wrong.yaml'}:2): "
                       "expected grade 2, got grade 0"]
    assert (draft / "manifest.yaml").read_bytes() == before


def test_release_refuses_a_failing_trace(draft: Path) -> None:
    statement = "if no improvement; maximum 3 doses in 24 hours, 4 doses total 1\n"
    edit(draft, "statements.yaml", statement + "    encoded_by: [dosing.tocilizumab]\n",
         statement + "    encoded_by: [grade2_up.tocilizumab]\n")
    with pytest.raises(ReleaseRefusedError) as refused:
        release(draft, "minor", "Trace change.")
    assert any(r.startswith("traceability: S16: the number ") and "found 0 times" in r for r in refused.value.reasons)


def test_release_refuses_a_pack_beyond_the_safety_envelope(draft: Path) -> None:
    dosing = draft / "dosing.yaml"
    dosing.write_text(re.sub(r"max_dose_mg: [0-9.]+\n", "max_dose_mg: 8000\n", dosing.read_text(encoding="utf-8"), count=1),
                      encoding="utf-8")
    with pytest.raises(InvalidPackError) as invalid:
        release(draft, "minor", "Tenfold.")
    assert [p.check for p in invalid.value.problems] == ["safety-envelope"]


def test_a_bad_effective_date_is_a_usage_error(draft: Path) -> None:
    code, _, err = cli("release", str(draft), "--bump", "patch", "--note", NOTE, "--effective", "2027-02-30")
    assert code == 2 and "expected a date such as 2026-12-01, not '2027-02-30'" in err


# --------------------------------------------------------------------------- status in every decision


def test_a_draft_is_evaluated_only_on_request_and_says_so(draft: Path) -> None:
    protocol = load_protocol(draft)
    with pytest.raises(InvalidPackError) as refused:
        evaluate(GRADE_2, protocol)
    assert f"the protocol is draft (version {VERSION}), not for clinical use" in str(refused.value)
    assert "allow_draft=True" in str(refused.value)
    decision = evaluate(GRADE_2, protocol, allow_draft=True)
    assert decision.protocol.status == "draft"
    assert decision.to_dict()["protocol"]["status"] == "draft"
    text = decision.render_text()
    assert text.startswith(f"DRAFT protocol, not for clinical use (severe-crs-and-sepsis {VERSION})\n")


def test_the_shipped_pack_decision_is_active() -> None:
    decision = evaluate(GRADE_2)
    assert decision.protocol.status == "active" and decision.to_dict()["protocol"]["status"] == "active"
    assert "not for clinical use" not in decision.render_text()


def test_a_retired_pack_needs_the_opt_in_on_the_command_line(tmp_path: Path) -> None:
    retired = tmp_path / "retired"
    shutil.copytree(RULES, retired)
    text = (retired / "manifest.yaml").read_text(encoding="utf-8").replace("status: active\n", "status: retired\n")
    (retired / "manifest.yaml").write_text(text, encoding="utf-8")
    documents, problems = read_pack_documents(retired)
    assert problems == []
    old_digest = manifest(RULES)["digest"]
    (retired / "manifest.yaml").write_text(text.replace(old_digest, content_digest(documents)), encoding="utf-8")
    patient = tmp_path / "patient.yaml"
    patient.write_text(yaml.safe_dump(GRADE_2), encoding="utf-8")
    code, out, err = cli("evaluate", str(patient), "--rules", str(retired))
    assert (code, out) == (1, "")
    assert f"the protocol is retired (version {VERSION}), not for clinical use" in err
    status_line = text.splitlines().index("status: retired") + 1
    assert f"manifest.yaml:{status_line}:{len('status: ') + 1}:" in err  # at the status value, not at 0:0
    code, out, err = cli("evaluate", str(patient), "--rules", str(retired), "--allow-draft")
    assert code == 0 and out.startswith("RETIRED protocol, not for clinical use")
    code, out, err = cli("validate", str(retired))
    assert (code, err) == (0, "") and out.endswith(" (retired: not for clinical use)\n")


def test_scenarios_and_diff_work_on_a_draft(draft: Path) -> None:
    code, out, _ = cli("test", str(draft))
    scenarios = len(load_scenarios(draft, load_protocol(draft)))
    assert code == 0 and out.startswith(f"{scenarios} passed, 0 failed")
    code, out, _ = cli("diff", str(RULES), str(draft), "--population", "10")
    assert code == 0 and "status active -> draft" in out


def test_diff_warns_of_a_number_changed_by_a_factor_of_two_or_more(draft: Path) -> None:
    dosing = draft / "dosing.yaml"  # tocilizumab's interval (the first drug's), made twice as long
    interval = re.search(r"min_interval_h: ([0-9]+)\n", dosing.read_text(encoding="utf-8"))
    assert interval is not None and interval.group(1) == "8", "the test reasons with an interval of 8 h"
    edit(draft, "dosing.yaml", "      min_interval_h: 8\n", "      min_interval_h: 16\n")
    code, out, _ = cli("diff", str(RULES), str(draft), "--population", "0")
    assert code == 0
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "drugs.tocilizumab.limits.min_interval_h: 8 h -> 16 h" in line)
    assert lines[at + 1] == ("    WARNING: drugs.tocilizumab.limits.min_interval_h 8 -> 16 changes by a factor of 2 (up): "
                             "check it is meant (a slipped decimal point or an extra zero looks like this)")
    assert lines[at + 2] == "    rule dosing.tocilizumab (Tocilizumab)"
    assert "WARNING" not in "\n".join(lines[:at])


# --------------------------------------------------------------------------- schema modelines

MODELINE = "# yaml-language-server: $schema="


def pack_files(pack: Path) -> list[Path]:
    """The manifest, the files it lists and the scenario files."""
    listed = [pack / name for name in manifest(pack)["files"].values()]
    return [pack / "manifest.yaml", *listed, *sorted((pack / "scenarios").glob("*.yaml"))]


def test_each_shipped_pack_file_names_its_schema_for_yaml_language_servers() -> None:
    shipped = ROOT / "rules"
    kinds = {"manifest.yaml": "manifest", **{name: kind for kind, name in manifest(shipped)["files"].items()}}
    for path in pack_files(shipped):
        modelines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(MODELINE)]
        assert len(modelines) == 1, path
        schema = (path.parent / modelines[0][len(MODELINE):]).resolve()
        assert schema.is_file(), (path, schema)
        assert schema.parent == (ROOT / "schemas").resolve()  # relative to the pack, as shipped beside it
        kind = "scenario" if path.parent.name == "scenarios" else kinds[path.name]
        assert json.loads(schema.read_text(encoding="utf-8"))["$id"] == f"urn:crs-rules:schema:{kind}", path


def test_draft_keeps_every_comment_line_the_modelines_too(draft: Path) -> None:
    for path in pack_files(RULES):
        copied = draft / path.relative_to(RULES)
        if path.name == "manifest.yaml" and path.parent == RULES:
            def comments(p: Path) -> list[str]:
                return [line for line in p.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("#")]
            assert comments(copied) == comments(path) and any(line.startswith(MODELINE) for line in comments(path))
        else:
            assert copied.read_bytes() == path.read_bytes(), path


def test_comment_lines_are_not_protocol_content_so_they_alone_are_no_release(draft: Path) -> None:
    # Comments (the schema modelines among them) are outside the digest: changing only them leaves
    # the protocol as released, and a release of such a draft is refused as "no change".
    validated = cli("validate", str(draft))
    assert validated[0] == 0
    for path in pack_files(draft):
        text = path.read_text(encoding="utf-8")
        assert text.count(MODELINE) == 1
        path.write_text("# a pharmacist's comment\n" + text.replace(MODELINE, "#  " + MODELINE[2:]), encoding="utf-8")
    assert cli("validate", str(draft)) == validated
    code, _, err = cli("release", str(draft), "--bump", "patch", "--note", NOTE)
    assert code == 1 and err.startswith("the draft says the same as the version it was started from (draft_of)")
