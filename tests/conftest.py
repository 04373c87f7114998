"""Shared test set-up.

Hypothesis runs 2,000 examples per property in CI (``CI`` set) and 100 locally; set
``HYPOTHESIS_PROFILE=ci`` to run the CI amount locally.

The pack under test: the tests that load the shipped pack load :func:`pack_under_test`, which is
``rules/`` unless ``CRS_RULES_PACK`` names another pack folder. A legitimately changed pack (the
README walkthrough's 700 mg release) must pass them too: ``test_readme.py`` runs them against it.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from crs_rules import load_protocol
from crs_rules.model import Protocol

settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent


def property_twins(examples: int | None = None) -> list[Any]:
    """The example counts of a property test's two runs, as ``pytest.param``s for its ``examples``
    argument: ``full`` (marked ``slow``: ``make test-all`` and CI) tries ``examples``, by default the
    profile's count (2,000 in CI, 100 locally); ``fast`` (``make test``) a quarter of it, at least 10."""
    full = examples if examples is not None else settings().max_examples
    return [pytest.param(max(10, full // 4), id="fast"), pytest.param(full, id="full", marks=pytest.mark.slow)]


#: The environment variable naming the pack folder the pack-dependent tests load instead of ``rules/``.
PACK_VARIABLE = "CRS_RULES_PACK"


def pack_under_test() -> Path:
    """The pack folder the pack-dependent tests check: ``CRS_RULES_PACK`` if set, else ``rules/``."""
    named = os.environ.get(PACK_VARIABLE)
    return Path(named).resolve() if named else ROOT / "rules"


#: The seed's numbers that tests of mechanics reason with, written here: (file, field as written,
#: the seed's value, the seed statement saying it). The first match in the file is tocilizumab's.
SEED_NUMBERS = (
    ("dosing.yaml", r"max_dose_mg: [0-9.]+\n", "max_dose_mg: 800\n", "S15"),
    ("dosing.yaml", r"\{from_weight_kg: 0, mg_per_kg: [0-9.]+\}", "{from_weight_kg: 0, mg_per_kg: 12}", "S32"),
    ("dosing.yaml", r"\{from_weight_kg: (?!0,)[0-9.]+, mg_per_kg: [0-9.]+\}", "{from_weight_kg: 30, mg_per_kg: 8}", "S15"),
    ("dosing.yaml", r"min_interval_h: [0-9.]+\n", "min_interval_h: 8\n", "S16"),
    ("dosing.yaml", r"max_doses_in_window: \{doses: [0-9]+, window_h: [0-9.]+\}",
     "max_doses_in_window: {doses: 3, window_h: 24}", "S16"),
    ("dosing.yaml", r"max_doses_per_course: [0-9]+\n", "max_doses_per_course: 4\n", "S16"),
)


def _without_deviations_of(text: str, statements: set[str]) -> str:
    """statements.yaml without the declared deviations of these statements."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = text.splitlines(keepends=True)
    cut: set[int] = set()
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        if key.value != "deviations" or not isinstance(value, yaml.SequenceNode):
            continue
        for item in value.value:
            fields = {k.value: v.value for k, v in item.value} if isinstance(item, yaml.MappingNode) else {}
            if fields.get("statement") in statements:
                end = item.end_mark.line + (1 if item.end_mark.column else 0)
                cut.update(range(item.start_mark.line, end))
    kept = "".join(line for i, line in enumerate(lines) if i not in cut)
    return re.sub(r"(?m)^deviations:\n(?![ ]+-)", "deviations: []\n", kept)


def record_digest(folder: Path) -> None:
    """Record the folder's content digest in its manifest (as ``release`` would, without its gates)."""
    from crs_rules.pack import content_digest, read_pack_documents

    manifest = folder / "manifest.yaml"
    text = "".join(line for line in manifest.read_text(encoding="utf-8").splitlines(keepends=True)
                   if not line.startswith("digest:"))
    manifest.write_text(text, encoding="utf-8")
    documents, problems = read_pack_documents(folder)
    assert problems == []
    manifest.write_text(text.replace("\nstatus:", f"\ndigest: {content_digest(documents)}\nstatus:", 1), encoding="utf-8")


@cache
def seed_numbers_pack() -> Path:
    """The pack under test with the seed's numbers of :data:`SEED_NUMBERS` (and without declared
    deviations from those statements): the fixture for tests that reason with those numbers. The
    pack under test itself when it already says them (the shipped pack); else a copy, its digest
    and traceability table brought up to date."""
    from crs_rules.traceability import render_table, trace, write_table

    source = pack_under_test()
    texts = {name: (source / name).read_text(encoding="utf-8") for name in {entry[0] for entry in SEED_NUMBERS}}
    restored: set[str] = set()
    for name, pattern, value, statement in SEED_NUMBERS:
        found = re.search(pattern, texts[name])
        assert found is not None, (name, pattern)
        if found.group() != value:
            texts[name] = texts[name][:found.start()] + value + texts[name][found.end():]
            restored.add(statement)
    if not restored:
        return source
    folder = Path(tempfile.mkdtemp(prefix="seed-numbers-")) / "rules"
    atexit.register(shutil.rmtree, folder.parent, True)
    shutil.copytree(source, folder)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    statements = folder / "statements.yaml"
    statements.write_text(_without_deviations_of(statements.read_text(encoding="utf-8"), restored), encoding="utf-8")
    record_digest(folder)
    protocol, rows, _ = trace(folder)
    write_table(folder, render_table(protocol, rows))
    return folder


@pytest.fixture(scope="session")
def seed_protocol() -> Protocol:
    """:func:`seed_numbers_pack`, loaded once."""
    return load_protocol(seed_numbers_pack())


@pytest.fixture(scope="session")
def protocol() -> Protocol:
    """The pack under test (the shipped pack unless ``CRS_RULES_PACK`` names another), loaded once."""
    return load_protocol(pack_under_test())
