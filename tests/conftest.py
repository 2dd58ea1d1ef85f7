"""Suite-wide settings: hypothesis profiles sized for a 2-core CI machine, and a refusal to
test an old compiled build of edited modules (blockmesh.compiled)."""

import os

import pytest
from hypothesis import HealthCheck, settings

from blockmesh.compiled import stale

if stale():
    raise pytest.UsageError(
        f"mypyc-compiled modules are older than their source ({', '.join(stale())}): "
        "rebuild with `make install` or drop them with `python -m blockmesh.compiled clean`")

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
