"""The second stage of ``crs-rules diff``: the patients both packs are evaluated on.

The scenarios of both packs and a deterministic, seeded population. The population knows no
protocol number: it sweeps wide ranges of every input, and around each threshold, dose band, dose
cap and dose interval it finds in *either* pack it adds values just below, at and just above, so a
changed threshold is always probed on both sides.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final, TypeVar

from .conditions import comparisons, numbers_compared
from .decision import iso
from .dosing import largest_allowed_mg
from .errors import InvalidPackError
from .fields import FIELDS, Field, field
from .model import Comparison, Condition, Protocol
from .patient import PatientState
from .patient_examples import describe_patient, state_input

__all__ = ["DEFAULT_POPULATION", "DEFAULT_SEED", "ASSESSED_AT", "Patient", "population_inputs", "population_stream",
           "state_input",
           "scenario_patients", "describe_patient"]

#: How many generated patients :func:`~crs_rules.impact.compare_packs` evaluates by default (besides the scenarios).
DEFAULT_POPULATION = 12_000

#: The seed of the generated population: the same packs and size always give the same patients.
DEFAULT_SEED = 20_261_125

#: The moment every generated patient is assessed at; all their times are before it.
ASSESSED_AT = datetime(2026, 3, 11, 12, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Patient:
    """One patient both packs are evaluated on: a label (``scenario NAME`` or ``population #N``),
    the state, and the input it was built from (what ``crs-rules evaluate`` would read)."""

    label: str
    state: PatientState
    data: Mapping[str, Any] = dataclass_field(repr=False, compare=False)


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
    """Every condition of the pack's rules (:meth:`Protocol.conditions`), in file order."""
    return [condition for _, condition in protocol.conditions()]


class _Sweep:
    """The values the population is drawn from: wide ranges of every input, and the thresholds,
    dose bands, caps and intervals of both packs, each with values just around it."""

    def __init__(self, protocols: Sequence[Protocol]) -> None:
        found: list[Comparison] = [c for p in protocols for condition in _all_conditions(p) for c in comparisons(condition)]

        def thresholds(fact: str) -> list[float]:
            return sorted(set(numbers_compared(found, fact)))

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
        # A pack without thresholds for a field leaves its values drawn anywhere in the sweep's range.
        self.weights = _near(weights, (0.1, 1.0), 10.0, 150.0)
        self.temperatures = _near(thresholds("vitals.temperature_c"), (0.01, 0.05, 0.1, 0.5), 34.0, 42.0)
        self.flows = _near(thresholds("vitals.oxygen.flow_l_min"), (0.01, 0.1, 0.5, 1.0), 0.5, 20.0)
        self.ages = _near(thresholds("patient.age_years"), (0.1, 0.5), 0.1, 100.0)
        #: Who is a child (the first pack's pediatric definition): the age drawn fits the weight.
        self.child = next((p.pediatric for p in protocols if p.pediatric is not None), None)
        self.onset_days = _near(thresholds("crs.days_since_onset"), (1 / 24, 0.01), 0.05, 10.0)
        self.devices = field("vitals.oxygen.device").values
        #: The device that means no supplemental oxygen (the contract's ``x-none``).
        self.no_oxygen = field("vitals.oxygen.device").none
        # The numbers kept by path (fields without a drawing of their own): around the packs' thresholds.
        self.edges = {f.path: _near(thresholds(f.path), (0.1,), f.minimum if f.minimum is not None else -1e9,
                                    f.maximum if f.maximum is not None else 1e9)
                      for f in FIELDS if f.type == "number" and f.by_path}
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
                if not limits.is_empty():  # up to its course limit, else one past its window's (at least 2)
                    most = limits.max_doses_per_course or (limits.max_doses_in_window or 1) + 1
                    self.limited[drug.id] = max(self.limited.get(drug.id, 0), most)
                hours.update(h for h in (limits.min_interval_h, limits.window_h) if h is not None)
                for regimen in drug.regimens:
                    hours.update(h for h in (regimen.interval_h, regimen.up_to_every_h) if h is not None)
            for fact in {c.fact for c in found if c.family == "history" and c.name.endswith(".hours_since_last")}:
                hours.update(thresholds(fact))
        for protocol in protocols:
            for name in [d.id for d in protocol.drugs] + [m for c in protocol.drug_classes for m in c.members]:
                if name not in self.limited and name not in self.other_drugs:
                    self.other_drugs.append(name)
        self.spacings = sorted(hours)  # none: doses spaced anywhere in the sweep's range
        self.last_dose = _near(hours, (0.1,), 0.1, 200.0)
        self.orderable = sorted({*self.limited, *self.other_drugs})
        self.protocols = protocols
        # Derived once, not per patient (the draws are the same): the other drugs some pack doses,
        # the weights of each limited drug's number of doses as random.choices accumulates them,
        # and the usual doses by drug and weight as they are asked for.
        self.dosed_elsewhere = frozenset(d for d in self.other_drugs if any(p.drug(d) for p in protocols))
        self.dose_counts = {drug: (range(most + 1), *_accumulated((2 * most, *[3] * most)))
                            for drug, most in self.limited.items()}
        self._usual: dict[tuple[str, float], float | None] = {}

    def usual_dose(self, drug_id: str, weight_kg: float) -> float | None:
        """The first pack's usual dose of a drug for a weight (see :func:`_usual_dose`), once per
        drug and weight."""
        key = (drug_id, weight_kg)
        if key not in self._usual:
            self._usual[key] = _usual_dose(self.protocols[0], drug_id, weight_kg)
        return self._usual[key]


#: Stand-in vasopressor names. Only the names a pack singles out (``not_counting``, ``includes``)
#: matter to the rules, and those come from the packs; these give patients more than one to list.
_STAND_IN_VASOPRESSORS = ("vasopressor_a", "vasopressor_b", "vasopressor_c", "vasopressor_d")


def _pick(rng: random.Random, edges: Sequence[float], low: float, high: float, step: float, edge_share: float = 0.5) -> float:
    """A value at or around a threshold (share ``edge_share``), else anywhere in [low, high]."""
    if edges and rng.random() < edge_share:
        return rng.choice(edges)
    return _round(rng.uniform(low, high), step)


_MAYBE: Final = (True, False, None, "absent")
_T = TypeVar("_T")


@lru_cache(maxsize=64)
def _accumulated(weights: tuple[int, ...]) -> tuple[list[int], float]:
    """The cumulative weights and their total, as ``random.Random.choices`` derives them."""
    cumulative = list(itertools.accumulate(weights))
    return cumulative, cumulative[-1] + 0.0


def _weighted(rng: random.Random, population: Sequence[_T], cumulative: Sequence[int], total: float) -> _T:
    """``rng.choices(population, cum_weights=cumulative)[0]``, drawn the same way (one
    ``rng.random()``), with the cumulative weights and their ``total`` (as a float) worked out once."""
    return population[bisect.bisect(cumulative, rng.random() * total, 0, len(population) - 1)]


def _maybe(rng: random.Random, weights: tuple[int, int, int, int] = (35, 35, 15, 15)) -> bool | None | str:
    """True, False, None (unknown) or "absent" (the field left out)."""
    return _weighted(rng, _MAYBE, *_accumulated(weights))


def _at(hours_before: float) -> str:
    return _seconds_before(round(hours_before * 3600))


@lru_cache(maxsize=4096)
def _seconds_before(seconds: int) -> str:
    """The assessment time less ``seconds``, as written in an input (drawn times repeat: once each)."""
    return iso(ASSESSED_AT - timedelta(seconds=seconds))


@lru_cache(maxsize=256)
def _keys(path: str) -> tuple[tuple[str, ...], str]:
    """A field's path as the keys of the mappings that hold it, and its own key."""
    *holders, last = path.split(".")
    return tuple(holders), last


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at the field's path, its mappings made as needed; "absent" leaves it out."""
    if isinstance(value, str) and value == "absent":
        return
    holders, last = _keys(path)
    holder = data
    for key in holders:
        holder = holder.setdefault(key, {})
    holder[last] = value


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# --------------------------------------------------------------------------------------------
# Drawing one patient: each field of the table in turn, by its type, or by a drawing of its own
# where the packs' thresholds, doses and intervals, or the contract's relations, steer it
# --------------------------------------------------------------------------------------------

Draw = Callable[[random.Random, _Sweep, dict[str, Any]], None]

#: How often a true/false field is drawn true, false, null (unknown) or left out, where it is not
#: the default (35, 35, 15, 15): the generator's tuning, so that rarer states stay rarer.
_BOOLEAN_WEIGHTS: Final[Mapping[str, tuple[int, int, int, int]]] = {
    "therapy.car_t": (60, 20, 10, 10),
    "crs.improving": (30, 30, 30, 10),
    "crs.suspected_mas": (10, 60, 15, 15),
    "sepsis.septic_shock": (15, 55, 15, 15),
    "neuro.icans_signs": (15, 55, 15, 15),
}


def _weight_and_age(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
    """The weight (at the dose bands and caps), and an age: mostly one that fits the weight by the
    pack's pediatric definition (a child's under its pediatric weight, an adult's from it), and in a
    quarter of the patients the other one, since children above the pediatric weight and small adults
    are where the child-by-age reading and the weight bands meet."""
    weight = _pick(rng, sweep.weights, 10.0, 150.0, 0.1, 0.45)
    _set(data, "patient.weight_kg", weight)
    roll = rng.random()
    if roll < 0.1:
        return  # age unknown
    child = sweep.child
    if child is None:  # no pack says who is a child: any age
        age = float(rng.randint(0, 90))
    else:
        heavy = weight >= child.weight_below_kg_if_age_unknown
        adult = heavy if rng.random() >= 0.25 else not heavy
        if adult:
            age = float(rng.randint(math.ceil(child.age_below_years), 90))
        elif sweep.ages and roll < 0.4:  # children: the ages the packs single out, and any age
            age = rng.choice(sweep.ages)
        else:  # a child's age in half years, below the pack's pediatric age
            age = min(math.floor(rng.uniform(0.0, child.age_below_years) * 2) / 2, child.age_below_years - 0.5)
    _set(data, "patient.age_years", age)


def _onset(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
    """CRS onset, days before the assessment: at the packs' day thresholds, or anywhere."""
    if rng.random() < 0.8:
        days = rng.choice(sweep.onset_days) if sweep.onset_days and rng.random() < 0.4 else rng.uniform(1.0, 5.0)
        _set(data, "crs.onset_at", _at(days * 24))


def _temperature(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
    """The temperature, around the packs' thresholds, sometimes in °F (converted exactly by the contract)."""
    roll = rng.random()
    if roll < 0.85:
        _set(data, "vitals.temperature_c", _pick(rng, sweep.temperatures, 36.0, 41.0, 0.1))
    elif roll < 0.93:
        _set(data, "vitals.temperature_f", _round(_pick(rng, sweep.temperatures, 36.0, 41.0, 0.1) * 9 / 5 + 32, 0.1))


def _vasopressors(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
    """None to three vasopressors (listing any requires hypotension); else hypotension drawn,
    and when true the vasopressors stated as none or left unknown."""
    count = _weighted(rng, (0, 1, 2, 3), *_accumulated((60, 20, 13, 7)))
    vasopressors = rng.sample(sweep.vasopressors, min(count, len(sweep.vasopressors)))
    if vasopressors:
        _set(data, "vitals.vasopressors", vasopressors)
        _set(data, "vitals.hypotension", True)
        return
    _set(data, "vitals.hypotension", _maybe(rng))
    if _get(data, "vitals.hypotension") is True and rng.random() < 0.7:
        _set(data, "vitals.vasopressors", [])  # stated: none (absent leaves them unknown)


def _oxygen(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
    """A device (those the packs single out a quarter of the time) and its flow around the packs'
    thresholds; the device meaning none has no flow, or 0."""
    roll = rng.random()
    if roll < 0.8:
        device = rng.choice(sweep.singled_out if roll < 0.25 and sweep.singled_out else sweep.devices)
        if device == sweep.no_oxygen:
            oxygen = {"device": device, **({"flow_l_min": 0} if rng.random() < 0.3 else {})}
        else:
            oxygen = {"device": device, "flow_l_min": _pick(rng, sweep.flows, 0.5, 15.0, 0.5, 0.6)}
        _set(data, "vitals.oxygen", oxygen)


def _records(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
    """The medication record (courses of each limited drug spaced at and around its intervals;
    the other drugs given or not; sometimes not recorded) and a proposed order."""
    weight = data["patient"]["weight_kg"]
    medications: list[dict[str, Any]] = []
    for drug, _ in sorted(sweep.limited.items()):
        doses = _weighted(rng, *sweep.dose_counts[drug])  # weights 2 x most for none, 3 for each number
        last = _pick(rng, sweep.last_dose, 0.5, 72.0, 0.1)
        given = [last]
        for _ in range(doses - 1):
            given.append(given[-1] + _pick(rng, sweep.spacings, 4.0, 30.0, 0.5))
        for hours in given[:doses]:
            entry: dict[str, Any] = {"drug": drug, "given_at": _at(hours)}
            if rng.random() < 0.5:
                amount = sweep.usual_dose(drug, weight)
                if amount:
                    entry["dose_mg"] = amount
            medications.append(entry)
    for drug in sweep.other_drugs:
        if rng.random() < (0.2 if drug in sweep.dosed_elsewhere else 0.03):
            first = _pick(rng, sweep.last_dose, 0.5, 48.0, 0.5)
            times = [first] if rng.random() < 0.6 else [first, first + _pick(rng, sweep.spacings, 4.0, 24.0, 0.5)]
            medications.extend({"drug": drug, "given_at": _at(h)} for h in times)
    orders = [{"drug": rng.choice(sweep.orderable)}] if sweep.orderable and rng.random() < 0.1 else []
    if medications or rng.random() < 0.9:  # an empty record says nothing was given; absent: unknown
        data["medications"] = medications
    if orders:
        data["proposed_orders"] = orders


#: The fields drawn by a drawing of their own, at the first field each draws.
_DRAWS: Final[Mapping[str, Draw]] = {
    "patient.weight_kg": _weight_and_age,
    "crs.onset_at": _onset,
    "vitals.temperature_c": _temperature,
    "vitals.vasopressors": _vasopressors,
    "vitals.oxygen.device": _oxygen,
    "medications": _records,
}
#: The fields those drawings draw besides their first.
_DRAWN_WITH: Final = frozenset({"patient.age_years", "vitals.temperature_f", "vitals.hypotension",
                                "vitals.oxygen.flow_l_min", "proposed_orders"})
#: Drawn just after another field rather than at its place in the table, so that the seeded
#: population is the one earlier versions drew.
_DRAWN_AFTER: Final[Mapping[str, str]] = {"vitals.oxygen.device": "vitals.refractory_hypotension"}


def _draw_order() -> tuple[Field, ...]:
    """Every field drawn, in the table's order (but for :data:`_DRAWN_AFTER`)."""
    order = [f for f in FIELDS if f.path not in _DRAWN_WITH and f.path != "assessed_at" and "[]" not in f.path
             and f.path not in _DRAWN_AFTER]
    for path, after in _DRAWN_AFTER.items():
        order.insert(next(i for i, f in enumerate(order) if f.path == after) + 1, field(path))
    return tuple(order)


_DRAW_ORDER: Final = _draw_order()


def _field_drawer(entry: Field) -> Draw:
    """How a field with no drawing of its own is drawn, by its type: a true/false (one that requires
    another true only when that one is), a choice of its values, a list of some of its values (or of
    the packs' drug names), a number around the packs' thresholds within its range, a drug name, a
    time before the assessment. Lists of records need a drawing of their own. Worked out once per
    field; each patient's values are drawn by the function given."""
    path, kind = entry.path, entry.type
    if kind == "boolean":  # the most common kind: _maybe and _set written out
        requires = entry.requires
        cumulative, total = _accumulated(_BOOLEAN_WEIGHTS.get(path, (35, 35, 15, 15)))
        holders, last = _keys(path)

        def boolean(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
            if requires is None or _get(data, requires) is True:
                value = _MAYBE[bisect.bisect(cumulative, rng.random() * total, 0, 3)]
            else:
                value = rng.choice((False, None, "absent"))
            if value != "absent":
                holder = data
                for key in holders:
                    holder = holder.setdefault(key, {})
                holder[last] = value
        return boolean
    if kind == "list":
        values = list(entry.values)

        def listed(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
            if rng.random() < 0.08:
                names = values or sweep.orderable
                if names:
                    _set(data, path, rng.sample(names, rng.randint(1, max(1, len(names) - 1))))
        return listed
    if kind == "choice":
        choices = entry.values

        def choice(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
            if rng.random() < 0.85:
                _set(data, path, rng.choice(choices))
        return choice
    if kind == "number":
        above = entry.above
        low = entry.minimum if entry.minimum is not None else above if above is not None else 0.0
        high = entry.maximum if entry.maximum is not None else low + 100.0

        def number(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
            if rng.random() < 0.85:
                value = _pick(rng, sweep.edges.get(path, ()), low, high, 0.1)
                _set(data, path, value if above is None or value > above else high)
        return number
    if kind == "name":
        def name(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
            if sweep.orderable and rng.random() < 0.85:
                _set(data, path, rng.choice(sweep.orderable))
        return name
    if kind == "date-time":
        def date_time(rng: random.Random, sweep: _Sweep, data: dict[str, Any]) -> None:
            if rng.random() < 0.85:
                _set(data, path, _at(rng.uniform(0.5, 120.0)))
        return date_time
    return lambda rng, sweep, data: None


#: Each field drawn, in order: its drawing (its own, or by its type) and whether it takes the
#: generator of the fields kept by path.
_DRAW_PLAN: Final = tuple((_DRAWS[f.path], False) if f.path in _DRAWS else (_field_drawer(f), f.by_path)
                          for f in _DRAW_ORDER)

#: The assessment time as every generated input writes it.
_ASSESSED_AT_TEXT: Final = iso(ASSESSED_AT)


def _patient_data(rng: random.Random, by_path: random.Random, sweep: _Sweep) -> dict[str, Any]:
    """One valid patient input, drawn from the sweep field by field: the fields kept by path from
    their own generator (``by_path``), so that adding one leaves every other value drawn as before."""
    data: dict[str, Any] = {"assessed_at": _ASSESSED_AT_TEXT}
    for draw, own_generator in _DRAW_PLAN:
        draw(by_path if own_generator else rng, sweep, data)
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

    Drawn with ``random.Random(seed)`` from :class:`_Sweep`, field by field as the table of input
    fields lists them (:mod:`crs_rules.fields`): weights from 10 to 150 kg (children and adults, the
    age fitting the weight by the pack's pediatric definition) and at every dose band and cap of the
    packs; temperatures, oxygen flows, ages and days since onset around every threshold the packs
    compare them with; every oxygen device; none to
    three vasopressors (with and without any the pack counts specially); hypotension, refractory
    hypotension, improvement and the other flags true, false, unknown or absent; courses of each
    limited drug from none to its course limit, spaced exactly at and around its intervals and
    window; other drugs of the packs given or not. A field without an attribute of its own (kept
    by path) is drawn by its type, from a generator of its own (seeded from ``seed``): adding one
    to the contract leaves every other value of every patient as it was.
    """
    return list(population_stream(protocols, size, seed))


def population_stream(protocols: Sequence[Protocol], size: int = DEFAULT_POPULATION,
                      seed: int = DEFAULT_SEED) -> Iterator[tuple[str, dict[str, Any]]]:
    """The patients of :func:`population_inputs`, the same ones in the same order, drawn one at a
    time as they are asked for (the size is checked at once)."""
    if size < 0:
        raise ValueError(f"the population size must be 0 or more, not {size}")
    sweep = _Sweep(protocols)
    rng, by_path = random.Random(seed), random.Random(f"{seed} by path")
    return ((f"population #{index + 1}", _patient_data(rng, by_path, sweep)) for index in range(size))


def scenario_patients(protocols: Sequence[Protocol], notes: list[str]) -> list[Patient]:
    """The scenarios of both packs (once each)."""
    from .scenarios import Scenario, load_scenarios

    patients: list[Patient] = []
    seen: dict[str, PatientState] = {}
    loaded: list[tuple[Protocol, list[Scenario] | InvalidPackError]] = []
    for which, protocol in zip(("old", "new"), protocols):
        # The same files read with the same pack content give the same scenarios: read once.
        scenarios = next((found for other, found in loaded if _same_scenarios(other, protocol)), None)
        if scenarios is None:
            try:
                scenarios = load_scenarios(protocol.path, protocol)
            except InvalidPackError as error:
                scenarios = error
            loaded.append((protocol, scenarios))
        if isinstance(scenarios, InvalidPackError):
            notes.append(f"the scenarios of the {which} pack ({protocol.path}) were not used: "
                         f"{len(scenarios.problems)} problem(s); run crs-rules test {protocol.path}")
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


def _same_scenarios(one: Protocol, other: Protocol) -> bool:
    """Whether two packs loaded from the same folder have the same content and scenario files as read.
    The content is compared itself, not only its digest: a copy made with ``dataclasses.replace``
    keeps the digest and the files of the pack it was loaded from (a Protocol compares by identity,
    so field by field)."""
    return (one.path == other.path and one.digest == other.digest and one.files is not None
            and other.files is not None and one.files.scenarios == other.files.scenarios
            and all(getattr(one, f.name) == getattr(other, f.name) for f in fields(Protocol) if f.compare))
