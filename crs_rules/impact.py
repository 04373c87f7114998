"""Impact of a protocol change: what changed in the pack, and what that does to patients.

:func:`compare_packs` answers both questions for two validated packs:

* **the pack**: both packs' data is walked side by side, lists of elements with an ``id`` matched by
  id (not by position), and every difference is reported by rule id and number, e.g.
  ``dose limits: drugs.tocilizumab.limits.max_dose_mg: 800 -> 700``. The manifest's release record
  (version, digest, changelog) is shown only as ``version 1.0.0 -> 1.1.0``.
* **the patients**: both packs are evaluated on the same patients (the scenarios of both packs and a
  deterministic, seeded population) and every patient whose decision differs is counted by kind
  of difference (:data:`DIFFERENCE_KINDS`), with one worked example per kind.

The population knows no protocol number: it sweeps wide ranges of every input, and around each
threshold, dose band, dose cap and dose interval it finds in *either* pack it adds values just
below, at and just above, so a changed threshold is always probed on both sides.
"""

from __future__ import annotations

import difflib
import json
import multiprocessing
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .conditions import comparisons
from .decision import Decision, Dose, iso
from .dosing import largest_allowed_mg
from .errors import InvalidInputError, InvalidPackError
from .evaluation import evaluate
from .facts import INPUT_FACTS
from .loading import LoadedDocument
from .model import Comparison, Condition, Protocol
from .pack import FILE_KINDS, content_digest, read_pack_documents
from .patient import PatientState, parse_patient

__all__ = [
    "DEFAULT_POPULATION",
    "DEFAULT_SEED",
    "DIFFERENCE_KINDS",
    "PackChange",
    "Patient",
    "Outcome",
    "SubChange",
    "Example",
    "KindReport",
    "ImpactReport",
    "compare_packs",
    "pack_changes",
    "population_inputs",
    "describe_patient",
    "state_input",
    "outcome_differences",
]

#: How many generated patients :func:`compare_packs` evaluates by default (besides the scenarios).
DEFAULT_POPULATION = 12_000

#: The seed of the generated population: the same packs and size always give the same patients.
DEFAULT_SEED = 20_261_125

GRADE_CHANGED = "grade changed"
ACTION_ADDED = "action added"
ACTION_REMOVED = "action removed"
DOSE_CHANGED = "dose changed"
WITHHELD_CHANGED = "withheld changed"
ALERT_CHANGED = "alert changed"

#: The kinds of difference between two decisions for one patient, in report order.
DIFFERENCE_KINDS = (GRADE_CHANGED, ACTION_ADDED, ACTION_REMOVED, DOSE_CHANGED, WITHHELD_CHANGED, ALERT_CHANGED)

#: The moment every generated patient is assessed at; all their times are before it.
ASSESSED_AT = datetime(2026, 3, 11, 12, 0, tzinfo=timezone.utc)

#: Manifest keys that are the release record, not protocol content (version and status are shown
#: in the report's first line instead).
_RELEASE_KEYS = ("version", "status", "digest", "draft_of", "changelog", "files")

# How many sub-changes of one kind the text shows before summing up the rest.
_SHOWN_SUB_CHANGES = 8

# Below this many generated patients, starting processes costs more than it saves.
_PARALLEL_FROM = 1_000


# --------------------------------------------------------------------------------------------
# What changed in the pack
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackChange:
    """One difference between the two packs' data.

    ``change`` is ``changed`` (a value), ``added`` or ``removed`` (a key or an element). ``path``
    is dotted from the top of the file, elements of lists named by their ``id``
    (``drugs.tocilizumab.limits.max_dose_mg``) or, without ids, by index (``levels[1]``). ``line``
    is where it is written: in the new pack's file, or the old one's for a removal.
    """

    section: str
    file: str
    line: int
    path: str
    change: str
    old: Any
    new: Any

    @property
    def shown_path(self) -> str:
        """The path as shown after the section: without its first key when that names the section."""
        head, _, rest = self.path.partition(".")
        if head == self.section and rest:
            return rest
        return self.path

    def describe(self) -> str:
        where = f"{self.section}: {self.shown_path}"
        if self.change == "added":
            return f"{where} added" + (f": {_show(self.new)}" if _is_short(self.new) else "")
        if self.change == "removed":
            return f"{where} removed" + (f" (was {_show(self.old)})" if _is_short(self.old) else "")
        if isinstance(self.old, str) and isinstance(self.new, str) and not (_is_short(self.old) and _is_short(self.new)):
            return f"{where}: {_text_change(self.old, self.new)}"
        if isinstance(self.old, list) and isinstance(self.new, list) and not (_is_short(self.old) and _is_short(self.new)):
            return f"{where}: {_list_change(self.old, self.new)}"
        return f"{where}: {_show(self.old)} -> {_show(self.new)}"

    @property
    def warning(self) -> str | None:
        """For a number changed by a factor of 2 or more (up or down), a warning: a tenfold
        mistake (a slipped decimal point, an extra zero) looks like this. None otherwise."""
        old, new = self.old, self.new
        if self.change != "changed" or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                               for v in (old, new)):
            return None
        factor = max(old, new) / min(old, new)
        if factor < 2:
            return None
        direction = "up" if new > old else "down"
        return (f"WARNING: {self.shown_path} {_show(old)} -> {_show(new)} changes by a factor of {factor:.3g} "
                f"({direction}): check it is meant (a slipped decimal point or an extra zero looks like this)")

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "file": self.file, "line": self.line, "path": self.path,
                "change": self.change, "old": self.old, "new": self.new, "text": self.describe(),
                "warning": self.warning}


_PLAIN = re.compile(r"[A-Za-z0-9_.+\-]+")


def _show(value: Any) -> str:
    """A value as a pharmacist reads it in the YAML: flow style, plain words unquoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value if _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_show(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)


def _is_short(value: Any) -> bool:
    return len(_show(value)) <= 60


def _text_change(old: str, new: str, context: int = 3) -> str:
    """A long text's change as the words that differ, with a few words around them."""
    a, b = old.split(), new.split()
    opcodes = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not opcodes:  # only the spacing changed
        return "spacing changed"
    i1, j1 = max(opcodes[0][1] - context, 0), max(opcodes[0][3] - context, 0)
    i2, j2 = min(opcodes[-1][2] + context, len(a)), min(opcodes[-1][4] + context, len(b))

    def excerpt(words: list[str], start: int, end: int) -> str:
        text = " ".join(words[start:end])
        return json.dumps(("..." if start > 0 else "") + text + ("..." if end < len(words) else ""), ensure_ascii=False)

    return f"{excerpt(a, i1, i2)} -> {excerpt(b, j1, j2)}"


def _list_change(old: list[Any], new: list[Any]) -> str:
    """A long list's change as the items added and removed."""
    added = [item for item in new if not any(_same(item, o) for o in old)]
    removed = [item for item in old if not any(_same(item, n) for n in new)]
    parts = [f"added {', '.join(_show(i) for i in added)}" if added else "",
             f"removed {', '.join(_show(i) for i in removed)}" if removed else ""]
    return "; ".join(part for part in parts if part) or "reordered"


def _same(a: Any, b: Any) -> bool:
    """Equal as data: ``true`` is not ``1``, ``6`` is not ``6.0`` (the digest tells them apart too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _by_id(items: Any) -> dict[str, Any] | None:
    """The items of a list of mappings by their ``id``, when every item has a distinct text id."""
    if not isinstance(items, list):
        return None
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        return None
    return {str(item["id"]): item for item in items}


def _section(kind: str, path: tuple[str | int, ...]) -> str:
    top = path[0] if path else ""
    if kind == "dosing":
        if top == "drugs" and len(path) > 2 and path[2] == "limits":
            return "dose limits"
        return "drug classes" if top == "drug_classes" else "dosing"
    if kind == "actions":
        return "rules" if top == "rules" else "action catalogue"
    return {"statements": "traceability"}.get(kind, kind)


class _Walker:
    """Walks one file's data in both packs, collecting :class:`PackChange` values."""

    def __init__(self, kind: str, old: LoadedDocument | None, new: LoadedDocument | None) -> None:
        self.kind = kind
        self.old = old
        self.new = new
        self.changes: list[PackChange] = []

    def add(self, change: str, raw: tuple[str | int, ...], shown: tuple[str, ...], old: Any, new: Any) -> None:
        document = self.old if change == "removed" else self.new
        document = document or self.old or self.new
        line = document.position(raw)[0] if document is not None else 0
        name = Path(document.file).name if document is not None else self.kind
        path = "".join(part if part.startswith("[") else "." + part for part in shown).lstrip(".")
        self.changes.append(PackChange(_section(self.kind, raw), name, line, path, change, old, new))

    def walk(self, old: Any, new: Any, old_raw: tuple[str | int, ...], new_raw: tuple[str | int, ...],
             shown: tuple[str, ...]) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in new:
                if key in old:
                    self.walk(old[key], new[key], (*old_raw, key), (*new_raw, key), (*shown, str(key)))
                else:
                    self.add("added", (*new_raw, key), (*shown, str(key)), None, new[key])
            for key in old:
                if key not in new:
                    self.add("removed", (*old_raw, key), (*shown, str(key)), old[key], None)
            return
        old_ids, new_ids = _by_id(old), _by_id(new)
        if old_ids is not None and new_ids is not None and (old_ids or new_ids):
            old_index = {key: i for i, key in enumerate(old_ids)}
            for j, (key, item) in enumerate(new_ids.items()):
                if key in old_ids:
                    self.walk(old_ids[key], item, (*old_raw, old_index[key]), (*new_raw, j), (*shown, key))
                else:
                    self.add("added", (*new_raw, j), (*shown, key), None, item)
            for key, item in old_ids.items():
                if key not in new_ids:
                    self.add("removed", (*old_raw, old_index[key]), (*shown, key), item, None)
            return
        if isinstance(old, list) and isinstance(new, list) and any(isinstance(x, (dict, list)) for x in old + new):
            self._walk_list(old, new, old_raw, new_raw, shown)
            return
        if not _same(old, new):
            self.add("changed", new_raw, shown, old, new)

    def _walk_list(self, old: list[Any], new: list[Any], old_raw: tuple[str | int, ...],
                   new_raw: tuple[str | int, ...], shown: tuple[str, ...]) -> None:
        """Lists of mappings without ids, aligned by content so an insertion is one change."""
        head, last = shown[:-1], shown[-1] if shown else ""
        matcher = difflib.SequenceMatcher(a=[_canonical(x) for x in old], b=[_canonical(x) for x in new], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(paired):
                self.walk(old[i1 + k], new[j1 + k], (*old_raw, i1 + k), (*new_raw, j1 + k), (*head, f"{last}[{j1 + k}]"))
            for i in range(i1 + paired, i2):
                self.add("removed", (*old_raw, i), (*head, f"{last}[{i}]"), old[i], None)
            for j in range(j1 + paired, j2):
                self.add("added", (*new_raw, j), (*head, f"{last}[{j}]"), None, new[j])


def pack_changes(old: Mapping[str, LoadedDocument], new: Mapping[str, LoadedDocument]) -> tuple[PackChange, ...]:
    """Every difference between two packs' documents (as :func:`~crs_rules.pack.read_pack_documents`
    gives them), file by file in manifest order, each file in its own order. The manifest's
    release record (version, digest, changelog, file names) is left out."""
    changes: list[PackChange] = []
    for kind in ("manifest", *FILE_KINDS):
        old_doc, new_doc = old.get(kind), new.get(kind)
        old_data = old_doc.data if old_doc is not None else None
        new_data = new_doc.data if new_doc is not None else None
        if kind == "manifest":
            old_data = {k: v for k, v in (old_data or {}).items() if k not in _RELEASE_KEYS}
            new_data = {k: v for k, v in (new_data or {}).items() if k not in _RELEASE_KEYS}
        walker = _Walker(kind, old_doc, new_doc)
        walker.walk(old_data, new_data, (), (), ())
        changes.extend(walker.changes)
    return tuple(changes)


# --------------------------------------------------------------------------------------------
# The patients
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    """One patient both packs are evaluated on: a label (``scenario NAME`` or ``population #N``),
    the state, and the input it was built from (what ``crs-rules evaluate`` would read)."""

    label: str
    state: PatientState
    data: Mapping[str, Any] = field(repr=False, compare=False)


def _round(value: float, step: float) -> float:
    return round(round(value / step) * step, 4)


def _near(values: Iterable[float], offsets: Sequence[float], low: float, high: float) -> list[float]:
    """Each value, and just below and just above it by each offset, within [low, high]."""
    found = set()
    for value in values:
        for offset in (0.0, *offsets, *(-o for o in offsets)):
            candidate = round(value + offset, 4)
            if low <= candidate <= high:
                found.add(candidate)
    return sorted(found)


def _all_conditions(protocol: Protocol) -> list[Condition]:
    conditions: list[Condition] = []
    for finding in protocol.findings:
        if finding.when is not None:
            conditions.append(finding.when)
        conditions.extend(level.when for level in finding.levels)
    conditions.extend(g.when for g in protocol.grades)
    conditions.extend(r.when for r in protocol.action_rules)
    conditions.extend(a.when for a in protocol.alerts)
    return conditions


class _Sweep:
    """The values the population is drawn from: wide ranges of every input, and the thresholds,
    dose bands, caps and intervals of both packs, each with values just around it."""

    def __init__(self, protocols: Sequence[Protocol]) -> None:
        found: list[Comparison] = [c for p in protocols for condition in _all_conditions(p) for c in comparisons(condition)]

        def thresholds(fact: str) -> list[float]:
            return sorted({float(c.value) for c in found if c.fact == fact
                           and isinstance(c.value, (int, float)) and not isinstance(c.value, bool)})

        def named(fact: str) -> set[str]:
            names: set[str] = set()
            for c in found:
                if c.fact == fact:
                    names.update(c.not_counting)
                    values = c.value if isinstance(c.value, tuple) else (c.value,)
                    names.update(v for v in values if isinstance(v, str))
            return names

        # Weights: the dose bands, where each band's per-kg dose reaches the cap, and any threshold.
        weights = set(thresholds("patient.weight_kg"))
        for protocol in protocols:
            for drug in protocol.drugs:
                cap = drug.limits.max_dose_mg
                for regimen in drug.regimens:
                    bands = regimen.amount.per_kg if regimen.amount is not None else ()
                    for band, after in zip(bands, (*bands[1:], None)):
                        if band.from_weight_kg > 0:
                            weights.add(band.from_weight_kg)
                        if cap is not None and band.mg_per_kg > 0:
                            reaches = cap / band.mg_per_kg
                            if reaches >= band.from_weight_kg and (after is None or reaches < after.from_weight_kg):
                                weights.add(reaches)
        self.weights = _near(weights, (0.1, 1.0), 10.0, 150.0) or [70.0]
        self.temperatures = _near(thresholds("vitals.temperature_c"), (0.01, 0.05, 0.1, 0.5), 34.0, 42.0) or [38.0]
        self.flows = _near(thresholds("vitals.oxygen.flow_l_min"), (0.01, 0.1, 0.5, 1.0), 0.5, 20.0) or [2.0]
        self.ages = _near(thresholds("patient.age_years"), (0.1, 0.5), 0.1, 100.0)
        self.onset_days = _near(thresholds("crs.days_since_onset"), (1 / 24, 0.01), 0.05, 10.0)
        self.devices = INPUT_FACTS["vitals.oxygen.device"].values
        self.singled_out = sorted({str(c.value) for c in found if c.fact == "vitals.oxygen.device" and c.operator == "equals"})
        # Vasopressors the pack names (say, one it does not count), and everyday ones it need not name.
        # A pack with a closed vasopressor vocabulary refuses other names: stand-ins come from the
        # names every such pack accepts.
        closed = [{m for c in p.drug_classes if c.vocabulary_of == "vitals.vasopressors" for m in c.members}
                  for p in protocols]
        closed = [names for names in closed if names]
        singled_out = named("vitals.vasopressors")
        if closed:
            accepted = set.intersection(*closed)
            singled_out &= accepted
            stand_ins = sorted(accepted - singled_out)[:len(_STAND_IN_VASOPRESSORS)]
        else:
            stand_ins = list(_STAND_IN_VASOPRESSORS)
        self.vasopressors = sorted(singled_out | set(stand_ins))

        # Drugs: the dosed ones with limits get courses of up to their course limit; the others (and
        # the members of the pack's drug classes) are given or not.
        self.limited: dict[str, int] = {}
        self.other_drugs: list[str] = []
        hours: set[float] = set()
        for protocol in protocols:
            for drug in protocol.drugs:
                limits = drug.limits
                if not limits.is_empty():
                    self.limited[drug.id] = max(self.limited.get(drug.id, 0), limits.max_doses_per_course or 3)
                hours.update(h for h in (limits.min_interval_h, limits.window_h) if h is not None)
                for regimen in drug.regimens:
                    hours.update(h for h in (regimen.interval_h, regimen.up_to_every_h) if h is not None)
            for fact in {c.fact for c in found if c.fact.startswith("history.") and c.fact.endswith(".hours_since_last")}:
                hours.update(thresholds(fact))
        for protocol in protocols:
            for name in [d.id for d in protocol.drugs] + [m for c in protocol.drug_classes for m in c.members]:
                if name not in self.limited and name not in self.other_drugs:
                    self.other_drugs.append(name)
        self.spacings = sorted(hours) or [8.0]
        self.last_dose = _near(hours, (0.1,), 0.1, 200.0) or [8.0]
        self.orderable = sorted({*self.limited, *self.other_drugs})
        self.protocols = protocols


#: Stand-in vasopressor names. Only the names a pack singles out (``not_counting``, ``includes``)
#: matter to the rules, and those come from the packs; these give patients more than one to list.
_STAND_IN_VASOPRESSORS = ("vasopressor_a", "vasopressor_b", "vasopressor_c", "vasopressor_d")


def _pick(rng: random.Random, edges: Sequence[float], low: float, high: float, step: float, edge_share: float = 0.5) -> float:
    """A value at or around a threshold (share ``edge_share``), else anywhere in [low, high]."""
    if edges and rng.random() < edge_share:
        return rng.choice(edges)
    return _round(rng.uniform(low, high), step)


def _maybe(rng: random.Random, weights: tuple[int, int, int, int] = (35, 35, 15, 15)) -> bool | None | str:
    """True, False, None (unknown) or "absent" (the field left out)."""
    return rng.choices((True, False, None, "absent"), weights=weights)[0]


def _put(section: dict[str, Any], key: str, value: Any) -> None:
    if value != "absent":
        section[key] = value


def _at(hours_before: float) -> str:
    moment = ASSESSED_AT - timedelta(seconds=round(hours_before * 3600))
    return iso(moment)


def _patient_data(rng: random.Random, sweep: _Sweep) -> dict[str, Any]:
    """One valid patient input, drawn from the sweep."""
    weight = _pick(rng, sweep.weights, 10.0, 150.0, 0.1, 0.45)
    patient: dict[str, Any] = {"weight_kg": weight}
    roll = rng.random()
    if roll < 0.1:
        pass  # age unknown
    elif weight >= 40:
        patient["age_years"] = float(rng.randint(18, 90))
    elif sweep.ages and roll < 0.4:  # children: the ages the packs single out, and any age
        patient["age_years"] = rng.choice(sweep.ages)
    else:
        patient["age_years"] = _round(rng.uniform(0.5, 17.0), 0.5)
    _put(patient, "neutropenic", _maybe(rng))
    _put(patient, "significant_comorbidities", _maybe(rng))
    data: dict[str, Any] = {"assessed_at": iso(ASSESSED_AT), "patient": patient}

    therapy: dict[str, Any] = {}
    _put(therapy, "car_t", _maybe(rng, (60, 20, 10, 10)))
    crs: dict[str, Any] = {}
    if rng.random() < 0.8:
        days = rng.choice(sweep.onset_days) if sweep.onset_days and rng.random() < 0.4 else rng.uniform(1.0, 5.0)
        crs["onset_at"] = _at(days * 24)
    _put(crs, "antipyretic_or_anticytokine", _maybe(rng))
    _put(crs, "improving", _maybe(rng, (30, 30, 30, 10)))
    _put(crs, "suspected_mas", _maybe(rng, (10, 60, 15, 15)))
    sepsis: dict[str, Any] = {}
    _put(sepsis, "septic_shock", _maybe(rng, (15, 55, 15, 15)))
    _put(sepsis, "improving", _maybe(rng))

    vitals: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.85:
        vitals["temperature_c"] = _pick(rng, sweep.temperatures, 36.0, 41.0, 0.1)
    elif roll < 0.93:  # Fahrenheit, converted exactly by the input contract
        vitals["temperature_f"] = _round(_pick(rng, sweep.temperatures, 36.0, 41.0, 0.1) * 9 / 5 + 32, 0.1)
    count = rng.choices((0, 1, 2, 3), weights=(60, 20, 13, 7))[0]
    vasopressors = rng.sample(sweep.vasopressors, min(count, len(sweep.vasopressors)))
    if vasopressors:
        vitals["vasopressors"] = vasopressors
        vitals["hypotension"] = True
    else:
        _put(vitals, "hypotension", _maybe(rng))
        if vitals.get("hypotension") is True and rng.random() < 0.7:
            vitals["vasopressors"] = []  # stated: none (absent leaves them unknown)
    if rng.random() < 0.08:
        vitals["attributed_to_other_cause"] = rng.sample(["fever", "hypotension", "hypoxia"], rng.randint(1, 2))
    if vitals.get("hypotension") is True:
        _put(vitals, "refractory_hypotension", _maybe(rng))
    else:
        _put(vitals, "refractory_hypotension", rng.choice((False, None, "absent")))
    roll = rng.random()
    if roll < 0.8:
        # Devices the packs single out (graded by flow too) a quarter of the time, else any device.
        device = rng.choice(sweep.singled_out if roll < 0.25 and sweep.singled_out else sweep.devices)
        if device == "room_air":
            vitals["oxygen"] = {"device": device, **({"flow_l_min": 0} if rng.random() < 0.3 else {})}
        else:
            vitals["oxygen"] = {"device": device, "flow_l_min": _pick(rng, sweep.flows, 0.5, 15.0, 0.5, 0.6)}
    neuro: dict[str, Any] = {}
    _put(neuro, "icans_signs", _maybe(rng, (15, 55, 15, 15)))

    medications: list[dict[str, Any]] = []
    for drug, most in sorted(sweep.limited.items()):
        doses = rng.choices(range(most + 1), weights=[2 * most] + [3] * most)[0]
        last = _pick(rng, sweep.last_dose, 0.5, 72.0, 0.1)
        given = [last]
        for _ in range(doses - 1):
            given.append(given[-1] + _pick(rng, sweep.spacings, 4.0, 30.0, 0.5))
        for hours in given[:doses]:
            entry: dict[str, Any] = {"drug": drug, "given_at": _at(hours)}
            if rng.random() < 0.5:
                amount = _usual_dose(sweep.protocols[0], drug, weight)
                if amount:
                    entry["dose_mg"] = amount
            medications.append(entry)
    for drug in sweep.other_drugs:
        if rng.random() < (0.2 if any(p.drug(drug) for p in sweep.protocols) else 0.03):
            first = _pick(rng, sweep.last_dose, 0.5, 48.0, 0.5)
            times = [first] if rng.random() < 0.6 else [first, first + _pick(rng, sweep.spacings, 4.0, 24.0, 0.5)]
            medications.extend({"drug": drug, "given_at": _at(h)} for h in times)
    orders = [{"drug": rng.choice(sweep.orderable)}] if sweep.orderable and rng.random() < 0.1 else []

    for name, section in (("therapy", therapy), ("crs", crs), ("sepsis", sepsis), ("vitals", vitals), ("neuro", neuro)):
        if section:
            data[name] = section
    if medications or rng.random() < 0.9:  # an empty record says nothing was given; absent: unknown
        data["medications"] = medications
    if orders:
        data["proposed_orders"] = orders
    return data


def _usual_dose(protocol: Protocol, drug_id: str, weight_kg: float) -> float | None:
    drug = protocol.drug(drug_id)
    if drug is None or not drug.regimens:
        return None
    amount = float(largest_allowed_mg(drug, drug.regimens[0], weight_kg))
    return amount if amount > 0 else None


def population_inputs(protocols: Sequence[Protocol], size: int = DEFAULT_POPULATION,
                      seed: int = DEFAULT_SEED) -> list[tuple[str, dict[str, Any]]]:
    """``size`` valid patient inputs, labelled, not yet parsed: the same for the same packs, size and seed.

    Drawn with ``random.Random(seed)`` from :class:`_Sweep`: weights from 10 to 150 kg (children and
    adults) and at every dose band and cap of the packs; temperatures, oxygen flows, ages and days
    since onset around every threshold the packs compare them with; every oxygen device; none to
    three vasopressors (with and without any the pack counts specially); hypotension, refractory
    hypotension, improvement and the other flags true, false, unknown or absent; courses of each
    limited drug from none to its course limit, spaced exactly at and around its intervals and
    window; other drugs of the packs given or not.
    """
    if size < 0:
        raise ValueError(f"the population size must be 0 or more, not {size}")
    sweep = _Sweep(protocols)
    rng = random.Random(seed)
    return [(f"population #{index + 1}", _patient_data(rng, sweep)) for index in range(size)]


def state_input(state: PatientState) -> dict[str, Any]:
    """The input that gives this state (times in UTC, temperature in °C): what an example shows,
    so that ``crs-rules evaluate`` can be run on it."""
    def section(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    data: dict[str, Any] = {"assessed_at": iso(state.assessed_at)}
    data["patient"] = section({"weight_kg": state.weight_kg, "age_years": state.age_years,
                               "neutropenic": state.neutropenic,
                               "significant_comorbidities": state.significant_comorbidities})
    parts = {
        "therapy": section({"car_t": state.car_t}),
        "crs": section({"onset_at": iso(state.crs_onset_at) if state.crs_onset_at else None,
                        "antipyretic_or_anticytokine": state.antipyretic_or_anticytokine,
                        "improving": state.improving, "suspected_mas": state.suspected_mas}),
        "sepsis": section({"septic_shock": state.septic_shock, "improving": state.sepsis_improving}),
        "vitals": section({
            "temperature_c": state.temperature_c, "hypotension": state.hypotension,
            "refractory_hypotension": state.refractory_hypotension,
            "vasopressors": list(state.vasopressors) if state.vasopressors is not None else None,
            "attributed_to_other_cause": list(state.attributed_to_other_cause) or None,
            "oxygen": section({"device": state.oxygen_device, "flow_l_min": state.oxygen_flow_l_min}) or None,
        }),
        "neuro": section({"icans_signs": state.icans_signs}),
    }
    data.update({name: value for name, value in parts.items() if value})
    if state.medications is not None:
        data["medications"] = [section({"drug": m.drug, "dose_mg": m.dose_mg, "given_at": iso(m.given_at)})
                               for m in state.medications]
    if state.proposed_orders:
        data["proposed_orders"] = [{"drug": drug} for drug in state.proposed_orders]
    return data


def _scenario_patients(protocols: Sequence[Protocol], notes: list[str]) -> list[Patient]:
    """The scenarios of both packs (once each)."""
    from .scenarios import load_scenarios

    patients: list[Patient] = []
    seen: dict[str, PatientState] = {}
    for which, protocol in zip(("old", "new"), protocols):
        try:
            scenarios = load_scenarios(protocol.path, protocol)
        except InvalidPackError as error:
            notes.append(f"the scenarios of the {which} pack ({protocol.path}) were not used: "
                         f"{len(error.problems)} problem(s); run crs-rules test {protocol.path}")
            continue
        for scenario in scenarios:
            label = f"scenario {scenario.name}"
            if seen.get(label) == scenario.patient:
                continue
            if label in seen:
                label = f"{label} ({which} pack)"
            seen[label] = scenario.patient
            patients.append(Patient(label, scenario.patient, state_input(scenario.patient)))
    return patients


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _decimals(value: float) -> str:
    """38.0, 37.95, 38.01: at least one decimal, at most two."""
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


def _tri(value: bool | None, true: str, false: str, unknown: str) -> str:
    return unknown if value is None else true if value else false


def describe_patient(state: PatientState) -> str:
    """A patient in one line of clinical shorthand."""
    who = f"{_number(state.weight_kg)} kg"
    who += f", {_number(state.age_years)} y" if state.age_years is not None else ", age unknown"
    parts = [who]
    parts.append(f"{_decimals(state.temperature_c)} °C" if state.temperature_c is not None else "no temperature")
    if state.vasopressors:
        parts.append("vasopressors " + ", ".join(state.vasopressors))
    else:
        parts.append(_tri(state.hypotension, "hypotension without vasopressors", "no hypotension",
                          "hypotension unknown"))
    if state.refractory_hypotension:
        parts.append("refractory hypotension")
    if state.oxygen_device is not None:
        flow = f" {_number(state.oxygen_flow_l_min)} L/min" if state.oxygen_flow_l_min is not None else ""
        parts.append(f"{state.oxygen_device}{flow}")
    else:
        parts.append("no oxygen recorded")
    if state.crs_onset_at is not None:
        days = (state.assessed_at - state.crs_onset_at).total_seconds() / 86400
        parts.append(f"CRS onset {days:.2f}".rstrip("0").rstrip(".") + " days ago")
    parts.append(_tri(state.improving, "improving", "not improving", "improvement unknown"))
    flags = [("neutropenic", state.neutropenic), ("significant comorbidities", state.significant_comorbidities),
             ("CAR T", state.car_t), ("antipyretic or anticytokine given", state.antipyretic_or_anticytokine),
             ("suspected MAS", state.suspected_mas), ("ICANS signs", state.icans_signs),
             ("septic shock", state.septic_shock)]
    parts.extend(name for name, value in flags if value)
    given: dict[str, list[str]] = {}
    for medication in state.medications or ():
        hours = (state.assessed_at - medication.given_at).total_seconds() / 3600
        given.setdefault(medication.drug, []).append(f"{hours:.1f}".rstrip("0").rstrip(".") + " h")
    if given:
        parts.append("given " + "; ".join(f"{drug} {', '.join(reversed(times))} ago" for drug, times in given.items()))
    elif state.medications is None:
        parts.append("medication record not given")
    else:
        parts.append("no medication given")
    if state.proposed_orders:
        parts.append("proposed " + ", ".join(state.proposed_orders))
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Outcomes and their differences
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a decision does for a patient, and nothing else (no texts, citations or trace).

    ``recommendations``: (action, strength, rule, dose without its calculation text);
    ``withheld``: (action, strength, rule, limits, next eligible time or None, reason);
    ``alerts``: (id, severity, text).
    """

    grade: str
    """``0``-``4``, ``not applicable`` or ``one of 0, 4`` (indeterminate)."""
    recommendations: tuple[tuple[str, str, str, Dose | None], ...]
    withheld: tuple[tuple[str, str, str, tuple[str, ...], str | None, str], ...]
    alerts: tuple[tuple[str, str, str], ...]

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        if decision.grade_status == "graded":
            grade = str(decision.crs_grade)
        elif decision.grade_status == "not_applicable":
            grade = "not applicable"
        else:
            grade = "one of " + ", ".join(str(g) for g in decision.possible_grades)
        return cls(
            grade,
            tuple((r.action, r.strength, r.rule, replace(r.dose, calculation="") if r.dose else None)
                  for r in decision.recommendations),
            tuple((w.action, w.strength, w.rule, w.limits, iso(w.next_eligible_at) if w.next_eligible_at else None,
                   w.reason) for w in decision.withheld),
            tuple((a.id, a.severity, a.text) for a in decision.alerts),
        )

    def summary(self) -> str:
        """The outcome in one line: grade; recommended; considered; withheld; alerts."""
        def action(item: tuple[str, str, str, Dose | None]) -> str:
            return item[3].describe() if item[3] is not None else item[0]

        parts = [f"grade {self.grade}"]
        for strength in ("recommend", "consider"):
            chosen = [action(r) for r in self.recommendations if r[1] == strength]
            if chosen:
                parts.append(f"{strength} " + ", ".join(chosen))
        if self.withheld:
            parts.append("withheld " + ", ".join(
                f"{w[0]} ({', '.join(w[3])}; " + (f"eligible again at {w[4]})" if w[4] else "not again)")
                for w in self.withheld))
        parts.append("alerts " + ", ".join(f"{a[0]} ({a[1]})" for a in self.alerts) if self.alerts else "no alerts")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "crs_grade": self.grade,
            "recommendations": [{"action": a, "strength": s, "rule": r,
                                 "dose": d.describe() if d else None, "amount_mg": d.amount_mg if d else None}
                                for a, s, r, d in self.recommendations],
            "withheld": [{"action": a, "strength": s, "rule": r, "limits": list(limits), "next_eligible_at": when,
                          "reason": reason} for a, s, r, limits, when, reason in self.withheld],
            "alerts": [{"id": i, "severity": severity} for i, severity, _ in self.alerts],
        }


def _dose_change(old: Dose | None, new: Dose | None) -> str:
    if (old is not None and new is not None and old.amount_mg is not None and new.amount_mg is not None
            and replace(old, amount_mg=new.amount_mg) == new):
        return f"{old.drug} {_number(old.amount_mg)} mg -> {_number(new.amount_mg)} mg"
    return f"{old.describe() if old else 'no dose'} -> {new.describe() if new else 'no dose'}"


def outcome_differences(old: Outcome, new: Outcome) -> list[tuple[str, str]]:
    """How one patient's outcome differs, as (kind, change) pairs; empty when they are the same.

    Actions are matched by (action, strength), not by rule, so a patient whose grade changes keeps
    "recommend tocilizumab" when both grades recommend it (its dose is then compared).
    """
    found: list[tuple[str, str]] = []
    if old.grade != new.grade:
        found.append((GRADE_CHANGED, f"grade {old.grade} -> {new.grade}"))

    def doses(outcome: Outcome) -> dict[tuple[str, str], list[Dose | None]]:
        proposed: dict[tuple[str, str], list[Dose | None]] = {}
        for action, strength, _, dose in outcome.recommendations:
            proposed.setdefault((action, strength), []).append(dose)
        return proposed

    before, after = doses(old), doses(new)
    for key in after:
        if key not in before:
            found.append((ACTION_ADDED, f"{key[1]} {key[0]}"))
    for key in before:
        if key not in after:
            found.append((ACTION_REMOVED, f"{key[1]} {key[0]}"))
    for key in before:
        if key in after and before[key] != after[key]:
            olds = [d for d in before[key] if d not in after[key]] or [None]
            news = [d for d in after[key] if d not in before[key]] or [None]
            for old_dose, new_dose in zip(olds, news):
                found.append((DOSE_CHANGED, _dose_change(old_dose, new_dose)))

    def withheld(outcome: Outcome) -> dict[str, tuple[tuple[str, ...], str | None, str]]:
        return {w[0] if w[1] == "recommend" else f"{w[0]} ({w[1]})": (w[3], w[4], w[5]) for w in outcome.withheld}

    held_before, held_after = withheld(old), withheld(new)
    for action, (limits, when, reason) in held_after.items():
        if action not in held_before:
            found.append((WITHHELD_CHANGED, f"{action} now withheld ({', '.join(limits)})"))
            continue
        old_limits, old_when, old_reason = held_before[action]
        if old_limits != limits:
            found.append((WITHHELD_CHANGED, f"{action} withheld for {', '.join(old_limits)} -> {', '.join(limits)}"))
        elif old_when != when:
            if old_when is None or when is None:
                found.append((WITHHELD_CHANGED, f"{action} eligible again: {'at a time' if old_when else 'never'} -> "
                                                f"{'at a time' if when else 'never'}"))
            else:
                shift = (datetime.fromisoformat(when.replace("Z", "+00:00"))
                         - datetime.fromisoformat(old_when.replace("Z", "+00:00"))).total_seconds() / 3600
                found.append((WITHHELD_CHANGED, f"{action} eligible again {shift:+g} h"))
        elif old_reason != reason:
            found.append((WITHHELD_CHANGED, f"{action} withheld, reason worded differently"))
    for action, (limits, _, _) in held_before.items():
        if action not in held_after:
            found.append((WITHHELD_CHANGED, f"{action} no longer withheld (was {', '.join(limits)})"))

    alerts_before = {a[0]: a for a in old.alerts}
    alerts_after = {a[0]: a for a in new.alerts}
    for alert, (_, severity, text) in alerts_after.items():
        if alert not in alerts_before:
            found.append((ALERT_CHANGED, f"alert {alert} now raised ({severity})"))
        elif alerts_before[alert][1] != severity:
            found.append((ALERT_CHANGED, f"alert {alert} severity {alerts_before[alert][1]} -> {severity}"))
        elif alerts_before[alert][2] != text:
            found.append((ALERT_CHANGED, f"alert {alert} text changed"))
    for alert in alerts_before:
        if alert not in alerts_after:
            found.append((ALERT_CHANGED, f"alert {alert} no longer raised"))
    return found


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubChange:
    """One change of one kind (``tocilizumab 800 mg -> 700 mg``) and the patients it happens to."""

    change: str
    patients: tuple[str, ...]


@dataclass(frozen=True)
class Example:
    """A worked example: one patient, described, with both outcomes."""

    patient: str
    description: str
    data: Mapping[str, Any] = field(repr=False)
    old: Outcome
    new: Outcome
    changes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"patient": self.patient, "description": self.description, "changes": list(self.changes),
                "input": dict(self.data), "old": self.old.to_dict(), "new": self.new.to_dict()}


@dataclass(frozen=True)
class KindReport:
    """Every patient with one kind of difference, each change with its patients, and an example."""

    kind: str
    patients: tuple[str, ...]
    changes: tuple[SubChange, ...]
    example: Example

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "patients": len(self.patients),
                "changes": [{"change": c.change, "patients": len(c.patients), "ids": list(c.patients)}
                            for c in self.changes],
                "example": self.example.to_dict()}


@dataclass(frozen=True)
class PackRef:
    """Which pack: its id, version, status and content digest, and the folder it was read from."""

    id: str
    version: str
    status: str
    digest: str
    path: str

    @classmethod
    def of(cls, protocol: Protocol) -> PackRef:
        return cls(protocol.id, protocol.version, protocol.status, protocol.digest, protocol.path)

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "status": self.status, "digest": self.digest,
                "path": self.path}


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class ImpactReport:
    """What changed between two packs, and what that does to patients.

    ``kinds`` holds only the kinds of difference some patient has, in :data:`DIFFERENCE_KINDS`
    order; a patient whose decisions are the same under both packs appears nowhere. ``patients``
    are every patient evaluated (scenarios first), for programs that look further.
    """

    old: PackRef
    new: PackRef
    pack_changes: tuple[PackChange, ...]
    generated: int
    seed: int
    scenarios: int
    differing: tuple[str, ...]
    kinds: tuple[KindReport, ...]
    elapsed_seconds: float
    notes: tuple[str, ...] = ()
    patients: tuple[Patient, ...] = field(default=(), repr=False, compare=False)

    @property
    def population_size(self) -> int:
        return self.generated + self.scenarios

    def kind(self, name: str) -> KindReport | None:
        return next((k for k in self.kinds if k.kind == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "version": {"old": self.old.version, "new": self.new.version},
            "pack_changes": [c.to_dict() for c in self.pack_changes],
            "population": {"patients": self.population_size, "generated": self.generated, "seed": self.seed,
                           "scenarios": self.scenarios},
            "patients_with_differences": len(self.differing),
            "differences": [k.to_dict() for k in self.kinds],
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """The report in plain words for the pharmacist who made the change."""
        old, new = self.old, self.new
        version = (f"version {old.version} -> {new.version}" if old.version != new.version
                   else f"version {old.version} in both")
        if old.status != new.status:
            version += f", status {old.status} -> {new.status}"
        name = old.id if old.id == new.id else f"{old.id} -> {new.id}"
        lines = [f"Protocol {name}, {version}",
                 f"  old: {old.path} ({old.digest[:19]}...)",
                 f"  new: {new.path} ({new.digest[:19]}...)", ""]
        if self.pack_changes:
            lines.append(f"What changed in the pack: {_count(len(self.pack_changes), 'change')}")
            for pack_change in self.pack_changes:
                lines.append(f"  {pack_change.describe()}  ({pack_change.file}:{pack_change.line})")
                if pack_change.warning:
                    lines.append(f"    {pack_change.warning}")
        elif old.digest == new.digest:
            lines.append("What changed in the pack: nothing, the content is the same")
        else:
            lines.append("What changed in the pack: only the release record (version, changelog)")
        lines.append("")
        population = f"{_count(self.generated, 'generated patient')} (seed {self.seed})"
        if self.scenarios:
            population += f" and {_count(self.scenarios, 'scenario')}"
        timing = f"each evaluated under both packs; {self.elapsed_seconds:.1f} s in all"
        if not self.differing:
            lines.append("What that does to patients: no patient gets a different decision.")
            lines.append(f"  {population}, {timing}.")
        else:
            lines.append(f"What that does to patients: {len(self.differing):,} of "
                         f"{_count(self.population_size, 'patient')} get a different decision.")
            lines.append(f"  {population}, {timing}.")
            shown: set[str] = set()
            for kind in self.kinds:
                lines += ["", f"  {kind.kind}: {_count(len(kind.patients), 'patient')}"]
                for change in kind.changes[:_SHOWN_SUB_CHANGES]:
                    lines.append(f"    {change.change}: {_count(len(change.patients), 'patient')}")
                rest = kind.changes[_SHOWN_SUB_CHANGES:]
                if rest:
                    lines.append(f"    ... and {_count(len(rest), 'other change')} "
                                 f"({_count(sum(len(c.patients) for c in rest), 'patient')} in all)")
                example = kind.example
                if example.patient in shown:
                    lines.append(f"    Example, {example.patient} (as above): {'; '.join(example.changes)}")
                    continue
                shown.add(example.patient)
                lines.append(f"    Example, {example.patient}: {example.description}")
                lines.append(f"      differs: {'; '.join(example.changes)}")
                lines.append(f"      old: {example.old.summary()}")
                lines.append(f"      new: {example.new.summary()}")
        for note in self.notes:
            lines += ["", f"Note: {note}"]
        return "\n".join(lines)


class _Evaluator:
    """Parses inputs into states and evaluates both packs on each; identical states once per pack."""

    def __init__(self, old: Protocol, new: Protocol) -> None:
        self.packs = (old, new)
        self.memo: tuple[dict[PatientState, Outcome], dict[PatientState, Outcome]] = ({}, {})

    def outcomes(self, state: PatientState) -> tuple[Outcome, Outcome]:
        found = []
        for protocol, memo in zip(self.packs, self.memo):
            outcome = memo.get(state)
            if outcome is None:
                outcome = memo[state] = Outcome.of(evaluate(state, protocol, allow_draft=True))  # drafts are compared
            found.append(outcome)
        return found[0], found[1]

    def run(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[PatientState, Outcome, Outcome]]:
        results = []
        for label, data in items:
            try:
                state = parse_patient(data, label)
            except InvalidInputError as error:  # a fault of the generator; a plain error crosses processes
                raise ValueError(f"{label} is not a valid patient: {error}") from None
            results.append((state, *self.outcomes(state)))
        return results


_worker: list[_Evaluator] = []


def _start_worker(old: Protocol, new: Protocol) -> None:
    # Ctrl-C is the command's to handle (it ends the pool); a spawn-started worker does not inherit
    # the command's handler and would print a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker[:] = [_Evaluator(old, new)]


def _run_in_worker(items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[PatientState, Outcome, Outcome]]:
    return _worker[0].run(items)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _evaluate_all(old: Protocol, new: Protocol, items: Sequence[tuple[str, Mapping[str, Any]]],
                  workers: int) -> list[tuple[PatientState, Outcome, Outcome]]:
    """Parse and evaluate every item, in order; over ``workers`` processes when it pays.

    Evaluations of one pack are serialised within a process, so processes are what scales. Each
    worker gets both packs once and a share of the items in chunks; results come back in order, so
    the report does not depend on the number of workers.
    """
    if workers <= 1 or len(items) < _PARALLEL_FROM:
        return _Evaluator(old, new).run(items)
    chunk = max(100, -(-len(items) // (workers * 4)))
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    # fork is quick and needs no re-import, but only a single-threaded process may fork safely.
    method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(chunks)), _start_worker, (old, new)) as pool:
        parts = pool.map(_run_in_worker, chunks)
    return [result for part in parts for result in part]


def _documents(protocol: Protocol, notes: list[str], which: str) -> dict[str, LoadedDocument]:
    documents, problems = read_pack_documents(Path(protocol.path))
    if problems or content_digest(documents) != protocol.digest:
        notes.append(f"the {which} pack's files ({protocol.path}) changed after it was loaded; "
                     "the pack changes are read from the files as they are now")
    return documents


def compare_packs(old: Protocol, new: Protocol, population_size: int | None = None,
                  seed: int = DEFAULT_SEED, workers: int | None = None) -> ImpactReport:
    """What changed from ``old`` to ``new`` (by rule id and number), and what that does to patients:
    both packs evaluated on the scenarios of both and on ``population_size`` generated patients
    (default :data:`DEFAULT_POPULATION`), every differing patient counted by kind of difference.

    ``workers``: processes to evaluate in (default: one per available CPU, at most 8; 1 evaluates
    in this process). The report is the same whatever the number.
    """
    start = time.perf_counter()
    size = DEFAULT_POPULATION if population_size is None else population_size
    notes: list[str] = []
    changes = pack_changes(_documents(old, notes, "old"), _documents(new, notes, "new"))

    scenarios = _scenario_patients((old, new), notes)
    evaluator = _Evaluator(old, new)
    results = [(p.state, *evaluator.outcomes(p.state)) for p in scenarios]
    items = population_inputs((old, new), size, seed)
    results += _evaluate_all(old, new, items, min(_available_cpus(), 8) if workers is None else workers)
    patients = [*scenarios, *(Patient(label, state, data) for (label, data), (state, _, _) in zip(items, results[len(scenarios):]))]
    before = [r[1] for r in results]
    after = [r[2] for r in results]

    by_kind: dict[str, dict[str, list[int]]] = {kind: {} for kind in DIFFERENCE_KINDS}
    patients_by_kind: dict[str, list[int]] = {kind: [] for kind in DIFFERENCE_KINDS}
    differing: list[int] = []
    for index, (a, b) in enumerate(zip(before, after)):
        if a == b:
            continue
        found = outcome_differences(a, b)
        if not found:
            continue
        differing.append(index)
        for kind in dict.fromkeys(k for k, _ in found):
            patients_by_kind[kind].append(index)
        for kind, change in dict.fromkeys(found):
            by_kind[kind].setdefault(change, []).append(index)

    kinds = []
    for kind in DIFFERENCE_KINDS:
        if not patients_by_kind[kind]:
            continue
        ordered = sorted(by_kind[kind].items(), key=lambda item: (-len(item[1]), item[0]))
        # The example: the first patient of the most common change, scenarios before the population.
        first = ordered[0][1][0]
        example = Example(
            patients[first].label, describe_patient(patients[first].state), patients[first].data,
            before[first], after[first],
            tuple(change for k, change in outcome_differences(before[first], after[first]) if k == kind),
        )
        kinds.append(KindReport(
            kind, tuple(patients[i].label for i in patients_by_kind[kind]),
            tuple(SubChange(change, tuple(patients[i].label for i in indices)) for change, indices in ordered),
            example,
        ))
    return ImpactReport(
        PackRef.of(old), PackRef.of(new), changes, size, seed, len(scenarios),
        tuple(patients[i].label for i in differing), tuple(kinds), time.perf_counter() - start,
        tuple(notes), tuple(patients),
    )
