"""The engine's own floor: what durable_rules' C calls alone cost for each patient's decision.

``record(protocol, states)`` evaluates every state once with ``evaluate()`` and records, in order,
every call crs-rules made to the engine's C module for it: the facts asserted (the input and every
fact a rule's handler asserted), each action started and completed, the facts read back and the
session deleted. ``Replay.run(i)`` makes exactly those calls again for patient ``i``, on the same
compiled ruleset, with nothing else in between: no input check, no fact encoding, no handler, no
decision. The engine does the same work it did in the real evaluation (the same facts, the same
matches, the same firings in the same order), so the time of a replay is the least any code
driving this engine through this pack's rules can take per decision; the remaining Python is a
loop of one branch per call.

``Replay.check()`` replays every patient once and compares every reply of the engine with the reply
it gave in the real evaluation (the action texts are the same strings): a replay that drifted from
the evaluation it stands for is refused rather than timed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import crs_rules.engine as engine_module
from crs_rules import evaluate
from crs_rules.evaluation import compiled
from crs_rules.model import Protocol
from crs_rules.patient import PatientState

# The engine calls a replay makes, by what they are given after the ruleset's handle.
ASSERT, START, COMPLETE, ABANDON, READ, DELETE = range(6)
_CALLS = {
    "assert_fact": ASSERT,
    "start_action_for_state": START,
    "complete_and_start_action": COMPLETE,
    "abandon_action": ABANDON,
    "get_facts": READ,
    "delete_state": DELETE,
}


class _Recorder:
    """Stands for the engine's C module inside ``crs_rules.engine`` while it records."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.calls: list[tuple[int, Any, Any]] = []  # (call, argument, the engine's reply)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._module, name)
        call = _CALLS.get(name)
        if call is None:
            return found

        def recorded(handle: Any, argument: Any) -> Any:
            reply = found(handle, argument)
            # The state handle is the same for every call of one session: recorded as None.
            self.calls.append((call, argument if call in (ASSERT, READ, DELETE) else None, reply))
            return reply

        return recorded


class Replay:
    """The engine calls of each patient's evaluation, ready to be made again (see the module)."""

    def __init__(self, handle: Any, calls: Sequence[Sequence[tuple[int, Any, Any]]], module: Any) -> None:
        self._handle = handle
        self._calls = [tuple((call, argument) for call, argument, _ in patient) for patient in calls]
        self._replies = [tuple(reply for _, _, reply in patient) for patient in calls]
        self._module = module

    def __len__(self) -> int:
        return len(self._calls)

    def calls_per_patient(self) -> float:
        return sum(len(patient) for patient in self._calls) / max(1, len(self._calls))

    def run(self, index: int) -> list[Any]:
        """Make patient ``index``'s engine calls again, in order; the engine's replies."""
        module, handle = self._module, self._handle
        assert_fact, start = module.assert_fact, module.start_action_for_state
        complete, abandon = module.complete_and_start_action, module.abandon_action
        read, delete = module.get_facts, module.delete_state
        replies: list[Any] = []
        state: Any = None
        for call, argument in self._calls[index]:
            if call == ASSERT:
                reply = assert_fact(handle, argument)
                if state is None:
                    state = reply[1]
            elif call == COMPLETE:
                reply = complete(handle, state)
            elif call == START:
                reply = start(handle, state)
            elif call == READ:
                reply = read(handle, argument)
            elif call == DELETE:
                reply = delete(handle, argument)
            else:
                reply = abandon(handle, state)
            replies.append(reply)
        return replies


    def split(self, passes: int) -> dict[str, float]:
        """Microseconds per evaluation of each kind of engine call, over ``passes`` replays of every
        patient, each call timed on its own: the first assert (which creates the session), the
        other asserts, the actions (started, completed, abandoned), reading the facts, deleting
        the session."""
        module, handle, clock = self._module, self._handle, time.perf_counter_ns
        by_call = {ASSERT: module.assert_fact, START: module.start_action_for_state,
                   COMPLETE: module.complete_and_start_action, ABANDON: module.abandon_action,
                   READ: module.get_facts, DELETE: module.delete_state}
        part = {ASSERT: "facts", START: "actions", COMPLETE: "actions", ABANDON: "actions", READ: "reading",
                DELETE: "deleting"}
        spent = dict.fromkeys(("creating", "facts", "actions", "reading", "deleting"), 0)
        for _ in range(passes):
            for calls in self._calls:
                state: Any = None
                for call, argument in calls:
                    function = by_call[call]
                    given = argument if call in (ASSERT, READ, DELETE) else state
                    start = clock()
                    reply = function(handle, given)
                    elapsed = clock() - start
                    if call == ASSERT and state is None:
                        state = reply[1]
                        spent["creating"] += elapsed
                    else:
                        spent[part[call]] += elapsed
        evaluations = max(1, passes * len(self._calls))
        return {name: total / evaluations / 1000 for name, total in spent.items()}

    def check(self) -> list[str]:
        """Replay every patient once; what differs from the engine's replies in the evaluation."""
        wrong = []
        for index, expected in enumerate(self._replies):
            try:
                got = self.run(index)
            except self._module.error as exc:
                wrong.append(f"patient {index}: the engine refused a call ({exc})")
                self._forget(index)
                continue
            if len(got) != len(expected):
                wrong.append(f"patient {index}: {len(got)} engine calls, {len(expected)} in the evaluation")
                continue
            for position, (reply, recorded) in enumerate(zip(got, expected)):
                if _comparable(reply) != _comparable(recorded):
                    wrong.append(f"patient {index}, engine call {position}: {str(reply)[:120]} "
                                 f"instead of {str(recorded)[:120]}")
                    break
        return wrong


    def _forget(self, index: int) -> None:
        """Delete the session a replay cut short left in the engine."""
        for call, argument in self._calls[index]:
            if call == DELETE:
                try:
                    self._module.delete_state(self._handle, argument)
                except self._module.error:
                    pass  # nothing was left


def _comparable(reply: Any) -> Any:
    """A reply with the session's state handle left out (the engine gives each session its own)."""
    if isinstance(reply, (tuple, list)) and len(reply) == 2 and isinstance(reply[0], int):
        return reply[0]  # assert_fact: (result code, state handle)
    if isinstance(reply, (tuple, list)) and len(reply) >= 2:
        return tuple(reply[1:])  # an action: (state handle, its texts...)
    return reply


def record(protocol: Protocol, states: Sequence[PatientState]) -> Replay:
    """Evaluate each state once, recording its engine calls (see the module)."""
    # crs_rules.engine calls the C module through its global ``_dre``: the recorder stands in for it.
    engine_globals = vars(engine_module)
    module = engine_globals["_dre"]
    recorder = _Recorder(module)
    calls: list[list[tuple[int, Any, Any]]] = []
    engine_globals["_dre"] = recorder
    try:
        for state in states:
            recorder.calls = []
            evaluate(state, protocol)
            calls.append(recorder.calls)
    finally:
        engine_globals["_dre"] = module
    return Replay(compiled(protocol).ruleset._handle, calls, module)
