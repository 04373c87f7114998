"""engine-size: the compiled pack stays within what the engine can build (it hangs past a bound).

Runs only on a pack within the bounds of ``condition-size`` (it compiles every condition).
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol, Source
from .base import CheckId, problem


def check_engine_size(protocol: Protocol) -> Iterator[Problem]:
    """The compiled pack stays within what the engine can build (it hangs past a bound)."""
    from ..compilation import FACT_KINDS, engine_program  # compilation reads the validated model
    from ..engine import MAX_ENGINE_TESTS, ruleset_chain_bound

    rules, _, _ = engine_program(protocol, [])
    size = ruleset_chain_bound(rules, FACT_KINDS)
    if size > MAX_ENGINE_TESTS:
        source = protocol.grades[0].source if protocol.grades else Source(protocol.path, 0, 0)
        yield problem(source, protocol.id, f"the pack compiles to {size} engine test chains",
                       f"expected at most {MAX_ENGINE_TESTS}: merge or simplify rules", CheckId.ENGINE_SIZE)


