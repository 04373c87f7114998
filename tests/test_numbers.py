"""Numbers shown to people are never rounded across a threshold (NOTES: "Numbers shown to people")."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crs_rules import evaluate
from crs_rules.model import Protocol
from crs_rules.numbers import shown


@pytest.mark.parametrize(("value", "thresholds", "decimals", "text"), [
    (37.95, [38.0], 1, "37.95"),              # not "38.0" next to "no fever"
    (38.0, [38.0], 1, "38.0"),
    (39.6, [38.0], 1, "39.6"),
    (37.944444444444, [38.0], 1, "37.9"),     # 100.3 °F: short, and still below 38
    (37.99999999, [38.0], 1, "37.99999999"),
    (7.99, [8.0], 1, "7.99"),                 # a dose 7.99 h ago is not "8.0 h ago"
    (7.9999, [8.0], 1, "7.9999"),
    (8.0, [8.0], 1, "8.0"),
    (6.0000001, [6.0], 0, "6.0000001"),       # a flow just above the low-flow limit
    (10.0, [6.0], 0, "10"),
])
def test_a_value_is_never_shown_on_the_other_side_of_a_threshold(
    value: float, thresholds: list[float], decimals: int, text: str
) -> None:
    assert shown(value, thresholds, decimals) == text


AT = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_basis_shows_37_95_as_entered_next_to_no_fever(protocol: Protocol) -> None:
    decision = evaluate({"assessed_at": stamp(AT), "patient": {"weight_kg": 70}, "therapy": {"car_t": True},
                         "vitals": {"temperature_c": 37.95, "hypotension": False, "oxygen": {"device": "room_air"}},
                         "medications": []}, protocol)
    assert decision.crs_grade == 0
    assert "temperature 37.95 °C" in decision.grade_basis
    assert "38.0" not in decision.grade_basis


def test_a_dose_just_under_8_hours_ago_is_not_shown_as_8_hours(protocol: Protocol) -> None:
    given = AT - timedelta(hours=7.99)
    decision = evaluate({"assessed_at": stamp(AT), "patient": {"weight_kg": 70}, "therapy": {"car_t": True},
                         "crs": {"onset_at": stamp(AT - timedelta(days=1))},
                         "vitals": {"temperature_c": 39.0, "hypotension": True, "vasopressors": [],
                                    "oxygen": {"device": "room_air"}},
                         "medications": [{"drug": "tocilizumab", "given_at": stamp(given)}]}, protocol)
    [withheld] = [w for w in decision.withheld if w.action == "tocilizumab"]
    assert "last dose 7.99 h ago" in withheld.reason
    assert "8.0 h ago" not in withheld.reason
