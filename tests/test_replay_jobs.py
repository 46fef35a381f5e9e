"""--jobs N: pass 1 in N processes gives exactly the report one process gives."""

import gzip
import itertools
import json
import os
import signal
import threading

import pytest
from repo import REPO_ROOT
from test_replay_support import (
    SAMPLE_ALERTS,
    external_get,
    management,
    mixed_records,
    run_cli,
    scratch_repository,
    write_delivery_object,
    write_jsonl,
    write_lines,
)

from detection_replay.parallel import (
    BATCH_INPUTS,
    BATCHES_PER_WORKER,
    batches,
    default_jobs,
    worker_signals,
)

SAMPLES = REPO_ROOT / "samples" / "cloudtrail"
TIMING = ("seconds", "events_per_second")


@pytest.fixture(autouse=True)
def _no_other_thread():
    """Workers fork only from a one-thread process: a thread another test left running would
    turn every comparison below into one process against itself."""
    assert threading.enumerate() == [threading.main_thread()]


def report(capsys, *argv):
    """(exit status, the JSON report without its timings, stderr) of an in-process run."""
    status, out, err = run_cli(capsys, "--format", "json", "--no-progress", *argv)
    document = json.loads(out)
    for key in TIMING:
        document.pop(key)
    return status, document, err


@pytest.mark.parametrize("jobs", [2, 3])
def test_the_sample_day_gives_the_same_report_on_every_core_count(capsys, jobs):
    single = report(capsys, "--path", REPO_ROOT, "--jobs", "1")
    parallel = report(capsys, "--path", REPO_ROOT, "--jobs", str(jobs))
    assert parallel == single
    assert single[1]["alert_count"] == SAMPLE_ALERTS


def hostile_inputs(root):
    """Good and bad inputs together: malformed records, an unreadable gzip, a digest file."""
    root.mkdir()
    write_delivery_object(root / "a.json.gz", mixed_records(), compress=True)
    write_lines(root / "b.jsonl", [json.dumps(external_get(5)), "{not json", "[1, 2]", "{}"])
    (root / "c.json.gz").write_bytes(gzip.compress(b'{"Records": []}')[:-9])  # truncated
    write_jsonl(root / "d.jsonl", [management(7), external_get(61), external_get(-30)])
    digest = root / "AWSLogs" / "123456789012" / "CloudTrail-Digest" / "us-east-1"
    digest.mkdir(parents=True)
    (digest / "digest.json.gz").write_bytes(gzip.compress(b"{}"))
    write_jsonl(root / "e.jsonl", [external_get(n) for n in range(10, 40, 3)])
    return root


@pytest.mark.parametrize("jobs", [2, 4])
def test_bad_inputs_are_reported_identically_whatever_the_jobs(capsys, tmp_path, jobs):
    inputs = hostile_inputs(tmp_path / "logs")
    argv = ["--path", REPO_ROOT, "--show-malformed", "2", str(inputs)]
    single = report(capsys, "--jobs", "1", *argv)
    parallel = report(capsys, "--jobs", str(jobs), *argv)
    assert parallel[:2] == single[:2]
    status, document, _ = single
    assert status == 3  # the truncated gzip
    assert document["malformed"] == 4  # "{not json", the two values of "[1, 2]", "{}"
    assert len(document["malformed_examples"]) == 2
    assert document["unreadable_inputs"] == 1


STATEFUL_RULE = """
from panther_detection_helpers.caching import increment_counter


def rule(event):
    # Every other GetObject of a caller matches: the decision depends on what came before.
    if event.get("eventName") != "GetObject":
        return False
    return increment_counter(event.deep_get("userIdentity", "principalId")) % 2 == 0
"""


def test_a_rule_whose_rule_reads_the_store_is_replayed_in_order(capsys, tmp_path):
    repository = scratch_repository(tmp_path, STATEFUL_RULE)
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(4):
        write_jsonl(logs / f"{n}.jsonl", [external_get(10 * n + m) for m in range(3)])
    single = report(capsys, "--path", repository, "--jobs", "1", logs)
    parallel = report(capsys, "--path", repository, "--jobs", "2", logs)
    assert parallel[:2] == single[:2]
    assert single[1]["matched"] == 6  # 12 reads by one caller: every other one
    # Its events were left undecided by pass 1 and evaluated in time order in pass 2, wherever
    # pass 1 ran: nothing is read twice.
    assert single[2] == parallel[2] == ""


def test_the_default_is_the_cores_this_process_may_use():
    assert default_jobs() == len(os.sched_getaffinity(0))


def test_with_another_thread_running_pass_1_stays_in_this_process_and_says_so(capsys):
    single = report(capsys, "--path", REPO_ROOT, "--jobs", "1")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="host-thread")
    other.start()
    try:
        guarded = report(capsys, "--path", REPO_ROOT, "--jobs", "2")
    finally:
        stop.set()
        other.join()
    assert guarded[:2] == single[:2]
    assert "1 other thread(s) run in this process" in guarded[2]
    assert "pass 1 runs in one process" in guarded[2]


def test_workers_die_quietly_on_sigterm_and_leave_ctrl_c_to_the_parent():
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, lambda *_: None)  # as the command's own handler
    try:
        worker_signals()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


@pytest.mark.parametrize(
    ("inputs", "jobs"),
    [(2, 2), (3, 8), (17, 2), (3_324, 2), (3_324, 64), (100_000, 2), (100_001, 3)],
)
def test_batches_cover_every_input_once_in_order_and_stay_small(inputs, jobs):
    runs = list(batches(iter(range(inputs)), jobs))
    assert list(itertools.chain.from_iterable(runs)) == list(range(inputs))
    assert all(0 < len(run) <= BATCH_INPUTS for run in runs)
    assert len(runs) >= min(inputs, jobs * BATCHES_PER_WORKER)


def test_the_first_runs_go_to_the_workers_while_the_listing_goes_on():
    listed = []

    def listing():
        for number in range(10_000):
            listed.append(number)
            yield number

    runs = batches(listing(), 2)
    assert next(runs) == [0]
    assert listed == [0]
    later = list(itertools.islice(runs, 100))
    assert len(listed) == sum(map(len, later)) + 1 < 10_000
