"""The last stage of ``crs-rules diff``: evaluate both packs on every patient and count the differences.

:func:`compare_packs` runs the stages: the pack's changes (:mod:`~crs_rules.pack_diff`), the
patients (:mod:`~crs_rules.population`), each patient's outcome under both packs
(:mod:`~crs_rules.outcomes`), spread over worker processes, and the report
(:mod:`~crs_rules.impact_report`). Patients are evaluated in batches, one pack at a time
(:func:`~crs_rules.evaluation.evaluate_many`, the decisions :func:`evaluate_one` gives), by
:class:`_Evaluator`, the single place to change for another way of evaluating. The two outcomes
of a patient are compared where they are made, so a worker sends back each patient's state and,
only for a patient whose decision differs, both outcomes and their differences.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .decision import Dose
from .dose_effects import dose_effects
from .errors import InvalidInputError
from .evaluation import compiled, evaluate, evaluate_many
from .impact_report import Example, ImpactReport, KindReport, PackRef, SubChange
from .model import Protocol
from .outcomes import DIFFERENCE_KINDS, DOSE_CHANGED, Outcome, dose_pairs, outcome_differences
from .pack_diff import pack_changes
from .patient import PatientState, parse_patient
from .population import DEFAULT_POPULATION, DEFAULT_SEED, Patient, describe_patient, population_stream, scenario_patients

__all__ = ["compare_packs", "evaluate_one"]

# Below this many generated patients, starting processes costs more than it saves.
_PARALLEL_FROM = 1_000


def evaluate_one(state: PatientState, protocol: Protocol) -> Outcome:
    """One patient's outcome under one pack (drafts are compared too)."""
    return Outcome.of(evaluate(state, protocol, allow_draft=True))


#: How one patient's outcome differs between the packs: the outcome under the old pack, under the
#: new one, the differences (:func:`outcome_differences`, never empty) and the changed doses
#: (:func:`dose_pairs`, worked out only when a dose changed).
Difference = tuple[Outcome, Outcome, tuple[tuple[str, str], ...], tuple[tuple[Dose | None, Dose | None], ...]]

#: One patient's result as the report reads it: the state, and how its outcome differs (None when
#: it does not: nothing more to send or keep).
Result = tuple[PatientState, Difference | None]


class _Evaluator:
    """Parses inputs into states and evaluates both packs on them (:func:`evaluate_many`, one
    pack at a time); identical states of one batch once per pack. The outcomes are compared here
    (in the worker, when there are workers), so only the differences travel back."""

    def __init__(self, old: Protocol, new: Protocol) -> None:
        self.packs = (old, new)

    def outcomes(self, states: Sequence[PatientState]) -> list[Result]:
        distinct = list(dict.fromkeys(states))
        old, new = ([Outcome.of(decision) for decision in evaluate_many(distinct, protocol, allow_draft=True)]
                    for protocol in self.packs)
        found = {state: _difference(a, b) for state, a, b in zip(distinct, old, new)}
        return [(state, found[state]) for state in states]

    def run(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Result]:
        states = []
        for label, data in items:
            try:
                states.append(parse_patient(data, label))
            except InvalidInputError as error:  # a fault of the generator; a plain error crosses processes
                raise ValueError(f"{label} is not a valid patient: {error}") from None
        return self.outcomes(states)


def _difference(old: Outcome, new: Outcome) -> Difference | None:
    if old == new:
        return None
    found = tuple(outcome_differences(old, new))
    if not found:
        return None
    return old, new, found, tuple(dose_pairs(old, new)) if any(k == DOSE_CHANGED for k, _ in found) else ()


_worker: list[_Evaluator] = []


def _start_worker(old: Protocol, new: Protocol) -> None:
    # Ctrl-C is the command's to handle (it ends the pool); a spawn-started worker does not inherit
    # the command's handler and would print a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What the worker holds from the start (modules, packs, compiled rules) lives as long as it
    # does: the garbage collector need not walk it again and again.
    gc.freeze()
    _worker[:] = [_Evaluator(old, new)]


def _run_in_worker(items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Result]:
    return _worker[0].run(items)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _batches(items: Iterable[tuple[str, Mapping[str, Any]]], size: int, processes: int,
             kept: list[tuple[str, Mapping[str, Any]]]) -> Iterator[list[tuple[str, Mapping[str, Any]]]]:
    """The ``size`` items in lists, each item also added to ``kept`` as it is drawn: lists of
    :data:`_BATCH` items, then smaller ones towards the end (a share of what is left per process,
    at least :data:`_LAST_BATCH`), so that the processes end together."""
    batch: list[tuple[str, Mapping[str, Any]]] = []
    left = size
    wanted = _batch_size(left, processes)
    for item in items:
        kept.append(item)
        batch.append(item)
        if len(batch) == wanted:
            yield batch
            left -= len(batch)
            batch = []
            wanted = _batch_size(left, processes)
    if batch:
        yield batch


# Patients per task sent to a worker: small enough that the workers end together (the last tasks
# are short), large enough that sending tasks costs nothing next to evaluating them.
_BATCH = 100
_LAST_BATCH = 10


def _batch_size(left: int, processes: int) -> int:
    return max(_LAST_BATCH, min(_BATCH, left // (4 * processes)))


def _evaluate_all(old: Protocol, new: Protocol, items: Iterable[tuple[str, Mapping[str, Any]]], size: int,
                  workers: int, meanwhile: Callable[[], None] = lambda: None
                  ) -> tuple[list[tuple[str, Mapping[str, Any]]], list[Result]]:
    """Parse and evaluate every item (``size`` of them), in order; over ``workers`` processes when
    it pays. Gives the items and their results.

    Evaluations of one pack are serialised within a process, so processes are what scales. The
    items are drawn here while the workers evaluate the first ones, and sent in small batches,
    smaller towards the end (the workers end together); results come back in order, so the report does not depend on the
    number of workers. Both packs are compiled here first, so forked workers start with
    them. ``meanwhile`` runs in this process while the workers evaluate (before the items,
    without workers).
    """
    kept: list[tuple[str, Mapping[str, Any]]] = []
    if workers <= 1 or size < _PARALLEL_FROM:
        meanwhile()
        kept.extend(items)
        return kept, _Evaluator(old, new).run(kept)
    compiled(old)
    compiled(new)
    # fork is quick and needs no re-import, but only a single-threaded process may fork safely.
    method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
    processes = min(workers, -(-size // _BATCH))  # no more than there are batches
    with multiprocessing.get_context(method).Pool(processes, _start_worker, (old, new)) as pool:
        pending = pool.imap(_run_in_worker, _batches(items, size, processes, kept))
        meanwhile()
        results = [result for part in pending for result in part]
    return kept, results


def compare_packs(old: Protocol, new: Protocol, population_size: int | None = None,
                  seed: int = DEFAULT_SEED, workers: int | None = None) -> ImpactReport:
    """What changed from ``old`` to ``new`` (by rule id and number), and what that does to patients:
    both packs evaluated on the scenarios of both and on ``population_size`` generated patients
    (default :data:`DEFAULT_POPULATION`), every differing patient counted by kind of difference.

    ``workers``: processes to evaluate in (default: one per available CPU, at most 8; 1 evaluates
    in this process). The report is the same whatever the number.

    Python's cyclic garbage collector is paused in this process while it runs (see
    :func:`_collector_paused`) and restored as it was when it returns or raises.
    """
    with _collector_paused():
        return _compare_packs(old, new, population_size, seed, workers)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (if it was on), back on after it.

    The report keeps every patient (input, state, outcome) until it is done: some hundred thousand
    objects that live as long as the block, which the collector would otherwise walk again and
    again as they pile up (most of this process's time besides drawing the patients). They hold
    no reference cycles; what cycles the block makes are collected once the collector is back.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _compare_packs(old: Protocol, new: Protocol, population_size: int | None, seed: int,
                   workers: int | None) -> ImpactReport:
    start = time.perf_counter()
    size = DEFAULT_POPULATION if population_size is None else population_size
    notes: list[str] = []
    # The documents as loaded with each pack: what was validated is what is compared.
    changes = pack_changes(old, new)

    scenarios: list[Patient] = []
    results: list[Result] = []

    def scenarios_here() -> None:
        # The scenarios are read and evaluated here while the workers evaluate the population.
        scenarios.extend(scenario_patients((old, new), notes))
        results.extend(_Evaluator(old, new).outcomes([p.state for p in scenarios]))

    items, population = _evaluate_all(old, new, population_stream((old, new), size, seed), size,
                                      min(_available_cpus(), 8) if workers is None else workers, scenarios_here)
    results += population  # the scenarios first, then the population
    patients = [*scenarios, *(Patient(label, state, data) for (label, data), (state, _) in zip(items, population))]

    differences: dict[int, Difference] = {}
    by_kind: dict[str, dict[str, list[int]]] = {kind: {} for kind in DIFFERENCE_KINDS}
    patients_by_kind: dict[str, list[int]] = {kind: [] for kind in DIFFERENCE_KINDS}
    for index, (_, difference) in enumerate(results):
        if difference is None:
            continue
        differences[index] = difference
        found = difference[2]
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
        old_outcome, new_outcome, found, _ = differences[first]
        example = Example(
            patients[first].label, describe_patient(patients[first].state), patients[first].data,
            old_outcome, new_outcome, tuple(change for k, change in found if k == kind),
        )
        sub_changes = tuple(SubChange(change, tuple(patients[i].label for i in indices)) for change, indices in ordered)
        if kind == DOSE_CHANGED:  # by the patients affected, not amount by amount
            sub_changes = tuple(SubChange(effect.describe(), effect.patients) for effect in dose_effects(
                [(patients[i].label, patients[i].state.weight_kg, *pair)
                 for i in patients_by_kind[kind] for pair in differences[i][3]], (old, new)))
        kinds.append(KindReport(kind, tuple(patients[i].label for i in patients_by_kind[kind]), sub_changes, example))
    return ImpactReport(
        PackRef.of(old), PackRef.of(new), changes, size, seed, len(scenarios),
        tuple(patients[i].label for i in differences), tuple(kinds), time.perf_counter() - start,
        tuple(notes), tuple(patients),
    )
