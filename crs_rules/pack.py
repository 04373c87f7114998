"""Reading a rule pack folder into a validated :class:`~crs_rules.model.Protocol`.

The stages run in order and collect every problem before raising: load each YAML file with
positions (``loading``), check it against its schema (``validation``), build the frozen model,
then run the semantic checks. :func:`load_protocol` is the public entry point.

The folder is read once (:func:`read_pack`): the files the manifest lists, the seed protocol and
the scenario files, kept on the protocol as :class:`~crs_rules.pack_files.PackFiles`
(``Protocol.files``) for the stages that read them later. :func:`protocol_from_files` validates
files already read (a release validates the manifest it is about to write without reading the
folder again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from ._resources import default_pack_dir
from .conditions import build_condition
from .envelope import default_envelope, envelope_problems
from .errors import InvalidPackError, Problem
from .loading import MAX_FILE_BYTES, LoadedDocument, UnreadableFile, load_yaml_bytes, read_bounded
from .model import (
    Action,
    ActionRule,
    Addition,
    AlertRule,
    Amount,
    ChangelogEntry,
    Deviation,
    DoseLimits,
    DoseRef,
    Drug,
    DrugClass,
    DrugName,
    Finding,
    FindingLevel,
    GradeCriterion,
    Pediatric,
    Protocol,
    Reference,
    Regimen,
    Source,
    Statement,
    WeightBand,
)
from .operators import OPERATORS
from .pack_files import PackFiles, ReadFile
from .scenario_model import SCENARIO_FOLDER
from .validation import CheckId, schema_problems, semantic_problems

__all__ = [
    "load_protocol",
    "read_pack",
    "protocol_from_files",
    "pack_files",
    "MANIFEST",
    "SEED",
    "content_digest",
    "read_pack_documents",
    "read_pack_file",
    "write_pack_file",
    "MAX_FILE_BYTES",
    "MAX_PACK_BYTES",
]

MANIFEST = "manifest.yaml"
#: The seed protocol, kept beside the pack: traceability checks the pack against it.
SEED = "seed-protocol.txt"
FILE_KINDS = ("references", "grading", "dosing", "actions", "alerts", "statements")

#: The most bytes all the files of a pack (manifest included) may hold together (4 MiB); each file
#: may hold at most :data:`~crs_rules.loading.MAX_FILE_BYTES` (1 MiB). The shipped pack holds 30 KiB.
MAX_PACK_BYTES = 4 * 1024 * 1024

_LINK_OUT = ("the file is a link to a file outside the pack folder",
             "expected the pack's own files inside the pack folder, not links out of it")


def _display(pack: Path, name: str) -> str:
    return str(pack / name) if str(pack) != "." else name


class _PackReader:
    """Reads the files of one pack folder, confined to it: only regular files inside the folder
    (links are followed only when they stay inside), each at most ``MAX_FILE_BYTES``, all together at
    most ``MAX_PACK_BYTES``. A refused file is a problem at position 0:0 and is never read, so no
    content from outside the pack can reach a message."""

    def __init__(self, pack: Path) -> None:
        self.pack = pack
        self.root = pack.resolve()
        self.total = 0
        self.raw: dict[str, bytes] = {}

    def read(self, name: str) -> tuple[bytes | None, list[Problem]]:
        display = _display(self.pack, name)

        def problem(message: str, expected: str) -> tuple[None, list[Problem]]:
            return None, [Problem(display, 0, 0, "-", message, expected, (), CheckId.PACK_FILE)]

        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            return problem("the file name leaves the pack folder", "expected a file name inside the pack folder")
        path = self.pack / relative
        try:
            target = path.resolve(strict=True)
        except FileNotFoundError:
            pass  # reported by the read below, in the usual words
        except (OSError, RuntimeError) as error:  # a link loop, a permission refused
            reason = getattr(error, "strerror", None) or str(error)
            return problem(f"the file cannot be read ({reason})", "check the file name and that the file can be opened")
        else:
            if not target.is_relative_to(self.root):
                return problem(*_LINK_OUT)
            path = target  # no link left in it: opened without following one, should it become a link
        try:
            # The type (no FIFO, no device) and the size are checked before a byte is read.
            raw = read_bounded(path, MAX_FILE_BYTES, follow_links=False)
        except UnreadableFile as error:
            return problem(error.message, error.expected)
        if self.total + len(raw) > MAX_PACK_BYTES:
            return problem(f"the pack's files reach {self.total + len(raw)} bytes with this one",
                           f"expected at most {MAX_PACK_BYTES} bytes ({MAX_PACK_BYTES // (1024 * 1024)} MiB) "
                           "for the whole pack")
        self.total += len(raw)
        return raw, []

    def load(self, name: str) -> tuple[LoadedDocument | None, list[Problem]]:
        raw, problems = self.read(name)
        if raw is None:
            return None, problems
        self.raw[name] = raw
        return load_yaml_bytes(raw, _display(self.pack, name))


def read_pack_file(pack: Path, name: str) -> tuple[bytes | None, list[Problem]]:
    """The bytes of one file of a pack folder, read with the pack's confinement and size limits."""
    return _PackReader(pack).read(name)


def read_pack_documents(pack: Path) -> tuple[dict[str, LoadedDocument], list[Problem]]:
    """Load and schema-check the manifest and every file it lists, keyed by kind.

    The manifest is checked against its schema before any file it names is opened: when its
    ``files`` section is not valid, no file is opened at all. Every file is read confined to the
    pack folder (see :class:`_PackReader`).
    """
    documents, _, problems = _read_documents(pack)
    return documents, problems


def _read_documents(pack: Path) -> tuple[dict[str, LoadedDocument], dict[str, bytes], list[Problem]]:
    """:func:`read_pack_documents`, with the bytes of each document read, by kind."""
    problems: list[Problem] = []
    if not pack.is_dir():
        problem = Problem(str(pack), 0, 0, "-", "is not a folder", "expected a rule pack folder holding manifest.yaml")
        return {}, {}, [problem]
    reader = _PackReader(pack)
    manifest, found = reader.load(MANIFEST)
    problems.extend(found)
    if manifest is None:
        return {}, {}, problems
    documents = {"manifest": manifest}
    names = {"manifest": MANIFEST}
    manifest_problems = schema_problems(manifest, "manifest")
    problems.extend(manifest_problems)
    files = manifest.data.get("files") if isinstance(manifest.data, dict) else None
    if not isinstance(files, dict) or any(p.path[:1] == ("files",) for p in manifest_problems):
        return documents, _by_kind(reader, names), problems
    for kind in FILE_KINDS:
        name = files.get(kind)
        if not isinstance(name, str):
            continue
        document, found = reader.load(name)
        problems.extend(found)
        if document is not None:
            problems.extend(schema_problems(document, kind))
            documents[kind] = document
            names[kind] = name
    return documents, _by_kind(reader, names), problems


def _by_kind(reader: _PackReader, names: dict[str, str]) -> dict[str, bytes]:
    return {kind: reader.raw[name] for kind, name in names.items() if name in reader.raw}


def _read_file(pack: Path, name: str) -> ReadFile:
    raw, problems = read_pack_file(pack, name)
    return ReadFile(name, _display(pack, name), raw, tuple(problems))


def read_scenario_files(pack: Path) -> tuple[ReadFile, ...] | None:
    """The files ``PACK/scenarios/*.yaml`` in name order, each read like the pack's own files (None
    when the pack has no scenarios folder). Their problems are kept, not raised: scenario files are
    not protocol content, so they are reported when the scenarios are read."""
    folder = pack / SCENARIO_FOLDER
    if not folder.is_dir():
        return None
    return tuple(_read_file(pack, f"{SCENARIO_FOLDER}/{path.name}") for path in sorted(folder.glob("*.yaml")))


def read_pack(pack: Path) -> tuple[PackFiles | None, list[Problem]]:
    """Read a pack folder once: the manifest and every file it lists (as :func:`read_pack_documents`),
    then the seed protocol and the scenario files beside them. Returns ``(files, [])``, or
    ``(None, problems)`` when a listed file is missing, unreadable or not valid against its schema."""
    documents, raw, problems = _read_documents(pack)
    if problems or set(documents) != {"manifest", *FILE_KINDS}:
        return None, problems or [Problem(str(pack), 0, 0, "-", "the pack is incomplete",
                                          "expected every file the manifest lists")]
    seed = _read_file(pack, SEED) if os.path.lexists(pack / SEED) else None
    return PackFiles(str(pack), documents, raw, seed, read_scenario_files(pack)), []


def pack_files(protocol: Protocol) -> PackFiles:
    """The files ``protocol`` was loaded from, as loaded; read from its folder only for a protocol
    built by hand (raises :class:`~crs_rules.errors.InvalidPackError` if they cannot be read)."""
    if protocol.files is not None:
        return protocol.files
    files, problems = read_pack(Path(protocol.path))
    if files is None:
        raise InvalidPackError(problems)
    return files


def write_pack_file(pack: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``pack/name`` in one step: a temporary file in the same folder, flushed to
    disk, then renamed over the target, so a reader sees the old file or the new one, never half of
    one. Refuses to write through a link or over anything but a regular file (raises ValueError).
    Returns the path written."""
    target = pack / name
    try:
        mode: int | None = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISLNK(mode):
        raise ValueError(f"{target} is a link; expected a plain file to write (crs-rules does not write through links)")
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(f"{target} is not a regular file; expected a plain file to write")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if mode is None:  # a new file gets the usual permissions, not mkstemp's private ones
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        else:
            os.chmod(temporary, stat.S_IMODE(mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def content_digest(documents: Mapping[str, LoadedDocument]) -> str:
    """sha256 of the pack's content: every file's data (not its comments or layout), the
    manifest's own recorded digest left out, so the digest can be written into the manifest."""
    content: dict[str, Any] = {}
    for kind, document in sorted(documents.items()):
        data = document.data
        if kind == "manifest" and isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "digest"}
        content[kind] = data
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Builder:
    """Builds model values from schema-valid documents, recording positions."""

    def __init__(self, documents: dict[str, LoadedDocument]) -> None:
        self.documents = documents
        self.problems: list[Problem] = []
        # Comparisons written without an operator: the model gives them one (exists) only to keep
        # building, so the semantic checks must not report on that operator.
        self.no_operator: set[tuple[str, int, int]] = set()

    def where(self, kind: str) -> Callable[[tuple[str | int, ...]], Source]:
        document = self.documents[kind]

        def source(path: tuple[str | int, ...]) -> Source:
            line, column = document.position(path)
            return Source(document.file, line, column)

        return source

    def condition(self, kind: str, data: Any, path: tuple[str | int, ...], rule_id: str) -> Any:
        self._check_operators(kind, data, path, rule_id)
        return build_condition(data, path, self.where(kind))

    def _check_operators(self, kind: str, data: Any, path: tuple[str | int, ...], rule_id: str) -> None:
        if not isinstance(data, dict):
            return
        for key in ("all", "any"):
            for index, part in enumerate(data.get(key, ())):
                self._check_operators(kind, part, (*path, key, index), rule_id)
        if "not" in data:
            self._check_operators(kind, data["not"], (*path, "not"), rule_id)
        combiners = [key for key in ("all", "any", "not", "fact") if key in data]
        source = self.where(kind)(path)
        if len(combiners) > 1:
            self.problems.append(Problem(source.file, source.line, source.column, rule_id,
                                         "mixes " + ", ".join(combiners) + " in one condition",
                                         "expected exactly one of all, any, not, fact; nest the others", path,
                                         CheckId.CONDITION_FORM))
        if "fact" in data:
            operators = [key for key in data if key in OPERATORS]
            if not operators:
                self.no_operator.add((source.file, source.line, source.column))
            if len(operators) != 1:
                found = ", ".join(operators) if operators else "none"
                self.problems.append(Problem(source.file, source.line, source.column, rule_id,
                                             f"a comparison on {data['fact']} has {len(operators)} operators ({found})",
                                             "expected exactly one of " + ", ".join(OPERATORS), path,
                                             CheckId.CONDITION_FORM))

    def build(self, files: PackFiles, digest: str) -> Protocol:
        m = self.documents["manifest"].data
        refs = self.documents["references"].data
        grading = self.documents["grading"].data
        dosing = self.documents["dosing"].data
        actions = self.documents["actions"].data
        alerts = self.documents["alerts"].data
        statements = self.documents["statements"].data
        at = {kind: self.where(kind) for kind in self.documents}

        references = tuple(
            Reference(r["id"], r.get("seed_number"), r["title"], r["source"], at["references"](("references", i)))
            for i, r in enumerate(refs["references"])
        )
        findings = []
        for i, f in enumerate(grading["findings"]):
            path: tuple[str | int, ...] = ("findings", i)
            rule_id = f"finding.{f['id']}"
            when = self.condition("grading", f["when"], (*path, "when"), rule_id) if "when" in f else None
            levels = tuple(
                FindingLevel(
                    level["value"],
                    level.get("text"),
                    self.condition("grading", level["when"], (*path, "levels", j, "when"), rule_id),
                    at["grading"]((*path, "levels", j)),
                )
                for j, level in enumerate(f.get("levels", ()))
            )
            otherwise = f.get("otherwise", {})
            findings.append(Finding(
                f["id"], f["description"], when, f.get("true_text"), f.get("false_text"), levels,
                otherwise.get("value"), otherwise.get("text"), tuple(f["citations"]), at["grading"](path),
            ))
        grades = tuple(
            GradeCriterion(g["id"], g["grade"], g["text"],
                           self.condition("grading", g["when"], ("grades", i, "when"), g["id"]),
                           tuple(g["citations"]), at["grading"](("grades", i)))
            for i, g in enumerate(grading["grades"])
        )
        drugs = tuple(self._drug(d, i) for i, d in enumerate(dosing["drugs"]))
        classes = tuple(
            DrugClass(c["id"], c["description"], tuple(c["members"]), at["dosing"](("drug_classes", i)),
                      c.get("escalation_steps", False), c.get("vocabulary_of"), c.get("refused_from"),
                      c.get("refusal"))
            for i, c in enumerate(dosing["drug_classes"])
        )
        names = tuple(
            DrugName(n["id"], tuple(n["synonyms"]), tuple(n["citations"]), at["dosing"](("names", i)))
            for i, n in enumerate(dosing.get("names", ()))
        )
        pediatric = dosing.get("pediatric")
        action_list = tuple(
            Action(a["id"], a["text"], at["actions"](("actions", i))) for i, a in enumerate(actions["actions"])
        )
        action_rules = []
        for i, r in enumerate(actions["rules"]):
            strength = "recommend" if "recommend" in r else "consider"
            dose = r.get("dose")
            action_rules.append(ActionRule(
                r["id"], r["description"], self.condition("actions", r["when"], ("rules", i, "when"), r["id"]),
                r[strength], strength,
                DoseRef(dose["drug"], dose["regimen"], at["actions"](("rules", i, "dose"))) if dose else None,
                tuple(r["citations"]), at["actions"](("rules", i)),
            ))
        alert_rules = tuple(
            AlertRule(a["id"], a["severity"], a["description"], a["text"],
                      self.condition("alerts", a["when"], ("alerts", i, "when"), f"alert.{a['id']}"),
                      tuple(a["citations"]), at["alerts"](("alerts", i)), a.get("if_unknown", "pending"))
            for i, a in enumerate(alerts["alerts"])
        )
        statement_list = tuple(
            Statement(s["id"], " ".join(s["text"].split()), tuple(s["encoded_by"]), at["statements"](("statements", i)))
            for i, s in enumerate(statements["statements"])
        )
        deviations = tuple(
            Deviation(d["id"], d["statement"], " ".join(d["instead"].split()), " ".join(d["reason"].split()),
                      d["decided_by"], d["date"], tuple(d.get("rules", ())), at["statements"](("deviations", i)))
            for i, d in enumerate(statements.get("deviations", ()))
        )
        additions = tuple(
            Addition(a["rule"], " ".join(a["reason"].split()), at["statements"](("additions", i)))
            for i, a in enumerate(statements.get("additions", ()))
        )
        definition = grading["definition"]
        return Protocol(
            id=m["protocol"], title=m["title"], version=m["version"], status=m["status"],
            effective_date=m["effective_date"], digest=digest, recorded_digest=m.get("digest"),
            changelog=tuple(ChangelogEntry(c["version"], c["date"], c["note"]) for c in m["changelog"]),
            definition_id=definition["id"], definition_text=" ".join(definition["text"].split()),
            definition_citations=tuple(definition["citations"]),
            references=references, findings=tuple(findings), grades=grades, drugs=drugs,
            drug_classes=classes, actions=action_list, action_rules=tuple(action_rules), alerts=alert_rules,
            statements=statement_list, headings=tuple(statements["headings"]), path=files.folder,
            definition_source=at["grading"](("definition",)),
            applies_when=(self.condition("grading", definition["applies_when"], ("definition", "applies_when"),
                                         definition["id"]) if "applies_when" in definition else None),
            deviations=deviations, additions=additions, names=names,
            pediatric=(Pediatric(float(pediatric["age_below_years"]), float(pediatric["weight_below_kg_if_age_unknown"]))
                       if pediatric is not None else None),
            files=files,
        )

    def _amount(self, data: dict[str, Any] | None, path: tuple[str | int, ...]) -> Amount | None:
        if data is None:
            return None
        bands = tuple(WeightBand(float(b["from_weight_kg"]), float(b["mg_per_kg"])) for b in data.get("per_kg", ()))
        fixed = data.get("fixed_mg")
        step = data.get("round_down_to_mg")
        return Amount(float(fixed) if fixed is not None else None, bands,
                      float(step) if step is not None else None, self.where("dosing")(path))

    def _drug(self, d: dict[str, Any], i: int) -> Drug:
        path: tuple[str | int, ...] = ("drugs", i)
        where = self.where("dosing")
        drug_amount = self._amount(d.get("amount"), (*path, "amount"))
        regimens = []
        for j, r in enumerate(d["regimens"]):
            own = self._amount(r.get("amount"), (*path, "regimens", j, "amount"))
            regimens.append(Regimen(
                r["id"], own or drug_amount, r.get("every_h"), r.get("up_to_every_h"), r.get("times_daily"),
                r.get("for_days"), r.get("then"), where((*path, "regimens", j)), r.get("step"), r.get("replaces"),
            ))
        limits = d.get("limits", {})
        window = limits.get("max_doses_in_window", {})
        return Drug(
            d["id"], d["name"], d["route"], tuple(regimens),
            DoseLimits(
                max_dose_mg=limits.get("max_dose_mg"),
                min_interval_h=limits.get("min_interval_h"),
                max_doses_in_window=window.get("doses"),
                window_h=window.get("window_h"),
                max_doses_per_course=limits.get("max_doses_per_course"),
                repeat_only_if_not_improving=limits.get("repeat_only_if_not_improving", False),
                source=where((*path, "limits")),
            ),
            tuple(d["citations"]), where(path),
        )


def _release_problems(documents: dict[str, LoadedDocument], protocol: Protocol) -> list[Problem]:
    manifest = documents["manifest"]
    recorded = protocol.recorded_digest
    if recorded is None:
        if protocol.status == "draft":
            return []
        line, column = manifest.position(("version",))
        return [Problem(manifest.file, line, column, protocol.id,
                        f"an {protocol.status} pack has no recorded digest",
                        "expected a released pack: a pack becomes active only through crs-rules release, which "
                        "records its digest; start a change with crs-rules draft PACK DEST",
                        ("digest",), CheckId.RELEASE_DIGEST)]
    if recorded != protocol.digest:
        line, column = manifest.position(("digest",))
        return [Problem(manifest.file, line, column, protocol.id,
                        f"the pack's content changed since version {protocol.version} was released "
                        f"(recorded {recorded[:19]}..., content {protocol.digest[:19]}...)",
                        "expected an active pack unchanged since its release: make a change in a draft "
                        "(crs-rules draft PACK DEST copies the pack as a draft), validate and test it, then "
                        "crs-rules release DEST --bump major|minor|patch --note \"what changed\"",
                        ("digest",), CheckId.RELEASE_DIGEST)]
    return []


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Load and validate a rule pack folder (the shipped pack when ``path`` is None).

    Raises :class:`~crs_rules.errors.InvalidPackError` carrying every problem found, sorted by
    file and position, when the pack is not valid.
    """
    return _load_protocol(path, check_release=True)


def _load_protocol(path: str | Path | None, check_release: bool) -> Protocol:
    """:func:`load_protocol`; without ``check_release``, a recorded digest that no longer matches
    the content is not a problem (``release`` loads a pack it is about to record)."""
    pack = Path(path) if path is not None else default_pack_dir()
    files, problems = read_pack(pack)
    if files is None:
        raise InvalidPackError(problems)
    return protocol_from_files(files, check_release=check_release)


def protocol_from_files(files: PackFiles, *, check_release: bool = True) -> Protocol:
    """The validated protocol of files already read (:func:`read_pack`): every problem raised
    together as :class:`~crs_rules.errors.InvalidPackError`, as :func:`load_protocol` does. Without
    ``check_release``, a recorded digest that no longer matches the content is not a problem."""
    documents = dict(files.documents)
    builder = _Builder(documents)
    protocol = builder.build(files, content_digest(documents))
    semantic = [p for p in semantic_problems(protocol)
                if not (p.check == CheckId.OPERATOR_FITS_FACT and (p.file, p.line, p.column) in builder.no_operator)]
    # The safety envelope is owned apart from the pack: a pack may be tighter, never looser.
    problems = builder.problems + semantic + envelope_problems(documents, default_envelope())
    if check_release:
        problems += _release_problems(documents, protocol)
    if problems:
        raise InvalidPackError(problems)
    return protocol
