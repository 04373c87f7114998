"""The values an evaluation hands out: a rule's firing (with the facts it matched) and the result.

The facts a firing matched are decoded from the engine's text only when a handler reads them
(:class:`Matched`); :func:`parse_action` reads which rule an action names and which facts of the
evaluation it matched without decoding those facts at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from .engine_json import PreparedFact, read_json
from .errors import EngineError

__all__ = ["Firing", "RunResult", "Handler", "Conclusion", "Matched", "parse_action", "stored_facts"]

Handler = Callable[["Firing"], None]


class _Asserting(Protocol):
    @property
    def values(self) -> Mapping[str, Mapping[str, Any]]:
        """The content of each fact whose content is known without decoding it (a prepared fact's),
        by its id's text."""

    def assert_from_handler(self, firing: Firing, fact: Mapping[str, Any] | PreparedFact, /) -> None: ...


class Firing:
    """One firing of a rule: its name (:attr:`rule`) and the facts it matched, by alias
    (:attr:`matched`). Read-only.

    The matched facts are fresh copies without the engine's ``sid``/``id`` keys. Valid only
    while the rule's handler runs. ``tails`` maps each alias to the matched fact's engine text
    less the session's prefix (see :class:`Matched`).
    """

    __slots__ = ("_rule", "_tails", "_session", "_matched")

    def __init__(self, rule: str, tails: Mapping[str, str], session: _Asserting) -> None:
        self._rule = rule
        self._tails = tails
        self._session = session
        self._matched: Matched | None = None

    @property
    def rule(self) -> str:
        """The name of the rule that fired."""
        return self._rule

    @property
    def matched(self) -> Mapping[str, Mapping[str, Any]]:
        """The facts the rule matched, by alias, each decoded on first reading (most handlers
        never read them, and pay nothing)."""
        found = self._matched
        if found is None:
            found = self._matched = Matched(self._tails)
        return found

    def read(self, alias: str, *keys: str) -> Any:
        """``firing.matched[alias][key][...]``: one value of a matched fact, read without copying the
        rest of the fact (a fact whose content is known, a prepared one, is not decoded at all).
        Raises :class:`KeyError` where indexing would; a container is a fresh copy."""
        tail = self._tails[alias]
        node: Any = self._session.values.get(tail[:_ID_READ].partition(",")[0])
        if node is None:
            node = self.matched[alias]
        for key in keys:
            node = node[key]
        return _fresh(node)

    def __repr__(self) -> str:
        return f"Firing(rule={self._rule!r}, aliases={list(self._tails)!r})"

    def assert_fact(self, fact: Mapping[str, Any] | PreparedFact) -> None:
        """Chain ``fact`` into the evaluation this firing belongs to.

        ``fact`` is a mapping, or a :class:`PreparedFact` (checked and serialised once, ahead of
        time, by :func:`prepare_fact`: the fast path for a fact a handler asserts every time).
        Raises :class:`ValueError` for a malformed fact and :class:`EngineError` when the engine
        would not store it. Either failure also fails the whole evaluation, even if the handler
        catches the exception.
        """
        self._session.assert_from_handler(self, fact)


def _fresh(value: Any) -> Any:
    """A copy of a JSON value (its containers new; strings and numbers are immutable)."""
    kind = type(value)
    if kind is dict:
        return {key: _fresh(item) for key, item in value.items()}
    if kind is list:
        return [_fresh(item) for item in value]
    return value


class Conclusion:
    """A handler that reads nothing of its firing: ``draw()`` keeps its own record and returns the
    prepared facts to assert, in order (none: an empty sequence), which the evaluation asserts as
    the firing rule's. The drain runs it without building a :class:`Firing`; called with a firing,
    it asserts them through the firing, so it is an ordinary handler too. An exception raised by
    ``draw()`` or by an assert fails the evaluation as a handler's does."""

    __slots__ = ("draw",)

    def __init__(self, draw: Callable[[], Sequence[PreparedFact]]) -> None:
        self.draw = draw

    def __call__(self, firing: Firing) -> None:
        for fact in self.draw():
            firing.assert_fact(fact)


class Matched(Mapping[str, Mapping[str, Any]]):
    """The facts a firing matched, by alias, each decoded from its engine text on first reading:
    a fresh copy per firing, without ``sid``/``id``. A handler that never reads a fact (most
    never read the observation) never pays for decoding it.

    ``tails`` maps each alias to the fact's engine text less the session's prefix: the fact's id,
    a comma, and the fact's own text after its opening brace (see :func:`parse_action`)."""

    __slots__ = ("_tails", "_decoded")

    def __init__(self, tails: Mapping[str, str]) -> None:
        self._tails = tails
        self._decoded: dict[str, dict[str, Any]] = {}

    def __getitem__(self, alias: str) -> dict[str, Any]:
        found = self._decoded.get(alias)
        if found is None:
            tail = self._tails[alias]
            found = read_json("{" + tail[tail.index(",") + 1:])
            self._decoded[alias] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._tails)

    def __len__(self) -> int:
        return len(self._tails)

    def __contains__(self, alias: object) -> bool:
        return alias in self._tails


@dataclass(frozen=True)
class RunResult:
    """The outcome of one evaluation."""

    facts: tuple[Mapping[str, Any], ...]
    """Every fact the session held at the end, in assertion order, without ``sid``/``id``."""
    fired: tuple[str, ...]
    """Names of the rules that fired, in firing order (catch-all rules excluded)."""


#: How much of a fact's text the fast reading of an action reads its id from (ids are sequence numbers).
_ID_READ = 24

#: Bound on the action shapes remembered per ruleset (one per rule and set of aliases in practice).
MAX_ACTION_SHAPES = 4096

#: What an action's head (its text before the first fact) tells: the rule, the aliases in the
#: order the action lists them and, after each fact, the text that must follow it.
ActionShape = tuple[str, tuple[str, ...], tuple[str, ...]]


def parse_action(action: str, prefix: str, tails: Mapping[str, str], label: str,
                 known_rule: Callable[[str], bool], heads: dict[str, ActionShape] | None = None,
                 shapes: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> tuple[str, dict[str, str]]:
    """The rule an action names and the facts it matched, by alias: each fact's engine text less
    ``prefix``, as :class:`Matched` decodes it when a handler reads it.

    ``tails`` maps the text of each fact id of the evaluation (``"12"``) to the fact's engine text
    less the session's ``prefix``. The engine writes each matched fact as the exact text it was
    given, which begins with the session's ``prefix`` and the fact's id (text inside a fact is
    JSON-escaped, so that prefix cannot occur in it). Each such text is found and checked to be
    exactly the one asserted under that id, and replaced by ``0``; the rest, the action's shape
    (``{"rule":{"o":0,"a":0}}``), is decoded, or found in ``shapes`` (the ruleset's shapes already
    read: their rule and aliases) if it was seen before. Anything else the action holds stays as
    the engine wrote it and is refused below.

    ``heads`` (the ruleset's, filled here) remembers, for the text before an action's first fact,
    the shape read after it: an action with a known head is read by checking that it is that head,
    then each fact's text followed by exactly the text the shape has after it (as no fact's text
    holds ``prefix``, that is the whole shape), without rebuilding the shape; any difference sends
    it through the full reading above.
    """
    if heads is not None:
        # Cut at each fact: [head, fact 1 and what follows it, ...]. Dict lookups, cuts and
        # comparisons only: str.find and str.startswith parse their arguments slowly.
        parts = action.split(prefix)
        head = parts[0]
        if head in heads:
            rule, aliases, separators = heads[head]
            if len(parts) == len(aliases) + 1:
                found: dict[str, str] = {}
                index = 1
                for alias in aliases:
                    # Any difference from the known shape: the full reading below says what it is.
                    part = parts[index]
                    # The id is the text before the first comma: read from the part's start only (a
                    # longer id finds nothing here, and the full reading reads it).
                    tail = tails.get(part[:_ID_READ].partition(",")[0])
                    if tail is None or part != tail + separators[index - 1]:
                        break
                    found[alias] = tail
                    index += 1
                else:
                    return rule, found
    skip = len(prefix)
    position = action.find(prefix)
    if position < 0:
        pieces = [action]
        texts: list[str] = []
    else:
        pieces = []
        texts = []
        start = 0
        find = action.find
        while position >= 0:
            digits = position + skip
            # An id's text is the key of exactly one fact: anything else (no comma, another token)
            # finds nothing.
            tail = tails.get(action[digits:find(",", digits)])
            if tail is None or not action.startswith(tail, digits):
                _not_asserted(action, position, label)
            texts.append(tail)
            pieces.append(action[start:position])
            start = digits + len(tail)
            position = find(prefix, start)
        pieces.append(action[start:])
    shape = "0".join(pieces)
    known = shapes.get(shape) if shapes is not None else None
    if known is None:
        rule, aliases = _read_shape(shape, action, len(texts), label, known_rule)
        if shapes is not None and len(shapes) < MAX_ACTION_SHAPES:
            shapes[shape] = (rule, aliases)
    else:
        rule, aliases = known
    if heads is not None and texts and len(heads) < MAX_ACTION_SHAPES:
        heads.setdefault(pieces[0], (rule, aliases, tuple(pieces[1:])))
    return rule, dict(zip(aliases, texts))


def _not_asserted(action: str, position: int, label: str) -> NoReturn:
    raise EngineError(
        f"{label}: an action holds a fact of this evaluation whose text is not the one "
        f"asserted: {action[position:position + 200]}"
    )


def _read_shape(shape: str, action: str, facts: int, label: str,
                known_rule: Callable[[str], bool]) -> tuple[str, tuple[str, ...]]:
    """The rule and the aliases of an action's shape, each alias holding one of the ``facts`` found
    (a ``0``), or :class:`EngineError`."""
    try:
        message = json.loads(shape)
    except ValueError:  # cut short or not JSON: the engine's failure, said as one
        raise EngineError(f"{label}: unexpected action from the engine: {action[:200]}") from None
    if not isinstance(message, dict) or len(message) != 1:
        raise EngineError(f"{label}: unexpected action from the engine: {action[:200]}")
    ((rule, raw),) = message.items()
    if not isinstance(raw, dict):
        raise EngineError(f"{label}: unexpected action from the engine: {action[:200]}")
    if not known_rule(rule):
        raise EngineError(f"{label}: the engine fired an unknown rule {rule!r}")
    for fact in raw.values():
        if type(fact) is not int or fact != 0:
            raise EngineError(
                f"{label}: rule {rule} matched something that is not a fact of this "
                f"evaluation (a pattern that only tests $nex matches the engine's session "
                f"record): {json.dumps(fact)[:200]}"
            )
    if len(raw) != facts:
        raise EngineError(f"{label}: unexpected action from the engine: {action[:200]}")
    return rule, tuple(raw)


def stored_facts(raw: str, prefix: str, tails: Mapping[str, str],
                 facts: Sequence[tuple[str, str, str, Mapping[str, Any] | None]], label: str) -> tuple[dict[str, Any], ...]:
    """The facts of a session's listing ``raw`` (the engine's ``get_facts``), in assertion order and
    without ``sid``/``id``: exactly the facts asserted, each with exactly the text asserted, or
    :class:`EngineError` (a fact lost, changed or not of this evaluation).

    ``tails`` maps each id's text to the fact's engine text less ``prefix`` (the session's ``sid``
    and the ``id`` key); ``facts`` holds, for each fact asserted, in order: its id's text, its kind,
    its text (without ``sid``/``id``) and its content when already known (a prepared fact's), else
    None. The engine keeps each fact as the exact text it was given and lists them separated by
    commas, in its own order: the listing is cut at each ``,`` + ``prefix`` (which no fact's text
    holds, see :func:`parse_action`) and must be those texts, each once; should a piece not be one,
    it is read fact by fact (each found by its id, as in :func:`parse_action`), which tells what
    is wrong. No fact is decoded from the listing.
    """
    if raw[:1] != "[" or raw[-1:] != "]":
        _listing_error(raw, facts, label)
    pieces = ("," + raw[1:-1]).split("," + prefix)
    if (len(pieces) != len(facts) + 1 or pieces[0] or len(tails) != len(facts)
            or set(pieces[1:]) != set(tails.values())):
        _read_listing(raw, prefix, tails, facts, label)
    # A known content is shared with the fact that carried it: the result gets its own copy, whole,
    # so that changing one result can change nothing else.
    return tuple([_fresh(value) if value is not None else read_json(text) for _, _, text, value in facts])


def _read_listing(raw: str, prefix: str, tails: Mapping[str, str],
                  facts: Sequence[tuple[str, str, str, Mapping[str, Any] | None]], label: str) -> None:
    """Read ``raw`` fact by fact: return if it is exactly the facts asserted, else raise."""
    listed: set[str] = set()
    if raw != "[]":
        position, end, skip = 1, len(raw) - 1, len(prefix)
        while True:
            digits = position + skip
            token = raw[digits:raw.find(",", digits)] if raw.startswith(prefix, position) else ""
            tail = tails.get(token)
            if (tail is None or token in listed or not raw.startswith(tail, digits)
                    or raw[digits + len(tail):digits + len(tail) + 1] not in (",", "]")):
                _listing_error(raw, facts, label)
            listed.add(token)
            position = digits + len(tail)
            if position >= end:
                break
            position += 1  # the comma
    if len(listed) != len(facts):
        _listing_error(raw, facts, label)


def _listing_error(raw: str, facts: Sequence[tuple[str, str, str, Mapping[str, Any] | None]], label: str) -> NoReturn:
    """The :class:`EngineError` for a listing that is not exactly the facts asserted: what is wrong."""
    kinds = {token: kind for token, kind, _, _ in facts}
    try:
        listing = json.loads(raw)
    except ValueError:
        listing = None
    if not isinstance(listing, list):
        raise EngineError(f"{label}: unexpected listing of the session's facts: {raw[:200]}")
    seen: set[str] = set()
    for fact in listing:
        fact_id = fact.get("id") if isinstance(fact, dict) else None
        token = json.dumps(fact_id)
        if type(fact_id) not in (int, str) or token not in kinds or token in seen:
            raise EngineError(f"{label}: the session holds an unexpected fact: {json.dumps(fact)[:200]}")
        seen.add(token)
    missing = [token for token in kinds if token not in seen]
    if missing:
        lost = sorted({kinds[token] for token in missing})
        raise EngineError(
            f"{label}: the engine lost {len(missing)} of {len(kinds)} asserted facts (kinds {lost}); "
            "no result is given"
        )
    raise EngineError(f"{label}: the engine changed the text of a stored fact; no result is given")
