"""The ``crs-rules`` command: a thin layer over the library.

Exit codes: 0 success; 1 invalid pack, invalid input, failed check or internal error; 2 usage
error; 130 interrupted (Ctrl-C). No Python traceback ever reaches the user: every error is printed
as plain lines, and an interrupt as the single line ``interrupted``.

Everything printed goes through :func:`terminal_safe`: a control character (C0 but newline and tab,
DEL, C1) or a bidirectional control in a file name, an input value or a pack text is printed as an
escape (``\\x1b``, ``\\u202e``), so what is printed cannot drive the terminal or reorder a line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO, cast

from . import __version__
from .errors import CrsRulesError, InvalidInputError, InvalidPackError, Problem
from .model import Protocol

if TYPE_CHECKING:
    from .scenarios import ScenarioReport

__all__ = ["main", "run", "terminal_safe", "json_text"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as shells report a command ended by Ctrl-C

# What a terminal acts on rather than shows: C0 controls but newline and tab, DEL, C1 controls,
# and the bidirectional controls that reorder the characters of a line.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """The text with every character a terminal would act on written as an escape
    (``\\x1b``, ``\\x9b``, ``\\u202e``); newlines and tabs are kept."""
    return _UNSAFE.sub(_escape, text)


def json_text(value: Any) -> str:
    """``value`` as indented JSON, terminal-safe and still valid JSON with the same values: the
    characters :func:`terminal_safe` would escape can only be inside strings, where ``\\uXXXX``
    means the same character."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class _TerminalSafe:
    """A text stream whose every write goes through :func:`terminal_safe`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_safe(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _terminal_safe_stream(stream: TextIO) -> TextIO:
    return cast(TextIO, _TerminalSafe(stream))


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}\n{self.format_usage().rstrip()}")


def _parser() -> _Parser:
    parser = _Parser(prog="crs-rules", description="Severe CRS and sepsis protocol rules: validate, evaluate, review.")
    parser.add_argument("--version", action="version", version=f"crs-rules {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser("validate", help="check a rule pack; prints OK <id> <version> <digest> or every problem")
    validate.add_argument("pack", nargs="?", help="rule pack folder (default: the shipped pack)")
    validate.add_argument("--format", choices=("text", "json"), default="text",
                          help="text for people, json for editors and CI (problems as objects)")

    evaluate = commands.add_parser("evaluate", help="evaluate one patient's state (or, with --ndjson, a stream of "
                                                    "them) against a rule pack")
    evaluate.add_argument("patient", help="patient state file (JSON or YAML), or - for standard input")
    evaluate.add_argument("--ndjson", action="store_true",
                          help="the file (or standard input) holds one patient state per line as JSON: one decision "
                               "(or error) per line is written as JSON (--format does not apply); exit 1 if any line had an error")
    evaluate.add_argument("--rules", dest="pack", help="rule pack folder (default: the shipped pack)")
    evaluate.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs")
    evaluate.add_argument("--allow-draft", action="store_true",
                          help="evaluate a draft or retired pack (not for clinical use; the decision says so)")

    trace = commands.add_parser("trace", help="write PACK/TRACEABILITY.md (seed statement -> rule ids)")
    trace.add_argument("pack", nargs="?", help="rule pack folder (default: the shipped pack)")
    trace.add_argument("--check", action="store_true", help="only check that the table is current and complete")

    release = commands.add_parser("release", help="record a new version once validate, test and trace pass: bump, "
                                                  "changelog note, status active, effective date, digest")
    release.add_argument("pack", help="rule pack folder")
    release.add_argument("--bump", required=True, choices=("major", "minor", "patch"))
    release.add_argument("--note", required=True, help="what changed, in words")
    release.add_argument("--effective", type=_date, metavar="DATE", help="effective date, YYYY-MM-DD (default: today)")

    draft = commands.add_parser("draft", help="start a change: copy a pack as a draft (status draft, no digest)")
    draft.add_argument("pack", help="rule pack folder to start from")
    draft.add_argument("dest", nargs="?", help="new folder for the draft (default: PACK-draft next to PACK)")

    scenarios = commands.add_parser("test", help="run the pack's scenarios (PACK/scenarios/*.yaml); prints N passed, M "
                                                 "failed and the rule coverage; exit 0 only if all pass, 100 %% covered")
    scenarios.add_argument("pack", nargs="?", help="rule pack folder (default: the shipped pack)")
    scenarios.add_argument("--format", choices=("text", "json"), default="text",
                           help="text for people, json for editors and CI (scenario results as objects)")

    diff = commands.add_parser("diff", help="what changed between two rule packs, and what that does to patients")
    diff.add_argument("old", help="rule pack folder as it was")
    diff.add_argument("new", help="rule pack folder as changed")
    diff.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs")
    diff.add_argument("--population", type=_population_size, metavar="N",
                      help="how many generated patients to evaluate besides the packs' scenarios (default 12,000)")

    facts = commands.add_parser("facts", help="the data dictionary: every input field (type, unit, range, meaning); "
                                              "--vocabulary: the drug names the pack knows")
    facts.add_argument("pack", nargs="?", help="rule pack folder (default: the shipped pack)")
    facts.add_argument("--vocabulary", action="store_true",
                       help="the drug vocabulary (each drug and its other names, the drug classes, the closed "
                            "vasopressor vocabulary) instead of the input fields")
    facts.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs")

    return parser


def _date(text: str) -> date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date such as 2026-12-01, not {text!r}") from None


def _population_size(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of patients, 0 or more, not {text!r}")
    return int(text)


def _load(pack: str | None) -> Protocol:
    from .pack import load_protocol

    return load_protocol(pack)


def _problem_dict(problem: Problem) -> dict[str, Any]:
    """A problem for programs: where (file, 1-based line and column), the rule id (or ``-``), what
    is wrong, what is expected, and the check that found it."""
    return {"file": problem.file, "line": problem.line, "column": problem.column, "rule": problem.subject,
            "message": problem.message, "expected": problem.expected, "check": problem.check}


def _protocol_dict(protocol: Protocol) -> dict[str, Any]:
    return {"id": protocol.id, "version": protocol.version, "status": protocol.status, "digest": protocol.digest,
            "path": protocol.path}


def _invalid_json(error: InvalidPackError, out: TextIO, protocol: Protocol | None = None) -> int:
    """An invalid pack (or invalid scenarios of a valid one) as JSON on standard output, exit 1."""
    found = {"ok": False, "protocol": _protocol_dict(protocol) if protocol is not None else None,
             "problems": [_problem_dict(p) for p in error.problems]}
    out.write(json_text(found) + "\n")
    return EXIT_INVALID


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        protocol = _load(args.pack)
    except InvalidPackError as error:
        if args.format == "json":
            return _invalid_json(error, out)
        raise
    if args.format == "json":
        out.write(json_text({"ok": True, "protocol": _protocol_dict(protocol), "problems": []}) + "\n")
    else:
        out.write(f"OK {protocol.id} {protocol.version} {protocol.digest}{_not_active_note(protocol)}\n")
    return EXIT_OK


def _not_active_note(protocol: Protocol) -> str:
    """What ``validate`` adds after a pack that is not active: its status, and that it is not for
    clinical use (nothing for an active pack)."""
    if protocol.status == "active":
        return ""
    until = ", until released" if protocol.status == "draft" else ""
    return f" ({protocol.status}: not for clinical use{until})"


def _evaluate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .evaluation import evaluate
    from .patient import read_patient

    if args.patient == "-" and (sys.stdin is None or sys.stdin.closed):
        raise ValueError("standard input is closed; expected the patient state on standard input, "
                         "or a file name instead of -")
    protocol = _load(args.pack)
    if args.ndjson:
        return _evaluate_ndjson(args, protocol, out, err)
    patient = read_patient(args.patient)
    decision = evaluate(patient, protocol, allow_draft=args.allow_draft)
    if args.format == "json":
        out.write(json_text(decision.to_dict()) + "\n")
    else:
        out.write(decision.render_text() + "\n")
    return EXIT_OK


def _evaluate_ndjson(args: argparse.Namespace, protocol: Protocol, out: TextIO, err: TextIO) -> int:
    """``evaluate --ndjson``: one JSON line per patient (see :mod:`crs_rules.batch`); exit 1 if any line
    was in error (every other line is still decided), 0 otherwise."""
    from .batch import evaluate_ndjson

    safe = _JsonLines(out)
    if args.patient == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:
            raise ValueError("standard input is not a byte stream; give the NDJSON file's name instead of -")
        summary = evaluate_ndjson(buffer, safe, protocol, source="<stdin>", allow_draft=args.allow_draft)
    else:
        with open(args.patient, "rb") as stream:
            summary = evaluate_ndjson(stream, safe, protocol, source=args.patient, allow_draft=args.allow_draft)
    if summary.errors:
        ended = "; reading stopped at the line too long" if summary.stopped_early else ""
        err.write(f"{summary.errors} line(s) in error, {summary.decided} patient(s) decided{ended}\n")
        return EXIT_INVALID
    return EXIT_OK


class _JsonLines:
    """Writes JSON lines with what :func:`terminal_safe` would escape written as ``\\uXXXX`` inside
    the strings, so every line stays valid JSON with the same values."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text))


def _trace(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._resources import default_pack_dir
    from .pack import read_pack_file
    from .traceability import TABLE, render_table, trace, write_table

    folder = Path(args.pack) if args.pack else default_pack_dir()
    protocol, rows, problems = trace(_load(args.pack))  # the pack loaded once: trace reads what was loaded
    table = render_table(protocol, rows)
    target = folder / TABLE
    if args.check:
        raw, _ = read_pack_file(folder, TABLE)  # a missing, linked-out or unreadable table is not current
        if raw is None or raw.decode("utf-8", errors="replace") != table:
            problems.append(f"{target}: not current; expected the output of crs-rules trace {folder}")
    else:
        write_table(folder, table)
    for problem in problems:
        err.write(problem + "\n")
    if problems:
        return EXIT_INVALID
    covered = sum(1 for row in rows if row.rules)
    out.write(f"OK {covered}/{len(rows)} statements encoded; {target}{' is current' if args.check else ' written'}\n")
    return EXIT_OK


def _release(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .release import ReleaseRefusedError, release

    try:
        protocol = release(args.pack, args.bump, args.note, effective=args.effective)
    except ReleaseRefusedError as refused:
        for reason in refused.reasons:
            err.write(f"{reason}\n")
        err.write(f"release refused ({len(refused.reasons)} reason(s)); the pack is unchanged\n")
        return EXIT_INVALID
    out.write(f"Released {protocol.id} {protocol.version} {protocol.digest} (active, effective "
              f"{protocol.effective_date})\n")
    return EXIT_OK


def _draft(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .release import draft

    target = draft(args.pack, args.dest)
    out.write(f"Draft {target} (status draft, no digest): edit it, then crs-rules validate, test, diff and "
              f"release {target}\n")
    return EXIT_OK


def _scenario_report_dict(report: ScenarioReport) -> dict[str, Any]:
    """``crs-rules test --format json``: every scenario's result and the rule coverage."""
    from .scenarios import _rule_sources

    sources = _rule_sources(report.protocol)

    def rule(rule_id: str) -> dict[str, Any]:
        where = sources.get(rule_id)
        return {"rule": rule_id, "file": where.file if where else None, "line": where.line if where else None}

    return {
        "ok": report.ok,
        "protocol": _protocol_dict(report.protocol),
        "problems": [],
        "passed": report.passed,
        "failed": report.failed,
        "scenarios": [{"name": r.scenario.name, "file": r.scenario.source.file, "line": r.scenario.source.line,
                       "passed": r.passed, "differences": list(r.differences)} for r in report.results],
        "coverage": {"rules": len(report.rule_ids), "checked": len(report.coverage),
                     "percent": report.coverage_percent,
                     "not_checked": [rule(rule_id) for rule_id in report.uncovered]},
    }


def _scenarios(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .scenarios import run_scenarios

    try:
        protocol = _load(args.pack)  # an invalid pack is reported as by validate
    except InvalidPackError as error:
        if args.format == "json":
            return _invalid_json(error, out)
        raise
    try:
        report = run_scenarios(protocol)
    except InvalidPackError as error:
        if args.format == "json":
            return _invalid_json(error, out, protocol)
        for problem in error.problems:
            err.write(f"{problem}\n")
        err.write(f"{len(error.problems)} problem(s): invalid scenarios, nothing was run\n")
        return EXIT_INVALID
    if args.format == "json":
        out.write(json_text(_scenario_report_dict(report)) + "\n")
    else:
        out.write(report.render() + "\n")
    return EXIT_OK if report.ok else EXIT_INVALID


def _diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .impact import compare_packs

    protocols: list[Protocol] = []
    invalid: list[InvalidPackError] = []
    for pack in (args.old, args.new):  # every problem of both packs at once
        try:
            protocols.append(_load(pack))
        except InvalidPackError as error:
            invalid.append(error)
    if invalid:
        raise InvalidPackError(problem for error in invalid for problem in error.problems)
    report = compare_packs(protocols[0], protocols[1], args.population)
    if args.format == "json":
        out.write(json_text(report.to_dict()) + "\n")
    else:
        out.write(report.render() + "\n")
    return EXIT_OK  # differences are information, not failure


def _facts(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .dictionary import fields_data, render_fields, render_vocabulary, vocabulary_data

    protocol = _load(args.pack)
    if args.format == "json":
        data: Any = (vocabulary_data(protocol) if args.vocabulary else
                     {"protocol": {"id": protocol.id, "version": protocol.version}, "fields": fields_data(protocol)})
        out.write(json_text(data) + "\n")
    else:
        out.write((render_vocabulary(protocol) if args.vocabulary else render_fields(protocol)) + "\n")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "validate": _validate,
    "evaluate": _evaluate,
    "trace": _trace,
    "release": _release,
    "draft": _draft,
    "test": _scenarios,
    "diff": _diff,
    "facts": _facts,
}


def run(arguments: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    """Run the command line; returns the exit code. Tests call this with in-memory streams.

    Everything is written to ``stdout`` and ``stderr`` through :func:`terminal_safe`. A
    KeyboardInterrupt (Ctrl-C) anywhere prints ``interrupted`` and returns 130."""
    stdout, stderr = _terminal_safe_stream(stdout), _terminal_safe_stream(stderr)
    try:
        return _run(arguments, stdout, stderr)
    except KeyboardInterrupt:
        stderr.write("interrupted\n")
        return EXIT_INTERRUPTED


def _run(arguments: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    parser = _parser()
    try:
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                args = parser.parse_args(list(arguments))
        except SystemExit as exit_:  # --help and --version print and exit 0
            return int(exit_.code or 0)
        if args.command is None:
            stderr.write(parser.format_usage())
            return EXIT_USAGE
        return _COMMANDS[args.command](args, stdout, stderr)
    except _UsageError as error:
        stderr.write(f"{error}\n")
        return EXIT_USAGE
    except (InvalidPackError, InvalidInputError) as error:
        for problem in error.problems:
            stderr.write(f"{problem}\n")
        kind = "pack" if isinstance(error, InvalidPackError) else "input"
        stderr.write(f"{len(error.problems)} problem(s): invalid {kind}, nothing was evaluated\n"
                     if kind == "input" else f"{len(error.problems)} problem(s): invalid rule pack\n")
        return EXIT_INVALID
    except CrsRulesError as error:
        stderr.write(f"error: {error}\n")
        return EXIT_INVALID
    except ValueError as error:
        stderr.write(f"error: {error}\n")
        return EXIT_INVALID
    except OSError as error:
        stderr.write(f"error: {error.strerror or error}: {error.filename or ''}\n")
        return EXIT_INVALID
    except Exception as error:  # noqa: BLE001 - the last guard: a user never sees a traceback
        stderr.write(f"internal error ({type(error).__name__}): {error}; please report it\n")
        return EXIT_INVALID


def _on_interrupt_handler() -> Callable[[int, FrameType | None], None]:
    """The SIGINT handler of the command: Ctrl-C raises KeyboardInterrupt once in this process (run
    turns it into ``interrupted``, exit 130). ``diff``'s worker processes are forked from this one and
    share the handler; in them it does nothing, and the command ends them with its pool. A second
    Ctrl-C while the command is ending exits at once, with the same single line."""
    main_process = os.getpid()
    interrupted = False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if os.getpid() != main_process:
            return  # a worker: the parent terminates the pool
        if interrupted:
            with contextlib.suppress(OSError):
                os.write(2, b"interrupted\n")
            os._exit(EXIT_INTERRUPTED)
        interrupted = True
        raise KeyboardInterrupt

    return on_interrupt


def main() -> None:
    signal.signal(signal.SIGINT, _on_interrupt_handler())
    code = run(sys.argv[1:], sys.stdout, sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: exit with its code
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (| head): nothing more to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
