"""Fuzzing: hostile input through every door, and hostile packs through ``validate``.

Properties, for every input Hypothesis makes up:

* ``evaluate`` (a mapping, or a :class:`PatientState` changed with ``dataclasses.replace``) returns a
  :class:`Decision` or raises :class:`InvalidInputError` whose every problem names a field and what
  was expected: never another exception;
* ``crs-rules evaluate FILE`` (``cli.run`` with in-memory streams, on a file written for the example)
  and ``crs-rules`` with made-up arguments exit 0, 1 or 2, and print no traceback and no
  ``internal error``;
* a copy of the shipped pack with random edits (a value replaced by a random scalar, list or mapping,
  a key deleted, the file truncated, random text inserted) gives a :class:`Protocol` or
  :class:`InvalidPackError`, through ``load_protocol`` and ``crs-rules validate``; when it is still
  valid, evaluating a patient gives a decision or an input error;
* nothing takes more than :data:`HANG_SECONDS` (a hang fails the example).

The example counts written below are CI's (about a minute for the file; Hypothesis's ``ci`` profile,
see conftest.py); a local run tries a quarter of them. Each property runs twice: ``[full]`` with that
count, marked ``slow`` (``make test-all`` and CI), and ``[fast]`` with a quarter of it, at least
:data:`FAST_MINIMUM` examples, in ``make test``. ``CRS_FUZZ_SCALE=N`` multiplies every example count
for a longer run. The figures (inputs tried, errors, decisions, tracebacks, crashes, hangs) are
printed at the end of the module: run with ``-s -p no:xdist`` to see them for the whole file.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crs_rules import Decision, InvalidInputError, InvalidPackError, evaluate, load_protocol, parse_patient
from crs_rules.cli import run
from crs_rules.model import Protocol
from crs_rules.patient import Medication, PatientState

from strategies import patient_states

ROOT = Path(__file__).resolve().parent.parent
SCALE = max(1, int(os.environ.get("CRS_FUZZ_SCALE", "1") or "1"))
#: The share of the CI example counts tried: all of them with Hypothesis's ``ci`` profile, else a quarter.
SHARE = 1.0 if settings().max_examples >= 2000 else 0.25
HANG_SECONDS = 60
#: The fewest examples the fast twin of a property tries.
FAST_MINIMUM = 5
FIGURES: collections.Counter[str] = collections.Counter()
VALID: dict[str, Any] = {
    "assessed_at": "2026-03-10T12:00:00Z",
    "patient": {"weight_kg": 82, "age_years": 54},
    "therapy": {"car_t": True},
    "crs": {"onset_at": "2026-03-09T12:00:00Z", "improving": False},
    "vitals": {"temperature_c": 39.2, "hypotension": True, "vasopressors": ["norepinephrine"],
               "oxygen": {"device": "nasal_cannula", "flow_l_min": 4}},
    "medications": [{"drug": "tocilizumab", "dose_mg": 656, "given_at": "2026-03-10T03:00:00Z"}],
    "proposed_orders": [{"drug": "sargramostim"}],
}


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def twins(examples: int) -> list[Any]:
    """The example counts of a property's two runs, for ``examples`` in CI: ``full`` (slow) tries
    the share of it this run takes, ``fast`` a quarter of that (each at least a few)."""
    full = max(10, round(examples * SHARE))
    return [pytest.param(max(FAST_MINIMUM, round(full / 4)) * SCALE, id="fast"),
            pytest.param(full * SCALE, id="full", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    print("\nfuzz figures: " + ", ".join(f"{name} {FIGURES[name]}" for name in (
        "inputs tried", "errors", "decisions", "tracebacks", "crashes", "hangs")))


class Hung(BaseException):
    """Not an Exception, so that no handler of the code under test catches it."""


def bounded(call: Callable[[], Any]) -> Any:
    """``call()``, failing (and counted as a hang) past HANG_SECONDS."""
    def hung(signum: int, frame: object) -> None:
        raise Hung(f"no answer in {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_SECONDS)
    try:
        return call()
    except Hung:
        FIGURES["hangs"] += 1
        raise
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call: Callable[[], Any], expected_error: type[Exception] = InvalidInputError) -> Any:
    """The result of ``call()``, which must be a decision (or a protocol) or ``expected_error``."""
    FIGURES["inputs tried"] += 1
    try:
        result = bounded(call)
    except expected_error as error:
        FIGURES["errors"] += 1
        problems = getattr(error, "problems", ())
        assert problems, "an error without problems"
        for problem in problems:
            assert problem.subject and problem.message and problem.expected is not None, problem
        return error
    except Hung:
        raise
    except Exception:
        FIGURES["crashes"] += 1
        raise
    assert isinstance(result, (Decision, Protocol)), result
    FIGURES["decisions"] += 1
    return result


def cli(*arguments: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    FIGURES["inputs tried"] += 1
    code = bounded(lambda: run(list(arguments), out, err))
    shown = out.getvalue() + err.getvalue()
    if "Traceback" in shown:
        FIGURES["tracebacks"] += 1
    if "internal error" in shown:
        FIGURES["crashes"] += 1
    assert "Traceback" not in shown and "internal error" not in shown, shown
    assert code in (0, 1, 2), (code, shown)
    FIGURES["decisions" if code == 0 else "errors"] += 1
    return code, shown


# ---------------------------------------------------------------------- hostile values

CONTROL = "\x00\x01\x07\x08\x0b\x1b\x7f\x85\x9b\u00a0\u200b\u202e\u2066\ufeff\n\r\t "
TEXTS = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(CONTROL + "aZ09-_.:+T"), max_size=20),
    st.sampled_from(["", "true", "null", "NaN", "1e999", "39.2", "norepinephrine", "room_air", "x" * 10_000]),
)
TIMES = st.one_of(
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?"
                  r"(Z|[+-][0-9]{2}:[0-9]{2})?\Z"),
    st.sampled_from(["2026-03-10T12:00:00+00:60", "2026-03-10T12:00:00.0000001Z", "9999-12-31T23:59:59Z",
                     "0001-01-01T00:00:00+23:59", "2026-02-30T12:00:00Z", "2026-03-10T24:00:00Z", "2026-03-10",
                     "2026-03-10T12:00:00", "2026-W11-2T12:00Z", "20260310T120000Z", "2026-03-10T12:00:00Z\n"]),
    st.datetimes(timezones=st.none() | st.timezones()),
)
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-(10 ** 5000), max_value=10 ** 5000),
    st.floats(), st.sampled_from([0, -0.0, 5e-324, 1e-9, 0.2, 0.19999999999999998, 650, 650.0000000001,
                                  1e308, math.inf, -math.inf, math.nan, 2 ** 63, 2 ** 1024]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS, TIMES)


def deep(levels: int, mapping: bool) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"k": value} if mapping else [value]
    return value


DEEP = st.builds(deep, st.sampled_from([10, 60, 1000, 50_000]), st.booleans())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(TEXTS, st.integers()), inner, max_size=4)),
    max_leaves=12) | DEEP | st.builds(lambda n: [{"drug": "acetaminophen", "given_at": "2026-03-10T11:00:00Z"}] * n,
                                      st.sampled_from([1000, 1001, 200_000]))


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if len(prefix) >= 8:  # not into a deep value an earlier edit put there
        return
    if isinstance(data, dict):
        for key, value in list(data.items())[:20]:
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):  # the first items only: a long list holds the same object many times
        for index, value in enumerate(data[:5]):
            yield from paths(value, (*prefix, index))


def mutate(data: Any, draw: Callable[..., Any]) -> Any:
    """One random edit of ``data`` (in place when possible): a value replaced, a key or item
    deleted, an unknown key added."""
    path = draw(st.sampled_from(list(paths(data))))
    if not path:
        return draw(VALUES)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    action = draw(st.sampled_from(["replace", "replace", "time", "delete", "add"]))
    if action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.one_of(TEXTS, st.integers()))] = draw(VALUES)
    else:
        parent[key] = draw(TIMES if action == "time" else VALUES)
    return data


# ---------------------------------------------------------------------- through the API


@pytest.mark.parametrize("examples", twins(300))
def test_any_value_gives_a_decision_or_an_input_error(protocol: Protocol, examples: int) -> None:
    @fuzz(examples)
    @given(value=VALUES)
    def check(value: Any) -> None:
        outcome(lambda: evaluate(value, protocol))

    check()


@pytest.mark.parametrize("examples", twins(400))
def test_a_valid_patient_with_random_edits_gives_a_decision_or_an_input_error(protocol: Protocol,
                                                                             examples: int) -> None:
    @fuzz(examples)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        patient = copy.deepcopy(data.draw(st.one_of(patient_states(), st.just(VALID))))
        for _ in range(data.draw(st.integers(1, 3))):
            patient = mutate(patient, data.draw)
        outcome(lambda: evaluate(patient, protocol))

    check()


AT = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
FIELD_VALUES = st.one_of(
    VALUES,
    st.lists(VALUES, max_size=3).map(tuple),
    st.lists(st.builds(Medication, drug=st.one_of(TEXTS, st.just("tocilizumab")),
                       given_at=st.one_of(TIMES, st.just(AT), st.just(AT + timedelta(microseconds=1))),
                       dose_mg=st.one_of(st.none(), NUMBERS)), max_size=3).map(tuple),
)


@pytest.mark.parametrize("examples", twins(300))
def test_a_caller_built_patient_state_gives_a_decision_or_an_input_error(protocol: Protocol,
                                                                        examples: int) -> None:
    @fuzz(examples)
    @given(changes=st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(PatientState)]),
                                   FIELD_VALUES, min_size=1, max_size=3))
    def check(changes: dict[str, Any]) -> None:
        state = dataclasses.replace(parse_patient(VALID), **changes)
        outcome(lambda: evaluate(state, protocol))

    check()


# ---------------------------------------------------------------------- through the command line


def write_patient(folder: Path, value: Any, form: str) -> Path | None:
    """The value as a file of the given form, or None when it cannot be written so."""
    path = folder / ("patient.json" if form == "json" else "patient.yaml")
    try:
        if form == "json":
            path.write_text(json.dumps(value, default=str), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(value, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    except (ValueError, TypeError, RecursionError, yaml.YAMLError, UnicodeEncodeError):
        return None  # a value JSON or YAML cannot hold (an int of 5000 digits, a nesting too deep)
    return path


@pytest.mark.parametrize("examples", twins(60))
def test_crs_rules_evaluate_on_a_hostile_file_exits_0_or_1_without_a_traceback(examples: int) -> None:
    @fuzz(examples)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        patient = mutate(json.loads(json.dumps(VALID)), data.draw) if data.draw(st.booleans()) else data.draw(VALUES)
        form = data.draw(st.sampled_from(["json", "yaml", "bytes"]))
        with tempfile.TemporaryDirectory() as folder:
            if form == "bytes":
                path: Path | None = Path(folder) / "patient.yaml"
                assert path is not None
                path.write_bytes(data.draw(st.one_of(
                    st.binary(max_size=200),
                    st.builds(lambda text, at: (json.dumps(VALID)[:at] + text).encode("utf-8", "surrogatepass"),
                              TEXTS, st.integers(0, 400)))))
            else:
                path = write_patient(Path(folder), patient, form)
            if path is None:
                return
            code, _ = cli("evaluate", str(path), "--format", data.draw(st.sampled_from(["text", "json"])))
            assert code in (0, 1)

    check()


@pytest.mark.parametrize("examples", twins(40))
def test_made_up_arguments_exit_0_1_or_2_without_a_traceback(examples: int) -> None:
    @fuzz(examples)
    @given(command=st.sampled_from([["validate"], ["evaluate"], ["trace", "--check"], ["test"], ["diff"], []]),
           extra=st.lists(st.one_of(TEXTS.filter(lambda t: "\x00" not in t),
                                    st.sampled_from(["--format", "--rules", "--population", "-1", "--check",
                                                     "--bump", "--help", "-", "/dev/zero", "/dev/null", "."])),
                          max_size=4))
    def check(command: list[str], extra: list[str]) -> None:
        arguments = [*command, *extra]
        if "diff" in arguments or not command:  # a real diff runs thousands of patients: keep it small
            arguments += ["--population", "0"]
        with tempfile.TemporaryDirectory() as folder:
            previous = os.getcwd()
            os.chdir(folder)  # relative names made up by the example resolve in an empty folder
            try:
                cli(*arguments)
            finally:
                os.chdir(previous)

    check()


# ---------------------------------------------------------------------- hostile packs

PACK_FILES = ("manifest.yaml", "references.yaml", "grading.yaml", "actions.yaml", "dosing.yaml",
              "alerts.yaml", "statements.yaml")


@pytest.fixture(scope="module")
def draft_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A draft copy of the shipped pack without its digest, so that edits reach the semantic checks."""
    folder = tmp_path_factory.mktemp("fuzz") / "pack"
    shutil.copytree(ROOT / "rules", folder, ignore=shutil.ignore_patterns("scenarios"))
    manifest = folder / "manifest.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    manifest.write_text("".join(line.replace("status: active", "status: draft") for line in lines
                                if not line.startswith("digest:")), encoding="utf-8")
    load_protocol(folder)
    return folder


def edit_pack(folder: Path, draw: Callable[..., Any]) -> None:
    name = draw(st.sampled_from(PACK_FILES))
    path = folder / name
    text = path.read_bytes().decode("utf-8", errors="replace")
    action = draw(st.sampled_from(["structure", "structure", "structure", "truncate", "insert"]))
    if action == "structure":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:  # an earlier edit broke the file: cut it instead
            action = "truncate"
    if action == "truncate":
        path.write_text(text[:draw(st.integers(0, len(text)))], encoding="utf-8")
    elif action == "insert":
        at = draw(st.integers(0, len(text)))
        inserted = draw(st.one_of(TEXTS, st.sampled_from(["\n  - {fact: x, equals: 1}\n", ": :", "\t", "&a [*a]",
                                                          "\n- !!python/object:os.system ls\n"])))
        path.write_text(text[:at] + inserted + text[at:], encoding="utf-8", errors="surrogatepass")
    else:
        for _ in range(draw(st.integers(1, 3))):
            data = mutate(data, draw)
        try:
            dumped = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        except (ValueError, TypeError, RecursionError, yaml.YAMLError):
            return
        path.write_text(dumped, encoding="utf-8", errors="surrogatepass")


@pytest.mark.parametrize("examples", twins(60))
def test_a_pack_with_random_edits_is_valid_or_refused_with_problems(draft_pack: Path, examples: int) -> None:
    @fuzz(examples)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as parent:
            folder = Path(parent) / "pack"
            shutil.copytree(draft_pack, folder)
            for _ in range(data.draw(st.integers(1, 2))):
                edit_pack(folder, data.draw)
            loaded = outcome(lambda: load_protocol(folder), InvalidPackError)
            code, _ = cli("validate", str(folder))
            assert code == (1 if isinstance(loaded, InvalidPackError) else 0)
            if isinstance(loaded, Protocol):
                outcome(lambda: evaluate(VALID, loaded, allow_draft=True))

    check()
