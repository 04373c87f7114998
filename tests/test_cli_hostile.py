"""The command line never shows Python: Ctrl-C, a closed standard input, control characters in what
it prints, and writes that refuse links and never leave a half-written file."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crs_rules import cli as cli_module
from crs_rules.cli import run
from crs_rules.pack import load_protocol

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
CONSOLE_SCRIPT = Path(sys.executable).parent / "crs-rules"
# What a terminal would act on: C0 controls but newline and tab, DEL, C1 controls, bidi controls.
UNSAFE = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))] + [
    "\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]


def cli(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(arguments), out, err)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()


def assert_terminal_safe(text: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in text if c in UNSAFE})
    assert not found, f"unescaped control characters {found} in {text!r}"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the shipped pack as released: status active, digest recorded."""
    folder = tmp_path / "pack"
    shutil.copytree(RULES, folder)
    return folder


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("command", ["validate", "evaluate", "trace", "release", "test", "diff"])
def test_an_interrupt_in_any_command_is_one_line_and_exit_130(command: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*arguments: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_module._COMMANDS, command, interrupted)
    arguments = {"evaluate": ["evaluate", "-"], "release": ["release", "x", "--bump", "patch", "--note", "n"],
                 "diff": ["diff", "a", "b"]}.get(command, [command])
    assert cli(*arguments) == (130, "", "interrupted\n")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    except OSError:
        return []
    return [int(child) for child in text.split()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to see the worker processes")
def test_ctrl_c_during_diff_exits_130_with_one_line_and_no_traceback() -> None:
    # A terminal sends SIGINT to the whole foreground process group: the command and its workers.
    process = subprocess.Popen([str(CONSOLE_SCRIPT), "diff", "rules", "rules", "--population", "3000"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _children(process.pid) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "diff ended before it could be interrupted"
        time.sleep(0.5)  # the workers are evaluating
        workers = _children(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert (process.returncode, out, err) == (130, "", "interrupted\n")
    for worker in workers:  # the pool was ended cleanly: no worker is left behind
        assert not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]


# --------------------------------------------------------------------------- standard input


def test_evaluate_from_a_closed_standard_input_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    assert cli("evaluate", "-") == (1, "", "error: standard input is closed; expected the patient state on "
                                          "standard input, or a file name instead of -\n")


def test_evaluate_from_a_closed_standard_input_in_a_shell() -> None:
    result = subprocess.run(["sh", "-c", 'exec "$0" evaluate - <&-', str(CONSOLE_SCRIPT)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("error: standard input is closed; expected the patient state on standard input, "
                             "or a file name instead of -\n")


# --------------------------------------------------------------------------- control characters


def test_a_folder_name_with_control_characters_is_printed_escaped(tmp_path: Path) -> None:
    name = str(tmp_path / "pack\x1b[2J\x9b31m\u202eevil\r")
    code, out, err = cli("validate", name)
    assert (code, out) == (1, "")
    assert_terminal_safe(err)
    assert "pack\\x1b[2J\\x9b31m\\u202eevil\\x0d:0:0: -: is not a folder" in err


def test_patient_input_echoed_in_problems_is_printed_escaped(tmp_path: Path) -> None:
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps({"patient": {"weight_kg": 70, "x\u202ey\x9bz\x1b": 1}}), encoding="utf-8")
    code, out, err = cli("evaluate", str(patient))
    assert (code, out) == (1, "")
    assert_terminal_safe(err)
    assert "\\u202e" in err


def test_usage_errors_echoing_a_value_are_printed_escaped() -> None:
    code, out, err = cli("evaluate", "x", "--format", "\u202e\x9bjson")
    assert (code, out) == (2, "")
    assert_terminal_safe(err)


def test_every_unsafe_character_is_escaped_and_newline_and_tab_are_kept() -> None:
    text = "".join(UNSAFE) + "\n\tok \u00e9 \u2265 38\u00b0C"
    escaped = cli_module.terminal_safe(text)
    assert_terminal_safe(escaped)
    assert escaped.endswith("\n\tok \u00e9 \u2265 38\u00b0C")
    assert escaped.startswith("\\x00\\x01")
    assert "\\x1b" in escaped and "\\x9b" in escaped and "\\u202e" in escaped and "\\x7f" in escaped


def test_json_output_stays_valid_json_with_the_same_values() -> None:
    value = {"text": "a\x1bb\x9bc\u202ed\u2066e\nf"}
    text = cli_module.json_text(value)
    assert_terminal_safe(text)
    assert json.loads(text) == value


# --------------------------------------------------------------------------- release writes


def change_a_description(pack: Path) -> None:
    path = pack / "actions.yaml"
    old = "    description: Consider vasopressors as needed at grade 3 and grade 4.\n"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, old.replace(".\n", ", titrated to effect.\n")), encoding="utf-8")


@pytest.mark.parametrize("note", ["a \x1b[31m red note", "a \x9b note", "a \u202e note", "a \x00 note",
                                  "zero\u200bwidth", "a \x85 next line"])
def test_a_release_with_a_control_character_in_the_note_changes_nothing(copy: Path, note: str) -> None:
    before = {path.name: path.read_bytes() for path in copy.iterdir() if path.is_file()}
    code, out, err = cli("release", str(copy), "--bump", "patch", "--note", note)
    assert (code, out) == (1, "")
    assert err.startswith("error: the note contains ")
    assert err.endswith("; expected a note in plain text, without control or invisible characters\n")
    assert_terminal_safe(err)
    assert {path.name: path.read_bytes() for path in copy.iterdir() if path.is_file()} == before
    load_protocol(copy)


def test_release_refuses_to_write_through_a_link(copy: Path) -> None:
    change_a_description(copy)  # a release records a change
    (copy / "manifest.yaml").rename(copy / "manifest-real.yaml")
    (copy / "manifest.yaml").symlink_to("manifest-real.yaml")
    before = (copy / "manifest-real.yaml").read_bytes()
    code, out, err = cli("release", str(copy), "--bump", "patch", "--note", "A plain note.")
    assert (code, out) == (1, "")
    assert err == (f"error: {copy / 'manifest.yaml'} is a link; expected a plain file to write "
                   "(crs-rules does not write through links)\n")
    assert (copy / "manifest-real.yaml").read_bytes() == before
    assert (copy / "manifest.yaml").is_symlink()


def test_release_writes_the_manifest_in_one_step_and_leaves_no_temporary_file(copy: Path) -> None:
    names = sorted(path.name for path in copy.iterdir())
    change_a_description(copy)  # a release records a change
    inode = (copy / "manifest.yaml").stat().st_ino
    code, out, err = cli("release", str(copy), "--bump", "patch", "--note", "A plain note.")
    assert (code, err) == (0, "")
    assert sorted(path.name for path in copy.iterdir()) == names
    assert (copy / "manifest.yaml").stat().st_ino != inode  # replaced, not rewritten in place
    assert load_protocol(copy).changelog[0].note == "A plain note."


# --------------------------------------------------------------------------- trace writes


def test_trace_refuses_to_write_through_a_link(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("precious\n", encoding="utf-8")
    (copy / "TRACEABILITY.md").unlink()
    (copy / "TRACEABILITY.md").symlink_to(outside)
    code, out, err = cli("trace", str(copy))
    assert (code, out) == (1, "")
    assert err == (f"error: {copy / 'TRACEABILITY.md'} is a link; expected a plain file to write "
                   "(crs-rules does not write through links)\n")
    assert outside.read_text(encoding="utf-8") == "precious\n"


def test_trace_replaces_the_table_in_one_step(copy: Path) -> None:
    (copy / "TRACEABILITY.md").write_text("stale\n", encoding="utf-8")
    names = sorted(path.name for path in copy.iterdir())
    code, out, err = cli("trace", str(copy))
    assert (code, err) == (0, "")
    assert sorted(path.name for path in copy.iterdir()) == names
    assert (copy / "TRACEABILITY.md").read_bytes() == (RULES / "TRACEABILITY.md").read_bytes()


def test_trace_writes_a_new_table_with_the_usual_permissions(copy: Path) -> None:
    (copy / "TRACEABILITY.md").unlink()
    umask = os.umask(0o022)
    try:
        code, out, err = cli("trace", str(copy))
    finally:
        os.umask(umask)
    assert (code, err) == (0, "")
    assert (copy / "TRACEABILITY.md").stat().st_mode & 0o777 == 0o644


def test_spawn_started_diff_workers_ignore_ctrl_c(protocol: object) -> None:
    # diff starts its workers with spawn when threads are running; a spawned worker does not share
    # the command's SIGINT handler, so without this it would print a KeyboardInterrupt traceback.
    import multiprocessing

    from crs_rules import impact

    with multiprocessing.get_context("spawn").Pool(1, impact._start_worker, (protocol, protocol)) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
