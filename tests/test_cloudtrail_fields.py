"""Actor, caller, bucket and event-name extraction from every userIdentity and resource shape."""

import json
from types import MappingProxyType

import cloudtrail_fields as fields
import pytest
from identities import CALLERS
from panther_core.enriched_event import PantherEvent
from raw_view import RawViewOnly

OWNER = "123456789012"
OTHER = "777788889999"

ASSUMED_ROLE = {
    "type": "AssumedRole",
    "principalId": "AROAIOSFODNN7EXAMPLE:etl-nightly",
    "arn": f"arn:aws:sts::{OWNER}:assumed-role/DataPipeline/etl-nightly",
    "accountId": OWNER,
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "arn": f"arn:aws:iam::{OWNER}:role/DataPipeline",
            "accountId": OWNER,
            "userName": "DataPipeline",
        }
    },
}

ACTOR_CASES = [
    ("assumed role names the role", ASSUMED_ROLE, "DataPipeline"),
    (
        "assumed role without session context: role from the ARN",
        {"type": "AssumedRole", "arn": f"arn:aws:sts::{OWNER}:assumed-role/Admin/jdoe"},
        "Admin",
    ),
    (
        "assumed role with only a principal",
        {"type": "AssumedRole", "principalId": "AROAEXAMPLE:jdoe"},
        "AROAEXAMPLE:jdoe",
    ),
    (
        "IAM user by user name",
        {"type": "IAMUser", "userName": "ci-deployer", "arn": f"arn:aws:iam::{OWNER}:user/x"},
        "ci-deployer",
    ),
    (
        "IAM user by ARN when the name is missing",
        {"type": "IAMUser", "arn": f"arn:aws:iam::{OWNER}:user/division/alice"},
        "alice",
    ),
    (
        "seed's IAM user with only a principal",
        {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": "012345678901"},
        "AIDAEXAMPLE",
    ),
    (
        "redacted cross-account caller names principal and account",
        {"type": "AWSAccount", "principalId": "AKIAI44QH8DHBEXAMPLE", "accountId": OTHER},
        f"AKIAI44QH8DHBEXAMPLE in account {OTHER}",
    ),
    (
        "redacted caller without a principal",
        {"type": "AWSAccount", "accountId": OTHER},
        f"<unknown> in account {OTHER}",
    ),
    (
        "root",
        {"type": "Root", "accountId": OWNER, "principalId": OWNER},
        f"root of account {OWNER}",
    ),
    ("AWS service", {"type": "AWSService", "invokedBy": "s3.amazonaws.com"}, "s3.amazonaws.com"),
    (
        "federated user by its issuer",
        {
            "type": "FederatedUser",
            "principalId": f"{OWNER}:bob",
            "sessionContext": {"sessionIssuer": {"userName": "bob-issuer"}},
        },
        "bob-issuer",
    ),
    (
        "Identity Center user",
        {"type": "IdentityCenterUser", "onBehalfOf": {"userId": "9067-example"}},
        "9067-example",
    ),
    ("unknown type falls back to any name", {"type": "NewType", "userName": "n"}, "n"),
    ("no type at all", {"principalId": "AIDAEXAMPLE"}, "AIDAEXAMPLE"),
    ("empty identity", {}, "<unknown>"),
    ("identity is a string", "AIDAEXAMPLE", "<unknown>"),
    ("identity is a list", [{"type": "IAMUser", "userName": "x"}], "<unknown>"),
    ("identity is null", None, "<unknown>"),
    (
        "names of the wrong type",
        {"type": 5, "userName": ["a"], "principalId": {"a": 1}},
        "<unknown>",
    ),
    ("ARN that is only a prefix", {"type": "IAMUser", "arn": "arn:"}, "arn:"),
    (
        "assumed-role ARN without a role name",
        {"type": "AssumedRole", "arn": f"arn:aws:sts::{OWNER}:assumed-role"},
        "assumed-role",
    ),
    (
        "a colon inside the ARN's resource part is kept",
        {"type": "IAMUser", "arn": f"arn:aws:iam::{OWNER}:user/a:b"},
        "a:b",
    ),
    (
        "only the exact resource type assumed-role names the role",
        {"type": "AssumedRole", "arn": f"arn:aws:sts::{OWNER}:Assumed-Role/Admin/jdoe"},
        "jdoe",
    ),
    (
        "only the ARN field is read as an ARN",
        {"type": "IAMUser", "userName": "arn:aws:iam::x:user/alice"},
        "arn:aws:iam::x:user/alice",
    ),
]


@pytest.mark.parametrize(
    ("case", "identity", "expected"), ACTOR_CASES, ids=[c[0] for c in ACTOR_CASES]
)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_actor(case, identity, expected, wrap):
    assert fields.actor(wrap({"userIdentity": identity})) == expected


def test_actor_is_bounded():
    huge = {"type": "AWSAccount", "principalId": "P" * 10_000, "accountId": "A" * 10_000}
    shown = fields.actor({"userIdentity": huge})
    assert len(shown) <= 2 * fields.MAX_NAME_CHARS + len(" in account ")


BUCKET_CASES = [
    ("requestParameters wins", {"requestParameters": {"bucketName": "a"}, "resources": []}, "a"),
    (
        "object ARN in resources",
        {"resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::logs-prod/2026/x.gz"}]},
        "logs-prod",
    ),
    ("bucket ARN in resources", {"resources": [{"ARN": "arn:aws:s3:::logs-prod"}]}, "logs-prod"),
    (
        "first S3 ARN after a non-S3 one",
        {"resources": [{"ARN": "arn:aws:kms:us-east-1:1:key/k"}, {"ARN": "arn:aws:s3:::b2/k"}]},
        "b2",
    ),
    ("GovCloud partition", {"resources": [{"ARN": "arn:aws-us-gov:s3:::gov-b/k"}]}, "gov-b"),
    ("lower-case arn key", {"resources": [{"arn": "arn:aws:s3:::lower"}]}, "lower"),
    (
        "access point ARN is not a bucket",
        {"resources": [{"ARN": "arn:aws:s3:us-east-1:123456789012:accesspoint/ap"}]},
        None,
    ),
    ("real network activity record: nothing", {"eventName": "GetObject"}, None),
    ("empty bucket name falls through", {"requestParameters": {"bucketName": ""}}, None),
    ("bucket name of the wrong type", {"requestParameters": {"bucketName": ["a"]}}, None),
    ("requestParameters is a string", {"requestParameters": "bucketName=a"}, None),
    ("resources is a string", {"resources": "arn:aws:s3:::a"}, None),
    ("resources is a dict", {"resources": {"ARN": "arn:aws:s3:::a"}}, None),
    ("resource entries of odd types", {"resources": [None, 1, "x", [], {"ARN": 5}]}, None),
]


@pytest.mark.parametrize(
    ("case", "event", "expected"), BUCKET_CASES, ids=[c[0] for c in BUCKET_CASES]
)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_bucket_name(case, event, expected, wrap):
    assert fields.bucket_name(wrap(event)) == expected


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db/password-Xy7Qp2"
SECRET_CASES = [
    (
        "secretId as a name",
        {"requestParameters": {"secretId": "prod/db/password"}},
        "prod/db/password",
    ),
    (
        "secretId as a full ARN: its name",
        {"requestParameters": {"secretId": SECRET_ARN}},
        "prod/db/password",
    ),
    (
        "secretId as a partial ARN (no random suffix)",
        {"requestParameters": {"secretId": SECRET_ARN[:-7]}},
        "prod/db/password",
    ),
    (
        "GovCloud partition",
        {
            "requestParameters": {
                "secretId": "arn:aws-us-gov:secretsmanager:us-gov-west-1:1:secret:g-AbCdEf"
            }
        },
        "g",
    ),
    (
        "first secret ARN in resources, after an S3 one",
        {"resources": [{"ARN": "arn:aws:s3:::b/k"}, {"ARN": SECRET_ARN}]},
        "prod/db/password",
    ),
    (
        "secretId wins over resources",
        {"requestParameters": {"secretId": "a"}, "resources": [{"ARN": SECRET_ARN}]},
        "a",
    ),
    ("real network activity record: nothing", {"eventName": "GetSecretValue"}, None),
    ("resources without a secret ARN", {"resources": [{"ARN": "arn:aws:s3:::b/k"}]}, None),
    ("empty secretId falls through", {"requestParameters": {"secretId": ""}}, None),
    ("secretId of the wrong type", {"requestParameters": {"secretId": ["a"]}}, None),
    ("resources is a string", {"resources": SECRET_ARN}, None),
    (
        "a name of 5,000 characters is cut",
        {"requestParameters": {"secretId": "s" * 5000}},
        "s" * 1000,
    ),
]


@pytest.mark.parametrize(
    ("case", "event", "expected"), SECRET_CASES, ids=[c[0] for c in SECRET_CASES]
)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_secret_name(case, event, expected, wrap):
    assert fields.secret_name(wrap(event)) == expected


RECORD = {"eventID": "0044c3d4-1e2f-4a5b-9c8d-EXAMPLE00044", "eventName": "GetSecretValue"}


@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_record_id_is_the_event_id_cut_to_panthers_limit(wrap):
    assert fields.record_id(wrap(RECORD)) == RECORD["eventID"]
    assert fields.record_id(wrap({"eventID": "x" * 5000})) == "x" * 1000


@pytest.mark.parametrize("missing", [None, "", 7, ["id"]], ids=["none", "empty", "number", "list"])
def test_a_record_without_a_usable_event_id_is_named_by_its_content(missing):
    record = {**RECORD, "eventID": missing}
    reordered = dict(reversed(record.items()))
    found = fields.record_id(record)
    assert found.startswith("sha256:")
    assert len(found) == len("sha256:") + 64
    assert found == fields.record_id(PantherEvent(record)) == fields.record_id(reordered)
    assert found != fields.record_id({**record, "eventName": "BatchGetSecretValue"})
    # Keys JSON cannot sort still name the record.
    assert fields.record_id({1: "a", "b": 2}).startswith("sha256:")


CROSS_ACCOUNT_CASES = [
    ("same account", {"userIdentity": {"accountId": OWNER}, "vpcEndpointAccountId": OWNER}, False),
    ("other account", {"userIdentity": {"accountId": OTHER}, "vpcEndpointAccountId": OWNER}, True),
    (
        "other account, numbered lower",
        {"userIdentity": {"accountId": OWNER}, "vpcEndpointAccountId": OTHER},
        True,
    ),
    (
        "same account, as parsed from JSON (equal, not identical, strings)",
        json.loads(
            f'{{"userIdentity": {{"accountId": "{OWNER}"}}, "vpcEndpointAccountId": "{OWNER}"}}'
        ),
        False,
    ),
    ("caller account unknown", {"userIdentity": {}, "vpcEndpointAccountId": OWNER}, None),
    ("endpoint account unknown", {"userIdentity": {"accountId": OWNER}}, None),
    (
        "account of the wrong type",
        {"userIdentity": {"accountId": 1}, "vpcEndpointAccountId": 1},
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "event", "expected"), CROSS_ACCOUNT_CASES, ids=[c[0] for c in CROSS_ACCOUNT_CASES]
)
def test_is_cross_account(case, event, expected):
    assert fields.is_cross_account(event) is expected


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(0, False), (1, True), (1440, True), (1441, False), (True, False), (1.0, False)],
)
def test_positive_int_takes_whole_numbers_from_1_to_the_maximum(value, accepted):
    if accepted:
        assert fields.positive_int(value, "SETTING", 1440) == value
    else:
        with pytest.raises(ValueError, match="SETTING must be a whole number from 1 to 1440"):
            fields.positive_int(value, "SETTING", 1440)


ERROR_KINDS = [
    ("VpceAccessDenied", "denied"),
    ("AccessDenied", "denied"),
    ("KMS.AccessDenied", "denied"),  # any code ending so is a refusal
    ("AllAccessDisabled", "denied"),
    ("ExpiredToken", "denied"),
    ("InvalidAccessKeyId", "denied"),
    ("InvalidToken", "denied"),
    ("SignatureDoesNotMatch", "denied"),
    ("UnauthorizedAccess", "denied"),
    ("NoSuchKey", "failed"),
    ("SlowDown", "failed"),
    (503, "failed"),  # an error all the same, if not a code this module knows
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("code", "kind"), ERROR_KINDS, ids=[str(c[0]) for c in ERROR_KINDS])
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_error_kind(code, kind, wrap):
    assert fields.error_kind(wrap({"errorCode": code})) == kind


def _assumed(**identity):
    return {"userIdentity": {"type": "AssumedRole", **identity}}


SESSION_CASES = [
    ("from the ARN", _assumed(arn=f"arn:aws:sts::{OWNER}:assumed-role/Etl/etl-1"), "etl-1"),
    ("from the principal without an ARN", _assumed(principalId="AROAEXAMPLE:etl-2"), "etl-2"),
    (
        "from the principal when the ARN has no slash",
        _assumed(arn="arn:aws:sts::assumed-role", principalId="AROAEXAMPLE:etl-3"),
        "etl-3",
    ),
    (
        "from the principal when the ARN is no string",
        _assumed(arn=7, principalId="AROAEXAMPLE:etl-4"),
        "etl-4",
    ),
    ("an ARN ending in a slash names none", _assumed(arn="arn:aws:sts::1:assumed-role/Etl/"), None),
    ("a principal without a colon names none", _assumed(principalId="AROAEXAMPLE"), None),
    ("all after the principal's first colon", _assumed(principalId="AROAEXAMPLE:a:b"), "a:b"),
    ("cut to 256 characters", _assumed(arn="role/" + "s" * 300), "s" * 256),
    (
        "not an assumed role",
        {"userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/bob"}},
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "event", "expected"), SESSION_CASES, ids=[c[0] for c in SESSION_CASES]
)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_session_name(case, event, expected, wrap):
    assert fields.session_name(wrap(event)) == expected


@pytest.mark.parametrize(
    ("event", "account", "principal", "kind"),
    [
        ({"userIdentity": ASSUMED_ROLE}, OWNER, "AROAIOSFODNN7EXAMPLE:etl-nightly", "AssumedRole"),
        ({"userIdentity": {"accountId": ""}}, None, None, None),
        ({"userIdentity": None}, None, None, None),
        ({}, None, None, None),
    ],
    ids=["full", "empty strings", "null identity", "no identity"],
)
def test_caller_account_principal_and_type(event, account, principal, kind):
    assert fields.caller_account(event) == account
    assert fields.principal(event) == principal
    assert fields.identity_type(event) == kind


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("a",), {"b": {"c": 1}}),
        (("a", "b", "c"), 1),
        (("a", "x"), None),
        (("a", "b", "c", "d"), None),
        ((), {"a": {"b": {"c": 1}}}),
    ],
)
def test_field(path, expected):
    assert fields.field({"a": {"b": {"c": 1}}}, *path) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("x", "x"), ("", None), (None, None), (0, None), (["x"], None)]
)
def test_text(value, expected):
    assert fields.text(value) == expected


def test_event_names_builds_a_frozenset():
    assert fields.event_names(["GetObject", "PutObject"], "S") == frozenset(
        {"GetObject", "PutObject"}
    )
    assert fields.event_names([], "S") == frozenset()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("GetObject", "must be a list"),
        (None, "must be a list"),
        (["GetObject", 5], "5 is not a valid event name"),
        (["GetObject", ""], "'' is not a valid event name"),
        ([" GetObject"], "' GetObject' is not a valid event name"),
        ([None], "None is not a valid event name"),
    ],
    ids=["bare-string", "none", "int-entry", "empty-entry", "padded-entry", "none-entry"],
)
def test_event_names_fail_loudly_naming_the_entry(values, message):
    with pytest.raises(ValueError, match="S3_DATA_ACCESS_OPERATIONS") as error:
        fields.event_names(values, "S3_DATA_ACCESS_OPERATIONS")
    assert message in str(error.value)


# --- reading a PantherEvent without its per-lookup copies -----------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("a", "b"), "x"),
        (("n",), 7),
        (("z",), None),
        (("a", "f"), 1.5),
        # Missing in every case: answered from the dict's keys, as the event's lookups would.
        (("m",), None),
        (("a", "m"), None),
        # A key of the event's top level, looked up in a nested mapping that lacks it.
        (("a", "n"), None),
    ],
)
def test_field_reads_plain_values_of_a_panther_event_from_its_raw_view(path, expected):
    event = RawViewOnly({"a": {"b": "x", "f": 1.5}, "n": 7, "z": None})
    assert fields.field(event, *path) == expected


PANTHER_LOOKUPS = [
    # Case-insensitive, as PantherEvent reads keys, at the top and nested.
    ("top-level-key-in-another-case", {"ErrorCode": "E"}, ("errorCode",), "E"),
    ("nested-key-in-another-case", {"u": {"Type": "Root"}}, ("u", "type"), "Root"),
    ("missing", {"a": 1}, ("b",), None),
    ("missing-after-a-hit", {"b": "x"}, ("a", "b"), None),
    ("no-mapping-midway", {"a": "s"}, ("a", "b"), None),
    ("empty-path", {"a": 1}, (), {"a": 1}),
    # A key that is no str leaves the answer to the event's own lookups (which match in order).
    ("top-level-key-beside-a-non-str-key", {"ErrorCode": "E", 1: "x"}, ("errorCode",), "E"),
    ("nested-key-beside-a-non-str-key", {"u": {"Type": "Root", 1: "x"}}, ("u", "type"), "Root"),
]


@pytest.mark.parametrize(
    ("record", "path", "expected"),
    [c[1:] for c in PANTHER_LOOKUPS],
    ids=[c[0] for c in PANTHER_LOOKUPS],
)
def test_field_of_a_panther_event_answers_as_its_own_lookups(record, path, expected):
    assert fields.field(PantherEvent(record), *path) == expected


def test_field_hands_out_panther_containers_so_nested_lookups_stay_case_insensitive():
    event = PantherEvent({"u": {"Type": "Root"}, "r": [{"Arn": "arn:aws:s3:::b"}]})
    assert fields.field(event, "u").get("type") == "Root"
    assert fields.field(event, "r")[0].get("arn") == "arn:aws:s3:::b"
    assert fields.bucket_name(PantherEvent({"Resources": [{"Arn": "arn:aws:s3:::b/k"}]})) == "b"


# --- once per event ---------------------------------------------------------------------------


def test_a_panther_event_is_asked_once_for_its_actor_and_bucket():
    event = PantherEvent(
        {
            "userIdentity": {"type": "AWSAccount", "principalId": "P", "accountId": OTHER},
            "resources": [{"ARN": "arn:aws:s3:::bucket-a/key"}],
        }
    )
    # Both answers are new strings each time they are computed, so `is` shows one computation.
    assert fields.actor(event) is fields.actor(event)
    assert fields.bucket_name(event) is fields.bucket_name(event)
    assert fields.actor(event) == f"P in account {OTHER}"
    assert fields.bucket_name(event) == "bucket-a"


def test_a_panther_events_top_level_keys_are_lowercased_once_for_all_its_missing_fields(
    monkeypatch,
):
    lowered = []

    def counted(keys):
        lowered.append(sorted(keys))
        return frozenset(map(str.lower, keys))

    monkeypatch.setattr(fields, "_lowered", counted)
    event = PantherEvent({"eventName": "GetObject", "UserAgent": "aws-cli"})
    assert [fields.field(event, name) for name in ("errorCode", "userAgent", "resources")] == [
        None,
        "aws-cli",
        None,
    ]
    assert lowered == [["UserAgent", "eventName"]]
    assert fields._lowered_keys(event) is fields._lowered_keys(event)


def test_a_panther_event_is_asked_once_for_its_identity_type_and_account(monkeypatch):
    reads = []
    read = fields.field

    def counted(mapping, *path):
        reads.append(path)
        return read(mapping, *path)

    monkeypatch.setattr(fields, "field", counted)
    event = PantherEvent({"userIdentity": {"type": "AssumedRole", "accountId": OWNER}})
    answers = [fields.identity_type(event), fields.caller_account(event)]
    answers += [fields.identity_type(event), fields.caller_account(event)]
    assert answers == ["AssumedRole", OWNER, "AssumedRole", OWNER]
    assert reads == [("userIdentity", "type"), ("userIdentity", "accountId")]


def test_the_next_event_gets_its_own_answers():
    first = PantherEvent({"requestParameters": {"bucketName": "a"}})
    second = PantherEvent({"requestParameters": {"bucketName": "b"}})
    assert [fields.bucket_name(e) for e in (first, second, first)] == ["a", "b", "a"]


def test_an_equal_plain_dict_gets_no_answer_meant_for_a_panther_event():
    # Equal as mappings, but only PantherEvent reads "UserIdentity" as userIdentity.
    record = {"UserIdentity": {"type": "IAMUser", "userName": "alice"}}
    assert fields.actor(PantherEvent(record)) == "alice"
    assert fields.actor(record) == fields.UNKNOWN


def test_a_plain_dict_is_asked_afresh_since_it_may_change():
    event = {"userIdentity": {"type": "IAMUser", "userName": "alice"}}
    assert fields.actor(event) == "alice"
    event["userIdentity"] = {"type": "IAMUser", "userName": "bob"}
    assert fields.actor(event) == "bob"
    event["requestParameters"] = {"bucketName": "a"}
    assert fields.bucket_name(event) == "a"
    event["requestParameters"] = {"bucketName": "b"}
    assert fields.bucket_name(event) == "b"


def test_remembered_helpers_keep_their_names():
    assert (fields.actor.__name__, fields.bucket_name.__name__) == ("actor", "bucket_name")
    assert fields.bucket_name.__doc__.startswith("requestParameters.bucketName")


# --- top-level fields read from the event's dict ----------------------------------------------


def top_level_fields(event, names):
    record = fields.record_of(event)
    return [fields.top_level_field(record, event, name) for name in names]


TOP_LEVEL = [
    ("as-spelled", {"eventName": "G", "n": 7}, ["eventName", "n"], ["G", 7]),
    ("in-another-case", {"EventName": "G"}, ["eventName"], ["G"]),
    ("missing", {"eventName": "G"}, ["userAgent", "eventName"], [None, "G"]),
    ("null", {"errorCode": None}, ["errorCode"], [None]),
    ("nested-as-held", {"u": {"Type": "Root"}, "r": [1]}, ["u", "r"], [{"Type": "Root"}, [1]]),
]


@pytest.mark.parametrize(
    ("record", "names", "expected"), [c[1:] for c in TOP_LEVEL], ids=[c[0] for c in TOP_LEVEL]
)
def test_top_level_fields_of_a_panther_event(record, names, expected):
    assert top_level_fields(PantherEvent(record), names) == expected


def test_top_level_fields_hand_out_the_events_own_dicts_and_lists():
    event = PantherEvent({"u": {"type": "Root"}, "r": [1]})
    found = top_level_fields(event, ["u", "r"])
    assert [type(value) for value in found] == [dict, list]
    assert found[0] is event.raw_view()["u"]


def test_top_level_fields_read_a_panther_event_through_its_dict_alone():
    event = RawViewOnly({"eventName": "G", "u": {"type": "Root"}})
    assert top_level_fields(event, ["eventName", "u", "missing"]) == [
        "G",
        {"type": "Root"},
        None,
    ]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"eventName": "G", "EVENTNAME": "x"}, ["G", None]),  # a plain dict reads as spelled
        ("eventName", [None, None]),
        (None, [None, None]),
    ],
    ids=["plain-dict", "a-str", "none"],
)
def test_top_level_fields_of_anything_else_are_what_field_reads(event, expected):
    assert top_level_fields(event, ["eventName", "userAgent"]) == expected


def test_record_of_is_the_dict_to_read_as_spelled():
    event = PantherEvent({"eventName": "G"})
    assert fields.record_of(event) is event.raw_view()
    record = {"eventName": "G"}
    assert fields.record_of(record) is record
    assert fields.record_of(MappingProxyType(record)) == {}
    assert fields.record_of("eventName") == {}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (PantherEvent({"ErrorCode": "E"}), "E"),
        (PantherEvent({"eventName": "G"}), None),
        (RawViewOnly({"eventName": "G"}), None),  # answered without a lookup through the event
        ({"ErrorCode": "E"}, None),
        (MappingProxyType({"errorCode": "E"}), "E"),
        (None, None),
    ],
    ids=["other-case", "missing", "missing-no-lookup", "plain-dict", "other-mapping", "none"],
)
def test_absent_field_answers_as_field(event, expected):
    assert fields.absent_field(event, "errorCode") == expected


@pytest.mark.parametrize(
    "event",
    [
        PantherEvent({"eventType": "AwsVpceEvent"}),
        PantherEvent({"EventType": "AwsVpceEvent"}),
        PantherEvent({"eventtype": ["x"]}),
        PantherEvent({}),
        {"eventType": "AwsVpceEvent"},
        {"EventType": "AwsVpceEvent"},
        MappingProxyType({"eventType": "AwsVpceEvent"}),
        None,
    ],
)
def test_top_level_field_reads_as_field(event):
    found = fields.top_level_field(fields.record_of(event), event, "eventType")
    expected = fields.field(event, "eventType")
    assert found == expected


# --- the caller: one key and one name for every userIdentity type -------------------------------


@pytest.mark.parametrize(("identity", "key", "name"), CALLERS.values(), ids=CALLERS)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_caller_id_and_caller_name(identity, key, name, wrap):
    event = wrap({"userIdentity": identity})
    assert fields.caller_id(event) == key
    assert fields.caller_name(event) == name


@pytest.mark.parametrize(
    ("identity", "key"),
    [
        (
            {"type": "IdentityCenterUser", "accountId": OWNER, "onBehalfOf": {"userId": "u-1"}},
            f"{OWNER}:identitycenter:<unknown>:u-1",
        ),
        ({"type": "Unknown", "principalId": "", "accountId": OWNER}, f"{OWNER}:<unknown>"),
        ({"type": "Unknown", "credentialId": "c-1"}, "<unknown>:credential:c-1"),
        ({"principalId": "p" * 5000, "accountId": "a" * 5000}, f"{'a' * 256}:{'p' * 256}"),
        ({"invokedBy": ["s3.amazonaws.com"], "accessKeyId": "AKIA1"}, "<unknown>:key:AKIA1"),
        ("not an identity", "<unknown>:<unknown>"),
    ],
    ids=["identity-store-unknown", "empty-principal", "credential", "bounded", "typed", "junk"],
)
def test_caller_id_falls_back_in_order_and_stays_bounded(identity, key):
    assert fields.caller_id({"userIdentity": identity}) == key


@pytest.mark.parametrize(
    ("event", "address"),
    [
        ({"sourceIPAddress": " 198.51.100.7 "}, "198.51.100.7"),
        ({"sourceIPAddress": ""}, "<unknown>"),
        ({"sourceIPAddress": ["198.51.100.7"]}, "<unknown>"),
        ({"sourceIPAddress": "x" * 500}, "x" * 120),
        ({}, "<unknown>"),
    ],
    ids=["padded", "empty", "list", "long", "missing"],
)
def test_source_address_as_titles_show_it(event, address):
    assert fields.source_address(event) == address


@pytest.mark.parametrize(
    ("source", "service"),
    [
        ("kms.amazonaws.com", "kms"),
        ("s3.amazonaws.com", "s3"),
        (None, "<unknown>"),
        (7, "<unknown>"),
    ],
    ids=["kms", "s3", "missing", "number"],
)
def test_service_name(source, service):
    assert fields.service_name({"eventSource": source}) == service
