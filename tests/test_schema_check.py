"""The compiled accept path of input checking never accepts what jsonschema refuses.

``crs_rules.schema_check`` lets valid input through at compiled speed and leaves every refusal to
the jsonschema validator, which words the errors. These tests guard the one direction that matters:
whatever the compiled code accepts, jsonschema accepts too (else an error would go unreported).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from crs_rules import _patient_checks
from crs_rules import patient as patient_module
from crs_rules.schema_check import AcceptFirst, compile_acceptor, plain_json

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


@given(edited_examples())
def test_whatever_the_compiled_code_accepts_jsonschema_accepts(data: dict[str, Any]) -> None:
    if ACCEPTS(data):
        assert list(JSONSCHEMA.iter_errors(data)) == []


@given(json_values)
def test_arbitrary_values_accepted_by_the_compiled_code_are_accepted_by_jsonschema(data: Any) -> None:
    if ACCEPTS(data):
        assert list(JSONSCHEMA.iter_errors(data)) == []


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
