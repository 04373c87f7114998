"""Where the time of one evaluation goes: cProfile over a few thousand evaluations, grouped.

Run it with ``.venv/bin/python bench/hotspots.py`` (``--evaluations N``, ``--parsed`` to leave
``parse_patient`` out, ``--top N`` to also print the N functions of most own time). The patients
are the benchmark mix of ``bench/run.py``, cycled in order, after one warm-up pass.

Each function's own time (cProfile ``tottime``) is put in one group, by where the function is:

- engine C calls: the functions of ``durable_rules_engine`` (the C extension), and ``list.extend``,
  which runs them in C (``crs_rules.engine._recorded``);
- JSON encode/decode: the standard ``json`` module and the engine wrapper's own encoder
  (``to_engine_json`` and the functions it calls, ``crs_rules/engine_json.py``);
- handlers: the rule actions run when a rule fires (``crs_rules.compilation``'s and
  ``crs_rules.dose_rules``' handlers and the engine wrapper's parsing and dispatching of an
  action, ``parse_action``, and the decoding of matched facts when read; the handler is called from
  the drain loop itself, which counts as the engine wrapper);
- engine wrapper: the rest of ``crs_rules/engine.py`` and the modules split from it (sessions, the
  fact checks, draining);
- input checking: ``parse_patient`` and what it calls (``crs_rules/patient.py`` and its
  ``_patient_*`` and ``_input_words`` modules, the compiled schema check
  ``crs_rules/schema_check.py`` and its generated code, ``jsonschema``, ``referencing``,
  ``fractions``, ``re``);
- facts and decision: building the facts (``facts``, ``certainty``, ``conditions``) and assembling
  the decision (``evaluation``, ``decision``, ``dosing``, ``traceability``);
- other: everything else.

A builtin that belongs to none of these (``isinstance``, ``dict.get``, ...) is charged to the
groups of its callers, in proportion to the time it took under each caller.

cProfile's own cost inflates functions called often (the profile runs several times slower than
the benchmark): the shares are the starting point, the benchmark gives the times.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crs_rules import evaluate, load_protocol

HERE = Path(__file__).resolve().parent

JSON_ENCODER = {"to_engine_json", "_encode", "_plain", "_plain_scalar", "_float_text", "_encodable", "prepare_fact",
                "check_fact_shape", "read_json"}
ACTION_HANDLING = {"parse_action", "_read_shape", "_handler_failed", "assert_from_handler", "assert_fact", "matched",
                   "__getitem__"}
# The engine wrapper is crs_rules/engine.py and the modules split from it (engine_json.py, engine_values.py, ...).
ENGINE_FILES = ("crs_rules/engine.py", "crs_rules/engine_json.py", "crs_rules/engine_values.py",
                "crs_rules/engine_limits.py", "crs_rules/engine_process.py")
COMPILED_CHAIN = ("crs_rules/compilation.py", "crs_rules/dose_rules.py")
INPUT = ("/jsonschema/", "/referencing/", "/fastjsonschema", "/fractions.py", "/re/", "/re.py", "/rpds",
         "crs_rules/patient.py", "crs_rules/_patient_contract.py", "crs_rules/_patient_checks.py",
         "crs_rules/_input_words.py", "crs_rules/schema_words.py", "crs_rules/schema_check.py",
         "crs_rules/numbers.py")
FACTS_AND_DECISION = ("crs_rules/facts.py", "crs_rules/certainty.py", "crs_rules/conditions.py",
                      "crs_rules/evaluation.py", "crs_rules/decision.py", "crs_rules/dosing.py",
                      "crs_rules/traceability.py", "crs_rules/model.py")
GROUPS = ("engine C calls", "JSON encode/decode", "handlers", "engine wrapper", "input checking",
          "facts and decision", "other")


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("crs_rules_bench_run", HERE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def group_of(filename: str, name: str) -> str:
    path = filename.replace("\\", "/")
    if "durable_rules_engine" in name or name == "<method 'extend' of 'list' objects>":
        return "engine C calls"
    if path == "<string>" and name.startswith("validate"):  # the code fastjsonschema generated
        return "input checking"
    engine = path.endswith(ENGINE_FILES)
    if "/json/" in path or (engine and name in JSON_ENCODER) or "json" in name:
        return "JSON encode/decode"
    if path.endswith(COMPILED_CHAIN) or (engine and name in ACTION_HANDLING):
        return "handlers"
    if engine:
        return "engine wrapper"
    if any(part in path for part in INPUT):
        return "input checking"
    if any(path.endswith(part) for part in FACTS_AND_DECISION):
        return "facts and decision"
    return "other"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile evaluate() over the benchmark mix, grouped by where the time goes.")
    parser.add_argument("--evaluations", type=int, default=3000, help="profiled evaluations (default 3000)")
    parser.add_argument("--parsed", action="store_true", help="evaluate parsed states (parse_patient left out)")
    parser.add_argument("--top", type=int, default=0, help="also print the N functions of most own time")
    args = parser.parse_args(argv)
    if args.evaluations < 1:
        parser.error("--evaluations must be at least 1")

    protocol = load_protocol()
    mix = _bench().build_mix()
    inputs = [p.state for p in mix] if args.parsed else [p.data for p in mix]
    for item in inputs:
        evaluate(item, protocol)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for index in range(args.evaluations):
        evaluate(inputs[index % len(inputs)], protocol)
    profile.disable()
    elapsed = time.perf_counter() - start

    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_group: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, _line, name), (_calls, ncalls, tottime, _cumtime, callers) in stats.items():
        group = group_of(filename, name)
        if filename == "~" and group == "other" and callers:
            for (caller_file, _caller_line, caller_name), caller_times in callers.items():
                by_group[group_of(caller_file, caller_name)] += caller_times[2]
        else:
            by_group[group] += tottime
        rows.append((tottime, ncalls, f"{Path(filename).name}:{name}" if filename != "~" else name))
    total = sum(by_group.values())
    what = "evaluate(parsed state)" if args.parsed else "evaluate(mapping), parse_patient included"
    print(f"{what}: {args.evaluations:,} evaluations of the {len(mix)}-patient mix under cProfile, "
          f"{elapsed:.2f} s ({elapsed / args.evaluations * 1e3:.3f} ms per evaluation with the profiler)")
    for group in GROUPS:
        share = by_group.get(group, 0.0)
        print(f"  {group:<22}{share / args.evaluations * 1e3:8.3f} ms/evaluation {100 * share / total:6.1f}%")
    if args.top:
        print(f"\n  the {args.top} functions of most own time (ms per evaluation, calls per evaluation):")
        for tottime, ncalls, label in sorted(rows, reverse=True)[:args.top]:
            print(f"  {tottime / args.evaluations * 1e3:8.4f} ms {ncalls / args.evaluations:8.1f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
