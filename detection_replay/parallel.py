"""Pass 1 on every core: inputs decoded and matched in worker processes, merged in input order.

Pass 1 decides each event from the event alone (an evaluation that touched the key-value store
or a rule module's state is left undecided for pass 2: see engine.py), so each input can be
read, checked and matched in a process of its own. What a worker finds in a run of inputs
(counts, malformed records, unreadable parts, rule errors and the buffered events) comes back to
the parent, which takes the runs' findings in input order, exactly as one process would have
found them. The buffered records themselves are written to the worker's own file in a directory
of the run's, as they are found; only their positions (a few numbers each) travel back with the
findings. Once every run is read, each worker says which module globals its pass 1 changed that
nothing looks after. Everything that depends on order and state (the key-value store, titles,
severities, grouping) stays in pass 2, in the parent.

Workers are forked from the parent after it loaded the rules, so they start at once with the
same rules, helpers and options. The parent goes on listing the inputs while they read the first
ones (listing a bucket's month of objects takes many requests): each task carries the inputs it
is for. A fork copies only the forking thread: a lock another thread held at that moment stays
held in the child for good, and the child can hang on it. So pass 1 forks only from a process
running one thread (the command is one); a host running others (a test suite with a server
thread, an application) gets pass 1 in its own process, and is told.

A worker that dies (the out-of-memory killer, a signal) fails the runs it and the others were
reading: the replay stops with WorkerDied, naming the cause, instead of waiting for them. On
Ctrl-C, SIGTERM or a death, the runs already read are counted in the totals the command says,
and the workers are ended. The worker given standard input (`-`) reads the parent's: a
multiprocessing child's own is /dev/null.
"""

import collections
import contextlib
import itertools
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from detection_replay.rules import ERROR_EXAMPLES_KEPT

BATCHES_PER_WORKER = 8
BATCH_INPUTS = 64
# The parent's replay, inherited by the forked workers (never pickled).
_replay = None
# Where the workers write the records they buffer for pass 2 (engine.process_spill); inherited.
_spill_directory = None
# Holds each worker at its last task until all have one: every worker gets exactly one.
_last_task_barrier = None
LAST_TASK_TIMEOUT_SECONDS = 60


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
    matches: object  # engine.ExportedMatches


def worker_signals():
    """A worker's signal handling: the parent's SIGTERM handler (inherited by the fork) would
    print a traceback when the pool ends its workers, and Ctrl-C, which reaches the whole
    process group, is the parent's to handle (it ends the workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _findings_of(run):
    """Pass 1 over a run of consecutive inputs, in a worker, with counters of its own."""
    replay = _replay.fresh(spill_directory=_spill_directory)
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
        matches=replay.matches.export(),
    )


def _changed_globals_in_worker(_):
    """A worker's last task: the module globals its pass 1 changed that nothing looks after.
    Checked once per worker, as one process checks once at its end (a check per run of inputs
    would cost more than small runs take)."""
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker gone: the others answer
        _last_task_barrier.wait(LAST_TASK_TIMEOUT_SECONDS)
    return _replay.changed_module_globals()


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
    global _replay, _spill_directory, _last_task_barrier  # noqa: PLW0603 (the workers inherit them)
    sources = iter(sources)
    head = list(itertools.islice(sources, jobs))  # no more workers than inputs
    unsafe = fork_hazard()
    if len(head) < 2 or unsafe:
        if unsafe and len(head) >= 2:
            print(f"detection-replay: {unsafe}, so pass 1 runs in one process", file=sys.stderr)
        for source in itertools.chain(head, sources):
            replay.replay_source(source)
        replay.note_unhandled_state(replay.changed_module_globals())
        return
    crew = Crew(len(head), replay.progress)
    _replay = replay
    _spill_directory = tempfile.mkdtemp(prefix="detection-replay-workers-")
    _last_task_barrier = multiprocessing.get_context("fork").Barrier(len(head))
    merged = 0  # runs whose findings are in the replay
    try:
        with crew:
            for run in batches(itertools.chain(head, sources), jobs):
                crew.submit(run)
                crew.take_finished(wait=False)
            crew.take_finished(wait=True)
            for found in crew.each_worker(_changed_globals_in_worker):
                replay.note_unhandled_state(found)
        # In input order, and before the workers' files lose their names (below).
        for findings in crew.found:
            merge(replay, findings)
            merged += 1
    except BaseException:
        # Ctrl-C, SIGTERM, a worker's death, too many matches: the runs read so far count in
        # the totals said.
        for findings in crew.findings_so_far()[merged:]:
            merge_counts(replay, findings)
        raise
    finally:
        # The parent holds open what it adopted; the names go (and any file left unadopted).
        shutil.rmtree(_spill_directory, ignore_errors=True)
        _replay = _spill_directory = _last_task_barrier = None


class WorkerDied(Exception):
    """A worker process ended abruptly (killed by a signal: the out-of-memory killer's SIGKILL,
    say): what it was reading is lost, so the replay stops."""


class Crew:
    """The worker processes of one pass 1, fed runs of inputs; their findings come back in the
    order the runs were given.

    concurrent.futures' pool, not multiprocessing's: when a worker dies (the out-of-memory
    killer, a signal), multiprocessing.Pool starts another and waits for the lost task for
    ever, where a ProcessPoolExecutor fails the pending tasks (BrokenProcessPool). The workers
    are forked at the first run, while this process still runs one thread.
    """

    def __init__(self, workers, progress=None):
        self._workers = workers
        self._progress = progress
        self._executor = None
        self._processes = []
        # (future, run) in the order given, until taken; then the runs' findings, in order.
        self._pending = collections.deque()
        self.found = []

    def __enter__(self):
        return self

    def submit(self, run):
        try:
            if self._executor is None:
                future = self._start(run)
            else:
                future = self._executor.submit(_findings_of, run)
        except BrokenProcessPool:
            raise WorkerDied(self._death()) from None
        self._pending.append((future, run))

    def _start(self, run):
        """Fork the workers, giving them the first run: a forking executor starts them all at
        its first task, before any of its threads."""
        before = set(multiprocessing.active_children())
        stdin = _stdin_for_workers()
        try:
            self._executor = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_start,
                initargs=(stdin,),
            )
            future = self._executor.submit(_findings_of, run)
        finally:
            if stdin is not None:
                os.close(stdin)  # the workers have their copies
        self._processes = [p for p in multiprocessing.active_children() if p not in before]
        return future

    def take_finished(self, *, wait):
        """Take the findings of the runs finished so far, in order (`wait`: of every run)."""
        while self._pending and (wait or self._pending[0][0].done()):
            future, run = self._pending[0]
            try:
                self.found.append(future.result())
            except BrokenProcessPool:
                raise WorkerDied(self._death()) from None
            self._pending.popleft()
            if self._progress:
                for source in run:
                    self._progress.finish(source)

    def each_worker(self, function):
        """function(None) once in each worker (it holds the workers at a barrier, so that no
        worker takes two), after every run was taken; the answers."""
        futures = [self._executor.submit(function, None) for _ in range(self._workers)]
        try:
            return [future.result() for future in futures]
        except BrokenProcessPool:
            raise WorkerDied(self._death()) from None

    def findings_so_far(self):
        """The findings of every run finished: taken, and done but not yet taken."""
        done = [
            future.result()
            for future, _ in self._pending
            if future.done() and not future.cancelled() and future.exception() is None
        ]
        return self.found + done

    def _death(self):
        """What ended the workers, and which inputs were being read."""
        causes = [_ending(_exit_code(process)) for process in self._processes]
        # The pool ends the other workers with SIGTERM once one dies: say the first cause
        # that is not that, if there is one.
        cause = next((c for c in causes if c and "SIGTERM" not in c), None)
        cause = cause or next((c for c in causes if c), "ended abruptly")
        first = self._pending[0][1][0].name if self._pending else None
        where = f" while the inputs from {first} on were being read" if first else ""
        return (
            f"a worker process (--jobs) {cause}{where}: the replay stopped (--jobs 1 reads "
            "every input in this process)"
        )

    def __exit__(self, kind, error, traceback):
        if self._executor is None:
            return
        if kind is None:
            self._executor.shutdown(wait=True)
            return
        # Ctrl-C, SIGTERM, a death: end the workers now (the run they read is not wanted).
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self._executor.shutdown(wait=True)  # its threads end once the workers have


def _exit_code(process, seconds=5.0):
    """The process's exit code once it has ended (None if it has not within `seconds`).

    The executor's own thread reaps its workers too: when it does so between this thread's
    wait and its poll, the poll finds no child and reads None until that thread has recorded
    the code on the shared process object, a moment later; so the code is asked for again.
    """
    deadline = time.monotonic() + seconds
    process.join(timeout=seconds)
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.exitcode


def _ending(exitcode):
    """How a worker ended, in words; None for a normal end."""
    if exitcode is None or exitcode == 0:
        return None
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL:
            return f"was killed by {name} (as the kernel's out-of-memory killer does)"
        return f"was killed by {name}"
    return f"ended with status {exitcode}"


def _stdin_for_workers():
    """A copy of this process's standard input for the workers, or None when it is closed.

    multiprocessing points a child's standard input at /dev/null (so that two processes never
    read one terminal), which would read `-` as empty: the worker given `-` reads this copy.
    """
    try:
        return os.dup(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def _worker_start(stdin):
    worker_signals()
    sys.stdin = None if stdin is None else open(stdin, closefd=False)  # noqa: SIM115


def merge_counts(replay, findings):
    """Add a batch's totals to the replay (what an interrupted run reports)."""
    replay.totals.records_read += findings.records_read
    replay.totals.evaluated += findings.evaluated
    replay.totals.matched += sum(findings.rule_matched)
    replay.malformed.count += findings.malformed
    replay.unreadable.extend(findings.unreadable)


def merge(replay, findings):
    """Add a batch's findings to the replay, as if it had read the inputs itself."""
    offset = replay.totals.records_read
    merge_counts(replay, findings)
    malformed = replay.malformed
    room = max(malformed.examples_kept - len(malformed.examples), 0)
    malformed.examples.extend(findings.malformed_examples[:room])
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
    replay.matches.adopt(findings.matches, offset)
