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

import crs_rules.engine as engine
import crs_rules.engine_values as engine_values
from crs_rules import load_protocol, read_patient
from crs_rules.engine import CompiledRuleset, Firing, PreparedFact, prepare_fact
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


def _observation_case(example: str) -> tuple[Any, Any, dict[str, Any]]:
    protocol = load_protocol(REPO_ROOT / "rules")
    program = compiled(protocol)
    state = normalise(read_patient(REPO_ROOT / "examples" / example), protocol)
    return program, state, dict(flat_facts(state, protocol))


def _careful(program: Any, state: Any, known: dict[str, Any]) -> str:
    return to_engine_json(program.observation(state, known), sort_keys=True, where="the observation")


def test_the_observation_written_from_the_flat_facts_is_the_encoders_text_for_every_generated_patient() -> None:
    from crs_rules.errors import InvalidInputError
    from crs_rules.evaluation import _accept
    from crs_rules.impact import population_inputs

    protocol = load_protocol(REPO_ROOT / "rules")
    program = compiled(protocol)
    checked = 0
    for _, data in population_inputs((protocol,), 300, 7):
        try:
            state = normalise(_accept(data), protocol)
        except InvalidInputError:
            continue
        known = flat_facts(state, protocol)
        fact = program.observation_fact(state, known)
        assert fact.kind == "observation"
        assert fact.text == _careful(program, state, known)
        assert fact.value == program.observation(state, known)
        checked += 1
    assert checked > 200


@pytest.mark.parametrize(("path", "value"), [
    ("vitals.temperature_c", 1e-05),  # an exponent in its repr: written in plain decimal
    ("vitals.temperature_c", 123456789012345678.0),
    ("vitals.temperature_c", -0.0),
    ("vitals.temperature_c", 0.0001),
    ("patient.weight_kg", 2**63 - 1),
    ("vitals.oxygen.device", "cânula"),  # not ASCII
    ("vitals.oxygen.device", 'a "quoted"\\ name\n'),
])
def test_an_observation_value_the_fast_writer_does_not_take_is_written_as_the_careful_encoder_writes_it(
    path: str, value: Any,
) -> None:
    program, state, known = _observation_case("grade3-adult.yaml")
    known[path] = value
    fact = program.observation_fact(state, known)
    assert fact.text == _careful(program, state, known)
    assert fact.value == json.loads(fact.text)


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "not a finite number"),
    (2**63, "outside the signed 64-bit range"),
    ("\ud800", "not valid Unicode"),
    (None, "None is not allowed"),
    (object(), "is not a JSON value"),
])
def test_an_observation_value_the_engine_cannot_take_is_refused_as_before(value: Any, message: str) -> None:
    program, state, known = _observation_case("grade3-adult.yaml")
    known["vitals.temperature_c"] = value
    with pytest.raises(ValueError, match=message) as fast:
        program.observation_fact(state, known)
    with pytest.raises(ValueError) as careful:
        _careful(program, state, known)
    assert str(fast.value) == str(careful.value)


def test_facts_that_nest_inside_each_other_fail_as_the_observation_fails() -> None:
    import dataclasses

    program, state, known = _observation_case("grade3-adult.yaml")
    # Every fact held (no reads to bound the observation): a fact in the place of another.
    everything = dataclasses.replace(program, observation_reads=None)
    assert everything.observation_fact(state, known).text == _careful(everything, state, known)
    # After the facts inside it, the fact takes their place; before them, they cannot nest in it.
    after = {**known, "vitals.oxygen": 1}
    assert everything.observation_fact(state, after).text == _careful(everything, state, after)
    before = {"vitals.oxygen": 1, **known}
    with pytest.raises(TypeError) as fast:
        everything.observation_fact(state, before)
    with pytest.raises(TypeError) as careful:
        everything.observation(state, before)
    assert str(fast.value) == str(careful.value)
    # The layout learnt the clash: a patient without it is still written exactly.
    assert everything.observation_fact(state, known).text == _careful(everything, state, known)


@pytest.mark.parametrize("prepared", [True, False])
def test_a_value_read_from_a_matched_fact_is_the_one_indexing_reads_and_a_prepared_fact_is_not_decoded(
    monkeypatch: pytest.MonkeyPatch, prepared: bool,
) -> None:
    decoded: list[str] = []
    real_read = read_json

    def counting(text: str) -> Any:
        decoded.append(json.loads(text)["t"])
        return real_read(text)

    seen: list[Any] = []

    def fever(firing: Firing) -> None:
        vitals = firing.read("o", "vitals")
        vitals["temp"] = 0  # a fresh copy: changes nothing else
        seen.extend([firing.read("o", "vitals", "temp"), firing.read("o", "ward"), vitals])
        with pytest.raises(KeyError):
            firing.read("o", "vitals", "pulse")
        with pytest.raises(KeyError):
            firing.read("x")
        firing.assert_fact({"t": "alert", "temp": firing.read("o", "vitals", "temp")})

    value = {"t": "obs", "vitals": {"temp": 39}, "ward": "b"}
    fact: Any = PreparedFact("obs", to_engine_json(value, sort_keys=True), read_json(to_engine_json(value)))
    monkeypatch.setattr(engine_values, "read_json", counting)
    result = fever_ruleset(fever=fever).run([fact if prepared else value])
    assert seen == [39, "b", {"temp": 0}]
    assert result.facts == (value, {"t": "alert", "temp": 39}, {"t": "page", "temp": 39})
    # The observation is decoded for its firing (and read back for the result) only when its
    # content is not known; the alert is decoded by escalate and read back for the result.
    assert decoded == (["alert", "alert", "page"] if prepared else ["obs", "alert", "obs", "alert", "page"])


def test_a_conclusion_asserts_what_it_draws_with_or_without_a_firing_and_fails_as_a_handler() -> None:
    from crs_rules.engine import Conclusion

    alert = prepare_fact({"t": "alert", "temp": 1})
    drawn: list[str] = []

    def draw() -> tuple[PreparedFact, ...]:
        drawn.append("fever")
        return (alert,)

    ruleset = fever_ruleset(fever=Conclusion(draw))
    assert ruleset.run([obs(39)]).facts == (obs(39), {"t": "alert", "temp": 1}, {"t": "page", "temp": 1})
    assert ruleset.run([obs(37)]).fired == ()
    assert drawn == ["fever"]
    # Called as an ordinary handler, with its firing: the same facts.
    through = fever_ruleset(fever=lambda firing: Conclusion(draw)(firing))
    assert through.run([obs(39)]).facts == ruleset.run([obs(39)]).facts

    def broken() -> tuple[PreparedFact, ...]:
        raise KeyError("nothing")

    with pytest.raises(EngineError, match=r"rule fever failed: KeyError: 'nothing'"):
        fever_ruleset(fever=Conclusion(broken)).run([obs(39)])
    with pytest.raises(EngineError, match=r"rule fever failed: EngineError: .*rule fever asserted a duplicate fact"):
        fever_ruleset(fever=Conclusion(lambda: (alert, alert))).run([obs(39)])
    with pytest.raises(EngineError, match=r"rule fever asserted a fact of undeclared kind 'lab'"):
        fever_ruleset(fever=Conclusion(lambda: (prepare_fact({"t": "lab"}),))).run([obs(39)])


def test_past_the_bound_on_paths_learnt_facts_at_new_paths_take_the_careful_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import crs_rules.compilation as compilation

    program, state, known = _observation_case("grade3-adult.yaml")
    everything = dataclasses.replace(program, observation_reads=None)
    monkeypatch.setattr(compilation, "MAX_LAYOUT_PATHS", len(known))
    assert everything.observation_fact(state, known).text == _careful(everything, state, known)
    learnt = everything._layout
    more = {**known, "vitals.extra": 2.5}
    assert everything.observation_fact(state, more).text == _careful(everything, state, more)
    assert everything._layout is learnt  # not learnt: written by the careful path
    assert everything.observation_fact(state, known).text == _careful(everything, state, known)


def test_a_result_is_its_own_copy_of_a_prepared_fact_reused_across_runs() -> None:
    """Changing a nested value of one result changes neither what a later run reports nor what its
    handlers read: the prepared fact's content is copied whole into each result."""
    rules = {"hot": {"all": [{"o": {"$and": [{"t": "obs"}, {"$gt": {"vitals.temp": 38}}]}}]}}
    read: list[Any] = []
    ruleset = CompiledRuleset(rules, {"hot": lambda firing: read.append(firing.read("o", "vitals", "temp"))},
                              ["obs"], "reused prepared fact")
    prepared = prepare_fact({"t": "obs", "vitals": {"temp": 39}})
    first = ruleset.run([prepared])
    first.facts[0]["vitals"]["temp"] = 36
    second = ruleset.run([prepared])
    assert second.fired == ("hot",) and read == [39, 39]
    assert second.facts[0]["vitals"]["temp"] == 39 and prepared.value == {"t": "obs", "vitals": {"temp": 39}}


def test_a_lowered_bound_on_facts_per_evaluation_holds_from_the_first_fact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MAX_FACTS", 3)
    ruleset = CompiledRuleset({}, {}, ["obs"], "bound")
    with pytest.raises(EngineError, match="more than 3 facts in one evaluation"):
        ruleset.run([{"t": "obs", "k": index} for index in range(6)])
