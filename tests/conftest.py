"""Shared test set-up.

Hypothesis runs 2,000 examples per property in CI (``CI`` set) and 100 locally; set
``HYPOTHESIS_PROFILE=ci`` to run the CI amount locally.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from crs_rules import load_protocol
from crs_rules.model import Protocol

settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def protocol() -> Protocol:
    """The shipped pack, loaded once."""
    return load_protocol(ROOT / "rules")
