"""Every input shape the replay accepts, told apart by content, and how inputs are found."""

import io
import sys

import pytest
from repo import REPO_ROOT
from test_replay_support import (
    RULES_PER_MATCH,
    alerts,
    assert_balanced,
    external_get,
    mixed_records,
    replay,
    write_array,
    write_delivery_object,
    write_jsonl,
)

from detection_replay.inputs import read_records
from detection_replay.rules import load_rules


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


WRITERS = {
    "delivery object": write_delivery_object,
    "pretty delivery object": lambda path, records, gz: write_delivery_object(
        path, records, gz, indent=2
    ),
    "JSON Lines": write_jsonl,
    "JSON array": write_array,
    "pretty JSON array": lambda path, records, gz: write_array(path, records, gz, indent=2),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("shape", list(WRITERS))
def test_every_format_plain_or_gzip_replays_the_same(tmp_path, rule_set, shape, compressed):
    # The name says nothing about the content: detection must come from the bytes.
    path = WRITERS[shape](tmp_path / "input.data", mixed_records(), compressed)
    result = replay(rule_set, path)
    assert result.totals.records_read == 4
    assert result.totals.evaluated == 4
    assert result.totals.matched == 2 * RULES_PER_MATCH
    assert [alert.events for alert in alerts(result)] == [2]
    assert result.unreadable == []
    assert_balanced(result)


def test_json_lines_may_hold_delivery_objects_one_per_line(tmp_path, rule_set):
    path = tmp_path / "concatenated.jsonl"
    write_jsonl(path, [{"Records": mixed_records()}, external_get(5), {"Records": []}])
    result = replay(rule_set, path)
    assert result.totals.records_read == 5
    assert result.totals.matched == 3 * RULES_PER_MATCH


def test_blank_lines_and_empty_files_are_not_records(tmp_path, rule_set):
    path = tmp_path / "gaps.jsonl"
    write_jsonl(path, mixed_records())
    path.write_text("\n\n" + path.read_text().replace("\n", "\n\n") + "   \n")
    (tmp_path / "empty.json").write_bytes(b"")
    result = replay(rule_set, path, tmp_path / "empty.json")
    assert result.totals.records_read == 4
    assert result.malformed.count == 0


def test_directories_are_walked_recursively_in_path_order_skipping_hidden_files(tmp_path, rule_set):
    layout = tmp_path / "AWSLogs" / "123456789012" / "CloudTrail"
    write_delivery_object(layout / "us-east-1/2026/11/20/b.json.gz", [external_get(0)], True)
    write_delivery_object(layout / "eu-west-1/2026/11/20/a.json.gz", [external_get(1)], True)
    write_jsonl(layout / "us-east-1/2026/11/21/c.jsonl", [external_get(2)])
    write_jsonl(tmp_path / ".hidden.jsonl", [external_get(3)])
    write_jsonl(tmp_path / ".git" / "objects.jsonl", [external_get(4)])
    result = replay(rule_set, tmp_path)
    assert result.sources_read == 3
    assert result.totals.records_read == 3
    # The earliest event opens the alert, wherever its file sorts.
    (alert,) = alerts(result)
    assert alert.first_event_at.endswith("us-east-1/2026/11/20/b.json.gz line 1 record 1")
    assert alert.events == 3


@pytest.mark.parametrize("compressed", [False, True], ids=["plain stdin", "gzip stdin"])
def test_files_directories_and_stdin_mix(tmp_path, rule_set, monkeypatch, compressed):
    write_jsonl(tmp_path / "dir" / "one.jsonl", [external_get(0)])
    single = write_array(tmp_path / "two.json", [external_get(1)])
    piped = write_jsonl(tmp_path / "piped", [external_get(2)], compressed)
    stdin_bytes = piped.read_bytes()
    piped.unlink()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(stdin_bytes))))
    result = replay(rule_set, tmp_path / "dir", single, "-")
    assert result.sources_read == 3
    assert result.totals.records_read == 3
    assert alerts(result)[0].events == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b'{"a": 1}\n{"b": 2}\n', [(1, 0), (2, 0)], id="JSON Lines numbered by line"),
        pytest.param(b'{"Records": [{"a": 1}, {"b": 2}]}', [(1, 1), (1, 2)], id="one-line object"),
        pytest.param(b'{\n "Records": [\n {"a": 1}\n ]\n}\n', [(1, 1)], id="pretty object"),
        pytest.param(b'[{"a": 1}, {"b": 2}]', [(1, 1), (1, 2)], id="array"),
        pytest.param(b'\n{\n "eventName": "x"\n}\n', [(2, 0)], id="one pretty record"),
    ],
)
def test_records_are_located_by_line_and_position(content, expected):
    positions = [(line, index) for line, index, _ in read_records([content])]
    assert positions == expected
