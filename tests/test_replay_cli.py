"""The `detection-replay` command: options, output formats and exit statuses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_replay_support import (
    RULES_PER_MATCH,
    external_get,
    mixed_records,
    private_get,
    rule_report,
    run_cli,
    scratch_repository,
    truncated_json,
    write_delivery_object,
    write_jsonl,
    write_lines,
)

from detection_replay import cli

TOTALS = (
    "records_read",
    "evaluated",
    "matched",
    "malformed",
    "rule_errors",
    "seconds",
    "events_per_second",
)


@pytest.fixture
def events(tmp_path):
    """Two matching records (one alert), plus a private-address and a management record."""
    return write_jsonl(tmp_path / "events.jsonl", mixed_records())


@pytest.fixture
def quiet(tmp_path):
    return write_jsonl(tmp_path / "quiet.jsonl", [private_get(0), private_get(1)])


def test_help_documents_every_option_and_exit_status(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for action in cli.build_parser()._actions:
        for option in action.option_strings:
            assert option in text
    statuses = (cli.EXIT_OK, cli.EXIT_ALERTS, cli.EXIT_USAGE, cli.EXIT_UNREADABLE_INPUT)
    statuses += (cli.EXIT_BAD_RECORDS, cli.EXIT_RULES_UNLOADABLE)
    assert len(set(statuses)) == 6
    for status in statuses:
        assert f"\n  {status}  " in text


def test_the_text_summary_shows_alerts_and_totals(capsys, events):
    status, out, _ = run_cli(capsys, events)
    assert status == cli.EXIT_OK
    assert "AWS.CloudTrail.VPCE.S3ExternalIP" in out
    assert "[MEDIUM] S3 GetObject (bucket not in record) by DataPipeline" in out
    assert "events 2, first seen 2026-11-20T09:00:00Z, last seen 2026-11-20T09:03:00Z" in out
    matched = 2 * RULES_PER_MATCH
    for label, value in [
        ("records read", 4),
        ("evaluated", 4),
        ("matched", matched),
        ("malformed", 0),
    ]:
        assert any(line.split() == [*label.split(), str(value)] for line in out.splitlines())
    assert "rule errors" in out
    assert "events/s" in out


def test_json_document_carries_the_totals_and_each_rules_alerts(capsys, events):
    status, out, _ = run_cli(capsys, events, "--format", "json")
    document = json.loads(out)
    assert status == document["exit_status"] == cli.EXIT_OK
    assert {key: document[key] for key in TOTALS[:5]} == {
        "records_read": 4,
        "evaluated": 4,
        "matched": 2 * RULES_PER_MATCH,
        "malformed": 0,
        "rule_errors": 0,
    }
    assert document["seconds"] >= 0
    assert document["events_per_second"] >= 0
    rules = {rule["rule_id"]: rule for rule in document["rules"]}
    assert rules["AWS.CloudTrail.VPCE.S3ExternalIPBulkAccess"]["alerts"] == []  # 2 of 100
    (alert,) = rules["AWS.CloudTrail.VPCE.S3ExternalIP"]["alerts"]
    assert alert["events"] == 2
    assert alert["severity"] == "MEDIUM"
    assert alert["first_seen"] == "2026-11-20T09:00:00Z"
    assert alert["last_seen"] == "2026-11-20T09:03:00Z"
    assert alert["alert_context"]["sourceIPAddress"] == "198.199.88.17"


def test_jsonl_writes_one_alert_per_line_to_the_output_file(capsys, tmp_path, events):
    second = write_jsonl(tmp_path / "more.jsonl", [external_get(0, sourceIPAddress="9.9.9.9")])
    output = tmp_path / "out" / "alerts.jsonl"
    output.parent.mkdir()
    status, out, _ = run_cli(capsys, events, second, "--format", "jsonl", "--output", output)
    assert status == cli.EXIT_OK
    assert out == ""
    lines = output.read_text().splitlines()
    assert [json.loads(line)["events"] for line in lines] == [2, 1]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param([], cli.EXIT_OK, id="alerts alone: clean"),
        pytest.param(["--fail-on-alert"], cli.EXIT_ALERTS, id="--fail-on-alert with alerts"),
    ],
)
def test_fail_on_alert(capsys, events, flags, expected):
    assert run_cli(capsys, events, *flags)[0] == expected


def test_fail_on_alert_without_alerts_is_clean(capsys, quiet):
    assert run_cli(capsys, quiet, "--fail-on-alert")[0] == cli.EXIT_OK


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param([], cli.EXIT_OK, id="malformed records are reported only"),
        pytest.param(["--strict"], cli.EXIT_BAD_RECORDS, id="--strict"),
        pytest.param(["--strict", "--fail-on-alert"], cli.EXIT_BAD_RECORDS, id="strict wins"),
    ],
)
def test_malformed_records_fail_only_a_strict_run(capsys, tmp_path, flags, expected):
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(external_get(0)), "{oops"])
    status, out, _ = run_cli(capsys, path, *flags)
    assert status == expected
    assert f"{path} line 2: not valid JSON" in out


def test_unreadable_input_exits_3_and_the_rest_is_still_reported(capsys, tmp_path, events):
    missing = tmp_path / "missing.json.gz"
    truncated = truncated_json(tmp_path / "truncated.json")
    status, out, _ = run_cli(capsys, missing, events, truncated, "--fail-on-alert")
    assert status == cli.EXIT_UNREADABLE_INPUT
    assert f"{missing}: No such file or directory" in out
    assert f"{truncated}: line " in out
    assert "not a valid JSON document: the input ends inside the value" in out
    # The truncated document's records before the break are replayed too.
    assert "events 3" in out


def test_problems_reach_stderr_when_stdout_carries_data(capsys, tmp_path, events):
    missing = tmp_path / "missing.jsonl"
    status, out, err = run_cli(capsys, missing, events, "--format", "jsonl")
    assert status == cli.EXIT_UNREADABLE_INPUT
    assert len(out.splitlines()) == 1
    assert f"unreadable: {missing}" in err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--format", "xml"], id="unknown format"),
        pytest.param(["--no-such-option"], id="unknown option"),
        pytest.param(["--show-malformed", "-1"], id="negative count"),
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == cli.EXIT_USAGE


def test_a_path_that_is_not_a_repository_directory_is_a_usage_error(capsys, tmp_path, events):
    status, _, err = run_cli(capsys, events, "--path", tmp_path / "nowhere")
    assert status == cli.EXIT_USAGE
    assert "is not a directory" in err


def test_no_input_and_no_sample_dataset_is_a_usage_error(capsys, tmp_path):
    status, _, err = run_cli(capsys, "--path", tmp_path)
    assert status == cli.EXIT_USAGE
    assert "no sample dataset" in err


def test_an_unwritable_output_is_a_usage_error(capsys, tmp_path, events):
    status, _, err = run_cli(capsys, events, "--output", tmp_path / "no" / "such" / "dir.txt")
    assert status == cli.EXIT_USAGE
    assert "cannot write" in err


def test_a_repository_whose_rule_cannot_load_exits_5(capsys, tmp_path, events):
    repository = scratch_repository(
        tmp_path, "import no_such_module\n\ndef rule(e):\n    return 1\n"
    )
    status, _, err = run_cli(capsys, events, "--path", repository)
    assert status == cli.EXIT_RULES_UNLOADABLE
    assert "No module named 'no_such_module'" in err


def test_without_inputs_the_sample_dataset_under_path_is_replayed(capsys, tmp_path):
    repository = scratch_repository(tmp_path)
    layout = repository / "samples/cloudtrail/AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/20"
    write_delivery_object(layout / "a.json.gz", mixed_records(), compress=True)
    status, out, _ = run_cli(capsys, "--path", repository, "--format", "json")
    document = json.loads(out)
    assert status == cli.EXIT_OK
    assert document["records_read"] == 4
    assert document["alert_count"] == 1


def test_full_run_and_the_fast_path_report_the_same(capsys, tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [*mixed_records(), external_get(70), private_get(9)])
    reports = []
    for flags in ([], ["--full-run"]):
        document = json.loads(run_cli(capsys, path, "--format", "json", *flags)[1])
        reports.append({key: value for key, value in document.items() if "second" not in key})
    assert reports[0] == reports[1]


@pytest.mark.parametrize(
    ("terminal", "flags", "bar_shown"),
    [
        pytest.param(True, [], True, id="terminal: bar"),
        pytest.param(True, ["--no-progress"], False, id="terminal, --no-progress: none"),
        pytest.param(False, [], False, id="not a terminal: none"),
    ],
)
def test_progress_bar_only_on_a_terminal(
    capsys, monkeypatch, events, terminal, *, flags, bar_shown
):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    status, _, err = run_cli(capsys, events, *flags)
    assert status == cli.EXIT_OK
    assert ("replay:" in err) is bar_shown
    assert ("listing:" in err) is bar_shown


def console_script():
    return Path(sys.executable).with_name("detection-replay")


@pytest.mark.skipif(not console_script().exists(), reason="package not installed in this env")
def test_the_installed_command_reads_gzip_from_stdin(tmp_path):
    data = write_delivery_object(tmp_path / "in.gz", mixed_records(), compress=True).read_bytes()
    completed = subprocess.run(
        [console_script(), "-", "--format", "json", "--fail-on-alert"],
        input=data,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == cli.EXIT_ALERTS, completed.stderr
    document = json.loads(completed.stdout)
    assert document["records_read"] == 4
    assert rule_report(document)["alerts"][0]["first_event_at"] == "- line 1 record 1"
    assert completed.stderr == b""  # stderr is not a terminal: no progress bar
