"""`detection-replay`: replay the repository's CloudTrail rules over log files."""

import argparse
import os
import signal
import stat
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from detection_replay import s3_inputs
from detection_replay.alerts import ALERTS_KEPT
from detection_replay.diff import DIFF_RENDERERS, BaselineError, diff_reports, load_baseline
from detection_replay.engine import (
    MALFORMED_EXAMPLES_KEPT,
    MATCHES_KEPT,
    MatchLimitExceeded,
    Replay,
)
from detection_replay.framing import RECORD_BYTES
from detection_replay.inputs import STDIN_NAME, Discovery, discover, file_identity
from detection_replay.parallel import WorkerDied, default_jobs
from detection_replay.report import (
    build_document,
    problem_lines_for_stderr,
    render_json,
    render_jsonl,
    render_text,
    state_and_loading_lines_for_stderr,
)
from detection_replay.rules import RuleRepositoryError, find_repository, load_rules
from detection_replay.standard_fields import (
    DEFAULT_SOURCE_ID,
    DEFAULT_SOURCE_LABEL,
    LogSource,
    parse_time_option,
)
from detection_replay.text import display_path, printable, say

EXIT_OK = 0
EXIT_ALERTS = 1
EXIT_USAGE = 2
EXIT_UNREADABLE_INPUT = 3
EXIT_BAD_RECORDS = 4
EXIT_RULES_UNLOADABLE = 5
EXIT_REPORT_UNWRITTEN = 6
EXIT_LIMIT = 7
EXIT_BASELINE = 8
# --baseline: the alerts differ, as --fail-on-alert's alerts were raised: something to look at.
EXIT_DIFFERS = EXIT_ALERTS
EXIT_WORKER_DIED = 9
EXIT_RULES_NOT_LOADED = 10
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM

SAMPLE_DATASET = Path("samples", "cloudtrail")
RENDERERS = {"text": render_text, "json": render_json, "jsonl": render_jsonl}
FORMATS = sorted(RENDERERS.keys() | DIFF_RENDERERS.keys())
STDOUT_NAME = "-"

DESCRIPTION = """\
Replay the repository's enabled AWS.CloudTrail rules over CloudTrail log files, the way Panther
runs them (panther_analysis_tool's loader, panther_core's engine in batch mode), and report the
alerts they would raise: matches with the same rule and dedup string within the rule's
DedupPeriodMinutes (on eventTime) form one alert.

Inputs are files, directories (walked recursively, hidden files skipped), s3://bucket/prefix
URLs (see S3 inputs below) and - for standard input, in any mix. Each may hold CloudTrail
delivery objects {"Records": [...]}, JSON Lines or JSON arrays, one or several back to back,
pretty-printed or not, plain or gzip-compressed; the format is read from the content, not the
file name. An input met again (named twice, a file beside the directory holding it, overlapping
s3:// prefixes) is read once and listed as skipped. With no inputs, the repository's sample
dataset (samples/cloudtrail) is replayed.
The repository is --path, or else the nearest directory at or above the current one holding
.panther_settings.yml or rules/ and global_helpers/; rules, helpers, data models and packs are
loaded from those directories only.
"""

EPILOG = f"""\
records:
  A record must be a JSON object with string eventSource and eventName and an eventTime that is
  an ISO 8601 date-time with Z or an offset (or Panther's "YYYY-MM-DD HH:MM:SS[.f]" UTC form)
  within years 1-9999, and at most {RECORD_BYTES // (1024 * 1024)} MiB of JSON; anything else is
  counted as malformed and reported with its input and line, and the run goes on. Each good
  record gets p_log_type AWS.CloudTrail; one that already carries another p_log_type is
  malformed. Always: records read = evaluated + malformed. A rule also sees the other fields
  Panther's log processing adds (p_event_time, p_parse_time, p_row_id, p_source_id,
  p_source_label, p_any_*), worked out when it first reads one; a field the record carries is
  kept as it is.

alerts:
  Matches are grouped after every input is read, in eventTime order, so the order of the inputs
  never changes the alerts. An alert's dedup window runs from its first event for
  DedupPeriodMinutes (0 means Panther's default, 60; below 5 means 5, as Panther applies them);
  the alert keeps its first event's title and alert context, counts events, and takes the
  highest severity among them. A group is an alert once it reaches the rule's Threshold, in
  distinct unique() values when the rule defines unique() (exactly; Panther estimates), else in
  events. The matches of a CreateAlert: false rule are signals: grouped the same way, listed
  apart, never alerts.

exit status:
  {EXIT_OK}  the run was clean (every input read; malformed records and rule errors are
     reported but only change the status with --strict)
  {EXIT_ALERTS}  --fail-on-alert was given and at least one alert was raised (signals of
     CreateAlert: false rules are not alerts), or --baseline was given and anything differs
  {EXIT_USAGE}  usage error: bad option, --path not a directory, no repository found, no sample
     dataset when no input was given, --output not writable or naming an input
  {EXIT_UNREADABLE_INPUT}  some input was unreadable, wholly or in part (missing path, no
     permission, corrupt or truncated gzip, unsupported content, JSON whose records cannot be
     told apart), held no CloudTrail record at all (EventBridge events, a CSV export: named
     with what they look like), or no input yielded a record; the other inputs were still
     replayed
  {EXIT_BAD_RECORDS}  --strict was given and a record was malformed or a rule function raised
  {EXIT_RULES_UNLOADABLE}  no rule could be loaded (invalid analysis items, rule import errors, no
     enabled AWS.CloudTrail rule)
  {EXIT_REPORT_UNWRITTEN}  the report could not be written (disk full, closed or broken stdout)
  {EXIT_LIMIT}  more matching events than --max-matches: the replay stopped
  {EXIT_BASELINE}  the --baseline report is missing, unreadable, not JSON or not a report
     (wrong or no schema_version, truncated): checked before anything is replayed
  {EXIT_WORKER_DIED}  a --jobs worker process died (killed by a signal, such as the out-of-memory
     killer's SIGKILL): the replay stopped; the totals so far go to stderr
  {EXIT_RULES_NOT_LOADED}  some rules could not be loaded (each is named with its reason); the
     others were replayed
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); the totals so far go to stderr
  {EXIT_TERMINATED}  terminated (SIGTERM); temporary files are removed
  Of {EXIT_UNREADABLE_INPUT}, {EXIT_RULES_NOT_LOADED}, {EXIT_BAD_RECORDS} and {EXIT_ALERTS}, \
the first that applies wins.
  A diff is still written when {EXIT_UNREADABLE_INPUT}, {EXIT_RULES_NOT_LOADED} or \
{EXIT_BAD_RECORDS} wins, and warns of it.

alert diff (--baseline):
  --baseline REPORT compares this run with an earlier --format json report and writes what
  changed instead of the report: per rule, alerts and signal groups added, removed and changed
  (severity, title, events, first/last seen, dedup, distinct values), and changed settings and
  counts. Groups of one rule are matched by dedup string and overlapping time span, so a
  window that moves shows as changed; then by the event that opened them. --format text
  (default), markdown (for a pull request's job summary) or json.
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="detection-replay",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help=f"file, directory, s3://bucket/prefix or {STDIN_NAME} (stdin); default: the sample "
        f"dataset {SAMPLE_DATASET}/ under --path",
    )
    parser.add_argument(
        "--path",
        type=Path,
        help="repository root holding rules/ and global_helpers/ (default: the nearest "
        "directory at or above the current one holding .panther_settings.yml or both)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: readable summary (default); json: one document with totals and every "
        "rule's alerts; jsonl: one alert per line; with --baseline, the diff as text, "
        "markdown or json",
    )
    parser.add_argument(
        "--baseline",
        metavar="REPORT",
        help="an earlier --format json report: write what changed since it (alerts and signals "
        f"added, removed, changed) instead of the report, and exit {EXIT_DIFFERS} if anything "
        "did",
    )
    parser.add_argument(
        "-o",
        "--output",
        help=f"write the report to this file (replaced only once the run has ended) instead of "
        f"stdout; {STDOUT_NAME} is stdout",
    )
    parser.add_argument(
        "--fail-on-alert",
        action="store_true",
        help=f"exit {EXIT_ALERTS} when any alert was raised (for CI gates)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help=f"exit {EXIT_BAD_RECORDS} when any record was malformed or any rule function raised",
    )
    parser.add_argument(
        "--show-malformed",
        type=_non_negative,
        default=MALFORMED_EXAMPLES_KEPT,
        metavar="N",
        help=f"report the first N malformed records in full, count the rest (default: "
        f"{MALFORMED_EXAMPLES_KEPT})",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=None,
        metavar="N",
        help="processes that read, decode and match inputs (pass 1) at once; the report is the "
        f"same for every N (default: the cores this process may use, here {default_jobs()})",
    )
    parser.add_argument(
        "--full-run",
        action="store_true",
        help="decide every match with panther_core's own matcher (its per-call checks) "
        "instead of calling rule() directly (slower, same results; for checking the fast path)",
    )
    parser.add_argument(
        "--max-matches",
        type=_positive,
        default=MATCHES_KEPT,
        metavar="N",
        help=f"matching events held until every input is read (default: {MATCHES_KEPT:,}); "
        f"past it the replay stops with status {EXIT_LIMIT}",
    )
    parser.add_argument(
        "--max-alerts",
        type=_non_negative,
        default=ALERTS_KEPT,
        metavar="N",
        help=f"alerts listed in the report (default: {ALERTS_KEPT:,}); the rest are counted",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never show the progress bar (by default it is drawn on stderr when stderr is a "
        "terminal)",
    )
    parser.add_argument(
        "--source-label",
        default=DEFAULT_SOURCE_LABEL,
        metavar="NAME",
        help=f"p_source_label of every event, the log source's name in Panther (default: "
        f"{DEFAULT_SOURCE_LABEL})",
    )
    parser.add_argument(
        "--source-id",
        default=DEFAULT_SOURCE_ID,
        metavar="ID",
        help=f"p_source_id of every event, the log source's id in Panther (default: "
        f"{DEFAULT_SOURCE_ID})",
    )
    parser.add_argument(
        "--parse-time",
        type=_parse_time,
        default=None,
        metavar="TIME",
        help="p_parse_time of every event, an ISO 8601 date-time (UTC unless it has an offset); "
        "by default each event's own p_event_time, so a rerun gives the same report",
    )
    s3_inputs.add_arguments(parser)  # --profile, --region, --since, --until
    return parser


def _parse_time(text):
    try:
        return parse_time_option(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date-time such as 2026-11-20T09:00:00Z, not {text!r}"
        ) from None


def _whole_number(text, smallest):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < smallest:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, {smallest} or more, not {text!r}"
        )
    return value


def _non_negative(text):
    return _whole_number(text, 0)


def _positive(text):
    return _whole_number(text, 1)


class Progress:
    """A tqdm bar on stderr counting the input bytes (compressed, as on disk) replayed."""

    def __init__(self, total_bytes):
        # tqdm's monitor thread would make the process unsafe to fork workers from (parallel.py).
        tqdm.monitor_interval = 0
        self.bar = tqdm(
            total=total_bytes or None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="replay",
            file=sys.stderr,
            leave=False,
        )
        self._done_before_source = 0

    def reporter(self, raw):
        self._done_before_source = self.bar.n

        def report():
            try:
                position = raw.tell()
            except OSError:  # standard input: no position to report
                return
            self.bar.update(self._done_before_source + position - self.bar.n)

        return report

    def finish(self, source):
        self.bar.update(max(0, self._done_before_source + source.size - self.bar.n))
        self._done_before_source = self.bar.n

    def close(self):
        self.bar.close()


def listed(sources):
    """Every source, counted on stderr as it is found: a bucket's month takes many requests."""
    tqdm.monitor_interval = 0  # no monitor thread (see Progress)
    with tqdm(sources, unit=" inputs", desc="listing", file=sys.stderr, leave=False) as counter:
        return list(counter)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` and `with` cleans up."""


def _on_sigterm(signum, frame):
    raise Terminated


def main(argv=None):
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    run = Run(args)
    try:
        return run.execute()
    except KeyboardInterrupt:
        say("detection-replay: interrupted" + run.partial_totals())
        return EXIT_INTERRUPTED
    except Terminated:
        say("detection-replay: terminated" + run.partial_totals())
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


class Run:
    """One command run: checks, rules, replay, report; each failure its own exit status."""

    def __init__(self, args):
        self.args = args
        self.replay = None

    def _started(self, replay):
        self.replay = replay

    def partial_totals(self):
        if self.replay is None:
            return ""
        totals = self.replay.totals
        return (
            f"; so far: records read {totals.records_read:,}, evaluated {totals.evaluated:,}, "
            f"matched {totals.matched:,}, malformed {self.replay.malformed.count:,}, "
            f"unreadable inputs {len(self.replay.unreadable):,}"
        )

    def execute(self):
        args = self.args
        repository, problem = _repository(args)
        if problem is None:
            inputs = args.inputs or [str(repository / SAMPLE_DATASET)]
            problem = _usage_problem(args, repository, inputs)
        if problem:
            say(f"detection-replay: error: {printable(problem)}")
            return EXIT_USAGE
        baseline = None
        if args.baseline is not None:
            try:
                baseline = load_baseline(args.baseline)
            except BaselineError as error:
                say(
                    f"detection-replay: error: baseline {printable(args.baseline)} cannot be "
                    f"used: {printable(error)}"
                )
                return EXIT_BASELINE
        try:  # S3 credentials are checked before anything is read (boto3 only with s3:// inputs)
            s3 = s3_inputs.reader_for(args)
        except s3_inputs.S3SetupError as error:
            say(f"detection-replay: error: {printable(error)}")
            return EXIT_USAGE
        discovery = Discovery(empty_directories=[])
        try:
            with load_rules(repository) as rule_set:
                self.replay = _replay(rule_set, inputs, args, discovery, self._started, s3=s3)
                status = exit_status(self.replay, args)
                document = build_document(self.replay, repository, status, discovery)
        except RuleRepositoryError as error:
            say(f"detection-replay: error: {printable(error)}")
            return EXIT_RULES_UNLOADABLE
        except MatchLimitExceeded as error:
            say(f"detection-replay: error: {error}" + self.partial_totals())
            return EXIT_LIMIT
        except WorkerDied as error:
            say(f"detection-replay: error: {printable(error)}" + self.partial_totals())
            return EXIT_WORKER_DIED
        if baseline is None:
            text = RENDERERS[args.format](document)
        else:
            diff = diff_reports(baseline, document, args.baseline)
            if status == EXIT_OK and diff["differs"]:
                status = EXIT_DIFFERS
            text = DIFF_RENDERERS[args.format](diff)
        try:
            write_report(args.output, text)
        except OSError as error:
            where = "standard output" if _to_stdout(args) else printable(args.output)
            reason = error.strerror or str(error)
            say(f"detection-replay: error: cannot write the report to {where}: {reason}")
            return EXIT_REPORT_UNWRITTEN
        _warn_on_stderr(document, args)
        return status


def _repository(args):
    """(repository, None) or (None, the usage problem)."""
    if args.path is not None:
        if not args.path.is_dir():
            return None, f"--path {args.path} is not a directory"
        return args.path.resolve(), None
    found = find_repository(Path.cwd())
    if found is None:
        return None, (
            f"no detection repository at or above {display_path(Path.cwd())} (a directory "
            "holding .panther_settings.yml, or rules/ and global_helpers/): give one with --path"
        )
    return found, None


def _usage_problem(args, repository, inputs):
    if not args.inputs and not (repository / SAMPLE_DATASET).is_dir():
        return f"no input given and no sample dataset at {repository / SAMPLE_DATASET}"
    if args.baseline is None and args.format not in RENDERERS:
        return f"--format {args.format} writes an alert diff: give --baseline REPORT"
    if args.baseline is not None and args.format not in DIFF_RENDERERS:
        return f"--format {args.format} lists a report's alerts: not a diff (--baseline)"
    problem = s3_inputs.usage_problem(args)
    if problem or _to_stdout(args):
        return problem
    output = args.output
    if os.path.isdir(output):
        return f"cannot write {output}: it is a directory"
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot write {output}: no writable directory {directory}"
    identity = file_identity(output)
    if identity is not None and any(file_identity(path) == identity for path in inputs):
        return f"--output {output} is also an input: it would be overwritten"
    if identity is not None and args.baseline and file_identity(args.baseline) == identity:
        return f"--output {output} is the baseline: it would be overwritten"
    return None


def _to_stdout(args):
    return args.output is None or args.output == STDOUT_NAME


def write_report(output, text):
    """Write the report: to stdout, or replacing `output` only once it is complete.

    A regular file is written beside its final name and renamed over it, so an interrupted or
    failed run leaves an earlier report intact. A device or pipe (/dev/stdout, /dev/full) is
    written directly: renaming over it would replace the device, not write to it.
    """
    data = text.encode("utf-8", "backslashreplace")
    if output is None or output == STDOUT_NAME:
        _write_stdout(data)
        return
    try:
        mode = os.stat(output).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(output, "wb") as stream:
            write_whole(stream, data)
        return
    directory, name = os.path.split(os.path.abspath(output))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            write_whole(stream, data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def write_whole(stream, data):
    """Write all of `data`, or raise why not.

    A buffered write larger than its buffer returns the count of a short write instead of
    raising: a pipe whose reader has gone (`| head`) takes what fits and the rest would be lost
    without a word. Going on after a short write meets the error itself (EPIPE, ENOSPC).
    """
    view = memoryview(data)
    written = 0
    while written < len(view):
        try:
            count = stream.write(view[written:])
        except OSError as error:
            reason = error.strerror or str(error)
            raise OSError(
                error.errno, f"{reason} after {written:,} of {len(view):,} bytes"
            ) from None
        written += count


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


def _write_stdout(data):
    stream = sys.stdout
    if stream is None:
        raise OSError(0, "standard output is closed")
    try:
        stream.flush()
        if hasattr(stream, "buffer"):
            write_whole(stream.buffer, data)
        else:
            stream.write(data.decode())
        stream.flush()
    except (OSError, ValueError) as error:
        # Python would try again to flush at exit and print a traceback: point stdout at
        # nothing first, so only the one line naming the failure is said.
        _silence_stdout()
        if isinstance(error, ValueError):  # "I/O operation on closed file"
            raise OSError(0, "standard output is closed") from None
        raise


def _silence_stdout():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    sys.stdout = None


def _replay(rule_set, inputs, args, discovery, started, *, s3=None):
    show_progress = not args.no_progress and sys.stderr is not None and sys.stderr.isatty()
    excluded = set()
    if not _to_stdout(args) and (identity := file_identity(args.output)) is not None:
        excluded.add(identity)
    sources = discover(inputs, excluded=excluded, discovery=discovery, s3=s3)
    progress = None
    if show_progress:
        sources = listed(sources)  # paths only: the bar needs the total size up front
        progress = Progress(sum(source.size for source in sources))
    replay = Replay(
        rule_set,
        progress=progress,
        malformed_examples=args.show_malformed,
        quick_miss=not args.full_run,
        max_matches=args.max_matches,
        max_alerts=args.max_alerts,
        log_source=LogSource(args.source_id, args.source_label, args.parse_time),
    )
    started(replay)  # so that an interruption can report the totals so far
    try:
        return replay.run(sources, jobs=args.jobs or default_jobs())
    finally:
        if progress:
            progress.close()


def exit_status(replay, args):
    if replay.unreadable or replay.totals.records_read == 0:
        return EXIT_UNREADABLE_INPUT
    if replay.not_loaded_rules:
        return EXIT_RULES_NOT_LOADED
    if args.strict and (replay.malformed.count or replay.rule_errors):
        return EXIT_BAD_RECORDS
    if args.fail_on_alert and replay.alert_count:
        return EXIT_ALERTS
    return EXIT_OK


def _warn_on_stderr(document, args):
    """Problems go to stderr too when the report itself is not a readable summary on stdout."""
    for name in document["empty_directories"]:
        say(f"detection-replay: empty directory: {printable(name)}")
    if document["records_read"] == 0:
        say("detection-replay: no input yielded a record")
    for line in state_and_loading_lines_for_stderr(document):
        say(f"detection-replay: {line}")
    if args.format == "text" and _to_stdout(args) and args.baseline is None:
        return
    for line in problem_lines_for_stderr(document):
        say(f"detection-replay: {line}")
