"""The remaining reads of a pack's files and of the patient file are bounded: the scenario files
(``crs-rules test`` and ``diff``) and the seed protocol (``crs-rules trace``) are read like the
pack's own files (regular files inside the pack, 1 MiB each), and ``crs-rules evaluate FILE`` reads
at most 1 MiB, from a file, a pipe or standard input."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

from crs_rules import InvalidInputError, read_patient
from crs_rules.errors import InvalidPackError
from crs_rules.loading import MAX_FILE_BYTES
from crs_rules.pack import MAX_PACK_BYTES, load_protocol
from crs_rules.scenarios import load_scenarios
from crs_rules.traceability import SEED, trace

from packing import cli, hang_fails_after

ROOT = Path(__file__).resolve().parent.parent
SECRET = "TOP-SECRET-LINE-OF-ANOTHER-FILE"
PATIENT = {"assessed_at": "2026-03-10T12:00:00Z", "patient": {"weight_kg": 70}}


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A copy of the shipped pack (its scenarios and seed included), in tmp/pack."""
    folder = tmp_path / "pack"
    shutil.copytree(ROOT / "rules", folder)
    return folder


@pytest.fixture
def deadline() -> Iterator[None]:
    """Turn a hang (a FIFO opened for reading blocks forever) into a failure after 10 s."""
    with hang_fails_after(10):
        yield


def scenario_problems(pack: Path) -> list[str]:
    with pytest.raises(InvalidPackError) as raised:
        load_scenarios(pack, load_protocol(pack))
    assert SECRET not in str(raised.value)
    return [str(p).replace(str(pack), "PACK") for p in raised.value.problems]


# ---------------------------------------------------------------------- scenario files


def test_a_fifo_among_the_scenarios_is_refused_without_hanging(pack: Path, deadline: None) -> None:
    os.mkfifo(pack / "scenarios" / "fifo.yaml")
    assert scenario_problems(pack) == [
        "PACK/scenarios/fifo.yaml:0:0: -: the file is not a regular file (a FIFO); expected a YAML file"]


def test_a_scenario_linked_to_dev_zero_is_refused_without_reading_it(pack: Path, deadline: None) -> None:
    (pack / "scenarios" / "zero.yaml").symlink_to("/dev/zero")
    (problem,) = scenario_problems(pack)
    assert problem.startswith("PACK/scenarios/zero.yaml:0:0: -: the file is a link to a file outside the pack folder")


def test_a_scenario_linked_out_of_the_pack_is_refused_and_not_shown(pack: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    (pack / "scenarios" / "out.yaml").symlink_to(secret)
    (problem,) = scenario_problems(pack)
    assert problem.startswith("PACK/scenarios/out.yaml:0:0: -: the file is a link to a file outside the pack folder")


def test_an_oversized_scenario_file_is_refused_before_it_is_parsed(pack: Path) -> None:
    (pack / "scenarios" / "big.yaml").write_text("# " + "x" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    (problem,) = scenario_problems(pack)
    assert problem.startswith(f"PACK/scenarios/big.yaml:0:0: -: the file is {MAX_FILE_BYTES + 3} bytes")


def test_scenario_files_too_large_together_are_refused(pack: Path) -> None:
    for index in range(MAX_PACK_BYTES // MAX_FILE_BYTES + 1):
        (pack / "scenarios" / f"padding{index}.yaml").write_text(
            "scenarios: []\n# " + "x" * (MAX_FILE_BYTES - 20) + "\n", encoding="utf-8")
    over = [p for p in scenario_problems(pack) if "reach" in p]  # the others: no scenario in a padding file
    # Read with the pack, counted in the pack's total: the file that passes it is refused, none after it is read.
    (problem,) = over
    assert problem.startswith("PACK/scenarios/padding") and ":0:0: -: the pack's files reach " in problem
    assert problem.endswith(f"expected at most {MAX_PACK_BYTES} bytes (4 MiB) for the whole pack")


def test_a_scenario_file_that_is_not_utf8_is_refused_with_its_position(pack: Path) -> None:
    (pack / "scenarios" / "latin1.yaml").write_bytes(b"scenarios: []\n# caf\xe9\n")
    (problem,) = scenario_problems(pack)
    assert problem.startswith("PACK/scenarios/latin1.yaml:2:6: -: the file is not UTF-8 text (byte 0xE9")


def test_crs_rules_test_reports_a_fifo_scenario_as_a_problem(pack: Path, deadline: None) -> None:
    os.mkfifo(pack / "scenarios" / "fifo.yaml")
    code, out, err = cli("test", str(pack))
    assert code == 1 and out == ""
    assert "scenarios/fifo.yaml:0:0: -: the file is not a regular file (a FIFO)" in err


# ---------------------------------------------------------------------- the seed protocol


def seed_problems(pack: Path) -> list[str]:
    _, _, problems = trace(pack)
    return [p.replace(str(pack), "PACK") for p in problems]


def test_the_shipped_seed_is_still_read(pack: Path) -> None:
    assert seed_problems(pack) == []


def test_a_seed_that_is_a_fifo_is_refused_without_hanging(pack: Path, deadline: None) -> None:
    (pack / SEED).unlink()
    os.mkfifo(pack / SEED)
    assert seed_problems(pack) == [
        f"PACK/{SEED}:0:0: -: the file is not a regular file (a FIFO); expected a YAML file"]


def test_a_seed_linked_to_dev_zero_is_refused_without_reading_it(pack: Path, deadline: None) -> None:
    (pack / SEED).unlink()
    (pack / SEED).symlink_to("/dev/zero")
    (problem,) = seed_problems(pack)
    assert problem.startswith(f"PACK/{SEED}:0:0: -: the file is a link to a file outside the pack folder")


def test_an_oversized_seed_is_refused(pack: Path) -> None:
    (pack / SEED).write_text("x" * (MAX_FILE_BYTES + 1), encoding="utf-8")
    (problem,) = seed_problems(pack)
    assert problem.startswith(f"PACK/{SEED}:0:0: -: the file is {MAX_FILE_BYTES + 1} bytes")


def test_a_seed_that_is_not_utf8_is_refused_with_its_position(pack: Path) -> None:
    (pack / SEED).write_bytes((pack / SEED).read_bytes() + b"caf\xe9\n")
    (problem,) = seed_problems(pack)
    assert problem.startswith(f"PACK/{SEED}:")
    assert "not UTF-8 text (byte 0xE9" in problem


def test_a_missing_seed_is_still_named(pack: Path) -> None:
    (pack / SEED).unlink()
    assert seed_problems(pack) == [
        f"PACK/{SEED}: the seed protocol is not beside the pack; expected {SEED} to check coverage against"]


def test_trace_check_reports_a_fifo_seed_as_a_problem(pack: Path, deadline: None) -> None:
    (pack / SEED).unlink()
    os.mkfifo(pack / SEED)
    code, _, err = cli("trace", str(pack), "--check")
    assert code == 1
    assert f"{SEED}:0:0: -: the file is not a regular file (a FIFO)" in err


# ---------------------------------------------------------------------- the patient file


def test_a_patient_file_over_one_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(PATIENT) + " " * MAX_FILE_BYTES, encoding="utf-8")
    with pytest.raises(InvalidInputError) as raised:
        read_patient(path)
    (problem,) = raised.value.problems
    assert (problem.subject, problem.check) == ("-", "input.size")
    assert problem.message == f"is more than {MAX_FILE_BYTES} bytes"
    assert problem.expected == "a patient state of at most 1 MiB (1048576 bytes)"


def test_dev_zero_as_the_patient_file_is_refused_after_one_mib(deadline: None) -> None:
    with pytest.raises(InvalidInputError) as raised:
        read_patient("/dev/zero")
    assert [p.check for p in raised.value.problems] == ["input.size"]


def test_a_patient_from_a_fifo_is_still_read(tmp_path: Path, deadline: None) -> None:
    fifo = tmp_path / "patient.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w", encoding="utf-8") as writer:
            writer.write(json.dumps(PATIENT))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert read_patient(fifo).weight_kg == 70
    finally:
        writer.join()


def test_a_fifo_writing_more_than_one_mib_is_refused(tmp_path: Path, deadline: None) -> None:
    fifo = tmp_path / "patient.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as writer, __import__("contextlib").suppress(BrokenPipeError):
            writer.write(b" " * (4 * MAX_FILE_BYTES))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with pytest.raises(InvalidInputError) as raised:
            read_patient(fifo)
        assert [p.check for p in raised.value.problems] == ["input.size"]
    finally:
        writer.join()


def test_standard_input_is_read_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(PATIENT).encode()), encoding="utf-8"))
    assert read_patient("-").weight_kg == 70
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b" " * (MAX_FILE_BYTES + 1)), encoding="utf-8"))
    with pytest.raises(InvalidInputError) as raised:
        read_patient("-")
    assert [(p.file, p.check) for p in raised.value.problems] == [("<stdin>", "input.size")]


def test_a_text_only_standard_input_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\u00e9" * (MAX_FILE_BYTES // 2 + 1)))
    with pytest.raises(InvalidInputError) as raised:
        read_patient("-")
    assert [p.check for p in raised.value.problems] == ["input.size"]


def test_crs_rules_evaluate_on_dev_zero_is_one_problem_and_exit_1(deadline: None) -> None:
    code, out, err = cli("evaluate", "/dev/zero")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"/dev/zero:0:0: -: is more than {MAX_FILE_BYTES} bytes; a patient state of at most 1 MiB (1048576 bytes)",
        "1 problem(s): invalid input, nothing was evaluated"]


def test_a_crlf_patient_file_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "patient.yaml"
    path.write_bytes(b"assessed_at: '2026-03-10T12:00:00Z'\r\npatient: {weight_kg: 70}\r\n")
    assert read_patient(path).weight_kg == 70
