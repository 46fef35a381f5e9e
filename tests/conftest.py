"""Fixtures over tests/repo.py, and the key-value store every test runs against.

The rule calls Panther's key-value store (DynamoDB, through panther_detection_helpers). Tests
run it against moto's in-process DynamoDB for the whole session, with fake credentials and the
instance metadata service disabled, so nothing can reach AWS; each test starts with an empty
table and a store guard that remembers no earlier failure.
"""

import os

import pytest
from repo import RULE_FILE, load_module, rule_source_with

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
    """moto's DynamoDB for the whole session: (resource, table)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        resource = boto3.resource("dynamodb")
        yield resource, create_kv_table(resource)


@pytest.fixture(autouse=True)
def kv_table(aws):
    """The key-value table, emptied, with the rule's store guard reset."""
    import windowed_counter

    resource, table = aws
    if KV_TABLE not in resource.meta.client.list_tables()["TableNames"]:
        table = create_kv_table(resource)
    with table.batch_writer() as batch:
        for item in table.scan(ProjectionExpression="#k", ExpressionAttributeNames={"#k": "key"})[
            "Items"
        ]:
            batch.delete_item(Key={"key": item["key"]})
    windowed_counter.GUARD.reset()
    yield table
    windowed_counter.GUARD.reset()


@pytest.fixture(scope="session")
def rule_module():
    return load_module(RULE_FILE, "aws_vpce_s3_external_ip")


@pytest.fixture
def edited_rule(tmp_path):
    """Load a copy of the rule with some override assignments edited."""

    def load(**assignments):
        return load_module(rule_source_with(tmp_path, **assignments))

    return load
