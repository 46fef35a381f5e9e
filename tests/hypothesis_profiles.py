"""Hypothesis settings for the fuzz tests, applied per test (never loaded globally).

``fuzz-ci`` (the default) is derandomized and keeps no example database, so every run of the
test command draws the same examples: a CI failure reproduces locally, and nothing depends on a
``.hypothesis/`` directory. ``fuzz-deep`` draws many more random examples for a local hunt; put
whatever it finds into an explicit ``@example`` so ``fuzz-ci`` keeps checking it::

    HYPOTHESIS_FUZZ_PROFILE=fuzz-deep .venv/bin/python -m pytest tests/test_fuzz.py
"""

import os

from hypothesis import HealthCheck, settings

SLOW_INPUT_CHECKS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]

settings.register_profile(
    "fuzz-ci",
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=SLOW_INPUT_CHECKS,
)
settings.register_profile(
    "fuzz-deep",
    max_examples=3000,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=SLOW_INPUT_CHECKS,
)

FUZZ_PROFILE = os.environ.get("HYPOTHESIS_FUZZ_PROFILE", "fuzz-ci")


def fuzz_settings(**overrides):
    """Settings for one fuzz test: the selected profile, with per-test overrides."""
    return settings(settings.get_profile(FUZZ_PROFILE), **overrides)
