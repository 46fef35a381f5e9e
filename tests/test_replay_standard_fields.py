"""Panther's standard fields on every replayed event: what they hold, that a field the record
carries is kept, and that a rule reading none of them pays nothing for them."""

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from panther_core.enriched_event import PantherEvent
from repo import REPO_ROOT
from test_replay_support import external_get, management, replay, write_jsonl

from detection_replay import standard_fields
from detection_replay.rules import load_rules
from detection_replay.standard_fields import (
    DEFAULT_SOURCE_ID,
    DEFAULT_SOURCE_LABEL,
    LogSource,
    indicators,
    panther_event_time,
    parse_time_option,
    replay_event,
    row_id,
)

PLACE = ("logs/day.json.gz", 3, 17)


def event_of(record, source=None, place=PLACE, data_model=None):
    return replay_event(record, data_model, source or LogSource(), place)


@pytest.mark.parametrize(
    ("event_time", "written"),
    [
        pytest.param("2026-11-20T09:14:03Z", "2026-11-20 09:14:03.000000000", id="CloudTrail"),
        pytest.param("2026-11-20T09:14:03.25Z", "2026-11-20 09:14:03.250000000", id="fraction"),
        pytest.param(
            "2026-11-20T09:14:03.123456789Z", "2026-11-20 09:14:03.123456789", id="nanoseconds"
        ),
        pytest.param("2026-11-20T10:14:03+01:00", "2026-11-20 09:14:03.000000000", id="offset"),
        pytest.param(
            "2026-11-20T23:59:59.5-01:30", "2026-11-21 01:29:59.500000000", id="next day in UTC"
        ),
        pytest.param("2026-11-20 09:14:03", "2026-11-20 09:14:03.000000000", id="Panther's own"),
        pytest.param("0099-01-01T00:00:00Z", "0099-01-01 00:00:00.000000000", id="year 99"),
        pytest.param("2026-02-30T00:00:00Z", None, id="30 February"),
        pytest.param("2026-11-20", None, id="a date alone"),
    ],
)
def test_p_event_time_is_the_event_time_as_panther_writes_it(event_time, written):
    assert panther_event_time(event_time) == written


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("2026-11-21T06:30:00Z", "2026-11-21 06:30:00.000000000"),
        ("2026-11-21T06:30:00+01:00", "2026-11-21 05:30:00.000000000"),
        ("2026-11-21 06:30:00.5", "2026-11-21 06:30:00.500000000"),
        ("2026-11-21", "2026-11-21 00:00:00.000000000"),
    ],
    ids=["UTC", "offset", "no zone means UTC", "a date"],
)
def test_parse_time_option(text, written):
    assert parse_time_option(text) == written


def test_row_ids_are_stable_per_place_and_differ_between_places():
    assert row_id(*PLACE) == row_id(*PLACE)
    assert len(row_id(*PLACE)) == 32
    assert int(row_id(*PLACE), 16) >= 0
    others = {row_id("logs/day.json.gz", 3, 18), row_id("logs/day.json.gz", 4, 17)}
    others |= {row_id("logs/other.json.gz", 3, 17), row_id("logs/day.json.gz\udcff", 3, 17)}
    assert row_id(*PLACE) not in others
    assert len(others) == 4


# --- indicators ----------------------------------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/DataPipeline"
SESSION = "arn:aws:sts::123456789012:assumed-role/DataPipeline/etl-nightly"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            external_get(0),
            {
                "p_any_actor_ids": ["AROAIOSFODNN7EXAMPLE", "AROAIOSFODNN7EXAMPLE:etl-nightly"],
                "p_any_aws_account_ids": ["123456789012"],
                "p_any_aws_arns": [ROLE, SESSION],
                "p_any_ip_addresses": ["198.199.88.17"],
                "p_any_trace_ids": ["ASIAIOSFODNN7EXAMPLE"],
                "p_any_usernames": ["DataPipeline"],
            },
            id="assumed role from an address",
        ),
        pytest.param(
            {
                "sourceIPAddress": " ec2.amazonaws.com ",
                "recipientAccountId": "210987654321",
                "userIdentity": {
                    "type": "IAMUser",
                    "arn": "arn:aws:iam::210987654321:user/alice",
                    "accountId": "210987654321",
                    "userName": "alice",
                    "accessKeyId": "",
                },
            },
            {
                "p_any_aws_account_ids": ["210987654321"],
                "p_any_aws_arns": ["arn:aws:iam::210987654321:user/alice"],
                "p_any_domain_names": ["ec2.amazonaws.com"],
                "p_any_usernames": ["alice"],
            },
            id="a host name, an IAM user, an empty key id",
        ),
        pytest.param(
            {
                "sourceIPAddress": "xn--bcher-kva.example",
                "resources": [
                    {"ARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc", "type": "x"},
                    {"arn": "arn:aws:s3:::bucket", "accountId": "123456789012"},
                    "not a resource",
                    {"ARN": 7, "accountId": "12345"},
                ],
            },
            {
                "p_any_aws_account_ids": ["123456789012"],
                "p_any_aws_arns": [
                    "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
                    "arn:aws:s3:::bucket",
                ],
                "p_any_aws_instance_ids": ["i-0abc"],
                "p_any_domain_names": ["bücher.example"],
            },
            id="resources, punycode",
        ),
        pytest.param(
            {
                "requestParameters": {
                    "instancesSet": {"items": [{"instanceId": "i-0123"}, {"instanceId": "x"}]},
                    "tagSpecificationSet": {
                        "items": [{"tags": [{"key": "Name", "value": "web"}, {"Key": "a"}]}]
                    },
                    "targetAccountId": "111122223333",
                    "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
                    "note": "arn:aws:too:few",
                },
                "responseElements": {
                    "instancesSet": {
                        "items": [
                            {
                                "privateIpAddress": "10.0.0.5",
                                "privateDnsName": "ip-10-0-0-5.ec2.internal",
                                "ipv6Addresses": ["2600:1f18::1", "fe80::1%eth0"],
                                "publicIp": "not an address",
                            }
                        ]
                    }
                },
                "additionalEventData": {"account": "444455556666", "tags": "team:sec"},
                "serviceEventDetails": [{"sourceIPAddress": "203.0.113.9"}],
            },
            {
                "p_any_aws_account_ids": ["111122223333", "444455556666"],
                "p_any_aws_arns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
                "p_any_aws_instance_ids": ["i-0123"],
                "p_any_aws_tags": ["Name:web", "team:sec"],
                "p_any_domain_names": ["ip-10-0-0-5.ec2.internal"],
                "p_any_ip_addresses": ["10.0.0.5", "203.0.113.9", "2600:1f18::1"],
            },
            id="JSON fields by key",
        ),
        pytest.param(
            {"userIdentity": "redacted", "resources": {"ARN": "arn:aws:s3:::b"}, "tags": 3},
            {},
            id="wrong types",
        ),
        pytest.param(management(0) | {"sourceIPAddress": "AWS Internal"}, None, id="management"),
    ],
)
def test_indicators_follow_panthers_cloudtrail_schema(record, expected):
    found = indicators(record)
    if expected is None:  # only what the identity gives, and the host name as it is
        assert found["p_any_domain_names"] == ["AWS Internal"]
        assert "p_any_ip_addresses" not in found
        return
    assert found == expected


def test_indicators_reach_any_depth():
    nested = {"instanceId": "i-deep"}
    for _ in range(5000):  # deeper than Python's recursion limit
        nested = {"next": [nested]}
    assert indicators({"requestParameters": nested}) == {"p_any_aws_instance_ids": ["i-deep"]}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["arn", "accountId", "tags", "key", "value", "publicIp", "x", "instanceId"]
            )
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "userIdentity",
                "resources",
                "requestParameters",
                "responseElements",
                "sourceIPAddress",
                "recipientAccountId",
                "additionalEventData",
            ]
        ),
        JSON_VALUES,
    )
)
def test_indicators_of_any_json_are_sorted_distinct_strings(record):
    found = indicators(record)
    for name, values in found.items():
        assert name.startswith("p_any_")
        assert values == sorted(set(values))
        assert values
        assert all(isinstance(value, str) and value for value in values)


# --- the event a rule sees ------------------------------------------------------------------------


def test_every_lookup_of_a_standard_field_finds_it():
    event = event_of(external_get(0))
    assert event.get("p_event_time") == "2026-11-20 09:00:00.000000000"
    assert event["p_row_id"] == row_id(*PLACE)
    assert "p_source_label" in event
    assert event.get("P_SOURCE_ID") == DEFAULT_SOURCE_ID  # keys match in any case, as Panther's
    assert event.deep_get("p_any_trace_ids") == ("ASIAIOSFODNN7EXAMPLE",)
    assert event.deep_walk("p_any_usernames") == ["DataPipeline"]
    assert event.event_time_epoch() == 1795165200
    assert event.get("p_not_a_field") is None
    assert "p_any_aws_tags" not in event  # absent when there is no such indicator


def test_the_whole_event_shows_every_standard_field():
    record = external_get(0)
    event = event_of(record)
    assert len(event) == len(record) + 11
    assert set(event) >= {"p_parse_time", "p_source_label", "p_any_ip_addresses"}
    copied = event.to_dict()
    assert copied["p_source_label"] == DEFAULT_SOURCE_LABEL
    assert copied["p_any_ip_addresses"] == ["198.199.88.17"]
    assert "p_row_id" in repr(event_of(record))
    assert json.loads(json.dumps(dict(event_of(record).items()), default=PantherEvent.json_encoder))


def test_nothing_is_worked_out_for_a_rule_that_reads_none_of_them(monkeypatch):
    worked_out = []
    monkeypatch.setattr(standard_fields, "indicators", worked_out.append)
    monkeypatch.setattr(standard_fields, "row_id", lambda *place: worked_out.append(place))
    record = external_get(0)
    event = event_of(record)
    assert event.get("eventName") == "GetObject"
    assert event.get("errorCode") is None  # a missing field: looked up, nothing worked out
    assert event.deep_get("userIdentity", "sessionContext", "sessionIssuer", "userName")
    assert worked_out == []
    assert set(event.raw_view()) == set(record)
    assert "p_log_type" not in record  # the replay sets that one as it reads (records.py)


def test_a_replay_of_the_sample_works_out_no_field_the_rule_never_reads(monkeypatch, tmp_path):
    calls = []
    real = standard_fields.indicators
    monkeypatch.setattr(standard_fields, "indicators", lambda r: calls.append(r) or real(r))
    logs = write_jsonl(tmp_path / "day.jsonl", [external_get(n) for n in range(5)])
    with load_rules(REPO_ROOT) as rule_set:
        result = replay(rule_set, logs)
        assert result.totals.matched >= 5  # the package's rules ran and matched
    assert calls == []


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"p_event_time": "2026-11-20 09:00:00"}, id="as exported"),
        pytest.param({"P_EVENT_TIME": "x"}, id="in another case"),
    ],
)
def test_a_field_the_record_carries_wins(extra):
    record = external_get(0) | extra
    event = event_of(record)
    assert event.get("p_event_time") == next(iter(extra.values()))
    assert len(event) == len(record) + 10  # the other ten standard fields, not a second time
    assert sum(key.lower() == "p_event_time" for key in event) == 1


def test_a_data_model_method_sees_the_standard_fields(tmp_path):
    models = tmp_path / "repo" / "data_models"
    models.mkdir(parents=True)
    (models / "model.py").write_text("def get_row(event):\n    return event.get('p_row_id')\n")
    (models / "model.yml").write_text(
        "AnalysisType: datamodel\nDataModelID: Fixture.CloudTrail\nFilename: model.py\n"
        "Enabled: true\nLogTypes:\n  - AWS.CloudTrail\nMappings:\n"
        "  - Name: row\n    Method: get_row\n  - Name: label\n    Path: $.p_source_label\n"
    )
    rules = tmp_path / "repo" / "rules"
    rules.mkdir()
    (rules / "r.py").write_text("def rule(event):\n    return False\n")
    (rules / "r.yml").write_text(
        "AnalysisType: rule\nFilename: r.py\nRuleID: R\nEnabled: true\n"
        "LogTypes:\n  - AWS.CloudTrail\nSeverity: Low\n"
    )
    (tmp_path / "repo" / "global_helpers").mkdir()
    with load_rules(tmp_path / "repo") as rule_set:
        event = event_of(external_get(0), data_model=rule_set.data_model)
        assert event.udm("row") == row_id(*PLACE)
        assert event.udm("label") == DEFAULT_SOURCE_LABEL


def test_a_replay_event_is_as_immutable_as_panthers():
    event = event_of(external_get(0))
    assert isinstance(event, PantherEvent)
    with pytest.raises(TypeError):
        event["p_row_id"] = "x"
    with pytest.raises(TypeError):
        event["p_any_trace_ids"][0] = "x"


@pytest.mark.parametrize(
    "event_time",
    [
        "2026-11-20T09:00:00Z",
        "2026-11-20T09:00:00.5+01:00",
        "1969-12-31T23:59:59.5Z",
        "0001-01-01T00:00:00Z",
        "2026-11-20 09:00:00.999999999",
    ],
    ids=["CloudTrail", "offset and fraction", "before 1970", "year 1", "Panther's own form"],
)
def test_event_time_epoch_is_panther_cores_answer_without_parsing_again(event_time):
    record = external_get(0) | {"eventTime": event_time}
    event = event_of(record)
    written = event_of(record).get("p_event_time")
    assert (
        event.event_time_epoch()
        == PantherEvent(record | {"p_event_time": written}).event_time_epoch()
    )


def test_event_time_epoch_of_a_p_event_time_the_record_carries_is_panther_cores(monkeypatch):
    record = external_get(0) | {"p_event_time": "2001-01-01 00:00:00"}
    assert event_of(record).event_time_epoch() == 978307200
    assert event_of(external_get(0) | {"eventTime": "not a time"}).event_time_epoch() == 0


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=0, max_value=999_999_999),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_event_time_epoch_agrees_with_panther_core_for_any_event_time(moment, nanos, minutes):
    sign = "+" if minutes >= 0 else "-"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    event_time = f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}{offset}"
    written = panther_event_time(event_time)
    if written is None:  # outside years 1-9999 once in UTC
        return
    record = external_get(0) | {"eventTime": event_time}
    expected = PantherEvent(record | {"p_event_time": written}).event_time_epoch()
    assert event_of(record).event_time_epoch() == expected
