"""Alert context: plain JSON, finite, bounded, whatever the event holds."""

import enum
import json
import math
from collections import OrderedDict, UserList
from types import MappingProxyType

import cloudtrail_context as ctx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from identities import ASSUMED_ROLE
from panther_core.enriched_event import PantherEvent
from raw_view import RawViewOnly

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
    assert context.pop("caller") == "777788889999:AKIAEX"
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


# --- the common case without the general path ----------------------------------------------------
# A plain str whose JSON fits what is left is measured and kept in place; _copy_text (which cuts)
# must not even be called for it. These pin that fast path, its exact edges and its bounds.


@pytest.fixture
def general_text_path_forbidden(monkeypatch):
    def forbidden(value, left):
        raise AssertionError(f"general path for {value!r} with {left} left")

    monkeypatch.setattr(ctx, "_copy_text", forbidden)


FITTING = [
    ("identity", ASSUMED_ROLE, ctx.IDENTITY_CHARS),
    ("top-level-str", "GetObject", ctx.SCALAR_FIELD_CHARS),
    # Exactly filling the budget: 100 - 2 (slot) - 3 ("k") = 95 = 93 characters and 2 quotes.
    ("value-exactly-fits", {"k": "x" * 93}, 100),
    ("key-exactly-fits", {"k" * 96: None}, 100),
    ("item-exactly-fits", ["x" * 96], 100),
    ("top-level-exactly-fits", "x" * 98, 100),
    ("strs-in-lists-in-dicts", {"a": ["b", {"c": "d"}], "e": []}, 100),
]


@pytest.mark.usefixtures("general_text_path_forbidden")
@pytest.mark.parametrize(("value", "budget"), [c[1:] for c in FITTING], ids=[c[0] for c in FITTING])
def test_strings_that_fit_are_kept_without_the_general_path(value, budget):
    assert ctx.json_safe(value, max_chars=budget) == value


LONG = "x" * 500
ONE_OVER = [
    # One character more than FITTING's exact fits: cut, through the general path.
    ("value", {"k": "x" * 94}, 100, {"k": "x" * (95 - 2 - len(ctx.TRUNCATED)) + ctx.TRUNCATED}),
    ("key", {"k" * 97: None}, 100, {"k" * (98 - 2 - len(ctx.TRUNCATED)) + ctx.TRUNCATED: None}),
    ("item", ["x" * 97], 100, ["x" * (98 - 2 - len(ctx.TRUNCATED)) + ctx.TRUNCATED]),
    ("top-level", "x" * 99, 100, "x" * (98 - len(ctx.TRUNCATED)) + ctx.TRUNCATED),
    # What a str kept in place is charged: the cut of the next one shows it.
    ("charge-of-a-value", {"a": "ab", "b": LONG}, 100, {"a": "ab", "b": LONG[:70] + ctx.TRUNCATED}),
    # Little budget left but the marker's room: the general path keeps a short str whole.
    ("short-str-in-the-markers-room", ["x" * 10], 5, ["x" * 10]),
    ("str-exactly-the-markers-room", ["x" * len(ctx.TRUNCATED)], 5, ["x" * len(ctx.TRUNCATED)]),
]


@pytest.mark.parametrize(
    ("value", "budget", "expected"), [c[1:] for c in ONE_OVER], ids=[c[0] for c in ONE_OVER]
)
def test_strings_that_do_not_fit_go_the_general_way(value, budget, expected):
    assert ctx.json_safe(value, max_chars=budget) == expected


def test_a_huge_string_is_never_encoded_whole(monkeypatch):
    lengths = []

    def measured(text):
        lengths.append(len(text))
        return json.dumps(text)

    monkeypatch.setattr(ctx, "_encode", measured)
    huge = "x" * 100_000
    ctx.json_safe(huge)
    ctx.json_safe([huge])
    ctx.json_safe({huge: huge})
    assert lengths
    assert max(lengths) <= ctx.SCALAR_FIELD_CHARS


def test_a_panther_container_is_copied_from_the_dict_it_wraps():
    assert ctx.json_safe(RawViewOnly({"a": [1, {"b": "c"}]})) == {"a": [1, {"b": "c"}]}


def test_other_mappings_and_sequences_are_copied_through_their_own_interface():
    assert ctx.json_safe(MappingProxyType({"a": (1, "b")})) == {"a": [1, "b"]}
    copied = ctx.json_safe(MappingProxyType({"a": 1}))
    assert type(copied) is dict


class Name(enum.StrEnum):
    GET = "GetObject"


class Count(enum.IntEnum):
    ONE = 1


SUBCLASSES = [
    ("str-subclass", [Name.GET, {Name.GET: Name.GET}], ["GetObject", {"GetObject": "GetObject"}]),
    ("int-subclass", [Count.ONE], [1]),
    ("dict-subclass", OrderedDict(a=1), {"a": 1}),
    ("list-subclass", UserList([1, 2]), [1, 2]),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in SUBCLASSES], ids=[c[0] for c in SUBCLASSES]
)
def test_subclasses_of_plain_types_are_copied_as_their_base(value, expected):
    copied = ctx.json_safe(value)
    assert copied == expected
    assert json.loads(encoded(copied)) == expected


# --- small records of strings: kept as they are ---------------------------------------------------
# A dict or list of only str keys, str, None, bool and such containers is kept as it is, without
# _copy, when it surely fits: 12 charged per character of a key or str, 9 per item. What json_safe
# returns must be exactly what _copy returns, at every budget and bound.

SMALL_RECORDS = st.recursive(
    st.none() | st.booleans() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
GENERAL_PATH = ctx._copy


@settings(max_examples=300, deadline=None)
@given(
    value=SMALL_RECORDS | JSON_VALUES,
    budget=st.integers(0, 2048) | st.sampled_from([ctx.IDENTITY_CHARS]),
    max_items=st.integers(0, 6) | st.just(64),
    max_depth=st.integers(0, 4) | st.just(8),
)
def test_json_safe_gives_exactly_what_the_general_path_does(value, budget, max_items, max_depth):
    safe = ctx.json_safe(value, max_chars=budget, max_items=max_items, max_depth=max_depth)
    assert safe == GENERAL_PATH(value, budget, max_items, max_depth)[0]
    # Kept as it is only when it is plain JSON: what the general path makes of it serialises
    # to the very same text.
    if safe is value and isinstance(value, dict | list):
        assert encoded(safe) == encoded(GENERAL_PATH(value, budget, max_items, max_depth)[0])


@pytest.fixture
def general_path_forbidden(monkeypatch):
    def forbidden(value, left, max_items, depth):
        raise AssertionError(f"general path for {value!r} with {left} left")

    monkeypatch.setattr(ctx, "_copy", forbidden)


@pytest.fixture
def general_path_calls(monkeypatch):
    calls = []

    def spied(value, left, max_items, depth):
        calls.append(value)
        return GENERAL_PATH(value, left, max_items, depth)

    monkeypatch.setattr(ctx, "_copy", spied)
    return calls


# (value, the least budget it is kept as it is with): 12 per character, 9 per item, +1.
KEPT = [
    ("record", {"k": "x"}, 12 * 2 + 9 + 1),
    ("list", ["ab", None, True], 12 * 2 + 9 * 3 + 1),
    ("nested", {"a": {"b": [False]}}, 12 * 2 + 9 * 3 + 1),
    # A list's strings before a container are charged before it is entered.
    ("list-then-record", ["abcd", {"k": "v"}], 12 * 6 + 9 * 3 + 1),
    ("record-of-null-and-bool", {"k": None, "f": True}, 12 * 2 + 9 * 2 + 1),
    ("astral", {"\U0001f600": "\u202e"}, 12 * 2 + 9 + 1),
    ("empty", {}, 1),
    ("identity", ASSUMED_ROLE, 4840),
]


@pytest.mark.usefixtures("general_path_forbidden")
@pytest.mark.parametrize(("value", "budget"), [c[1:] for c in KEPT], ids=[c[0] for c in KEPT])
def test_small_records_that_surely_fit_are_kept_as_they_are(value, budget):
    assert ctx.json_safe(value, max_chars=budget) is value


@pytest.mark.parametrize(("value", "budget"), [c[1:] for c in KEPT], ids=[c[0] for c in KEPT])
def test_one_character_less_and_the_general_path_decides(general_path_calls, value, budget):
    assert ctx.json_safe(value, max_chars=budget - 1) == GENERAL_PATH(value, budget - 1, 64, 8)[0]
    assert general_path_calls[0] is value


class EqualToAnything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return "<equal to anything>"


EQUAL_TO_ANYTHING = EqualToAnything()

NOT_KEPT = [
    # Items and depth at their bounds are kept; one more and the general path cuts.
    ("items", ["a"] * 3, {"max_items": 2}, ["a", "a", f"{ctx.TRUNCATED} 1 more items"]),
    ("depth", {"a": {"b": None}}, {"max_depth": 1}, {"a": ctx.TRUNCATED}),
    ("no-depth", {"a": "b"}, {"max_depth": 0}, ctx.TRUNCATED),
    ("negative-depth", {"a": "b"}, {"max_depth": -1}, ctx.TRUNCATED),
    # Anything but str keys, str, None, bool, dict and list.
    ("int", {"a": 1}, {}, {"a": 1}),
    ("float", [1.5], {}, [1.5]),
    ("key-no-str", {1: "x"}, {}, {"1": "x"}),
    ("str-subclass", [Name.GET], {}, ["GetObject"]),
    ("tuple-inside", [("a",)], {}, [["a"]]),
    # Only None is null, whatever an object says it equals.
    ("equal-to-anything", [EQUAL_TO_ANYTHING], {}, [repr(EQUAL_TO_ANYTHING)]),
    ("equal-to-anything-in-a-dict", {"a": EQUAL_TO_ANYTHING}, {}, {"a": repr(EQUAL_TO_ANYTHING)}),
]


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [c[1:] for c in NOT_KEPT],
    ids=[c[0] for c in NOT_KEPT],
)
def test_other_records_go_the_general_way(general_path_calls, value, options, expected):
    assert ctx.json_safe(value, **options) == expected
    assert general_path_calls[0] is value


@pytest.mark.usefixtures("general_path_forbidden")
@pytest.mark.parametrize(
    ("value", "options"), [(["a"] * 2, {"max_items": 2}), ({"a": {}}, {"max_depth": 2})]
)
def test_records_at_their_bounds_are_kept_as_they_are(value, options):
    assert ctx.json_safe(value, **options) is value


# --- the context's scalar fields ---------------------------------------------------------------
# A str of at most 85 characters takes at most 85 * 12 + 2 = 1022 characters of JSON: kept
# without a call to json_safe. One more, and it goes through json_safe, which measures it.


@pytest.fixture
def json_safe_calls(monkeypatch):
    calls = []
    general = ctx.json_safe

    def spied(value, **options):
        calls.append(value)
        return general(value, **options)

    monkeypatch.setattr(ctx, "json_safe", spied)
    return calls


@pytest.mark.parametrize("length", [1, ctx.SHORT_TEXT_CHARS], ids=["one", "at-the-bound"])
def test_short_fields_are_kept_without_json_safe(json_safe_calls, length):
    name = "\U0001f600" * length
    context = ctx.network_activity_context({"eventName": name, "errorCode": None})
    assert context["eventName"] is name
    assert context["errorCode"] is None
    assert not any(value is name for value in json_safe_calls)


def test_a_field_one_character_longer_is_measured_and_cut(json_safe_calls):
    name = "\U0001f600" * (ctx.SHORT_TEXT_CHARS + 1)
    context = ctx.network_activity_context({"eventName": name})
    assert any(value is name for value in json_safe_calls)
    # 86 * 12 + 2 = 1034 characters of JSON: cut to 1022 // 12 = 85 characters, marker included.
    assert context["eventName"] == "\U0001f600" * (85 - len(ctx.TRUNCATED)) + ctx.TRUNCATED
    assert ctx.SHORT_TEXT_CHARS == 85


def test_a_field_equal_to_anything_is_no_null():
    context = ctx.network_activity_context({"errorCode": EQUAL_TO_ANYTHING})
    assert context["errorCode"] == repr(EQUAL_TO_ANYTHING)
    json.dumps(context, allow_nan=False)


def test_the_context_reads_a_panther_event_through_its_dict_alone():
    record = {
        "eventName": "GetObject",
        "vpcEndpointAccountId": "123456789012",
        "userIdentity": {"type": "AWSAccount", "principalId": "P", "accountId": "777788889999"},
    }
    context = ctx.network_activity_context(RawViewOnly(record))
    assert context["eventName"] == "GetObject"
    assert context["userAgent"] is None
    assert context["userIdentity"] == record["userIdentity"]
    assert context["crossAccount"] is True


def test_the_enrichment_context_is_cut_at_4_kib():
    # As FITTING counts: 4 KiB less the slot (2), the quoted key (5) and the value's quotes.
    room = 4096 - 2 - len('"asn"') - 2
    fits = {"asn": "x" * room}
    assert ctx.enrichment_context(fits) == fits
    over = ctx.enrichment_context({"asn": "x" * (room + 1)})
    assert over["asn"].endswith(ctx.TRUNCATED)
    assert ctx.enrichment_context(None) is None
