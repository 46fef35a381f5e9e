"""Pass 1 on every core: inputs decoded and matched in worker processes, merged in input order.

Whether an event matches is a pure function of the event (a rule's rule() reads the event, not
the key-value store), so each input can be read, checked and matched in a process of its own.
What a worker finds in one input (counts, malformed records, unreadable parts, rule errors and
the matching records) comes back to the parent, which takes the inputs' findings in input
order, exactly as one process would have found them. Everything that depends on order and
state (the key-value store, titles, severities, grouping) stays in pass 2, in the parent.

Workers are forked from the parent after it loaded the rules, so they start at once with the
same rules, helpers and options. A fork copies only the forking thread: a lock another thread
held at that moment stays held in the child for good, and the child can hang on it. So pass 1
forks only from a process running one thread (the command is one); a host running others (a
test suite with a server thread, an application) gets pass 1 in its own process, and is told.

A rule whose rule() does read the store would match differently in parallel; when a worker
sees a store call during pass 1, the parent discards the parallel results and replays pass 1
in one process, in order, and says so on stderr.
"""

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
BATCH_INPUTS = 256
# The parent's replay and its inputs, inherited by the forked workers (never pickled).
_replay = None
_sources = None


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


def _findings_of(batch):
    """Pass 1 over a run of consecutive inputs, in a worker, with counters of its own."""
    start, stop = batch
    replay = _replay.fresh()
    for source in _sources[start:stop]:
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


def batches(count, jobs):
    """(start, stop) runs of consecutive inputs: BATCHES_PER_WORKER per worker, or more so that
    none holds over BATCH_INPUTS (the progress bar moves when a batch is done)."""
    runs = min(count, max(jobs * BATCHES_PER_WORKER, -(-count // BATCH_INPUTS)))
    bounds = [index * count // runs for index in range(runs + 1)]
    return list(itertools.pairwise(bounds))


def first_pass(replay, sources, jobs):
    """Pass 1 of `replay` over `sources` in `jobs` worker processes, merged in input order."""
    global _replay, _sources  # noqa: PLW0603 (handed to the forked workers)
    sources = list(sources)
    unsafe = fork_hazard()
    if len(sources) < 2 or unsafe:
        if unsafe and len(sources) >= 2:
            print(f"detection-replay: {unsafe}, so pass 1 runs in one process", file=sys.stderr)
        for source in sources:
            replay.replay_source(source)
        return
    _replay, _sources = replay, sources
    # A worker reads a run of consecutive inputs and sends back what it found in all of them:
    # that is what one process reading them in order finds, and it costs one message per
    # batch rather than per input (CloudTrail files are small). Several batches per worker let
    # the workers finish together.
    runs = batches(len(sources), jobs)
    try:
        found = []
        context = multiprocessing.get_context("fork")
        with context.Pool(min(jobs, len(runs)), initializer=worker_signals) as pool:
            for (start, stop), findings in zip(runs, pool.imap(_findings_of, runs), strict=True):
                found.append(findings)
                if replay.progress:
                    for source in sources[start:stop]:
                        replay.progress.finish(source)
    finally:
        _replay = _sources = None
    if any(findings.store_calls for findings in found):
        print(
            "detection-replay: a rule reads the key-value store in rule(), so whether it "
            "matches depends on the order of events: pass 1 runs again in one process",
            file=sys.stderr,
        )
        for source in sources:
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
