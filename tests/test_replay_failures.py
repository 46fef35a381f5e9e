"""The report never destroys anything, the rules come from the repository meant, and every
failure ends with one line and its documented exit status (never a traceback, never 1)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from repo import REPO_ROOT
from test_replay_support import (
    external_get,
    mixed_records,
    rule_report,
    run_cli,
    scratch_repository,
    write_jsonl,
)

from detection_replay import cli
from detection_replay.engine import Replay


@pytest.fixture
def events(tmp_path):
    return write_jsonl(tmp_path / "events.jsonl", mixed_records())


# --- 4. the output never destroys anything ------------------------------------------------------


def test_an_output_naming_an_input_is_refused_before_anything_is_read(capsys, events):
    before = events.read_bytes()
    status, _, err = run_cli(capsys, events, "--path", REPO_ROOT, "-o", events)
    assert status == cli.EXIT_USAGE
    assert "is also an input" in err
    assert events.read_bytes() == before


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param("rules", id="rules fail to load"),
        pytest.param("interrupt", id="Ctrl-C while replaying"),
    ],
)
def test_a_failed_run_leaves_an_earlier_report_intact(
    capsys, monkeypatch, tmp_path, events, failure
):
    report = tmp_path / "report.json"
    report.write_text("earlier report\n")
    repository = REPO_ROOT
    if failure == "rules":
        repository = scratch_repository(tmp_path, "import no_such_module\n")
        expected = cli.EXIT_RULES_UNLOADABLE
    else:

        def interrupted(self, sources, jobs=1):
            self.totals.records_read = 7
            raise KeyboardInterrupt

        monkeypatch.setattr(Replay, "run", interrupted)
        expected = cli.EXIT_INTERRUPTED
    status, _, err = run_cli(capsys, events, "--path", repository, "-o", report)
    assert status == expected
    assert report.read_text() == "earlier report\n"
    assert [name for name in os.listdir(tmp_path) if name.startswith(".report")] == []
    if failure == "interrupt":
        assert "interrupted; so far: records read 7" in err


def test_the_report_inside_an_input_directory_is_never_read_as_an_input(capsys, tmp_path):
    logs = tmp_path / "logs"
    write_jsonl(logs / "events.jsonl", mixed_records())
    report = logs / "report.json"
    for _ in range(2):
        status, _, _ = run_cli(
            capsys, logs, "--path", REPO_ROOT, "--format", "json", "--strict", "-o", report
        )
        assert status == cli.EXIT_OK  # a report read as logs would be a malformed record
        assert json.loads(report.read_text())["records_read"] == 4


def test_dash_output_means_standard_output(capsys, events):
    status, out, _ = run_cli(capsys, events, "--path", REPO_ROOT, "--format", "json", "-o", "-")
    assert status == cli.EXIT_OK
    assert json.loads(out)["records_read"] == 4
    assert not Path("-").exists()


# --- 9. the repository meant, and only its analysis directories -------------------------------


def test_the_repository_is_found_above_the_working_directory(capsys, monkeypatch, events):
    monkeypatch.chdir(REPO_ROOT / "tests")
    status, out, _ = run_cli(capsys, events, "--format", "json")
    assert status == cli.EXIT_OK
    assert json.loads(out)["repository"] == str(REPO_ROOT)


def test_outside_a_repository_the_run_stops_at_once_naming_path(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    status, _, err = run_cli(capsys, "-")
    assert time.perf_counter() - started < 1
    assert status == cli.EXIT_USAGE
    assert "no detection repository at or above" in err
    assert "--path" in err


def test_only_the_analysis_directories_are_loaded(capsys, tmp_path, events):
    repository = scratch_repository(tmp_path)
    # A downloaded repository, test fixtures or logs below the root: never imported as rules.
    stray = repository / "downloads" / "other-repo" / "rules"
    stray.mkdir(parents=True)
    (stray / "evil.py").write_text(
        "raise SystemExit('imported')\n\ndef rule(e):\n    return True\n"
    )
    (stray / "evil.yml").write_text(
        "AnalysisType: rule\nFilename: evil.py\nRuleID: Evil.Rule\nEnabled: true\n"
        "LogTypes:\n  - AWS.CloudTrail\nSeverity: Low\n"
    )
    status, out, _ = run_cli(capsys, events, "--path", repository, "--format", "json")
    assert status == cli.EXIT_OK
    document = json.loads(out)
    assert [rule["rule_id"] for rule in document["rules"]] == [
        "AWS.CloudTrail.VPCE.AccessDenied",
        "AWS.CloudTrail.VPCE.ExternalPrincipal",
        "AWS.CloudTrail.VPCE.ManySecretsRead",
        "AWS.CloudTrail.VPCE.S3ExternalIP",
        "AWS.CloudTrail.VPCE.S3ExternalIPBulkAccess",
        "AWS.CloudTrail.VPCE.SensitiveAPICalls",
    ]
    assert document["rules_not_replayed"] == []


# --- 10. clean failure --------------------------------------------------------------------------


def test_file_names_that_are_not_utf8_are_reported_in_every_format(capsys, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    name = os.fsdecode(b"bad\xff.jsonl")
    (logs / name).write_text(json.dumps(external_get(0)) + "\n{oops\n")
    for form in ("json", "jsonl", "text"):
        status, out, err = run_cli(capsys, logs, "--path", REPO_ROOT, "--format", form)
        assert status == cli.EXIT_OK
        assert "bad\\xff.jsonl line 2" in out + err
    document = json.loads(run_cli(capsys, logs, "--path", REPO_ROOT, "--format", "json")[1])
    assert rule_report(document)["alerts"][0]["first_event_at"].endswith("bad\\xff.jsonl line 1")


def shell(command, tmp_path, **options):
    """Run a shell command line using the installed interpreter; (status, stdout, stderr)."""
    environment = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PYTHONPATH": ""}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    replay = f"{sys.executable} -m detection_replay --path {REPO_ROOT} --no-progress"
    done = subprocess.run(
        ["bash", "-c", command.replace("REPLAY", replay)],
        capture_output=True,
        env=environment,
        timeout=120,
        check=False,
        **options,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.parametrize(
    ("command", "status", "message"),
    [
        pytest.param(
            "REPLAY EVENTS -o /dev/full",
            cli.EXIT_REPORT_UNWRITTEN,
            "cannot write the report to /dev/full: No space left on device",
            id="full disk",
        ),
        pytest.param(
            "REPLAY EVENTS >&-",
            cli.EXIT_REPORT_UNWRITTEN,
            "cannot write the report to standard output",
            id="stdout closed",
        ),
        pytest.param(
            "REPLAY - <&-", cli.EXIT_UNREADABLE_INPUT, "standard input is closed", id="stdin closed"
        ),
        pytest.param("REPLAY EVENTS --fail-on-alert 2>&-", cli.EXIT_ALERTS, "", id="stderr closed"),
    ],
)
def test_closed_and_full_outputs_end_with_one_line_and_their_status(
    tmp_path, events, command, status, message
):
    code, out, err = shell(command.replace("EVENTS", str(events)), tmp_path)
    assert code == status
    assert "Traceback" not in err
    if message:
        assert message in out + err
        assert len(err.strip().splitlines()) <= 2  # the cause (and the run's own notes)


# A shell that starts a run in the background (as CI may) makes it ignore SIGINT, and Python
# then never turns Ctrl-C into KeyboardInterrupt: give the replay Ctrl-C as a terminal would.
AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'detection-replay'; runpy.run_module('detection_replay', run_name='__main__')"
)


@pytest.mark.parametrize(
    ("sent", "status", "said"),
    [
        pytest.param(signal.SIGINT, cli.EXIT_INTERRUPTED, "interrupted; so far:", id="Ctrl-C"),
        pytest.param(signal.SIGTERM, cli.EXIT_TERMINATED, "terminated; so far:", id="SIGTERM"),
    ],
)
def test_a_signal_ends_the_run_with_its_status_totals_and_no_temporary_files(
    tmp_path, sent, status, said
):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", AS_FROM_A_TERMINAL, "--path", str(REPO_ROOT), "--no-progress", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    line = (json.dumps(external_get(0)) + "\n").encode()
    child.stdin.write(line * 100)
    child.stdin.flush()
    deadline = time.monotonic() + 60
    # The rules are loaded (their helpers copied to a temporary directory): the replay is on.
    while not os.listdir(temporary) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(sent)
    _, err = child.communicate(timeout=60)
    assert child.returncode == status
    assert said in err.decode()
    assert "Traceback" not in err.decode()
    assert os.listdir(temporary) == []
