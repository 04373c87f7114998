"""Hostile rule packs: a pack folder is untrusted input. Each one here is refused with positioned
problems, quickly, without reading anything outside the pack folder, without hanging on a FIFO or a
device, and without echoing the content of a file that is not one of the pack's own files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest
from conftest import seed_numbers_pack

from crs_rules import pack as pack_module
from crs_rules.conditions import MAX_DNF_TERMS
from crs_rules.errors import InvalidPackError, Problem
from crs_rules.loading import MAX_FILE_BYTES, load_yaml_file
from crs_rules.pack import MAX_PACK_BYTES, load_protocol, read_pack_documents
from crs_rules.validation import MAX_CONDITION_DEPTH, MAX_RULES

from packing import at, draft_copy, edit, hang_fails_after, where

ROOT = Path(__file__).resolve().parent.parent
RULES = seed_numbers_pack()  # a copy of the pack under test with the seed's numbers
SECRET = "TOP-SECRET-LINE-OF-ANOTHER-FILE"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A draft copy of the shipped pack, without its recorded digest, in tmp/pack."""
    return draft_copy(tmp_path / "pack")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the pack whose content must never be shown (it is not valid YAML for a pack:
    the top level is a single value, which the loader would echo)."""
    path = tmp_path / "secret.yaml"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


@pytest.fixture
def deadline() -> Iterator[None]:
    """Turn a hang (a FIFO opened for reading blocks forever) into a failure after 10 s."""
    with hang_fails_after(10):
        yield


def problems_of(pack: Path) -> list[Problem]:
    with pytest.raises(InvalidPackError) as caught:
        load_protocol(pack)
    assert SECRET not in str(caught.value)
    return list(caught.value.problems)


def only(pack: Path) -> Problem:
    problems = problems_of(pack)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# --------------------------------------------------------------------------- the manifest first


@pytest.mark.parametrize("name", ["../secret.yaml", "../../../../../../etc/passwd", "sub/../../secret.yaml"])
def test_a_file_name_leaving_the_pack_is_refused_before_anything_is_opened(pack: Path, secret: Path,
                                                                          name: str) -> None:
    edit(pack, "manifest.yaml", "  references: references.yaml\n", f"  references: {name}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "manifest.yaml", name)
    assert problem.expected == "expected a file name ending in .yaml"
    assert "root:" not in str(problem)


def test_an_absolute_file_name_is_refused(pack: Path, secret: Path) -> None:
    edit(pack, "manifest.yaml", "  references: references.yaml\n", f"  references: {secret}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "manifest.yaml", str(secret))
    assert problem.expected == "expected a file name ending in .yaml"


def test_dev_zero_named_in_the_manifest_is_refused_without_reading_it(pack: Path, deadline: None) -> None:
    edit(pack, "manifest.yaml", "  references: references.yaml\n", "  references: /dev/zero\n")
    problem = only(pack)
    assert where(problem) == at(pack, "manifest.yaml", "/dev/zero")


def test_an_invalid_manifest_opens_none_of_the_files_it_names(pack: Path, secret: Path) -> None:
    # The other names are valid, but nothing is opened until the whole files section is.
    edit(pack, "manifest.yaml", "  grading: grading.yaml\n", "  grading: ../secret.yaml\n")
    (pack / "references.yaml").write_text(SECRET + "\n", encoding="utf-8")
    problem = only(pack)
    assert where(problem) == at(pack, "manifest.yaml", "../secret.yaml")


# --------------------------------------------------------------------------- confinement of each file


def test_a_symlink_leaving_the_pack_is_refused_and_its_target_not_shown(pack: Path, secret: Path) -> None:
    (pack / "references.yaml").unlink()
    (pack / "references.yaml").symlink_to(secret)
    problem = only(pack)
    assert where(problem) == (str(pack / "references.yaml"), 0, 0)
    assert problem.message == "the file is a link to a file outside the pack folder"
    assert problem.expected == "expected the pack's own files inside the pack folder, not links out of it"


def test_a_relative_symlink_leaving_the_pack_is_refused(pack: Path, secret: Path) -> None:
    (pack / "references.yaml").unlink()
    (pack / "references.yaml").symlink_to(Path("..") / "secret.yaml")
    assert only(pack).message == "the file is a link to a file outside the pack folder"


def test_a_manifest_linked_out_of_the_pack_is_refused(pack: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside-manifest.yaml"
    shutil.move(pack / "manifest.yaml", outside)
    (pack / "manifest.yaml").symlink_to(outside)
    problem = only(pack)
    assert where(problem) == (str(pack / "manifest.yaml"), 0, 0)
    assert problem.message == "the file is a link to a file outside the pack folder"


def test_a_symlink_inside_the_pack_is_followed(pack: Path) -> None:
    (pack / "alerts-v2.yaml").write_bytes((pack / "alerts.yaml").read_bytes())
    (pack / "alerts.yaml").unlink()
    (pack / "alerts.yaml").symlink_to("alerts-v2.yaml")
    assert load_protocol(pack).alerts


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(pack: Path, deadline: None) -> None:
    (pack / "references.yaml").unlink()
    (pack / "references.yaml").symlink_to("/dev/zero")
    assert only(pack).message == "the file is a link to a file outside the pack folder"


def test_a_device_is_not_read(deadline: None) -> None:
    document, problems = load_yaml_file(Path("/dev/zero"), "pack/references.yaml")
    assert document is None
    assert [str(p) for p in problems] == [
        "pack/references.yaml:0:0: -: the file is not a regular file (a character device); "
        "expected a YAML file"]


def test_a_fifo_does_not_hang_and_is_refused(pack: Path, deadline: None) -> None:
    (pack / "references.yaml").unlink()
    os.mkfifo(pack / "references.yaml")
    problem = only(pack)
    assert str(problem) == (f"{pack / 'references.yaml'}:0:0: -: the file is not a regular file (a FIFO); "
                            "expected a YAML file")


def test_a_folder_in_place_of_a_file_is_refused(pack: Path) -> None:
    (pack / "references.yaml").unlink()
    (pack / "references.yaml").mkdir()
    assert only(pack).message == "the file is not a regular file (a folder)"


def test_a_missing_file_is_still_a_plain_problem(pack: Path) -> None:
    (pack / "references.yaml").unlink()
    problem = only(pack)
    assert where(problem) == (str(pack / "references.yaml"), 0, 0)
    assert problem.message == "the file cannot be read (No such file or directory)"


# --------------------------------------------------------------------------- sizes


def test_the_limits_are_sane() -> None:
    assert MAX_FILE_BYTES == 1024 * 1024
    assert MAX_PACK_BYTES == 4 * 1024 * 1024
    assert MAX_RULES == 500
    assert MAX_CONDITION_DEPTH == 10


def test_an_oversized_file_is_refused_before_it_is_parsed(pack: Path) -> None:
    padding = "# " + "x" * 78 + "\n"
    with (pack / "references.yaml").open("a", encoding="utf-8") as file:
        file.write(padding * (MAX_FILE_BYTES // len(padding) + 1))
    size = (pack / "references.yaml").stat().st_size
    problem = only(pack)
    assert str(problem) == (f"{pack / 'references.yaml'}:0:0: -: the file is {size} bytes; "
                            f"expected at most {MAX_FILE_BYTES} bytes (1 MiB) per file")


def test_a_pack_too_large_in_total_is_refused(pack: Path) -> None:
    padding = "# " + "x" * 78 + "\n"
    lines = (MAX_FILE_BYTES - 20_000) // len(padding)
    for name in ("references.yaml", "grading.yaml", "dosing.yaml", "actions.yaml", "alerts.yaml"):
        with (pack / name).open("a", encoding="utf-8") as file:
            file.write(padding * lines)
    problem = only(pack)
    assert problem.file == str(pack / "alerts.yaml")  # the file that takes the total over the limit
    assert problem.message.startswith("the pack's files reach ")
    assert problem.expected == f"expected at most {MAX_PACK_BYTES} bytes (4 MiB) for the whole pack"


# --------------------------------------------------------------------------- bounded validation


def alert(index: int, when: str) -> str:
    return (f"  - id: extra_{index}\n    severity: info\n    description: An extra alert.\n"
            f"    text: An extra alert.\n    when: {when}\n    citations: [ref1]\n")


def test_too_many_rules_are_refused_at_the_first_one_over(pack: Path) -> None:
    with (pack / "alerts.yaml").open("a", encoding="utf-8") as file:
        file.write("".join(alert(i, "{fact: neuro.icans_signs, equals: true}") for i in range(MAX_RULES)))
    with (pack / "statements.yaml").open("a", encoding="utf-8") as file:  # declared, so only the count fails
        file.write("".join(f"  - rule: alert.extra_{i}\n    reason: An extra alert.\n" for i in range(MAX_RULES)))
    problems = problems_of(pack)
    assert [p.check for p in problems] == ["rule-count"], "\n".join(map(str, problems))
    problem = problems[0]
    shipped = len(load_protocol(RULES).rule_ids()) - 1  # the definition is not a rule
    total = shipped + MAX_RULES
    first_over = MAX_RULES - shipped  # extra_<first_over> is rule number MAX_RULES + 1
    assert where(problem) == at(pack, "alerts.yaml", f"id: extra_{first_over}\n")
    assert problem.subject == f"alert.extra_{first_over}"
    assert problem.message == f"the pack has {total} rules"
    assert problem.expected == f"expected at most {MAX_RULES} rules; split the protocol into several packs"


def nested(levels: int) -> str:
    condition = "{fact: neuro.icans_signs, equals: true}"
    for level in range(levels):  # one level of not, all, any in turn
        condition = ("{not: %s}", "{all: [%s]}", "{any: [%s]}")[level % 3] % condition
    return condition


def test_a_condition_nested_too_deeply_is_refused(pack: Path) -> None:
    edit(pack, "alerts.yaml", "    when: {fact: neuro.icans_signs, equals: true}\n",
         f"    when: {nested(12)}\n")
    problem = only(pack)
    assert where(problem) == at(pack, "alerts.yaml", "{any: [{all: [{not:")
    assert problem.subject == "alert.icans_vigilance"
    assert problem.message == "the condition is nested 12 levels deep (all, any, not)"
    assert problem.expected == f"expected at most {MAX_CONDITION_DEPTH} levels; flatten it or split the rule"
    assert problem.check == "condition-depth"


def test_a_condition_at_the_depth_limit_is_accepted(pack: Path) -> None:
    edit(pack, "alerts.yaml", "    when: {fact: neuro.icans_signs, equals: true}\n",
         f"    when: {nested(MAX_CONDITION_DEPTH)}\n")
    assert load_protocol(pack).alerts


PAIR = "{any: [{fact: crs.improving, equals: true}, {fact: sepsis.septic_shock, equals: true}]}"


@pytest.mark.parametrize("pairs", [12, 18, 21, 200])
def test_an_exponential_condition_gets_one_problem_without_being_expanded(pack: Path, pairs: int) -> None:
    edit(pack, "alerts.yaml", "    when: {fact: neuro.icans_signs, equals: true}\n",
         "    when:\n      all:\n" + "".join(f"        - {PAIR}\n" for _ in range(pairs)))
    start = time.perf_counter()
    problem = only(pack)
    elapsed = time.perf_counter() - start
    print(f"{pairs} pairs: refused in {elapsed:.3f} s")
    assert where(problem) == at(pack, "alerts.yaml", "all:\n        - {any:")
    assert problem.subject == "alert.icans_vigilance"
    assert problem.message == "the condition is too complex for the engine"
    assert problem.expected == f"expected at most {MAX_DNF_TERMS} alternatives once expanded; split the rule"
    assert problem.check == "condition-size"


def test_expansion_is_counted_with_de_morgan(pack: Path) -> None:
    # not(any of pairs) is all of nots: one alternative; not(all of any-pairs) is an OR of 2 x 7 = 14.
    pairs = "".join(f"        - {PAIR}\n" for _ in range(7))
    edit(pack, "alerts.yaml", "    when: {fact: neuro.icans_signs, equals: true}\n",
         "    when:\n      not:\n        all:\n" + pairs.replace("        - ", "          - "))
    assert load_protocol(pack).alerts


def test_a_rule_with_several_large_conditions_gets_one_problem(pack: Path) -> None:
    big = "{all: [" + ", ".join([PAIR] * 7) + "]}"  # 128 alternatives, in two levels of one finding
    edit(pack, "grading.yaml", "            - {fact: vitals.vasopressors, count_at_least: 2, not_counting: [vasopressin, terlipressin]}\n",
         f"            - {big}\n")
    edit(pack, "grading.yaml", "            - {fact: vitals.vasopressors, count_at_least: 1}\n", f"            - {big}\n")
    problems = [p for p in problems_of(pack) if p.check == "condition-size"]
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert where(problems[0]) == at(pack, "grading.yaml", "all:\n            - {all: [{any:")
    assert problems[0].subject == "finding.hypotension_grade"


# --------------------------------------------------------------------------- numbers in sane ranges


@pytest.mark.parametrize("old, new, expected", [
    ("      max_dose_mg: 800\n", "      max_dose_mg: 1.0e+308\n", "expected an amount in mg (at most 100000)"),
    ("      min_interval_h: 8\n", "      min_interval_h: 100000\n", "expected a number of hours (at most 8760)"),
    ("      max_doses_per_course: 4\n", "      max_doses_per_course: 1000000\n", "expected a count (at most 1000)"),
    ("            - {from_weight_kg: 30, mg_per_kg: 8}\n", "            - {from_weight_kg: 30, mg_per_kg: 1000000000}\n",
     "expected an amount in mg per kg (at most 1000)"),
    ("            - {from_weight_kg: 30, mg_per_kg: 8}\n", "            - {from_weight_kg: 3000000000, mg_per_kg: 8}\n",
     "expected a weight in kg, 0 or more (at most 1000)"),
])
def test_numbers_in_the_dosing_file_are_bounded(pack: Path, old: str, new: str, expected: str) -> None:
    edit(pack, "dosing.yaml", old, new)
    problems = problems_of(pack)
    assert [p.expected for p in problems] == [expected], "\n".join(map(str, problems))
    assert problems[0].file == str(pack / "dosing.yaml") and problems[0].line > 0


def test_numbers_in_conditions_are_bounded(pack: Path) -> None:
    edit(pack, "alerts.yaml", "    when: {fact: finding.crs_grade, at_least: 2}\n",
         "    when: {fact: finding.crs_grade, at_least: 1.0e+300}\n")
    problems = problems_of(pack)
    assert [p.expected for p in problems] == ["expected a number (at most 1000000)"], "\n".join(map(str, problems))


def test_the_shipped_pack_is_within_every_bound() -> None:
    documents, problems = read_pack_documents(RULES)
    assert problems == []
    assert sum(len((RULES / name).read_bytes()) for name in os.listdir(RULES)
               if name.endswith(".yaml")) < MAX_PACK_BYTES
    assert pack_module.MAX_PACK_BYTES == MAX_PACK_BYTES


def test_many_scenario_files_are_read_only_up_to_the_pack_total(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crs_rules import loading, pack_reading

    size = 128 * 1024
    count = MAX_PACK_BYTES // size + 8
    body = "scenarios: []\n# " + "x" * (size - 20) + "\n"
    for index in range(count):
        (pack / "scenarios" / f"many{index:04d}.yaml").write_text(body, encoding="utf-8")
    read: list[Path] = []
    real = loading.read_bounded

    def counted(path: Path, limit: int = MAX_FILE_BYTES, *, follow_links: bool = True) -> bytes:
        read.append(path)
        return real(path, limit, follow_links=follow_links)

    monkeypatch.setattr(pack_reading, "read_bounded", counted)
    protocol = load_protocol(pack)  # scenario files are not protocol content: the pack loads
    files = protocol.files
    assert files is not None and files.scenarios is not None
    scenario_reads = [p for p in read if p.parent.name == "scenarios" and p.name.startswith("many")]
    # Reading stopped at the file that passed the total: the rest were never opened.
    assert len(scenario_reads) < MAX_PACK_BYTES // size + 1 < count
    refused = [f for f in files.scenarios if f.raw is None]
    assert [f.name for f in refused] == [f"scenarios/{scenario_reads[-1].name}"]
    assert refused[0].problems[0].message.startswith("the pack's files reach ")
    assert sum(len(f.raw) for f in files.scenarios if f.raw is not None) <= MAX_PACK_BYTES
    with pytest.raises(InvalidPackError) as raised:
        from crs_rules.scenarios import load_scenarios
        load_scenarios(pack, protocol)
    assert any("the pack's files reach " in p.message for p in raised.value.problems)


def test_the_documents_bytes_are_not_kept_only_the_manifests(pack: Path) -> None:
    files = load_protocol(pack).files
    assert files is not None
    assert files.manifest_raw == (pack / "manifest.yaml").read_bytes()
    assert not hasattr(files, "raw")
