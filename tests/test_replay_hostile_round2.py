"""A second hostile round: standard input beside other inputs under --jobs, a worker killed,
Ctrl-C under --jobs, inputs read twice, inputs holding no CloudTrail record, a reader closing
stdout early, and the package's imports running one way.

Each table pins one class of what a careful user found; every case failed (or hung) before it
was fixed. S3's cases (digest files, empty key segments, overlapping prefixes) are in
test_replay_s3.py, beside the local S3 server.
"""

import ast
import graphlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from repo import REPO_ROOT
from test_replay_failures import AS_FROM_A_TERMINAL
from test_replay_support import (
    external_get,
    management,
    mixed_records,
    replay,
    run_cli,
    scratch_repository,
    write_delivery_object,
    write_jsonl,
    write_lines,
)

import detection_replay
from detection_replay import cli, parallel
from detection_replay.inputs import discover

REPLAY = [sys.executable, "-m", "detection_replay", "--no-progress"]
PACKAGE = Path(detection_replay.__file__).parent


def started(argv):
    """The command in a process group of its own (so that it ends with its workers)."""
    return subprocess.Popen(
        [sys.executable, *map(str, argv)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finished(child, stdin=b"", timeout=120):
    """(status, stdout, stderr); a run that outlives `timeout` is killed with its workers and
    the test fails, so a hang is a failure, never a stuck suite."""
    try:
        out, err = child.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"the replay still ran after {timeout} s: it hung")
    return child.returncode, out.decode(), err.decode()


def command(argv, *, stdin=b"", timeout=120):
    return finished(started([*REPLAY[1:], *argv]), stdin, timeout)


def json_report(argv, **options):
    status, out, err = command(["--format", "json", *argv], **options)
    return status, json.loads(out), err


def alert_dicts(document):
    """The alerts, without where they were first seen (an input's name differs by route)."""
    return [
        {key: value for key, value in alert.items() if key != "first_event_at"}
        for rule in document["rules"]
        for alert in rule["alerts"]
    ]


# --- 1. standard input beside other inputs, under --jobs --------------------------------


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(["-", "a", "b"], id="stdin first"),
        pytest.param(["a", "-", "b"], id="stdin between files"),
        pytest.param(["a", "b", "-"], id="stdin last"),
    ],
)
def test_standard_input_beside_other_inputs_is_read_by_the_workers(tmp_path, order):
    files = {
        "a": write_jsonl(tmp_path / "a.jsonl", [external_get(0), management(1)]),
        "b": write_jsonl(tmp_path / "b.jsonl", [external_get(2), external_get(70)]),
    }
    piped = "".join(json.dumps(record) + "\n" for record in mixed_records()).encode()
    argv = ["--path", REPO_ROOT, *(files.get(name, name) for name in order)]
    single = json_report(["--jobs", "1", *argv], stdin=piped)
    parallel = json_report(["--jobs", "2", *argv], stdin=piped)
    assert single[1]["records_read"] == 8
    assert parallel[1]["records_read"] == 8
    assert alert_dicts(parallel[1]) == alert_dicts(single[1])
    assert parallel[0] == single[0] == cli.EXIT_OK


STATEFUL_RULE = """
from panther_detection_helpers.caching import increment_counter


def rule(event):
    if event.get("eventName") != "GetObject":
        return False
    return increment_counter(event.deep_get("userIdentity", "principalId")) % 2 == 0
"""


def test_standard_input_beside_a_rule_reading_the_store_is_read_once(tmp_path):
    """A rule reading the store in rule() leaves its events to pass 2, wherever pass 1 ran: the
    workers' reading of standard input stands, and the report is one process's."""
    repository = scratch_repository(tmp_path, STATEFUL_RULE)
    files = [write_jsonl(tmp_path / f"{n}.jsonl", [external_get(n)]) for n in range(2)]
    piped = (json.dumps(external_get(9)) + "\n").encode()
    argv = ["--path", repository, "-", *files]
    single = json_report(["--jobs", "1", *argv], stdin=piped)
    parallel = json_report(["--jobs", "2", *argv], stdin=piped)
    assert parallel[0] == single[0] == cli.EXIT_OK
    assert parallel[1]["records_read"] == single[1]["records_read"] == 3
    assert parallel[1]["unreadable"] == []
    assert parallel[1]["matched"] == single[1]["matched"] == 1  # the second GetObject in time
    assert "runs again" not in parallel[2]


# --- 2. a worker that dies ends the replay, with its cause and status 8 --------------------

DYING_RULE = """
import multiprocessing
import os
import signal


def rule(event):
    # Only in a worker (a forked child): the command's own process is never hit.
    if multiprocessing.parent_process() is not None and event.get("eventName") == "Die":
        how = event.get("how")
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), getattr(signal, how))
    return event.get("eventName") == "GetObject"
"""


@pytest.mark.parametrize(
    ("how", "said"),
    [
        pytest.param(
            "SIGKILL",
            "was killed by SIGKILL (as the kernel's out-of-memory killer does)",
            id="out-of-memory kill",
        ),
        pytest.param("SIGSEGV", "was killed by SIGSEGV", id="crash"),
        pytest.param("exit", "ended with status 3", id="exit"),
    ],
)
def test_a_worker_that_dies_ends_the_replay_with_its_cause_and_status_8(tmp_path, how, said):
    repository = scratch_repository(tmp_path, DYING_RULE)
    death = {**external_get(1), "eventName": "Die", "how": how}
    inputs = [
        write_jsonl(tmp_path / "0.jsonl", [external_get(0)]),
        write_jsonl(tmp_path / "1.jsonl", [death]),
        *(write_jsonl(tmp_path / f"{n}.jsonl", [external_get(n)]) for n in range(2, 6)),
    ]
    status, out, err = command(["--path", repository, "--jobs", "2", *inputs], timeout=60)
    assert status == cli.EXIT_WORKER_DIED
    assert out == ""
    assert f"detection-replay: error: a worker process (--jobs) {said} while the inputs" in err
    assert "the replay stopped" in err
    assert "; so far: records read " in err
    assert "Traceback" not in err
    # The same inputs in one process: the rule only dies in a worker.
    single = command(["--path", repository, "--jobs", "1", *inputs], timeout=60)
    assert single[0] == cli.EXIT_OK


# --- 3. Ctrl-C and SIGTERM under --jobs report what was read so far ------------------------

STALLING_RULE = """
import multiprocessing
import time
from pathlib import Path


def rule(event):
    if multiprocessing.parent_process() is not None:  # only in a worker
        for path in event.get("waitFor") or []:  # until the other inputs' last records are read
            deadline = time.monotonic() + 60
            while not Path(path).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        if event.get("marker"):
            Path(event.get("marker")).touch()
        if event.get("eventName") == "Stall":
            time.sleep(600)
    return event.get("eventName") == "GetObject"
"""


@pytest.mark.parametrize(
    ("sent", "status", "said"),
    [
        pytest.param(signal.SIGINT, cli.EXIT_INTERRUPTED, "interrupted", id="Ctrl-C"),
        pytest.param(signal.SIGTERM, cli.EXIT_TERMINATED, "terminated", id="SIGTERM"),
    ],
)
def test_an_interrupted_parallel_replay_reports_the_records_read_so_far(
    tmp_path, sent, status, said
):
    repository = scratch_repository(tmp_path, STALLING_RULE)
    read_a, read_b, stalling = (tmp_path / name for name in ("read-a", "read-b", "stalling"))
    stall = {**management(5), "eventName": "Stall", "marker": str(stalling)}
    inputs = [
        write_jsonl(
            tmp_path / "a.jsonl", [external_get(0), {**external_get(1), "marker": str(read_a)}]
        ),
        write_jsonl(
            tmp_path / "b.jsonl",
            [external_get(2), management(3), {**external_get(4), "marker": str(read_b)}],
        ),
        write_jsonl(tmp_path / "stall.jsonl", [{**stall, "waitFor": [str(read_a), str(read_b)]}]),
    ]

    def stalled():
        # A worker holds the stalling input, and the other inputs were read whole; their
        # findings need a moment more to come back to the command.
        if not stalling.exists():
            return False
        time.sleep(1)
        return True

    child = started(["-c", AS_FROM_A_TERMINAL, "--path", repository, "--jobs", "2", *inputs])
    deadline = time.monotonic() + 60
    while not stalled() and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(sent)
    code, _, err = finished(child, timeout=60)
    assert code == status
    assert f"{said}; so far: records read 5, evaluated 5, matched 4" in err
    assert "Traceback" not in err


# --- 4. an input met twice is read once, and the report says so ---------------------------


def twice_layout(root):
    """Two files in logs/ (one in a subdirectory) and one beside it."""
    write_delivery_object(root / "logs" / "a.json", mixed_records())
    write_jsonl(root / "logs" / "sub" / "b.jsonl", [external_get(5), external_get(6)])
    write_jsonl(root / "c.jsonl", [external_get(70)])
    os.link(root / "c.jsonl", root / "hard-link-to-c.jsonl")
    return root


# (arguments, records in the files they name, the one input listed as skipped, why)
NAMED_AGAIN = "named more than once, or inside a folder also named"
TWICE = {
    "a file named twice": (["c.jsonl", "c.jsonl"], 1, "c.jsonl", f"{NAMED_AGAIN}: read once"),
    "a directory and a file inside it": (
        ["logs", "logs/a.json"],
        6,
        "logs/a.json",
        f"{NAMED_AGAIN}: read once",
    ),
    "a file and then its directory": (
        ["logs/sub/b.jsonl", "logs"],
        6,
        "logs/sub/b.jsonl",
        f"{NAMED_AGAIN}: read once",
    ),
    "a directory named twice": (["logs", "logs"], 6, "logs", f"{NAMED_AGAIN}: walked once"),
    "a directory and its subdirectory": (
        ["logs", "logs/sub"],
        6,
        "logs/sub",
        f"{NAMED_AGAIN}: walked once",
    ),
    "a subdirectory and then its parent": (
        ["logs/sub", "logs"],
        6,
        "logs/sub",
        f"{NAMED_AGAIN}: walked once",
    ),
    "a hard link beside the file": (
        ["c.jsonl", "hard-link-to-c.jsonl"],
        1,
        "hard-link-to-c.jsonl",
        "the same input as {root}/c.jsonl: read once",
    ),
}


@pytest.mark.parametrize("case", list(TWICE))
def test_an_input_met_twice_is_read_once_and_listed_as_skipped(tmp_path, rule_set, case):
    root = twice_layout(tmp_path)
    arguments, records, skipped, reason = TWICE[case]
    result = replay(rule_set, *(root / argument for argument in arguments))
    assert result.totals.records_read == records
    assert result.skipped_inputs == [
        {"input": str(root / skipped), "reason": reason.format(root=root)}
    ]


@pytest.fixture(scope="module")
def rule_set():
    from detection_replay.rules import load_rules

    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def test_standard_input_named_twice_is_one_input():
    sources = list(discover(["-", "-"]))
    assert [source.skipped for source in sources] == [
        None,
        "named more than once, or inside a folder also named: read once",
    ]


def test_a_repeated_input_is_said_on_stderr_and_in_skipped_inputs(capsys, tmp_path):
    events = write_jsonl(tmp_path / "events.jsonl", mixed_records())
    status, out, err = run_cli(capsys, "--path", REPO_ROOT, "--format", "json", events, events)
    document = json.loads(out)
    assert status == cli.EXIT_OK
    assert document["records_read"] == 4
    assert document["skipped_inputs"] == [
        {
            "input": str(events),
            "reason": "named more than once, or inside a folder also named: read once",
        }
    ]
    assert f"skipped: {events}: named more than once" in err


# --- 7. an input holding no CloudTrail record at all --------------------------------------


def eventbridge(record):
    return {
        "version": "0",
        "id": "6f1b2c9e-0000-4000-8000-000000000000",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.s3",
        "account": "123456789012",
        "time": record["eventTime"],
        "region": "us-east-1",
        "resources": [],
        "detail": record,
    }


def cloudwatch_logs(records):
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "aws-cloudtrail-logs",
        "logStream": "123456789012_CloudTrail_us-east-1",
        "subscriptionFilters": ["to-firehose"],
        "logEvents": [
            {"id": str(n), "timestamp": 0, "message": json.dumps(record)}
            for n, record in enumerate(records)
        ],
    }


FOREIGN = {
    "EventBridge-wrapped CloudTrail": (
        lambda path: write_jsonl(path, [eventbridge(external_get(n)) for n in range(3)]),
        'they look like EventBridge events, which carry the CloudTrail record under "detail"',
    ),
    "CloudWatch Logs subscription messages": (
        lambda path: write_jsonl(path, [cloudwatch_logs([external_get(0), external_get(1)])]),
        "they look like CloudWatch Logs subscription messages",
    ),
    "a CloudTrail Lake CSV export": (
        lambda path: write_lines(
            path,
            [
                "eventid,eventtime,eventsource,eventname,sourceipaddress",
                "0b3c...,2026-11-20 09:00:00.000,s3.amazonaws.com,GetObject,198.199.88.17",
            ],
        ),
        "text that is not JSON, such as CSV",
    ),
    "a digest file outside AWSLogs/": (
        lambda path: write_jsonl(
            path, [{"awsAccountId": "123456789012", "digestStartTime": "x", "logFiles": []}]
        ),
        "they look like CloudTrail digest files",
    ),
    "records without eventTime": (
        lambda path: write_jsonl(path, [{"eventName": "GetObject"}] * 2),
        "(the first: missing required field eventTime)",
    ),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_an_input_without_a_cloudtrail_record_is_named_and_fails_the_run(capsys, tmp_path, case):
    write, described = FOREIGN[case]
    foreign = write(tmp_path / "foreign.json")
    good = write_jsonl(tmp_path / "good.jsonl", mixed_records())
    status, out, err = run_cli(
        capsys, "--path", REPO_ROOT, "--format", "json", "--fail-on-alert", good, foreign
    )
    document = json.loads(out)
    assert status == cli.EXIT_UNREADABLE_INPUT  # not 0, and not 1: the run did not see it all
    (item,) = document["unreadable"]
    assert item["input"] == str(foreign)
    assert item["error"].startswith("no CloudTrail record among its ")
    assert described in item["error"]
    assert f"unreadable: {foreign}: no CloudTrail record" in err
    assert document["alert_count"] == 1  # the good input's alert is still reported
    assert document["records_read"] == document["evaluated"] + document["malformed"]


def test_an_input_with_one_good_record_among_bad_ones_is_read_as_before(capsys, tmp_path):
    mixed = write_lines(tmp_path / "mixed.jsonl", ["{not json", json.dumps(external_get(0))])
    status, out, _ = run_cli(capsys, "--path", REPO_ROOT, "--format", "json", mixed)
    assert status == cli.EXIT_OK
    assert json.loads(out)["unreadable"] == []


# --- 8. a reader closing standard output early --------------------------------------------


@pytest.fixture(scope="module")
def many_alerts(tmp_path_factory):
    """600 alerts (one per outside address): a report far larger than a pipe's buffer."""
    path = tmp_path_factory.mktemp("many") / "many.jsonl"
    addresses = (f"45.33.{n // 200}.{n % 200 + 1}" for n in range(600))
    return write_jsonl(path, [external_get(0, sourceIPAddress=ip) for ip in addresses])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--format", "json"], id="json"),
        pytest.param(["--format", "jsonl"], id="jsonl"),
        pytest.param(["--format", "text"], id="text"),
        pytest.param(["--format", "jsonl", "-o", "/dev/stdout"], id="-o /dev/stdout"),
    ],
)
def test_a_reader_closing_stdout_early_is_said_with_status_6(many_alerts, options):
    child = subprocess.Popen(
        [*REPLAY, "--path", str(REPO_ROOT), "--jobs", "1", *options, str(many_alerts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = child.stdout.read(100)  # as `| head -c 100`: then the reader is gone
    child.stdout.close()
    try:
        err = child.stderr.read().decode()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert len(head) == 100
    assert child.returncode == cli.EXIT_REPORT_UNWRITTEN
    assert "cannot write the report to " in err
    assert "Broken pipe after " in err
    assert "Traceback" not in err


class ShortWrites:
    """A stream taking at most `most` bytes a call, then failing as a closed pipe does."""

    def __init__(self, most, fail_after):
        self.most, self.fail_after, self.taken = most, fail_after, bytearray()

    def write(self, data):
        if len(self.taken) >= self.fail_after:
            raise BrokenPipeError(32, "Broken pipe")
        piece = bytes(data[: self.most])
        self.taken += piece
        return len(piece)


@pytest.mark.parametrize(
    ("most", "fail_after", "message"),
    [
        pytest.param(7, 10**9, None, id="short writes go on to the end"),
        pytest.param(1 << 16, 1 << 16, "Broken pipe after 65,536 of 100,000 bytes", id="EPIPE"),
    ],
)
def test_write_whole_writes_everything_or_says_how_much(most, fail_after, message):
    data = bytes(range(256)) * 390 + b"end" + b"." * 157
    assert len(data) == 100_000
    stream = ShortWrites(most, fail_after)
    if message is None:
        cli.write_whole(stream, data)
        assert stream.taken == data
    else:
        with pytest.raises(OSError, match=message):
            cli.write_whole(stream, data)


# --- exit statuses and imports ------------------------------------------------------------


def test_every_exit_status_is_documented_in_help_and_readme(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = capsys.readouterr().out
    readme = (REPO_ROOT / "README.md").read_text()
    listed = " ".join(readme[readme.index("- **Exit status**: 0 clean") :].split("\n- ")[0].split())
    names = {name: value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    for name, status in names.items():
        assert f"\n  {status}  " in help_text, name
        assert f" {status} " in listed, name
    # A worker's death has a status of its own, which no other outcome shares.
    assert [name for name, value in names.items() if value == cli.EXIT_WORKER_DIED] == [
        "EXIT_WORKER_DIED"
    ]
    assert f" {cli.EXIT_WORKER_DIED} a `--jobs` worker process died" in listed


def package_imports():
    """{module: the package's modules it imports}, function-level imports included."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        module = f"detection_replay.{path.stem}"
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            imported |= {
                name for name in names if name.startswith("detection_replay.") and name != module
            }
        graph[module] = {name for name in imported if (PACKAGE / f"{name[17:]}.py").exists()}
    return graph


def test_the_packages_imports_run_one_way():
    graph = package_imports()
    assert "detection_replay.sources" in graph["detection_replay.s3_inputs"]
    assert "detection_replay.inputs" not in graph["detection_replay.s3_inputs"]
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError on a cycle
    assert order.index("detection_replay.sources") < order.index("detection_replay.inputs")


class ReapedElsewhere:
    """A worker the executor's own thread reaped first: its exit code reads None until that
    thread has recorded it on the shared process object."""

    def __init__(self, unknown_reads):
        self.unknown_reads = unknown_reads

    def join(self, timeout=None):
        pass

    @property
    def exitcode(self):
        self.unknown_reads -= 1
        return None if self.unknown_reads >= 0 else -9


def test_a_dead_workers_exit_code_is_waited_for_when_another_thread_reaped_it():
    assert parallel._exit_code(ReapedElsewhere(3)) == -9
    assert parallel._exit_code(ReapedElsewhere(10**9), seconds=0.05) is None  # never ended
