"""The generated patients of ``crs-rules diff`` follow the table of input fields and the pack: their
ages fit their weights by the pack's pediatric definition, and every field of the table is drawn."""

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


def test_generated_ages_fit_the_weight_by_the_packs_pediatric_definition(protocol: Protocol) -> None:
    child = protocol.pediatric
    assert child is not None
    drawn = [data["patient"] for _, data in population_inputs((protocol,), 600, 7)]
    aged = [p for p in drawn if "age_years" in p]
    adults = [p for p in aged if p["weight_kg"] >= child.weight_below_kg_if_age_unknown]
    children = [p for p in aged if p["weight_kg"] < child.weight_below_kg_if_age_unknown]
    assert adults and children and len(aged) < len(drawn)  # some ages are left unknown
    assert all(p["age_years"] >= child.age_below_years for p in adults)
    assert all(p["age_years"] < child.age_below_years for p in children)


def test_every_field_of_the_table_is_drawn(protocol: Protocol) -> None:
    drawn = [data for _, data in population_inputs((protocol,), 600, 7)]
    top = [f.path for f in FIELDS if "[]" not in f.path]
    never = [path for path in top if all(value_at(data, path) is None for data in drawn)]
    assert never == []
