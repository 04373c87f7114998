"""The compiled accept path of input checking never accepts what jsonschema refuses.

``crs_rules.schema_check`` lets valid input through at compiled speed and leaves every refusal to
the jsonschema validator, which words the errors. These tests guard the one direction that matters:
whatever the compiled code accepts, jsonschema accepts too (else an error would go unreported).
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import property_twins
from hypothesis import given, settings
from hypothesis import strategies as st

from crs_rules import _patient_checks
from crs_rules import patient as patient_module
from crs_rules._input_words import Report
from crs_rules._patient_contract import build_state, origin_of
from crs_rules.schema_check import AcceptFirst, _compilable, compile_acceptor, plain_json

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = patient_module.patient_schema()
JSONSCHEMA = _patient_checks._PatientValidator(SCHEMA)
ACCEPTS = compile_acceptor(SCHEMA)
EXAMPLES = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted((ROOT / "examples").glob("*.yaml"))]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["nasal_cannula", "room_air", "fever", "2026-03-10T08:00:00Z",
                                              "2026-03-10T08:00:00Z\n", "tocilizumab", "", "1", "true"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@st.composite
def edited_examples(draw: st.DrawFn) -> dict[str, Any]:
    """An example patient with one value replaced, one key removed, or one key added anywhere."""
    data: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    path = draw(st.sampled_from(_paths(data)[1:]))
    parent: Any = data
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "replace":
        parent[path[-1]] = draw(json_values)
    elif how == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(json_values)
    return data


def test_the_patient_schema_is_compiled_and_every_example_takes_the_fast_path() -> None:
    assert _patient_checks._validator().compiled  # type: ignore[attr-defined]
    assert len(EXAMPLES) >= 7
    for example in EXAMPLES:
        assert ACCEPTS(example)
        assert list(JSONSCHEMA.iter_errors(example)) == []


@pytest.mark.parametrize("examples", property_twins())
def test_whatever_the_compiled_code_accepts_jsonschema_accepts(examples: int) -> None:
    @settings(max_examples=examples)
    @given(edited_examples())
    def check(data: dict[str, Any]) -> None:
        if ACCEPTS(data):
            assert list(JSONSCHEMA.iter_errors(data)) == []

    check()


@pytest.mark.parametrize("examples", property_twins())
def test_arbitrary_values_accepted_by_the_compiled_code_are_accepted_by_jsonschema(examples: int) -> None:
    @settings(max_examples=examples)
    @given(json_values)
    def check(data: Any) -> None:
        if ACCEPTS(data):
            assert list(JSONSCHEMA.iter_errors(data)) == []

    check()


def test_a_refusal_is_worded_by_jsonschema() -> None:
    data = copy.deepcopy(EXAMPLES[0])
    data["vitals"]["oxygen"] = {"device": "hose"}
    fast = AcceptFirst(JSONSCHEMA, SCHEMA)
    assert not ACCEPTS(data)
    assert [e.message for e in fast.iter_errors(data)] == [e.message for e in JSONSCHEMA.iter_errors(data)] != []


def test_siblings_of_a_ref_are_applied_as_in_draft_2020_12() -> None:
    schema = {"$defs": {"n": {"type": "number"}}, "properties": {"x": {"$ref": "#/$defs/n", "maximum": 5}}}
    accepts = compile_acceptor(schema)
    assert accepts({"x": 4})
    assert not accepts({"x": 6})  # draft 7 would ignore "maximum" beside "$ref"


def test_a_keyword_not_known_to_mean_the_same_keeps_the_schema_on_jsonschema() -> None:
    schema = {"type": "object", "unevaluatedProperties": False}
    fast = AcceptFirst(JSONSCHEMA, schema)
    assert not fast.compiled
    assert list(fast.iter_errors({"weight_kg": 70})) != []  # the wrapped validator still answers


def test_only_plain_json_takes_the_fast_path() -> None:
    assert plain_json({"a": [1, 2.5, "x", True, None]})
    assert not plain_json({"a": float("nan")})
    assert not plain_json({1: "x"})
    assert not plain_json("line\nbreak")
    assert not plain_json({"a": ("tuple",)})


def test_deep_or_self_holding_data_goes_to_jsonschema_without_recursion() -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    assert not plain_json(deep)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    assert not plain_json(looped)
    wide: list[Any] = []
    wide.extend([wide, wide])
    assert not plain_json(wide)


# --------------------------------------------------------------------------------------------
# The accept path of parse_patient: one walk, then the compiled check
# --------------------------------------------------------------------------------------------


def _with_datetime_objects(data: dict[str, Any]) -> dict[str, Any]:
    """The input as a caller in Python may give it: date-times as datetime objects."""
    changed = copy.deepcopy(data)
    changed["assessed_at"] = datetime.fromisoformat(changed["assessed_at"].replace("Z", "+00:00"))
    for item in changed.get("medications", []):
        item["given_at"] = datetime.fromisoformat(item["given_at"].replace("Z", "+00:00"))
    return changed


def _agree(data: Any) -> bool:
    """Whether the accept path and the every-check path read ``data`` the same way; True when
    the accept path took it."""
    fast = _patient_checks._accept(data, "<input>")
    report = Report("<input>", None)
    slow = _patient_checks._every_check(data, report)
    if fast is None:
        return False
    assert report.problems == [] and slow is not None  # accepted by one path, so by the other
    origin = origin_of(slow)
    assert origin is not None and origin.data == fast[0]  # the same data as checked ...
    assert build_state(*fast) == slow  # ... read into the same state
    return True


def test_every_example_takes_the_accept_path_and_reads_as_every_check_reads_it() -> None:
    for example in EXAMPLES:
        assert _agree(example)
        assert _agree(_with_datetime_objects(example))


@pytest.mark.parametrize("examples", property_twins())
def test_whatever_the_accept_path_accepts_every_check_accepts_as_the_same_state(examples: int) -> None:
    @settings(max_examples=examples)
    @given(edited_examples())
    def check(data: dict[str, Any]) -> None:
        _agree(data)

    check()


def test_the_accept_path_takes_examples_with_a_value_removed_and_reads_them_as_every_check_does() -> None:
    # The property test above holds whether or not the accept path took its input: here it must
    # take many (an optional value removed leaves a valid patient).
    taken = tried = 0
    for example in EXAMPLES:
        for path in _paths(example)[1:]:
            data = copy.deepcopy(example)
            parent: Any = data
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
            tried += 1
            taken += _agree(data)
    assert taken >= len(EXAMPLES) and taken < tried, (taken, tried)


def test_the_accept_path_leaves_input_with_a_problem_to_every_check() -> None:
    data = copy.deepcopy(EXAMPLES[0])
    data["vitals"]["temperature_f"] = 100.4  # both temperatures: a check beyond the schema
    assert not _agree(data)
    data = copy.deepcopy(EXAMPLES[0])
    data["assessed_at"] = "2020-01-01T00:00:00Z"  # before the doses and the onset
    assert not _agree(data)
    data = copy.deepcopy(EXAMPLES[0])
    data["patient"]["weight_kg"] = float("nan")
    assert not _agree(data)


def test_the_patient_schema_is_compiled_with_its_references_in_place() -> None:
    # A $ref costs a call per checked value in the compiled code: the contract's are replaced.
    compiled = _compilable(SCHEMA)
    compiled.pop("$defs")
    assert "$ref" not in repr(compiled)


def test_a_recursive_reference_is_compiled_as_a_reference() -> None:
    schema = {"$defs": {"tree": {"type": "object", "additionalProperties": False,
                                 "properties": {"leaf": {"type": "number", "maximum": 5},
                                                "below": {"$ref": "#/$defs/tree"}}}},
              "$ref": "#/$defs/tree"}
    accepts = compile_acceptor(schema)
    assert accepts({"below": {"below": {"leaf": 5}}})
    assert not accepts({"below": {"below": {"leaf": 6}}})
    assert not accepts({"below": {"below": {"other": 1}}})


def test_references_that_would_grow_without_bound_are_compiled_as_references() -> None:
    # Each definition uses the next twice: replaced in place, 2 ** 30 copies of the last.
    defs: dict[str, Any] = {f"d{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"},
                                                                      "b": {"$ref": f"#/$defs/d{i + 1}"}}}
                            for i in range(30)}
    defs["d30"] = {"type": "number", "maximum": 5}
    schema = {"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}}
    assert "$ref" in repr(_compilable(schema)["properties"])
    accepts = compile_acceptor(schema)
    def chain(last: Any) -> Any:  # 30 mappings down to d30
        for _ in range(30):
            last = {"a": last}
        return last

    assert accepts({"x": chain(5)})
    assert not accepts({"x": chain(6)})
    assert not accepts({"x": {"b": {"a": 5}}})  # d2 is a mapping
