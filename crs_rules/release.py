"""Release discipline: a changed protocol is a new version.

The manifest records the digest of the pack's content. ``crs-rules validate`` fails when the content
no longer matches it; :func:`release` bumps the version, adds the changelog entry and records the new
digest in one step, editing only those lines of ``manifest.yaml`` so its comments stay.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from .errors import InvalidPackError, Problem
from .model import Protocol
from .pack import MANIFEST, content_digest, load_protocol, read_pack_documents

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
    text = manifest_path.read_text(encoding="utf-8")
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
    manifest_path.write_text(text, encoding="utf-8")

    documents, problems = read_pack_documents(folder)
    if problems:
        raise InvalidPackError(problems)
    digest = content_digest(documents)
    text = re.sub(r'(?m)^(version:.*\n)', lambda m: m.group(1) + f"digest: {digest}\n", text, count=1)
    manifest_path.write_text(text, encoding="utf-8")
    return load_protocol(folder)
