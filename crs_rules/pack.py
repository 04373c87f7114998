"""Reading a rule pack folder into a validated :class:`~crs_rules.model.Protocol`.

The stages run in order and collect every problem before raising: load each YAML file with
positions (``loading``), check it against its schema (``validation``), build the frozen model,
then run the semantic checks. :func:`load_protocol` is the public entry point.

The folder is read once (:func:`~crs_rules.pack_reading.read_pack`, in :mod:`crs_rules.pack_reading`):
the files the manifest lists, the seed protocol and the scenario files, kept on the protocol as :class:`~crs_rules.pack_files.PackFiles`
(``Protocol.files``) for the stages that read them later. :func:`protocol_from_files` validates
files already read (a release validates the manifest it is about to write without reading the
folder again).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ._resources import default_pack_dir
from .conditions import build_condition
from .envelope import default_envelope, envelope_problems
from .errors import InvalidPackError, Problem
from .loading import MAX_FILE_BYTES, LoadedDocument
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
from .pack_files import PackFiles
from .pack_reading import (
    FILE_KINDS,
    MANIFEST,
    MAX_PACK_BYTES,
    SEED,
    read_pack,
    read_pack_documents,
    read_pack_file,
    read_scenario_files,
    write_pack_file,
)
from .validation import CheckId, semantic_problems

__all__ = [
    "load_protocol",
    "read_pack",
    "protocol_from_files",
    "pack_files",
    "read_scenario_files",
    "FILE_KINDS",
    "MANIFEST",
    "SEED",
    "content_digest",
    "read_pack_documents",
    "read_pack_file",
    "write_pack_file",
    "MAX_FILE_BYTES",
    "MAX_PACK_BYTES",
]

def pack_files(protocol: Protocol) -> PackFiles:
    """The files ``protocol`` was loaded from, as loaded (:attr:`Protocol.files`; a copy made with
    :func:`dataclasses.replace` keeps them, as it keeps every field). Read from its folder only for a
    protocol built by hand, and then checked to be that protocol's content: raises
    :class:`~crs_rules.errors.InvalidPackError` if they cannot be read, or if their content digest is
    not ``protocol.digest`` (the folder changed since, or is another pack)."""
    if protocol.files is not None:
        return protocol.files
    folder = Path(protocol.path)
    files, problems = read_pack(folder)
    if files is None:
        raise InvalidPackError(problems)
    digest = content_digest(files.documents)
    if digest != protocol.digest:
        raise InvalidPackError([Problem(str(folder / MANIFEST), 0, 0, "-",
                                        f"the pack's files read now are not the protocol's content (content "
                                        f"{digest[:19]}..., the protocol's {protocol.digest[:19]}...)",
                                        "expected the folder the protocol was built from, unchanged since; "
                                        "load the pack again (load_protocol)", (), CheckId.PACK_FILE)])
    return files


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
            status_source=at["manifest"](("status",)),
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
