"""The fast paths of the engine wrapper read exactly what the full readings read, and refuse the same.

Actions are read by their known head (:func:`crs_rules.engine_values.parse_action`), the session's
listing is checked in one cut (:func:`crs_rules.engine_values.stored_facts`), matched facts are
decoded only when read, and plain JSON goes through the C encoder and scanner directly. Each test
sets a fast path against the full reading, or shows that a difference still fails loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_engine import fever_ruleset, obs

import crs_rules.engine_values as engine_values
from crs_rules import load_protocol, read_patient
from crs_rules.engine import CompiledRuleset, Firing, PreparedFact
from crs_rules.engine_json import read_json, to_engine_json
from crs_rules.engine_values import ActionShape, parse_action, stored_facts
from crs_rules.errors import EngineError
from crs_rules.evaluation import compiled
from crs_rules.facts import flat_facts
from crs_rules.vocabulary import normalise

REPO_ROOT = Path(__file__).resolve().parents[1]

PREFIX = '{"sid":"s1","id":'
TAILS = {"1": '1,"t":"obs","x":1}', "2": '2,"t":"alert","y":"a,b"}', "3": '3,"t":"alert","y":"c"}'}
RULES = {"one", "pair"}


def action(rule: str, *facts: tuple[str, str]) -> str:
    """An action as the engine writes it: the rule, then each alias with its fact's engine text."""
    body = ",".join(f'"{alias}":{PREFIX}{TAILS[token]}' for alias, token in facts)
    return f'{{"{rule}":{{{body}}}}}'


def read(text: str, heads: dict[str, ActionShape] | None) -> tuple[str, dict[str, str]]:
    return parse_action(text, PREFIX, TAILS, "test", RULES.__contains__, heads, {})


@pytest.mark.parametrize("facts", [
    (("o", "1"),),
    (("a", "2"), ("b", "3")),
    (("a", "3"), ("b", "2")),
    (("o", "1"), ("a", "2"), ("b", "3")),
])
def test_an_action_read_by_its_known_head_reads_as_the_full_reading(facts: tuple[tuple[str, str], ...]) -> None:
    heads: dict[str, ActionShape] = {}
    first = read(action("pair", *facts), heads)
    assert heads  # the first reading taught the head
    # Another action of the same shape (other facts in the same places) takes the fast path.
    again = read(action("pair", *facts), heads)
    assert again == first == read(action("pair", *facts), None)
    assert first == ("pair", {alias: TAILS[token] for alias, token in facts})


def test_a_known_head_followed_by_other_aliases_is_read_in_full() -> None:
    heads: dict[str, ActionShape] = {}
    read(action("pair", ("a", "2"), ("b", "3")), heads)
    # Same head ({"pair":{"a":), other second alias: the shape differs, so the full reading reads it.
    assert read(action("pair", ("a", "2"), ("c", "3")), heads) == ("pair", {"a": TAILS["2"], "c": TAILS["3"]})
    assert read(action("pair", ("a", "2")), heads) == ("pair", {"a": TAILS["2"]})


def test_a_fact_whose_text_is_not_the_one_asserted_is_refused_with_its_head_known() -> None:
    heads: dict[str, ActionShape] = {}
    read(action("one", ("o", "1")), heads)
    changed = action("one", ("o", "1")).replace('"x":1', '"x":2')
    with pytest.raises(EngineError, match="whose text is not the one asserted"):
        read(changed, heads)
    unknown_id = action("one", ("o", "1")).replace(f"{PREFIX}1,", f"{PREFIX}9,")
    with pytest.raises(EngineError, match="whose text is not the one asserted"):
        read(unknown_id, heads)


@pytest.mark.parametrize("cut", [1, 5, -1, -2])
def test_an_action_cut_short_is_an_engine_error_whether_or_not_its_head_is_known(cut: int) -> None:
    whole = action("pair", ("o", "1"), ("a", "2"))
    choices: tuple[dict[str, ActionShape] | None, ...] = ({}, None)
    for heads in choices:
        if heads is not None:
            parse_action(whole, PREFIX, TAILS, "test", RULES.__contains__, heads, {})  # its head known
        with pytest.raises(EngineError, match="unexpected action from the engine"):
            parse_action(whole[:cut], PREFIX, TAILS, "test", RULES.__contains__, heads, {})


def test_a_listing_in_any_order_reads_back_the_facts_in_assertion_order() -> None:
    facts = [(token, "k", "{" + tail.partition(",")[2], None) for token, tail in TAILS.items()]
    for order in (["1", "2", "3"], ["3", "1", "2"], ["2", "3", "1"]):
        raw = "[" + ",".join(PREFIX + TAILS[token] for token in order) + "]"
        assert stored_facts(raw, PREFIX, TAILS, facts, "test") == (
            {"t": "obs", "x": 1}, {"t": "alert", "y": "a,b"}, {"t": "alert", "y": "c"})
    listing = "[" + ",".join(PREFIX + TAILS[token] for token in ("1", "2", "2", "3")) + "]"
    with pytest.raises(EngineError, match="unexpected fact"):
        stored_facts(listing, PREFIX, TAILS, facts, "test")


def test_a_fact_holding_the_sessions_own_prefix_is_still_read_exactly() -> None:
    # A hand-made prepared fact (not canonical: "sid" before "id") nests the text every fact of the
    # first session starts with: the one-cut checks cannot place it and the full readings do.
    nested = PreparedFact("obs", '{"note":{"sid":"s1","id":1},"t":"obs","vitals":{"temp":39}}')
    ruleset = fever_ruleset()
    first, second = ruleset.run([nested]), ruleset.run([nested])  # the second knows the heads
    expected = ({"note": {"sid": "s1", "id": 1}, "t": "obs", "vitals": {"temp": 39}},
                {"t": "alert", "temp": 39}, {"t": "page", "temp": 39})
    assert first.facts == second.facts == expected
    assert first.fired == second.fired == ("fever", "escalate")


def test_a_firing_is_read_only_and_decodes_only_the_facts_its_handler_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str] = []
    real_read = read_json

    def counting(text: str) -> Any:
        decoded.append(text)
        return real_read(text)

    refused: list[str] = []

    def fever(firing: Firing) -> None:
        try:
            firing.rule = "other"  # type: ignore[misc]
        except AttributeError:
            refused.append(firing.rule)
        firing.assert_fact({"t": "alert", "temp": 1})

    def escalate(firing: Firing) -> None:
        firing.assert_fact({"t": "page", "temp": firing.matched["a"]["temp"] + 1})
        assert firing.matched["a"] is firing.matched["a"]  # one copy per firing, decoded once

    ruleset = fever_ruleset(fever=fever, escalate=escalate)
    monkeypatch.setattr(engine_values, "read_json", counting)
    result = ruleset.run([obs(39)])

    assert refused == ["fever"]
    assert result.facts[1:] == ({"t": "alert", "temp": 1}, {"t": "page", "temp": 2})
    # The alert read by escalate, then the three facts of the result read back once each; the
    # observation matched by fever was never decoded for it.
    assert [json.loads(text)["t"] for text in decoded] == ["alert", "obs", "alert", "page"]


def test_plain_json_through_the_c_encoder_and_scanner_reads_as_the_standard_library() -> None:
    values: list[Any] = [
        {"b": [1, 2.5, True, False], "a": {"z": "é", "y": -(2**63)}},
        {"t": "x", "n": 0.1, "big": 2**63 - 1},
        [{"k": "v"}, [], {}],
    ]
    for value in values:
        text = to_engine_json(value, sort_keys=True)
        assert text == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert read_json(text) == json.loads(text) == value
    assert to_engine_json({"m": 1e-05}) == '{"m":0.00001}'  # the careful encoder, as before
    with pytest.raises(json.JSONDecodeError):
        read_json('{"a":1} trailing')


def test_a_value_past_the_walk_bound_or_holding_itself_goes_through_the_careful_encoder() -> None:
    wide = {f"k{index}": {"v": index} for index in range(10_050)}  # more containers than the bound
    assert to_engine_json(wide, sort_keys=True) == json.dumps(wide, sort_keys=True, separators=(",", ":"))
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(RecursionError):  # not a hang
        to_engine_json(looped)


@pytest.mark.parametrize("example", ["grade3-adult.yaml", "at-24h-limit.yaml", "indeterminate-no-temperature.yaml"])
def test_the_observation_in_the_result_is_what_its_engine_text_reads_back_as(example: str) -> None:
    protocol = load_protocol(REPO_ROOT / "rules")
    program = compiled(protocol)
    state = normalise(read_patient(REPO_ROOT / "examples" / example), protocol)
    known = flat_facts(state, protocol)
    result, trace, failed = program.run(state, known)
    observation = program.observation(state, known)
    assert result.facts[0] == json.loads(to_engine_json(observation, sort_keys=True)) == observation
    again = program.run(state, known)
    assert again == (result, trace, failed)  # the record of conclusions starts empty each time


def test_a_ruleset_takes_prepared_input_facts_with_their_value_as_the_result() -> None:
    ruleset = CompiledRuleset({}, {}, ["obs"], "prepared-input")
    value = {"t": "obs", "x": [1, 2]}
    fact = PreparedFact("obs", to_engine_json(value, sort_keys=True), value)
    result = ruleset.run([fact])
    assert result.facts == (value,) and result.facts[0] is not value  # a copy
