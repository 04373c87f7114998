"""``conditions.compare`` and ``holds``: each operator on values written here, edges included.

The compiled rules and the validator's grading check both rest on this meaning of a comparison, so
each operator is pinned down on its own: equality is by type as well as value (``true`` is not
``1``), numbers compare across int and float, bounds are inclusive or exclusive as named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crs_rules.conditions import compare, holds
from crs_rules.model import Comparison, Not, Scalar, Source
from crs_rules.operators import OPERATOR_TABLE, OPERATORS, operators_for

HERE = Source("test", 1, 1)
ROOT = Path(__file__).resolve().parent.parent


def comparison(operator: str, value: Scalar | tuple[Scalar, ...], not_counting: tuple[str, ...] = ()) -> Comparison:
    return Comparison("some.fact", operator, value, HERE, not_counting)


CASES: list[tuple[str, Scalar | tuple[Scalar, ...], Any, bool]] = [
    # (operator, value in the rule, fact value, passes)
    ("exists", True, False, True),
    ("exists", True, "anything", True),
    ("equals", True, True, True),
    ("equals", True, False, False),
    ("equals", True, 1, False),  # a boolean is not a number
    ("equals", 1, True, False),
    ("equals", False, 0, False),
    ("equals", 38, 38.0, True),  # int and float compare as numbers
    ("equals", 38.5, 38, False),
    ("equals", "face_mask", "face_mask", True),
    ("equals", "face_mask", "nasal_cannula", False),
    ("equals", "1", 1, False),
    ("not_equals", True, True, False),
    ("not_equals", True, False, True),
    ("not_equals", True, 1, True),  # a boolean is not a number
    ("not_equals", 0, False, True),
    ("not_equals", 2, 2.0, False),
    ("not_equals", "face_mask", "face_mask", False),
    ("not_equals", "face_mask", "none", True),
    ("one_of", ("face_mask", "non_rebreather"), "face_mask", True),
    ("one_of", ("face_mask", "non_rebreather"), "non_rebreather", True),
    ("one_of", ("face_mask", "non_rebreather"), "nasal_cannula", False),
    ("includes", "vasopressin", ("norepinephrine", "vasopressin"), True),
    ("includes", "vasopressin", ("norepinephrine",), False),
    ("includes", "vasopressin", (), False),
    ("count_at_least", 2, ("norepinephrine", "phenylephrine"), True),
    ("count_at_least", 2, ("norepinephrine",), False),
    ("count_at_least", 1, (), False),
    ("count_at_least", 0, (), True),
    ("at_least", 38.0, 38.0, True),
    ("at_least", 38.0, 37.99, False),
    ("at_least", 38.0, 38.01, True),
    ("at_least", 38, 38.0, True),
    ("above", 6, 6, False),
    ("above", 6, 6.01, True),
    ("above", 6, 5.99, False),
    ("at_most", 6, 6, True),
    ("at_most", 6, 6.01, False),
    ("at_most", 6, 5.99, True),
    ("below", 30, 29.9, True),
    ("below", 30, 30, False),
    ("below", 30, 30.0, False),
    ("below", 30.0, 31, False),
]


@pytest.mark.parametrize("operator,value,fact,passes", CASES, ids=[f"{o}-{v!r}-{f!r}" for o, v, f, _ in CASES])
def test_each_operator_compares_as_named(operator: str, value: Scalar | tuple[Scalar, ...], fact: Any,
                                         passes: bool) -> None:
    assert compare(comparison(operator, value), fact) is passes


def test_every_operator_has_cases() -> None:
    assert set(OPERATORS) <= {operator for operator, _, _, _ in CASES}


@pytest.mark.parametrize("vasopressors,passes", [
    (("norepinephrine", "vasopressin"), False),  # vasopressin is not counted
    (("norepinephrine", "phenylephrine"), True),
    (("norepinephrine", "phenylephrine", "vasopressin"), True),
    (("vasopressin",), False),
    ((), False),
])
def test_count_at_least_leaves_out_what_is_not_counted(vasopressors: tuple[str, ...], passes: bool) -> None:
    assert compare(comparison("count_at_least", 2, not_counting=("vasopressin",)), vasopressors) is passes


def test_an_unknown_operator_is_an_error_not_an_answer() -> None:
    with pytest.raises(ValueError, match="unknown operator between"):
        compare(comparison("between", 1), 1)


def test_a_comparison_on_an_absent_fact_is_false_and_its_negation_true() -> None:
    fever = Comparison("vitals.temperature_c", "at_least", 38.0, HERE)
    assert holds(fever, {"vitals.temperature_c": 38.0})
    assert not holds(fever, {})
    assert holds(Not(fever, HERE), {})
    assert not holds(Not(fever, HERE), {"vitals.temperature_c": 38.0})
    # A fact whose value is false or zero is present: only a missing key is absent.
    assert holds(Comparison("vitals.hypotension", "exists", True, HERE), {"vitals.hypotension": False})


def test_the_condition_schema_names_exactly_the_operators_of_the_table() -> None:
    schema = json.loads((ROOT / "schemas" / "condition.schema.json").read_text(encoding="utf-8"))
    keys = set(schema["properties"]) - {"all", "any", "not", "fact", "not_counting"}
    assert keys == set(OPERATORS)


def test_every_operator_applies_to_some_kind_of_fact_and_reads_in_its_own_words() -> None:
    words = [op.words for op in OPERATOR_TABLE.values()]
    assert all(words) and len(set(words)) == len(words)
    assert all(op.applies_to for op in OPERATOR_TABLE.values())
    # Every kind of fact a condition can read has operators (facts.FactType.kind).
    assert all(operators_for(kind) for kind in ("number", "boolean", "enum", "list", "level", "presence"))
