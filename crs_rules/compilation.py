"""Compilation: a validated Protocol becomes a durable_rules ruleset that runs by forward chaining.

Unknown inputs are read in three values (see :mod:`crs_rules.certainty`): every pack rule becomes
engine rules for "certainly holds" and "certainly fails", and a rule with neither is open
(pending on the inputs it waits for). The chain, each step a rule firing because the facts of the
step before exist in the session::

    observation --> excluded finding values (fever, hypotension_grade, ...) --> excluded grades
        --> action / fails facts --> dose facts --> withheld facts (limits reached) ; alert facts

Engine fact kinds (field ``t``): ``observation`` (the patient, one per evaluation; unknown inputs
are absent), ``excluded`` (``name``, ``value``: a finding, or the grade, cannot take that value),
``action`` (``action``, ``rule``, ``strength``, ``drug``, ``regimen``: a rule certainly holds),
``fails`` (``rule``: a rule certainly fails), ``ruled_out`` (``action``: every rule proposing it
fails), ``dose`` (``rule``, ``drug``, ``regimen``, ``amount_mg``), ``withheld`` (``rule``,
``limit``) and ``alert`` (``alert``, ``rule``).

Each certainty becomes one engine rule per alternative of its formula (an OR over different facts
cannot be one pattern); a conclusion is asserted at most once per evaluation. Conclusions that enter
no trace (an excluded grade, a rule that certainly fails) share one engine rule when their
alternatives are the same, and an alternative whose only premise is one excluded finding value is
drawn by the handler that draws that exclusion instead of by an engine rule of its own. The dose and limit
rules are generated from dosing.yaml, so every number stays in the YAML.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .certainty import (
    FALSE,
    Both,
    Either,
    Excluded,
    FindingValue,
    Formula,
    Observed,
    Proposed,
    RuledOut,
    certainly,
    either,
    possibly,
)
from .conditions import MAX_DNF_TERMS, comparisons
from .decision import TraceEntry
from .dose_rules import add_dose_rules, compute_amount
from .engine import CompiledRuleset, Conclusion, Firing, PreparedFact, RunResult, prepare_fact, renew_after_fork
from .engine_json import INT64_MAX, INT64_MIN, check_fact_shape, read_json, scalar_json, string_json, to_engine_json
from .fact_kinds import FACT_KINDS, HISTORY_UNKNOWN, NOT_APPLICABLE, FactKind
from .facts import flat_facts, list_count_key
from .model import GRADE_FINDING, Comparison, Condition, Protocol
from .operators import operator
from .patient import PatientState

__all__ = [
    "CompiledProtocol",
    "compile_protocol",
    "engine_program",
    "FactKind",
    "FACT_KINDS",
    "NOT_APPLICABLE",
    "HISTORY_UNKNOWN",
    "ConditionTooComplex",
    "compute_amount",
    "finding_domains",
]


Test = dict[str, Any]


class ConditionTooComplex(ValueError):
    """A rule's condition expands to more engine alternatives than the engine handles well."""

    def __init__(self, rule_id: str, alternatives: int) -> None:
        super().__init__(f"{rule_id}: expands to more than {alternatives} engine alternatives")
        self.rule_id = rule_id


def finding_domains(protocol: Protocol) -> dict[str, tuple[FindingValue, ...]]:
    """Every value each finding, and the grade, can take."""
    domains: dict[str, tuple[FindingValue, ...]] = {f.id: f.values() for f in protocol.findings}
    grades: tuple[FindingValue, ...] = tuple(sorted({g.grade for g in protocol.grades}))
    if protocol.applies_when is not None:
        grades = (*grades, NOT_APPLICABLE)
    domains[GRADE_FINDING] = grades
    return domains


def _attribute(comparison: Comparison) -> str:
    """The engine attribute of the observation fact a comparison reads."""
    if comparison.operator == "includes":
        return f"{comparison.fact}.has.{comparison.value}"
    if comparison.operator == "count_at_least":
        return f"{comparison.fact}.{list_count_key(comparison.not_counting)}"
    return comparison.fact


def _observed_test(comparison: Comparison, negated: bool) -> Test:
    """A comparison on a present input: passing it, or (``negated``) failing it. An absent
    attribute fails both tests in the engine, which is what leaves unknown inputs open. The test
    is the operator's own (:data:`crs_rules.operators.OPERATOR_TABLE`)."""
    return operator(comparison.operator).engine_test(_attribute(comparison), comparison.value, negated)


def _presence_attribute(comparison: Comparison) -> str:
    """The attribute whose absence means the compared input is unknown."""
    if comparison.operator in ("includes", "count_at_least"):
        return f"{comparison.fact}.count"
    return comparison.fact


Atom = Excluded | Proposed | RuledOut
Alternative = tuple[tuple[Test, ...], tuple[Atom, ...]]


def _only_observed(formula: Formula) -> bool:
    if isinstance(formula, Observed):
        return True
    if isinstance(formula, (Both, Either)):
        return bool(formula.parts) and all(_only_observed(p) for p in formula.parts)
    return False


def _observation_test(formula: Formula) -> Test:
    if isinstance(formula, Observed):
        test = _observed_test(formula.comparison, formula.negated)
        if formula.or_unknown:
            return {"$or": [test, {"$nex": {_presence_attribute(formula.comparison): 1}}]}
        return test
    assert isinstance(formula, (Both, Either))
    parts = [_observation_test(p) for p in formula.parts]
    return parts[0] if len(parts) == 1 else {"$and" if isinstance(formula, Both) else "$or": parts}


def _alternatives(formula: Formula, bound: int) -> list[Alternative] | None:
    """The formula as alternatives (OR) of conjunctions: observation tests and fact atoms. A part
    that reads the observation only stays one engine test. None when more than ``bound``."""
    if _only_observed(formula):
        return [((_observation_test(formula),), ())]
    if isinstance(formula, (Excluded, Proposed, RuledOut)):
        return [((), (formula,))]
    assert isinstance(formula, (Both, Either))
    if isinstance(formula, Either):
        found: list[Alternative] = []
        for part in formula.parts:
            more = _alternatives(part, bound)
            if more is None or len(found) + len(more) > bound:
                return None
            found.extend(more)
        return found
    combined: list[Alternative] = [((), ())]
    for part in formula.parts:
        more = _alternatives(part, bound)
        if more is None or len(combined) * len(more) > bound:
            return None
        combined = [(tests + t, atoms + a) for tests, atoms in combined for t, a in more]
    return combined


def _atom_pattern(atom: Atom) -> Test:
    if isinstance(atom, Excluded):
        return {"$and": [{"t": FactKind.EXCLUDED.value}, {"name": atom.finding}, {"value": atom.value}]}
    if isinstance(atom, Proposed):
        return {"$and": [{"t": FactKind.ACTION.value}, {"action": atom.action}]}
    return {"$and": [{"t": FactKind.RULED_OUT.value}, {"action": atom.action}]}


def _rule_definition(alternative: Alternative) -> dict[str, Any]:
    tests, atoms = alternative
    patterns: list[Test] = []
    if tests or not atoms:
        patterns.append({"o": {"$and": [{"t": FactKind.OBSERVATION.value}, *tests]}})
    for index, atom in enumerate(dict.fromkeys(atoms)):
        patterns.append({f"f{index}": _atom_pattern(atom)})
    return {"all": patterns}


@dataclass
class CompiledProtocol:
    """A protocol ready to evaluate: the engine ruleset plus the encoder of observations."""

    protocol: Protocol
    ruleset: CompiledRuleset
    list_counts: frozenset[tuple[str, tuple[str, ...]]]
    list_members: frozenset[tuple[str, str]] = frozenset()
    """(list fact, name) for every name a condition tests with ``includes``."""
    observation_reads: frozenset[str] | None = None
    """The attributes of the observation the rules test or their handlers read: the observation
    holds only the facts they name (None: every fact). The engine's work on a fact grows with its
    size (it is parsed on assert and copied into every action that matched it)."""
    conclusions: Conclusions = field(default_factory=lambda: Conclusions())
    """The once-per-evaluation record the handlers keep (the one they were compiled with)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _lists: dict[str, tuple[tuple[str, ...], tuple[tuple[str, frozenset[str]], ...]]] = field(
        default_factory=dict, init=False)
    """For each list fact: the names tested with ``includes`` and the counts (key, names not counted)."""
    _kept: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict, init=False)
    """For each fact path seen: its parents' keys and its own key when the observation holds it
    (see ``observation_reads``), else empty."""
    _layout: _Layout | None = field(default=None, init=False)
    """Where each fact goes in the observation's text (see :meth:`observation_fact`)."""
    _list_texts: dict[tuple[str, tuple[Any, ...]], str] = field(default_factory=dict, init=False)
    """The text of each list fact seen (path, names), up to ``MAX_LIST_TEXTS``."""

    def __post_init__(self) -> None:
        renew_after_fork(self, _lock=threading.Lock)  # a forked child starts with the lock free
        paths = {path for path, _ in self.list_members} | {path for path, _ in self.list_counts}
        for path in paths:
            members = tuple(sorted(name for list_path, name in self.list_members if list_path == path))
            counts = tuple(sorted((list_count_key(not_counting), frozenset(not_counting))
                                  for list_path, not_counting in self.list_counts if list_path == path))
            self._lists[path] = (members, counts)

    def observation(self, patient: PatientState, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The patient as the engine's one observation fact (nested by path, absent when unknown).
        ``known``: the patient's :func:`~crs_rules.facts.flat_facts`, when already derived."""
        fact: dict[str, Any] = {"t": FactKind.OBSERVATION.value}
        lists = self._lists
        for path, value in (flat_facts(patient, self.protocol) if known is None else known).items():
            parents, leaf = self._placement(path)
            if not leaf:
                continue
            if isinstance(value, tuple):  # a list of names: counts and membership for the engine
                # Membership only for the names the rules test: the fact's size stays bounded by
                # the pack, whatever the input lists (the engine refuses a fact of ~250 properties).
                encoded: dict[str, Any] = {"count": len(value)}
                members, counts = lists.get(path, ((), ()))
                if members:
                    encoded["has"] = {name: name in value for name in members}
                for key, not_counting in counts:
                    encoded[key] = sum(1 for n in value if n not in not_counting)
                value = encoded
            node = fact
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return fact

    def _placement(self, path: str) -> tuple[tuple[str, ...], str]:
        """The parents' keys and the own key of the fact at ``path`` in the observation, or ``((), "")``
        when the observation does not hold it (see ``observation_reads``)."""
        place = self._kept.get(path)
        if place is None:
            keys = path.split(".")
            place = self._kept[path] = (tuple(keys[:-1]), keys[-1]) if self._read(path) else ((), "")
        return place

    def _read(self, path: str) -> bool:
        """Whether a rule or a handler reads the fact at ``path`` (or, for a list, what encodes it)."""
        reads = self.observation_reads
        if reads is None or path in reads:
            return True
        inside = path + "."
        return any(attribute.startswith(inside) for attribute in reads)

    def observation_fact(self, patient: PatientState, known: Mapping[str, Any] | None = None) -> PreparedFact:
        """The observation (:meth:`observation`) checked and serialised for the engine, its content read
        back from its text: the text :func:`~crs_rules.engine_json.to_engine_json` writes (keys
        sorted), with the same refusals.

        The text is written straight from the flat facts: the facts the observation holds are visited
        in the order of their keys (:class:`_Layout`, learnt from the paths seen), each value checked
        and written where it stands, with the braces and keys between two of them made once. A value
        the standard encoder would not write as :func:`~crs_rules.engine_json.to_engine_json` does,
        or facts that nest unusually, go through :meth:`observation` and the careful encoder."""
        facts = flat_facts(patient, self.protocol) if known is None else known
        layout = self._layout
        covered = layout is not None and facts.keys() <= layout.seen
        # Paths come from the fields and the pack, so few are ever seen; past the bound, facts at
        # paths not seen yet take the careful path.
        if layout is None or (not covered and len(layout.seen) < MAX_LAYOUT_PATHS):
            layout = self._layout = _layout(self, facts, layout)
            covered = True  # the layout now holds every path of these facts
        text = self._written(layout, facts) if layout.regular and covered else None
        if text is not None:
            return PreparedFact(FactKind.OBSERVATION.value, text, read_json(text))
        observation = self.observation(patient, facts)
        kind = check_fact_shape(observation, "the observation")
        # Built here, fresh, of plain values (a list fact is already its counts) and serialised
        # once; its content is what its text reads back as.
        text = to_engine_json(observation, sort_keys=True, where="the observation")
        return PreparedFact(kind, text, read_json(text))

    def _written(self, layout: _Layout, facts: Mapping[str, Any]) -> str | None:
        """The observation's text from ``facts`` by ``layout``, or None for a value it does not write."""
        out: list[str] = []
        append, get, between, list_texts = out.append, facts.get, layout.between, self._list_texts
        previous = -1
        for index, (path, default) in enumerate(layout.entries):
            value = get(path, default)
            if value is _ABSENT:
                continue
            piece = between[previous + 1][index]
            append(piece if piece is not None else layout.fragment(previous, index))
            previous = index
            type_ = type(value)
            if type_ is bool:
                append("true" if value else "false")
            elif type_ is float and (_PLAIN_FLOAT_LOW <= value < _PLAIN_FLOAT_HIGH
                                     or -_PLAIN_FLOAT_HIGH < value <= -_PLAIN_FLOAT_LOW or value == 0.0):
                append(float.__repr__(value))
            elif type_ is int and INT64_MIN <= value <= INT64_MAX:
                append(int.__repr__(value))
            elif type_ is str and value.isascii():
                append(string_json(value))
            elif type_ is tuple:  # a list of names: as observation() encodes it
                key = (path, value)
                try:
                    text = list_texts.get(key)
                except TypeError:  # an unhashable name: the careful path words it
                    return None
                if text is None:
                    text = self._list_text(path, value)
                    if len(list_texts) < MAX_LIST_TEXTS:
                        list_texts[key] = text
                append(text)
            else:
                written = scalar_json(value)
                if written is None:
                    return None
                append(written)
        end = len(layout.entries)
        piece = between[previous + 1][end]
        append(piece if piece is not None else layout.fragment(previous, end))
        return "".join(out)

    def _list_text(self, path: str, names: tuple[Any, ...]) -> str:
        """The text of a list fact as :meth:`observation` encodes it (keys sorted): its count, its
        counts without some names, and whether it holds each name a rule tests."""
        members, counts = self._lists.get(path, ((), ()))
        texts = {"count": int.__repr__(len(names))}
        if members:
            texts["has"] = "{" + ",".join(
                f"{string_json(name)}:{'true' if name in names else 'false'}" for name in sorted(members)) + "}"
        for key, not_counting in counts:
            texts[key] = int.__repr__(sum(1 for name in names if name not in not_counting))
        parts = sorted(texts.items())
        return "{" + ",".join(f"{string_json(key)}:{text}" for key, text in parts) + "}"

    def run(self, patient: PatientState, known: Mapping[str, Any] | None = None
            ) -> tuple[RunResult, tuple[TraceEntry, ...], frozenset[str]]:
        """Run the chain for one patient: the engine's result, the rules that took effect in order,
        and the rules the chain found certainly failing. ``known``: the patient's flat facts, when
        already derived. The lock keeps the once-per-evaluation bookkeeping of one patient whole."""
        fact = self.observation_fact(patient, known)
        conclusions = self.conclusions
        with self._lock:
            conclusions.clear()
            result = self.ruleset.run([fact])
            return result, tuple(conclusions.trace), frozenset(conclusions.failed)

    def failed(self, rule_id: str) -> None:
        """Record that a rule certainly fails in this evaluation."""
        self.conclusions.failed.append(rule_id)

    def once(self, key: str, rule: str | None = None) -> bool:
        """True the first time a conclusion is drawn in this evaluation, False after. A conclusion
        with a ``rule`` is that pack rule taking effect, and enters the trace."""
        return self.conclusions.once(key, rule)


@dataclass(frozen=True)
class Conclusions:
    """The conclusions drawn in the current evaluation: each key once, the trace of the pack rules
    that took effect and the rules found certainly failing. Emptied at the start of each
    evaluation; the compiled handlers hold these very containers (see :func:`_conclusion`)."""

    applied: dict[str, None] = field(default_factory=dict)
    trace: list[TraceEntry] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.applied.clear()
        self.trace.clear()
        self.failed.clear()

    def once(self, key: str, rule: str | None = None) -> bool:
        """True the first time ``key`` is drawn in this evaluation, False after; with a ``rule``,
        it enters the trace."""
        if key in self.applied:
            return False
        self.applied[key] = None
        if rule is not None:
            self.trace.append(TraceEntry(key, rule))
        return True


_ABSENT: Any = object()
#: Bound on the fact paths an observation layout learns (see CompiledProtocol.observation_fact).
MAX_LAYOUT_PATHS = 4096
#: Bound on the texts of list facts kept per compiled pack.
MAX_LIST_TEXTS = 4096
#: Floats in this range (and zero) have no exponent in their ``repr`` (it has one only below 1e-4
#: or from 1e16 on: the range is kept well inside, so no float near either edge is written here);
#: any other float is checked by writing it (:func:`scalar_json`).
_PLAIN_FLOAT_LOW, _PLAIN_FLOAT_HIGH = 0.001, 1e15


@dataclass(frozen=True)
class _Layout:
    """Where each fact the observation may hold goes in its text: every path seen so far (``seen``),
    and those the observation holds in the order of their keys (``order``, the key tuples in
    ``keys``; the kind ``t`` is one of them), so that the text is written by visiting them in order
    and writing, between two present ones, the braces and keys that part them (``between``, made
    at first use). ``regular`` is False when two paths nest inside each other or a key is one the
    standard encoder, or the engine, would not take as written: the careful path then words it."""

    seen: frozenset[str]
    order: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    regular: bool
    entries: tuple[tuple[str, Any], ...] = field(init=False, compare=False)
    """(path, what to read when the facts lack it: the kind for ``t``, else absent) in order."""
    between: list[list[str | None]] = field(init=False, compare=False)
    """``between[previous + 1][index]``: the text between the values of ``order[previous]`` and
    ``order[index]`` (-1: the start; ``len(order)``: the end), made at first use."""

    def __post_init__(self) -> None:
        entries = tuple((path, FactKind.OBSERVATION.value if path == "t" else _ABSENT) for path in self.order)
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "between", [[None] * (len(self.order) + 1) for _ in range(len(self.order) + 1)])

    def fragment(self, previous: int, index: int) -> str:
        """The text between the value of ``order[previous]`` (-1: the start) and that of ``order[index]``
        (``len(order)``: the end)."""
        before = self.keys[previous] if previous >= 0 else ()
        after = self.keys[index] if index < len(self.keys) else ()
        common = 0
        while common < min(len(before), len(after)) - 1 and before[common] == after[common]:
            common += 1
        parts = ["}" * (len(before) - 1 - common) if before else "{"]
        if before and after:
            parts.append(",")
        if after:
            parts.extend(string_json(key) + ":{" for key in after[common:-1])
            parts.append(string_json(after[-1]) + ":")
        else:
            parts.append("}")
        found = self.between[previous + 1][index] = "".join(parts)
        return found


def _layout(program: CompiledProtocol, paths: Iterable[str], known: _Layout | None) -> _Layout:
    """The layout of ``known`` (None: none yet) grown with ``paths``."""
    seen = set(known.seen) if known is not None else set()
    seen.update(paths)
    held = {tuple(path.split(".")): path for path in seen if program._placement(path)[1]}
    held[("t",)] = "t"
    keys = sorted(held)
    # A fact at "t" would take the kind's place.
    regular = not ("t" in seen and program._placement("t")[1])
    for shorter, longer in zip(keys, keys[1:]):
        if longer[:len(shorter)] == shorter:  # a fact inside another's place
            regular = False
    try:
        check_fact_shape(dict.fromkeys({key[0] for key in keys}, "t"), "the observation")
    except ValueError:
        regular = False
    names = [name for members, counts in program._lists.values() for name in (*members, *(key for key, _ in counts))]
    if any(type(key) is not str or scalar_json(key) is None for key in (*names, *(k for kt in keys for k in kt))):
        regular = False
    return _Layout(frozenset(seen), tuple(held[key] for key in keys), tuple(keys), regular)


def compile_protocol(protocol: Protocol) -> CompiledProtocol:
    """Compile a validated protocol. Compile once per pack per process: engine rulesets are never freed."""
    holder: list[CompiledProtocol] = []
    list_members: set[tuple[str, str]] = set()
    reads: set[str] = set()
    conclusions = Conclusions()
    rules, handlers, list_counts = engine_program(protocol, holder, list_members, reads, conclusions)
    compiled = CompiledProtocol(
        protocol=protocol,
        conclusions=conclusions,
        ruleset=CompiledRuleset(rules, handlers, FACT_KINDS, label=f"{protocol.id}-{protocol.version}"),
        list_counts=frozenset(list_counts),
        list_members=frozenset(list_members),
        observation_reads=frozenset(reads),
    )
    holder.append(compiled)
    return compiled


def _key(value: FindingValue) -> tuple[type, FindingValue]:
    """A finding value as a dictionary key that keeps True apart from 1 (the engine's facts do)."""
    return (type(value), value)


def _value_key(value: FindingValue) -> str:
    return str(value).lower()


def engine_program(
    protocol: Protocol, holder: list[CompiledProtocol], list_members: set[tuple[str, str]] | None = None,
    observation_reads: set[str] | None = None, conclusions: Conclusions | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Callable[[Firing], None]], set[tuple[str, tuple[str, ...]]]]:
    """The engine rules, their handlers and the list counts the observation needs, without creating
    anything in the engine (validation sizes a pack with it). ``holder`` receives the compiled
    protocol whose bookkeeping the handlers use; ``list_members``, when given, receives (list fact,
    name) for every name a condition tests with ``includes``; ``observation_reads``, the attributes
    of the observation that rules test or handlers read; ``conclusions``, the record the handlers
    keep (the compiled protocol's; a fresh one if not given). Raises
    :class:`ConditionTooComplex` for a condition with too many alternatives."""
    book = conclusions if conclusions is not None else Conclusions()
    rules: dict[str, dict[str, Any]] = {}
    handlers: dict[str, Callable[[Firing], None]] = {}
    list_counts: set[tuple[str, tuple[str, ...]]] = set()
    domains = finding_domains(protocol)

    def certain(condition: Condition, holding: bool) -> Formula:
        for comparison in comparisons(condition):
            if comparison.operator == "count_at_least":
                list_counts.add((comparison.fact, tuple(sorted(comparison.not_counting))))
            elif comparison.operator == "includes" and list_members is not None:
                list_members.add((comparison.fact, str(comparison.value)))
        return certainly(condition, holding, domains)

    # Conclusions that enter no trace (a rule that certainly fails; a grade excluded): identical
    # engine rules of those are one engine rule that draws them all, and one whose only premise
    # is one excluded finding value is no engine rule: it is drawn by the handler that draws that
    # exclusion, in the same firing (see ``exclude``).
    untraced: dict[str, list[Conclusion]] = {}
    following: dict[tuple[str, tuple[type, FindingValue]], list[Conclusion]] = {}

    def add(name: str, formula: Formula, key: str, effect: Effect, traced: str | None) -> None:
        # traced: the pack rule the conclusion is the effect of, when it enters the trace
        alternatives = _alternatives(formula, MAX_DNF_TERMS)
        if alternatives is None:
            raise ConditionTooComplex(name, MAX_DNF_TERMS)
        handler = _conclusion(book, key, traced, effect)  # one per conclusion: its alternatives share it
        for index, alternative in enumerate(alternatives):
            engine_name = f"{name}#{index}"
            definition = _rule_definition(alternative)

            if traced is None:
                tests, atoms = alternative
                if not tests and len(atoms) == 1 and isinstance(atoms[0], Excluded):
                    following.setdefault((atoms[0].finding, _key(atoms[0].value)), []).append(handler)
                    continue
                same = json.dumps(definition, sort_keys=True)
                group = untraced.get(same)
                if group is not None:
                    group.append(handler)
                    continue
                group = untraced[same] = [handler]
                handlers[engine_name] = _all_of(group)
                rules[engine_name] = definition
                continue
            rules[engine_name] = definition
            handlers[engine_name] = handler

    def assert_copy(fact: dict[str, Any]) -> Effect:
        return Effect(prepare_fact(fact, f"the conclusion {fact}"))  # checked and serialised once

    def exclude(name: str, value: FindingValue, rule: str) -> Effect:
        fact = {"t": FactKind.EXCLUDED.value, "name": name, "value": value, "rule": rule}
        prepared = prepare_fact(fact, f"the conclusion {fact}")
        return Effect(prepared, then=following.setdefault((name, _key(value)), []))  # filled while compiling

    for finding in protocol.findings:
        rule_id = finding.rule_id
        if finding.when is not None:
            for value in (True, False):
                # A boolean finding cannot be true when its condition certainly fails, and so on.
                add(f"{rule_id}.not.{_value_key(value)}", certain(finding.when, not value),
                    f"{rule_id}.not.{_value_key(value)}", exclude(finding.id, value, rule_id), traced=rule_id)
            continue
        # A level's value is excluded when its condition certainly fails or an earlier level
        # certainly holds; the otherwise value, when some level certainly holds.
        earlier: list[Formula] = []
        for level in finding.levels:
            key = f"{rule_id}.not.{_value_key(level.value)}"
            add(key, either([certain(level.when, False), *earlier]), key,
                exclude(finding.id, level.value, rule_id), traced=rule_id)
            earlier.append(certain(level.when, True))
        assert finding.otherwise_value is not None
        key = f"{rule_id}.not.{_value_key(finding.otherwise_value)}"
        add(key, either(earlier), key, exclude(finding.id, finding.otherwise_value, rule_id), traced=rule_id)

    applies = protocol.applies_when
    not_applicable = certain(applies, False) if applies is not None else FALSE
    for grade in protocol.grades:
        key = f"{GRADE_FINDING}.not.{grade.grade}"
        add(f"{grade.rule_id}.not", either([certain(grade.when, False), not_applicable]), key,
            exclude(GRADE_FINDING, grade.grade, grade.rule_id), traced=None)
    if applies is not None:
        key = f"{GRADE_FINDING}.not.{NOT_APPLICABLE}"
        add(f"{protocol.definition_id}.applies", certain(applies, True), key,
            exclude(GRADE_FINDING, NOT_APPLICABLE, protocol.definition_id), traced=None)

    def fails(rule_id: str, in_engine: bool) -> Effect:
        # A failing rule is recorded for the decision (neither proposed nor pending); it becomes an
        # engine fact only when another rule's "ruled out" reads it.
        prepared = prepare_fact({"t": FactKind.FAILS.value, "rule": rule_id})
        return Effect(prepared if in_engine else None, failed=rule_id)

    read_actions = _actions_read(protocol)
    for rule in protocol.action_rules:
        fact: dict[str, Any] = {"t": FactKind.ACTION.value, "action": rule.action, "rule": rule.rule_id,
                                "strength": rule.strength}
        if rule.dose is not None:
            fact.update(drug=rule.dose.drug, regimen=rule.dose.regimen)
        add(rule.rule_id, certain(rule.when, True), rule.rule_id, assert_copy(fact), traced=rule.rule_id)
        in_engine = rule.action in read_actions
        add(f"{rule.rule_id}~fails", certain(rule.when, False), f"{rule.rule_id}~fails",
            fails(rule.rule_id, in_engine), traced=None)

    for alert in protocol.alerts:
        raised = certain(alert.when, True)
        if alert.if_unknown == "raise" and not any(
                c.family in ("finding", "action") for c in comparisons(alert.when)):
            # (reading a finding or an action that way is refused by validation)
            raised = possibly(alert.when, True)
        add(alert.rule_id, raised, alert.rule_id,
            assert_copy({"t": FactKind.ALERT.value, "alert": alert.id, "rule": alert.rule_id,
                         "severity": alert.severity}), traced=alert.rule_id)
        add(f"{alert.rule_id}~fails", certain(alert.when, False), f"{alert.rule_id}~fails",
            fails(alert.rule_id, False), traced=None)

    _add_ruled_out_rules(protocol, rules, handlers, book)
    for drug in protocol.drugs:
        stepped = tuple(c.id for c in protocol.drug_classes if c.escalation_steps and drug.id in c.members)
        add_dose_rules(drug, rules, handlers, holder, stepped, observation_reads)

    if observation_reads is not None:
        for rule_definition in rules.values():
            for pattern in rule_definition["all"]:
                if "o" in pattern:
                    _tested_attributes(pattern["o"], observation_reads)
    return rules, handlers, list_counts


def _tested_attributes(pattern: Any, into: set[str]) -> None:
    """Add every attribute an engine pattern tests (``{"a": v}``, ``{"$gte": {"a": v}}``, ``$and`` /
    ``$or`` of those) to ``into``."""
    if isinstance(pattern, list):
        for part in pattern:
            _tested_attributes(part, into)
        return
    assert isinstance(pattern, dict), f"unexpected engine pattern {pattern!r}"
    for key, value in pattern.items():
        if key in ("$and", "$or"):
            _tested_attributes(value, into)
        elif key.startswith("$"):
            assert isinstance(value, dict), f"unexpected engine test {pattern!r}"
            into.update(value)
        else:
            into.add(key)


@dataclass(frozen=True)
class Effect:
    """What drawing a conclusion does, in order: record ``failed`` as a rule that certainly fails,
    assert ``asserts`` (checked and serialised once, when compiling), then run each handler of
    ``then`` (conclusions drawn in the same firing; the list may still grow while compiling)."""

    asserts: PreparedFact | None = None
    failed: str | None = None
    then: list[Conclusion] = field(default_factory=list)


def _conclusion(book: Conclusions, key: str, traced: str | None, effect: Effect) -> Conclusion:
    """The handler drawing conclusion ``key`` once per evaluation (entering the trace as the effect
    of pack rule ``traced``, when given) with ``effect``: it reads nothing of its firing, so the
    engine runs it without one (:class:`~crs_rules.engine.Conclusion`), and everything it does is
    bound here, so that a firing runs it without looking anything up. Its facts, and those of the
    conclusions drawn with it, are asserted in the order drawn."""
    applied, trace, failed = book.applied, book.trace.append, book.failed.append
    own: tuple[PreparedFact, ...] = (effect.asserts,) if effect.asserts is not None else ()
    failing, then = effect.failed, effect.then
    entry = TraceEntry(key, traced) if traced is not None else None  # the same text in every trace

    def draw() -> Sequence[PreparedFact]:
        if key in applied:
            return ()
        applied[key] = None
        if entry is not None:
            trace(entry)
        if failing is not None:
            failed(failing)
        if not then:
            return own
        facts = list(own)
        for follower in then:
            facts.extend(follower.draw())
        return facts

    return Conclusion(draw)


def _all_of(group: list[Conclusion]) -> Conclusion:
    """One handler drawing every conclusion of ``group`` (which may still grow while compiling)."""
    def draw() -> Sequence[PreparedFact]:
        facts: list[PreparedFact] = []
        for member in group:
            facts.extend(member.draw())
        return facts

    return Conclusion(draw)


def _actions_read(protocol: Protocol) -> set[str]:
    """The actions some condition reads (``action.<id>``)."""
    return {c.name for _, condition in protocol.conditions()
            for c in comparisons(condition) if c.family == "action"}


def _add_ruled_out_rules(protocol: Protocol, rules: dict[str, dict[str, Any]],
                         handlers: dict[str, Callable[[Firing], None]], book: Conclusions) -> None:
    """``ruled_out`` for every action a condition reads: every rule proposing it certainly fails."""
    for action in sorted(_actions_read(protocol)):
        proposing = [r.rule_id for r in protocol.action_rules if r.action == action]
        patterns: list[Test] = [{f"r{i}": {"$and": [{"t": FactKind.FAILS.value}, {"rule": rule_id}]}}
                                for i, rule_id in enumerate(proposing)]
        name = f"ruled_out.{action}"
        rules[name] = {"all": patterns or [{"o": {"t": FactKind.OBSERVATION.value}}]}

        prepared = prepare_fact({"t": FactKind.RULED_OUT.value, "action": action})
        handlers[name] = _conclusion(book, name, None, Effect(prepared))
