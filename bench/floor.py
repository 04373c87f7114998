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

import json
import re
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

    def __init__(self, handle: Any, calls: Sequence[Sequence[tuple[int, Any, Any]]], module: Any,
                 firing_kind: str = "") -> None:
        self._handle = handle
        self.firing_kind = firing_kind  # a declared fact kind whose catch-all rule fires (bare_session)
        self._calls = [tuple((call, argument) for call, argument, _ in patient) for patient in calls]
        self._replies = [tuple(reply for _, _, reply in patient) for patient in calls]
        self._module = module
        self._kept_state: Any = None  # the state handle of run_reusing's kept session, while it lives
        # The kind of each asserted fact, the first apart (it also creates the session).
        self._kinds = [tuple(_kind(call, argument, position == 0) for position, (call, argument) in enumerate(patient))
                       for patient in self._calls]
        # The same calls naming one session kept for every patient (run_reusing).
        self._reused = [tuple((call, _one_session(call, argument)) for call, argument in patient)
                        for patient in self._calls]

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

    def facts_by_kind(self, passes: int) -> dict[str, dict[str, float]]:
        """What asserting each kind of fact costs the engine, over ``passes`` replays of every
        patient, each assert timed on its own: per kind (the fact's ``t``), how many per evaluation,
        microseconds per evaluation and microseconds each. The first fact also creates the session:
        it is counted apart, as ``first fact (creates the session)``."""
        module, handle, clock = self._module, self._handle, time.perf_counter_ns
        spent: dict[str, int] = {}
        count: dict[str, int] = {}
        for _ in range(passes):
            for index, calls in enumerate(self._calls):
                state: Any = None
                for (call, argument), kind in zip(calls, self._kinds[index]):
                    given = argument if call in (ASSERT, READ, DELETE) else state
                    start = clock()
                    reply = _call(module, call)(handle, given)
                    elapsed = clock() - start
                    if call == ASSERT:
                        if state is None:
                            state = reply[1]
                        spent[kind] = spent.get(kind, 0) + elapsed
                        count[kind] = count.get(kind, 0) + 1
        evaluations = max(1, passes * len(self._calls))
        return {kind: {"per_evaluation": count[kind] / evaluations,
                       "us_per_evaluation": spent[kind] / evaluations / 1000,
                       "us_each": spent[kind] / count[kind] / 1000}
                for kind in sorted(spent, key=spent.__getitem__, reverse=True)}

    def bare_session(self, sessions: int) -> float:
        """Microseconds to create, prepare for deletion and delete a session holding one fact of
        :attr:`firing_kind` (a declared kind whose catch-all rule fires), ``sessions`` times: what any
        session of this ruleset costs, whatever the patient (the engine sets up every rule's
        nodes for each session)."""
        module, handle, clock = self._module, self._handle, time.perf_counter_ns
        kind = self.firing_kind
        text = json.dumps({"sid": _BARE_SID, "id": 1, "t": kind})
        start = clock()
        for _ in range(sessions):
            state = module.assert_fact(handle, text)[1]
            if module.start_action_for_state(handle, state) is None:
                raise ValueError(f"no rule fires on a fact of kind {kind!r}: the session cannot be deleted safely")
            module.abandon_action(handle, state)
            module.delete_state(handle, _BARE_SID)
        return (clock() - start) / max(1, sessions) / 1000

    def run_reusing(self, index: int) -> list[Any]:
        """Patient ``index``'s engine calls made in one session kept for every patient, emptied by
        retracting every fact it holds where the evaluation deleted it: the engine's replies (the
        retraction's in place of the deletion's). Measures whether keeping a session beats making
        one per patient."""
        module, handle = self._module, self._handle
        replies: list[Any] = []
        state: Any = None
        held: Any = None
        for call, argument in self._reused[index]:
            if call == ASSERT:
                reply = module.assert_fact(handle, argument)
                if state is None:
                    state = self._kept_state = reply[1]
            elif call == COMPLETE:
                reply = module.complete_and_start_action(handle, state)
            elif call == START:
                reply = module.start_action_for_state(handle, state)
            elif call == READ:
                reply = held = module.get_facts(handle, argument)
            elif call == DELETE:
                reply = module.retract_facts(handle, held)
            else:
                reply = module.abandon_action(handle, state)
            replies.append(reply)
        return replies

    def check_reusing(self) -> list[str]:
        """Replay every patient once into the one kept session; what differs from the evaluation's
        replies (the retraction's reply is not compared) or what the session still holds after."""
        wrong = []
        for index, expected in enumerate(self._replies):
            try:
                got = self.run_reusing(index)
            except self._module.error as exc:
                wrong.append(f"patient {index}: the engine refused a call in the kept session ({exc})")
                self.end_reusing()
                continue
            calls = self._reused[index]
            own = next((argument for call, argument in self._calls[index] if call == DELETE), "")
            retracted = {position for position, (call, _) in enumerate(calls) if call == DELETE}
            found = _first_difference(index, [_renamed(reply, own) for reply in got], expected,
                                      " in the kept session", retracted)
            if found:
                wrong.append(found)
            left = json.loads(self._module.get_facts(self._handle, _BARE_SID))
            if left:
                wrong.append(f"patient {index}: the kept session still holds {len(left)} facts after retracting")
                break
        return wrong

    def end_reusing(self) -> None:
        """Delete the kept session of :meth:`run_reusing`, if there is one. As in the evaluation, an
        action is started (a fact of :attr:`firing_kind` asserted if none is pending) and abandoned
        first: deleting a session in which no action was ever started can crash the engine."""
        module, handle, state = self._module, self._handle, self._kept_state
        if state is None:
            return
        self._kept_state = None
        if module.start_action_for_state(handle, state) is None:
            module.assert_fact(handle, json.dumps({"sid": _BARE_SID, "id": "close", "t": self.firing_kind}))
            if module.start_action_for_state(handle, state) is None:
                raise ValueError("the kept session cannot be prepared for deletion; it is left in the engine")
        module.abandon_action(handle, state)
        module.delete_state(handle, _BARE_SID)

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
            found = _first_difference(index, got, expected)
            if found:
                wrong.append(found)
        return wrong


    def _forget(self, index: int) -> None:
        """Delete the session a replay cut short left in the engine."""
        for call, argument in self._calls[index]:
            if call == DELETE:
                try:
                    self._module.delete_state(self._handle, argument)
                except self._module.error:
                    pass  # nothing was left


_BARE_SID = "floor"  # the session of bare_session and run_reusing; recorded ones are "s" and a number
_SID_PREFIX = re.compile(r'^\{"sid":"[^"]*"')


def _call(module: Any, call: int) -> Any:
    return getattr(module, next(name for name, number in _CALLS.items() if number == call))


def _kind(call: int, argument: Any, first: bool) -> str:
    """The kind of fact an assert asserts ("" for other calls)."""
    if call != ASSERT:
        return ""
    return "first fact (creates the session)" if first else str(json.loads(argument)["t"])


def _one_session(call: int, argument: Any) -> Any:
    """A call's argument naming the kept session instead of the patient's own."""
    if call == ASSERT:
        renamed, found = _SID_PREFIX.subn('{"sid":"' + _BARE_SID + '"', argument, count=1)
        if not found:
            raise ValueError(f"an asserted fact that does not start with its sid: {argument[:80]}")
        return renamed
    if call in (READ, DELETE):
        return _BARE_SID
    return argument


def _first_difference(index: int, got: Sequence[Any], expected: Sequence[Any], where: str = "",
                      ignored: frozenset[int] | set[int] = frozenset()) -> str | None:
    """The first of a replay's replies that differs from the evaluation's, in words (None: none);
    the calls at the positions ``ignored`` are not compared."""
    if len(got) != len(expected):
        return f"patient {index}: {len(got)} engine calls{where}, {len(expected)} in the evaluation"
    for position, (reply, recorded) in enumerate(zip(got, expected)):
        if position not in ignored and _comparable(reply) != _comparable(recorded):
            return (f"patient {index}, engine call {position}{where}: {str(reply)[:120]} "
                    f"instead of {str(recorded)[:120]}")
    return None


def _renamed(reply: Any, sid: str) -> Any:
    """A reply of the kept session with the patient's own session id in its texts."""
    if isinstance(reply, str):
        return reply.replace(f'"sid":"{_BARE_SID}"', f'"sid":"{sid}"').replace(f'"sid-{_BARE_SID}"', f'"sid-{sid}"')
    if isinstance(reply, (tuple, list)):
        return type(reply)(_renamed(part, sid) for part in reply)
    return reply


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
    ruleset = compiled(protocol).ruleset
    return Replay(ruleset._handle, calls, module, ruleset._firing_kind)
