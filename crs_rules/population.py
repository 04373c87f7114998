"""The second stage of ``crs-rules diff``: the patients both packs are evaluated on.

The scenarios of both packs and a deterministic, seeded population. The population knows no
protocol number: it sweeps wide ranges of every input, and around each threshold, dose band, dose
cap and dose interval it finds in *either* pack it adds values just below, at and just above, so a
changed threshold is always probed on both sides.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .conditions import comparisons
from .decision import iso
from .dosing import largest_allowed_mg
from .errors import InvalidPackError
from .facts import INPUT_FACTS
from .model import Comparison, Condition, Protocol
from .patient import PatientState

__all__ = ["DEFAULT_POPULATION", "DEFAULT_SEED", "ASSESSED_AT", "Patient", "population_inputs", "state_input",
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
    """Every condition of the pack's rules (:meth:`Protocol.conditions`), in file order."""
    return [condition for _, condition in protocol.conditions()]


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


def scenario_patients(protocols: Sequence[Protocol], notes: list[str]) -> list[Patient]:
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
