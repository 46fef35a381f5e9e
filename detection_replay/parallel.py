"""Pass 1 on every core: inputs decoded and matched in worker processes, merged in input order.

Whether an event matches is a pure function of the event (a rule's rule() reads the event, not
the key-value store), so each input can be read, checked and matched in a process of its own.
What a worker finds in one input (counts, malformed records, unreadable parts, rule errors and
the matching records) comes back to the parent, which takes the inputs' findings in input
order, exactly as one process would have found them. Everything that depends on order and
state (the key-value store, titles, severities, grouping) stays in pass 2, in the parent.

Workers are forked from the parent after it loaded the rules, so they start at once with the
same rules, helpers and options. The parent goes on listing the inputs while they read the first
ones (listing a bucket's month of objects takes many requests): each task carries the inputs it
is for. A fork copies only the forking thread: a lock another thread held at that moment stays
held in the child for good, and the child can hang on it. So pass 1 forks only from a process
running one thread (the command is one); a host running others (a test suite with a server
thread, an application) gets pass 1 in its own process, and is told.

A rule whose rule() does read the store would match differently in parallel; when a worker
sees a store call during pass 1, the parent discards the parallel results and replays pass 1
in one process, in order, and says so on stderr.
"""

import collections
import itertools
import multiprocessing
import os
import signal
import sys
import threading
from collections import Counter
from dataclasses import dataclass

from detection_replay.rules import ERROR_EXAMPLES_KEPT

BATCHES_PER_WORKER = 8
BATCH_INPUTS = 64
# The parent's replay, inherited by the forked workers (never pickled).
_replay = None


def default_jobs():
    """The cores this process may run on (its affinity mask), as os.process_cpu_count() says."""
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counter is not None:
        return counter() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity masks on this platform
        return os.cpu_count() or 1


def fork_hazard():
    """Why forking workers now is unsafe or impossible, or None."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork"
    others = threading.active_count() - 1
    if others:
        return f"{others} other thread(s) run in this process and a forked worker could hang"
    return None


@dataclass
class InputFindings:
    """What pass 1 found in a batch of inputs, as plain data a worker sends back."""

    records_read: int
    evaluated: int
    malformed: int
    malformed_examples: list
    unreadable: list
    skipped_inputs: list
    digest_files: int
    sources_read: int
    inputs_with_records: int
    rule_matched: list
    rule_errors: list
    matches: list
    store_calls: int


def worker_signals():
    """A worker's signal handling: the parent's SIGTERM handler (inherited by the fork) would
    print a traceback when the pool ends its workers, and Ctrl-C, which reaches the whole
    process group, is the parent's to handle (it ends the workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _findings_of(run):
    """Pass 1 over a run of consecutive inputs, in a worker, with counters of its own."""
    replay = _replay.fresh()
    for source in run:
        replay.replay_source(source)
    return InputFindings(
        records_read=replay.totals.records_read,
        evaluated=replay.totals.evaluated,
        malformed=replay.malformed.count,
        malformed_examples=replay.malformed.examples,
        unreadable=replay.unreadable,
        skipped_inputs=replay.skipped_inputs,
        digest_files=replay.digest_files,
        sources_read=replay.sources_read,
        inputs_with_records=replay.inputs_with_records,
        rule_matched=[rule.matched for rule in replay.rules],
        rule_errors=[(dict(rule.errors.counts), rule.errors.examples) for rule in replay.rules],
        matches=list(replay.matches.encoded()),
        store_calls=replay.store.calls,
    )


def batches(sources, jobs):
    """Runs of consecutive inputs, cut as the inputs are found: each as long as the inputs found
    so far shared by BATCHES_PER_WORKER runs per worker, at least one and at most BATCH_INPUTS.
    The total is not known while the listing goes on, so runs start short (a few large inputs
    still go to every worker), grow (thousands of small ones cost few messages) and stay short
    enough that the workers finish together."""
    run = []
    for found, source in enumerate(sources, 1):
        run.append(source)
        if len(run) >= min(BATCH_INPUTS, max(1, found // (jobs * BATCHES_PER_WORKER))):
            yield run
            run = []
    if run:
        yield run


def first_pass(replay, sources, jobs):
    """Pass 1 of `replay` over `sources` in `jobs` worker processes, merged in input order."""
    global _replay  # noqa: PLW0603 (handed to the forked workers)
    sources = iter(sources)
    head = list(itertools.islice(sources, jobs))  # no more workers than inputs
    unsafe = fork_hazard()
    if len(head) < 2 or unsafe:
        if unsafe and len(head) >= 2:
            print(f"detection-replay: {unsafe}, so pass 1 runs in one process", file=sys.stderr)
        for source in itertools.chain(head, sources):
            replay.replay_source(source)
        return
    # The pool's task thread lists the rest while the workers read: it keeps every input in
    # order (to read again if need be) and each run's inputs (for the progress bar).
    listed, sent = [], collections.deque()

    def tasks():
        for run in batches(itertools.chain(head, sources), jobs):
            listed.extend(run)
            sent.append(run)
            yield run

    _replay = replay
    try:
        found = []
        context = multiprocessing.get_context("fork")
        with context.Pool(len(head), initializer=worker_signals) as pool:
            for findings in pool.imap(_findings_of, tasks()):
                found.append(findings)
                run = sent.popleft()
                if replay.progress:
                    for source in run:
                        replay.progress.finish(source)
    finally:
        _replay = None
    if any(findings.store_calls for findings in found):
        print(
            "detection-replay: a rule reads the key-value store in rule(), so whether it "
            "matches depends on the order of events: pass 1 runs again in one process",
            file=sys.stderr,
        )
        for source in listed:
            replay.replay_source(source)
        return
    for findings in found:
        merge(replay, findings)


def merge(replay, findings):
    """Add a batch's findings to the replay, as if it had read the inputs itself."""
    offset = replay.totals.records_read
    replay.totals.records_read += findings.records_read
    replay.totals.evaluated += findings.evaluated
    replay.totals.matched += sum(findings.rule_matched)
    malformed = replay.malformed
    room = max(malformed.examples_kept - len(malformed.examples), 0)
    malformed.examples.extend(findings.malformed_examples[:room])
    malformed.count += findings.malformed
    replay.unreadable.extend(findings.unreadable)
    replay.skipped_inputs.extend(findings.skipped_inputs)
    replay.digest_files += findings.digest_files
    replay.sources_read += findings.sources_read
    replay.inputs_with_records += findings.inputs_with_records
    for rule, matched, (counts, examples) in zip(
        replay.rules, findings.rule_matched, findings.rule_errors, strict=True
    ):
        rule.matched += matched
        rule.errors.counts.update(Counter(counts))
        room = max(ERROR_EXAMPLES_KEPT - len(rule.errors.examples), 0)
        rule.errors.examples.extend(examples[:room])
    for seconds, digest, sequence, *rest in findings.matches:
        replay.matches.add_entry((seconds, digest, offset + sequence, *rest))
