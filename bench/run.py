"""Benchmark of crs-rules on the shipped pack: load, compile, latency, throughput and memory.

Run it with ``make bench`` (or ``.venv/bin/python bench/run.py``); ``--quick`` makes a small run
that takes a few seconds, ``--json`` prints the figures as JSON instead of a table. See
bench/README.md for what each figure means.

What is measured, in order:

1. Pack load + validate time (``load_protocol``) and compile time (``compile_protocol``): median
   of several fresh loads. Each compile creates an engine ruleset that is never freed, so the
   number of compiles is bounded (``--compiles``, 20 by default).
2. Grade agreement (a guard, before any evaluation is timed): every patient of the mix is
   evaluated by the engine and by the plain-Python reference grading below; the grade and its
   component findings must agree for every patient, else the run stops with exit status 1 (a
   benchmark that measures wrong answers is worthless).
3. Latency of one evaluation (median and p99) and evaluations per second, on one core, over a
   fixed deterministic mix of patients: ``evaluate(state, protocol)`` with the states parsed
   beforehand, then end to end from the raw mapping (``parse_patient`` included), then the
   reference grading alone; and the ratio engine / reference. Beside them the engine's own floor:
   each patient's calls to durable_rules' C module, recorded from a real evaluation and made again
   with nothing in between (``bench/floor.py``), checked against the evaluation's replies first;
   what each kind of fact costs it, what a session costs by itself, and the same calls made in one
   session kept for every patient (emptied by retraction) instead of one session each. For context,
   ZEN's task done by this engine: the pack without its action rules, alerts and doses (its grading
   alone, checked to grade every patient as the whole pack), end to end and at its floor.
   Then batch evaluation: ``evaluate_many`` over the mappings, decisions per second.
4. Resident memory (RSS) before and after ``--evaluations`` end-to-end evaluations, and the growth.

Timing: ``time.perf_counter_ns`` around each call for the latency (the timer's own cost, reported
as ``timer_overhead_ns``, is included and not subtracted); evaluations per second come from a
separate loop timed as a whole, without a timer call per evaluation, by the wall clock (the
figure the target is judged on) and by the process's CPU time (``per_cpu_second``, which time
taken by other processes on a shared machine does not lower). Every phase is warmed up
first (``--warmup`` passes over the mix).

Garbage collector: it stays enabled with its default thresholds, as in a long-running service,
so a collection that falls inside a timed evaluation counts toward the p99. ``gc.collect()`` runs
before each phase so garbage left by the previous phase is not charged to it. The process is
pinned to one CPU where the platform allows it (``--no-pin`` to leave it free).

Exit status: 0 when the run completes (targets met or not: the table and ``targets`` in the JSON
say which), 1 when the grade-agreement guard fails or the mix lost its coverage, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from crs_rules import evaluate, evaluate_many, load_protocol, parse_patient
from crs_rules.compilation import compile_protocol
from crs_rules.impact import compare_packs
from crs_rules.model import Protocol
from crs_rules.patient import PatientState

sys.path.insert(0, str(Path(__file__).resolve().parent))
import floor  # noqa: E402  (bench/floor.py: the engine's own floor, replayed)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: The ASTCT CRS grading as a GoRules ZEN decision graph (JDM), the side-by-side comparison.
ZEN_GRAPH = Path(__file__).resolve().parent / "zen" / "crs-grading.json"

SEED = 20260310
VARIANTS_PER_GRADE = 30
MIB = 1024 * 1024

# Targets (for evaluate() on a parsed state; memory for the end-to-end run).
TARGET_P50_MS = 1.0
TARGET_P99_MS = 3.0
TARGET_PER_SECOND = 1000.0
#: "Memory flat": RSS grows by at most this much over the whole memory run (100,000 evaluations
#: by default, so at most about 10 bytes per evaluation). A leak of one small object per
#: evaluation (a fact, a session record) is well above it.
TARGET_GROWTH_MIB = 1.0

# Targets of the side-by-side comparison (issue 13): the whole decision against ZEN's grading alone.
TARGET_ZEN_P50_RATIO = 2.0       # crs-rules p50 at most 2x ZEN's grading-only p50 (aim: 1x)
TARGET_ZEN_P50_RATIO_AIM = 1.0
TARGET_P99_OVER_P50 = 3.0        # the tail: p99 at most 3x the p50
TARGET_GROWTH_BYTES = 5_000_000  # RSS growth under 5 MB over 10^5 evaluations
TARGET_BATCH_PER_SECOND = 5000.0  # decisions per second on one core
TARGET_DIFF_SECONDS = 5.0        # crs-rules diff over the default population

FULL = {"evaluations": 100_000, "latency_evaluations": 20_000, "loads": 20, "compiles": 20, "warmup": 2}
QUICK = {"evaluations": 300, "latency_evaluations": 150, "loads": 3, "compiles": 3, "warmup": 1}
#: Generated patients of the diff in a quick run (a full run uses the diff's own default, 12,000).
QUICK_DIFF_POPULATION = 40


def load_zen() -> Any | None:
    """The ``zen`` module of ``zen-engine`` (the ``[bench]`` extra), or None when not installed."""
    try:
        metadata.version("zen-engine")
        module = importlib.import_module("zen")
    except (metadata.PackageNotFoundError, ImportError):
        return None
    return module if hasattr(module, "ZenEngine") else None  # not a leftover folder of an uninstall


# --------------------------------------------------------------------------------------------
# The reference: the grading rules of rules/grading.yaml, written in plain Python.
# --------------------------------------------------------------------------------------------

#: Drugs whose administration masks fever (drug classes anticytokine and corticosteroid).
MASKING_DRUGS = frozenset({"tocilizumab", "siltuximab", "anakinra", "acetaminophen", "paracetamol", "ibuprofen",
                           "dexamethasone", "methylprednisolone", "hydrocortisone", "prednisone", "prednisolone"})
POSITIVE_PRESSURE = frozenset({"cpap", "bipap", "mechanical_ventilation"})
HIGH_FLOW = frozenset({"high_flow_nasal_cannula", "face_mask", "non_rebreather", "venturi"})
LOW_FLOW = frozenset({"nasal_cannula", "blow_by"})
FEVER_C = 38.0
LOW_FLOW_MAX_L_MIN = 6.0


@dataclass(frozen=True)
class Grading:
    """The grade and the findings it is made of."""

    crs_grade: int
    fever: bool
    fever_not_required: bool
    hypotension_grade: int
    hypoxia_grade: int


def reference_grading(state: PatientState) -> Grading:
    """CRS grade by the ASTCT grading as the pack encodes it, without the engine.

    Fever: temperature at or above 38 °C; fever is not required (it may be masked) after
    antipyretic, anticytokine or corticosteroid therapy given at or after the CRS onset. Hypotension: none 0, without vasopressors 2, one
    vasopressor 3, multiple vasopressors not counting vasopressin 4. Hypoxia: blow-by or nasal
    cannula at most 6 L/min 2; nasal cannula above 6 L/min, high-flow nasal cannula, face mask,
    non-rebreather or venturi 3; CPAP, BiPAP or mechanical ventilation 4. The grade is the more
    severe of the two, given fever (or fever masked); fever alone is grade 1; otherwise 0.
    """
    fever = state.temperature_c is not None and state.temperature_c >= FEVER_C
    onset = state.crs_onset_at
    masked = state.antipyretic_or_anticytokine is True or any(
        m.drug in MASKING_DRUGS and onset is not None and m.given_at >= onset for m in state.medications or ())
    pressors = state.vasopressors or ()
    if sum(1 for name in pressors if name != "vasopressin") >= 2:
        hypotension = 4
    elif pressors:
        hypotension = 3
    elif state.hypotension is True:
        hypotension = 2
    else:
        hypotension = 0
    device = state.oxygen_device
    if device in POSITIVE_PRESSURE:
        hypoxia = 4
    elif device in HIGH_FLOW or (device == "nasal_cannula" and (state.oxygen_flow_l_min or 0.0) > LOW_FLOW_MAX_L_MIN):
        hypoxia = 3
    elif device in LOW_FLOW:
        hypoxia = 2
    else:
        hypoxia = 0
    cardiorespiratory = max(hypotension, hypoxia)
    if fever:
        grade = cardiorespiratory or 1
    elif masked:
        grade = cardiorespiratory
    else:
        grade = 0
    return Grading(grade, fever, masked, hypotension, hypoxia)


def engine_grading(state: PatientState, protocol: Protocol) -> Grading:
    decision = evaluate(state, protocol)
    findings = dict(decision.findings)
    # The mix records every grade-deciding input: a grade the data leaves open is a failure here.
    grade, hypotension, hypoxia = decision.crs_grade, findings["hypotension_grade"], findings["hypoxia_grade"]
    if grade is None or hypotension is None or hypoxia is None:
        raise SystemExit(f"the benchmark mix left a grade open ({decision.grade_status}): {decision.missing}")
    return Grading(grade, bool(findings["fever"]), bool(findings["fever_not_required"]), int(hypotension), int(hypoxia))


def grading_only(protocol: Protocol) -> Protocol:
    """The pack with its action rules, alerts and drug doses left out: its grading alone, the task
    ZEN's graph does. Only for the context rows of the benchmark (ZEN's task done by this engine);
    the targets are judged on the whole decision."""
    return replace(protocol, action_rules=(), alerts=(), drugs=())


# --------------------------------------------------------------------------------------------
# GoRules ZEN: the same grading as a decision graph (bench/zen/crs-grading.json)
# --------------------------------------------------------------------------------------------


def zen_context(state: PatientState) -> dict[str, Any]:
    """The inputs of the ZEN graph, from a parsed state: the grading's inputs only, times as
    seconds since the epoch (ZEN compares them as numbers)."""
    onset = state.crs_onset_at
    return {
        "temperature_c": state.temperature_c,
        "antipyretic_or_anticytokine": state.antipyretic_or_anticytokine,
        "crs_onset_at": None if onset is None else onset.timestamp(),
        "medications": None if state.medications is None else [
            {"drug": m.drug, "given_at": m.given_at.timestamp()} for m in state.medications],
        "hypotension": state.hypotension,
        "vasopressors": None if state.vasopressors is None else list(state.vasopressors),
        "oxygen_device": state.oxygen_device,
        "oxygen_flow_l_min": state.oxygen_flow_l_min,
    }


class ZenGrading:
    """The ZEN decision of ``bench/zen/crs-grading.json``, created once, evaluated per patient."""

    def __init__(self, module: Any, graph: Path = ZEN_GRAPH) -> None:
        self.version = metadata.version("zen-engine")
        self.engine = module.ZenEngine()
        self.decision = self.engine.create_decision(graph.read_text(encoding="utf-8"))

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        return self.decision.evaluate(context)

    def grading(self, state: PatientState) -> Grading:
        result = self.evaluate(zen_context(state))["result"]
        return Grading(int(result["crs_grade"]), bool(result["fever"]), bool(result["fever_not_required"]),
                       int(result["hypotension_grade"]), int(result["hypoxia_grade"]))


# --------------------------------------------------------------------------------------------
# The mix of patients
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    name: str
    data: Mapping[str, Any]
    state: PatientState
    child: bool
    history_at_limit: bool


# Signs, each with the component grade it calls for; the generator uses the levels only to
# spread the mix over grades 0-4 (the guard, not these labels, checks the answers).
# Every patient of the mix records what decides the grade (pack 2.0 reads an absent input as
# unknown, and an unknown grade is not the grading this benchmark measures).
TEMPERATURES: list[tuple[dict[str, Any], bool]] = [
    ({"temperature_c": 36.8}, False),
    ({"temperature_c": 37.9}, False),
    ({"temperature_c": 37.99}, False),
    ({"temperature_f": 100.3}, False),
    ({"temperature_c": 38.0}, True),      # at the fever threshold
    ({"temperature_f": 100.4}, True),     # exactly 38.0 °C
    ({"temperature_c": 38.01}, True),
    ({"temperature_c": 39.4}, True),
    ({"temperature_f": 104.9}, True),
]
HYPOTENSION: list[tuple[dict[str, Any], int]] = [
    ({"hypotension": False}, 0),
    ({"hypotension": True, "vasopressors": []}, 2),
    ({"hypotension": True, "vasopressors": ["norepinephrine"]}, 3),
    ({"hypotension": True, "vasopressors": ["vasopressin"]}, 3),
    ({"hypotension": True, "vasopressors": ["norepinephrine", "vasopressin"]}, 3),  # vasopressin not counted
    ({"hypotension": True, "vasopressors": ["phenylephrine", "phenylephrine"]}, 3),  # repeated: one
    ({"hypotension": True, "vasopressors": ["norepinephrine", "epinephrine"], "refractory_hypotension": True}, 4),
    ({"hypotension": True, "vasopressors": ["epinephrine", "norepinephrine", "vasopressin"]}, 4),
]
OXYGEN: list[tuple[dict[str, Any] | None, int]] = [
    ({"device": "room_air"}, 0),
    ({"device": "room_air", "flow_l_min": 0}, 0),
    ({"device": "blow_by"}, 2),
    ({"device": "nasal_cannula", "flow_l_min": 2}, 2),
    ({"device": "nasal_cannula", "flow_l_min": 6}, 2),      # at the low-flow limit
    ({"device": "nasal_cannula", "flow_l_min": 6.01}, 3),   # just above it
    ({"device": "nasal_cannula", "flow_l_min": 15}, 3),
    ({"device": "high_flow_nasal_cannula", "flow_l_min": 40}, 3),
    ({"device": "face_mask", "flow_l_min": 10}, 3),
    ({"device": "non_rebreather", "flow_l_min": 15}, 3),
    ({"device": "venturi"}, 3),
    ({"device": "cpap"}, 4),
    ({"device": "bipap"}, 4),
    ({"device": "mechanical_ventilation"}, 4),
]
# Medication histories, as (drug, hours before the assessment); the flag marks histories at a
# dosing limit of dosing.yaml (tocilizumab: 8 h interval, 3 doses in 24 h, 4 per course;
# dexamethasone every 6 h; methylprednisolone every 12 h).
HISTORIES: list[tuple[list[tuple[str, float]], bool]] = [
    ([], False),
    ([("tocilizumab", 30)], False),
    ([("tocilizumab", 8)], True),                                   # exactly the minimum interval
    ([("tocilizumab", 7.99)], True),                                # just inside it
    ([("tocilizumab", 20), ("tocilizumab", 12), ("tocilizumab", 8)], True),  # 3 in 24 h
    ([("tocilizumab", 24), ("tocilizumab", 16), ("tocilizumab", 8)], True),  # oldest exactly 24 h ago
    ([("tocilizumab", 60), ("tocilizumab", 44), ("tocilizumab", 28), ("tocilizumab", 12)], True),  # 4 per course
    ([("tocilizumab", 14), ("dexamethasone", 6)], True),            # dexamethasone interval
    ([("tocilizumab", 26), ("methylprednisolone", 12)], True),      # methylprednisolone interval
    ([("hydrocortisone", 10)], False),                              # a corticosteroid the pack does not dose
]
#: How often each history is drawn when any will do: most patients have none.
HISTORY_WEIGHTS = [8, 2, 1, 1, 1, 1, 1, 1, 1, 1]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def _variant(rng: random.Random, index: int) -> tuple[dict[str, Any], bool, bool]:
    """One patient aimed at grade ``index % 5``: (raw data, child, history at a limit)."""
    grade = index % 5
    fevers = [t for t in TEMPERATURES if t[1]]
    no_fevers = [t for t in TEMPERATURES if not t[1]]
    masking = [h for h in HISTORIES if h[0]]

    def any_history() -> tuple[list[tuple[str, float]], bool]:
        return rng.choices(HISTORIES, weights=HISTORY_WEIGHTS)[0]

    masked_flag: bool | None
    if grade == 0 and index % 10 == 0:  # no fever and nothing masking it: any signs
        temperature = rng.choice(no_fevers)[0]
        hypotension = rng.choice(HYPOTENSION)[0]
        oxygen = rng.choice(OXYGEN)[0]
        masked_flag, history = rng.choice([False, None]), HISTORIES[0]
    elif grade == 0:  # no fever, fever possibly masked, no hypotension or hypoxia
        temperature = rng.choice(no_fevers)[0]
        hypotension = rng.choice([h for h in HYPOTENSION if h[1] == 0])[0]
        oxygen = rng.choice([o for o in OXYGEN if o[1] == 0])[0]
        masked_flag, history = rng.choice([True, False, None]), any_history()
    elif grade == 1:
        temperature = rng.choice(fevers)[0]
        hypotension = rng.choice([h for h in HYPOTENSION if h[1] == 0])[0]
        oxygen = rng.choice([o for o in OXYGEN if o[1] == 0])[0]
        masked_flag, history = rng.choice([True, False, None]), any_history()
    else:
        # One sign at the grade, the other at most the grade.
        if rng.random() < 0.5:
            hypotension = rng.choice([h for h in HYPOTENSION if h[1] == grade])[0]
            oxygen = rng.choice([o for o in OXYGEN if o[1] <= grade])[0]
        else:
            hypotension = rng.choice([h for h in HYPOTENSION if h[1] <= grade])[0]
            oxygen = rng.choice([o for o in OXYGEN if o[1] == grade])[0]
        if rng.random() < 0.6:
            temperature = rng.choice(fevers)[0]
            masked_flag, history = rng.choice([True, False, None]), any_history()
        else:  # no fever: masked by the flag or by the medication history
            temperature = rng.choice(no_fevers)[0]
            if rng.random() < 0.5:
                masked_flag, history = True, any_history()
            else:
                masked_flag, history = rng.choice([False, None]), rng.choice(masking)

    assessed_at = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc) + timedelta(days=rng.randrange(60),
                                                                                 minutes=rng.randrange(0, 1440, 5))
    child = index % 4 == 0
    if child:
        weight: float = [29.9, 24.3, 12.0][index % 3] if index % 12 < 3 else round(rng.uniform(8, 29.9), 1)
        age: float = round(rng.uniform(1, 12), 1)
    else:
        weight = 30.0 if index % 25 == 1 else round(rng.uniform(45, 140), 1)  # 30 kg: the band boundary
        age = rng.randrange(18, 86)
    patient: dict[str, Any] = {"weight_kg": weight, "age_years": age}
    for key in ("neutropenic", "significant_comorbidities"):
        value = rng.choice([True, False, None, "absent"])
        if value != "absent":
            patient[key] = value
    crs: dict[str, Any] = {"onset_at": _iso(assessed_at - timedelta(hours=rng.choice([2, 20, 47.5, 72, 73, 100])))}
    if masked_flag is not None or rng.random() < 0.5:
        crs["antipyretic_or_anticytokine"] = masked_flag
    crs["improving"] = rng.choice([True, False, None])
    if rng.random() < 0.3:
        crs["suspected_mas"] = rng.choice([True, False])
    vitals: dict[str, Any] = {**temperature, **hypotension}
    if oxygen is not None:
        vitals["oxygen"] = dict(oxygen)
    data: dict[str, Any] = {
        "assessed_at": _iso(assessed_at),
        "patient": patient,
        "therapy": {"car_t": True},
        "crs": crs,
        "vitals": vitals,
    }
    if rng.random() < 0.25:
        data["sepsis"] = {"septic_shock": rng.choice([True, False]), "improving": rng.choice([True, False, None])}
    if rng.random() < 0.3:
        data["neuro"] = {"icans_signs": rng.choice([True, False])}
    doses, at_limit = history
    data["medications"] = [  # always given: an empty record says nothing was given
        {"drug": drug, "given_at": _iso(assessed_at - timedelta(hours=hours)),
         **({"dose_mg": 10} if drug == "dexamethasone" else {})}
        for drug, hours in doses
    ]
    if rng.random() < 0.15:
        data["proposed_orders"] = [{"drug": rng.choice(["sargramostim", "tocilizumab"])}]
    return data, child, at_limit


def build_mix(seed: int = SEED, variants_per_grade: int = VARIANTS_PER_GRADE) -> list[Patient]:
    """The examples, then seeded variants aimed at each grade 0-4 in turn. Deterministic."""
    mix = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        state = parse_patient(data, path.name)
        if state.car_t is not True or state.temperature_c is None:
            continue  # the examples of an indeterminate or not-applicable grade: no grading to time
        history_at_limit = path.stem in ("at-24h-limit", "grade4-refractory")
        mix.append(Patient(path.stem, data, state, state.weight_kg < 30, history_at_limit))
    rng = random.Random(seed)
    for index in range(5 * variants_per_grade):
        data, child, at_limit = _variant(rng, index)
        mix.append(Patient(f"variant-{index:03d}", data, parse_patient(data, f"variant-{index:03d}"), child, at_limit))
    return mix


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def check_agreement(protocol: Protocol, mix: Sequence[Patient],
                    reference: Callable[[PatientState], Grading] = reference_grading,
                    zen: ZenGrading | None = None) -> list[str]:
    """Every disagreement between the engine, ZEN (when given) and the reference, in words
    (empty: all agree)."""
    wrong = []
    for patient in mix:
        engine, expected = engine_grading(patient.state, protocol), reference(patient.state)
        if engine != expected:
            wrong.append(f"{patient.name}: engine {engine}, reference {expected}")
        if zen is not None:
            other = zen.grading(patient.state)
            if other != expected or other != engine:
                wrong.append(f"{patient.name}: ZEN {other}, reference {expected}, engine {engine}")
    return wrong


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def rss_bytes() -> int:
    """Current resident set size; the peak (ru_maxrss) where /proc is not available."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def timer_overhead_ns(rounds: int = 10_000) -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        start = clock()
        samples.append(clock() - start)
    return int(statistics.median(samples))


def timed_runs(make: Callable[[], Any], runs: int) -> list[float]:
    """Milliseconds of ``runs`` fresh calls."""
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter_ns()
        make()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def latency(call: Callable[[Any], object], inputs: Sequence[Any], evaluations: int, warmup: int) -> dict[str, Any]:
    """Per-call latency over ``evaluations`` calls cycling through ``inputs``, then throughput
    from a second loop of as many calls timed as a whole."""
    for _ in range(warmup):
        for item in inputs:
            call(item)
    count = len(inputs)
    clock = time.perf_counter_ns
    samples = [0] * evaluations
    gc.collect()
    for index in range(evaluations):
        item = inputs[index % count]
        start = clock()
        call(item)
        samples[index] = clock() - start
    gc.collect()
    cpu_start, start = time.process_time_ns(), clock()
    for index in range(evaluations):
        call(inputs[index % count])
    elapsed, cpu = clock() - start, time.process_time_ns() - cpu_start
    ordered = sorted(samples)
    return {
        "evaluations": evaluations,
        "p50_ms": statistics.median(ordered) / 1e6,
        "p99_ms": percentile(ordered, 99) / 1e6,
        "mean_ms": statistics.fmean(ordered) / 1e6,
        "max_ms": ordered[-1] / 1e6,
        "per_second": evaluations / (elapsed / 1e9),
        "per_cpu_second": evaluations / (max(cpu, 1) / 1e9),
    }


def memory(call: Callable[[Any], object], inputs: Sequence[Any], evaluations: int, warmup: int,
           workload: str) -> dict[str, Any]:
    """RSS before and after ``evaluations`` calls, sampled ten times on the way."""
    for _ in range(max(warmup, 1)):
        for item in inputs:
            call(item)
    count = len(inputs)
    step = max(1, evaluations // 10)
    gc.collect()
    before = rss_bytes()
    samples = []
    halfway = before
    start = time.perf_counter_ns()
    for index in range(evaluations):
        call(inputs[index % count])
        if (index + 1) % step == 0:
            samples.append(rss_bytes())
        if index + 1 == evaluations // 2:
            halfway = rss_bytes()
    elapsed = time.perf_counter_ns() - start
    gc.collect()
    after = rss_bytes()
    second_half = evaluations - evaluations // 2
    return {
        "evaluations": evaluations,
        "workload": workload,
        "rss_before_mib": before / MIB,
        "rss_after_mib": after / MIB,
        "growth_mib": (after - before) / MIB,
        # RSS can fall during the run (memory of earlier phases given back to the system), which
        # makes after - before an underestimate; from the lowest point seen is an upper bound.
        "growth_from_lowest_mib": (after - min(before, *samples)) / MIB if samples else (after - before) / MIB,
        "growth_bytes_per_evaluation": (after - before) / evaluations,
        "second_half_growth_bytes_per_evaluation": (after - halfway) / second_half,
        "samples_mib": [s / MIB for s in samples],
        "per_second": evaluations / (elapsed / 1e9),
    }


def batch(protocol: Protocol, inputs: Sequence[Any], evaluations: int, warmup: int) -> dict[str, Any]:
    """Decisions per second of ``evaluate_many`` over the raw mappings of the mix, in passes of the
    whole mix (at least ``evaluations`` decisions), timed as a whole by the wall clock and the CPU."""
    for _ in range(warmup):
        for _ in evaluate_many(inputs, protocol):
            pass
    passes = max(1, -(-evaluations // len(inputs)))
    decisions = 0
    gc.collect()
    cpu_start, start = time.process_time_ns(), time.perf_counter_ns()
    for _ in range(passes):
        for _ in evaluate_many(inputs, protocol):
            decisions += 1
    elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu_start
    return {"decisions": decisions, "passes": passes, "per_second": decisions / (elapsed / 1e9),
            "per_cpu_second": decisions / (max(cpu, 1) / 1e9)}


def diff_wall_time(population: int | None, cpus: set[int] | None) -> dict[str, Any]:
    """Wall time of what ``crs-rules diff rules rules`` does: both packs loaded, then
    ``compare_packs`` over the population (the default one when ``population`` is None), in its
    default worker processes. Run on the CPUs the process had before it was pinned (``cpus``), as
    a user's diff would; the process is pinned again afterwards."""
    pinned = os.sched_getaffinity(0) if cpus is not None else None
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    try:
        gc.collect()
        start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
        old, new = load_protocol(), load_protocol()
        report = compare_packs(old, new, population)
        elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu_start
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
    available = len(cpus) if cpus is not None else (os.cpu_count() or 1)
    return {
        "population": report.population_size,
        "generated": report.generated,
        "scenarios": report.scenarios,
        "default_population": population is None,
        "workers": min(available, 8),
        "wall_seconds": elapsed / 1e9,
        "report_elapsed_seconds": report.elapsed_seconds,
        "parent_cpu_seconds": cpu / 1e9,
        "differing": len(report.differing),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def pin_to_one_cpu() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return cpu


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    engine = results["latency"]["engine_parsed"]
    growth = results["memory"]["growth_mib"]
    return [
        {"name": "p50", "target": f"<= {TARGET_P50_MS:g} ms", "value": engine["p50_ms"], "unit": "ms",
         "met": engine["p50_ms"] <= TARGET_P50_MS},
        {"name": "p99", "target": f"<= {TARGET_P99_MS:g} ms", "value": engine["p99_ms"], "unit": "ms",
         "met": engine["p99_ms"] <= TARGET_P99_MS},
        {"name": "throughput", "target": f">= {TARGET_PER_SECOND:,.0f} evaluations/s", "value": engine["per_second"],
         "unit": "evaluations/s", "met": engine["per_second"] >= TARGET_PER_SECOND},
        {"name": "memory flat", "target": f"growth <= {TARGET_GROWTH_MIB:g} MiB over the memory run",
         "value": growth, "unit": "MiB", "met": growth <= TARGET_GROWTH_MIB},
    ]


def side_by_side_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 13: the whole decision from a mapping (``evaluate(mapping)``, input
    checking included), batch evaluation by ``evaluate_many``. The ZEN target is left out when ZEN
    was not run."""
    engine = results["latency"]["engine_end_to_end"]
    batched = results["batch"]
    mem = results["memory"]
    diff = results["diff"]
    growth = max(mem["growth_mib"], mem["growth_from_lowest_mib"]) * MIB
    found = []
    if "zen" in results["latency"]:
        ratio = results["ratios"]["engine_end_to_end_p50_to_zen_p50"]
        found.append({"name": "p50 vs ZEN", "target": f"<= {TARGET_ZEN_P50_RATIO:g}x ZEN grading p50 "
                      f"(aim {TARGET_ZEN_P50_RATIO_AIM:g}x)", "value": ratio, "unit": "x",
                      "met": ratio <= TARGET_ZEN_P50_RATIO})
    tail = engine["p99_ms"] / engine["p50_ms"]
    found += [
        {"name": "p99/p50", "target": f"p99 <= {TARGET_P99_OVER_P50:g}x p50", "value": tail, "unit": "x",
         "met": tail <= TARGET_P99_OVER_P50},
        {"name": "RSS growth", "target": f"< {TARGET_GROWTH_BYTES / 1e6:g} MB over 10^5 evaluations",
         "value": growth / 1e6, "unit": "MB", "met": growth < TARGET_GROWTH_BYTES,
         "evaluations": mem["evaluations"]},
        {"name": "batch", "target": f">= {TARGET_BATCH_PER_SECOND:,.0f} decisions/s on one core",
         "value": batched["per_second"], "unit": "evaluations/s",
         "met": batched["per_second"] >= TARGET_BATCH_PER_SECOND},
        {"name": "diff", "target": f"< {TARGET_DIFF_SECONDS:g} s over the default population",
         "value": diff["wall_seconds"], "unit": "s", "met": diff["wall_seconds"] < TARGET_DIFF_SECONDS,
         "population": diff["population"]},
    ]
    return found


def _shown(target: dict[str, Any]) -> str:
    value = target["value"]
    return {"ms": f"{value:.3f} ms", "MiB": f"{value:+.2f} MiB", "MB": f"{value:+.2f} MB", "x": f"{value:.2f}x",
            "s": f"{value:.2f} s"}.get(target["unit"], f"{value:,.0f}/s")


def render(results: dict[str, Any]) -> str:
    env, pack, mix = results["environment"], results["pack"], results["mix"]
    zen = results["zen"]
    busy = (env["load_average_start"] or [0.0])[0] > 0.5  # before this run's own load
    lat = results["latency"]
    mem = results["memory"]
    ratio = results["ratio_engine_to_reference"]
    grades = ", ".join(f"grade {g}: {n}" for g, n in sorted(mix["by_grade"].items()))
    pinned = f"pinned to CPU {env['pinned_cpu']}" if env["pinned_cpu"] is not None else "not pinned"
    lines = [
        f"crs-rules benchmark{' (quick: figures indicative only)' if results['quick'] else ''}",
        f"  pack {pack['id']} {pack['version']} ({pack['digest'][:19]}...)",
        f"  Python {env['python']}, durable_rules {env['durable_rules']}, {env['cpus']} CPUs, {pinned}, "
        f"gc enabled {env['gc_threshold']}",
        f"  mix: {mix['patients']} patients ({mix['examples']} examples + {mix['variants']} variants, seed "
        f"{mix['seed']}); {grades}; {mix['children_under_30kg']} under 30 kg; "
        f"{mix['histories_at_limits']} with a history at a dosing limit",
        f"  grade agreement: engine = reference{' = ZEN' if zen else ''} for {results['grade_agreement']['agreed']} of "
        f"{results['grade_agreement']['patients']} patients",
        f"  load average (1, 5, 15 min) {env['load_average_start']} at the start, {env['load_average_end']} at the "
        f"end (this run included), on {env['cpus']} CPUs" + (": other processes competed for the CPU, timings are noisy"
                                                             if busy else ""),
        (f"  ZEN: zen-engine {zen['version']}, graph {zen['graph']}" if zen else
         f"  ZEN: {results['zen_skipped']}"),
        "",
        f"  pack load + validate   median {results['load_ms']['median']:8.2f} ms   "
        f"(first {results['load_ms']['first']:.2f} ms; {results['load_ms']['runs']} loads)",
        f"  compile                median {results['compile_ms']['median']:8.2f} ms   "
        f"({results['compile_ms']['runs']} compiles)",
        "",
        f"  {'latency, one core':<40}{'p50':>12}{'p99':>12}{'mean':>12}{'eval/s':>12}",
    ]
    rows = [
        ("evaluate(parsed state)", lat["engine_parsed"]),
        ("evaluate(mapping), parse included", lat["engine_end_to_end"]),
        ("engine floor (its C calls replayed)", lat["engine_floor"]),
        ("grading only: evaluate(mapping)", lat["grading_end_to_end"]),
        ("grading only: engine floor", lat["grading_floor"]),
        ("reference grading (plain Python)", lat["reference"]),
    ]
    if "zen" in lat:
        rows.append(("ZEN grading (JDM graph)", lat["zen"]))
    for label, row in rows:
        lines.append(f"  {label:<40}{row['p50_ms']:>9.4f} ms{row['p99_ms']:>9.4f} ms{row['mean_ms']:>9.4f} ms"
                     f"{row['per_second']:>12,.0f}")
    lines.append(f"  {'engine / reference':<40}{ratio['p50']:>11,.0f}x{ratio['p99']:>11,.0f}x{'':>12}"
                 f"{ratio['throughput']:>11,.0f}x")
    ratios = results["ratios"]
    if "zen" in lat:
        lines.append(f"  {'evaluate(parsed state) / ZEN':<40}{ratios['engine_parsed_p50_to_zen_p50']:>11.1f}x"
                     f"{ratios['engine_parsed_p99_to_zen_p99']:>11.1f}x{'':>12}"
                     f"{ratios['zen_throughput_to_engine_parsed']:>11.1f}x")
        lines.append(f"  {'evaluate(mapping) / ZEN':<40}{ratios['engine_end_to_end_p50_to_zen_p50']:>11.1f}x"
                     f"{ratios['engine_end_to_end_p99_to_zen_p99']:>11.1f}x{'':>12}"
                     f"{ratios['zen_throughput_to_engine_end_to_end']:>11.1f}x")
        lines.append(f"  {'engine floor / ZEN':<40}{ratios['engine_floor_p50_to_zen_p50']:>11.1f}x"
                     f"{ratios['engine_floor_p99_to_zen_p99']:>11.1f}x{'':>12}"
                     f"{ratios['zen_throughput_to_engine_floor']:>11.1f}x")
        for row, label in (("grading_end_to_end", "grading only: evaluate(mapping) / ZEN"),
                           ("grading_floor", "grading only: engine floor / ZEN")):
            lines.append(f"  {label:<40}{ratios[f'{row}_p50_to_zen_p50']:>11.1f}x"
                         f"{ratios[f'{row}_p99_to_zen_p99']:>11.1f}x{'':>12}"
                         f"{ratios[f'zen_throughput_to_{row}']:>11.1f}x")
        lines.append("  (grading only: the pack without its action rules, alerts and doses, ZEN's task; checked to "
                     "grade every patient as the whole pack; context, not a target)")
    lines.append("  p99 / p50: " + ", ".join(f"{label} {row['p99_ms'] / row['p50_ms']:.2f}" for label, row in rows))
    lines.append(f"  ({lat['engine_parsed']['evaluations']:,} timed evaluations per row, then as many timed as a "
                 f"whole for eval/s (wall clock; per CPU-second: "
                 + ", ".join(f"{row['per_cpu_second']:,.0f}" for _, row in rows)
                 + f"); timer overhead {results['environment']['timer_overhead_ns']} ns per call)")
    batched = results["batch"]
    lines += [
        f"  engine floor: {results['engine_floor']['engine_calls_per_evaluation']:.1f} engine calls per evaluation, "
        "replayed without crs-rules' Python (checked against the evaluations' replies); per evaluation, each "
        "call timed: " + ", ".join(f"{name} {us:.1f} us" for name, us in results["engine_floor"]["split_us"].items()),
        "  engine floor, facts asserted per evaluation by kind: " + ", ".join(
            f"{kind} {figures['per_evaluation']:.1f} x {figures['us_each']:.1f} us = {figures['us_per_evaluation']:.1f} us"
            for kind, figures in results["engine_floor"]["facts_by_kind"].items()),
        f"  engine floor, a session holding one fact, created and deleted: "
        f"{results['engine_floor']['bare_session_us']:.1f} us; the same calls in one session kept for every patient "
        f"and emptied by retracting its facts (checked against the evaluations' replies): p50 "
        f"{results['engine_floor']['kept_session']['p50_ms'] * 1000:.1f} us, p99 "
        f"{results['engine_floor']['kept_session']['p99_ms'] * 1000:.1f} us "
        f"(a fresh session per patient: p50 {lat['engine_floor']['p50_ms'] * 1000:.1f} us)",
        f"  batch, evaluate_many over the mappings: {batched['per_second']:,.0f} decisions/s "
        f"({batched['per_cpu_second']:,.0f} per CPU-second; {batched['decisions']:,} decisions)",
        "",
        f"  memory, {mem['evaluations']:,} end-to-end evaluations: RSS {mem['rss_before_mib']:.1f} MiB before, "
        f"{mem['rss_after_mib']:.1f} MiB after, growth {mem['growth_mib']:+.2f} MiB "
        f"(from the lowest point {mem['growth_from_lowest_mib']:+.2f} MiB) "
        f"({mem['growth_bytes_per_evaluation']:+.1f} bytes/evaluation; second half "
        f"{mem['second_half_growth_bytes_per_evaluation']:+.1f}); {mem['per_second']:,.0f} eval/s",
        "  RSS samples (MiB): " + " ".join(f"{s:.1f}" for s in mem["samples_mib"]),
    ]
    if results["zen_memory"] is not None:
        zm = results["zen_memory"]
        lines.append(f"  memory, {zm['evaluations']:,} ZEN evaluations: RSS {zm['rss_before_mib']:.1f} MiB before, "
                     f"{zm['rss_after_mib']:.1f} MiB after, growth {zm['growth_mib']:+.2f} MiB "
                     f"({zm['growth_bytes_per_evaluation']:+.1f} bytes/evaluation); {zm['per_second']:,.0f} eval/s")
    diff = results["diff"]
    lines += [
        "",
        f"  diff of the shipped pack against itself ({diff['population']:,} patients: {diff['generated']:,} generated"
        f"{' (the default population)' if diff['default_population'] else ' (reduced)'} + {diff['scenarios']} scenarios; "
        f"{diff['workers']} worker process(es)): {diff['wall_seconds']:.2f} s wall, {diff['differing']} patients differing",
        "",
        f"  {'target':<46}{'measured':>20}  result",
    ]
    for target in results["targets"]:
        lines.append(f"  {target['name'] + ' ' + target['target']:<46}{_shown(target):>20}  "
                     f"{'met' if target['met'] else 'NOT MET'}")
    lines += ["", f"  {'side by side (issue 13), on evaluate(mapping); batch: evaluate_many':<62}{'measured':>14}  result"]
    for target in results["side_by_side_targets"]:
        short = ""
        if target.get("evaluations", FULL["evaluations"]) != FULL["evaluations"]:
            short = f" (on {target['evaluations']:,} evaluations, not 10^5)"
        if "population" in target and not results["diff"]["default_population"]:
            short = " (on a reduced population)"
        lines.append(f"  {target['name'] + ': ' + target['target']:<62}{_shown(target):>14}  "
                     f"{'met' if target['met'] else 'NOT MET'}{short}")
    if zen is None:
        lines.append(f"  p50 vs ZEN: not measured ({results['zen_skipped']})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark crs-rules on the shipped pack.")
    parser.add_argument("--quick", action="store_true", help="a small run of a few seconds (figures indicative only)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--evaluations", type=int, help="evaluations of the memory run (default 100000; quick 300)")
    parser.add_argument("--latency-evaluations", type=int,
                        help="timed evaluations per latency row (default 20000; quick 150)")
    parser.add_argument("--loads", type=int, help="fresh pack loads timed (default 20; quick 3)")
    parser.add_argument("--compiles", type=int,
                        help="compiles timed, each leaves an engine ruleset behind (default 20; quick 3; at most 50)")
    parser.add_argument("--warmup", type=int, help="warm-up passes over the mix before each phase (default 2; quick 1)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the patient variants (default {SEED})")
    parser.add_argument("--diff-population", type=int,
                        help="generated patients of the diff (default: the diff's own default, 12000; quick 40)")
    parser.add_argument("--no-zen", action="store_true", help="leave out the ZEN row even when zen-engine is installed")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    for key in settings:
        given = getattr(args, key)
        if given is not None:
            settings[key] = given
    if settings["evaluations"] < 1 or settings["latency_evaluations"] < 1 or settings["loads"] < 1:
        parser.error("--evaluations, --latency-evaluations and --loads must be at least 1")
    if not 1 <= settings["compiles"] <= 50:
        parser.error("--compiles must be from 1 to 50 (each compile leaves about 0.4 MB in the engine)")
    if settings["warmup"] < 0:
        parser.error("--warmup must be at least 0")
    diff_population = args.diff_population if args.diff_population is not None else (
        QUICK_DIFF_POPULATION if args.quick else None)
    if diff_population is not None and diff_population < 0:
        parser.error("--diff-population must be at least 0")

    load_start = load_average()
    zen_module = None if args.no_zen else load_zen()
    zen = None if zen_module is None else ZenGrading(zen_module)
    zen_skipped = ("left out (--no-zen)" if args.no_zen else
                   "zen-engine is not installed: the ZEN row is skipped (make bench, or pip install -e '.[bench]')")
    if zen is None:
        print(f"ZEN: {zen_skipped}", file=sys.stderr)
    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    pinned = None if args.no_pin else pin_to_one_cpu()

    # Loads and compiles first: the rulesets the compiles leave behind are in memory before the
    # memory run starts, so they are not counted as growth.
    protocols: list[Protocol] = []
    load_times = timed_runs(lambda: protocols.append(load_protocol()), settings["loads"])
    compile_times = timed_runs(lambda: compile_protocol(protocols[0]), settings["compiles"])
    protocol = protocols[-1]
    del protocols[:-1]

    mix = build_mix(args.seed)
    wrong = check_agreement(protocol, mix, zen=zen)
    if wrong:
        print(f"grade-agreement guard FAILED: engine{', ZEN' if zen else ''} and reference differ "
              f"({len(wrong)} disagreements over {len(mix)} patients); no figures measured", file=sys.stderr)
        for line in wrong:
            print("  " + line, file=sys.stderr)
        return 1
    by_grade = Counter(reference_grading(p.state).crs_grade for p in mix)
    missing = sorted(set(range(5)) - set(by_grade))
    if missing or not any(p.child for p in mix) or not any(p.history_at_limit for p in mix):
        print(f"the patient mix lost its coverage (grades missing: {missing})", file=sys.stderr)
        return 1

    states = [p.state for p in mix]
    raw = [p.data for p in mix]
    warmup = settings["warmup"]
    n = settings["latency_evaluations"]
    engine_parsed = latency(lambda s: evaluate(s, protocol), states, n, warmup)
    engine_end_to_end = latency(lambda d: evaluate(d, protocol), raw, n, warmup)
    reference = latency(reference_grading, states, n, warmup)
    replay = floor.record(protocol, states)
    drift = replay.check()
    if drift:
        print(f"the engine's replay differs from the evaluations it stands for ({len(drift)} patients); "
              "no floor measured", file=sys.stderr)
        for line in drift[:20]:
            print("  " + line, file=sys.stderr)
        return 1
    engine_floor = latency(replay.run, list(range(len(replay))), n, warmup)
    floor_passes = max(1, -(-n // len(replay)))
    floor_split = replay.split(floor_passes)
    floor_by_kind = replay.facts_by_kind(floor_passes)
    bare_session_us = replay.bare_session(max(100, n))
    kept_drift = replay.check_reusing()
    if kept_drift:
        replay.end_reusing()
        print(f"the replay into one kept session differs from the evaluations ({len(kept_drift)} patients)",
              file=sys.stderr)
        for line in kept_drift[:20]:
            print("  " + line, file=sys.stderr)
        return 1
    kept_session = latency(replay.run_reusing, list(range(len(replay))), n, warmup)
    replay.end_reusing()
    # ZEN's task (the grading alone) done by this engine: the pack without its action rules, alerts
    # and doses, which must grade every patient as the whole pack does.
    grading = grading_only(protocol)
    wrong = check_agreement(grading, mix)
    grading_replay = floor.record(grading, states)
    wrong += grading_replay.check()
    if wrong:
        print("the grading-only pack disagrees with the whole pack or its replay drifted:", file=sys.stderr)
        for line in wrong[:20]:
            print("  " + line, file=sys.stderr)
        return 1
    grading_end_to_end = latency(lambda d: evaluate(d, grading), raw, n, warmup)
    grading_floor = latency(grading_replay.run, list(range(len(grading_replay))), n, warmup)
    batched = batch(protocol, raw, n, warmup)
    rows = {"engine_parsed": engine_parsed, "engine_end_to_end": engine_end_to_end, "engine_floor": engine_floor,
            "grading_end_to_end": grading_end_to_end, "grading_floor": grading_floor, "reference": reference}
    zen_memory = None
    if zen is not None:
        contexts = [zen_context(state) for state in states]
        rows["zen"] = latency(zen.decision.evaluate, contexts, n, warmup)
    mem = memory(lambda d: evaluate(d, protocol), raw, settings["evaluations"], warmup, "end_to_end")
    if zen is not None:
        zen_memory = memory(zen.decision.evaluate, contexts, settings["evaluations"], warmup, "zen")
    diff = diff_wall_time(diff_population, None if pinned is None else cpus)
    if diff["differing"]:
        print(f"the diff of the shipped pack against itself found {diff['differing']} differing patients",
              file=sys.stderr)
        return 1
    ratios: dict[str, float] = {
        f"{row}_p99_to_p50": figures["p99_ms"] / figures["p50_ms"] for row, figures in rows.items()}
    if "zen" in rows:
        for row in ("engine_parsed", "engine_end_to_end", "engine_floor", "grading_end_to_end", "grading_floor"):
            ratios[f"{row}_p50_to_zen_p50"] = rows[row]["p50_ms"] / rows["zen"]["p50_ms"]
            ratios[f"{row}_p99_to_zen_p99"] = rows[row]["p99_ms"] / rows["zen"]["p99_ms"]
            ratios[f"zen_throughput_to_{row}"] = rows["zen"]["per_second"] / rows[row]["per_second"]

    results: dict[str, Any] = {
        "format": "crs-rules-bench/1",
        "command": " ".join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "settings": settings,
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "durable_rules": metadata.version("durable_rules"),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "pinned_cpu": pinned,
            "gc_enabled": gc.isenabled(),
            "gc_threshold": list(gc.get_threshold()),
            "timer": "time.perf_counter_ns",
            "timer_overhead_ns": timer_overhead_ns(),
            "load_average_start": load_start,
            "load_average_end": load_average(),
        },
        "zen": None if zen is None else {"version": zen.version, "graph": str(ZEN_GRAPH.relative_to(ROOT))},
        "zen_skipped": None if zen is not None else zen_skipped,
        "pack": {"id": protocol.id, "version": protocol.version, "digest": protocol.digest},
        "mix": {
            "patients": len(mix),
            "examples": sum(1 for p in mix if not p.name.startswith("variant-")),
            "variants": sum(1 for p in mix if p.name.startswith("variant-")),
            "seed": args.seed,
            "by_grade": {str(g): by_grade[g] for g in sorted(by_grade)},
            "children_under_30kg": sum(1 for p in mix if p.state.weight_kg < 30),
            "histories_at_limits": sum(1 for p in mix if p.history_at_limit),
        },
        "grade_agreement": {"patients": len(mix), "agreed": len(mix), "passed": True,
                            "compared": ["engine", "reference", *(["zen"] if zen else [])]},
        "load_ms": {"median": statistics.median(load_times), "first": load_times[0], "runs": len(load_times)},
        "compile_ms": {"median": statistics.median(compile_times), "runs": len(compile_times)},
        "latency": rows,
        "ratio_engine_to_reference": {
            "p50": engine_parsed["p50_ms"] / reference["p50_ms"],
            "p99": engine_parsed["p99_ms"] / reference["p99_ms"],
            "throughput": reference["per_second"] / engine_parsed["per_second"],
        },
        "ratios": ratios,
        "engine_floor": {"engine_calls_per_evaluation": replay.calls_per_patient(), "replay_checked": True,
                         "split_us": floor_split, "facts_by_kind": floor_by_kind,
                         "bare_session_us": bare_session_us,
                         "kept_session": {**kept_session, "replay_checked": True}},
        "batch": batched,
        "memory": mem,
        "zen_memory": zen_memory,
        "diff": diff,
    }
    results["targets"] = targets(results)
    results["side_by_side_targets"] = side_by_side_targets(results)
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
