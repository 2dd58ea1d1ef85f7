"""Suite-wide settings: hypothesis profiles sized for a 2-core CI machine, and a refusal to
test an old compiled build of edited modules (blockmesh.compiled)."""

import os

import pytest
from hypothesis import HealthCheck, settings

from blockmesh.compiled import StaleBuildError, refuse_stale

try:
    refuse_stale()  # the package's own check (blockmesh.control runs it), before any test
except StaleBuildError as exc:
    raise pytest.UsageError(str(exc)) from None

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
