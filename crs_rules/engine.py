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
  every fact of a declared kind stored, and an undeclared kind, a refused fact (code 1) or a
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

Engine semantics the compiler must still respect (they are not errors the engine reports): a
string compared with a number compares as text; ``true == 1`` and ``true == "true"``; a missing
attribute fails every test except ``$nex``; a multi-pattern rule fires once per combination of
matching facts; duplicate content is refused, so two rules deriving the same conclusion must
assert distinguishable facts.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import re
import signal
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring as _encode_string  # the ensure_ascii=False form
from typing import Any, NoReturn

import durable_rules_engine as _dre

from crs_rules.errors import EngineError

__all__ = [
    "Handler",
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

Handler = Callable[["Firing"], None]

#: Default bound on the rule firings of one evaluation (catch-all rules not counted).
MAX_FIRINGS = 10_000
#: Bound on the facts of one evaluation. Fact ids are the decimal sequence numbers 1..MAX_FACTS,
#: whose texts have pairwise distinct 32-bit FNV-1a hashes (the engine's fact identity).
MAX_FACTS = 100_000
#: More than 512 tests under one engine node make ruleset creation hang (513 rules testing one
#: kind do); :func:`ruleset_chain_bound` of a ruleset must stay at or below this.
MAX_ENGINE_TESTS = 512

_HOLD_PREFIX = "__hold__."
_RESERVED_KEYS = frozenset({"sid", "id"})
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_ENGINE_HINTS = {
    "202": "a rule definition is malformed (operators come first: {'$gte': {'x': 1}})",
    "204": "a number could not be parsed",
    "302": "too many properties in one fact (the engine accepts about 250, nested ones included)",
}

_ruleset_counter = itertools.count(1)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_SORTED_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
)


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
_pthread_sigmask: Callable[[int, Iterable[int]], set[int]] | None = getattr(
    importlib.import_module("_signal"), "pthread_sigmask", None
)
#: Bound on the resumptions of one session's cleanup (each interruption is one signal).
_CLOSE_ATTEMPTS = 1000


def _signal_mask() -> set[int] | None:
    """The calling thread's signal mask if it is the main thread, else None (nothing to defer).

    Python runs signal handlers in the main thread only, so only there can a signal raise an
    exception in the middle of an evaluation.
    """
    if _pthread_sigmask is None or threading.get_ident() != threading.main_thread().ident:
        return None
    return _pthread_sigmask(signal.SIG_BLOCK, ())


def _recorded(replies: list[Any], function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, its reply also appended to ``replies`` by C code.

    ``list.extend`` consumes ``map`` in C: no Python bytecode runs between the engine's return
    and the append, so no exception raised by a signal handler can lose the reply.
    """
    replies.extend(map(function, *[(arg,) for arg in args]))
    return replies[-1]


# --------------------------------------------------------------------------------------------
# Fork safety

_rulesets: weakref.WeakSet[CompiledRuleset] = weakref.WeakSet()
_renewals: list[tuple[weakref.ref[Any], dict[str, Callable[[], object]]]] = []


def renew_after_fork(target: object, **factories: Callable[[], object]) -> None:
    """In a child process made by ``os.fork``, give ``target`` fresh attribute values.

    ``renew_after_fork(self, _lock=threading.Lock, _cache=dict)`` sets ``target._lock`` to a new
    lock and ``target._cache`` to a new dict in the child, right after the fork: a lock another
    thread held at the fork would otherwise stay held for ever in the child (that thread does
    not exist there). ``target`` is held weakly (a module works too). Every
    :class:`CompiledRuleset` does this for its own lock.
    """
    _renewals.append((weakref.ref(target), dict(factories)))


def _after_fork_in_child() -> None:
    for ruleset in list(_rulesets):
        ruleset._after_fork_in_child()
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


# --------------------------------------------------------------------------------------------
# JSON serialisation


def _float_text(value: float, where: str) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    text = float.__repr__(value)
    if "e" in text or "E" in text:
        # The engine refuses exponent notation: write the same digits in plain decimal.
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"  # keep it a float when read back
    return text


def _encode(value: Any, out: list[str], where: str, sort_keys: bool) -> None:
    """The careful encoder: validates everything and names the place of a bad value."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where}: string is not valid Unicode text") from exc
        out.append(_encode_string(str.__str__(value)))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(
                f"{where}: integer {value} is outside the signed 64-bit range (the engine "
                "clamps it, so comparisons on it would be wrong)"
            )
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value, where))
    elif isinstance(value, Mapping):
        items = list(value.items())
        for key, _ in items:
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
        if sort_keys:
            items.sort(key=lambda item: str.__str__(item[0]))
        out.append("{")
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            out.append(_encode_string(str.__str__(key)))
            out.append(":")
            _encode(item, out, f"{where}.{key}", sort_keys)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, f"{where}[{index}]", sort_keys)
        out.append("]")
    elif value is None:
        raise ValueError(
            f"{where}: None is not allowed (the engine's null fails every comparison; "
            "leave the field out or give it a value)"
        )
    else:
        raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


def _plain(value: Any) -> bool:
    """True when the standard encoder writes ``value`` exactly as :func:`_encode` would.

    That is: only dicts with string keys, lists, tuples, exact strings of valid text, booleans,
    64-bit integers and finite floats whose ``repr`` has no exponent. Anything else goes
    through the careful encoder, which also reports what is wrong.
    """
    kind = type(value)
    if kind is str:
        return bool(value.isascii()) or _encodable(value)
    if kind is int:
        return bool(_INT64_MIN <= value <= _INT64_MAX)
    if kind is float:
        return math.isfinite(value) and "e" not in float.__repr__(value)
    if kind is bool:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_engine_json(value: Any, *, sort_keys: bool = False, where: str = "value") -> str:
    """Serialise ``value`` as JSON the engine reads correctly.

    Floats are written in plain decimal with the shortest digits that read back to the same
    float (never with an exponent); NaN, infinity, ``None``, integers outside the signed 64-bit
    range and non-JSON types raise :class:`ValueError`. Strings are written as UTF-8, the way
    rule definitions and facts must both be written since the engine compares string texts.
    The text is compact and, with ``sort_keys``, canonical.
    """
    if _plain(value):
        return (_SORTED_ENCODER if sort_keys else _ENCODER).encode(value)
    out: list[str] = []
    _encode(value, out, where, sort_keys)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Public values


@dataclass(frozen=True)
class Firing:
    """One firing of a rule: its name and the facts it matched, by alias.

    The matched facts are fresh copies without the engine's ``sid``/``id`` keys. Valid only
    while the rule's handler runs.
    """

    rule: str
    matched: Mapping[str, Mapping[str, Any]]
    _session: _Session = field(repr=False, compare=False)

    def assert_fact(self, fact: Mapping[str, Any] | PreparedFact) -> None:
        """Chain ``fact`` into the evaluation this firing belongs to.

        ``fact`` is a mapping, or a :class:`PreparedFact` (checked and serialised once, ahead of
        time, by :func:`prepare_fact`: the fast path for a fact a handler asserts every time).
        Raises :class:`ValueError` for a malformed fact and :class:`EngineError` when the engine
        would not store it. Either failure also fails the whole evaluation, even if the handler
        catches the exception.
        """
        self._session.assert_from_handler(self, fact)


@dataclass(frozen=True)
class PreparedFact:
    """A fact already checked and serialised (:func:`prepare_fact`): its kind and canonical JSON."""

    kind: str
    text: str


def prepare_fact(fact: Mapping[str, Any], origin: str = "fact") -> PreparedFact:
    """Check ``fact`` as :meth:`Firing.assert_fact` would and serialise it once.

    Raises :class:`ValueError` for a malformed fact, naming ``origin``. The fact's kind is checked
    against the ruleset's when it is asserted.
    """
    kind = _check_fact_shape(fact, origin)
    return PreparedFact(kind, to_engine_json(fact, sort_keys=True, where=f"{origin} (kind {kind!r})"))


class _Matched(Mapping[str, Mapping[str, Any]]):
    """The facts a firing matched, by alias, each decoded from its engine text on first reading:
    a fresh copy per firing, without ``sid``/``id``. A handler that never reads a fact (most
    never read the observation) never pays for decoding it."""

    __slots__ = ("_texts", "_decoded")

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts
        self._decoded: dict[str, dict[str, Any]] = {}

    def __getitem__(self, alias: str) -> dict[str, Any]:
        found = self._decoded.get(alias)
        if found is None:
            found = json.loads(self._texts[alias])
            del found["sid"], found["id"]
            self._decoded[alias] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, alias: object) -> bool:
        return alias in self._texts


@dataclass(frozen=True)
class RunResult:
    """The outcome of one evaluation."""

    facts: tuple[Mapping[str, Any], ...]
    """Every fact the session held at the end, in assertion order, without ``sid``/``id``."""
    fired: tuple[str, ...]
    """Names of the rules that fired, in firing order (catch-all rules excluded)."""


# --------------------------------------------------------------------------------------------
# Validation helpers


def _check_fact_shape(fact: Any, origin: str) -> str:
    """Check the caller-visible shape of a fact; return its kind."""
    if not isinstance(fact, Mapping):
        raise ValueError(f"{origin}: a fact must be a mapping, not {type(fact).__name__}")
    for key in fact:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{origin}: fact key {key!r} is not a non-empty string")
        if key in _RESERVED_KEYS:
            raise ValueError(f"{origin}: fact key {key!r} is reserved for the engine")
        if "." in key or key.startswith("$"):
            raise ValueError(f"{origin}: fact key {key!r} may not contain '.' or start with '$'")
    kind = fact.get("t")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{origin}: a fact needs a non-empty string field 't' naming its kind")
    return kind


def _pattern_chains(pattern: Any) -> int:
    """Upper bound of the chains of tests the engine builds for one pattern.

    The engine expands a pattern into alternatives (``$or``), each a chain of tests from the
    root of its network. A pattern whose value nests further structure (array operators) is
    counted as one chain per scalar in it.
    """
    if isinstance(pattern, Mapping) and len(pattern) == 1:
        ((key, value),) = pattern.items()
        if key in ("$and", "$or") and isinstance(value, (list, tuple)):
            parts = [_pattern_chains(item) for item in value]
            if key == "$or":
                return max(1, sum(parts))
            product = 1
            for part in parts:
                product *= part
            return product
        if not isinstance(value, (Mapping, list, tuple)):
            return 1  # equality on one field
        if isinstance(value, Mapping) and len(value) == 1:
            (inner,) = value.values()
            if not isinstance(inner, (Mapping, list, tuple)):
                return 1  # one operator on one field
    return max(1, _count_scalars(pattern))


def _count_scalars(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_count_scalars(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_count_scalars(item) for item in value)
    return 1


def _rule_chains(rule: Mapping[str, Any]) -> int:
    total = 0
    for key in ("all", "any"):
        for element in rule.get(key) or ():
            if not isinstance(element, Mapping):
                continue
            for alias, pattern in element.items():
                if isinstance(alias, str) and alias.endswith(("$all", "$any")):
                    nested = pattern if isinstance(pattern, (list, tuple)) else ()
                    total += _rule_chains({"all": nested})
                else:
                    total += _pattern_chains(pattern)
    return total


def ruleset_chain_bound(rules: Mapping[str, Mapping[str, Any]], fact_kinds: Iterable[str]) -> int:
    """Upper bound of the test chains the engine builds for ``rules`` and their catch-alls.

    No engine node can have more tests under it than there are chains passing through it, so
    when this is at most :data:`MAX_ENGINE_TESTS` the engine cannot hang while compiling.
    """
    return sum(_rule_chains(rule) for rule in rules.values()) + len(tuple(fact_kinds))


def _count_properties(value: Any) -> int:
    if isinstance(value, Mapping):
        return len(value) + sum(_count_properties(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_count_properties(item) for item in value)
    return 0


def _engine_failure(action: str, exc: BaseException) -> EngineError:
    message = str(exc)
    code = re.search(r"error code: (\d+)", message)
    hint = _ENGINE_HINTS.get(code.group(1), "") if code else ""
    return EngineError(f"{action}: {message}" + (f" ({hint})" if hint else ""))


# --------------------------------------------------------------------------------------------
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
        for kind in kinds:
            if not isinstance(kind, str) or not kind:
                raise ValueError(f"{label}: fact kind {kind!r} is not a non-empty string")
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"{label}: fact kinds are listed more than once: {kinds!r}")
        for name, rule in rules.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"{label}: rule name {name!r} is not a non-empty string")
            if name.startswith("__"):
                raise ValueError(f"{label}: rule name {name!r} is reserved (starts with '__')")
            if not isinstance(rule, Mapping) or not ("all" in rule or "any" in rule):
                raise ValueError(f"{label}: rule {name!r} needs an 'all' or 'any' list")
            if "run" in rule:
                raise ValueError(f"{label}: rule {name!r}: give its action in handlers, not 'run'")
            if not callable(handlers.get(name)):
                raise ValueError(f"{label}: rule {name!r} has no handler")
        extra = sorted(set(handlers) - set(rules))
        if extra:
            raise ValueError(f"{label}: handlers without a rule: {extra}")

        definition_parts = [
            f"{json.dumps(name, ensure_ascii=False)}:"
            + to_engine_json(rule, where=f"{label}: rule {name}")
            for name, rule in rules.items()
        ]
        for kind in kinds:
            hold_name = json.dumps(_HOLD_PREFIX + kind, ensure_ascii=False)
            pattern = to_engine_json({"all": [{"m": {"t": kind}}]})
            definition_parts.append(f"{hold_name}:{pattern}")
        bound = ruleset_chain_bound(rules, kinds)
        if bound > MAX_ENGINE_TESTS:
            raise ValueError(
                f"{label}: the rules and catch-alls may build up to {bound} chains of engine "
                f"tests; more than {MAX_ENGINE_TESTS} tests under one node make the engine hang "
                f"while compiling, so at most {MAX_ENGINE_TESTS} chains are accepted"
            )

        safe_label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:64]
        self.label = label
        self.name = f"crs_rules.{next(_ruleset_counter)}.{safe_label}"
        self.fact_kinds: frozenset[str] = frozenset(kinds)
        self.max_firings = max_firings
        self._rule_names = frozenset(rules)
        self._hold_action_prefix = "{" + json.dumps(_HOLD_PREFIX)[:-1]
        self._handlers: dict[str, Handler] = dict(handlers)
        self._lock = threading.Lock()
        self._owner: int | None = None
        # The session of the current or last evaluation until it is deleted: a cleanup that an
        # exception cut short is finished by the next run (see _run_locked).
        self._open: _Session | None = None
        self._session_counter = itertools.count(1)
        _rulesets.add(self)
        try:
            definition = "{" + ",".join(definition_parts) + "}"
            self._handle: Any = _dre.create_ruleset(self.name, definition)
        except _dre.error as exc:
            raise _engine_failure(f"{label}: creating the engine ruleset failed", exc) from exc

    def __repr__(self) -> str:
        return f"CompiledRuleset({self.name!r}, rules={len(self._rule_names)})"

    def run(self, facts: Sequence[Mapping[str, Any]]) -> RunResult:
        """Evaluate ``facts`` in a fresh session and return what the session holds at the end.

        Facts are asserted in order; rules fire and chain until nothing is pending. Raises
        :class:`ValueError` for a malformed fact (reserved ``sid``/``id`` key, ``None``, non-JSON
        value) and :class:`EngineError` when the engine refuses or loses a fact, a handler
        fails, or the firing bound is reached. Never returns a partial result.

        Evaluations of one ruleset are serialised by a lock; it is an error for a handler to
        call ``run`` on the ruleset it belongs to.
        """
        if isinstance(facts, (str, bytes)) or not isinstance(facts, Sequence):
            raise ValueError("facts must be a sequence of mappings")
        prepared = [self._prepare(fact, f"input fact {index}") for index, fact in enumerate(facts)]
        # Refuse what the session would refuse before any fact reaches the engine.
        texts: set[str] = set()
        for kind, text in prepared:
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
        previous = _signal_mask()
        try:
            if previous is not None and _pthread_sigmask is not None:
                _pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
            return self._run_locked(prepared)
        finally:
            if previous is not None and _pthread_sigmask is not None:
                _pthread_sigmask(signal.SIG_SETMASK, previous)

    def _run_locked(self, prepared: list[tuple[str, str]]) -> RunResult:
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
        kind = _check_fact_shape(fact, origin)
        text = to_engine_json(fact, sort_keys=True, where=f"{origin} (kind {kind!r})")
        return kind, text


def _id_text(fact_id: int | str) -> str:
    return str(fact_id) if type(fact_id) is int else json.dumps(fact_id)


def _fact_id(sequence: int) -> int | str:
    """The engine ``id`` of the ``sequence``-th fact of an evaluation (see ``MAX_FACTS``)."""
    return sequence


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
        self.sid = sid
        self.sid_json = json.dumps(sid)
        # Every fact of this session starts its engine text with this, then its id and a comma.
        self.fact_prefix = f'{{"sid":{self.sid_json},"id":'
        self.state: Any = None
        self.texts: dict[int | str, str] = {}  # fact id -> text given to the engine, in order
        self.kinds: dict[int | str, str] = {}
        self.seen: set[str] = set()
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

    def evaluate(self, prepared: list[tuple[str, str]]) -> RunResult:
        succeeded = False
        try:
            for kind, text in prepared:
                self._assert(kind, text, "input")
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
                self.close_error = _engine_failure(
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
                    self.close_error = _engine_failure(
                        f"{self.ruleset.label}: deleting the session failed", exc
                    )
        self.closed = True

    def _initialise_for_delete(self, state: Any) -> bool:
        """Start and abandon an action so that deleting the session is safe.

        Deleting a session for which no action was ever started reads uninitialised engine
        memory and can crash the process (seen after a fact failed part-way through the
        input). Every stored fact leaves a catch-all action pending; a session that stored
        none (a refused first fact) is given one. False if no action could be started.
        """
        for _ in range(2):
            if _recorded(self.first_start, _dre.start_action_for_state, self.handle, state):
                _dre.abandon_action(self.handle, state)
                return True
            kind = next(iter(self.kinds.values()), None) or min(self.ruleset.fact_kinds, default="")
            if not kind:
                break
            sentinel = {"sid": self.sid, "id": "__close__", "t": kind}
            _dre.assert_fact(self.handle, json.dumps(sentinel))
        return False

    def _drain(self) -> None:
        label = self.ruleset.label
        firings = 0
        try:
            started = (
                _recorded(self.first_start, _dre.start_action_for_state, self.handle, self.state)
                if self.texts
                else None
            )
        except _dre.error as exc:
            raise _engine_failure(f"{label}: starting the first action failed", exc) from exc
        action: str | None = None if started is None else started[1]
        while action is not None:
            if action.startswith(self.ruleset._hold_action_prefix):
                # A catch-all rule (pattern {"t": kind}): it only keeps the fact stored, and it
                # cannot match the session record, which has no "t".
                rule = "catch-all"
            else:
                rule, matched = self._parse_action(action)
                firings += 1
                if firings > self.ruleset.max_firings:
                    raise EngineError(
                        f"{label}: more than {self.ruleset.max_firings} rule firings in one "
                        f"evaluation (last: {rule}); the rules chain without end"
                    )
                self.fired.append(rule)
                self._run_handler(rule, matched)
            try:
                action = _dre.complete_and_start_action(self.handle, self.state)
            except _dre.error as exc:
                action_name = f"{label}: completing the action of {rule}"
                raise _engine_failure(f"{action_name} failed", exc) from exc

    def _parse_action(self, action: str) -> tuple[str, Mapping[str, Mapping[str, Any]]]:
        """The rule an action names and the facts it matched (decoded when a handler reads them).

        The engine writes each matched fact as the exact text it was given, which begins with the
        session's ``fact_prefix`` and the fact's id (text inside a fact is JSON-escaped, so that
        prefix cannot occur in it). Each such text is found and checked to be exactly the one
        asserted under that id, and replaced by the id before the small rest is decoded; anything
        else the action holds stays as the engine wrote it and is refused below.
        """
        label = self.ruleset.label
        prefix, texts = self.fact_prefix, self.texts
        pieces: list[str] = []
        found: dict[int, str] = {}
        start = 0
        position = action.find(prefix)
        while position >= 0:
            digits = position + len(prefix)
            end = action.find(",", digits)
            token = action[digits:end] if end > 0 else ""
            fact_id = int(token) if token.isascii() and token.isdigit() else None
            text = texts.get(fact_id) if fact_id is not None else None
            if fact_id is None or text is None or not action.startswith(text, position):
                raise EngineError(
                    f"{label}: an action holds a fact of this evaluation whose text is not the one "
                    f"asserted: {action[position:position + 200]}"
                )
            found[fact_id] = text
            pieces.append(action[start:position])
            pieces.append(token)
            start = position + len(text)
            position = action.find(prefix, start)
        pieces.append(action[start:])
        message = json.loads("".join(pieces))
        if not isinstance(message, dict) or len(message) != 1:
            raise EngineError(f"{label}: unexpected action from the engine: {action[:200]}")
        ((rule, raw),) = message.items()
        if not isinstance(raw, dict):
            raise EngineError(f"{label}: unexpected action from the engine: {action[:200]}")
        if rule not in self.ruleset._rule_names and not (
            rule.startswith(_HOLD_PREFIX) and rule[len(_HOLD_PREFIX):] in self.ruleset.fact_kinds
        ):
            raise EngineError(f"{label}: the engine fired an unknown rule {rule!r}")
        matched: dict[str, str] = {}
        for alias, fact in raw.items():
            if type(fact) is not int or fact not in found:
                raise EngineError(
                    f"{label}: rule {rule} matched something that is not a fact of this "
                    f"evaluation (a pattern that only tests $nex matches the engine's session "
                    f"record): {json.dumps(fact)[:200]}"
                )
            matched[alias] = found[fact]
        return rule, _Matched(matched)

    def _run_handler(self, rule: str, matched: Mapping[str, Mapping[str, Any]]) -> None:
        label = self.ruleset.label
        firing = Firing(rule, matched, self)
        self.current = firing
        try:
            returned: Any = self.ruleset._handlers[rule](firing)
        except Exception as exc:
            raise EngineError(f"{label}: rule {rule} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.current = None
        if self.failure is not None:
            # The handler caught the failure of its own assert_fact: fail anyway.
            if isinstance(self.failure, EngineError):
                raise self.failure
            raise EngineError(f"{label}: rule {rule} failed: {self.failure}") from self.failure
        if returned is not None:
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
        origin = f"rule {firing.rule}"
        try:
            kind, text = self.ruleset._prepare(fact, origin)
            self._assert(kind, text, origin)
        except (ValueError, EngineError) as exc:
            if self.failure is None:
                self.failure = exc
            raise

    def _fail(self, message: str) -> NoReturn:
        raise EngineError(f"{self.ruleset.label}: {message}")

    def _assert(self, kind: str, text: str, origin: str) -> None:
        if kind not in self.ruleset.fact_kinds:
            self._fail(
                f"{origin} asserted a fact of undeclared kind {kind!r} "
                f"(declared: {sorted(self.ruleset.fact_kinds)})"
            )
        if text in self.seen:
            self._fail(f"{origin} asserted a duplicate fact of kind {kind!r}: {text[:200]}")
        sequence = len(self.texts) + 1
        if sequence > MAX_FACTS:
            self._fail(f"more than {MAX_FACTS} facts in one evaluation ({origin})")
        fact_id = _fact_id(sequence)
        # ``text`` is a non-empty JSON object (it has "t"): splice the engine's keys in front.
        engine_text = f'{{"sid":{self.sid_json},"id":{_id_text(fact_id)},{text[1:]}'
        try:
            if self.created:
                code, state = _dre.assert_fact(self.handle, engine_text)
            else:
                # The first assert creates the session: its state must never be lost.
                self.created = True
                code, state = _recorded(self.first_assert, _dre.assert_fact, self.handle,
                                        engine_text)
        except _dre.error as exc:
            raise _engine_failure(
                f"{self.ruleset.label}: {origin}: the engine refused a fact of kind {kind!r} "
                f"with {_count_properties(json.loads(text))} properties", exc
            ) from exc
        if code == 1:
            self._fail(f"{origin}: the engine did not handle a fact of kind {kind!r} (code 1)")
        if code == 2:
            self._fail(
                f"{origin}: the engine reported a fact of kind {kind!r} as a duplicate (code 2; "
                "its 32-bit fact identity hash collided)"
            )
        if code != 0:
            self._fail(f"{origin}: unexpected engine result {code} for a fact of kind {kind!r}")
        if self.state is None:
            self.state = state
        elif state != self.state:
            self._fail(f"{origin}: the engine put a fact in another session ({state})")
        self.texts[fact_id] = engine_text
        self.kinds[fact_id] = kind
        self.seen.add(text)

    # -- results -------------------------------------------------------------------------------

    def _collect(self) -> RunResult:
        label = self.ruleset.label
        if not self.texts:
            return RunResult(facts=(), fired=tuple(self.fired))
        try:
            raw = _dre.get_facts(self.handle, self.sid)
        except _dre.error as exc:
            raise _engine_failure(f"{label}: reading the session's facts failed", exc) from exc
        by_id: dict[int | str, dict[str, Any]] = {}
        for fact in json.loads(raw):
            fact_id = fact.get("id")
            if fact.get("sid") != self.sid or fact_id not in self.texts or fact_id in by_id:
                self._fail(f"the session holds an unexpected fact: {json.dumps(fact)[:200]}")
            del fact["sid"], fact["id"]
            by_id[fact_id] = fact
        missing = [fact_id for fact_id in self.texts if fact_id not in by_id]
        if missing:
            kinds = sorted({self.kinds[fact_id] for fact_id in missing})
            self._fail(
                f"the engine lost {len(missing)} of {len(self.texts)} asserted facts "
                f"(kinds {kinds}); no result is given"
            )
        # The engine keeps each fact as the exact text it was given and lists them separated
        # by commas: the listing must be exactly those texts, in the engine's order.
        if raw != "[" + ",".join(self.texts[fact_id] for fact_id in by_id) + "]":
            self._fail("the engine changed the text of a stored fact; no result is given")
        facts = tuple(by_id[fact_id] for fact_id in self.texts)
        return RunResult(facts=facts, fired=tuple(self.fired))
