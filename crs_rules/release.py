"""Release discipline: a changed protocol is a new version.

The manifest records the digest of the pack's content. ``crs-rules validate`` fails when the content
no longer matches it; :func:`release` bumps the version, adds the changelog entry and records the new
digest in one step, editing only those lines of ``manifest.yaml`` so its comments stay.

Nothing is written until the new manifest has been built and checked in memory (it reads back as
YAML, matches its schema and gives the recorded digest); it is then written in one step (a
temporary file renamed over it), never through a link. A failed release leaves the pack as it was.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from pathlib import Path

from .errors import InvalidPackError, Problem
from .loading import LoadedDocument, load_yaml_bytes
from .model import Protocol
from .pack import MANIFEST, content_digest, load_protocol, read_pack_documents, read_pack_file, write_pack_file
from .validation import schema_problems

__all__ = ["release", "bump_version", "BUMPS"]

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


def release(pack: str | Path, bump: str, note: str, today: date | None = None) -> Protocol:
    """Record a new version of the pack: bumped version, changelog entry, content digest.

    The pack must be valid apart from its recorded digest (a release records the digest, so a
    stale one is what it fixes). Returns the released, validated protocol.
    """
    folder = Path(pack)
    if not note.strip():
        raise ValueError("a release needs a note saying what changed")
    problem = _note_problem(note)
    if problem is not None:
        raise ValueError(problem)
    bump_version("0.0.0", bump)  # an unknown bump fails here, before anything is read
    documents, problems = read_pack_documents(folder)
    if problems:
        raise InvalidPackError(problems)
    try:
        load_protocol(folder)
    except InvalidPackError as error:
        blocking = [p for p in error.problems if p.check != "release-digest"]
        if blocking:
            raise InvalidPackError(blocking) from None

    manifest_path = folder / MANIFEST
    raw, problems = read_pack_file(folder, MANIFEST)
    if raw is None:
        raise InvalidPackError(problems)
    text = raw.decode("utf-8")
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
    text = re.sub(r'(?m)^digest:.*\n', "", text)

    # Everything is checked in memory before the one write.
    name = documents["manifest"].file
    digest = content_digest({**documents, "manifest": _checked_manifest(text, name)})
    text = re.sub(r'(?m)^(version:.*\n)', lambda m: m.group(1) + f"digest: {digest}\n", text, count=1)
    released = _checked_manifest(text, name)
    if released.data.get("digest") != digest or content_digest({**documents, "manifest": released}) != digest:
        raise InvalidPackError([Problem(name, 0, 0, "-", "the new digest could not be recorded",
                                        "expected a manifest with one version: line")])
    write_pack_file(folder, MANIFEST, text)
    return load_protocol(folder)
