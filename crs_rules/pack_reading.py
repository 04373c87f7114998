"""Reading a rule pack folder, once and confined to it: the stage before the model is built.

:func:`read_pack` reads the manifest and every file it lists (each checked against its schema), the
seed protocol and the scenario files, into :class:`~crs_rules.pack_files.PackFiles`. Only regular
files inside the folder are read (links only when they stay inside), each at most
:data:`~crs_rules.loading.MAX_FILE_BYTES`, the pack's files together at most :data:`MAX_PACK_BYTES`;
a refused file is a problem at position 0:0 and is never read. :func:`write_pack_file` writes a file
of the pack in one step.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import Problem
from .loading import MAX_FILE_BYTES, LoadedDocument, UnreadableFile, load_yaml_bytes, read_bounded
from .pack_files import PackFiles, ReadFile
from .scenario_model import SCENARIO_FOLDER
from .validation import CheckId, schema_problems

__all__ = [
    "MANIFEST",
    "SEED",
    "FILE_KINDS",
    "MAX_PACK_BYTES",
    "read_pack",
    "read_pack_documents",
    "read_pack_file",
    "read_scenario_files",
    "write_pack_file",
]

MANIFEST = "manifest.yaml"
#: The seed protocol, kept beside the pack: traceability checks the pack against it.
SEED = "seed-protocol.txt"
FILE_KINDS = ("references", "grading", "dosing", "actions", "alerts", "statements")

#: The most bytes all the files of a pack (manifest included) may hold together (4 MiB); each file
#: may hold at most :data:`~crs_rules.loading.MAX_FILE_BYTES` (1 MiB). The shipped pack holds 30 KiB.
MAX_PACK_BYTES = 4 * 1024 * 1024

_TOTAL_EXPECTED = f"expected at most {MAX_PACK_BYTES} bytes ({MAX_PACK_BYTES // (1024 * 1024)} MiB) for the whole pack"

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
        #: The problem that stopped the reading once the files together passed MAX_PACK_BYTES:
        #: nothing more is read after it.
        self.over: Problem | None = None
        self.manifest_raw: bytes | None = None

    def read(self, name: str) -> tuple[bytes | None, list[Problem]]:
        display = _display(self.pack, name)

        def problem(message: str, expected: str) -> tuple[None, list[Problem]]:
            return None, [Problem(display, 0, 0, "-", message, expected, (), CheckId.PACK_FILE)]

        if self.over is not None:
            return problem(f"the file is not read: the pack's files already reach {MAX_PACK_BYTES} bytes",
                           _TOTAL_EXPECTED)
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
            refused = problem(f"the pack's files reach {self.total + len(raw)} bytes with this one",
                              _TOTAL_EXPECTED)
            self.over = refused[1][0]
            return refused
        self.total += len(raw)
        return raw, []

    def load(self, name: str) -> tuple[LoadedDocument | None, list[Problem]]:
        raw, problems = self.read(name)
        if raw is None:
            return None, problems
        if name == MANIFEST:
            self.manifest_raw = raw  # a release or a draft edits the manifest's lines; no other file's bytes are kept
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
    return _read_documents(pack, _PackReader(pack))


def _read_documents(pack: Path, reader: _PackReader) -> tuple[dict[str, LoadedDocument], list[Problem]]:
    """:func:`read_pack_documents`, with ``reader`` (which counts the bytes read, for the total)."""
    problems: list[Problem] = []
    if not pack.is_dir():
        problem = Problem(str(pack), 0, 0, "-", "is not a folder", "expected a rule pack folder holding manifest.yaml")
        return {}, [problem]
    manifest, found = reader.load(MANIFEST)
    problems.extend(found)
    if manifest is None:
        return {}, problems
    documents = {"manifest": manifest}
    manifest_problems = schema_problems(manifest, "manifest")
    problems.extend(manifest_problems)
    files = manifest.data.get("files") if isinstance(manifest.data, dict) else None
    if not isinstance(files, dict) or any(p.path[:1] == ("files",) for p in manifest_problems):
        return documents, problems
    for kind in FILE_KINDS:
        name = files.get(kind)
        if not isinstance(name, str):
            continue
        if reader.over is not None:
            break  # the files passed the pack's total: nothing more is read (one problem says so)
        document, found = reader.load(name)
        problems.extend(found)
        if document is not None:
            problems.extend(schema_problems(document, kind))
            documents[kind] = document
    return documents, problems


def _read_file(reader: _PackReader, name: str) -> ReadFile:
    raw, problems = reader.read(name)
    return ReadFile(name, _display(reader.pack, name), raw, tuple(problems))


def read_scenario_files(pack: Path) -> tuple[ReadFile, ...] | None:
    """The files ``PACK/scenarios/*.yaml`` in name order, each read like the pack's own files (None
    when the pack has no scenarios folder). Their problems are kept, not raised: scenario files are
    not protocol content, so they are reported when the scenarios are read. Together they may hold
    at most :data:`MAX_PACK_BYTES`; no file after the one that passes it is read."""
    return _read_scenario_files(_PackReader(pack))


def _read_scenario_files(reader: _PackReader) -> tuple[ReadFile, ...] | None:
    folder = reader.pack / SCENARIO_FOLDER
    if not folder.is_dir():
        return None
    read: list[ReadFile] = []
    for path in sorted(folder.glob("*.yaml")):
        read.append(_read_file(reader, f"{SCENARIO_FOLDER}/{path.name}"))
        if reader.over is not None:
            break  # nothing more is read
    return tuple(read)


def read_pack(pack: Path) -> tuple[PackFiles | None, list[Problem]]:
    """Read a pack folder once: the manifest and every file it lists (as :func:`read_pack_documents`),
    then the seed protocol and the scenario files beside them, all these files together at most
    :data:`MAX_PACK_BYTES` (nothing more is read once they pass it). Returns ``(files, [])``, or
    ``(None, problems)`` when a listed file is missing, unreadable or not valid against its schema,
    or when the documents together pass the limit. The seed and the scenario files are counted in
    the total too; one that passes it (or comes after it) carries the problem instead of its bytes,
    reported where it is read (traceability, ``crs-rules test``)."""
    reader = _PackReader(pack)
    documents, problems = _read_documents(pack, reader)
    if problems or set(documents) != {"manifest", *FILE_KINDS} or reader.manifest_raw is None:
        return None, problems or [Problem(str(pack), 0, 0, "-", "the pack is incomplete",
                                          "expected every file the manifest lists")]
    seed = _read_file(reader, SEED) if os.path.lexists(pack / SEED) else None
    return PackFiles(str(pack), documents, reader.manifest_raw, seed, _read_scenario_files(reader)), []


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
