"""Fuzz: no rule function or helper raises, and every output keeps Panther's contract.

Each property runs on CloudTrail-shaped events from ``strategies.py`` three ways: as the plain
dict a unit test passes, as the ``PantherEvent`` Panther hands a rule, and through
``panther_core``'s engine itself. Settings come from ``hypothesis_profiles.py`` (derandomized in
CI). Inputs that ever broke something stay pinned below as ``@example``s.
"""

import contextlib
import ipaddress
import json
import math
from collections.abc import Mapping
from unittest import mock

import address_history
import cloudtrail_context
import cloudtrail_fields
import ip_enrichment
import public_ip
import pytest
import vpce_family
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz_settings
from panther_core.enriched_event import PantherEvent
from repo import (
    BULK_RULE_FILE,
    BULK_RULE_ID,
    REPO_ROOT,
    RULE_FILE,
    RULE_ID,
    engine_errors,
    load_module,
    panther_engine,
)
from strategies import (
    FIELD_NAMES,
    address_strings,
    any_events,
    canonical_events,
    cloudtrail_events,
    error_codes,
    event_names,
    family_events,
    nested_junk,
    one_in,
    request_parameters,
    resource_lists,
    s3_events,
)

from detection_replay.kv_store import KeyValueStore

RULE = load_module(RULE_FILE, "aws_vpce_s3_external_ip_under_fuzz")
BULK_RULE = load_module(BULK_RULE_FILE, "aws_vpce_s3_external_ip_bulk_access_under_fuzz")
FAMILY_FILES = {
    "access-denied": "aws_vpce_access_denied",
    "external-principal": "aws_vpce_external_principal",
    "sensitive-api-calls": "aws_vpce_sensitive_api_calls",
    "many-secrets-read": "aws_vpce_many_secrets_read",
}
RULES = {
    "per-event": RULE,
    "bulk": BULK_RULE,
    **{
        name: load_module(REPO_ROOT / "rules" / f"{stem}.py", f"{stem}_under_fuzz")
        for name, stem in FAMILY_FILES.items()
    },
}


ENGINE_RULES = {
    name: panther_engine(rule_id)
    for name, rule_id in [
        ("per-event", RULE_ID),
        ("bulk", BULK_RULE_ID),
        ("access-denied", "AWS.CloudTrail.VPCE.AccessDenied"),
        ("external-principal", "AWS.CloudTrail.VPCE.ExternalPrincipal"),
        ("sensitive-api-calls", "AWS.CloudTrail.VPCE.SensitiveAPICalls"),
        ("many-secrets-read", "AWS.CloudTrail.VPCE.ManySecretsRead"),
    ]
}

PANTHER_FIELD_LIMIT = 1000  # characters Panther keeps of a title or dedup string
CONTEXT_LIMIT = 64 * 1024  # ours; Panther drops a context over 200 KiB
SEVERITIES = {"LOW", "MEDIUM", "HIGH", "CRITICAL", "DEFAULT"}

# Hostile events worth keeping whatever the generator draws (a matching record with every
# other field broken, non-finite numbers, integers too long for str(), huge and odd strings).
MATCHING = {
    "eventType": "AwsVpceEvent",
    "eventCategory": "NetworkActivity",
    "eventSource": "s3.amazonaws.com",
    "eventName": "GetObject",
    "sourceIPAddress": "8.8.8.8",
}
PINNED_EVENTS = [
    {},
    MATCHING,
    {**MATCHING, "userIdentity": None, "resources": "arn:aws:s3:::b/k", "errorCode": math.nan},
    {**MATCHING, "userIdentity": {"type": "AWSAccount", "principalId": 10**4299}},
    {**MATCHING, "userIdentity": {"type": ["AWSAccount"], "accountId": math.inf}},
    {**MATCHING, "userIdentity": {"type": "AssumedRole", "arn": "arn:"}},
    {**MATCHING, "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/"}},
    {**MATCHING, "userIdentity": {"type": "Root", "userName": "\U0001f600" * 70_000}},
    {**MATCHING, "requestParameters": {"bucketName": "\x00\u202e" * 50_000}},
    {
        **MATCHING,
        "resources": [None, {"ARN": 7}, {"arn": "arn:aws:s3:::"}, {"ARN": "arn:aws:s3:::b"}],
    },
    {**MATCHING, "userAgent": "\x1b" * 300_000, "awsRegion": -(2**14000)},
    {**MATCHING, "sourceIPAddress": " ::ffff:8.8.8.8\t", "errorCode": "VpceAccessDenied"},
    {**MATCHING, "sourceIPAddress": 134744072},
    {**MATCHING, "eventName": ["GetObject"], "vpcEndpointAccountId": {"x": [math.nan] * 100}},
    {**MATCHING, "EVENTNAME": "DeleteObject", "eventName": "DeleteObject"},
    {
        **MATCHING,
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "requestParameters": {"secretId": "arn:aws:secretsmanager:::secret:" + "\x00" * 70_000},
        "resources": [{"ARN": "arn:aws:secretsmanager:::secret:-Xy7Qp2"}, {"ARN": None}],
        "eventID": ["not", "text"],
    },
    # Found by the dict-vs-PantherEvent property: PantherEvent reads this key as sourceIPAddress.
    {"SourceIpAddress": []},
]


def pinned_events(test):
    for event in PINNED_EVENTS:
        test = example(event=event)(test)
    return test


# --- contracts: each takes the output and a label naming what produced it ----------------------


def is_real_bool(value, what):
    assert type(value) is bool, f"{what} returned {value!r}, not a bool"


def is_bounded_str(value, what):
    assert type(value) is str, f"{what} returned {value!r}, not a str"
    assert len(value) <= PANTHER_FIELD_LIMIT, f"{what} returned {len(value)} characters"


def is_severity(value, what):
    assert value in SEVERITIES, f"{what} returned {value!r}"


def is_bounded_context(value, what):
    assert isinstance(value, dict), f"{what} returned {type(value)}"
    encoded = json.dumps(value, allow_nan=False)  # no custom encoder: plain JSON values only
    assert len(encoded) <= CONTEXT_LIMIT, f"{what} is {len(encoded)} characters of JSON"


def is_optional_str(value, what):
    assert value is None or (type(value) is str and value), f"{what} returned {value!r}"


def is_error_kind(value, what):
    assert value in {None, "denied", "failed"}, f"{what} returned {value!r}"


def is_optional_json_object(value, what):
    assert value is None or isinstance(value, dict), f"{what} returned {type(value)}"
    json.dumps(value, allow_nan=False)
    if value is not None:
        label = ip_enrichment.owner_label(value)
        assert label is None or (type(label) is str and label), f"owner_label gave {label!r}"


def is_optional_epoch(value, what):
    assert value is None or (type(value) is int and value > 0), f"{what}: {value!r}"


def is_optional_bool(value, what):
    assert value is None or type(value) is bool, f"{what} returned {value!r}"


def is_actor_name(value, what):
    is_bounded_str(value, what)
    assert value, f"{what} returned an empty name"


RULE_FUNCTION_CONTRACTS = {
    "rule": is_real_bool,
    "title": is_bounded_str,
    "dedup": is_bounded_str,
    "severity": is_severity,
    "alert_context": is_bounded_context,
    "unique": is_bounded_str,  # the threshold rules'
}
EVENT_HELPER_CONTRACTS = {
    cloudtrail_fields.actor: is_actor_name,
    cloudtrail_fields.bucket_name: is_optional_str,
    cloudtrail_fields.secret_name: is_optional_str,
    cloudtrail_fields.record_id: is_bounded_str,
    cloudtrail_fields.caller_account: is_optional_str,
    cloudtrail_fields.principal: is_optional_str,
    cloudtrail_fields.identity_type: is_optional_str,
    cloudtrail_fields.is_cross_account: is_optional_bool,
    cloudtrail_context.network_activity_context: is_bounded_context,
    cloudtrail_fields.session_name: is_optional_str,
    cloudtrail_fields.error_kind: is_error_kind,
    ip_enrichment.source_ip_profile: is_optional_json_object,
    address_history.event_epoch: is_optional_epoch,
    cloudtrail_fields.caller_id: is_bounded_str,
    cloudtrail_fields.caller_name: is_actor_name,
    cloudtrail_fields.source_address: is_actor_name,
    vpce_family.is_external_s3_data_access: is_real_bool,
}
EVENT_VIEWS = {"plain_dict": dict, "panther_event": PantherEvent}


# --- the rule's functions, called directly --------------------------------------------------------
# One property per view runs every function on each event (an exception's traceback and each
# assertion name the function): drawing events is the cost, so each is used for all six.


def functions_of(rule):
    return {
        name: contract for name, contract in RULE_FUNCTION_CONTRACTS.items() if hasattr(rule, name)
    }


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
@pytest.mark.parametrize("view", EVENT_VIEWS.values(), ids=EVENT_VIEWS.keys())
@fuzz_settings()
@given(event=cloudtrail_events)
@pinned_events
def test_every_rule_function_keeps_its_contract(rule, view, event):
    with fresh_store():
        for name, contract in functions_of(rule).items():
            contract(getattr(rule, name)(view(event)), what=name)


@pytest.mark.parametrize(
    ("rule", "events", "severities"),
    [
        (RULE, s3_events, {(True, "LOW"), (True, "HIGH"), (True, "DEFAULT"), (False, "DEFAULT")}),
        (BULK_RULE, s3_events, {(True, "CRITICAL"), (True, "MEDIUM"), (False, "CRITICAL")}),
        (RULES["access-denied"], family_events, {(True, "LOW"), (True, "MEDIUM")}),
        (
            RULES["external-principal"],
            family_events,
            {(True, "LOW"), (True, "DEFAULT"), (True, "HIGH")},
        ),
        (
            RULES["sensitive-api-calls"],
            family_events,
            {(True, "LOW"), (True, "DEFAULT"), (True, "HIGH")},
        ),
        (RULES["many-secrets-read"], family_events, {(True, "MEDIUM"), (True, "HIGH")}),
    ],
    ids=RULES.keys(),
)
def test_the_generator_reaches_every_severity_and_both_answers(rule, events, severities):
    """The events drawn must actually get deep into the rule, or the fuzz proves little (each
    strategy is one half of cloudtrail_events)."""
    seen = set()

    @fuzz_settings(max_examples=500)
    @given(event=events)
    def record(event):
        with fresh_store():
            seen.add((rule.rule(event), rule.severity(event)))

    record()
    assert severities <= seen


def reads_the_same_in_any_case(value):
    """No mapping inside value holds a key PantherEvent would read differently from a dict.

    PantherEvent looks keys up case-insensitively, so 'SourceIpAddress' is sourceIPAddress to it
    but not to a dict (the engine's semantics, not the rule's).
    """
    if isinstance(value, dict):
        lowered = [key.lower() for key in value]
        canonical = {name.lower(): name for name in FIELD_NAMES}
        return (
            len(set(lowered)) == len(lowered)
            and all(canonical.get(key.lower(), key) == key for key in value)
            and all(reads_the_same_in_any_case(item) for item in value.values())
        )
    if isinstance(value, list):
        return all(reads_the_same_in_any_case(item) for item in value)
    return True


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
@fuzz_settings()
@given(event=canonical_events)
@pinned_events
def test_plain_dict_and_panther_event_get_the_same_outputs(rule, event):
    assume(reads_the_same_in_any_case(event))
    for name in functions_of(rule):
        function = getattr(rule, name)
        with fresh_store():
            as_dict = function(event)
        with fresh_store():
            assert as_dict == function(PantherEvent(event)), name


@contextlib.contextmanager
def fresh_store():
    """The per-event rule's baseline in an empty key-value store (the replay's), so two calls
    compare."""
    store = KeyValueStore()
    with mock.patch.multiple(
        RULE, get_string_set=store.get_string_set, put_string_set=store.put_string_set
    ):
        yield


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
@fuzz_settings()
@given(
    event=cloudtrail_events,
    later=st.fixed_dictionaries(
        {},
        optional={
            "eventName": event_names,
            "requestParameters": request_parameters,
            "resources": resource_lists,
            "errorCode": error_codes,
            "eventTime": nested_junk,
        },
    ),
)
def test_dedup_ignores_the_operation_and_the_objects_within_a_severity(rule, event, later):
    """One alert per caller, outside address and severity, whatever objects or operations follow;
    an event of another severity opens an alert of its own."""
    with fresh_store():
        first = (rule.dedup(event), rule.severity(event))
    with fresh_store():
        then = (rule.dedup({**event, **later}), rule.severity({**event, **later}))
    assert (first[0] == then[0]) is (first[1] == then[1])


# --- the same through panther_core's engine -----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINE_RULES.values(), ids=ENGINE_RULES.keys())
def test_engine_loads_the_rule(engine):
    assert engine.setup_exception is None


@pytest.mark.parametrize("engine", ENGINE_RULES.values(), ids=ENGINE_RULES.keys())
@fuzz_settings()
@given(event=cloudtrail_events)
@pinned_events
def test_engine_runs_every_function_without_error(engine, event):
    result = engine.run(PantherEvent(event), {}, {}, batch_mode=False)
    assert engine_errors(result) == {}
    is_real_bool(result.detection_output, "rule")
    is_bounded_str(result.title_output, "title")
    is_bounded_str(result.dedup_output, "dedup")
    assert result.severity_output in {"LOW", "MEDIUM", "HIGH", "CRITICAL"}, result.severity_output
    context = json.loads(result.alert_context_output)
    assert "_error" not in context, context
    assert len(result.alert_context_output) <= CONTEXT_LIMIT


# --- helpers that read an event -----------------------------------------------------------------


@pytest.mark.parametrize("view", EVENT_VIEWS.values(), ids=EVENT_VIEWS.keys())
@fuzz_settings()
@given(event=cloudtrail_events)
@pinned_events
def test_every_event_helper_keeps_its_contract(view, event):
    for helper, contract in EVENT_HELPER_CONTRACTS.items():
        contract(helper(view(event)), what=helper.__name__)


@fuzz_settings()
@given(value=nested_junk)
@example(value=[{"userIdentity": {"type": "AWSAccount"}}])
@example(value="userIdentity")
def test_every_event_helper_survives_a_value_that_is_no_event(value):
    for helper, contract in EVENT_HELPER_CONTRACTS.items():
        contract(helper(value), what=helper.__name__)


FIELD_KEYS = st.sampled_from(
    ["userIdentity", "type", "sessionContext", "sessionIssuer", "userName", "resources", "ARN"]
)


@fuzz_settings()
@given(event=any_events, path=st.lists(FIELD_KEYS | st.text(max_size=5), max_size=4))
@example(event={"a": {"b": None}}, path=["a", "b", "c"])
def test_field_never_raises(event, path):
    cloudtrail_fields.field(event, *path)
    if isinstance(event, dict):
        cloudtrail_fields.field(PantherEvent(event), *path)


def through_its_own_lookups(event, path):
    """field(event, *path) as the event's own .get answers it at every step."""
    value = event
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


# Names the helpers read, as CloudTrail spells them and in the other cases a parser might give.
ANY_CASE_KEYS = st.builds(
    lambda name, spelling: spelling(name),
    st.sampled_from(sorted(FIELD_NAMES | {"userIdentity", "p_enrichment", "p_event_time"})),
    st.sampled_from([str, str.lower, str.upper, str.title]),
)


@fuzz_settings()
@given(
    event=cloudtrail_events,
    path=st.lists(ANY_CASE_KEYS | st.text(max_size=5), max_size=4),
    stray=st.dictionaries(ANY_CASE_KEYS, nested_junk, max_size=3),
)
@example(event={"userIdentity": {"Type": "Root"}}, path=["userIdentity", "type"], stray={})
@example(event={"a": {"b": 1}}, path=["A", "B"], stray={})
@example(event={}, path=["x"], stray={})
def test_field_of_a_panther_event_answers_as_its_own_lookups(event, path, stray):
    """Its reads through the wrapped dict (hits, and keys missing in every case) change nothing."""
    wrapped = PantherEvent({**stray, **event})
    found = cloudtrail_fields.field(wrapped, *path)
    expected = through_its_own_lookups(wrapped, path)
    assert found is expected or found == expected


@fuzz_settings()
@given(
    event=cloudtrail_events,
    names=st.lists(ANY_CASE_KEYS, max_size=6),
    stray=st.dictionaries(ANY_CASE_KEYS, nested_junk, max_size=3),
)
def test_top_level_fields_copy_out_as_field_reads(event, names, stray):
    """Read in one go, and unwrapped: what a JSON copy of each makes is what field() finds."""
    wrapped = PantherEvent({**stray, **event})
    record = cloudtrail_fields.record_of(wrapped)
    found = [cloudtrail_fields.top_level_field(record, wrapped, name) for name in names]
    expected = [cloudtrail_fields.field(wrapped, name) for name in names]
    copy = cloudtrail_context.json_safe
    assert [copy(value) for value in found] == [copy(value) for value in expected]


@pytest.mark.parametrize("view", EVENT_VIEWS.values(), ids=EVENT_VIEWS.keys())
@fuzz_settings()
@given(event=cloudtrail_events)
@pinned_events
def test_the_context_reads_each_field_as_the_helpers_do(view, event):
    """The context reads the event's dict itself: what it says agrees with the helpers."""
    context = cloudtrail_context.network_activity_context(view(event))
    assert context["crossAccount"] is cloudtrail_fields.is_cross_account(view(event))
    assert context["actor_user"] == cloudtrail_fields.actor(view(event))


@fuzz_settings()
@given(value=nested_junk)
def test_text_is_a_non_empty_str_or_none(value):
    result = cloudtrail_fields.text(value)
    is_optional_str(result, "text")
    assert result is None or result is value


@fuzz_settings()
@given(
    value=one_in(2, nested_junk, any_events),
    max_chars=st.sampled_from([0, 1, 64, 1024, 16 * 1024]),
)
@example(value=10**4299, max_chars=1024)
@example(value=[math.nan, -math.inf], max_chars=1024)
@example(value="\x00" * 100_000, max_chars=16)
def test_json_safe_is_plain_json_within_a_margin_of_its_budget(value, max_chars):
    encoded = json.dumps(cloudtrail_context.json_safe(value, max_chars=max_chars), allow_nan=False)
    # The budget is approximate (a truncation marker or one container per level may overrun).
    assert len(encoded) <= max_chars + 2048


# --- the address classifier ---------------------------------------------------------------------

IS_EXTERNAL = public_ip.external_address_check(["8.8.8.0/24", "2600:1f18::/32"])


@fuzz_settings()
@given(value=address_strings | nested_junk)
@example(value="fe80::1%")
@example(value="::ffff:08.8.8.8")
@example(value="1" * 5000)
def test_address_helpers_keep_their_contracts(value):
    public = public_ip.is_public_ip(value)
    is_real_bool(public, "is_public_ip")
    parsed = public_ip.ip_address(value)
    assert parsed is None or isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address)
    assert public is False or parsed is not None
    if parsed is not None:
        carried = public_ip.embedded_ipv4(parsed)
        assert carried is None or isinstance(carried, ipaddress.IPv4Address)
    external = IS_EXTERNAL(value)
    is_real_bool(external, "external_address_check(...)")
    assert not external or public  # external implies public
