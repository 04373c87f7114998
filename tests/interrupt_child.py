"""Child process of tests/test_interrupts.py: interrupts evaluations and reports what happened.

Run in a subprocess so that a crash of the engine (a segmentation fault, ``free(): invalid
pointer``) fails the test instead of killing pytest. Prints one JSON object::

    python tests/interrupt_child.py MODE COUNT SEED

MODE is one of:

``itimer``
    ``signal.setitimer(ITIMER_REAL, random delay)`` with a handler raising an exception,
    ``KeyboardInterrupt``-like or ``Exception``-like in turn, while the main thread evaluates.
``itimer-thread``
    the same with an idle second thread, so that the kernel may deliver the signal to that
    thread while the main thread evaluates (Python then runs the handler in the main thread).
``trace``
    an exception raised by a trace hook at a random bytecode of the engine module during an
    evaluation (every bytecode boundary, not only those where Python runs signal handlers).
``profile``
    an exception raised at the k-th call or C return inside the engine module, for every k of
    one evaluation in turn (COUNT rounds over all of them); deterministic.

After every interrupted evaluation a clean one must give the reference decision; every
evaluation that completed must too. Resident memory is read after a warm-up (the first fifth
of the interrupts) and at the end; the engine is asked for every session id used, and each
must be gone.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import durable_rules_engine
import yaml

import crs_rules.engine as engine
from crs_rules import EngineError, evaluate, load_protocol, parse_patient
from crs_rules.evaluation import compiled

ROOT = Path(__file__).resolve().parent.parent
ENGINE_FILE = engine.__file__
# The trace mode never raises inside these engine functions: ``run`` changes the signal mask
# and restores it in a finally, ``_run_locked`` holds the lock in a ``with`` statement; Python
# runs no signal handler between the bytecodes that restore the mask or release the lock (the
# profile mode interrupts them at every call and C return, where Python does run handlers).
UNTOUCHED = {"run", "_run_locked"}


class Interrupt(BaseException):
    """Like KeyboardInterrupt."""


class Timeout(Exception):
    """Like the TimeoutError a SIGALRM handler typically raises."""


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def interrupted(exc: BaseException) -> bool:
    """True for the injected exception, also when the engine reports it as a rule failure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (Interrupt, Timeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def attempt(index: int, states: list[Any], reference: list[Any], protocol: Any, stats: dict[str, Any]) -> None:
    """Evaluate ``states[index]``, which may be interrupted: counted as interrupted inside the
    evaluation, or as completed (and wrong unless it gives the reference decision)."""
    try:
        decision = evaluate(states[index], protocol)
    except (Interrupt, Timeout, EngineError) as exc:
        if not interrupted(exc):
            raise
        stats["in_evaluate"] += 1
    else:
        stats["completed"] += 1
        if decision != reference[index]:
            stats["wrong"] += 1


def main() -> None:
    mode, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    protocol = load_protocol(ROOT / "rules")
    states = [parse_patient(yaml.safe_load(path.read_text()))
              for path in sorted((ROOT / "examples").glob("*.yaml"))]
    reference = [evaluate(state, protocol) for state in states]
    program = compiled(protocol)
    stats: dict[str, Any] = {"mode": mode, "delivered": 0, "in_evaluate": 0, "completed": 0,
                             "checked": 0, "wrong": 0, "attempts": 0}

    def check(index: int) -> None:
        stats["checked"] += 1
        if evaluate(states[index], protocol) != reference[index]:
            stats["wrong"] += 1

    if mode.startswith("itimer"):
        run_itimer(mode, count, rng, states, reference, protocol, stats, check)
    elif mode == "trace":
        run_trace(count, rng, states, reference, protocol, stats, check)
    elif mode == "profile":
        run_profile(count, states, reference, protocol, stats, check)
    else:
        raise SystemExit(f"unknown mode {mode}")

    # Every session the engine ever opened for this pack must be gone.
    handle = program.ruleset._handle
    used = next(program.ruleset._session_counter)
    live = 0
    for k in range(1, used):
        try:
            durable_rules_engine.get_facts(handle, f"s{k}")
            live += 1
        except durable_rules_engine.error:
            pass
    stats["sessions"] = used - 1
    stats["live_sessions"] = live
    stats["blocked_after"] = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, ()))
    print(json.dumps(stats))


def run_itimer(mode: str, count: int, rng: random.Random, states: list[Any], reference: list[Any],
               protocol: Any, stats: dict[str, Any], check: Any) -> None:
    if mode == "itimer-thread":
        idle = threading.Event()
        threading.Thread(target=idle.wait, daemon=True).start()
    armed: list[type[BaseException]] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed:
            kind = armed.pop()
            stats["delivered"] += 1
            raise kind("interrupted")

    signal.signal(signal.SIGALRM, handler)
    # Each patient's own time: the timer of an attempt is drawn over that patient's evaluation
    # (the examples differ by several times, more so as the glue around the engine got lighter).
    means = []
    for state in states:
        started = time.perf_counter()
        for _ in range(40):
            evaluate(state, protocol)
        means.append((time.perf_counter() - started) / 40)
    stats["mean_evaluation_us"] = round(sum(means) / len(means) * 1e6)
    warm = count // 5
    before = 0.0
    while stats["delivered"] < count:
        if stats["delivered"] >= warm and not before:
            before = rss_mb()
        index = rng.randrange(len(states))
        stats["attempts"] += 1
        try:
            armed.append(Interrupt if stats["attempts"] % 2 else Timeout)
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-6, 1.2 * means[index]))
            attempt(index, states, reference, protocol, stats)
            deadline = time.perf_counter() + 0.05
            while armed and time.perf_counter() < deadline:
                pass  # let a late timer fire here rather than in the next evaluation
        except (Interrupt, Timeout):
            pass
        signal.setitimer(signal.ITIMER_REAL, 0)
        armed.clear()
        check(rng.randrange(len(states)))
    stats["rss_growth_mb"] = round(rss_mb() - before, 2)


def run_trace(count: int, rng: random.Random, states: list[Any], reference: list[Any], protocol: Any,
              stats: dict[str, Any], check: Any) -> None:
    counter = [0, -1]  # opcodes seen in engine frames, the one to interrupt at

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            counter[0] += 1
            if counter[0] == counter[1]:
                stats["delivered"] += 1
                raise (Interrupt if counter[1] % 2 else Timeout)("interrupted")
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == ENGINE_FILE and frame.f_code.co_name not in UNTOUCHED:
            frame.f_trace_opcodes = True
            return local
        return None

    sys.settrace(tracer)
    evaluate(states[0], protocol)
    sys.settrace(None)
    total = counter[0]
    stats["opcodes_per_evaluation"] = total
    warm = count // 5
    before = 0.0
    while stats["attempts"] < count:
        if stats["attempts"] == warm:
            before = rss_mb()
        stats["attempts"] += 1
        index = rng.randrange(len(states))
        counter[:] = [0, rng.randint(1, total)]
        sys.settrace(tracer)
        try:
            attempt(index, states, reference, protocol, stats)
        finally:
            sys.settrace(None)
        check(rng.randrange(len(states)))
    stats["rss_growth_mb"] = round(rss_mb() - before, 2)


def run_profile(rounds: int, states: list[Any], reference: list[Any], protocol: Any,
                stats: dict[str, Any], check: Any) -> None:
    counter = [0, -1]

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_return") and frame.f_code.co_filename == ENGINE_FILE:
            counter[0] += 1
            if counter[0] == counter[1]:
                stats["delivered"] += 1
                raise Interrupt(f"{event} {getattr(arg, '__name__', frame.f_code.co_name)}")

    sys.setprofile(hook)
    evaluate(states[0], protocol)
    sys.setprofile(None)
    total = counter[0]
    stats["events_per_evaluation"] = total
    before = 0.0
    for round_ in range(rounds):
        for k in range(1, total + 1):
            if round_ == 0 and k == total // 5:
                before = rss_mb()
            stats["attempts"] += 1
            counter[:] = [0, k]
            sys.setprofile(hook)
            try:
                attempt(0, states, reference, protocol, stats)
            finally:
                sys.setprofile(None)
            check(k % len(states))
    stats["rss_growth_mb"] = round(rss_mb() - before, 2)


if __name__ == "__main__":
    main()
