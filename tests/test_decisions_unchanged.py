"""Every decision is unchanged by the engine's fast path and batch evaluation (issue 13).

The reference digests below were computed by the code before the fast path (merge base
9caab2f): the SHA-256 of every decision's JSON, in population order, over the diff's generated
population of the shipped pack. The population is deterministic (``population_inputs`` with a fixed
seed), so the digests change only if a decision changes, or the pack does: a pack release needs
the digests computed again from the code before any change to the evaluation, never from the code
under test.

A released change of the pack (a pharmacist's, such as the README walkthrough's) must not fail the
suite: with any other pack under test the decisions are still checked to be the same one by one
and in a batch, and the comparison with the reference waits for its renewal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from crs_rules import evaluate, evaluate_many
from crs_rules.impact import population_inputs
from crs_rules.model import Protocol

#: The pack the digests were computed with (its release digest).
PACK_DIGEST = "sha256:c347a8fc4abe705a4ace70b0b07375439c7e2573af241f41ae8987186d237096"
SEED = 13
#: population size -> SHA-256 of the decisions' JSON, one line each, computed before the change.
#: The generated ages came to be drawn from the pack's pediatric definition (a quarter of them on
#: the other side of its pediatric weight) instead of a fixed 40 kg: the digests of the redrawn
#: population were computed by the code of c84177e, whose decisions on the earlier population gave
#: the digests of 9caab2f (fe8f0530..., c0ae34fd...).
REFERENCE = {
    400: "6adf707674d58b48b10d075731ec25371bb0dd4b62d5a3b8ed9cc17528a8fc44",
    10_000: "21071a671ae930072426aa52f61f303de6f57eff46ba189ce7e7c2ce87167033",
}


def decisions_digest(decisions: Any) -> str:
    digest = hashlib.sha256()
    for decision in decisions:
        digest.update(json.dumps(decision.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _inputs(protocol: Protocol, size: int) -> list[dict[str, Any]]:
    return [data for _, data in population_inputs((protocol,), size, SEED)]


def _is_reference(protocol: Protocol) -> bool:
    return protocol.digest == PACK_DIGEST


def test_decisions_of_400_generated_patients_are_unchanged_one_by_one_and_in_a_batch(protocol: Protocol) -> None:
    inputs = _inputs(protocol, 400)
    one_by_one = decisions_digest(evaluate(data, protocol) for data in inputs)
    assert decisions_digest(evaluate_many(inputs, protocol)) == one_by_one
    if _is_reference(protocol):
        assert one_by_one == REFERENCE[400]


@pytest.mark.slow
def test_decisions_of_10_000_generated_patients_are_unchanged(protocol: Protocol) -> None:
    inputs = _inputs(protocol, 10_000)
    batch = decisions_digest(evaluate_many(inputs, protocol))
    if _is_reference(protocol):
        assert batch == REFERENCE[10_000]
    else:
        assert batch == decisions_digest(evaluate(data, protocol) for data in inputs)
