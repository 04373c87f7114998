"""Validation: every pack file against its JSON Schema, then the checks a schema cannot express.

Schema errors are turned into plain words (what is wrong; what is expected) at the position of the
offending node. Semantic checks are small functions, one per concern, registered in
``SEMANTIC_CHECKS``; each yields :class:`~crs_rules.errors.Problem` values. Semantic checks run once
every file matches its schema (before that, the model they read cannot be built).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from itertools import product
from typing import Any, Callable, Iterable, Iterator, Mapping

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from ._resources import schema_dir
from .conditions import MAX_DNF_TERMS, comparisons, holds
from .errors import Problem
from .facts import FactType, fact_catalogue
from .loading import LoadedDocument
from .model import GRADE_FINDING, AllOf, Comparison, Condition, Not, Protocol, Source

__all__ = [
    "schema_problems",
    "semantic_problems",
    "SEMANTIC_CHECKS",
    "EXPANDING_CHECKS",
    "MAX_GRADING_COMBINATIONS",
    "MAX_RULES",
    "MAX_CONDITION_DEPTH",
    "expansion_size",
]


# --------------------------------------------------------------------------- schema stage


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resources = []
    for path in sorted(schema_dir().glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = _registry().contents(f"urn:crs-rules:schema:{schema_name}")
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"{value} (a number)"
    if isinstance(value, str):
        return f"'{value}' (a text)" if len(value) <= 60 else f"'{value[:57]}...' (a text)"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if value is None:
        return "empty (null)"
    return repr(value)


_TYPE_WORDS = {
    "object": "a mapping of keys",
    "array": "a list",
    "string": "a text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "null",
}


def _expected(error: Any) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    description = schema.get("description")
    keyword, detail = error.validator, error.validator_value
    if keyword == "type":
        words = [_TYPE_WORDS.get(t, t) for t in ([detail] if isinstance(detail, str) else detail)]
        return f"expected {description}" if description else "expected " + " or ".join(words)
    if keyword == "enum":
        return "expected one of " + ", ".join(str(v) for v in detail)
    if keyword == "const":
        return f"expected {json.dumps(detail)}"
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most", "exclusiveMaximum": "below"}
        return f"expected {description or 'a number'} ({bound[str(keyword)]} {detail})"
    if keyword == "minItems":
        return f"expected at least {detail} item(s)"
    if keyword == "uniqueItems":
        return "expected each item only once"
    if description:
        return f"expected {description}"
    if keyword == "pattern":
        return f"expected a text matching {detail}"
    return f"expected the form described by the schema ({keyword})"


def _subject(data: Any, path: Iterable[str | int]) -> str:
    """The id of the innermost element around ``path`` that has one (a rule id), else ``-``."""
    subject = "-"
    node = data
    for key in path:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            subject = node["id"]
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    if isinstance(node, dict) and isinstance(node.get("id"), str):
        subject = node["id"]
    return subject


def _schema_problem(doc: LoadedDocument, error: Any) -> Problem:
    path = tuple(error.absolute_path)
    check = "schema." + "/".join(str(p) for p in error.relative_schema_path)
    subject = _subject(doc.data, path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [key for key in error.validator_value if key not in instance]
        name = missing[0] if missing else "?"
        line, column = doc.position(path)
        return Problem(doc.file, line, column, subject, f"the key '{name}' is missing",
                       f"expected '{name}' here", path, check)
    line, column = doc.position(path)
    where = f"'{path[-1]}' " if path and isinstance(path[-1], str) else ""
    message = f"{where}is {_describe(instance)}"
    if error.validator in ("oneOf", "anyOf", "not") and isinstance(instance, dict):
        message = f"{where}does not have the expected form (keys: {', '.join(map(str, instance))})"
    return Problem(doc.file, line, column, subject, message, _expected(error), path, check)


def schema_problems(doc: LoadedDocument, schema_name: str) -> list[Problem]:
    """Every schema error of one pack file, in plain words."""
    validator = _validator(schema_name)
    problems: list[Problem] = []
    error: Any  # jsonschema types its error fields loosely (Unset); these are set on every error
    for error in validator.iter_errors(doc.data):
        # A required/additionalProperties error can list several keys: report each one.
        if error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    single = ValidationError(error.message, validator="required", validator_value=[key],
                                             instance=error.instance, schema=error.schema,
                                             path=error.absolute_path, schema_path=error.relative_schema_path)
                    problems.append(_schema_problem(doc, single))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    line, column = doc.key_position((*error.absolute_path, key))
                    problems.append(Problem(
                        doc.file, line, column, _subject(doc.data, error.absolute_path),
                        f"unknown key '{key}'", "expected one of the keys " + ", ".join(sorted(allowed)),
                        (*error.absolute_path, key), "schema.additionalProperties"))
            continue
        problems.append(_schema_problem(doc, error))
    return problems


# --------------------------------------------------------------------------- semantic stage

Check = Callable[[Protocol], Iterator[Problem]]
SEMANTIC_CHECKS: list[Check] = []


def semantic_check(function: Check) -> Check:
    SEMANTIC_CHECKS.append(function)
    return function


def _problem(source: Source, subject: str, message: str, expected: str, check: str) -> Problem:
    return Problem(source.file, source.line, source.column, subject, message, expected, (), check)


def _rule_conditions(protocol: Protocol) -> Iterator[tuple[str, Condition]]:
    """(rule id, condition) for every condition of the pack."""
    yield from protocol.conditions()


def _cited(protocol: Protocol) -> Iterator[tuple[str, tuple[str, ...], Source]]:
    yield protocol.definition_id, protocol.definition_citations, protocol.definition_source or Source(protocol.path, 0, 0)
    for finding in protocol.findings:
        yield finding.rule_id, finding.citations, finding.source
    for grade in protocol.grades:
        yield grade.rule_id, grade.citations, grade.source
    for drug in protocol.drugs:
        yield drug.rule_id, drug.citations, drug.source
    for rule in protocol.action_rules:
        yield rule.rule_id, rule.citations, rule.source
    for alert in protocol.alerts:
        yield alert.rule_id, alert.citations, alert.source


@semantic_check
def check_citations_resolve(protocol: Protocol) -> Iterator[Problem]:
    """Every citation names an entry of the references file. Fails: ``citations: [ref3]``."""
    known = {r.id for r in protocol.references}
    for rule_id, citations, source in _cited(protocol):
        for citation in citations:
            if citation not in known:
                yield _problem(source, rule_id, f"cites '{citation}', which is not in the references file",
                               "expected one of " + ", ".join(sorted(known)), "citation-resolves")


@semantic_check
def check_unique_ids(protocol: Protocol) -> Iterator[Problem]:
    """Rule ids are unique across the pack; so are action, drug, class, reference and statement ids."""
    groups: dict[str, list[tuple[str, Source]]] = {
        "rule": [(f.rule_id, f.source) for f in protocol.findings]
        + [(g.rule_id, g.source) for g in protocol.grades]
        + [(d.rule_id, d.source) for d in protocol.drugs]
        + [(r.rule_id, r.source) for r in protocol.action_rules]
        + [(a.rule_id, a.source) for a in protocol.alerts],
        "action": [(a.id, a.source) for a in protocol.actions],
        "drug or drug class": [(d.id, d.source) for d in protocol.drugs]
        + [(c.id, c.source) for c in protocol.drug_classes],
        "reference": [(r.id, r.source) for r in protocol.references],
        "statement": [(s.id, s.source) for s in protocol.statements],
    }
    for drug in protocol.drugs:
        groups[f"regimen of {drug.id}"] = [(r.id, r.source) for r in drug.regimens]
    for kind, entries in groups.items():
        first: dict[str, Source] = {}
        for identifier, source in entries:
            if identifier in first:
                where = first[identifier]
                yield _problem(source, identifier,
                               f"duplicate {kind} id '{identifier}' (first defined at {where.file}:{where.line})",
                               f"expected each {kind} id once", "unique-ids")
            else:
                first[identifier] = source


def _leaf_problems(rule_id: str, comparison: Comparison, catalogue: Mapping[str, FactType]) -> Iterator[Problem]:
    fact_type = catalogue.get(comparison.fact)
    src = comparison.source
    if fact_type is None:
        family = comparison.fact.split(".")[0]
        near = sorted(p for p in catalogue if p.split(".")[0] == family)
        hint = ("expected a known fact such as " + ", ".join(near[:8])) if near else (
            "expected a fact path starting with patient, therapy, crs, sepsis, vitals, neuro, history, proposed, finding or action")
        yield _problem(src, rule_id, f"unknown fact '{comparison.fact}'", hint, "fact-path-known")
        return
    op, value, kind = comparison.operator, comparison.value, fact_type.kind
    allowed = {
        "number": {"equals", "not_equals", "at_least", "above", "at_most", "below"},
        "boolean": {"equals", "not_equals"},
        "enum": {"equals", "not_equals", "one_of"},
        "list": {"includes", "count_at_least"},
        "level": {"equals", "not_equals", "at_least", "above", "at_most", "below", "one_of"},
        "presence": {"exists"},
    }[kind]
    if op not in allowed:
        yield _problem(src, rule_id, f"'{op}' cannot be used on {comparison.fact} ({kind})",
                       "expected one of " + ", ".join(sorted(allowed)), "operator-fits-fact")
        return
    if comparison.not_counting and op != "count_at_least":
        yield _problem(src, rule_id, "'not_counting' is only for count_at_least", "expected it removed", "operator-fits-fact")
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if kind in ("number", "level") and (isinstance(item, bool) or not isinstance(item, (int, float))):
            yield _problem(src, rule_id, f"compares {comparison.fact} with {_describe(item)}",
                           "expected a number", "value-fits-fact")
        elif kind == "boolean" and not isinstance(item, bool):
            yield _problem(src, rule_id, f"compares {comparison.fact} with {_describe(item)}",
                           "expected true or false", "value-fits-fact")
        elif kind == "enum" and item not in fact_type.values:
            yield _problem(src, rule_id, f"compares {comparison.fact} with {_describe(item)}",
                           "expected one of " + ", ".join(map(str, fact_type.values)), "value-fits-fact")
        elif kind == "level" and item not in fact_type.values and op in ("equals", "not_equals", "one_of"):
            yield _problem(src, rule_id, f"{comparison.fact} never takes the value {item}",
                           "expected one of " + ", ".join(map(str, fact_type.values)), "value-fits-fact")


@semantic_check
def check_conditions(protocol: Protocol) -> Iterator[Problem]:
    """Conditions name known facts, one operator each, with values of the fact's type."""
    catalogue = fact_catalogue(protocol)
    for rule_id, condition in _rule_conditions(protocol):
        for comparison in comparisons(condition):
            yield from _leaf_problems(rule_id, comparison, catalogue)


def _negated_presence(condition: Condition, negated: bool = False) -> Iterator[Comparison]:
    if isinstance(condition, Comparison):
        if negated and condition.fact.startswith("action."):
            yield condition
    elif isinstance(condition, Not):
        yield from _negated_presence(condition.condition, not negated)
    else:
        for part in condition.conditions:
            yield from _negated_presence(part, negated)


@semantic_check
def check_no_negated_actions(protocol: Protocol) -> Iterator[Problem]:
    """``not`` over ``action.*`` cannot be decided while rules are still firing: refused."""
    for rule_id, condition in _rule_conditions(protocol):
        for comparison in _negated_presence(condition):
            yield _problem(comparison.source, rule_id,
                           f"'{comparison.fact}' is negated; whether an action is proposed is known only once every rule has fired",
                           "expected a condition on patient facts or findings instead", "no-negated-actions")


#: The most rules (findings, grade criteria, drugs, action rules, alerts) a pack may hold.
MAX_RULES = 500
#: How deeply all / any / not may nest in one condition (a comparison alone is depth 0).
MAX_CONDITION_DEPTH = 10


def expansion_size(condition: Condition, negated: bool = False, cap: int = MAX_DNF_TERMS) -> int:
    """How many alternatives the condition's OR-of-ANDs form has, counted without expanding it:
    the product over an AND, the sum over an OR (after De Morgan, as :func:`conditions.to_dnf`
    expands). The count stops growing past ``cap`` (it returns ``cap + 1``), so it never builds a
    huge number either; the work is linear in the size of the condition."""
    if isinstance(condition, Comparison):
        return 1
    if isinstance(condition, Not):
        return expansion_size(condition.condition, not negated, cap)
    conjunctive = isinstance(condition, AllOf) != negated
    total = 1 if conjunctive else 0
    for part in condition.conditions:
        size = expansion_size(part, negated, cap)
        total = total * size if conjunctive else total + size
        total = min(total, cap + 1)
    return total


def _depth(condition: Condition) -> int:
    if isinstance(condition, Comparison):
        return 0
    if isinstance(condition, Not):
        return 1 + _depth(condition.condition)
    return 1 + max((_depth(part) for part in condition.conditions), default=0)


def _rules(protocol: Protocol) -> Iterator[tuple[str, Source]]:
    for finding in protocol.findings:
        yield finding.rule_id, finding.source
    for grade in protocol.grades:
        yield grade.rule_id, grade.source
    for drug in protocol.drugs:
        yield drug.rule_id, drug.source
    for rule in protocol.action_rules:
        yield rule.rule_id, rule.source
    for alert in protocol.alerts:
        yield alert.rule_id, alert.source


@semantic_check
def check_raised_when_unknown_reads_inputs(protocol: Protocol) -> Iterator[Problem]:
    """An alert raised when its data is unknown (``if_unknown: raise``) may read input facts only:
    "not ruled out by the record" cannot be decided for findings and actions while rules fire."""
    for alert in protocol.alerts:
        if alert.if_unknown != "raise":
            continue
        for comparison in comparisons(alert.when):
            if comparison.fact.startswith(("finding.", "action.")):
                yield _problem(comparison.source, alert.rule_id,
                               f"'{comparison.fact}' is read by an alert with if_unknown: raise",
                               "expected a condition on patient facts only, or if_unknown: pending",
                               "raise-reads-inputs")


@semantic_check
def check_condition_size(protocol: Protocol) -> Iterator[Problem]:
    """The pack stays small enough to check and to compile: at most ``MAX_RULES`` rules, conditions
    nested at most ``MAX_CONDITION_DEPTH`` deep, each expanding to at most ``MAX_DNF_TERMS``
    alternatives. Sizes are computed arithmetically, never by expanding, so an exponential
    condition is refused at once; checks that expand (the engine size) run only on a pack within
    these bounds (see :func:`semantic_problems`). One problem per rule."""
    rules = list(_rules(protocol))
    if len(rules) > MAX_RULES:
        rule_id, source = rules[MAX_RULES]
        yield _problem(source, rule_id, f"the pack has {len(rules)} rules",
                       f"expected at most {MAX_RULES} rules; split the protocol into several packs", "rule-count")
    reported: set[str] = set()
    for rule_id, condition in _rule_conditions(protocol):
        if rule_id in reported:
            continue
        depth = _depth(condition)
        if depth > MAX_CONDITION_DEPTH:
            reported.add(rule_id)
            yield _problem(condition.source, rule_id, f"the condition is nested {depth} levels deep (all, any, not)",
                           f"expected at most {MAX_CONDITION_DEPTH} levels; flatten it or split the rule",
                           "condition-depth")
        elif expansion_size(condition) > MAX_DNF_TERMS:
            reported.add(rule_id)
            yield _problem(condition.source, rule_id, "the condition is too complex for the engine",
                           f"expected at most {MAX_DNF_TERMS} alternatives once expanded; split the rule", "condition-size")


@semantic_check
def check_actions_known(protocol: Protocol) -> Iterator[Problem]:
    """Rules propose actions of the actions list, and dose drugs and regimens of dosing.yaml."""
    actions = {a.id for a in protocol.actions}
    for rule in protocol.action_rules:
        if rule.action not in actions:
            yield _problem(rule.source, rule.rule_id, f"unknown action '{rule.action}'",
                           "expected one of " + ", ".join(sorted(actions)), "action-known")
        if rule.dose is not None:
            drug = protocol.drug(rule.dose.drug)
            if drug is None:
                yield _problem(rule.dose.source, rule.rule_id, f"unknown drug '{rule.dose.drug}'",
                               "expected one of " + ", ".join(d.id for d in protocol.drugs), "drug-known")
            elif drug.regimen(rule.dose.regimen) is None:
                yield _problem(rule.dose.source, rule.rule_id,
                               f"unknown regimen '{rule.dose.regimen}' of {drug.id}",
                               "expected one of " + ", ".join(r.id for r in drug.regimens), "drug-known")


@semantic_check
def check_dose_limits(protocol: Protocol) -> Iterator[Problem]:
    """Every dose is bounded in amount and in frequency, and no amount exceeds its own cap."""
    for drug in protocol.drugs:
        cap = drug.limits.max_dose_mg
        for regimen in drug.regimens:
            amount = regimen.amount
            subject = f"{drug.rule_id}.{regimen.id}"
            if amount is None:
                yield _problem(regimen.source, subject, "the regimen has no amount",
                               "expected an amount (fixed_mg or per_kg) on the regimen or the drug", "dose-has-limits")
                continue
            if amount.per_kg and cap is None:
                yield _problem(amount.source, subject, "a per-kg dose has no cap",
                               "expected limits.max_dose_mg on the drug", "dose-has-limits")
            if regimen.interval_h is None and drug.limits.min_interval_h is None:
                yield _problem(regimen.source, subject, "the regimen says nothing about how often",
                               "expected every_h or times_daily, or limits.min_interval_h on the drug", "dose-has-limits")
            if amount.fixed_mg is not None and cap is not None and amount.fixed_mg > cap:
                yield _problem(amount.source, subject,
                               f"the dose of {amount.fixed_mg:g} mg is above the drug's own cap of {cap:g} mg",
                               "expected an amount at most max_dose_mg", "dose-within-cap")
            bands = [band.from_weight_kg for band in amount.per_kg]
            if bands and (bands[0] != 0 or bands != sorted(set(bands))):
                yield _problem(amount.source, subject, "weight bands do not start at 0 kg in increasing order",
                               "expected bands from 0 kg up, each heavier than the one before", "dose-has-limits")
        window = (drug.limits.max_doses_in_window, drug.limits.max_doses_per_course)
        if None not in window and window[0] > window[1]:  # type: ignore[operator]
            yield _problem(drug.limits.source or drug.source, drug.rule_id,
                           "more doses are allowed in the window than in the whole course",
                           "expected max_doses_in_window.doses at most max_doses_per_course", "dose-within-cap")


#: The grading check enumerates every combination of the values the grade criteria read.
MAX_GRADING_COMBINATIONS = 200_000


def _sample_values(fact_type: FactType, tests: list[Comparison]) -> list[Any]:
    """Values that reach every side of every test on one fact, plus 'absent'."""
    absent = _ABSENT
    if fact_type.kind == "boolean":
        # Findings are always set (true or false); patient facts may also be unknown.
        return list(fact_type.values) if fact_type.values else [True, False, absent]
    if fact_type.kind == "level":
        return list(fact_type.values)
    if fact_type.kind == "enum":
        return [*fact_type.values, absent]
    if fact_type.kind == "presence":
        return [True, absent]
    if fact_type.kind == "list":
        names = sorted({str(t.value) for t in tests if t.operator == "includes"}
                       | {n for t in tests for n in t.not_counting} | {"other_a", "other_b", "other_c"})
        return [tuple(names[:size]) for size in range(len(names) + 1)] + [tuple(names[-3:])]
    thresholds = sorted({float(v) for t in tests for v in (t.value if isinstance(t.value, tuple) else (t.value,))
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
    points: set[float] = set()
    for threshold in thresholds:
        points.update({threshold - 0.5, threshold, threshold + 0.5})
    return [*sorted(points), absent] if points else [0.0, absent]


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


@semantic_check
def check_grading_exhaustive_and_exclusive(protocol: Protocol) -> Iterator[Problem]:
    """Every combination of the facts the grade criteria read gives exactly one grade."""
    if not protocol.grades:
        return
    catalogue = fact_catalogue(protocol)
    tests: dict[str, list[Comparison]] = {}
    for grade in protocol.grades:
        for comparison in comparisons(grade.when):
            tests.setdefault(comparison.fact, []).append(comparison)
    if any(fact not in catalogue for fact in tests):
        return  # reported by check_conditions
    facts = sorted(tests)
    domains = [_sample_values(catalogue[f], tests[f]) for f in facts]
    size = 1
    for domain in domains:
        size *= len(domain)
    first = protocol.grades[0].source
    if size > MAX_GRADING_COMBINATIONS:
        yield _problem(first, protocol.grades[0].rule_id,
                       f"the grade criteria read too many facts to check ({size} combinations)",
                       f"expected grade criteria over findings, at most {MAX_GRADING_COMBINATIONS} combinations",
                       "grading-exhaustive")
        return
    gaps: list[str] = []
    overlaps: dict[tuple[str, ...], str] = {}
    for combination in product(*domains):
        flat = {f: v for f, v in zip(facts, combination) if v is not _ABSENT}
        matched = tuple(g.rule_id for g in protocol.grades if holds(g.when, flat))
        described = ", ".join(f"{f}={'absent' if v is _ABSENT else _plain(v)}" for f, v in zip(facts, combination))
        if not matched:
            gaps.append(described)
        elif len(matched) > 1:
            overlaps.setdefault(matched, described)
    if gaps:
        more = f" (and {len(gaps) - 1} more)" if len(gaps) > 1 else ""
        yield _problem(first, protocol.grades[0].rule_id,
                       f"no grade criterion matches {gaps[0]}{more}",
                       "expected the grade criteria to give every patient a grade", "grading-exhaustive")
    by_rule = {g.rule_id: g for g in protocol.grades}
    for matched, described in overlaps.items():
        second = by_rule[matched[1]]
        yield _problem(second.source, second.rule_id,
                       f"gives a second grade, with {', '.join(matched[:1])}, for {described}",
                       "expected the grade criteria to give every patient exactly one grade", "grading-exclusive")


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _finding_dependencies(protocol: Protocol) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for finding in protocol.findings:
        conditions = [finding.when] if finding.when is not None else [lv.when for lv in finding.levels]
        graph[finding.id] = {c.fact.split(".", 1)[1] for cond in conditions for c in comparisons(cond)
                             if c.fact.startswith("finding.")}
    graph[GRADE_FINDING] = {c.fact.split(".", 1)[1] for g in protocol.grades for c in comparisons(g.when)
                            if c.fact.startswith("finding.")}
    return graph


@semantic_check
def check_findings_acyclic(protocol: Protocol) -> Iterator[Problem]:
    """A finding may read other findings, but never itself through a loop; grading reads no action."""
    graph = _finding_dependencies(protocol)
    by_id = {f.id: f for f in protocol.findings}
    for start in graph:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    source = by_id[start].source if start in by_id else protocol.grades[0].source
                    yield _problem(source, f"finding.{start}", f"finding.{start} depends on itself through other findings",
                                   "expected findings that do not depend on themselves", "findings-acyclic")
                    stack = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
    for rule_id, condition in _rule_conditions(protocol):
        if rule_id.startswith("finding.") or rule_id in {g.rule_id for g in protocol.grades}:
            for comparison in comparisons(condition):
                if comparison.fact.startswith("action."):
                    yield _problem(comparison.source, rule_id, "grading reads a proposed action",
                                   "expected findings and grades to read patient facts and findings only", "findings-acyclic")


@semantic_check
def check_statements_encoded(protocol: Protocol) -> Iterator[Problem]:
    """Every seed statement names rule ids that exist."""
    known = set(protocol.rule_ids())
    for statement in protocol.statements:
        for rule_id in statement.encoded_by:
            if rule_id not in known:
                yield _problem(statement.source, statement.id, f"names rule '{rule_id}', which does not exist",
                               "expected ids of rules of this pack", "statement-encoded")


@semantic_check
def check_traced_both_ways(protocol: Protocol) -> Iterator[Problem]:
    """Traceability runs both ways (statements.yaml): every seed statement has rules that encode it
    or a declared deviation, and every rule encodes a statement or is a declared addition with its
    reason. Deviations and additions name statements and rules that exist, each declared once."""
    places = {rule_id: source for rule_id, _, source in _cited(protocol)}
    statements = {s.id for s in protocol.statements}
    deviated = {d.statement for d in protocol.deviations}
    for statement in protocol.statements:
        if not statement.encoded_by and statement.id not in deviated:
            yield _problem(statement.source, statement.id,
                           "no rule encodes this statement and no deviation replaces it",
                           "expected its rule ids in encoded_by, or a deviation in statements.yaml: "
                           f"deviations: [{{id: D.., statement: {statement.id}, instead: ..., reason: ..., "
                           "decided_by: ..., date: ...}]", "traced-both-ways")
    encoded = {rule_id for s in protocol.statements for rule_id in s.encoded_by}
    declared: dict[str, Source] = {}
    for addition in protocol.additions:
        if addition.rule not in places:
            yield _problem(addition.source, addition.rule,
                           f"an addition declares rule '{addition.rule}', which does not exist",
                           "expected the id of a rule of this pack", "traced-both-ways")
        elif addition.rule in declared:
            first = declared[addition.rule]
            yield _problem(addition.source, addition.rule,
                           f"rule '{addition.rule}' is declared an addition twice (first at {first.file}:{first.line})",
                           "expected one addition per rule, with one reason", "traced-both-ways")
        declared.setdefault(addition.rule, addition.source)
    for rule_id in protocol.rule_ids():
        if rule_id not in encoded and rule_id not in declared:
            source = places.get(rule_id, Source(protocol.path, 0, 0))
            yield _problem(source, rule_id, "no seed statement encodes this rule and no addition declares it",
                           "expected its id in a statement's encoded_by in statements.yaml, or an addition "
                           f"there with its reason: additions: [{{rule: {rule_id}, reason: ...}}]",
                           "traced-both-ways")
    ids: dict[str, Source] = {}
    for deviation in protocol.deviations:
        if deviation.id in ids:
            first = ids[deviation.id]
            yield _problem(deviation.source, deviation.id,
                           f"duplicate deviation id '{deviation.id}' (first defined at {first.file}:{first.line})",
                           "expected each deviation id once", "traced-both-ways")
        ids.setdefault(deviation.id, deviation.source)
        if deviation.statement not in statements:
            yield _problem(deviation.source, deviation.id,
                           f"names statement '{deviation.statement}', which does not exist",
                           "expected the id of a statement of statements.yaml", "traced-both-ways")
        for rule_id in deviation.rules:
            if rule_id not in places:
                yield _problem(deviation.source, deviation.id, f"names rule '{rule_id}', which does not exist",
                               "expected ids of rules of this pack", "traced-both-ways")


_NUMBER_IN_TEXT = re.compile(r"(?<![A-Za-z])(?<!grade )(?<!Grade )\d")


def _texts(protocol: Protocol) -> Iterator[tuple[str, str, Source]]:
    for finding in protocol.findings:
        for text in (finding.description, finding.true_text, finding.false_text, finding.otherwise_text,
                     *(level.text for level in finding.levels)):
            if text:
                yield finding.rule_id, text, finding.source
    for grade in protocol.grades:
        yield grade.rule_id, grade.text, grade.source
    for action in protocol.actions:
        yield action.id, action.text, action.source
    for rule in protocol.action_rules:
        yield rule.rule_id, rule.description, rule.source
    for alert in protocol.alerts:
        yield alert.rule_id, alert.description, alert.source
        yield alert.rule_id, alert.text, alert.source


@semantic_check
def check_numbers_live_in_data(protocol: Protocol) -> Iterator[Problem]:
    """Texts carry no protocol numbers: a number written in words-for-people drifts from the data."""
    for rule_id, text, source in _texts(protocol):
        if _NUMBER_IN_TEXT.search(text):
            yield _problem(source, rule_id, f"the text contains a number: {text[:70]!r}",
                           "expected numbers only in data fields (the decision shows them from there)",
                           "numbers-in-data")


@semantic_check
def check_engine_size(protocol: Protocol) -> Iterator[Problem]:
    """The compiled pack stays within what the engine can build (it hangs past a bound)."""
    from .compilation import FACT_KINDS, engine_program  # compilation reads the validated model
    from .engine import MAX_ENGINE_TESTS, ruleset_chain_bound

    rules, _, _ = engine_program(protocol, [])
    size = ruleset_chain_bound(rules, FACT_KINDS)
    if size > MAX_ENGINE_TESTS:
        source = protocol.grades[0].source if protocol.grades else Source(protocol.path, 0, 0)
        yield _problem(source, protocol.id, f"the pack compiles to {size} engine test chains",
                       f"expected at most {MAX_ENGINE_TESTS}: merge or simplify rules", "engine-size")


#: Checks that expand every condition (compile the pack): they run only when check_condition_size
#: finds the pack within its bounds, since an unbounded expansion takes minutes and gigabytes.
@semantic_check
def check_vocabulary(protocol: Protocol) -> Iterator[Problem]:
    """No name belongs to two drugs or shadows a drug class; every entry names a drug of the pack;
    escalation steps and replaced regimens are consistent."""
    from .vocabulary import vocabulary_problems

    for source, subject, message, expected in vocabulary_problems(protocol):
        yield _problem(source, subject, message, expected, "vocabulary")
    for drug in protocol.drugs:
        for regimen in drug.regimens:
            if regimen.replaces is not None and (regimen.replaces == regimen.id or drug.regimen(regimen.replaces) is None):
                yield _problem(regimen.source, drug.rule_id, f"regimen {regimen.id} replaces {regimen.replaces!r}, "
                               "which is no other regimen of the drug", "the id of another regimen of the same drug",
                               "vocabulary")


EXPANDING_CHECKS: frozenset[Check] = frozenset({check_engine_size})


def semantic_problems(protocol: Protocol) -> list[Problem]:
    bounds = list(check_condition_size(protocol))
    problems: list[Problem] = list(bounds)
    for check in SEMANTIC_CHECKS:
        if check is check_condition_size or (bounds and check in EXPANDING_CHECKS):
            continue
        problems.extend(check(protocol))
    return problems

