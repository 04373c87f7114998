"""Traceability: every statement of the seed protocol, the rule ids that encode it, and where each
of its numbers lives in the YAML.

``crs-rules trace PACK`` writes ``PACK/TRACEABILITY.md`` from ``statements.yaml`` and the pack;
``--check`` fails when that file is not current or when a statement is not encoded. A number of a
statement (``800 mg``, ``8 hours``, ``≥38°C``) must be found exactly once among the data of the rules
that encode the statement, in a field of the matching unit.

Traceability runs both ways: a statement the pack does not follow as written has a declared
*deviation* (what the pack does instead, why, who decided and when), and a rule no statement asks
for is a declared *addition* with its reason. Loading the pack checks both
(:func:`crs_rules.validation.check_traced_both_ways`); the table lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .loading import LoadedDocument
from .model import Protocol
from .pack import SEED, load_protocol, pack_files, write_pack_file
from .pack_files import PackFiles

__all__ = ["TraceRow", "trace", "render_table", "write_table", "TABLE", "SEED", "statement_numbers"]

TABLE = "TRACEABILITY.md"

# Unit words of the seed, and how the field holding such a number is named.
_UNITS: tuple[tuple[str, str], ...] = (
    ("mg/kg", "mg_per_kg"),
    ("mg", "_mg"),
    ("hours", "_h"),
    ("hour", "_h"),
    ("days", "days"),
    ("doses", "doses"),
    ("kg", "weight_kg"),
    ("years", "years"),
    ("°C", "temperature_c"),
    ("L/min", "l_min"),
)
_UNIT_PATTERN = "|".join(re.escape(unit) for unit, _ in _UNITS)
_NUMBER = re.compile(r"(\d[\d,]*(?:\.\d+)?)(?:\s*-\s*(\d+))?\s*-?\s*(" + _UNIT_PATTERN + r")(?![A-Za-z])")
_CITATIONS_AT_END = re.compile(r"\s+\d+(?:\s*,\s*\d+)*\s*$")
_GRADE_LABEL = re.compile(r"\bGrade \d\+?")


def statement_numbers(text: str) -> list[tuple[float, str]]:
    """The protocol numbers of a statement with their units; citation numbers and grade labels
    are not protocol numbers."""
    body = _GRADE_LABEL.sub("", _CITATIONS_AT_END.sub("", text))
    numbers: list[tuple[float, str]] = []
    for match in _NUMBER.finditer(body):
        unit = match.group(3)
        numbers.append((float(match.group(1).replace(",", "")), unit))
        if match.group(2):
            numbers.append((float(match.group(2)), unit))
    return numbers


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    column: int
    path: str
    value: float
    context: str


@dataclass(frozen=True)
class TraceRow:
    statement: str
    text: str
    rules: tuple[str, ...]
    numbers: tuple[tuple[str, tuple[Location, ...]], ...]  # ("800 mg", locations found)


def _elements(protocol: Protocol) -> dict[str, tuple[str, tuple[str | int, ...]]]:
    """Where each rule id is written: (file kind, path), from :meth:`Protocol.rules`."""
    return {rule.id: (rule.file_kind, rule.path) for rule in protocol.rules()}


def _numbers(document: LoadedDocument, node: Any, path: tuple[str | int, ...], fact: str = "") -> Iterator[Location]:
    if isinstance(node, dict):
        here = node.get("fact", fact) if isinstance(node.get("fact"), str) else fact
        for key, value in node.items():
            yield from _numbers(document, value, (*path, key), here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _numbers(document, value, (*path, index), fact)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        keys = [str(p) for p in path if isinstance(p, str)]
        line, column = document.position(path)
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        yield Location(document.file, line, column, dotted, float(node), f"{keys[-1] if keys else ''} {fact}")


def _matches_unit(location: Location, unit: str) -> bool:
    marker = dict(_UNITS)[unit]
    key, _, fact = location.context.partition(" ")
    if marker.startswith("_"):
        return key.endswith(marker)
    return marker in key or marker in fact


def trace(pack: Protocol | str | Path, protocol: Protocol | None = None) -> tuple[Protocol, list[TraceRow], list[str]]:
    """The traceability rows of a pack and every problem with them (in words).

    ``pack`` is the loaded pack, or a pack folder (loaded here unless ``protocol`` is that folder's
    pack already loaded). The documents and the seed protocol are the ones loaded with the pack
    (:attr:`Protocol.files`): nothing is read again."""
    if isinstance(pack, Protocol):
        protocol = pack
    elif protocol is None:
        protocol = load_protocol(Path(pack))
    files = pack_files(protocol)
    documents = files.documents
    places = _elements(protocol)
    rows: list[TraceRow] = []
    problems: list[str] = []
    deviated = {deviation.statement for deviation in protocol.deviations}
    for statement in protocol.statements:
        locations = [loc for rule in statement.encoded_by if rule in places
                     for loc in _numbers(documents[places[rule][0]], _at(documents[places[rule][0]].data, places[rule][1]),
                                         places[rule][1])]
        numbers = []
        for value, unit in statement_numbers(statement.text):
            found = tuple(dict.fromkeys(loc for loc in locations if loc.value == value and _matches_unit(loc, unit)))
            label = f"{value:g} {unit}"
            numbers.append((label, found))
            if not found and statement.id in deviated:
                continue  # the pack does not follow this statement as written: a declared deviation
            if len(found) != 1:
                where = ", ".join(f"{loc.file}:{loc.line}:{loc.column}" for loc in found) or "nowhere"
                declare = "" if found else (
                    "; a number the pack changes on purpose is a deviation from the seed: declare it in "
                    f"statements.yaml, deviations: [{{id: D.., statement: {statement.id}, instead: ..., reason: ..., "
                    "decided_by: ..., date: ...}]")
                problems.append(f"{statement.id}: the number {label} is found {len(found)} times among "
                                f"{', '.join(statement.encoded_by)} ({where}); expected exactly once{declare}")
        if not statement.encoded_by and not any(d.statement == statement.id for d in protocol.deviations):
            problems.append(f"{statement.id}: no rule encodes this statement and no deviation replaces it; "
                            "expected its rule ids in encoded_by, or a deviation in statements.yaml")
        rows.append(TraceRow(statement.id, statement.text, statement.encoded_by, tuple(numbers)))
    problems.extend(_seed_coverage(files, protocol))
    return protocol, rows, problems


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _normalise(text: str) -> str:
    return " ".join(text.replace("\u2011", "-").split())


def _seed_coverage(files: PackFiles, protocol: Protocol) -> list[str]:
    """Every line of the seed protocol kept beside the pack is a heading or a statement."""
    seed = Path(files.folder) / SEED
    if files.seed is None:
        return [f"{seed}: the seed protocol is not beside the pack; expected {SEED} to check coverage against"]
    # Read with the pack, like its own files: a regular file inside the pack, at most 1 MiB.
    raw = files.seed.raw
    if raw is None:
        return [str(problem) for problem in files.seed.problems]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        row = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return [f"{seed}:{row}:{column}: -: the file is not UTF-8 text (byte 0x{raw[error.start]:02X} cannot be "
                "read); expected the seed protocol as UTF-8 text"]
    known = {_normalise(s.text) for s in protocol.statements} | {_normalise(h) for h in protocol.headings}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        text = _normalise(line.lstrip("- ").strip())
        if text and text not in known:
            problems.append(f"{seed}:{number}: this line of the seed is neither a statement nor a heading "
                            "in statements.yaml; expected every statement to be encoded")
    return problems


def render_table(protocol: Protocol, rows: list[TraceRow]) -> str:
    """The Markdown table written to TRACEABILITY.md."""
    lines = [
        f"# Traceability: {protocol.title}",
        "",
        f"Generated by `crs-rules trace` from `statements.yaml` for {protocol.id} {protocol.version}; "
        "do not edit by hand. Each statement of the seed protocol, the rule ids that encode it, and "
        "where each of its numbers is written (the only place it is written).",
        "",
        "| Statement | Seed text | Rule ids | Numbers and where they live |",
        "|---|---|---|---|",
    ]
    deviations: dict[str, list[str]] = {}
    for deviation in protocol.deviations:
        deviations.setdefault(deviation.statement, []).append(deviation.id)
    for row in rows:
        missing = f"not found (deviation {', '.join(deviations[row.statement])})" if row.statement in deviations \
            else "not found"
        numbers = "<br>".join(
            f"{label}: " + (", ".join(f"`{Path(loc.file).name}:{loc.line}` {loc.path}" for loc in found) or missing)
            for label, found in row.numbers
        ) or "none"
        text = _cell(row.text)
        rules = ", ".join(f"`{r}`" for r in row.rules) or "none"
        if row.statement in deviations:
            rules += "<br>deviation " + ", ".join(deviations[row.statement])
        lines.append(f"| {row.statement} | {text} | {rules} | {numbers} |")
    lines.extend(_deviation_lines(protocol))
    lines.extend(_addition_lines(protocol))
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _short(text: str, words: int = 12) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def _deviation_lines(protocol: Protocol) -> list[str]:
    lines = [
        "",
        "## Declared deviations from the seed",
        "",
        "Statements of the seed the pack does not follow as written: what it does instead, why, and who "
        "decided when.",
        "",
    ]
    if not protocol.deviations:
        return [*lines, "None."]
    statements = {s.id: s.text for s in protocol.statements}
    lines += ["| Deviation | Statement | Instead | Reason | Decided by | Date | Rule ids |", "|---|---|---|---|---|---|---|"]
    for d in protocol.deviations:
        statement = f"{d.statement}: {_short(statements.get(d.statement, ''))}"
        rules = ", ".join(f"`{r}`" for r in d.rules) or "none"
        lines.append(f"| {d.id} | {_cell(statement)} | {_cell(d.instead)} | {_cell(d.reason)} | "
                     f"{_cell(d.decided_by)} | {d.date} | {rules} |")
    return lines


def _addition_lines(protocol: Protocol) -> list[str]:
    lines = [
        "",
        "## Declared additions",
        "",
        "Rules, or readings of a rule, that no statement of the seed asks for, and why the pack has them.",
        "",
    ]
    if not protocol.additions:
        return [*lines, "None."]
    encoded: dict[str, list[str]] = {}
    for statement in protocol.statements:
        for rule_id in statement.encoded_by:
            encoded.setdefault(rule_id, []).append(statement.id)
    implements: dict[str, list[str]] = {}
    for deviation in protocol.deviations:
        for rule_id in deviation.rules:
            implements.setdefault(rule_id, []).append(deviation.id)
    lines += ["| Rule id | Reason | Also |", "|---|---|---|"]
    for a in protocol.additions:
        also = [f"encodes {', '.join(encoded[a.rule])}"] if a.rule in encoded else []
        also += [f"carries out {', '.join(implements[a.rule])}"] if a.rule in implements else []
        lines.append(f"| `{a.rule}` | {_cell(a.reason)} | {'; '.join(also) or '-'} |")
    return lines


def write_table(pack: str | Path, table: str) -> Path:
    """Write ``table`` to ``PACK/TRACEABILITY.md`` in one step (a temporary file in the pack folder,
    then renamed over it); refuses to write through a link (ValueError). Returns the path written."""
    return write_pack_file(Path(pack), TABLE, table)
