"""Shared test set-up.

Hypothesis runs 2,000 examples per property in CI (``CI`` set) and 200 locally; set
``HYPOTHESIS_PROFILE=ci`` to run the CI amount locally.

The pack under test: the tests that load the shipped pack load :func:`pack_under_test`, which is
``rules/`` unless ``CRS_RULES_PACK`` names another pack folder. A legitimately changed pack (the
README walkthrough's 700 mg release) must pass them too: ``test_readme.py`` runs them against it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from crs_rules import load_protocol
from crs_rules.model import Protocol

settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent

#: The environment variable naming the pack folder the pack-dependent tests load instead of ``rules/``.
PACK_VARIABLE = "CRS_RULES_PACK"


def pack_under_test() -> Path:
    """The pack folder the pack-dependent tests check: ``CRS_RULES_PACK`` if set, else ``rules/``."""
    named = os.environ.get(PACK_VARIABLE)
    return Path(named).resolve() if named else ROOT / "rules"


@pytest.fixture(scope="session")
def protocol() -> Protocol:
    """The pack under test (the shipped pack unless ``CRS_RULES_PACK`` names another), loaded once."""
    return load_protocol(pack_under_test())
