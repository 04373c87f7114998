"""The YAML loader keeps exact positions and refuses YAML's traps, every one at its own place."""

from __future__ import annotations

import pathlib
import textwrap

import pytest
import yaml
from conftest import property_twins
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crs_rules.errors import Problem
from crs_rules.loading import LoadedDocument, load_yaml_file, load_yaml_text

FILE = "rules/dosing.yaml"


def load(text: str) -> tuple[LoadedDocument | None, list[Problem]]:
    return load_yaml_text(textwrap.dedent(text), FILE)


def problems_of(text: str) -> list[Problem]:
    document, problems = load(text)
    assert document is None, "a file with problems must not give a document"
    assert problems, "a refused file must say why"
    return problems


def where(problems: list[Problem]) -> list[tuple[int, int, str]]:
    return [(p.line, p.column, p.check) for p in problems]


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- files that are fine ---------------------------------------------------------------------


def test_a_clean_file_loads_into_plain_python_data_in_written_order() -> None:
    document, problems = load(
        """\
        pack: dosing
        version: 3
        rules:
          - id: fever-high
            threshold_c: 38.0
            dose_mg_per_kg: 0.5
            change: -1.5
            max_doses: 800
            offset: -3
            minimum: 0
            plus: +5
            active: true
            retired: false
            note: null
            comment:
            answer: 'no'
            code: "010"
            started: '2026-03-10'
        """
    )
    assert problems == []
    assert document is not None
    assert document.file == FILE
    assert list(document.data) == ["pack", "version", "rules"]
    rule = document.data["rules"][0]
    assert rule == {
        "id": "fever-high",
        "threshold_c": 38.0,
        "dose_mg_per_kg": 0.5,
        "change": -1.5,
        "max_doses": 800,
        "offset": -3,
        "minimum": 0,
        "plus": 5,
        "active": True,
        "retired": False,
        "note": None,
        "comment": None,
        "answer": "no",
        "code": "010",
        "started": "2026-03-10",
    }
    assert type(rule["threshold_c"]) is float
    assert type(rule["max_doses"]) is int
    assert type(rule["active"]) is bool
    assert type(document.data["version"]) is int


def test_block_text_and_a_byte_order_mark_are_kept_as_written() -> None:
    document, problems = load_yaml_text("\ufeffnote: |\n  no\n  1:30\nname: >\n  a\n  b\n", FILE)
    assert problems == []
    assert document is not None
    assert document.data == {"note": "no\n1:30\n", "name": "a b\n"}
    assert document.key_position(["note"]) == (1, 1)


def test_windows_line_endings_keep_the_same_positions() -> None:
    document, problems = load_yaml_text("a: 1\r\nb:\r\n  c: 2\r\n", FILE)
    assert problems == []
    assert document is not None
    assert document.position(["b", "c"]) == (3, 6)
    assert document.key_position(["b", "c"]) == (3, 3)


# --- positions -------------------------------------------------------------------------------

NESTED = """\
pack: dosing
rules:
  - id: r1
    when:
      temp_c: 38.5
      signs: [rigors, hypotension]
  - id: r2
    doses:
      - 1
      -   2
"""


def test_positions_of_values_and_keys_in_nested_mappings_and_lists() -> None:
    document, problems = load_yaml_text(NESTED, FILE)
    assert problems == []
    assert document is not None
    assert document.position([]) == (1, 1)
    assert document.position(["pack"]) == (1, 7)
    assert document.key_position(["pack"]) == (1, 1)
    assert document.position(["rules"]) == (3, 3)
    assert document.key_position(["rules"]) == (2, 1)
    assert document.position(["rules", 0]) == (3, 5)
    assert document.position(["rules", 0, "id"]) == (3, 9)
    assert document.key_position(["rules", 0, "id"]) == (3, 5)
    assert document.position(["rules", 0, "when"]) == (5, 7)
    assert document.position(["rules", 0, "when", "temp_c"]) == (5, 15)
    assert document.key_position(["rules", 0, "when", "temp_c"]) == (5, 7)
    assert document.position(["rules", 0, "when", "signs"]) == (6, 14)
    assert document.position(["rules", 0, "when", "signs", 1]) == (6, 23)
    assert document.position(("rules", 1, "doses", 0)) == (9, 9)
    assert document.position(("rules", 1, "doses", 1)) == (10, 11)
    assert document.key_position(["rules", 1, "doses"]) == (8, 5)


def test_a_missing_path_falls_back_to_its_nearest_existing_ancestor() -> None:
    document, _ = load_yaml_text(NESTED, FILE)
    assert document is not None
    assert document.position(["rules", 0, "when", "heart_rate"]) == (5, 7)
    assert document.position(["rules", 7, "id"]) == (3, 3)
    assert document.position(["nothing", "here"]) == (1, 1)
    assert document.key_position(["rules", 0, "when", "heart_rate"]) == (4, 5)
    assert document.key_position(["rules", 0, "missing"]) == (3, 5)


def test_the_key_position_of_a_list_item_is_the_item_itself() -> None:
    document, _ = load_yaml_text(NESTED, FILE)
    assert document is not None
    assert document.key_position(["rules", 1]) == (7, 5)
    assert document.key_position([]) == (1, 1)


def test_a_document_built_without_positions_answers_zero_zero() -> None:
    document = LoadedDocument("rules/x.yaml", {"a": 1})
    assert document.position(["a"]) == (0, 0)
    assert document.key_position(["a"]) == (0, 0)


def test_the_position_maps_cannot_be_changed_by_callers() -> None:
    document, _ = load_yaml_text(NESTED, FILE)
    assert document is not None
    with pytest.raises(TypeError):
        document.value_marks[("pack",)] = (9, 9)  # type: ignore[index]


# --- trap 1: duplicate keys ------------------------------------------------------------------


def test_a_duplicate_key_is_reported_at_the_second_occurrence_naming_the_first_line() -> None:
    problem = only_problem(
        """\
        id: r1
        dose_mg: 5
        route: oral
        dose_mg: 50
        """
    )
    assert (problem.line, problem.column) == (4, 1)
    assert problem.check == "yaml.duplicate-key"
    assert problem.subject == "-"
    assert problem.path == ("dose_mg",)
    assert "`dose_mg`" in problem.message
    assert "first on line 2" in problem.message
    assert "only the last" in problem.message


def test_duplicate_keys_are_found_in_nested_and_flow_mappings_and_across_quoting() -> None:
    problems = problems_of(
        """\
        rules:
          - id: r1
            when: {temp: 1, temp: 2}
          - id: r2
            "id": r3
        """
    )
    assert where(problems) == [(3, 21, "yaml.duplicate-key"), (5, 5, "yaml.duplicate-key")]
    assert problems[0].path == ("rules", 0, "when", "temp")
    assert "first on line 3" in problems[0].message
    assert "first on line 4" in problems[1].message


def test_the_same_key_in_different_mappings_is_not_a_duplicate() -> None:
    document, problems = load("a: {id: 1}\nb: {id: 1}\n")
    assert problems == []
    assert document is not None


# --- trap 2: anchors, aliases, merge keys ----------------------------------------------------


def test_anchors_aliases_and_merge_keys_are_each_reported_where_written() -> None:
    problems = problems_of(
        """\
        base: &adult {dose_mg: 5}
        child:
          <<: *adult
          weight_kg: 20
        other: *adult
        """
    )
    assert where(problems) == [
        (1, 7, "yaml.anchor"),
        (3, 3, "yaml.merge-key"),
        (3, 7, "yaml.alias"),
        (5, 8, "yaml.alias"),
    ]
    assert "`&adult`" in problems[0].message
    assert "write the content out in full" in problems[0].expected
    assert "`<<`" in problems[1].message
    assert "`*adult`" in problems[2].message
    assert problems[3].path == ("other",)


def test_an_alias_to_an_unknown_anchor_and_a_reused_anchor_name_are_reported_not_raised() -> None:
    problems = problems_of("a: &x 1\nb: &x 2\nc: *nowhere\n")
    assert where(problems) == [(1, 4, "yaml.anchor"), (2, 4, "yaml.anchor"), (3, 4, "yaml.alias")]
    assert "`*nowhere`" in problems[2].message


def test_a_quoted_merge_symbol_is_an_ordinary_key() -> None:
    document, problems = load("'<<': text\n")
    assert problems == []
    assert document is not None
    assert document.data == {"<<": "text"}


# --- trap 3: tabs ----------------------------------------------------------------------------


def test_each_line_with_tabs_is_reported_at_its_first_tab_even_where_yaml_allows_tabs() -> None:
    problems = problems_of("a: 1  # see\tnote\nb: '\tx\ty'\nc: 3\n")
    assert where(problems) == [(1, 12, "yaml.tab"), (2, 5, "yaml.tab")]
    assert problems[0].message == "a tab character is here"
    assert problems[1].message == "a tab character is here (and 1 more on this line)"
    assert "spaces" in problems[0].expected


@pytest.mark.parametrize("text", ["a:\n\tb: 1\n", "a:\t1\n", "a: 1\t# note\n"])
def test_a_tab_pyyaml_cannot_parse_gives_the_tab_problem_not_a_cryptic_syntax_error(
    text: str,
) -> None:
    problems = problems_of(text)
    assert [p.check for p in problems] == ["yaml.tab"]


# --- trap 4: plain values YAML 1.1 retypes ---------------------------------------------------


@pytest.mark.parametrize(
    ("written", "reading"),
    [
        ("no", "false"),
        ("No", "false"),
        ("off", "false"),
        ("FALSE", "false"),
        ("yes", "true"),
        ("on", "true"),
        ("True", "true"),
        ("YES", "true"),
    ],
)
def test_booleans_not_spelled_true_or_false_are_refused(written: str, reading: str) -> None:
    problem = only_problem(f"rule: r1\nanswer: {written}\n")
    assert (problem.line, problem.column, problem.check) == (2, 9, "yaml.boolean")
    assert problem.message == f"`{written}` would be read as {reading}"
    assert problem.expected == f"write {reading}, or quote it ('{written}') if you mean the word"


def test_the_boolean_problem_reads_as_one_plain_sentence() -> None:
    problem = only_problem("answer: no\n")
    assert str(problem) == (
        f"{FILE}:1:9: -: `no` would be read as false; "
        "write false, or quote it ('no') if you mean the word"
    )


@pytest.mark.parametrize(("written", "meaning"), [("y", "true"), ("N", "false")])
def test_single_letter_booleans_are_refused_because_other_tools_read_them_as_booleans(
    written: str, meaning: str
) -> None:
    problem = only_problem(f"answer: {written}\n")
    assert (problem.line, problem.column, problem.check) == (1, 9, "yaml.boolean")
    assert f"as {meaning}" in problem.message
    assert f"quote it ('{written}')" in problem.expected


@pytest.mark.parametrize(
    ("written", "check", "words"),
    [
        ("010", "yaml.octal", ["the number 8", "write 10 without the leading zero"]),
        ("-007", "yaml.octal", ["the number -7", "write -7"]),
        ("0o17", "yaml.octal", ["the number 15", "write 15"]),
        ("09", "yaml.leading-zero", ["the number 9", "write 9"]),
        ("0x1F", "yaml.number-base", ["the number 31", "base 16", "write 31"]),
        ("0b101", "yaml.number-base", ["the number 5", "base 2"]),
        ("1_000", "yaml.underscore", ["the number 1000", "write 1000"]),
        ("1_0.5", "yaml.underscore", ["the number 10.5"]),
        ("1:30", "yaml.sexagesimal", ["the number 90", "quote it ('1:30')"]),
        ("1:30.5", "yaml.sexagesimal", ["the number 90.5"]),
        ("1e3", "yaml.number-form", ["read as text here", "write 1000"]),
        ("-.5", "yaml.number-form", ["write -0.5"]),
        ("1.0e+400", "yaml.number-too-large", ["too large"]),
        ("0x_", "yaml.number-form", ["not an ordinary number"]),
    ],
)
def test_numbers_that_yaml_would_silently_change_are_refused(
    written: str, check: str, words: list[str]
) -> None:
    problem = only_problem(f"dose:\n  value: {written}\n")
    assert (problem.line, problem.column, problem.check) == (2, 10, check)
    assert problem.message.startswith(f"`{written}`")
    assert problem.path == ("dose", "value")
    text = f"{problem.message}; {problem.expected}"
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("written", "reading"),
    [
        ("2026-03-10", "a date"),
        ("2026-02-30", "a date"),
        ("2026-03-10T12:00:00Z", "a date and time"),
        ("2026-03-10 12:00:00", "a date and time"),
    ],
)
def test_unquoted_dates_and_times_are_refused(written: str, reading: str) -> None:
    problem = only_problem(f"started: {written}\n")
    assert (problem.line, problem.column, problem.check) == (1, 10, "yaml.date")
    assert problem.message == f"`{written}` would be read as {reading}, not as text"
    assert problem.expected == f"quote it ('{written}')"


@pytest.mark.parametrize(
    ("written", "reading"),
    [(".inf", "infinity"), ("-.Inf", "minus infinity"), (".NaN", "'not a number'")],
)
def test_infinity_and_not_a_number_are_refused(written: str, reading: str) -> None:
    problem = only_problem(f"limit: {written}\n")
    assert (problem.line, problem.column, problem.check) == (1, 8, "yaml.special-float")
    assert problem.message == f"`{written}` would be read as {reading}"


@pytest.mark.parametrize("written", ["~", "Null", "NULL"])
def test_null_spelled_other_than_null_is_refused(written: str) -> None:
    problem = only_problem(f"note: {written}\n")
    assert (problem.line, problem.column, problem.check) == (1, 7, "yaml.null")
    assert problem.expected == f"write null, or quote it ('{written}') if you mean the text"


@pytest.mark.parametrize("written", ["=", "<<"])
def test_symbols_pyyaml_itself_cannot_load_are_refused_as_values(written: str) -> None:
    problem = only_problem(f"op: {written}\n")
    assert (problem.line, problem.column, problem.check) == (1, 5, "yaml.special-symbol")
    assert problem.expected == f"quote it ('{written}')"


@pytest.mark.parametrize(
    "written",
    ["'no'", '"yes"', "'010'", "'1:30'", "'2026-03-10'", "'.inf'", "'~'", "'y'", "'1e3'", "'='"],
)
def test_quoted_values_are_text_exactly_as_written(written: str) -> None:
    document, problems = load(f"value: {written}\n")
    assert problems == []
    assert document is not None
    assert document.data == {"value": written[1:-1]}


@pytest.mark.parametrize(
    ("written", "value"),
    [("38.0", 38.0), ("0.5", 0.5), ("-1.5", -1.5), ("0", 0), ("800", 800), ("-3", -3),
     ("1.0e+3", 1000.0), ("true", True), ("false", False), ("null", None), ("", None)],
)
def test_ordinary_numbers_booleans_and_nulls_are_accepted(written: str, value: object) -> None:
    document, problems = load(f"value: {written}\n")
    assert problems == []
    assert document is not None
    assert document.data["value"] == value
    assert type(document.data["value"]) is type(value)


# --- trap 5: empty file or a top level that is not a mapping ---------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "---\n...\n"])
def test_an_empty_file_is_one_problem_for_the_whole_file(text: str) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.check) == (0, 0, "yaml.empty")
    assert problem.message == "the file is empty"
    assert problem.expected.startswith("expected a YAML mapping at the top level")


@pytest.mark.parametrize(
    ("text", "position", "what"),
    [
        ("- id: r1\n- id: r2\n", (1, 1), "a list"),
        ("# header\n  hello\n", (2, 3), "a single value (`hello`)"),
        ("42\n", (1, 1), "a single value (`42`)"),
    ],
)
def test_a_top_level_that_is_not_a_mapping_is_refused(
    text: str, position: tuple[int, int], what: str
) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.check) == (*position, "yaml.root-not-mapping")
    assert problem.message == f"the top level is {what}, not a mapping"
    assert problem.expected.startswith("expected a YAML mapping at the top level")


# --- trap 6: keys that are not names ---------------------------------------------------------


def test_keys_that_are_not_names_are_refused() -> None:
    problems = problems_of(
        """\
        1: one
        true: yes-please
        2026-01-01: new year
        ? [a, b]
        : pair
        '2': quoted is a name
        """
    )
    assert where(problems) == [
        (1, 1, "yaml.key-not-string"),
        (2, 1, "yaml.key-not-string"),
        (3, 1, "yaml.key-not-string"),
        (4, 3, "yaml.key-not-string"),
    ]
    assert problems[0].message == "`1` as a key would be read as the number 1, not as a name"
    assert problems[0].expected == "keys must be names: write a word, or quote it ('1')"
    assert "read as true" in problems[1].message
    assert "read as a date" in problems[2].message
    assert "a list or mapping is used as a key" in problems[3].message


def test_an_empty_key_is_refused() -> None:
    problem = only_problem("{? : x}\n")
    assert (problem.line, problem.column, problem.check) == (1, 3, "yaml.key-not-string")
    assert problem.message == "this key is empty"


# --- other ways content is hidden or unreadable ----------------------------------------------


def test_explicit_tags_are_refused_once_each() -> None:
    problems = problems_of(
        "a: !!str 5\nb: !!bool yes\nc: !custom x\nd: !!python/object:os.system x\n"
    )
    assert where(problems) == [
        (1, 4, "yaml.tag"),
        (2, 4, "yaml.tag"),
        (3, 4, "yaml.tag"),
        (4, 4, "yaml.tag"),
    ]
    assert problems[0].message.startswith("`!!str` changes how the value is read")
    assert problems[2].message.startswith("`!custom`")


def test_each_control_character_is_reported_at_its_position() -> None:
    problems = problems_of("a: b\x07c\nd: \x01\n")
    assert where(problems) == [(1, 5, "yaml.control-character"), (2, 4, "yaml.control-character")]
    assert "U+0007" in problems[0].message


def test_invisible_characters_that_change_text_are_reported() -> None:
    problems = problems_of("drug: amoxicillin\u00a0\nroute: o\u200bral\n")
    assert where(problems) == [
        (1, 18, "yaml.invisible-character"),
        (2, 9, "yaml.invisible-character"),
    ]
    assert "no-break space" in problems[0].message


def test_nesting_past_the_limit_is_a_problem_not_a_crash() -> None:
    problem = only_problem("a: " + "[" * 500 + "]" * 500 + "\n")
    assert problem.check == "yaml.too-deep"
    assert problem.line == 1


def test_a_second_document_in_one_file_is_refused_at_its_start() -> None:
    problem = only_problem("a: 1\n---\nb: 2\n")
    assert (problem.line, problem.column, problem.check) == (2, 1, "yaml.multiple-documents")


# --- YAML that cannot be parsed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("a: b: c\n", (1, 5), "colon followed by a space is not allowed"),
        ("a: 1\n b: 2\n", (2, 3), "colon followed by a space is not allowed"),
        ("a: [1, 2\n", (1, 4), "a list opened with ["),
        ("a: {b: 1\n", (1, 4), "a mapping opened with {"),
        ('a: "open\n', (1, 4), "a quote opened here is never closed"),
        ("a: `x`\n", (1, 4), "this character cannot start a value"),
        ("a:\n  - 1\n  b: 2\n", (3, 3), "indentation here does not line up"),
        ('a: "\\q"\n', (1, 6), "unknown code"),
        ("a: |x\n", (1, 5), "starts a block of text"),
        ("a: *\n", (1, 5), "starting with `*`"),
        ("a: 1\n...\nb\n", (3, 1), "the document ends early"),
    ],
)
def test_a_syntax_error_is_one_problem_in_plain_words_at_its_mark(
    text: str, position: tuple[int, int], words: str
) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.check) == (*position, "yaml.syntax")
    assert words in problem.message
    assert "token" not in problem.message


def test_a_syntax_error_is_reported_with_the_text_problems_found_before_it() -> None:
    problems = problems_of("a: '1\t'\nb: x\u00a0\nc: d: e\n")
    assert where(problems) == [
        (1, 6, "yaml.tab"),
        (2, 5, "yaml.invisible-character"),
        (3, 5, "yaml.syntax"),
    ]


# --- several traps at once -------------------------------------------------------------------


def test_every_trap_in_a_file_is_reported_sorted_by_position() -> None:
    problems = problems_of(
        """\
        rules:
          - id: r2
            active: yes
            max_dose: 010
            started: 2026-03-10
            limit: .inf
          - id: r1
            when: &w {temp: 38.5}
            when: *w
            note: ~
        zzz: 1:30
        """
    )
    assert where(problems) == [
        (3, 13, "yaml.boolean"),
        (4, 15, "yaml.octal"),
        (5, 14, "yaml.date"),
        (6, 12, "yaml.special-float"),
        (8, 11, "yaml.anchor"),
        (9, 5, "yaml.duplicate-key"),
        (9, 11, "yaml.alias"),
        (10, 11, "yaml.null"),
        (11, 6, "yaml.sexagesimal"),
    ]
    assert problems == sorted(problems)
    assert all(problem.file == FILE and problem.subject == "-" for problem in problems)
    assert problems[0].path == ("rules", 0, "active")


# --- files -----------------------------------------------------------------------------------


def test_a_file_is_read_as_utf8_and_named_by_its_path_by_default(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_bytes("drug: paracetamol\nunit: \u00b5g\n".encode("utf-8"))
    document, problems = load_yaml_file(path)
    assert problems == []
    assert document is not None
    assert document.file == str(path)
    assert document.data == {"drug": "paracetamol", "unit": "\u00b5g"}


def test_a_file_can_be_given_the_name_problems_should_use(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text("a: no\n", encoding="utf-8")
    _, problems = load_yaml_file(path, "rules/pack.yaml")
    assert [str(p).split(":")[0] for p in problems] == ["rules/pack.yaml"]


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path: pathlib.Path) -> None:
    document, problems = load_yaml_file(tmp_path / "absent.yaml", "rules/absent.yaml")
    assert document is None
    assert where(problems) == [(0, 0, "yaml.unreadable")]
    assert problems[0].file == "rules/absent.yaml"


def test_a_directory_is_a_problem_not_an_exception(tmp_path: pathlib.Path) -> None:
    document, problems = load_yaml_file(tmp_path)
    assert document is None
    assert where(problems) == [(0, 0, "yaml.unreadable")]


def test_a_file_that_is_not_utf8_is_refused_at_the_first_bad_byte(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: 1\nnote: caf\u00e9\n".encode("latin-1"))
    document, problems = load_yaml_file(path, "rules/latin1.yaml")
    assert document is None
    assert where(problems) == [(2, 10, "yaml.encoding")]
    assert "0xE9" in problems[0].message
    assert "UTF-8" in problems[0].expected


# --- never raises ----------------------------------------------------------------------------

YAMLISH = st.text(
    alphabet=st.sampled_from(list("ab01:-?[]{},&*!|>'\"#%@`~.<=\\ \t\n\r") + ["\u00a0", "\x85"]),
    max_size=60,
)


def assert_well_formed(result: object) -> None:
    assert isinstance(result, tuple) and len(result) == 2
    document, problems = result
    assert isinstance(problems, list)
    if document is None:
        assert problems, "a refused file must say why"
        assert problems == sorted(problems)
        for problem in problems:
            assert isinstance(problem, Problem)
            assert problem.check.startswith("yaml.")
            assert problem.check != "yaml.internal-error", str(problem)
            assert problem.line >= 0 and problem.column >= 0
    else:
        assert problems == []
        assert isinstance(document.data, dict)


@pytest.mark.parametrize("examples", property_twins(300))
def test_any_text_gives_a_result_and_never_raises(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.text())
    def check(text: str) -> None:
        assert_well_formed(load_yaml_text(text, FILE))

    check()


@pytest.mark.parametrize("examples", property_twins(500))
def test_any_yaml_looking_text_gives_a_result_and_never_raises(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(YAMLISH)
    def check(text: str) -> None:
        assert_well_formed(load_yaml_text(text, FILE))

    check()


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.", min_size=2, max_size=12).filter(
        lambda text: text.strip() == text
    )
)
DATA = st.dictionaries(
    NAMES,
    st.recursive(
        LEAVES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
        max_leaves=8,
    ),
    min_size=1,
    max_size=4,
)


def every_path(data: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    paths = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            paths += every_path(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += every_path(value, path + (index,))
    return paths


@pytest.mark.parametrize("examples", property_twins(200))
def test_ordinary_data_written_by_pyyaml_loads_back_equal_with_every_position(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(DATA)
    def check(data: dict[str, object]) -> None:
        document, problems = load_yaml_text(yaml.safe_dump(data, sort_keys=False), FILE)
        assert problems == []
        assert document is not None
        assert document.data == data
        for path in every_path(data):
            assert path in document.value_marks
            assert document.position(path)[0] >= 1
            if path and isinstance(path[-1], str):
                assert path in document.key_marks

    check()
