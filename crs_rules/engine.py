"""The only module that talks to the rule engine (durable_rules 2.0.28).

A :class:`CompiledRuleset` holds one engine ruleset built from plain rule definitions and runs
it by forward chaining: the caller's facts are asserted into a fresh session, every pending
action is run by its Python handler (handlers may chain new facts into the same session), and
the facts the session holds at the end are returned with the names of the rules that fired.

durable_rules fails silently in several ways. This module drives the C module
``durable_rules_engine`` directly (never ``durable.lang`` or ``durable.engine.Host``, whose
timer threads race the caller and lose results, and whose registry is global) and turns every
known failure into an exception or makes it impossible:

* A fact no rule matches is not stored and a duplicate fact is refused; inside an action the
  Python layer drops both without a word. Here one catch-all rule per declared fact kind makes
  every fact of a declared kind stored (only the first kind's fires, once per fact; the others
  are counting rules whose count no evaluation reaches, so they store without firing), and an undeclared kind, a refused fact (code 1) or a
  duplicate (code 2, or the same content asserted twice) raises :class:`EngineError`, from the
  caller and from a handler alike, even if the handler catches the exception.
* Sessions are found by a 32-bit hash of their id, at most 1,024 may be live per ruleset, and
  nothing expires. Here the caller never names a session: :meth:`CompiledRuleset.run` holds a
  per-ruleset lock for the whole evaluation (so one session is live at a time), uses a fresh
  internal session id and always deletes the session at the end, so memory stays flat.
* Fact identity is a 32-bit hash of the fact's ``id``. Facts get sequence numbers as ids (the
  decimal texts of 1 to 400,000 have distinct hashes) and, after the evaluation, every asserted
  fact must be found in the session with exactly the content asserted, or the run fails.
* Exceptions in actions are swallowed by the Python layer. Here a handler's exception aborts
  the evaluation: no partial result is ever returned.
* Deleting a session for which no action was ever started reads uninitialised engine memory
  and can crash the process (it happens when an input fact fails after others were stored).
  A session always has an action started, and abandoned if need be, before it is deleted.
* Floats written with an exponent (``1e-05``, ``1e+16``) are refused by the engine; integers
  outside the signed 64-bit range are silently clamped, so comparisons on them are wrong;
  ``null`` fails every comparison. JSON is serialised here: floats in plain decimal that reads
  back to the same float, out-of-range integers, NaN, infinity and ``None`` refused.
* Too many properties in one fact (about 250, nested ones included) is an engine error; it
  becomes :class:`EngineError`. A node with more than 512 tests under it makes ruleset
  creation hang: rule sets that could build more than 512 chains of tests are refused.
* A rule whose only test is ``$nex`` matches the engine's own session record; a firing on
  anything other than this evaluation's facts raises :class:`EngineError`, and the number of
  firings per evaluation is bounded so a runaway chain fails instead of hanging.

The engine never frees a ruleset (about 0.4 MB each): compile each pack once per process and
reuse the :class:`CompiledRuleset`. No background thread is ever started.

Signals and fork: see :mod:`crs_rules.engine_process`. Whatever exception arrives at whatever
moment (a signal handler's, in the main thread), every engine session is deleted exactly once and
never touched after, and the next evaluation is right: signals are deferred while a session is open,
and what the engine holds is tracked by flags set before each engine call that changes it, or by
replies recorded by C code with no bytecode in between (:func:`_recorded`); the cleanup may be
interrupted and resumed any number of times, and should exceptions still cut it short, the next
evaluation of the ruleset finishes it first. After ``os.fork`` every ruleset's lock is renewed in
the child, and a session left open by another thread is deleted by the child's next evaluation.

Engine semantics the compiler must still respect (they are not errors the engine reports): a
string compared with a number compares as text; ``true == 1`` and ``true == "true"``; a missing
attribute fails every test except ``$nex``; a multi-pattern rule fires once per combination of
matching facts; duplicate content is refused, so two rules deriving the same conclusion must
assert distinguishable facts.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring as _json_string
from typing import Any, NoReturn

import durable_rules_engine as _dre

from .engine_json import PreparedFact, check_fact_shape, count_properties, prepare_fact, to_engine_json
from .engine_limits import MAX_ENGINE_TESTS, engine_failure, ruleset_chain_bound, ruleset_definition
from .engine_process import DEFERRED_SIGNALS, pthread_sigmask, renew_after_fork, signal_mask, track_after_fork
from .engine_values import ActionShape, Conclusion, Firing, Handler, RunResult, parse_action, stored_facts
from .errors import EngineError

__all__ = [
    "Handler",
    "Conclusion",
    "Firing",
    "RunResult",
    "CompiledRuleset",
    "MAX_FIRINGS",
    "MAX_FACTS",
    "MAX_ENGINE_TESTS",
    "ruleset_chain_bound",
    "to_engine_json",
    "PreparedFact",
    "prepare_fact",
    "DEFERRED_SIGNALS",
    "renew_after_fork",
]

#: Default bound on the rule firings of one evaluation (catch-all rules not counted).
MAX_FIRINGS = 10_000
#: Bound on the facts of one evaluation. Fact ids are the decimal sequence numbers 1..MAX_FACTS,
#: whose texts have pairwise distinct 32-bit FNV-1a hashes (the engine's fact identity).
MAX_FACTS = 100_000

_HOLD_PREFIX = "__hold__."
#: The catch-alls of every kind but the first fire only once they hold this many facts: never.
_HOLD_COUNT = 10 * MAX_FACTS
_ruleset_counter = itertools.count(1)
#: Bound on the resumptions of one session's cleanup (each interruption is one signal).
_CLOSE_ATTEMPTS = 1000


def _recorded(replies: list[Any], function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, its reply also appended to ``replies`` by C code.

    ``list.extend`` consumes ``map`` in C: no Python bytecode runs between the engine's return
    and the append, so no exception raised by a signal handler can lose the reply.
    """
    replies.extend(map(function, *[(arg,) for arg in args]))
    return replies[-1]


# Compiled ruleset


class CompiledRuleset:
    """A rule pack compiled into one engine ruleset.

    ``rules`` maps rule names to engine rule definitions (``{"all": [{alias: pattern}, ...]}``
    or ``"any"``); patterns put the operator first (``{"$gte": {"vitals.temp": 38}}``). It is
    read, never modified. ``handlers`` maps every rule name to the function run when the rule
    fires. ``fact_kinds`` lists every value of the ``"t"`` field the pack's facts may carry;
    facts of other kinds are refused. ``label`` names the ruleset in messages.

    The engine never frees a ruleset: compile a pack once per process and reuse the object.
    Compiling the same rules twice, or two versions of a pack, gives independent rulesets.
    """

    def __init__(
        self,
        rules: Mapping[str, Mapping[str, Any]],
        handlers: Mapping[str, Handler],
        fact_kinds: Iterable[str],
        label: str,
        *,
        max_firings: int = MAX_FIRINGS,
    ) -> None:
        if not isinstance(label, str) or not label:
            raise ValueError("label must be a non-empty string")
        if max_firings < 1:
            raise ValueError("max_firings must be at least 1")
        kinds = tuple(fact_kinds)
        definition = ruleset_definition(rules, handlers, kinds, label, _HOLD_PREFIX, _HOLD_COUNT)

        safe_label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:64]
        self.label = label
        self.name = f"crs_rules.{next(_ruleset_counter)}.{safe_label}"
        self.fact_kinds: frozenset[str] = frozenset(kinds)
        self._firing_kind = kinds[0] if kinds else ""  # the one kind whose catch-all fires
        self.max_firings = max_firings
        self._rule_names = frozenset(rules)
        self._hold_action_prefix = "{" + json.dumps(_HOLD_PREFIX)[:-1]
        self._handlers: dict[str, Handler] = dict(handlers)
        self._origins: dict[str, str] = {}  # "rule <name>", made once per rule (see _drain)
        self._lock = threading.Lock()
        self._owner: int | None = None
        # The session of the current or last evaluation until it is deleted: a cleanup that an
        # exception cut short is finished by the next run (see _run_locked).
        self._open: _Session | None = None
        self._session_counter = itertools.count(1)
        # The shapes of the actions already read, and what their heads tell (see
        # engine_values.parse_action).
        self._action_shapes: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._action_heads: dict[str, ActionShape] = {}
        track_after_fork(self)
        try:
            self._handle: Any = _dre.create_ruleset(self.name, definition)
        except _dre.error as exc:
            raise engine_failure(f"{label}: creating the engine ruleset failed", exc) from exc

    def __repr__(self) -> str:
        return f"CompiledRuleset({self.name!r}, rules={len(self._rule_names)})"

    def _knows_rule(self, rule: str) -> bool:
        """A rule of this ruleset, or the catch-all of one of its fact kinds."""
        return rule in self._rule_names or (
            rule.startswith(_HOLD_PREFIX) and rule[len(_HOLD_PREFIX):] in self.fact_kinds)

    def run(self, facts: Sequence[Mapping[str, Any] | PreparedFact]) -> RunResult:
        """Evaluate ``facts`` in a fresh session and return what the session holds at the end.

        A fact is a mapping or a :class:`PreparedFact` (checked and serialised once by
        :func:`prepare_fact`; its value, when given, is what its text reads back as: the result holds a
        copy of it, and handlers read it without decoding the text; without one, what the result
        holds is read back from the engine's text). Facts are asserted in order; rules fire and
        chain until nothing is pending. Raises
        :class:`ValueError` for a malformed fact (reserved ``sid``/``id`` key, ``None``, non-JSON
        value) and :class:`EngineError` when the engine refuses or loses a fact, a handler
        fails, or the firing bound is reached. Never returns a partial result.

        Evaluations of one ruleset are serialised by a lock; it is an error for a handler to
        call ``run`` on the ruleset it belongs to.
        """
        if type(facts) is not list and (isinstance(facts, (str, bytes)) or not isinstance(facts, Sequence)):
            raise ValueError("facts must be a sequence of mappings")
        prepared = [(fact.kind, fact.text, fact.value) if type(fact) is PreparedFact
                    else (*self._prepare(fact, f"input fact {index}"), None)
                    for index, fact in enumerate(facts)]
        # Refuse what the session would refuse before any fact reaches the engine.
        texts: set[str] = set()
        for kind, text, _ in prepared:
            if kind not in self.fact_kinds:
                raise EngineError(
                    f"{self.label}: input asserted a fact of undeclared kind {kind!r} "
                    f"(declared: {sorted(self.fact_kinds)})"
                )
            if text in texts:
                raise EngineError(
                    f"{self.label}: input asserted a duplicate fact of kind {kind!r}: {text[:200]}"
                )
            texts.add(text)
        if self._owner == threading.get_ident() and self._lock.locked():
            raise EngineError(f"{self.label}: run() called from a handler of the same ruleset")
        # Defer signals from the session's creation to its deletion (main thread only; see the
        # module docstring). Reading the mask first changes nothing, so a handler that runs in
        # that call raises before anything started; from there on the mask is restored by the
        # finally, and the signals that arrived meanwhile are delivered there, after cleanup.
        previous = signal_mask()
        try:
            if previous is not None and pthread_sigmask is not None:
                pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
            return self._run_locked(prepared)
        finally:
            if previous is not None and pthread_sigmask is not None:
                pthread_sigmask(signal.SIG_SETMASK, previous)

    def _run_locked(self, prepared: list[tuple[str, str, Mapping[str, Any] | None]]) -> RunResult:
        with self._lock:
            try:
                self._owner = threading.get_ident()
                if self._open is not None:
                    # An exception cut the cleanup of an earlier evaluation short (or this is
                    # a child process forked during one): finish it before a new session.
                    self._close(self._open)
                session = _Session(self, f"s{next(self._session_counter)}")
                self._open = session  # before the session reaches the engine
                return session.evaluate(prepared)
            finally:
                try:
                    if self._open is not None:
                        # A second chance, should an exception have cut short the cleanup
                        # that evaluate() ends with.
                        self._close(self._open)
                finally:
                    self._owner = None

    def _close(self, session: _Session) -> None:
        """Delete ``session`` from the engine exactly once, even if exceptions interrupt it.

        An exception raised meanwhile (by a signal handler in the main thread) does not stop
        the cleanup: :meth:`_Session.close` is resumed until it is done, then the exception is
        raised again. Should one still cut this short, the session stays in ``_open`` and the
        next run finishes it.
        """
        interruption: BaseException | None = None
        for _ in range(_CLOSE_ATTEMPTS):
            if session.closed:
                break
            try:
                session.close()
            except BaseException as exc:  # finish the cleanup, then re-raise it
                interruption = exc
        if session.closed and self._open is session:
            self._open = None
        if interruption is not None:
            raise interruption

    def _after_fork_in_child(self) -> None:
        """In a child process: the threads that held the lock are gone; free it.

        A session they left open stays in ``_open`` and the next run deletes it. If the thread
        that forked is inside an evaluation of this ruleset, it carries on in the child with
        the lock it holds.
        """
        if self._owner != threading.get_ident():
            self._lock = threading.Lock()
            self._owner = None

    def _prepare(self, fact: Any, origin: str) -> tuple[str, str]:
        """Validate ``fact``; return its kind and canonical JSON text."""
        if type(fact) is PreparedFact:
            return fact.kind, fact.text
        kind = check_fact_shape(fact, origin)
        text = to_engine_json(fact, sort_keys=True, where=f"{origin} (kind {kind!r})")
        return kind, text


def _fact_id(sequence: int) -> int | str:
    """The engine ``id`` of the ``sequence``-th fact of an evaluation (see ``MAX_FACTS``)."""
    return sequence


_sequence_number = _fact_id
#: The texts of the first fact ids, by sequence number (index 0 unused).
_ID_TEXTS = [str(_fact_id(sequence)) for sequence in range(1024)]


def _origin(source: str | Firing) -> str:
    """Where a fact comes from, in words (built only when something is wrong)."""
    return source if isinstance(source, str) else f"rule {source.rule}"


class _Session:
    """One evaluation: a live engine session from the first assert to ``delete_state``.

    What the engine holds is tracked by flags that are set before the engine call that makes
    them true (``created``, ``deleting``) or by replies the C code itself records (``replies``,
    see :func:`_recorded`), so that :meth:`close` always knows what to undo, whatever
    exception interrupts the evaluation, and is safe to run again until ``closed``.
    """

    def __init__(self, ruleset: CompiledRuleset, sid: str) -> None:
        self.ruleset = ruleset
        self.handle = ruleset._handle
        self.kinds = ruleset.fact_kinds
        self.sid = sid
        # Every fact of this session starts its engine text with this, then its id and a comma.
        self.fact_prefix = '{"sid":' + _json_string(sid) + ',"id":'
        self.state: Any = None
        # Fact ids are the sequence numbers 1, 2, ... (see MAX_FACTS): the texts of the first ones
        # are made once (unless _fact_id was replaced).
        self.id_texts = _ID_TEXTS if _fact_id is _sequence_number else None
        # id's JSON text (as actions write it) -> the text given to the engine, less fact_prefix
        self.tails: dict[str, str] = {}
        # For each fact, in order: its id's text, kind, text without sid/id, content if known.
        self.asserted: list[tuple[str, str, str, Mapping[str, Any] | None]] = []
        self.seen: set[str] = set()
        # id's text -> content, for the facts whose content is known (see Firing.read)
        self.values: dict[str, Mapping[str, Any]] = {}
        self.fired: list[str] = []
        self.current: Firing | None = None
        self.failure: BaseException | None = None  # a failed assert inside a handler
        # Engine bookkeeping for close().
        self.created = False  # the first assert was (or is about to be) called
        self.first_assert: list[Any] = []  # its reply (code, state), appended by C code
        self.first_start: list[Any] = []  # reply of the first start_action_for_state, likewise
        self.deleting = False  # delete_state was (or is about to be) called
        self.closed = False
        self.close_error: EngineError | None = None

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self, prepared: list[tuple[str, str, Mapping[str, Any] | None]]) -> RunResult:
        succeeded = False
        try:
            for kind, text, value in prepared:
                self._assert(kind, text, "input", value)
            self._drain()
            result = self._collect()
            succeeded = True
            return result
        finally:
            self.ruleset._close(self)
            self.current = None
            if succeeded and self.close_error is not None:
                raise self.close_error

    def close(self) -> None:
        """Undo what the engine holds for this session, exactly once; idempotent.

        Every step may be interrupted and the method run again: an action's texts are freed
        twice harmlessly (the engine sets them to NULL), ``delete_state`` a second time finds
        nothing (error 309, as no other session of the ruleset is live meanwhile), and no call
        naming the session's state is made once ``delete_state`` may have run. An engine
        failure is kept in ``close_error``; if the session could not be prepared for deletion
        it is left in the engine rather than risk a crash.
        """
        if self.closed:
            return
        if self.created and not self.deleting:
            state = self.state
            if state is None and self.first_assert:
                state = self.state = self.first_assert[0][1]
            if state is None:
                # The first assert raised or never ran: the engine made no session.
                self.closed = True
                return
            try:
                if self.first_start.count(None) < len(self.first_start):  # one was started
                    # Frees the texts of an open action (the chain was cut short); a no-op
                    # for a closed one.
                    _dre.abandon_action(self.handle, state)
                elif not self._initialise_for_delete(state):
                    self.close_error = EngineError(
                        f"{self.ruleset.label}: the engine session could not be closed; it is "
                        "left in the engine"
                    )
                    self.closed = True
                    return
            except _dre.error as exc:
                self.close_error = engine_failure(
                    f"{self.ruleset.label}: closing the session failed", exc
                )
                self.closed = True
                return
        if self.created:
            self.deleting = True
            try:
                _dre.delete_state(self.handle, self.sid)
            except _dre.error as exc:
                # Error 309 (nothing to delete) when delete_state already ran before an
                # interruption; any other error is reported after a successful evaluation.
                if "309" not in str(exc) and self.close_error is None:
                    self.close_error = engine_failure(
                        f"{self.ruleset.label}: deleting the session failed", exc
                    )
        self.closed = True

    def _initialise_for_delete(self, state: Any) -> bool:
        """Start and abandon an action so that deleting the session is safe.

        Deleting a session for which no action was ever started reads uninitialised engine
        memory and can crash the process (seen after a fact failed part-way through the
        input). A session with no action pending (a refused first fact, or facts no firing rule
        matched) is given a fact of the first declared kind, whose catch-all fires. False if no action could be started.
        """
        for _ in range(2):
            if _recorded(self.first_start, _dre.start_action_for_state, self.handle, state):
                _dre.abandon_action(self.handle, state)
                return True
            kind = self.ruleset._firing_kind  # its catch-all fires: an action to start
            if not kind:
                break
            sentinel = {"sid": self.sid, "id": "__close__", "t": kind}
            _dre.assert_fact(self.handle, json.dumps(sentinel))
        return False

    def _drain(self) -> None:
        """Run every pending action, each by its rule's handler, until none is pending."""
        label = self.ruleset.label
        firings = 0
        try:
            started = (
                _recorded(self.first_start, _dre.start_action_for_state, self.handle, self.state)
                if self.asserted
                else None
            )
        except _dre.error as exc:
            raise engine_failure(f"{label}: starting the first action failed", exc) from exc
        action: str | None = None if started is None else started[1]
        ruleset = self.ruleset
        hold_prefix, max_firings, handlers = ruleset._hold_action_prefix, ruleset.max_firings, ruleset._handlers
        hold_length = len(hold_prefix)
        prefix, tails, known_rule = self.fact_prefix, self.tails, ruleset._knows_rule
        heads, shapes = ruleset._action_heads, ruleset._action_shapes
        fired, complete, handle = self.fired, _dre.complete_and_start_action, self.handle
        origins, assert_fact = ruleset._origins, self._assert
        rule = ""
        while action is not None:
            if action[:hold_length] == hold_prefix:
                # A catch-all rule (pattern {"t": kind}): it only keeps the fact stored, and it
                # cannot match the session record, which has no "t".
                rule = "catch-all"
            else:
                rule, matched = parse_action(action, prefix, tails, label, known_rule, heads, shapes)
                firings += 1
                if firings > max_firings:
                    raise EngineError(
                        f"{label}: more than {max_firings} rule firings in one "
                        f"evaluation (last: {rule}); the rules chain without end"
                    )
                fired.append(rule)
                handler = handlers[rule]
                if type(handler) is Conclusion:
                    # Reads nothing of the firing: no Firing is built, its facts are asserted here.
                    origin = origins.get(rule)
                    if origin is None:
                        origin = origins[rule] = f"rule {rule}"
                    try:
                        for fact in handler.draw():
                            if type(fact) is PreparedFact:
                                assert_fact(fact.kind, fact.text, origin, fact.value)
                            else:
                                assert_fact(*ruleset._prepare(fact, origin), origin)
                    except Exception as exc:
                        raise EngineError(f"{label}: rule {rule} failed: {type(exc).__name__}: {exc}") from exc
                else:
                    # The rule's handler, with the firing valid while it runs.
                    firing = Firing(rule, matched, self)
                    self.current = firing
                    try:
                        returned: Any = handler(firing)
                    except Exception as exc:
                        raise EngineError(f"{label}: rule {rule} failed: {type(exc).__name__}: {exc}") from exc
                    finally:
                        self.current = None
                    if self.failure is not None or returned is not None:
                        self._handler_failed(rule, returned)
            try:
                action = complete(handle, self.state)
            except _dre.error as exc:
                action_name = f"{label}: completing the action of {rule}"
                raise engine_failure(f"{action_name} failed", exc) from exc

    def _handler_failed(self, rule: str, returned: Any) -> NoReturn:
        """The error of a handler that caught the failure of its own assert, or returned a value."""
        label = self.ruleset.label
        if self.failure is not None:
            # The handler caught the failure of its own assert_fact: fail anyway.
            if isinstance(self.failure, EngineError):
                raise self.failure
            raise EngineError(f"{label}: rule {rule} failed: {self.failure}") from self.failure
        if hasattr(returned, "close"):
            returned.close()  # a coroutine from an async handler: never awaited
        raise EngineError(
            f"{label}: rule {rule} handler returned {type(returned).__name__}; handlers "
            "must return None (async handlers are not supported)"
        )

    # -- asserting -----------------------------------------------------------------------------

    def assert_from_handler(self, firing: Firing, fact: Mapping[str, Any] | PreparedFact) -> None:
        if self.current is not firing:
            raise EngineError(
                f"{self.ruleset.label}: assert_fact of rule {firing.rule} called after its "
                "handler returned"
            )
        try:
            if type(fact) is PreparedFact:
                self._assert(fact.kind, fact.text, firing, fact.value)
            else:
                origin = f"rule {firing.rule}"
                kind, text = self.ruleset._prepare(fact, origin)
                self._assert(kind, text, origin)
        except (ValueError, EngineError) as exc:
            if self.failure is None:
                self.failure = exc
            raise

    def _fail(self, message: str) -> NoReturn:
        raise EngineError(f"{self.ruleset.label}: {message}")

    def _assert(self, kind: str, text: str, source: str | Firing, value: Mapping[str, Any] | None = None) -> None:
        """Assert one fact; ``source`` is where it comes from (a firing: that rule); ``value``, its
        content read back from ``text`` when known."""
        if kind not in self.kinds:
            self._fail(
                f"{_origin(source)} asserted a fact of undeclared kind {kind!r} "
                f"(declared: {sorted(self.kinds)})"
            )
        seen, asserted = self.seen, self.asserted
        if text in seen:
            self._fail(f"{_origin(source)} asserted a duplicate fact of kind {kind!r}: {text[:200]}")
        sequence = len(asserted) + 1
        if sequence > MAX_FACTS:
            self._fail(f"more than {MAX_FACTS} facts in one evaluation ({_origin(source)})")
        ids = self.id_texts
        if ids is not None and sequence < len(ids):
            token = ids[sequence]
        else:
            fact_id = _fact_id(sequence)
            token = str(fact_id) if type(fact_id) is int else json.dumps(fact_id)  # as the engine writes it
        # ``text`` is a non-empty JSON object (it has "t"): splice the engine's keys in front.
        tail = f"{token},{text[1:]}"
        engine_text = self.fact_prefix + tail
        try:
            if self.created:
                code, state = _dre.assert_fact(self.handle, engine_text)
            else:
                # The first assert creates the session: its state must never be lost.
                self.created = True
                code, state = _recorded(self.first_assert, _dre.assert_fact, self.handle,
                                        engine_text)
        except _dre.error as exc:
            raise engine_failure(
                f"{self.ruleset.label}: {_origin(source)}: the engine refused a fact of kind {kind!r} "
                f"with {count_properties(json.loads(text))} properties", exc
            ) from exc
        if code:
            self._refused(code, kind, _origin(source))
        if self.state is None:
            self.state = state
        elif state != self.state:
            self._fail(f"{_origin(source)}: the engine put a fact in another session ({state})")
        self.tails[token] = tail
        if value is not None:
            self.values[token] = value
        asserted.append((token, kind, text, value))
        seen.add(text)

    def _refused(self, code: int, kind: str, origin: str) -> NoReturn:
        if code == 1:
            self._fail(f"{origin}: the engine did not handle a fact of kind {kind!r} (code 1)")
        if code == 2:
            self._fail(
                f"{origin}: the engine reported a fact of kind {kind!r} as a duplicate (code 2; "
                "its 32-bit fact identity hash collided)"
            )
        self._fail(f"{origin}: unexpected engine result {code} for a fact of kind {kind!r}")

    # -- results -------------------------------------------------------------------------------

    def _collect(self) -> RunResult:
        label = self.ruleset.label
        if not self.asserted:
            return RunResult(facts=(), fired=tuple(self.fired))
        try:
            raw = _dre.get_facts(self.handle, self.sid)
        except _dre.error as exc:
            raise engine_failure(f"{label}: reading the session's facts failed", exc) from exc
        facts = stored_facts(raw, self.fact_prefix, self.tails, self.asserted, label)
        return RunResult(facts=facts, fired=tuple(self.fired))
