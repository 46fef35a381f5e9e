"""Fixtures over tests/repo.py, and the key-value store the rule's calls reach in tests.

The per-event rule keeps its first-seen baseline in Panther's key-value store through
panther_detection_helpers.caching. For the whole session those functions answer from the
replay's in-memory store (emptied before each test), installed before any test module loads the
rule, since a rule binds them on import. The tests of the store itself (``dynamodb_rule``) load
the rule with the helpers' real functions against moto's in-process DynamoDB. Fake credentials
and a disabled instance metadata service make sure nothing can reach AWS either way.
"""

import contextlib
import os

import pytest
from panther_detection_helpers import caching
from repo import RULE_FILE, load_module, rule_source_with, rules_with_family

from detection_replay.kv_store import KeyValueStore

KV_TABLE = "panther-kv-store"
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "KV_STORE_TABLE_NAME": KV_TABLE,
}
os.environ.update(FAKE_AWS_ENVIRONMENT)
for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(name, None)

# panther_detection_helpers' own functions, before the session's store stands in for them.
GENUINE_CACHING = {name: getattr(caching, name) for name in KeyValueStore.FUNCTIONS}
STORE = KeyValueStore()
_installed = contextlib.ExitStack()


def pytest_configure(config):
    _installed.enter_context(STORE.installed())


def pytest_unconfigure(config):
    _installed.close()


@pytest.fixture(autouse=True)
def kv_store():
    """The in-memory store the rule reaches, empty."""
    STORE.clear()
    return STORE


def create_kv_table(resource, name=KV_TABLE):
    """The table as Panther creates it: hash key `key`, expiry in `expiresAt`."""
    table = resource.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    resource.meta.client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
    )
    return table


@pytest.fixture(scope="session")
def aws():
    """moto's DynamoDB, from the first test that asks for it to the end of the session."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        resource = boto3.resource("dynamodb")
        yield resource, create_kv_table(resource)


@pytest.fixture
def kv_table(aws):
    """The key-value table on moto, emptied."""
    resource, table = aws
    if KV_TABLE not in resource.meta.client.list_tables()["TableNames"]:
        table = create_kv_table(resource)
    with table.batch_writer() as batch:
        for item in table.scan(ProjectionExpression="#k", ExpressionAttributeNames={"#k": "key"})[
            "Items"
        ]:
            batch.delete_item(Key={"key": item["key"]})
    return table


@pytest.fixture
def genuine_caching(kv_table):
    """panther_detection_helpers.caching with its own functions (reaching moto's DynamoDB), on a
    table client made for the test."""
    with pytest.MonkeyPatch.context() as patch:
        for name, function in GENUINE_CACHING.items():
            patch.setattr(caching, name, function)
        patch.setattr(caching, "_KV_TABLE", None)
        yield caching


@pytest.fixture
def dynamodb_rule(genuine_caching):
    """The rule as Panther runs it, freshly loaded (its baseline has known no failure): its store
    calls are the helpers' real ones, on moto."""
    return load_module(RULE_FILE)


@pytest.fixture(scope="session")
def rule_module():
    return load_module(RULE_FILE, "aws_vpce_s3_external_ip")


@pytest.fixture
def edited_rule(tmp_path):
    """Load a copy of the rule with some override assignments edited."""

    def load(**assignments):
        return load_module(rule_source_with(tmp_path, **assignments))

    return load


@pytest.fixture
def edited_family(tmp_path):
    """Load both rules against a copy of the vpce_family helper with some settings edited."""

    def load(**assignments):
        return rules_with_family(tmp_path, **assignments)

    return load
