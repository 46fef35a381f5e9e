"""Alert context: plain JSON, finite, bounded, whatever the event holds."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from panther_core.enriched_event import PantherEvent

import cloudtrail_context as ctx

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3000),
    lambda children: (
        st.lists(children, max_size=80)
        | st.dictionaries(st.text(max_size=300), children, max_size=80)
    ),
    max_leaves=400,
)


def encoded(value):
    return json.dumps(value, allow_nan=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (7, 7),
        (1.5, 1.5),
        ("short", "short"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (2**200, "<integer of 201 bits>"),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
        ((1, 2), [1, 2]),
        ({1: "x"}, {"1": "x"}),
        (b"raw", "b'raw'"),
    ],
    ids=[
        "null",
        "bool",
        "int",
        "float",
        "string",
        "nan",
        "inf",
        "-inf",
        "huge-int",
        "nested",
        "tuple",
        "int-key",
        "bytes",
    ],
)
def test_json_safe_values(value, expected):
    assert ctx.json_safe(value) == expected


def test_json_safe_copies_immutable_panther_containers():
    event = PantherEvent({"userIdentity": {"type": "IAMUser", "tags": ["a", "b"]}})
    copied = ctx.json_safe(event.get("userIdentity"))
    assert copied == {"type": "IAMUser", "tags": ["a", "b"]}
    assert type(copied) is dict
    assert type(copied["tags"]) is list


def test_long_string_is_cut_with_a_marker():
    cut = ctx.json_safe("x" * 5000, max_chars=1000)
    assert cut.endswith(ctx.TRUNCATED)
    assert len(encoded(cut)) <= 1000


def test_escape_heavy_string_is_cut_by_its_encoded_size():
    cut = ctx.json_safe("\x00" * 5000, max_chars=1000)
    assert len(encoded(cut)) <= 1000 + 2 * len(ctx.TRUNCATED)


def test_many_items_are_cut_and_counted():
    copied = ctx.json_safe(list(range(500)), max_items=10)
    assert copied[:10] == list(range(10))
    assert copied[10] == f"{ctx.TRUNCATED} 490 more items"
    mapping = ctx.json_safe({str(n): n for n in range(500)}, max_items=10)
    assert mapping[ctx.TRUNCATED] == "490 more keys"


def test_deep_nesting_is_cut():
    value = current = {}
    for _ in range(50):
        current["next"] = {}
        current = current["next"]
    copied = ctx.json_safe(value, max_depth=3)
    assert copied == {"next": {"next": {"next": ctx.TRUNCATED}}}


@settings(max_examples=150, deadline=None)
@given(value=JSON_VALUES, budget=st.sampled_from([256, 1024, 16 * 1024]))
def test_json_safe_is_serialisable_and_bounded(value, budget):
    text = encoded(ctx.json_safe(value, max_chars=budget))
    # Each container level may add one marker beyond the budget; depth is bounded by 8.
    assert len(text) <= budget + 8 * 64


def test_network_activity_context_has_the_seed_fields_and_more():
    event = {
        "eventName": "GetObject",
        "eventSource": "s3.amazonaws.com",
        "awsRegion": "us-east-1",
        "recipientAccountId": "123456789012",
        "sourceIPAddress": "8.8.8.8",
        "vpcEndpointId": "vpce-0a1b2c3d4e5f6a7b8",
        "vpcEndpointAccountId": "123456789012",
        "errorCode": "VpceAccessDenied",
        "errorMessage": "The request was denied due to a VPC endpoint policy",
        "eventTime": "2026-11-20T07:44:38Z",
        "eventID": "7c6e3d04-0c3b-42f2-8589-EXAMPLE826c0",
        "requestID": "899003b8-abc4-42bb-ad95-EXAMPLE0c374",
        "sharedEventID": "702f74c4-f692-4bfd-8491-EXAMPLEb1ac4",
        "userIdentity": {
            "type": "AWSAccount",
            "principalId": "AKIAEX",
            "accountId": "777788889999",
        },
        "requestParameters": {"bucketName": "b"},
    }
    context = ctx.network_activity_context(PantherEvent(event))
    assert context == {
        "eventName": "GetObject",
        "eventSource": "s3.amazonaws.com",
        "awsRegion": "us-east-1",
        "recipientAccountId": "123456789012",
        "sourceIPAddress": "8.8.8.8",
        "userAgent": None,
        "vpcEndpointId": "vpce-0a1b2c3d4e5f6a7b8",
        "vpcEndpointAccountId": "123456789012",
        "errorCode": "VpceAccessDenied",
        "errorMessage": "The request was denied due to a VPC endpoint policy",
        "eventTime": "2026-11-20T07:44:38Z",
        "eventID": "7c6e3d04-0c3b-42f2-8589-EXAMPLE826c0",
        "requestID": "899003b8-abc4-42bb-ad95-EXAMPLE0c374",
        "sharedEventID": "702f74c4-f692-4bfd-8491-EXAMPLEb1ac4",
        "userIdentity": {
            "type": "AWSAccount",
            "principalId": "AKIAEX",
            "accountId": "777788889999",
        },
        "actor_user": "AKIAEX in account 777788889999",
        "bucketName": "b",
        "crossAccount": True,
    }


def test_network_activity_context_stays_small_for_a_monstrous_event():
    junk = {"k" * 500: ["\u2603" * 100_000] * 100}
    event = dict.fromkeys(ctx.EVENT_FIELDS, junk)
    event["userIdentity"] = {str(n): junk for n in range(1000)}
    event["requestParameters"] = {"bucketName": "b" * 1_000_000}
    size = len(encoded(ctx.network_activity_context(event)))
    assert size < 40 * 1024
