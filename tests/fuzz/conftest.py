"""The fuzzing suite's fixed budget: seeded (derandomize), no example database, a deadline per
example (the harness adds a hard time limit). scripts/fuzz.py loads the "long" profile instead."""

from hypothesis import settings

from tests.fuzz import harness  # noqa: F401  registers the profiles

settings.load_profile("ci")
