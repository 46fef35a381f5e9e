"""Bad input: counted, located and reported; the rest of the run goes on."""

import gzip
import json
import os
import uuid

import pytest
from repo import REPO_ROOT
from test_replay_support import (
    RULES_PER_MATCH,
    alerts,
    assert_balanced,
    external_get,
    mixed_records,
    replay,
    scratch_repository,
    truncated_json,
    write_delivery_object,
    write_jsonl,
    write_lines,
)

from detection_replay.engine import MALFORMED_EXAMPLES_KEPT
from detection_replay.rules import load_rules


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def without(field):
    record = external_get(0)
    del record[field]
    return record


BAD_RECORDS = {
    "invalid JSON": ("{not json", "not valid JSON"),
    "truncated JSON line": (json.dumps(external_get(0))[:-5], "not valid JSON"),
    "array, not an object": ("[[1, 2]]", "not a JSON object (a JSON array)"),
    "string, not an object": ('"GetObject"', "not a JSON object (a JSON string)"),
    "null, not an object": ("null", "not a JSON object (a JSON null)"),
    "no eventTime": (json.dumps(without("eventTime")), "missing required field eventTime"),
    "no eventSource": (json.dumps(without("eventSource")), "missing required field eventSource"),
    "no eventName": (json.dumps(without("eventName")), "missing required field eventName"),
    "eventName a list": (
        json.dumps(external_get(0, eventName=["GetObject"])),
        "eventName is not a non-empty string",
    ),
    "eventTime not a time": (
        json.dumps(external_get(0, eventTime="yesterday")),
        "eventTime 'yesterday' is not an ISO 8601 date-time",
    ),
    "another log type": (
        json.dumps(external_get(0, p_log_type="Okta.SystemLog")),
        "p_log_type is 'Okta.SystemLog', not AWS.CloudTrail",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_a_bad_record_is_counted_located_and_skipped(tmp_path, rule_set, case):
    bad_line, problem = BAD_RECORDS[case]
    good = [json.dumps(record) for record in mixed_records()]
    path = write_lines(tmp_path / "events.jsonl", [good[0], good[1], bad_line, good[2], good[3]])
    result = replay(rule_set, path)
    assert result.malformed.count == 1
    (example,) = result.malformed.examples
    assert example["where"] in (f"{path} line 3", f"{path} line 3 record 1")
    assert example["problem"].startswith(problem)
    assert result.totals.evaluated == 4
    assert result.totals.matched == 2 * RULES_PER_MATCH
    assert result.unreadable == []
    assert_balanced(result)


def test_bad_records_inside_a_delivery_object_are_located_by_position(tmp_path, rule_set):
    path = write_delivery_object(tmp_path / "d.json.gz", [external_get(0), 7, {}], True)
    result = replay(rule_set, path)
    wheres = [example["where"] for example in result.malformed.examples]
    assert wheres == [f"{path} line 1 record 2", f"{path} line 1 record 3"]
    assert_balanced(result)


def test_the_first_malformed_records_are_kept_in_full_the_rest_counted(tmp_path, rule_set):
    path = write_lines(tmp_path / "junk.txt", [f"junk {n}" for n in range(25)])
    result = replay(rule_set, path)
    assert result.malformed.count == 25
    assert len(result.malformed.examples) == MALFORMED_EXAMPLES_KEPT
    assert result.malformed.examples[-1]["where"] == f"{path} line {MALFORMED_EXAMPLES_KEPT}"
    assert_balanced(result)


def truncated_gzip(path, records=50):
    # Distinct event IDs keep the data from compressing to nothing.
    lines = (json.dumps(external_get(m % 600, eventID=str(uuid.uuid4()))) for m in range(records))
    data = gzip.compress("".join(f"{line}\n" for line in lines).encode())
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_gzip(path):
    data = bytearray(write_jsonl(path, mixed_records(), compress=True).read_bytes())
    data[20:40] = b"\xff" * 20
    path.write_bytes(bytes(data))
    return path


UNREADABLE = {
    "truncated gzip": (truncated_gzip, "truncated compressed data"),
    "corrupt gzip": (corrupt_gzip, ""),
    "truncated JSON document": (truncated_json, "not a valid JSON document"),
    "missing path": (lambda path: path, "No such file or directory"),
    "broken symlink": (
        lambda path: (path.symlink_to(path.parent / "gone"), path)[1],
        "No such file or directory",
    ),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_an_unreadable_input_is_reported_by_name_and_the_others_still_replayed(
    tmp_path, rule_set, case
):
    make, reason = UNREADABLE[case]
    broken = make(tmp_path / "broken.json.gz")
    good = write_jsonl(tmp_path / "good.jsonl", mixed_records())
    result = replay(rule_set, broken, good)
    (unreadable,) = result.unreadable
    assert unreadable["input"] == str(broken)
    assert reason in unreadable["error"]
    assert result.sources_read == 2
    assert [alert.events for alert in alerts(result)][-1] >= 2
    assert_balanced(result)


def test_records_before_the_damage_in_a_truncated_gzip_are_kept(tmp_path, rule_set):
    result = replay(rule_set, truncated_gzip(tmp_path / "t.jsonl.gz", records=3000))
    assert result.unreadable
    assert 0 < result.totals.records_read < 3000
    assert_balanced(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_unreadable(tmp_path, rule_set):
    path = write_jsonl(tmp_path / "secret.jsonl", mixed_records())
    path.chmod(0)
    result = replay(rule_set, path)
    assert result.unreadable == [{"input": str(path), "error": "Permission denied"}]


RAISING_RULE = """
def rule(event):
    if event.get("eventName") == "Explode":
        raise ValueError("rule blew up")
    return event.get("eventName") == "GetObject"


def title(event):
    if event.get("awsRegion") == "eu-west-1":
        raise KeyError("no title today")
    return "GetObject seen"


def dedup(event):
    return "one"


def alert_context(event):
    if event.get("awsRegion") == "eu-west-1":
        return {"bad": {1, 2}}
    return {"region": event.get("awsRegion")}
"""


def test_rule_functions_that_raise_are_counted_per_function_and_never_stop_the_run(tmp_path):
    repository = scratch_repository(tmp_path, RAISING_RULE)
    records = [
        external_get(0, eventName="Explode"),
        external_get(1),
        external_get(2, awsRegion="eu-west-1"),
        external_get(3, eventName="Explode"),
        external_get(4),
    ]
    path = write_jsonl(tmp_path / "events.jsonl", records)
    with load_rules(repository) as rule_set:
        result = replay(rule_set, path)
        (rule,) = result.rules
    assert dict(rule.errors.counts) == {"rule": 2, "title": 1, "alert_context": 1}
    assert rule.errors.examples[0] == {
        "function": "rule",
        "error": "ValueError: rule blew up",
        "where": f"{path} line 1",
    }
    assert result.rule_errors == 4
    # A failing title() falls back to the default and the match still joins the alert,
    # as in Panther's batch mode; a failing rule() is no match.
    (alert,) = alerts(result)
    assert alert.events == 3
    assert alert.title == "GetObject seen"
    assert result.totals.evaluated == 5
    assert_balanced(result)
