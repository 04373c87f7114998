"""`crs-rules validate`, `trace` and `release` as a pharmacist runs them: exit codes, what is
printed where, and the release discipline (a changed protocol is a new version)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import seed_numbers_pack

from crs_rules import __version__
from crs_rules.cli import run
from crs_rules.pack import content_digest, read_pack_documents
from crs_rules.traceability import render_table, trace

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
PROTOCOL = "severe-crs-and-sepsis"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CONSOLE_SCRIPT = Path(sys.executable).parent / "crs-rules"


def cli(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()


def manifest(pack: Path) -> dict[str, object]:
    data = yaml.safe_load((pack / "manifest.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def digest_of(pack: Path) -> str:
    documents, problems = read_pack_documents(pack)
    assert problems == []
    return content_digest(documents)


def edit(pack: Path, name: str, old: str, new: str) -> None:
    path = pack / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not written exactly once in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the shipped pack as released: status active, digest recorded."""
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    return folder


def make_draft(pack: Path) -> None:
    path = pack / "manifest.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("digest:"))
    path.write_text(text.replace("status: active\n", "status: draft\n"), encoding="utf-8")


# --------------------------------------------------------------------------- validate


def test_validate_without_argument_checks_the_shipped_pack() -> None:
    code, out, err = cli("validate")
    expected_digest = digest_of(RULES)
    assert DIGEST.fullmatch(expected_digest)
    assert (code, out, err) == (0, f"OK {PROTOCOL} {manifest(RULES)['version']} {expected_digest}\n", "")


def test_validate_rules_from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = cli("validate", "rules")
    assert (code, out, err) == (0, f"OK {PROTOCOL} {manifest(RULES)['version']} {digest_of(RULES)}\n", "")


def test_the_shipped_pack_records_the_digest_of_its_content() -> None:
    assert manifest(RULES)["status"] == "active"
    assert manifest(RULES)["digest"] == digest_of(RULES)


def test_validate_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-pack"
    code, out, err = cli("validate", str(missing))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{missing}:0:0: -: is not a folder; expected a rule pack folder holding manifest.yaml",
        "1 problem(s): invalid rule pack",
    ]


def test_no_command_prints_usage_and_exits_2() -> None:
    code, out, err = cli()
    assert code == 2 and out == ""
    assert err.startswith("usage: crs-rules")


def test_an_unknown_command_prints_usage_and_exits_2() -> None:
    code, out, err = cli("frobnicate")
    assert code == 2 and out == ""
    assert "invalid choice: 'frobnicate'" in err
    assert "usage: crs-rules" in err


@pytest.mark.parametrize("arguments", [
    ("validate", "--bogus"),
    ("validate", "rules", "extra"),
    ("release", "rules", "--bump", "huge", "--note", "x"),
    ("release", "rules", "--note", "no bump given"),
])
def test_a_bad_option_prints_usage_and_exits_2(arguments: tuple[str, ...]) -> None:
    code, out, err = cli(*arguments)
    assert code == 2 and out == ""
    assert "usage: crs-rules" in err
    assert err.splitlines()[0].startswith("crs-rules")


def test_version_is_printed_by_the_installed_command() -> None:
    assert CONSOLE_SCRIPT.is_file(), f"the crs-rules console script is not installed next to {sys.executable}"
    result = subprocess.run([str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"crs-rules {__version__}\n", "")


def test_the_installed_command_validates_the_shipped_pack() -> None:
    result = subprocess.run([str(CONSOLE_SCRIPT), "validate", "rules"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK {PROTOCOL} {manifest(RULES)['version']} {digest_of(RULES)}\n"
    assert result.stderr == ""


# --------------------------------------------------------------------------- trace


def test_trace_check_passes_and_the_committed_table_is_current() -> None:
    code, out, err = cli("trace", str(RULES), "--check")
    assert (code, err) == (0, "")
    assert out.startswith("OK ") and "is current" in out
    protocol, rows, problems = trace(RULES)
    assert problems == []
    assert (RULES / "TRACEABILITY.md").read_text(encoding="utf-8") == render_table(protocol, rows)


def test_trace_check_names_a_statement_that_lost_its_rule_ids(tmp_path: Path) -> None:
    copy = tmp_path / "pack"
    shutil.copytree(seed_numbers_pack(), copy)  # S15 as the seed says it, no deviation from it
    make_draft(copy)  # statements.yaml is part of the digest: a draft so only the trace fails
    statement = "Tocilizumab 8 mg/kg IV (maximum 800 mg) 1\n"
    edit(copy, "statements.yaml", statement + "    encoded_by: [grade2_up.tocilizumab, dosing.tocilizumab]\n",
         statement + "    encoded_by: [grade2_up.tocilizumab]\n")
    code, out, err = cli("trace", str(copy), "--check")
    assert code == 1 and out == ""
    lines = err.splitlines()
    hint = ("; a number the pack changes on purpose is a deviation from the seed: declare it in statements.yaml, "
            "deviations: [{id: D.., statement: S15, instead: ..., reason: ..., decided_by: ..., date: ...}]")
    assert "S15: the number 800 mg is found 0 times among grade2_up.tocilizumab (nowhere); expected exactly once" + hint in lines
    assert "S15: the number 8 mg/kg is found 0 times among grade2_up.tocilizumab (nowhere); expected exactly once" + hint in lines


def test_trace_check_names_a_seed_line_that_is_not_encoded(copy: Path) -> None:
    seed = copy / "seed-protocol.txt"
    text = seed.read_text(encoding="utf-8")
    count = len(text.splitlines())
    seed.write_text(text.rstrip("\n") + "\n- Give an unlisted drug every 6 hours 1\n", encoding="utf-8")
    code, out, err = cli("trace", str(copy), "--check")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{seed}:{count + 1}: this line of the seed is neither a statement nor a heading in statements.yaml; "
        "expected every statement to be encoded"
    ]


# --------------------------------------------------------------------------- release


def test_an_edited_pack_must_be_released_before_it_validates(copy: Path) -> None:
    before = manifest(copy)
    version = str(before["version"])
    edit(copy, "actions.yaml", "    description: Consider vasopressors as needed at grade 3 and grade 4.\n",
         "    description: Consider vasopressors as needed at grade 3 and grade 4, titrated to effect.\n")

    code, out, err = cli("validate", str(copy))
    assert code == 1 and out == ""
    text = (copy / "manifest.yaml").read_text(encoding="utf-8")
    digest_line = text[:text.index("\ndigest:") + 1].count("\n") + 1
    first, summary = err.splitlines()
    assert first.startswith(f"{copy / 'manifest.yaml'}:{digest_line}:9: {PROTOCOL}: the pack's content changed "
                            f"since version {version} was released")
    assert "make a change in a draft (crs-rules draft PACK DEST" in first  # not: release it as it is
    assert "crs-rules release DEST --bump major|minor|patch" in first
    assert summary == "1 problem(s): invalid rule pack"

    note = "Vasopressors titrated to effect at grade 3 and grade 4."
    code, out, err = cli("release", str(copy), "--bump", "minor", "--note", note)
    major, minor, _ = (int(part) for part in version.split("."))
    bumped = f"{major}.{minor + 1}.0"
    assert (code, err) == (0, "")
    assert out == f"Released {PROTOCOL} {bumped} {digest_of(copy)} (active, effective {manifest(copy)['effective_date']})\n"

    after = manifest(copy)
    assert after["version"] == bumped and after["status"] == "active"
    assert after["digest"] == digest_of(copy) != before["digest"]
    changelog = after["changelog"]
    assert isinstance(changelog, list) and isinstance(before["changelog"], list)
    assert changelog[0]["version"] == bumped and changelog[0]["note"] == note
    assert changelog[0]["date"] in {date.today().isoformat(), (date.today() - timedelta(days=1)).isoformat()}
    assert changelog[1:] == before["changelog"]

    code, out, err = cli("validate", str(copy))
    assert (code, out, err) == (0, f"OK {PROTOCOL} {bumped} {digest_of(copy)}\n", "")


@pytest.mark.parametrize("note", ["", "   "])
def test_a_release_without_note_fails_cleanly_and_changes_nothing(copy: Path, note: str) -> None:
    before = (copy / "manifest.yaml").read_bytes()
    code, out, err = cli("release", str(copy), "--bump", "patch", "--note", note)
    assert (code, out) == (1, "")
    assert err == "error: a release needs a note saying what changed\n"
    assert (copy / "manifest.yaml").read_bytes() == before


def test_a_release_of_an_invalid_pack_fails_and_changes_nothing(copy: Path) -> None:
    edit(copy, "actions.yaml", "    recommend: icu_transfer\n", "    recommend: icu_admission\n")
    before = (copy / "manifest.yaml").read_bytes()
    code, out, err = cli("release", str(copy), "--bump", "patch", "--note", "ICU wording")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 2 and "unknown action 'icu_admission'" in lines[0]
    assert lines[1] == "1 problem(s): invalid rule pack"
    assert (copy / "manifest.yaml").read_bytes() == before
