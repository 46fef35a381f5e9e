"""Buffered matches cost what their JSON takes plus a few numbers, and a worker hands back the
numbers only: its records go to a file of its own as it finds them."""

import pickle
import random
import shutil
import tracemalloc

import orjson
import pytest
from repo import REPO_ROOT
from test_replay_support import external_get, replay, write_jsonl

from detection_replay import parallel
from detection_replay.engine import COLUMNS, MatchBuffer, MatchLimitExceeded, Replay
from detection_replay.inputs import discover
from detection_replay.rules import load_rules

MATCHES = 20_000
# What an entry may cost beyond its record's JSON: the columns, and the sort's keys in pass 2.
ENTRY_BYTES = sum(8 if code in "dQq" else 4 if code == "i" else 1 for _, code in COLUMNS)
SORT_BYTES_PER_ENTRY = 250
ONE_RULE = "aws_vpce_s3_external_ip"


def small_matches(count):
    """Small matching records: one caller from one address, one a second."""
    base = external_get(0)
    for key in ("sharedEventID", "requestID", "eventVersion", "vpcEndpointAccountId"):
        base.pop(key)
    return [
        base | {"eventTime": f"2026-11-20T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "eventID": f"e{n:08d}"}
        for n in range(count)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def rule_set(tmp_path_factory):
    """The package's per-event rule alone: one entry per matching record."""
    repository = tmp_path_factory.mktemp("one-rule") / "repo"
    shutil.copytree(REPO_ROOT / "global_helpers", repository / "global_helpers")
    (repository / "rules").mkdir()
    for suffix in (".py", ".yml"):
        shutil.copy(REPO_ROOT / "rules" / f"{ONE_RULE}{suffix}", repository / "rules")
    with load_rules(repository) as loaded:
        assert len(loaded.rules) == 1
        yield loaded


def test_matches_cost_their_json_and_a_few_numbers(tmp_path, rule_set):
    records = small_matches(MATCHES)
    logs = tmp_path / "logs"  # files of 500 records: reading one holds little
    for start in range(0, MATCHES, 500):
        write_jsonl(logs / f"{start:05d}.jsonl", records[start : start + 500])
    record_bytes = sum(
        len(orjson.dumps(record | {"p_log_type": "AWS.CloudTrail"})) for record in records
    )
    peaks = {}
    original = Replay.group_matches

    def measured(self):
        peaks["pass 1"] = tracemalloc.get_traced_memory()[1]
        original(self)

    tracemalloc.start()
    try:
        Replay.group_matches = measured
        result = Replay(rule_set).run(discover([str(logs)]))
        peaks["run"] = tracemalloc.get_traced_memory()[1]
    finally:
        Replay.group_matches = original
        tracemalloc.stop()
    assert result.totals.matched == MATCHES
    # Pass 1 holds each match as its JSON and one entry of numbers (it was 4 KiB a match).
    assert peaks["pass 1"] < record_bytes + MATCHES * (ENTRY_BYTES + 40) + 8 * 2**20
    assert peaks["run"] < record_bytes + MATCHES * (ENTRY_BYTES + SORT_BYTES_PER_ENTRY) + 8 * 2**20


def test_past_its_memory_the_buffer_writes_records_to_its_file_and_reads_them_back():
    buffer = MatchBuffer(memory_bytes=4096)
    records = small_matches(200)
    random.Random(7).shuffle(records)
    for number, record in enumerate(records):
        stored = buffer.store(record)
        seconds = float(number % 50)
        buffer.add(seconds, number, 0, True, ("in.jsonl", number + 1, 0), stored)
    assert buffer.memory_bytes < 4096 + 200 * ENTRY_BYTES
    out = list(buffer.in_time_order())
    assert sorted(record["eventID"] for *_, record in out) == sorted(r["eventID"] for r in records)
    assert [entry[0] for entry in out] == sorted(entry[0] for entry in out)
    buffer.close()


def test_a_record_buffered_for_several_rules_is_stored_once():
    buffer = MatchBuffer()
    record = small_matches(1)[0]
    stored = buffer.store(record)
    for rule_index in range(5):
        buffer.add(1.0, 1, rule_index, rule_index % 2 == 0, ("in", 1, 0), stored)
    assert len(buffer) == 5
    assert buffer.memory_bytes == len(orjson.dumps(record)) + 5 * ENTRY_BYTES
    rules = [(rule, decided) for _, rule, decided, _, _ in buffer.in_time_order()]
    assert rules == [(0, True), (1, False), (2, True), (3, False), (4, True)]


def test_the_limit_counts_entries():
    buffer = MatchBuffer(limit=2)
    stored = buffer.store({"eventTime": "2026-11-20T00:00:00Z"})
    buffer.add(0.0, 1, 0, True, ("in", 1, 0), stored)
    buffer.add(0.0, 1, 1, True, ("in", 1, 0), stored)
    with pytest.raises(MatchLimitExceeded):
        buffer.add(0.0, 1, 2, True, ("in", 1, 0), stored)


def test_a_worker_hands_back_numbers_and_writes_its_records_to_its_own_file(tmp_path, rule_set):
    logs = write_jsonl(tmp_path / "matches.jsonl", small_matches(2_000))
    spill = tmp_path / "spill"
    spill.mkdir()
    parallel._replay, parallel._spill_directory = Replay(rule_set), str(spill)
    try:
        findings = parallel._findings_of(list(discover([str(logs)])))
    finally:
        parallel._replay = parallel._spill_directory = None
    sent = pickle.dumps(findings)
    assert len(sent) < 2_000 * (ENTRY_BYTES + 8) + 4096  # numbers, not 2,000 records
    assert b"GetObject" not in sent
    (written,) = spill.iterdir()
    assert written.stat().st_size > 2_000 * 300
    # The parent adopts the entries and reads the records from the worker's file.
    parent = Replay(rule_set)
    parallel.merge(parent, findings)
    assert not written.exists()  # its name is gone once the parent holds it open
    found = [record["eventID"] for *_, record in parent.matches.in_time_order()]
    assert found == [f"e{n:08d}" for n in range(2_000)]
    parent.matches.close()


def test_a_replay_leaves_no_file_behind(tmp_path, rule_set, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    logs = tmp_path / "logs"
    for number in range(4):
        write_jsonl(logs / f"{number}.jsonl", small_matches(50))
    result = Replay(rule_set, max_matches=10_000).run(discover([str(logs)]), jobs=2)
    assert result.totals.matched == 200
    assert list((tmp_path / "tmp").iterdir()) == []
    assert replay(rule_set, logs).totals.matched == 200
    assert list((tmp_path / "tmp").iterdir()) == []
