"""Behaviour the other test files leave open, pinned so that no mutant of it survives.

Each test states one behaviour of the rule or a helper; the mutation run (mutation/run.py) found
the gap it closes. Most are about the exact accounting of json_safe's character budget: where a
value is cut is part of what the alert context promises (bounded, and as much as fits).
"""

import enum
import math

import cloudtrail_context as ctx
import cloudtrail_fields as fields
import public_ip
import pytest
from panther_core.enriched_event import PantherEvent
from repo import yaml_test

T = ctx.TRUNCATED
LONG = "x" * 500


def cut(length, char="x"):
    """What json_safe makes of a long run of `char` given room for `length` characters."""
    return char * (length - len(T)) + T


# --- json_safe: what each value costs ----------------------------------------------------------
# A list [value, LONG] under max_chars=100: the long string gets what value left, minus 2 for
# its list slot and 2 for its quotes; so its length shows exactly what value was charged.

COSTS = [
    ("null-costs-5", [None, LONG], {}, [None, cut(89)]),
    ("bool-costs-5-not-an-ints-40", [True, LONG], {}, [True, cut(89)]),
    ("int-costs-40", [7, LONG], {}, [7, cut(54)]),
    ("float-costs-25", [1.5, LONG], {}, [1.5, cut(69)]),
    ("nan-costs-a-floats-25", [math.nan, LONG], {}, ["nan", cut(69)]),
    ("string-costs-its-json", ["ab", LONG], {}, ["ab", cut(90)]),
    ("key-costs-its-json", {"k": LONG}, {}, {"k": cut(93)}),
    ("cut-container-costs-its-marker", [[1], LONG], {"max_depth": 1}, [T, cut(78)]),
    ("huge-int-costs-its-description", [2**200, LONG], {}, ["<integer of 201 bits>", cut(71)]),
    ("other-objects-cost-their-repr", [b"raw", LONG], {}, ["b'raw'", cut(86)]),
]


@pytest.mark.parametrize(
    ("value", "options", "expected"), [c[1:] for c in COSTS], ids=[c[0] for c in COSTS]
)
def test_json_safe_charges_each_value_its_json_size(value, options, expected):
    assert ctx.json_safe(value, max_chars=100, **options) == expected


# --- json_safe: where a container stops --------------------------------------------------------
# Items are copied while budget is left: spending it to exactly 0 stops before the next item,
# 1 character more lets one more item in, even if that item then overspends it.

STOPS = [
    ("ints-spend-exactly", [1] * 4, {"max_chars": 84}, [1, 1, f"{T} 2 more items"]),
    ("ints-one-more", [1] * 4, {"max_chars": 85}, [1, 1, 1, f"{T} 1 more items"]),
    ("floats-spend-exactly", [1.5] * 4, {"max_chars": 54}, [1.5, 1.5, f"{T} 2 more items"]),
    ("floats-one-more", [1.5] * 4, {"max_chars": 55}, [1.5, 1.5, 1.5, f"{T} 1 more items"]),
    ("nulls-spend-exactly", [None] * 4, {"max_chars": 14}, [None, None, f"{T} 2 more items"]),
    ("bools-one-more", [True] * 4, {"max_chars": 15}, [True, True, True, f"{T} 1 more items"]),
    (
        "keys-spend-exactly",
        dict.fromkeys("abcd"),
        {"max_chars": 20},
        {"a": None, "b": None, T: "2 more keys"},
    ),
    (
        "keys-one-more",
        dict.fromkeys("abcd"),
        {"max_chars": 21},
        {"a": None, "b": None, "c": None, T: "1 more keys"},
    ),
    (
        "marker-spends-exactly",
        [[1], None, None],
        {"max_chars": 25, "max_depth": 1},
        [T, None, f"{T} 1 more items"],
    ),
    ("marker-one-more", [[1], None, None], {"max_chars": 26, "max_depth": 1}, [T, None, None]),
    ("overspent-before-a-container", [None, [1]], {"max_chars": 8}, [None, T]),
    ("spent-before-a-container", [None, [1]], {"max_chars": 9}, [None, T]),
    ("one-character-left-opens-a-container", [None, [1]], {"max_chars": 10}, [None, [1]]),
    ("no-items-allowed", [1, 2], {"max_items": -1}, [f"{T} 2 more items"]),
    ("no-keys-allowed", {"a": 1}, {"max_items": -1}, {T: "1 more keys"}),
    (
        "300-items-allowed",
        list(range(400)),
        {"max_chars": 10**6, "max_items": 300},
        [*range(300), f"{T} 100 more items"],
    ),
    (
        "300-keys-allowed",
        {str(n): n for n in range(400)},
        {"max_chars": 10**6, "max_items": 300},
        {**{str(n): n for n in range(300)}, T: "100 more keys"},
    ),
    (
        "64-items-by-default",
        list(range(100)),
        {"max_chars": 10**6},
        [*range(64), f"{T} 36 more items"],
    ),
]


@pytest.mark.parametrize(
    ("value", "options", "expected"), [c[1:] for c in STOPS], ids=[c[0] for c in STOPS]
)
def test_json_safe_stops_a_container_when_its_budget_is_spent(value, options, expected):
    assert ctx.json_safe(value, **options) == expected


# --- json_safe: strings and depth --------------------------------------------------------------


def nested(kind, levels, inner=1):
    value = inner
    for _ in range(levels):
        value = [value] if kind is list else {"n": value}
    return value


SHAPES = [
    ("medium-string-kept-whole", "x" * 100, {}, "x" * 100),
    ("long-string-fills-1024", "x" * 5000, {}, cut(1022)),
    ("string-cut-to-the-room-left", "x" * 100, {"max_chars": 50}, cut(48)),
    ("string-exactly-the-room-left-kept", "x" * 48, {"max_chars": 50}, "x" * 48),
    # One escaped character too many for the room is enough to take the worst-case cut.
    ("one-escape-over-the-room", "\n" + "x" * 100, {"max_chars": 50}, T),
    ("no-room-leaves-the-marker", "x" * 20, {"max_chars": 10}, T),
    # "\x00" takes 6 characters of JSON: the cut allows for the worst case, 12 per character.
    ("escapes-cut-for-12-each", "\x00" * 5000, {}, cut(1022 // 12, "\x00")),
    ("escapes-cut-at-the-floor", "\x00" * 5000, {"max_chars": 100}, T),
    ("128-bit-int-kept", 2**128 - 1, {}, 2**128 - 1),
    ("129-bit-int-described", 2**128, {}, "<integer of 129 bits>"),
    ("negative-129-bit-int-described", -(2**128), {}, "<integer of 129 bits>"),
    ("lists-8-deep-by-default", nested(list, 10), {}, nested(list, 8, T)),
    ("dicts-8-deep-by-default", nested(dict, 10), {}, nested(dict, 8, T)),
    ("lists-cut-at-max-depth", nested(list, 4), {"max_depth": 2}, nested(list, 2, T)),
    ("dicts-cut-at-max-depth", nested(dict, 4), {"max_depth": 2}, nested(dict, 2, T)),
    ("zero-depth-keeps-no-container", {"a": 1}, {"max_depth": 0}, T),
    ("negative-depth-keeps-no-container", [1], {"max_depth": -1}, T),
]


@pytest.mark.parametrize(
    ("value", "options", "expected"), [c[1:] for c in SHAPES], ids=[c[0] for c in SHAPES]
)
def test_json_safe_cuts_strings_numbers_and_depth(value, options, expected):
    assert ctx.json_safe(value, **options) == expected


# --- the alert context's budgets ---------------------------------------------------------------


def test_each_copied_event_field_is_cut_to_1024_characters_of_json():
    context = ctx.network_activity_context(
        {"eventName": "G" * 5000, "requestParameters": {"bucketName": "b" * 5000}}
    )
    assert context["eventName"] == cut(1022, "G")
    assert context["bucketName"] == cut(1022, "b")


def test_user_identity_is_cut_to_16_kib_of_json():
    context = ctx.network_activity_context({"userIdentity": {"k": "x" * 100_000}})
    # 16 KiB less 2 for the entry, 3 for the key "k" and 2 for the value's quotes.
    assert context["userIdentity"] == {"k": cut(16 * 1024 - 7)}


def test_the_overrides_report_is_cut_to_4096_characters_of_json(edited_family):
    for rule in edited_family(S3_DATA_ACCESS_OPERATIONS=["A" * 5000]):
        overrides = rule.alert_context(PantherEvent({}))["overrides"]
        # 4096 less 2 + 27 for the entry and its key, 2 for the list slot and 2 for the quotes.
        assert overrides["S3_DATA_ACCESS_OPERATIONS"] == [cut(4096 - 33, "A")]


def test_the_rules_own_overrides_report_is_cut_to_4096_characters_of_json(edited_rule):
    rule = edited_rule(HIGH_SEVERITY_OPERATIONS=["D" * 5000])
    overrides = rule.alert_context(PantherEvent({}))["overrides"]
    settings = {
        **rule.SETTINGS_IN_EFFECT,
        "HIGH_SEVERITY_OPERATIONS": ["D" * 5000],
        "FIRST_SEEN_DAYS": rule.FIRST_SEEN_DAYS,
    }
    assert overrides == ctx.json_safe(settings, max_chars=4096)
    assert overrides["HIGH_SEVERITY_OPERATIONS"][0].endswith(T)


# --- the rule: near misses ---------------------------------------------------------------------

MATCH = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]

NEAR_MISSES = [
    ("the-real-record-matches", {}, True),
    ("management-event", {"eventType": "AwsApiCall"}, False),
    ("service-event", {"eventType": "AwsServiceEvent"}, False),
    ("sts-through-an-endpoint", {"eventSource": "sts.amazonaws.com"}, False),
    ("kms-through-an-endpoint", {"eventSource": "kms.amazonaws.com"}, False),
    ("s3-outposts", {"eventSource": "s3-outposts.amazonaws.com"}, False),
    ("data-event", {"eventCategory": "Data"}, False),
    ("category-is-case-sensitive", {"eventCategory": "networkactivity"}, False),
    ("event-type-is-case-sensitive", {"eventType": "awsvpceevent"}, False),
    ("unmonitored-operation", {"eventName": "ListObjects"}, False),
    ("private-source", {"sourceIPAddress": "10.0.0.1"}, False),
]


@pytest.mark.parametrize(
    ("changes", "expected"), [c[1:] for c in NEAR_MISSES], ids=[c[0] for c in NEAR_MISSES]
)
def test_the_rule_matches_only_the_exact_values(rule_module, changes, expected):
    assert rule_module.rule(PantherEvent({**MATCH, **changes})) is expected


def test_title_parts_are_cut_to_120_characters(rule_module):
    title = rule_module.title(PantherEvent({**MATCH, "eventName": "G" * 5000}))
    assert title.startswith(f"S3 {'G' * 120} (bucket not in record)")


def test_dedup_parts_are_cut_to_256_characters(rule_module):
    identity = {"accountId": "a" * 5000, "principalId": "p" * 5000}
    dedup = rule_module.dedup(PantherEvent({**MATCH, "userIdentity": identity}))
    assert dedup == f"{'a' * 256}:{'p' * 256}:198.199.88.17:DEFAULT"


def test_actor_names_and_accounts_are_cut_to_256_characters():
    huge = {"type": "AWSAccount", "principalId": "P" * 10_000, "accountId": "A" * 10_000}
    assert fields.actor({"userIdentity": huge}) == f"{'P' * 256} in account {'A' * 256}"


def test_title_never_shows_an_empty_part(rule_module):
    title = rule_module.title(PantherEvent({**MATCH, "eventName": "", "sourceIPAddress": "  "}))
    assert title == (
        "S3 <unknown> (bucket not in record) by DataPipeline (session etl-nightly) from external "
        "IP <unknown> "
        "via VPC endpoint"
    )


# --- overrides given as str subclasses ---------------------------------------------------------


class Operation(enum.StrEnum):
    GET = "GetObject"
    PUT = "PutObject"


def test_event_names_accept_str_subclasses_such_as_enum_members():
    names = fields.event_names(list(Operation), "S3_DATA_ACCESS_OPERATIONS")
    assert names == {"GetObject", "PutObject"}


# --- the address cache -------------------------------------------------------------------------


def test_the_address_cache_holds_8192_source_strings():
    is_external = public_ip.external_address_check([])
    assert is_external.cache_info().maxsize == 8192
