"""The generated patients of ``crs-rules diff`` follow the table of input fields and the pack: their
ages cover both sides of the pack's pediatric definition, and every field of the table is drawn."""

from __future__ import annotations

from typing import Any

from crs_rules.fields import FIELDS
from crs_rules.impact import population_inputs
from crs_rules.model import Protocol


def value_at(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def test_generated_ages_cover_every_side_of_the_packs_pediatric_definition(protocol: Protocol) -> None:
    """Children and adults on both sides of the pediatric weight, and unknown ages: the diff must
    see children heavier than the pediatric weight (the weight bands meet the child-by-age reading
    there) and small adults, not only ages that fit the weight."""
    child = protocol.pediatric
    assert child is not None
    drawn = [data["patient"] for _, data in population_inputs((protocol,), 600, 7)]
    aged = [p for p in drawn if "age_years" in p]
    assert 0 < len(aged) < len(drawn)  # some ages are left unknown
    assert all(0 <= p["age_years"] for p in aged)
    kinds = {(p["age_years"] < child.age_below_years, p["weight_kg"] < child.weight_below_kg_if_age_unknown)
             for p in aged}
    # (child by age, light by weight): all four combinations occur
    assert kinds == {(True, True), (True, False), (False, True), (False, False)}
    heavy_children = [p for p in aged if p["age_years"] < child.age_below_years
                      and p["weight_kg"] >= child.weight_below_kg_if_age_unknown]
    assert len(heavy_children) >= 20


def test_every_field_of_the_table_is_drawn(protocol: Protocol) -> None:
    drawn = [data for _, data in population_inputs((protocol,), 600, 7)]
    top = [f.path for f in FIELDS if "[]" not in f.path]
    never = [path for path in top if all(value_at(data, path) is None for data in drawn)]
    assert never == []


def test_the_generators_own_drawings_and_descriptions_name_fields_of_the_table() -> None:
    # The few fields drawn or described by code of their own are named by path: a field renamed or
    # removed from the contract must not leave a drawing that silently never applies.
    from crs_rules import patient_examples, population

    paths = {f.path for f in FIELDS}
    for table in (population._BOOLEAN_WEIGHTS, population._DRAWS, patient_examples._DESCRIBED_APART):
        assert set(table) <= paths, sorted(set(table) - paths)
    booleans = {f.path for f in FIELDS if f.type == "boolean"}
    assert set(population._BOOLEAN_WEIGHTS) <= booleans
