"""What the engine cannot take, found before it is asked: rule sets that would make it hang, and the
words for the error codes it reports.

More than 512 tests under one engine node make ruleset creation hang (513 rules testing one kind
do). :func:`ruleset_chain_bound` bounds the chains of tests a rule set can build; a ruleset whose bound
is above :data:`MAX_ENGINE_TESTS` is refused before it reaches the engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .engine_json import to_engine_json
from .errors import EngineError

__all__ = ["MAX_ENGINE_TESTS", "ruleset_chain_bound", "ruleset_definition", "engine_failure"]

#: More than 512 tests under one engine node make ruleset creation hang (513 rules testing one
#: kind do); :func:`ruleset_chain_bound` of a ruleset must stay at or below this.
MAX_ENGINE_TESTS = 512

_ENGINE_HINTS = {
    "202": "a rule definition is malformed (operators come first: {'$gte': {'x': 1}})",
    "204": "a number could not be parsed",
    "302": "too many properties in one fact (the engine accepts about 250, nested ones included)",
}


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


def engine_failure(action: str, exc: BaseException) -> EngineError:
    message = str(exc)
    code = re.search(r"error code: (\d+)", message)
    hint = _ENGINE_HINTS.get(code.group(1), "") if code else ""
    return EngineError(f"{action}: {message}" + (f" ({hint})" if hint else ""))


def ruleset_definition(rules: Mapping[str, Mapping[str, Any]], handlers: Mapping[str, Callable[..., Any]],
                       kinds: tuple[str, ...], label: str, hold_prefix: str, hold_count: int) -> str:
    """The engine's definition (JSON text) of ``rules`` plus one catch-all rule per fact kind (named
    ``hold_prefix`` + kind), every rule and kind checked first: :class:`ValueError` names what is wrong.

    The catch-all of the first kind fires once per fact of that kind; those of the other kinds keep
    their facts stored without firing (they would fire once ``hold_count`` facts of the kind were
    stored: pass more than an evaluation may assert)."""
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
    for index, kind in enumerate(kinds):
        hold_name = json.dumps(hold_prefix + kind, ensure_ascii=False)
        hold: dict[str, Any] = {"all": [{"m": {"t": kind}}]}
        if index:
            # Stored, never fired: the engine fires a counting rule only once it holds ``count``
            # matching facts, more than one evaluation may assert (so one action per fact is not
            # started, completed and read). The first kind's catch-all fires, so that a session
            # can always be given an action before it is deleted.
            hold["count"] = hold_count
        definition_parts.append(f"{hold_name}:{to_engine_json(hold)}")
    bound = ruleset_chain_bound(rules, kinds)
    if bound > MAX_ENGINE_TESTS:
        raise ValueError(
            f"{label}: the rules and catch-alls may build up to {bound} chains of engine "
            f"tests; more than {MAX_ENGINE_TESTS} tests under one node make the engine hang "
            f"while compiling, so at most {MAX_ENGINE_TESTS} chains are accepted"
        )
    return "{" + ",".join(definition_parts) + "}"
