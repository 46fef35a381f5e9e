"""`detection-replay`: replay the repository's CloudTrail rules over log files."""

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from detection_replay import s3_inputs
from detection_replay.engine import MALFORMED_EXAMPLES_KEPT, Replay
from detection_replay.inputs import STDIN_NAME, discover
from detection_replay.report import build_document, render_json, render_jsonl, render_text
from detection_replay.rules import RuleRepositoryError, load_rules

EXIT_OK = 0
EXIT_ALERTS = 1
EXIT_USAGE = 2
EXIT_UNREADABLE_INPUT = 3
EXIT_BAD_RECORDS = 4
EXIT_RULES_UNLOADABLE = 5

SAMPLE_DATASET = Path("samples", "cloudtrail")
RENDERERS = {"text": render_text, "json": render_json, "jsonl": render_jsonl}

DESCRIPTION = """\
Replay the repository's enabled AWS.CloudTrail rules over CloudTrail log files, the way Panther
runs them (panther_analysis_tool's loader, panther_core's engine in batch mode), and report the
alerts they would raise: matches with the same rule and dedup string within the rule's
DedupPeriodMinutes (on eventTime) form one alert.

Inputs are files, directories (walked recursively, hidden files skipped), s3://bucket/prefix
URLs (see S3 inputs below) and - for standard input, in any mix. Each may be a CloudTrail
delivery object {"Records": [...]}, JSON Lines or a JSON array, plain or gzip-compressed; the
format is read from the content, not the file name.
With no inputs, the repository's sample dataset (samples/cloudtrail under --path) is replayed.
"""

EPILOG = f"""\
records:
  A record must be a JSON object with string eventTime (ISO 8601), eventSource and eventName;
  anything else is counted as malformed and reported with its file and line, and the run goes
  on. Each good record gets p_log_type AWS.CloudTrail; one that already carries another
  p_log_type is malformed. Always: records read = evaluated + malformed.

alerts:
  Inputs are replayed in the order given, directories in sorted path order. An alert's dedup
  window is anchored at the eventTime of its first event in that order; a later match with the
  same dedup string joins it while its eventTime is less than DedupPeriodMinutes away (before
  or after), so files delivered out of order still group. The alert keeps its first event's
  title and alert context, counts events, and takes the highest severity among them.

exit status:
  {EXIT_OK}  the run was clean (every input read; malformed records and rule errors are
     reported but only change the status with --strict)
  {EXIT_ALERTS}  --fail-on-alert was given and at least one alert was raised
  {EXIT_USAGE}  usage error: bad option, --path not a directory, no sample dataset when no input
     was given, --output not writable
  {EXIT_UNREADABLE_INPUT}  some input was unreadable (missing path, no permission, corrupt or
     truncated gzip, invalid JSON document); the other inputs were still replayed
  {EXIT_BAD_RECORDS}  --strict was given and a record was malformed or a rule function raised
  {EXIT_RULES_UNLOADABLE}  the rules could not be loaded (invalid analysis item, rule import
     error, no enabled AWS.CloudTrail rule)
  Of {EXIT_UNREADABLE_INPUT}, {EXIT_BAD_RECORDS} and {EXIT_ALERTS}, the first that applies wins.
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
        default=".",
        type=Path,
        help="repository root holding rules/ and global_helpers/ (default: .)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(RENDERERS),
        default="text",
        help="text: readable summary (default); json: one document with totals and every "
        "rule's alerts; jsonl: one alert per line",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="write the report to this file instead of stdout"
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
        "--full-run",
        action="store_true",
        help="call panther_core's Rule.run() on every event, not only on those the rule's "
        "rule() matched or failed on (slower, same results; for checking the fast path)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never show the progress bar (by default it is drawn on stderr when stderr is a "
        "terminal)",
    )
    s3_inputs.add_arguments(parser)  # --profile, --region, --since, --until
    return parser


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


class Progress:
    """A tqdm bar on stderr counting the input bytes (compressed, as on disk) replayed."""

    def __init__(self, total_bytes):
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    usage_problem = _usage_problem(args)
    if usage_problem:
        print(f"detection-replay: error: {usage_problem}", file=sys.stderr)
        return EXIT_USAGE
    inputs = args.inputs or [str(args.path / SAMPLE_DATASET)]
    try:  # S3 credentials are checked before anything is read (boto3 only with s3:// inputs)
        s3 = s3_inputs.reader_for(args)
    except s3_inputs.S3SetupError as error:
        print(f"detection-replay: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        output = _open_output(args.output)
    except OSError as error:
        print(f"detection-replay: error: cannot write {args.output}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with load_rules(args.path.resolve()) as rule_set:
            replay = _replay(rule_set, inputs, args, s3)
            status = exit_status(replay, args)
            document = build_document(replay, args.path.resolve(), status)
    except RuleRepositoryError as error:
        print(f"detection-replay: error: {error}", file=sys.stderr)
        return EXIT_RULES_UNLOADABLE
    with output as stream:
        stream.write(RENDERERS[args.format](document))
    _warn_on_stderr(document, args)
    return status


def _usage_problem(args):
    if not args.path.is_dir():
        return f"--path {args.path} is not a directory"
    if not args.inputs and not (args.path / SAMPLE_DATASET).is_dir():
        return f"no input given and no sample dataset at {args.path / SAMPLE_DATASET}"
    return s3_inputs.usage_problem(args)


def _open_output(path):
    if path is None:
        return _Unclosed(sys.stdout)
    return open(path, "w", encoding="utf-8")  # closed by main's `with`


class _Unclosed:
    """stdout in a `with` block without closing it."""

    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self.stream

    def __exit__(self, *exc):
        self.stream.flush()


def _replay(rule_set, inputs, args, s3=None):
    show_progress = not args.no_progress and sys.stderr.isatty()
    sources = discover(inputs, s3)
    progress = None
    if show_progress:
        sources = list(sources)  # paths only: the bar needs the total size up front
        progress = Progress(sum(source.size for source in sources))
    replay = Replay(
        rule_set,
        progress=progress,
        malformed_examples=args.show_malformed,
        quick_miss=not args.full_run,
    )
    try:
        return replay.run(sources)
    finally:
        if progress:
            progress.close()


def exit_status(replay, args):
    if replay.unreadable:
        return EXIT_UNREADABLE_INPUT
    if args.strict and (replay.malformed.count or replay.rule_errors):
        return EXIT_BAD_RECORDS
    if args.fail_on_alert and any(replay.grouper.alerts_of(rule) for rule in replay.rules):
        return EXIT_ALERTS
    return EXIT_OK


def _warn_on_stderr(document, args):
    """Problems go to stderr too when the report itself is not a readable summary on stdout."""
    if args.format == "text" and args.output is None:
        return
    for item in document["unreadable"]:
        print(f"detection-replay: unreadable: {item['input']}: {item['error']}", file=sys.stderr)
    if document["malformed"]:
        print(f"detection-replay: {document['malformed']} malformed record(s)", file=sys.stderr)
