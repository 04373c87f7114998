"""crs-rules: the severe CRS and sepsis protocol as versioned, validated YAML rules.

The public surface is small::

    from crs_rules import load_protocol, evaluate
    protocol = load_protocol()          # the shipped pack, validated
    decision = evaluate(state, protocol)  # state: a mapping following schemas/patient.schema.json
    decisions = evaluate_many(states, protocol)  # many states, one protocol: an iterator of decisions

Errors carry their problems as values: :class:`InvalidPackError`, :class:`InvalidInputError`
(both ``ValueError``), :class:`EngineError`.
"""

from .decision import Decision
from .errors import CrsRulesError, EngineError, InvalidInputError, InvalidPackError, Problem
from .evaluation import evaluate, evaluate_many
from .model import Protocol
from .pack import load_protocol
from .patient import PatientState, parse_patient, read_patient

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "load_protocol",
    "evaluate",
    "evaluate_many",
    "parse_patient",
    "read_patient",
    "Protocol",
    "PatientState",
    "Decision",
    "Problem",
    "CrsRulesError",
    "InvalidPackError",
    "InvalidInputError",
    "EngineError",
]
