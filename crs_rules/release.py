"""Release discipline: a changed protocol is a new version, and only a tested one is released.

A change starts with :func:`draft`: a copy of the pack marked ``status: draft``, without a digest,
recording in ``draft_of`` the content it started from. :func:`release` refuses (listing every
reason, writing nothing) unless the pack validates, every scenario passes with full rule coverage
(``crs-rules test``), the traceability check passes (``crs-rules trace``: every number of the
seed found, or its statement declared a deviation) and the content differs from what was released;
it then sets ``status: active`` and the ``effective_date``.

The manifest records the digest of the pack's content. ``crs-rules validate`` fails when the content
no longer matches it; :func:`release` bumps the version, adds the changelog entry and records the new
digest in one step, editing only those lines of ``manifest.yaml`` so its comments stay.

Nothing is written until the new manifest has been built and checked in memory (it reads back as
YAML, matches its schema and gives the recorded digest); it is then written in one step (a
temporary file renamed over it), never through a link. A failed release leaves the pack as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import CrsRulesError, InvalidPackError, Problem
from .loading import LoadedDocument, load_yaml_bytes
from .model import Protocol
from .pack import MANIFEST, content_digest, protocol_from_files, read_pack, write_pack_file
from .pack_files import PackFiles
from .validation import schema_problems

__all__ = ["release", "draft", "bump_version", "protocol_digest", "ReleaseRefusedError", "BUMPS", "RELEASE_RECORD"]

#: Manifest keys that record a release rather than say what the protocol is.
RELEASE_RECORD = ("version", "status", "effective_date", "digest", "draft_of", "changelog")


class ReleaseRefusedError(CrsRulesError, ValueError):
    """A release gate failed; ``reasons`` says each one, in words. Nothing was written."""

    def __init__(self, reasons: Iterable[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("release refused: " + "; ".join(self.reasons))


def protocol_digest(documents: Mapping[str, LoadedDocument]) -> str:
    """sha256 of what the protocol says: every file's data, the manifest without its release
    record (version, status, dates, digests, changelog). Two packs with the same protocol digest
    give every patient the same decision."""
    content: dict[str, Any] = {}
    for kind, document in sorted(documents.items()):
        data = document.data
        if kind == "manifest" and isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in RELEASE_RECORD}
        content[kind] = data
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

BUMPS = ("major", "minor", "patch")


def bump_version(version: str, bump: str) -> str:
    """``1.2.3`` bumped by ``major`` is ``2.0.0``, by ``minor`` ``1.3.0``, by ``patch`` ``1.2.4``."""
    major, minor, patch = (int(part) for part in version.split("."))
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    if bump == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise ValueError(f"bump must be one of {', '.join(BUMPS)}, not {bump!r}")


# Characters a note may not hold: controls (C0 but tab and line breaks, DEL, C1) and characters
# that look like nothing or like a space but change the text (the YAML loader refuses them too).
_NOT_IN_NOTE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00a0\u00ad\u061c\u1680\u180e\u2000-\u200f\u2028-\u202f"
    "\u205f-\u2064\u2066-\u2069\u3000\ufeff]"
)


def _note_problem(note: str) -> str | None:
    found = _NOT_IN_NOTE.search(note)
    if found is None:
        return None
    character = found.group()
    name = unicodedata.name(character, "").lower()
    kind = "a control character" if unicodedata.category(character) == "Cc" else "an invisible character"
    described = f"U+{ord(character):04X}" + (f" {name}" if name else "")
    return (f"the note contains {kind} ({described}); "
            "expected a note in plain text, without control or invisible characters")


def _checked_manifest(text: str, name: str) -> LoadedDocument:
    """The manifest text as it will be written, read back and checked against its schema."""
    document, problems = load_yaml_bytes(text.encode("utf-8"), name)
    if document is not None:
        problems = schema_problems(document, "manifest")
    if document is None or problems:
        raise InvalidPackError(problems)
    return document


def _yaml_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _gates(documents: Mapping[str, LoadedDocument], protocol: Protocol) -> list[str]:
    """Every reason not to release this (valid) pack; empty when it may be released."""
    from .scenarios import run_scenarios
    from .traceability import trace

    reasons: list[str] = []
    manifest = documents["manifest"].data
    if protocol.recorded_digest is not None and protocol.recorded_digest == protocol.digest:
        reasons.append(f"nothing changed since version {protocol.version} was released (the content matches its "
                       "recorded digest); expected a changed protocol: make the change in a draft "
                       "(crs-rules draft PACK DEST)")
    elif manifest.get("draft_of") is not None and manifest["draft_of"] == protocol_digest(documents):
        reasons.append("the draft says the same as the version it was started from (draft_of); "
                       "expected a changed protocol: a release records a change")
    try:
        report = run_scenarios(protocol)
    except InvalidPackError as error:
        reasons += [f"scenarios: {problem}" for problem in error.problems]
    else:
        if not report.results:
            reasons.append("scenarios: the pack has no scenarios; expected scenarios/*.yaml (crs-rules test)")
        for result in report.failures:
            where = result.scenario.source
            reasons.append(f"scenario {result.scenario.name} fails ({where.file}:{where.line}): "
                           + "; ".join(result.differences))
        for rule_id in report.uncovered:
            reasons.append(f"scenarios: no scenario fires rule {rule_id}; expected 100 % rule coverage (crs-rules test)")
    _, _, problems = trace(protocol)
    reasons += [f"traceability: {problem}" for problem in problems]
    return reasons


def release(pack: str | Path, bump: str, note: str, today: date | None = None,
            effective: date | None = None) -> Protocol:
    """Record a new version of the pack: bumped version, changelog entry, ``status: active``, the
    effective date (``effective``, else today) and the content digest.

    Refused with :class:`ReleaseRefusedError` listing every failed gate (scenarios, traceability,
    no change), or :class:`InvalidPackError` when the pack is not valid apart from its recorded
    digest (a release records the digest, so a stale one is what it fixes); nothing is written
    then. Returns the released, validated protocol.
    """
    folder = Path(pack)
    if not note.strip():
        raise ValueError("a release needs a note saying what changed")
    problem = _note_problem(note)
    if problem is not None:
        raise ValueError(problem)
    bump_version("0.0.0", bump)  # an unknown bump fails here, before anything is read
    files = _read(folder)  # the only read of the folder: every gate reads these files
    documents = files.documents
    protocol = protocol_from_files(files, check_release=False)
    reasons = _gates(documents, protocol)
    if reasons:
        raise ReleaseRefusedError(reasons)

    manifest_path = folder / MANIFEST
    text = files.manifest_raw.decode("utf-8")
    old = documents["manifest"].data["version"]
    new = bump_version(old, bump)
    stamp = (today or date.today()).isoformat()
    text, count = re.subn(r'(?m)^version:.*$', f'version: "{new}"', text, count=1)
    if count != 1:
        raise InvalidPackError([Problem(str(manifest_path), 0, 0, "-", "no version line found",
                                        'expected a line such as version: "1.0.0"')])
    entry = f'  - version: "{new}"\n    date: "{stamp}"\n    note: {_yaml_text(" ".join(note.split()))}\n'
    text, count = re.subn(r'(?m)^changelog:[ \t]*\n', lambda m: m.group(0) + entry, text, count=1)
    if count != 1:
        raise InvalidPackError([Problem(str(manifest_path), 0, 0, "-", "no changelog found",
                                        "expected a changelog: list in the manifest")])
    for key, value in (("status", "active"), ("effective_date", f'"{(effective or today or date.today()).isoformat()}"')):
        text, count = re.subn(rf'(?m)^{key}:.*$', f"{key}: {value}", text, count=1)
        if count != 1:
            raise InvalidPackError([Problem(str(manifest_path), 0, 0, "-", f"no {key} line found",
                                            f"expected a line such as {key}: ...")])
    text = re.sub(r'(?m)^(digest|draft_of):.*\n', "", text)

    # Everything is checked in memory before the one write.
    name = documents["manifest"].file
    digest = content_digest({**documents, "manifest": _checked_manifest(text, name)})
    text = re.sub(r'(?m)^(version:.*\n)', lambda m: m.group(1) + f"digest: {digest}\n", text, count=1)
    released = _checked_manifest(text, name)
    if released.data.get("digest") != digest or content_digest({**documents, "manifest": released}) != digest:
        raise InvalidPackError([Problem(name, 0, 0, "-", "the new digest could not be recorded",
                                        "expected a manifest with one version: line")])
    # The released pack as it will be written: the files read above with the new manifest,
    # validated as a released pack before the one write (a refusal leaves the folder as it was).
    released_files = PackFiles(files.folder, {**documents, "manifest": released},
                               text.encode("utf-8"), files.seed, files.scenarios)
    result = protocol_from_files(released_files)
    write_pack_file(folder, MANIFEST, text)
    return result


def _read(folder: Path) -> PackFiles:
    files, problems = read_pack(folder)
    if files is None:
        raise InvalidPackError(problems)
    return files


def _not_copied(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if name.startswith(".") or name == "__pycache__"}


def draft(pack: str | Path, dest: str | Path | None = None) -> Path:
    """Start a change: copy the pack to ``dest`` (default: the pack's folder name with ``-draft``,
    next to it) as a draft: ``status: draft``, no digest, and ``draft_of`` recording the protocol
    content of the released pack it starts from (so a release of an unchanged draft is refused).
    ``dest`` must not exist; the copy appears whole or not at all. Returns ``dest``."""
    source = Path(pack)
    target = Path(dest) if dest is not None else source.parent / f"{source.resolve().name}-draft"
    if target.exists() or target.is_symlink():
        raise ValueError(f"{target} already exists; expected a new folder for the draft (crs-rules draft never "
                         "writes over anything)")
    files = _read(source)
    documents = files.documents
    manifest = documents["manifest"].data
    if manifest.get("digest") is not None and manifest["digest"] == content_digest(documents):
        started_from: str | None = protocol_digest(documents)  # released and unchanged
    else:
        started_from = manifest.get("draft_of")  # a draft of a draft starts from the same release
    text = files.manifest_raw.decode("utf-8")
    text, count = re.subn(r'(?m)^status:.*$', "status: draft", text, count=1)
    if count != 1:
        raise InvalidPackError([Problem(documents["manifest"].file, 0, 0, "-", "no status line found",
                                        "expected a line such as status: active")])
    text = re.sub(r'(?m)^(digest|draft_of):.*\n', "", text)
    if started_from is not None:
        text = re.sub(r'(?m)^(version:.*\n)', lambda m: m.group(1) + f"draft_of: {started_from}\n", text, count=1)
    _checked_manifest(text, documents["manifest"].file)

    parent = target.parent if str(target.parent) else Path(".")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        shutil.copytree(source, staging, symlinks=True, ignore=_not_copied, dirs_exist_ok=True)
        os.chmod(staging, 0o777 & ~_umask())
        write_pack_file(staging, MANIFEST, text)
        os.rename(staging, target)  # fails rather than merge into a folder created meanwhile
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
