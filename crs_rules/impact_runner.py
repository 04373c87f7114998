"""The last stage of ``crs-rules diff``: evaluate both packs on every patient and count the differences.

:func:`compare_packs` runs the stages: the pack's changes (:mod:`~crs_rules.pack_diff`), the
patients (:mod:`~crs_rules.population`), each patient's outcome under both packs
(:mod:`~crs_rules.outcomes`), spread over worker processes, and the report
(:mod:`~crs_rules.impact_report`). One patient is evaluated by :func:`evaluate_one`, the single
place to change for another way of evaluating.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .dose_effects import dose_effects
from .errors import InvalidInputError
from .evaluation import evaluate
from .impact_report import Example, ImpactReport, KindReport, PackRef, SubChange
from .model import Protocol
from .outcomes import DIFFERENCE_KINDS, DOSE_CHANGED, Outcome, dose_pairs, outcome_differences
from .pack_diff import pack_changes
from .patient import PatientState, parse_patient
from .population import DEFAULT_POPULATION, DEFAULT_SEED, Patient, describe_patient, population_inputs, scenario_patients

__all__ = ["compare_packs", "evaluate_one"]

# Below this many generated patients, starting processes costs more than it saves.
_PARALLEL_FROM = 1_000


def evaluate_one(state: PatientState, protocol: Protocol) -> Outcome:
    """One patient's outcome under one pack (drafts are compared too)."""
    return Outcome.of(evaluate(state, protocol, allow_draft=True))


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
                outcome = memo[state] = evaluate_one(state, protocol)
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
                  workers: int, meanwhile: Callable[[], None] = lambda: None
                  ) -> list[tuple[PatientState, Outcome, Outcome]]:
    """Parse and evaluate every item, in order; over ``workers`` processes when it pays.

    Evaluations of one pack are serialised within a process, so processes are what scales. Each
    worker gets both packs once and a share of the items in chunks; results come back in order, so
    the report does not depend on the number of workers. ``meanwhile`` runs in this process while
    the workers evaluate (before the items, without workers).
    """
    if workers <= 1 or len(items) < _PARALLEL_FROM:
        meanwhile()
        return _Evaluator(old, new).run(items)
    chunk = max(100, -(-len(items) // (workers * 4)))
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    # fork is quick and needs no re-import, but only a single-threaded process may fork safely.
    method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(chunks)), _start_worker, (old, new)) as pool:
        pending = pool.map_async(_run_in_worker, chunks)
        meanwhile()
        parts = pending.get()
    return [result for part in parts for result in part]


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
    # The documents as loaded with each pack: what was validated is what is compared.
    changes = pack_changes(old, new)

    items = population_inputs((old, new), size, seed)
    scenarios: list[Patient] = []
    results: list[tuple[PatientState, Outcome, Outcome]] = []

    def scenarios_here() -> None:
        # The scenarios are read and evaluated here while the workers evaluate the population.
        scenarios.extend(scenario_patients((old, new), notes))
        evaluator = _Evaluator(old, new)
        results.extend((p.state, *evaluator.outcomes(p.state)) for p in scenarios)

    population = _evaluate_all(old, new, items, min(_available_cpus(), 8) if workers is None else workers,
                               scenarios_here)
    results += population  # the scenarios first, then the population
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
        sub_changes = tuple(SubChange(change, tuple(patients[i].label for i in indices)) for change, indices in ordered)
        if kind == DOSE_CHANGED:  # by the patients affected, not amount by amount
            sub_changes = tuple(SubChange(effect.describe(), effect.patients) for effect in dose_effects(
                [(patients[i].label, patients[i].state.weight_kg, *pair)
                 for i in patients_by_kind[kind] for pair in dose_pairs(before[i], after[i])], (old, new)))
        kinds.append(KindReport(kind, tuple(patients[i].label for i in patients_by_kind[kind]), sub_changes, example))
    return ImpactReport(
        PackRef.of(old), PackRef.of(new), changes, size, seed, len(scenarios),
        tuple(patients[i].label for i in differing), tuple(kinds), time.perf_counter() - start,
        tuple(notes), tuple(patients),
    )
