"""Hostile and unusual input: nothing lost, never silently, and no single record ends the run.

Each table pins one class of issue 8; every case failed (or crashed) before it was fixed.
"""

import bz2
import gzip
import json
import lzma
import os
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo import REPO_ROOT
from test_replay_support import (
    RULES_PER_MATCH,
    alerts,
    assert_balanced,
    external_get,
    mixed_records,
    private_get,
    replay,
    run_cli,
    scratch_repository,
)

from detection_replay import framing
from detection_replay.inputs import DECOMPRESSED_CHUNK_BYTES, text_chunks
from detection_replay.records import InvalidJson, record_problem
from detection_replay.rules import load_rules


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def one_line(records):
    """A delivery object as a trail writes it: one line, no final newline."""
    return json.dumps({"Records": records}, separators=(",", ":")).encode()


def comparable(result):
    """What must not change between two ways of giving the same records."""
    return {
        "read": result.totals.records_read,
        "evaluated": result.totals.evaluated,
        "matched": result.totals.matched,
        "malformed": result.malformed.count,
        "unreadable": result.unreadable,
        "alerts": [
            {key: value for key, value in alert.as_dict().items() if key != "first_event_at"}
            for alert in alerts(result)
        ],
    }


# Three delivery files of one trail: two alerts' worth of matches, one record of noise each.
FILES = [
    [external_get(0), private_get(1)],
    [external_get(5, sourceIPAddress="45.33.32.156"), private_get(6)],
    [external_get(70), external_get(71, sourceIPAddress="45.33.32.156"), private_get(72)],
]


def concatenated_plain(files):
    return b"".join(one_line(records) for records in files)  # `zcat *.json.gz > day.json`


def concatenated_gzip(files):
    return b"".join(gzip.compress(one_line(records)) for records in files)  # `cat *.json.gz`


def back_to_back_records(files):
    # Firehose writes records with no separator at all.
    return b"".join(json.dumps(record).encode() for records in files for record in records)


def json_lines(separator):
    def write(files):
        lines = [json.dumps(record).encode() for records in files for record in records]
        return separator.join(lines) + separator

    return write


def pretty_json_lines(files):
    # `jq . file` without -c: one pretty-printed object after another.
    return b"\n".join(
        json.dumps(record, indent=2).encode() for records in files for record in records
    )


def arrays_back_to_back(files):
    return b"".join(json.dumps(records).encode() for records in files)


CONCATENATIONS = {
    "zcat of delivery files (no newlines)": concatenated_plain,
    "cat of gzip delivery files": concatenated_gzip,
    "records back to back (Firehose)": back_to_back_records,
    "JSON Lines with CR-only line ends": json_lines(b"\r"),
    "JSON Lines with CRLF line ends": json_lines(b"\r\n"),
    "pretty-printed JSON Lines (jq without -c)": pretty_json_lines,
    "JSON arrays back to back": arrays_back_to_back,
}


@pytest.mark.parametrize("small_buffers", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(CONCATENATIONS))
def test_concatenated_inputs_replay_every_record_as_the_files_one_by_one(
    tmp_path, rule_set, monkeypatch, case, small_buffers
):
    one_by_one = []
    for number, records in enumerate(FILES):
        path = tmp_path / f"file{number}.json"
        path.write_bytes(one_line(records))
        one_by_one.append(path)
    joined = tmp_path / "day.data"
    joined.write_bytes(CONCATENATIONS[case](FILES))
    if small_buffers:  # the streaming scanner, across buffer refills, instead of whole decoding
        monkeypatch.setattr(framing, "WHOLE_DOCUMENT_BYTES", 64)
    expected = comparable(replay(rule_set, *one_by_one))
    assert expected["read"] == 7
    assert comparable(replay(rule_set, joined)) == expected


BAD_VALUES = {
    "number too large for a double": b"1e400",
    "NaN": b"NaN",
    "nesting past the parser's limit": b"[" * 1100 + b"]" * 1100,
    "lone surrogate escape": b'"\\ud800"',
    "invalid UTF-8 byte": b'"\xff"',
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_one_undecodable_value_makes_one_malformed_record_and_spares_its_neighbours(
    tmp_path, rule_set, case
):
    good = [json.dumps(record).encode() for record in mixed_records()]
    bad = json.dumps(external_get(2, userAgent="PLACEHOLDER")).encode()
    bad = bad.replace(b'"PLACEHOLDER"', BAD_VALUES[case])
    path = tmp_path / "delivery.json"
    path.write_bytes(b'{"Records":[' + b",".join([good[0], bad, *good[1:]]) + b"]}")
    result = replay(rule_set, path)
    assert result.malformed.count == 1
    (example,) = result.malformed.examples
    assert example["where"] == f"{path} line 1 record 2"
    assert example["problem"].startswith("not valid JSON")
    assert result.totals.evaluated == 4
    assert [alert.events for alert in alerts(result)] == [2]
    assert result.unreadable == []
    assert_balanced(result)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        pytest.param(b'{"Records":[{"a":1},{"b":2]},{"c":3}]}\n', 1, id="bracket mismatch"),
        pytest.param(b'{"Records":[{"a":1} {"b":2}]}\n', 1, id="missing comma"),
        pytest.param(b'{\n"Records": [\n{"a": 1},\n{"b": "cut\n', 4, id="pretty, string cut"),
    ],
)
def test_a_document_that_cannot_be_split_into_records_is_unreadable_not_one_malformed_record(
    tmp_path, rule_set, content, line
):
    path = tmp_path / "broken.json"
    path.write_bytes(content + json.dumps(external_get(0)).encode() + b"\n")
    result = replay(rule_set, path)
    (unreadable,) = result.unreadable
    assert unreadable["error"].startswith(f"line {line}: ")
    assert result.malformed.count <= 1  # the one record before the break ({"a": 1})
    assert_balanced(result)


def test_a_broken_line_of_delivery_objects_spares_the_next_lines(tmp_path, rule_set):
    path = tmp_path / "two.jsonl"
    broken = one_line([external_get(0)])[:-2] + b"]]"  # `]]` where `]}` belongs
    path.write_bytes(broken + b"\n" + one_line([external_get(1), external_get(2)]) + b"\n")
    result = replay(rule_set, path)
    assert len(result.unreadable) == 1
    assert result.totals.evaluated == 3
    assert [alert.events for alert in alerts(result)] == [3]


# --- 3. encodings and compressions ---------------------------------------------------------


def utf16(text, bom):
    return text.encode("utf-16" if bom else "utf-16-le")


def zip_of(data):
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("log.json", data)
    return buffer.getvalue()


UNSUPPORTED = {
    "UTF-16 with BOM": lambda data: utf16(data.decode(), bom=True),
    "UTF-16 without BOM": lambda data: utf16(data.decode(), bom=False),
    "UTF-32": lambda data: data.decode().encode("utf-32"),
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: b"\x28\xb5\x2f\xfd" + data,
    "zip": zip_of,
    "bz2 inside gzip": lambda data: gzip.compress(bz2.compress(data)),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_content_is_named_not_read_as_junk_records(tmp_path, rule_set, case):
    data = b"".join(json.dumps(record).encode() + b"\n" for record in mixed_records())
    path = tmp_path / "log.json"
    path.write_bytes(UNSUPPORTED[case](data))
    result = replay(rule_set, path)
    (unreadable,) = result.unreadable
    assert unreadable["error"].startswith("unsupported content: ")
    assert result.totals.records_read == result.malformed.count == 0


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_utf8_byte_order_mark_is_ignored(tmp_path, rule_set, compressed):
    data = b"\xef\xbb\xbf" + one_line(mixed_records())
    path = tmp_path / "bom.json"
    path.write_bytes(gzip.compress(data) if compressed else data)
    result = replay(rule_set, path)
    assert (result.totals.evaluated, result.malformed.count) == (4, 0)


@pytest.mark.parametrize(
    "first_line",
    [
        pytest.param(b"{not json", id="garbage"),
        pytest.param(json.dumps(external_get(0)).encode()[:-30], id="cut in a string"),
        pytest.param(b'{"eventTime": "x", ', id="cut between fields"),
        pytest.param(b'{"a": [1, 2', id="an unclosed array"),
    ],
)
def test_a_json_lines_file_whose_first_line_is_bad_keeps_its_good_lines(
    tmp_path, rule_set, first_line
):
    path = tmp_path / "events.jsonl"
    good = [json.dumps(record).encode() for record in mixed_records()]
    path.write_bytes(b"\n".join([first_line, *good]) + b"\n")
    result = replay(rule_set, path)
    assert result.malformed.count == 1
    assert result.malformed.examples[0]["where"] == f"{path} line 1"
    assert result.totals.evaluated == 4
    assert result.unreadable == []


# --- 5. event times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_time",
    [
        "2026-11-20T09:00:00Z",
        "2026-11-20T09:00:00.123Z",
        "2026-11-20T09:00:00.123456789Z",
        "2026-11-20T10:00:00+01:00",
        "2026-11-20T04:00:00-05:00",
        "2026-11-20 09:00:00.000000000",  # Panther's UTC form
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_event_times_as_cloudtrail_and_panther_write_them_are_accepted(event_time):
    assert record_problem(external_get(0, eventTime=event_time)) is None


@pytest.mark.parametrize(
    "event_time",
    [
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "2026-11-20",
        "2026-W47-5",
        "2026-324",
        "2026-11-20T09:00:00",  # no zone
        "2026-11-20T09:00Z",
        "2026-11-20T24:00:00Z",
        "2026-02-30T09:00:00Z",
        "2026-11-20T09:00:00+24:00",
        "2026-11-20T09:00:00.1234567890Z",
        "\uff12\uff10\uff12\uff16-11-20T09:00:00Z",  # full-width digits: \d would take them
        "",
    ],
)
def test_anything_else_is_a_malformed_record_never_a_traceback(tmp_path, rule_set, event_time):
    record = external_get(0, eventTime=event_time)
    problem = record_problem(dict(record))
    assert problem is not None
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(external_get(1)) + "\n")
    result = replay(rule_set, path)
    assert (result.malformed.count, result.totals.matched) == (1, RULES_PER_MATCH)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_no_event_time_text_makes_the_record_check_raise(text):
    problem = record_problem({"eventTime": text, "eventSource": "s", "eventName": "n"})
    assert problem is None or problem.startswith("eventTime")


# --- 7. bounded memory --------------------------------------------------------------------------


def test_decompression_hands_on_bounded_pieces(tmp_path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(b"{}\n" * (8 * 1024 * 1024)))  # 24 MiB from some 24 KiB
    with path.open("rb") as raw:
        sizes = [len(piece) for piece in text_chunks(raw)]
    assert sum(sizes) == 24 * 1024 * 1024
    assert max(sizes) <= DECOMPRESSED_CHUNK_BYTES + 1


def test_a_record_over_the_size_limit_is_malformed_with_its_reason(tmp_path, rule_set, monkeypatch):
    monkeypatch.setattr(framing, "WHOLE_DOCUMENT_BYTES", 4096)
    monkeypatch.setattr(framing, "RECORD_BYTES", 4096)
    huge = external_get(1, userAgent="x" * 3000, requestParameters={"k": ["y" * 3000]})
    path = tmp_path / "d.json"
    path.write_bytes(one_line([external_get(0), huge, external_get(2)]))
    result = replay(rule_set, path)
    (example,) = result.malformed.examples
    assert example["where"].endswith("line 1 record 2")
    assert example["problem"] == "not valid JSON (record larger than 0 MiB)"
    assert result.totals.evaluated == 2


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(
            st.text(min_size=1, max_size=5),
            st.one_of(st.integers(-5, 5), st.text(max_size=8), st.lists(st.booleans())),
            max_size=3,
        ),
        max_size=6,
    ),
    shape=st.sampled_from(["delivery", "array", "jsonl", "pretty", "back to back"]),
    chunk=st.integers(1, 40),
    whole_limit=st.sampled_from([16, 10_000_000]),
)
def test_the_reader_finds_exactly_the_records_whatever_the_shape_and_chunking(
    records, shape, chunk, whole_limit
):
    encoded = {
        "delivery": lambda: json.dumps({"Records": records}).encode(),
        "array": lambda: json.dumps(records).encode(),
        "jsonl": lambda: b"".join(json.dumps(r).encode() + b"\n" for r in records),
        "pretty": lambda: b"\n".join(json.dumps(r, indent=1).encode() for r in records),
        "back to back": lambda: b"".join(json.dumps(r).encode() for r in records),
    }[shape]()
    pieces = [encoded[i : i + chunk] for i in range(0, len(encoded), chunk)]
    original = framing.WHOLE_DOCUMENT_BYTES
    framing.WHOLE_DOCUMENT_BYTES = whole_limit
    try:
        found = [value for _, _, value in framing.RecordReader(pieces)]
    finally:
        framing.WHOLE_DOCUMENT_BYTES = original
    assert not any(isinstance(value, InvalidJson) for value in found)
    assert found == records


# --- 8. special files while walking -------------------------------------------------------------


def test_special_files_in_a_directory_are_reported_and_skipped(tmp_path, rule_set):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events.json").write_bytes(one_line(mixed_records()))
    os.mkfifo(logs / "pipe")  # reading it would wait forever
    (logs / "zero").symlink_to("/dev/zero")  # reading it would never end
    result = replay(rule_set, logs)
    assert sorted(item["input"] for item in result.skipped_inputs) == [
        str(logs / "pipe"),
        str(logs / "zero"),
    ]
    assert {item["reason"].split(",")[0] for item in result.skipped_inputs} == {
        "a named pipe",
        "a device",
    }
    assert result.totals.evaluated == 4


def test_a_symlinked_subdirectory_is_followed_once(tmp_path, rule_set):
    logs = tmp_path / "logs"
    (logs / "real").mkdir(parents=True)
    (logs / "real" / "a.json").write_bytes(one_line(mixed_records()))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.json").write_bytes(one_line([external_get(9)]))
    (logs / "linked").symlink_to(tmp_path / "elsewhere")  # followed
    (logs / "real" / "loop").symlink_to(logs)  # a loop: reported, not walked again
    result = replay(rule_set, logs)
    assert result.totals.evaluated == 5
    (skipped,) = result.skipped_inputs
    assert skipped["input"] == str(logs / "real" / "loop")


def test_an_empty_input_directory_is_named_and_a_run_without_records_exits_3(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    status, _, err = run_cli(capsys, tmp_path / "empty", "--path", REPO_ROOT)
    assert status == 3
    assert f"empty directory: {tmp_path / 'empty'}" in err
    assert "no input yielded a record" in err


# --- 11. text output cannot be forged -----------------------------------------------------------


def test_control_characters_from_logs_and_file_names_are_escaped_in_the_summary(capsys, tmp_path):
    bucket = "b\n\nTotals\n  records read  999\x1b[2J\u202e"
    path = tmp_path / "bad\nname\x1b[31m.jsonl"
    records = [external_get(0, requestParameters={"bucketName": bucket}), {"x": 1}]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    _, out, _ = run_cli(capsys, path, "--path", REPO_ROOT)
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert [line for line in out.splitlines() if line.startswith("Totals")] == ["Totals"]
    assert "b\\x0a\\x0aTotals\\x0a  records read  999\\x1b[2J\\u202e" in out
    assert "bad\\x0aname\\x1b[31m.jsonl line 2" in out


# --- 12. smaller ------------------------------------------------------------------------------


def test_cloudtrail_digest_files_are_counted_and_skipped(tmp_path, rule_set):
    account = tmp_path / "AWSLogs" / "123456789012"
    digest = account / "CloudTrail-Digest" / "us-east-1" / "2026" / "11" / "20"
    digest.mkdir(parents=True)
    (digest / "123456789012_CloudTrail-Digest_us-east-1_x.json.gz").write_bytes(
        gzip.compress(b'{"awsAccountId": "123456789012", "digestStartTime": "x"}')
    )
    trail = account / "CloudTrail" / "us-east-1"
    trail.mkdir(parents=True)
    (trail / "a.json.gz").write_bytes(gzip.compress(one_line(mixed_records())))
    result = replay(rule_set, tmp_path)
    assert result.digest_files == 1
    assert (result.malformed.count, result.totals.evaluated) == (0, 4)


PLAIN_RULE = """
def rule(event):
    return event.get("eventName") == "GetObject"
"""


@pytest.mark.parametrize(
    ("period", "alert_sizes"),
    [
        pytest.param(0, [2, 1], id="0 is ignored by the backend: 60"),
        pytest.param(1, [1, 1, 1], id="below 5 is 5"),
        pytest.param(30, [1, 1, 1], id="30"),
    ],
)
def test_dedup_period_minutes_as_panthers_backend_applies_it(tmp_path, period, alert_sizes):
    repository = scratch_repository(tmp_path, PLAIN_RULE)
    spec = repository / "rules" / "scratch_rule.yml"
    spec.write_text(
        spec.read_text().replace("DedupPeriodMinutes: 60", f"DedupPeriodMinutes: {period}")
    )
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(external_get(m)) + "\n" for m in (0, 40, 70)))
    with load_rules(repository) as loaded:
        result = replay(loaded, path)
    assert [alert.events for alert in alerts(result)] == alert_sizes


def test_show_malformed_errors_name_the_option(capsys):
    with pytest.raises(SystemExit):
        run_cli(capsys, "--show-malformed", "many")
    err = capsys.readouterr().err
    assert "argument --show-malformed: expected a whole number, 0 or more, not 'many'" in err


def test_json_lines_mode_reports_malformed_locations_on_stderr(capsys, tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(external_get(0)) + "\n{oops\n")
    status, out, err = run_cli(capsys, path, "--path", REPO_ROOT, "--format", "jsonl")
    assert status == 0
    assert len(out.splitlines()) == 1
    assert f"malformed: {path} line 2: not valid JSON" in err


@pytest.mark.parametrize(
    ("flags", "status", "said"),
    [
        pytest.param(["--max-matches", "2"], 7, "more than 2 matching events", id="match limit"),
        pytest.param(["--max-alerts", "1"], 0, "... and 1 more, not listed", id="alert listing"),
    ],
)
def test_stated_limits_are_said_never_silent(capsys, tmp_path, flags, status, said):
    records = [external_get(0), external_get(1, sourceIPAddress="45.33.32.156"), external_get(2)]
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    code, out, err = run_cli(capsys, path, "--path", REPO_ROOT, *flags)
    assert code == status
    assert said in out + err
