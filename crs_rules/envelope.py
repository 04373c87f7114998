"""The safety envelope: hard dose limits owned apart from the rule pack.

Smart infusion pumps keep hard limits (never overridden) apart from the drug library that is edited
day to day; this library does the same. The envelope (``schemas/safety-envelope.yaml``, package data
next to the schemas, never inside a pack folder) holds the most any pack may allow: a cap per dose
and per kg (by weight band), the shortest interval, the most doses in a window and in a course, per
drug and, tighter, per regimen; and who is a child (a fixed amount is an adult dose), which a pack
may widen, never narrow. It is reviewed as code: its sha256 is recorded here (:data:`ENVELOPE_SHA256`)
and checked every time it is read, so an envelope changed without this line changed stops every
command with :class:`EnvelopeError`.

Two readers use it. :func:`envelope_problems` makes ``crs-rules validate`` refuse a pack whose
limits or amounts go beyond it (each per-kg band against every envelope band it covers), or whose
pediatric definition is missing or counts fewer children, each problem at the pack's number and
naming both numbers; the
independent dose check (``dosing``) withholds any dose beyond it, whatever the pack says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ._resources import schema_dir
from .checks.base import CheckId
from .errors import CrsRulesError, Problem
from .loading import LoadedDocument, load_yaml_bytes
from .schema_words import schema_problems

__all__ = [
    "ENVELOPE_FILE",
    "ENVELOPE_SHA256",
    "DrugEnvelope",
    "Envelope",
    "EnvelopeError",
    "MgPerKgBand",
    "PediatricFloor",
    "RegimenCeiling",
    "default_envelope",
    "envelope_problems",
    "load_envelope",
]

#: The envelope's file, in the schema folder (package data).
ENVELOPE_FILE = "safety-envelope.yaml"
#: The reviewed envelope's sha256 (of the file's bytes). Changing the envelope means changing this
#: line too, in the same reviewed change.
ENVELOPE_SHA256 = "sha256:4ee2d068941536735864a25d38154ac06a55a6ea4f3229fe000a5f69676bd9b5"


class EnvelopeError(CrsRulesError, RuntimeError):
    """The safety envelope is not the reviewed one (its digest differs) or is not valid. Nothing
    can be validated or evaluated without it."""


@dataclass(frozen=True)
class MgPerKgBand:
    """The most mg per kg a dose may be, from ``from_weight_kg`` (inclusive) up to the next band's."""

    from_weight_kg: float
    max_mg_per_kg: float


@dataclass(frozen=True)
class PediatricFloor:
    """Who is a child whatever the pack says: under ``age_below_years``; with the age not recorded,
    under ``weight_below_kg_if_age_unknown``. A pack may count more patients as children, never fewer."""

    age_below_years: float
    weight_below_kg_if_age_unknown: float

    def is_child(self, age_years: float | None, weight_kg: float) -> bool:
        if age_years is not None:
            return age_years < self.age_below_years
        return weight_kg < self.weight_below_kg_if_age_unknown


@dataclass(frozen=True)
class RegimenCeiling:
    regimen: str
    max_dose_mg: float | None
    min_interval_h: float | None


@dataclass(frozen=True)
class DrugEnvelope:
    """The hard limits of one drug; ``None`` where the envelope does not bound it."""

    drug: str
    max_dose_mg: float | None
    max_mg_per_kg: tuple[MgPerKgBand, ...]
    min_interval_h: float | None
    max_doses_in_window: int | None
    window_h: float | None
    max_doses_per_course: int | None
    regimens: tuple[RegimenCeiling, ...]

    def mg_per_kg_band(self, weight_kg: float) -> MgPerKgBand | None:
        """The band that bounds a dose for this weight (bands increase and the first starts at 0)."""
        applicable = [band for band in self.max_mg_per_kg if band.from_weight_kg <= weight_kg]
        return applicable[-1] if applicable else None

    def _regimen(self, regimen: str) -> RegimenCeiling | None:
        return next((r for r in self.regimens if r.regimen == regimen), None)

    def max_dose_for(self, regimen: str) -> float | None:
        """The most one dose of this regimen may be: the drug's and the regimen's cap, the lower."""
        own = self._regimen(regimen)
        caps = [c for c in (self.max_dose_mg, own.max_dose_mg if own else None) if c is not None]
        return min(caps) if caps else None

    def min_interval_for(self, regimen: str) -> float | None:
        """The least time between doses of this regimen: the drug's and the regimen's, the longer."""
        own = self._regimen(regimen)
        hours = [h for h in (self.min_interval_h, own.min_interval_h if own else None) if h is not None]
        return max(hours) if hours else None

    @property
    def reads_history(self) -> bool:
        return (self.min_interval_h is not None or self.max_doses_in_window is not None
                or self.max_doses_per_course is not None or any(r.min_interval_h is not None for r in self.regimens))


@dataclass(frozen=True)
class Envelope:
    name: str
    digest: str
    file: str
    pediatric: PediatricFloor
    drugs: tuple[DrugEnvelope, ...]

    def drug(self, drug_id: str) -> DrugEnvelope | None:
        return next((d for d in self.drugs if d.drug == drug_id), None)


def _number(value: Any) -> float | None:
    return float(value) if value is not None else None


def load_envelope(path: str | Path | None = None, recorded: str = ENVELOPE_SHA256) -> Envelope:
    """Read the envelope (the shipped one by default), check its digest against ``recorded``, then
    its YAML and schema. Raises :class:`EnvelopeError` naming what is wrong."""
    file = Path(path) if path is not None else schema_dir() / ENVELOPE_FILE
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise EnvelopeError(f"the safety envelope {file} cannot be read ({error.strerror or error}); "
                            "expected the envelope shipped with the library") from None
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    if digest != recorded:
        raise EnvelopeError(
            f"the safety envelope {file} has changed: its digest is {digest}, the reviewed one is {recorded}; "
            "expected the reviewed envelope (a changed envelope is a code change: review it and record its "
            "digest as ENVELOPE_SHA256 in crs_rules/envelope.py)")
    document, problems = load_yaml_bytes(raw, str(file))
    if document is not None:
        problems = schema_problems(document, "safety-envelope")
    if document is None or problems:
        raise EnvelopeError("the safety envelope is not valid:\n" + "\n".join(str(p) for p in problems))
    drugs = []
    for entry in document.data["drugs"]:
        window = entry.get("max_doses_in_window", {})
        bands = tuple(MgPerKgBand(float(b["from_weight_kg"]), float(b["max_mg_per_kg"]))
                      for b in entry.get("max_mg_per_kg", ()))
        starts = [b.from_weight_kg for b in bands]
        if bands and (starts[0] != 0 or any(a >= b for a, b in zip(starts, starts[1:]))):
            raise EnvelopeError(f"the safety envelope is not valid: {entry['drug']}'s max_mg_per_kg bands start at "
                                f"{', '.join(_n(s) for s in starts)} kg; expected the first at 0 kg and increasing "
                                "weights")
        drugs.append(DrugEnvelope(
            entry["drug"], _number(entry.get("max_dose_mg")), bands,
            _number(entry.get("min_interval_h")), window.get("doses"), _number(window.get("window_h")),
            entry.get("max_doses_per_course"),
            tuple(RegimenCeiling(r["regimen"], _number(r.get("max_dose_mg")), _number(r.get("min_interval_h")))
                  for r in entry.get("regimens", ())),
        ))
    pediatric = document.data["pediatric"]
    floor = PediatricFloor(float(pediatric["age_below_years"]), float(pediatric["weight_below_kg_if_age_unknown"]))
    return Envelope(document.data["envelope"], digest, str(file), floor, tuple(drugs))


@cache
def default_envelope() -> Envelope:
    """The shipped envelope, read and checked once per process."""
    return load_envelope()


# --------------------------------------------------------------------------- the pack against it


def _n(value: float) -> str:
    return f"{value:g}"


class _Checker:
    def __init__(self, document: LoadedDocument, drug: str) -> None:
        self.document, self.drug = document, drug
        self.problems: list[Problem] = []

    def add(self, path: tuple[str | int, ...], message: str, expected: str) -> None:
        line, column = self.document.position(path)
        self.problems.append(Problem(self.document.file, line, column, f"dosing.{self.drug}", message,
                                     expected + " (the safety envelope's hard limit; a pack may be tighter, never looser)",
                                     path, CheckId.SAFETY_ENVELOPE))

    def at_most(self, path: tuple[str | int, ...], name: str, value: Any, ceiling: float | None, unit: str) -> None:
        if value is not None and ceiling is not None and float(value) > ceiling:
            self.add(path, f"{name} {_n(value)} {unit} is above the safety envelope's {_n(ceiling)} {unit} for {self.drug}",
                     f"expected at most {_n(ceiling)} {unit}")

    def at_least(self, path: tuple[str | int, ...], name: str, value: Any, floor: float | None, unit: str) -> None:
        if value is not None and floor is not None and float(value) < floor:
            self.add(path, f"{name} {_n(value)} {unit} is below the safety envelope's {_n(floor)} {unit} for {self.drug}",
                     f"expected at least {_n(floor)} {unit}")


def _weights(start: float, end: float | None) -> str:
    if end is None:
        return f"from {_n(start)} kg"
    if start == 0:
        return f"below {_n(end)} kg"
    return f"from {_n(start)} kg up to {_n(end)} kg"


def _check_bands(check: _Checker, at: tuple[str | int, ...], bands: list[Any], hard: DrugEnvelope) -> None:
    """Each of the pack's weight bands against every envelope band it overlaps: its mg/kg may not
    exceed the envelope's for any weight it covers (reported once, with the lowest such ceiling)."""
    ceilings = hard.max_mg_per_kg
    for k, band in enumerate(bands):
        start, value = float(band["from_weight_kg"]), band.get("mg_per_kg")
        later = [float(b["from_weight_kg"]) for b in bands[k + 1:]]
        end = min(later) if later else None
        broken = []
        for j, ceiling in enumerate(ceilings):
            c_end = ceilings[j + 1].from_weight_kg if j + 1 < len(ceilings) else None
            overlaps = (end is None or ceiling.from_weight_kg < end) and (c_end is None or start < c_end)
            if overlaps and value is not None and float(value) > ceiling.max_mg_per_kg:
                broken.append((ceiling.max_mg_per_kg, _weights(ceiling.from_weight_kg, c_end)))
        if broken:
            most, weights = min(broken)
            check.add((*at, k, "mg_per_kg"),
                      f"mg_per_kg {_n(value)} mg/kg {_weights(start, end)} is above the safety envelope's "
                      f"{_n(most)} mg/kg {weights} for {check.drug}",
                      f"expected at most {_n(most)} mg/kg {weights}")


def _pediatric_problems(dosing: LoadedDocument, floor: PediatricFloor) -> list[Problem]:
    """The pack's pediatric definition must exist and count at least the envelope's children."""
    def problem(path: tuple[str | int, ...], message: str, expected: str) -> Problem:
        line, column = dosing.position(path)
        return Problem(dosing.file, line, column, "dosing.pediatric", message,
                       expected + " (the safety envelope's hard limit; a pack may count more patients as children, "
                       "never fewer)", path, CheckId.SAFETY_ENVELOPE)

    own = dosing.data.get("pediatric")
    if not isinstance(own, dict):
        return [problem(("pediatric",), "the pack does not define who is a child (pediatric)",
                        f"expected pediatric with age_below_years at least {_n(floor.age_below_years)} and "
                        f"weight_below_kg_if_age_unknown at least {_n(floor.weight_below_kg_if_age_unknown)}")]
    problems = []
    for key, ceiling, unit in (("age_below_years", floor.age_below_years, "years"),
                               ("weight_below_kg_if_age_unknown", floor.weight_below_kg_if_age_unknown, "kg")):
        value = own.get(key)
        if value is not None and float(value) < ceiling:
            problems.append(problem(("pediatric", key),
                                    f"{key} {_n(value)} {unit} is below the safety envelope's {_n(ceiling)} {unit}: "
                                    "the pack would count fewer patients as children",
                                    f"expected at least {_n(ceiling)} {unit}"))
    return problems


def envelope_problems(documents: dict[str, LoadedDocument], envelope: Envelope) -> list[Problem]:
    """Every limit or amount of the pack's dosing file that goes beyond the envelope, each at the
    pack's number, naming both numbers; every dosed drug the envelope does not know; and a
    pediatric definition that is missing or counts fewer patients as children than the envelope."""
    dosing = documents.get("dosing")
    if dosing is None or not isinstance(dosing.data, dict):
        return []
    problems: list[Problem] = _pediatric_problems(dosing, envelope.pediatric)
    for i, drug in enumerate(dosing.data.get("drugs", ())):
        base: tuple[str | int, ...] = ("drugs", i)
        check = _Checker(dosing, str(drug["id"]))
        hard = envelope.drug(drug["id"])
        if hard is None:
            known = ", ".join(d.drug for d in envelope.drugs)
            check.add((*base, "id"), f"{drug['id']} has no hard limits in the safety envelope",
                      f"expected a drug of the safety envelope ({known}); a new drug needs its hard limits added to "
                      "the envelope, reviewed as code")
            problems.extend(check.problems)
            continue
        limits = drug.get("limits", {})
        at = (*base, "limits")
        check.at_most((*at, "max_dose_mg"), "max_dose_mg", limits.get("max_dose_mg"), hard.max_dose_mg, "mg")
        check.at_least((*at, "min_interval_h"), "min_interval_h", limits.get("min_interval_h"), hard.min_interval_h, "h")
        window = limits.get("max_doses_in_window") or {}
        if hard.max_doses_in_window is not None:
            check.at_most((*at, "max_doses_in_window", "doses"), "max_doses_in_window.doses", window.get("doses"),
                          hard.max_doses_in_window, "doses")
            check.at_least((*at, "max_doses_in_window", "window_h"), "max_doses_in_window.window_h",
                           window.get("window_h"), hard.window_h, "h")
        check.at_most((*at, "max_doses_per_course"), "max_doses_per_course", limits.get("max_doses_per_course"),
                      hard.max_doses_per_course, "doses")
        seen: set[tuple[str | int, ...]] = set()
        for j, regimen in enumerate(drug.get("regimens", ())):
            here = (*base, "regimens", j)
            own = regimen.get("amount")
            amount, amount_at = (own, (*here, "amount")) if own is not None else (drug.get("amount"), (*base, "amount"))
            if amount is not None and amount_at not in seen:
                before = len(check.problems)
                check.at_most((*amount_at, "fixed_mg"), "fixed_mg", amount.get("fixed_mg"),
                              hard.max_dose_for(str(regimen["id"])), "mg")
                _check_bands(check, (*amount_at, "per_kg"), list(amount.get("per_kg", ())), hard)
                if len(check.problems) > before:
                    seen.add(amount_at)
            floor = hard.min_interval_for(str(regimen["id"]))
            check.at_least((*here, "every_h"), "every_h", regimen.get("every_h"), floor, "h")
            times = regimen.get("times_daily")
            if times and floor is not None and 24 / times < floor:
                check.add((*here, "times_daily"),
                          f"times_daily {times} (every {_n(24 / times)} h) is more often than the safety envelope's "
                          f"every {_n(floor)} h for {check.drug}",
                          f"expected at most {_n(24 // floor)} times daily")
        problems.extend(check.problems)
    return problems
