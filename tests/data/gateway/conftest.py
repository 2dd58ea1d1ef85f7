"""The gateway tests' fixtures live in gateway_fixtures.py (importable by the tests too)."""

from gateway_fixtures import content, served  # noqa: F401
