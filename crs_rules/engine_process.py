"""The process around an evaluation: signals deferred while a session is open, locks renewed after a fork.

Signals and other asynchronous exceptions. Python runs a signal handler in the main thread,
between two bytecodes, so its exception (``KeyboardInterrupt``, a ``SIGALRM`` timeout) can
arrive anywhere in an evaluation: before, it leaked the session (about 1.4 MB; the 1,025th
crashes), and an interrupt right after the first assert of a fresh ruleset crashed the process.
Guarantee: whatever exception arrives at whatever moment, every engine session is deleted
exactly once and never touched after, and the next evaluation is right. Two layers give it:

* In the main thread, :data:`DEFERRED_SIGNALS` (every asynchronous signal) are blocked
  with ``pthread_sigmask`` from before the session is created until after it is deleted; the
  mask is then restored, and a signal that came meanwhile is delivered there: its handler runs
  once the evaluation is over, and its exception replaces the result. Rule handlers run with
  these signals deferred, so they must be short (the firing bound keeps a runaway chain short
  too). The three mask calls (to the C function: a handler could run on entry to the Python
  wrapper ``signal.pthread_sigmask`` and skip the restore) cost about 3.5 us per evaluation;
  off the main thread nothing is done and nothing is needed, since Python runs no signal
  handler there.
* The mask only holds while the kernel has no other thread to deliver the signal to: if
  another thread of the process leaves it unblocked, the kernel delivers it there and Python
  still runs the handler in the main thread, inside the evaluation (so can
  ``PyThreadState_SetAsyncExc`` in any thread). So the session also tracks what the engine
  holds by flags set before each engine call that changes it, or by replies recorded by C code
  with no bytecode in between (:func:`_recorded`); its cleanup may be interrupted and resumed
  any number of times, runs in two nested ``finally`` clauses, and should exceptions still cut
  it short, the next evaluation of the ruleset finishes it first (at most one per ruleset).
  The exception then aborts the evaluation: no partial result.

Fork. A child process made by ``os.fork`` inherits every lock in the state it had, and a lock
held by another thread at the fork would stay held for ever in the child. After a fork, every
ruleset's lock is renewed in the child (unless the forking thread itself is inside an
evaluation of it, which then carries on there), and a session left open by another thread is
deleted by the child's next evaluation. Other modules register their locks with
:func:`renew_after_fork`. Forking from inside a rule handler is not supported.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["DEFERRED_SIGNALS", "renew_after_fork", "track_after_fork", "signal_mask", "pthread_sigmask"]


#: Signals whose delivery is deferred while the main thread evaluates (see the module
#: docstring): every asynchronous one. Those a fault raises in the thread itself (SIGSEGV,
#: SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT) stay deliverable, and SIGKILL and SIGSTOP
#: cannot be blocked.
DEFERRED_SIGNALS: frozenset[int] = frozenset(
    int(signum)
    for signum in (signal.valid_signals() if hasattr(signal, "valid_signals") else ())
    if signum.__class__ is not signal.Signals
    or signum.name
    not in ("SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS",
            "SIGABRT")
)
# The C function itself: ``signal.pthread_sigmask`` is a Python wrapper, and a signal handler
# can run on entry to it (before the mask is restored) and would leave the signals blocked.
pthread_sigmask: Callable[[int, Iterable[int]], set[int]] | None = getattr(
    importlib.import_module("_signal"), "pthread_sigmask", None
)


def signal_mask() -> set[int] | None:
    """The calling thread's signal mask if it is the main thread, else None (nothing to defer).

    Python runs signal handlers in the main thread only, so only there can a signal raise an
    exception in the middle of an evaluation.
    """
    if pthread_sigmask is None or threading.get_ident() != threading.main_thread().ident:
        return None
    return pthread_sigmask(signal.SIG_BLOCK, ())


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_tracked: weakref.WeakSet[Any] = weakref.WeakSet()
_renewals: list[tuple[weakref.ref[Any], dict[str, Callable[[], object]]]] = []


def track_after_fork(target: _ForkAware) -> None:
    """Call ``target._after_fork_in_child()`` in a child process made by ``os.fork``, before the
    renewals of :func:`renew_after_fork` (every compiled ruleset is tracked). Held weakly."""
    _tracked.add(target)


def renew_after_fork(target: object, **factories: Callable[[], object]) -> None:
    """In a child process made by ``os.fork``, give ``target`` fresh attribute values.

    ``renew_after_fork(self, _lock=threading.Lock, _cache=dict)`` sets ``target._lock`` to a new
    lock and ``target._cache`` to a new dict in the child, right after the fork: a lock another
    thread held at the fork would otherwise stay held for ever in the child (that thread does
    not exist there). ``target`` is held weakly (a module works too).
    """
    _renewals.append((weakref.ref(target), dict(factories)))


def _after_fork_in_child() -> None:
    for tracked in list(_tracked):
        tracked._after_fork_in_child()
    alive = []
    for reference, factories in _renewals:
        target = reference()
        if target is not None:
            for name, factory in factories.items():
                setattr(target, name, factory())
            alive.append((reference, factories))
    _renewals[:] = alive


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
