"""Dose changes of ``crs-rules diff`` summarised by the patients they affect.

A dose is computed from the patient's weight (a per-kg amount by weight band, up to the drug's cap,
or a fixed amount), so the patients whose dose changes are described by weight, between the
weights where either pack's dose rule changes shape (the start of a weight band, the weight at
which a band's per-kg amount reaches the cap): "tocilizumab 700 mg instead of 701 to 800 mg for
patients of 87.5 kg and more", not one line per pair of amounts. Neighbouring weight ranges are
merged when the patients get the same amount in one of the packs. A dose whose amount is the same
and whose other terms (interval, repeats) differ is described by the words that changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .decision import Dose
from .model import Protocol
from .pack_diff import _text_change

__all__ = ["DoseEffect", "dose_effects", "weight_breakpoints"]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _amounts(values: tuple[float, float] | None) -> str:
    if values is None:
        return "no amount"
    low, high = values
    return f"{_number(low)} mg" if low == high else f"{_number(low)} to {_number(high)} mg"


@dataclass(frozen=True)
class DoseEffect:
    """One dose change and the patients it happens to.

    ``from_weight_kg`` (inclusive) and ``below_weight_kg`` bound the patients' weights (None: no
    bound); ``old_mg`` and ``new_mg`` are the lowest and highest amounts (None: proposed without an
    amount); ``given`` is set instead when the amount is the same and how it is given differs.
    """

    drug: str
    from_weight_kg: float | None
    below_weight_kg: float | None
    old_mg: tuple[float, float] | None
    new_mg: tuple[float, float] | None
    given: str | None
    patients: tuple[str, ...]

    @property
    def who(self) -> str:
        low, high = self.from_weight_kg, self.below_weight_kg
        if low is None and high is None:
            return "all patients"
        if low is None:
            return f"patients under {_number(high or 0)} kg"
        if high is None:
            return f"patients of {_number(low)} kg and more"
        return f"patients of {_number(low)} to under {_number(high)} kg"

    def describe(self) -> str:
        if self.given is not None:
            return f"{self.drug}, same amount, given differently ({self.given}), for {self.who}"
        return f"{self.drug} {_amounts(self.new_mg)} instead of {_amounts(self.old_mg)} for {self.who}"


def weight_breakpoints(protocols: Sequence[Protocol], drug_id: str) -> list[float]:
    """The weights (kg, above 0) where a dose of the drug changes shape in any of the packs: where
    a weight band starts, where a band's per-kg amount reaches the drug's cap."""
    found: set[float] = set()
    for protocol in protocols:
        drug = protocol.drug(drug_id)
        if drug is None:
            continue
        cap = drug.limits.max_dose_mg
        for regimen in drug.regimens:
            bands = regimen.amount.per_kg if regimen.amount is not None else ()
            for band, after in zip(bands, (*bands[1:], None)):
                if band.from_weight_kg > 0:
                    found.add(float(band.from_weight_kg))
                if cap is not None and band.mg_per_kg > 0:
                    reaches = cap / band.mg_per_kg
                    if reaches >= band.from_weight_kg and (after is None or reaches < after.from_weight_kg):
                        found.add(round(reaches, 6))
    return sorted(found)


def _span(values: list[float]) -> tuple[float, float] | None:
    return (min(values), max(values)) if values else None


@dataclass
class _Group:
    drug: str
    segment: int
    old: list[float]
    new: list[float]
    old_missing: bool
    new_missing: bool
    patients: list[str]

    def constant(self, which: str) -> float | None:
        values = self.old if which == "old" else self.new
        return values[0] if values and len(set(values)) == 1 else None

    def mergeable(self, other: _Group) -> bool:
        if (self.drug, self.old_missing, self.new_missing) != (other.drug, other.old_missing, other.new_missing):
            return False
        return any(self.constant(w) is not None and self.constant(w) == other.constant(w) for w in ("new", "old"))


def dose_effects(changes: Sequence[tuple[str, float, Dose | None, Dose | None]],
                 protocols: Sequence[Protocol]) -> list[DoseEffect]:
    """Every changed dose, (patient label, weight, old dose, new dose), summarised by drug and by
    weight range (see the module's description), drugs in order of first appearance, weights
    ascending."""
    groups: dict[tuple[str, int, bool, bool], _Group] = {}
    given: dict[tuple[str, str], list[str]] = {}
    breakpoints: dict[str, list[float]] = {}
    texts: dict[tuple[str, str], str] = {}  # many patients share one change of wording: worded once
    for label, weight, old, new in changes:
        dose = new or old
        if dose is None:
            continue
        drug = dose.drug
        old_amount = old.amount_mg if old is not None else None
        new_amount = new.amount_mg if new is not None else None
        if old is not None and new is not None and old_amount == new_amount:
            texts_key = (old.describe(), new.describe())
            if texts_key not in texts:
                texts[texts_key] = _text_change(*texts_key)
            given.setdefault((drug, texts[texts_key]), []).append(label)
            continue
        points = breakpoints.get(drug)
        if points is None:  # once per drug
            points = breakpoints[drug] = weight_breakpoints(protocols, drug)
        segment = bisect.bisect_right(points, weight)
        key = (drug, segment, old_amount is None, new_amount is None)
        group = groups.setdefault(key, _Group(drug, segment, [], [], old_amount is None, new_amount is None, []))
        if old_amount is not None:
            group.old.append(float(old_amount))
        if new_amount is not None:
            group.new.append(float(new_amount))
        group.patients.append(label)

    effects: list[DoseEffect] = []
    drugs = list(dict.fromkeys([key[0] for key in groups] + [key[0] for key in given]))
    for drug in drugs:
        ordered = sorted((g for g in groups.values() if g.drug == drug),
                         key=lambda g: (g.old_missing, g.new_missing, g.segment))
        merged: list[tuple[_Group, int]] = []  # (group, last segment)
        for group in ordered:
            if merged and merged[-1][0].mergeable(group) and merged[-1][1] + 1 == group.segment:
                head = merged[-1][0]
                head.old += group.old
                head.new += group.new
                head.patients += group.patients
                merged[-1] = (head, group.segment)
            else:
                merged.append((group, group.segment))
        points = breakpoints.get(drug, [])
        for group, last in merged:
            low = points[group.segment - 1] if group.segment > 0 else None
            high = points[last] if last < len(points) else None
            effects.append(DoseEffect(drug, low, high, _span(group.old), _span(group.new), None, tuple(group.patients)))
        for (name, change), labels in given.items():
            if name == drug:
                effects.append(DoseEffect(drug, None, None, None, None, change, tuple(labels)))
    return effects
