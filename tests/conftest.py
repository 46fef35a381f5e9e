"""Fixtures over tests/repo.py: the rule module as shipped, and copies with overrides edited."""

import pytest
from repo import RULE_FILE, load_module, rule_source_with


@pytest.fixture(scope="session")
def rule_module():
    return load_module(RULE_FILE, "aws_vpce_s3_external_ip")


@pytest.fixture
def edited_rule(tmp_path):
    """Load a copy of the rule with some override assignments edited."""

    def load(**assignments):
        return load_module(rule_source_with(tmp_path, **assignments))

    return load
