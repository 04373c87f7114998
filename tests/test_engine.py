"""Regression tests for crs_rules.engine: one per sharp edge of durable_rules 2.0.28.

Each test builds a tiny ruleset inline. Where it helps to show that a guard matters, the test
also drives the bare C module ``durable_rules_engine`` into the failure the guard prevents.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import durable_rules_engine
import pytest

import crs_rules.engine as engine
from crs_rules.engine import CompiledRuleset, Firing, RunResult, prepare_fact, ruleset_chain_bound
from crs_rules.errors import EngineError

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

FEVER_RULES: dict[str, dict[str, Any]] = {
    "fever": {"all": [{"o": {"$and": [{"t": "obs"}, {"$gte": {"vitals.temp": 38}}]}}]},
    "escalate": {"all": [{"a": {"t": "alert"}}]},
}


def fever(firing: Firing) -> None:
    firing.assert_fact({"t": "alert", "temp": firing.matched["o"]["vitals"]["temp"]})


def escalate(firing: Firing) -> None:
    firing.assert_fact({"t": "page", "temp": firing.matched["a"]["temp"]})


def fever_ruleset(label: str = "fever", **handlers: Any) -> CompiledRuleset:
    chosen = {"fever": fever, "escalate": escalate, **handlers}
    return CompiledRuleset(FEVER_RULES, chosen, ["obs", "alert", "page"], label)


def obs(temp: float | None, **extra: Any) -> dict[str, Any]:
    return {"t": "obs", "vitals": {"temp": temp}, **extra}


def nothing(firing: Firing) -> None:
    return None


def within(seconds: float, action: Callable[[], T]) -> T:
    """Run ``action`` and fail the test, instead of hanging it, if it takes too long."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(("value", action()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s")
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return cast(T, value)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * 4096 / 2**20


BareSessions = list[tuple[int, str, int]]


@pytest.fixture
def bare_sessions() -> Iterator[BareSessions]:
    """(ruleset, sid, state) of the bare engine sessions a test opened, deleted afterwards."""
    opened: BareSessions = []
    yield opened
    for handle, sid, state in opened:
        # Deleting a session no action was started for can crash: start one and abandon it.
        if durable_rules_engine.start_action_for_state(handle, state) is not None:
            durable_rules_engine.abandon_action(handle, state)
        durable_rules_engine.delete_state(handle, sid)


# -- chaining ----------------------------------------------------------------------------------


def test_a_rule_fires_on_a_fact_that_another_rules_handler_asserted() -> None:
    result = fever_ruleset().run([obs(38.5)])

    assert result.fired == ("fever", "escalate")
    assert result.facts == (obs(38.5), {"t": "alert", "temp": 38.5}, {"t": "page", "temp": 38.5})


def test_a_prepared_fact_chains_and_is_stored_like_the_mapping_it_was_prepared_from() -> None:
    page = prepare_fact({"temp": 0, "t": "page"})
    result = fever_ruleset(escalate=lambda firing: firing.assert_fact(page)).run([obs(38.5)])

    assert result.fired == ("fever", "escalate")
    assert result.facts == (obs(38.5), {"t": "alert", "temp": 38.5}, {"t": "page", "temp": 0})


def test_a_prepared_fact_is_checked_when_prepared_and_its_kind_when_asserted() -> None:
    with pytest.raises(ValueError, match="reserved for the engine"):
        prepare_fact({"t": "page", "id": 3})
    with pytest.raises(ValueError, match="is not a finite number"):
        prepare_fact({"t": "page", "temp": float("nan")})
    stray = prepare_fact({"t": "unknown_kind"})
    ruleset = fever_ruleset(escalate=lambda firing: firing.assert_fact(stray))
    with pytest.raises(EngineError, match="undeclared kind 'unknown_kind'"):
        ruleset.run([obs(38.5)])
    assert ruleset.run([obs(37)]).facts == (obs(37),)  # the next evaluation is whole


def test_a_handler_reads_the_facts_it_matched_as_fresh_copies_in_every_firing() -> None:
    seen: list[dict[str, Any]] = []

    def keep(firing: Firing) -> None:
        fact = firing.matched["o"]
        seen.append(json.loads(json.dumps(fact)))
        fact["vitals"]["temp"] = 0  # changing a copy changes nothing in the engine or later firings
        firing.assert_fact({"t": "alert", "temp": 1})

    ruleset = fever_ruleset(fever=keep)
    first, second = ruleset.run([obs(38.5)]), ruleset.run([obs(38.5)])
    assert seen == [obs(38.5), obs(38.5)]
    assert first.facts[0] == second.facts[0] == obs(38.5)


def test_facts_come_back_in_assertion_order_without_engine_keys() -> None:
    inputs = [obs(36.0 + k / 20, seq=k) for k in range(30)]

    result = fever_ruleset().run(inputs)

    assert result.facts == tuple(inputs)  # the engine lists them in its own order
    assert result.fired == ()


def test_a_join_rule_fires_once_per_combination_of_matching_facts() -> None:
    rules = {"pair": {"all": [{"a": {"t": "x"}}, {"b": {"t": "y"}}]}}
    pairs: list[tuple[int, int]] = []
    ruleset = CompiledRuleset(
        rules,
        {"pair": lambda f: pairs.append((f.matched["a"]["k"], f.matched["b"]["k"]))},
        ["x", "y"],
        "join",
    )

    result = ruleset.run([{"t": "x", "k": 1}, {"t": "x", "k": 2}, {"t": "y", "k": 3}])

    assert sorted(pairs) == [(1, 3), (2, 3)]
    assert result.fired == ("pair", "pair")


# -- facts the engine would drop without a word ------------------------------------------------


def test_a_handler_asserting_an_undeclared_kind_fails_where_the_bare_engine_is_silent(
    bare_sessions: BareSessions,
) -> None:
    rules = {"fever": FEVER_RULES["fever"]}
    # The bare engine, with the same rule and a catch-all for "obs": from inside the action,
    # a fact no rule matches comes back as code 1 and is simply not stored.
    handle = durable_rules_engine.create_ruleset(
        "bare-undeclared",
        json.dumps({**rules, "keep_obs": {"all": [{"m": {"t": "obs"}}]}}),
    )
    first = json.dumps({"sid": "s", "id": 1, **obs(39)})
    _, state = durable_rules_engine.assert_fact(handle, first)
    bare_sessions.append((handle, "s", state))
    assert durable_rules_engine.start_action_for_state(handle, state) is not None
    chained = json.dumps({"sid": "s", "id": 2, "t": "alert"})
    code, _ = durable_rules_engine.assert_fact(handle, chained)
    assert code == 1
    assert "alert" not in durable_rules_engine.get_facts(handle, "s")

    ruleset = CompiledRuleset(rules, {"fever": fever}, ["obs"], "undeclared")
    with pytest.raises(EngineError, match=r"rule fever failed.*undeclared kind 'alert'"):
        ruleset.run([obs(39)])


def test_a_caller_fact_of_an_undeclared_kind_is_refused() -> None:
    with pytest.raises(EngineError, match=r"input asserted a fact of undeclared kind 'lab'"):
        fever_ruleset().run([obs(37), {"t": "lab", "crp": 12}])


def test_a_handler_that_swallows_its_failed_assert_still_fails_the_run() -> None:
    def sloppy(firing: Firing) -> None:
        try:
            firing.assert_fact({"t": "unknown_kind"})
        except EngineError:
            pass

    with pytest.raises(EngineError, match=r"undeclared kind 'unknown_kind'"):
        fever_ruleset(fever=sloppy).run([obs(39)])


def test_asserting_the_same_fact_twice_raises_from_the_caller_and_from_a_handler() -> None:
    with pytest.raises(EngineError, match=r"input asserted a duplicate fact of kind 'obs'"):
        fever_ruleset().run([obs(37, bed=1), obs(37, bed=1)])

    def twice(firing: Firing) -> None:
        firing.assert_fact({"t": "alert", "temp": 39})
        firing.assert_fact({"temp": 39, "t": "alert"})  # same content, other key order

    with pytest.raises(EngineError, match=r"rule fever failed.*duplicate fact of kind 'alert'"):
        fever_ruleset(fever=twice).run([obs(39)])


def test_an_engine_fact_identity_collision_raises_instead_of_dropping_the_fact(
    monkeypatch: pytest.MonkeyPatch, bare_sessions: BareSessions
) -> None:
    # These two ids have the same 32-bit FNV-1a hash, the engine's fact identity: the bare
    # engine refuses the second fact as already observed although it was never seen.
    colliding = ["500aa0ce53", "e7e3290e51bc"]
    handle = durable_rules_engine.create_ruleset(
        "bare-collision", json.dumps({"keep_obs": {"all": [{"m": {"t": "obs"}}]}})
    )
    codes = []
    for fact_id, temp in zip(colliding, (37, 38)):
        fact = {"sid": "s", "id": fact_id, **obs(temp)}
        code, state = durable_rules_engine.assert_fact(handle, json.dumps(fact))
        codes.append(code)
    bare_sessions.append((handle, "s", state))
    assert codes == [0, 2]
    assert len(json.loads(durable_rules_engine.get_facts(handle, "s"))) == 1

    monkeypatch.setattr(engine, "_fact_id", lambda sequence: colliding[sequence - 1])
    with pytest.raises(EngineError, match=r"input: .*duplicate \(code 2"):
        fever_ruleset().run([obs(37), obs(38)])


def test_a_fact_lost_by_the_engine_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    real_get_facts = durable_rules_engine.get_facts

    def lose_one(handle: int, sid: str) -> str:
        facts = json.loads(real_get_facts(handle, sid))
        return json.dumps(facts[1:])

    ruleset = fever_ruleset()
    monkeypatch.setattr(durable_rules_engine, "get_facts", lose_one)
    with pytest.raises(EngineError, match=r"lost 1 of 3 asserted facts"):
        ruleset.run([obs(36), obs(36.5), obs(37)])


def test_a_fact_changed_by_the_engine_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    real_get_facts = durable_rules_engine.get_facts

    def change_one(handle: int, sid: str) -> str:
        text: str = real_get_facts(handle, sid)
        return text.replace("36.5", "63.5")

    ruleset = fever_ruleset()
    monkeypatch.setattr(durable_rules_engine, "get_facts", change_one)
    with pytest.raises(EngineError, match=r"changed the text of a stored fact"):
        ruleset.run([obs(36), obs(36.5)])


def test_a_rule_matching_the_engines_session_record_raises() -> None:
    # A pattern that only tests $nex also matches the session record the engine keeps.
    rules = {"no_flag": {"all": [{"m": {"$nex": {"flag": 1}}}]}}
    ruleset = CompiledRuleset(rules, {"no_flag": nothing}, ["obs"], "nex")

    with pytest.raises(EngineError, match=r"rule no_flag matched something that is not a fact"):
        ruleset.run([obs(37)])


CRASH_CHILD = """
import json, sys
import durable_rules_engine
from crs_rules.engine import CompiledRuleset
from crs_rules.errors import EngineError

if sys.argv[1] == "bare":
    keep = {"keep": {"all": [{"m": {"t": "obs"}}]}}
    handle = durable_rules_engine.create_ruleset("bare", json.dumps(keep))
    durable_rules_engine.assert_fact(handle, json.dumps({"sid": "s", "id": 1, "t": "obs"}))
    durable_rules_engine.delete_state(handle, "s")  # no action was started for "s"
else:
    ruleset = CompiledRuleset({}, {}, ["obs"], "child")
    wide = {"t": "obs", **{f"p{k}": k for k in range(300)}}
    for attempt in range(3):
        try:
            ruleset.run([{"t": "obs", "attempt": attempt}, wide])
        except EngineError:
            pass
    print(json.dumps(ruleset.run([{"t": "obs", "k": 2}]).facts))
"""


def test_a_session_that_fails_part_way_through_the_input_is_deleted_without_a_crash() -> None:
    # Deleting a session no action was ever started for reads uninitialised engine memory.
    # Filling freed memory with a byte pattern makes that crash every time.
    env = {**os.environ, "MALLOC_PERTURB_": "165", "PYTHONPATH": str(REPO_ROOT)}

    def child(mode: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", CRASH_CHILD, mode]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert child("bare").returncode == -signal.SIGSEGV
    guarded = child("guarded")
    assert guarded.returncode == 0, guarded.stderr
    assert json.loads(guarded.stdout) == [{"t": "obs", "k": 2}]


def test_only_the_first_kinds_catch_all_fires_and_facts_of_the_other_kinds_are_kept_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "page" facts match no rule but their kind's catch-all, which counts them and never fires:
    # they are stored all the same. The actions completed are the two firings and the catch-all of
    # "obs", the first kind: not one per fact.
    completed: list[object] = []
    real_complete = durable_rules_engine.complete_and_start_action

    def counting(handle: int, state: int) -> object:
        completed.append(state)
        return real_complete(handle, state)

    monkeypatch.setattr(durable_rules_engine, "complete_and_start_action", counting)
    result = fever_ruleset().run([obs(38.5)])

    assert result.facts == (obs(38.5), {"t": "alert", "temp": 38.5}, {"t": "page", "temp": 38.5})
    assert result.fired == ("fever", "escalate")
    assert len(completed) == len(result.fired) + 1


def test_a_session_no_firing_rule_matched_is_still_deleted() -> None:
    # "obs" is not the first kind here: an obs no rule matches leaves no action to start, so the
    # cleanup gives the session a fact of the first kind (whose catch-all fires) before deleting it.
    # Sessions left behind would reach the engine's cap of 1,024 live sessions and fail.
    ruleset = CompiledRuleset(FEVER_RULES, {"fever": fever, "escalate": escalate}, ["alert", "obs", "page"],
                              "no-firing")
    for _ in range(1100):
        result = ruleset.run([obs(36.0)])
        assert result.facts == (obs(36.0),)
        assert result.fired == ()


# -- handler failures --------------------------------------------------------------------------


def test_a_handler_exception_surfaces_and_the_next_run_on_the_ruleset_is_clean() -> None:
    calls = {"n": 0}

    def flaky(firing: Firing) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            firing.assert_fact({"t": "alert", "temp": 99})
            raise ZeroDivisionError("boom")
        fever(firing)

    ruleset = fever_ruleset(fever=flaky)
    with pytest.raises(EngineError, match=r"rule fever failed: ZeroDivisionError: boom") as info:
        ruleset.run([obs(39, bed=1)])
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    # The failed session was deleted, not left behind half-done.
    with pytest.raises(durable_rules_engine.error, match="309"):
        durable_rules_engine.get_facts(ruleset._handle, "s1")

    result = ruleset.run([obs(38, bed=2)])

    assert result.fired == ("fever", "escalate")
    assert result.facts == (obs(38, bed=2), {"t": "alert", "temp": 38}, {"t": "page", "temp": 38})


def test_an_async_handler_is_refused_instead_of_silently_never_running() -> None:
    async def not_awaited(firing: Firing) -> None:
        firing.assert_fact({"t": "alert", "temp": 0})

    with pytest.raises(EngineError, match=r"rule fever handler returned coroutine"):
        fever_ruleset(fever=not_awaited).run([obs(39)])


def test_a_firing_kept_after_its_handler_returned_cannot_assert() -> None:
    kept: list[Firing] = []
    ruleset = fever_ruleset(fever=kept.append)
    ruleset.run([obs(39)])

    with pytest.raises(EngineError, match=r"called after its handler returned"):
        kept[0].assert_fact({"t": "alert", "temp": 1})


def test_a_handler_calling_run_on_its_own_ruleset_raises_instead_of_deadlocking() -> None:
    holder: list[CompiledRuleset] = []

    def reenter(firing: Firing) -> None:
        holder[0].run([obs(1)])

    holder.append(fever_ruleset(fever=reenter))
    with pytest.raises(EngineError, match=r"run\(\) called from a handler of the same ruleset"):
        within(5, lambda: holder[0].run([obs(39)]))


def test_a_runaway_chain_stops_at_the_firing_bound() -> None:
    rules = {"again": {"all": [{"c": {"t": "count"}}]}}

    def again(firing: Firing) -> None:
        firing.assert_fact({"t": "count", "n": firing.matched["c"]["n"] + 1})

    ruleset = CompiledRuleset(rules, {"again": again}, ["count"], "runaway")
    with pytest.raises(EngineError, match=r"more than 10000 rule firings"):
        within(5, lambda: ruleset.run([{"t": "count", "n": 0}]))
    assert ruleset.run([]) == RunResult(facts=(), fired=())


# -- rulesets and sessions ---------------------------------------------------------------------


def test_two_compilations_of_one_rule_dict_with_other_thresholds_keep_their_own_answers() -> None:
    template: dict[str, Any] = {
        "high": {"all": [{"o": {"$and": [{"t": "obs"}, {"$gte": {"vitals.temp": 38}}]}}]}
    }
    stricter = copy.deepcopy(template)
    stricter["high"]["all"][0]["o"]["$and"][1]["$gte"]["vitals.temp"] = 39
    v1 = CompiledRuleset(template, {"high": nothing}, ["obs"], "pack@1")
    v2 = CompiledRuleset(stricter, {"high": nothing}, ["obs"], "pack@1")  # same label too
    v1_again = CompiledRuleset(template, {"high": nothing}, ["obs"], "pack@1")

    assert len({v1.name, v2.name, v1_again.name}) == 3
    assert v1.run([obs(38.5)]).fired == ("high",)
    assert v2.run([obs(38.5)]).fired == ()
    assert v1_again.run([obs(38.5)]).fired == ("high",)
    assert v2.run([obs(39.5)]).fired == ("high",)


def test_compiling_does_not_modify_the_rules() -> None:
    rules = copy.deepcopy(FEVER_RULES)
    CompiledRuleset(rules, {"fever": fever, "escalate": escalate}, ["obs", "alert", "page"], "pure")

    assert rules == FEVER_RULES


def test_more_sequential_runs_than_the_engines_session_cap_succeed(
    bare_sessions: BareSessions,
) -> None:
    # The bare engine keeps at most 1,024 live sessions per ruleset.
    handle = durable_rules_engine.create_ruleset(
        "bare-cap", json.dumps({"keep_obs": {"all": [{"m": {"t": "obs"}}]}})
    )
    with pytest.raises(MemoryError):
        for k in range(1025):
            sid = f"s{k}"
            fact = json.dumps({"sid": sid, "id": 1, **obs(37)})
            _, state = durable_rules_engine.assert_fact(handle, fact)
            bare_sessions.append((handle, sid, state))

    ruleset = fever_ruleset()
    for k in range(2100):
        temp = 37.0 + (k % 3)
        result = ruleset.run([obs(temp, run=k)])
        assert result.facts[0] == obs(temp, run=k)
        assert result.fired == (() if temp < 38 else ("fever", "escalate"))


def test_memory_stays_flat_over_20000_runs() -> None:
    # Measured without delete_state: each finished session stays live (about 100 KB here), RSS
    # grew by about 100 MB over 1,024 runs and run 1,025 failed with MemoryError.
    ruleset = fever_ruleset()
    for k in range(2000):
        ruleset.run([obs(37.0 + k % 3)])
    before = rss_mb()
    for k in range(20000):
        ruleset.run([obs(37.0 + k % 3)])
    assert rss_mb() - before < 20


def test_eight_threads_each_get_exactly_their_own_results_one_session_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fever_slowly(firing: Firing) -> None:
        time.sleep(0)  # let other threads in between the engine calls of this evaluation
        patient = firing.matched["o"]["patient"]
        temp = firing.matched["o"]["vitals"]["temp"]
        firing.assert_fact({"t": "alert", "temp": temp, "patient": patient})

    def escalate_slowly(firing: Firing) -> None:
        time.sleep(0)
        firing.assert_fact({"t": "page", "patient": firing.matched["a"]["patient"]})

    ruleset = fever_ruleset(fever=fever_slowly, escalate=escalate_slowly)
    inputs = [[obs(36.5 + (k % 5), patient=f"p{k}")] for k in range(800)]
    serial = [ruleset.run(facts) for facts in inputs]

    # Count the engine sessions alive at once: the per-ruleset lock must keep it at one, so
    # that neither the 1,024-session cap nor a 32-bit session-hash collision can be reached.
    live: set[str] = set()
    most_live = [0]
    real_assert, real_delete = durable_rules_engine.assert_fact, durable_rules_engine.delete_state

    def counting_assert(handle: int, text: str) -> Any:
        live.add(json.loads(text)["sid"])
        most_live[0] = max(most_live[0], len(live))
        return real_assert(handle, text)

    def counting_delete(handle: int, sid: str) -> Any:
        live.discard(sid)
        return real_delete(handle, sid)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", counting_assert)
    monkeypatch.setattr(durable_rules_engine, "delete_state", counting_delete)
    concurrent: list[RunResult | None] = [None] * len(inputs)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for k in range(offset, len(inputs), 8):
                concurrent[k] = ruleset.run(inputs[k])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert most_live == [1]
    assert concurrent == serial
    for k, result in enumerate(serial):
        assert {fact.get("patient") for fact in result.facts} == {f"p{k}"}


def test_compiling_and_running_start_no_thread() -> None:
    before = threading.active_count()
    ruleset = fever_ruleset()
    ruleset.run([obs(39)])

    assert threading.active_count() == before


# -- serialisation -----------------------------------------------------------------------------


def test_floats_that_json_writes_with_an_exponent_work_in_facts_and_rules() -> None:
    # The bare engine refuses Python's own JSON for these numbers (error 204).
    handle = durable_rules_engine.create_ruleset(
        "bare-float", json.dumps({"keep": {"all": [{"m": {"t": "lab"}}]}})
    )
    with pytest.raises(durable_rules_engine.error, match="204"):
        fact = json.dumps({"sid": "s", "id": 1, "t": "lab", "v": 1e-05})
        assert "1e-05" in fact
        durable_rules_engine.assert_fact(handle, fact)

    rules = {
        "trace": {"all": [{"m": {"$and": [{"t": "lab"}, {"$lt": {"v": 2e-05}}]}}]},
        "huge": {"all": [{"m": {"$and": [{"t": "lab"}, {"$gte": {"v": 1e16}}]}}]},
    }
    ruleset = CompiledRuleset(rules, {"trace": nothing, "huge": nothing}, ["lab"], "floats")

    assert ruleset.run([{"t": "lab", "v": 1e-05}]).fired == ("trace",)
    assert ruleset.run([{"t": "lab", "v": 3e-05}]).fired == ()
    assert ruleset.run([{"t": "lab", "v": 1e16}]).fired == ("huge",)
    assert ruleset.run([{"t": "lab", "v": 9.999999999999998e15}]).fired == ()
    values = [1e-05, 1e16, 1.5e-300, 1.7976931348623157e308, 0.1, -0.0, 123456.789]
    result = ruleset.run([{"t": "lab", "v": value, "k": k} for k, value in enumerate(values)])
    back = [fact["v"] for fact in result.facts]
    assert back == values and all(type(value) is float for value in back)


def test_reserved_keys_and_none_values_are_refused() -> None:
    ruleset = fever_ruleset()
    refused = [obs(39, sid="x"), obs(39, id=7), obs(39, note=None), obs(None)]
    for bad in refused:
        with pytest.raises(ValueError):
            ruleset.run([bad])

    def leaks_none(firing: Firing) -> None:
        firing.assert_fact({"t": "alert", "temp": None})

    with pytest.raises(EngineError, match=r"rule fever failed: ValueError: .*None is not allowed"):
        fever_ruleset(fever=leaks_none).run([obs(39)])


def test_nan_infinity_huge_integers_and_non_json_values_are_refused() -> None:
    ruleset = fever_ruleset()
    for value in (float("nan"), float("inf"), 2**63, -(2**63) - 1, {1, 2}, b"38", object()):
        with pytest.raises(ValueError):
            ruleset.run([obs(37, extra=value)])
    # The engine clamps out-of-range integers: 2**65 would not compare above 2**63 + 10.
    assert ruleset.run([obs(37, extra=2**63 - 1)]).facts[0]["extra"] == 2**63 - 1


def test_a_fact_with_300_properties_raises_engine_error_and_the_ruleset_still_works() -> None:
    ruleset = fever_ruleset()
    wide = {"t": "obs", "vitals": {"temp": 37}, **{f"p{k}": k for k in range(300)}}

    with pytest.raises(EngineError, match=r"error code: 302.*too many properties"):
        ruleset.run([obs(39), wide])
    assert ruleset.run([obs(39)]).fired == ("fever", "escalate")


# -- construction ------------------------------------------------------------------------------


def test_every_rule_needs_a_handler_and_double_underscore_names_are_reserved() -> None:
    with pytest.raises(ValueError, match=r"rule 'escalate' has no handler"):
        CompiledRuleset(FEVER_RULES, {"fever": fever}, ["obs", "alert", "page"], "x")
    with pytest.raises(ValueError, match=r"handlers without a rule"):
        handlers = {"fever": fever, "escalate": escalate, "ghost": fever}
        CompiledRuleset(FEVER_RULES, handlers, ["obs", "alert", "page"], "x")
    with pytest.raises(ValueError, match=r"reserved"):
        reserved = {"__hold__.obs": FEVER_RULES["fever"]}
        CompiledRuleset(reserved, {"__hold__.obs": fever}, ["obs"], "x")


def test_a_malformed_rule_raises_engine_error() -> None:
    wrong_order = {"high": {"all": [{"o": {"vitals.temp": {"$gte": 38}}}]}}
    with pytest.raises(EngineError, match=r"error code: 202"):
        CompiledRuleset(wrong_order, {"high": nothing}, ["obs"], "wrong-order")


def test_too_many_tests_for_one_engine_node_are_refused_before_the_engine_hangs() -> None:
    # 513 rules testing the same kind put 513 tests under one engine node: creating that
    # ruleset with the bare engine never returns (512 take 7 ms).
    def threshold_rules(count: int) -> dict[str, Any]:
        return {
            f"r{k}": {"all": [{"o": {"$and": [{"t": "obs"}, {"$gte": {"v": k}}]}}]}
            for k in range(count)
        }

    too_many = threshold_rules(512)  # plus the catch-all for "obs": 513
    with pytest.raises(ValueError, match=r"up to 513 chains .* at most 512 chains"):
        CompiledRuleset(too_many, {name: nothing for name in too_many}, ["obs"], "too-big")

    most = threshold_rules(511)
    ruleset = CompiledRuleset(most, {name: nothing for name in most}, ["obs"], "biggest")
    assert len(ruleset.run([{"t": "obs", "v": 3}]).fired) == 4

    alternatives = {"either": {"all": [{"o": {"$or": [{"v": k} for k in range(600)]}}]}}
    assert ruleset_chain_bound(alternatives, ["obs"]) == 601
