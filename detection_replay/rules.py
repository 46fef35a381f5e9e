"""The repository's CloudTrail rules, loaded and run the way panther_analysis_tool runs them."""

import logging
import shutil
import sys
import tempfile
from collections import Counter
from contextlib import chdir, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from panther_core.rule import TYPE_RULE, UNIQUE_FUNCTION, Rule

from detection_replay.deferred_imports import import_deferring
from detection_replay.kv_store import KeyValueStore
from detection_replay.records import LOG_TYPE

# What panther_analysis_tool's loader imports for its API clients and version check, never for
# reading a repository (see deferred_imports).
LOADER_MODULE = "panther_analysis_tool.analysis_utils"
UNUSED_BY_LOADER = frozenset(
    {"aiohttp", "boto3", "botocore", "dateutil", "gql", "graphql", "requests", "s3transfer"}
)
DEFAULT_DEDUP_PERIOD_MINUTES = 60
MINIMUM_DEDUP_PERIOD_MINUTES = 5
SEVERITY_RANK = {"INFO": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
ALERT_CONTEXT_ERROR_KEY = "_error"
# How many failing calls per rule are kept in full (with where they failed); all are counted.
ERROR_EXAMPLES_KEPT = 3


class RuleRepositoryError(Exception):
    """The repository's analysis items could not be loaded into runnable rules."""


@dataclass
class RuleErrors:
    """Failed calls of one rule's functions: counts per function and a few examples."""

    counts: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def add(self, function, message, where):
        self.counts[function] += 1
        if len(self.examples) < ERROR_EXAMPLES_KEPT:
            self.examples.append({"function": function, "error": message, "where": where})


def reset_rule_counters(rules):
    """Rules counting matches and errors from zero (a worker's copies, for each input)."""
    for rule in rules:
        rule.matched = 0
        rule.errors = RuleErrors()


class _SwallowedErrors(logging.Handler):
    """Collects the errors panther_core logs and replaces with defaults in batch mode.

    In batch mode a failing title(), dedup(), severity(), ... does not stop the alert: the
    engine logs "<function> method ... raised exception" with the exception and uses a
    default, as Panther does. Panther still reports those errors, so the replay collects them.
    """

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.pending = []

    def emit(self, record):
        error = next((arg for arg in record.args or () if isinstance(arg, BaseException)), None)
        if error is None and record.exc_info:
            error = record.exc_info[1]
        if error is not None:
            function = str(record.msg).split(" ", 1)[0]
            self.pending.append((function, describe_exception(error)))


def describe_exception(error):
    return f"{type(error).__name__}: {error}"


@dataclass
class LoadedRule:
    """One runnable rule with its YAML settings."""

    rule_id: str
    display_name: str
    severity: str
    dedup_period_minutes: int
    threshold: int
    engine: Rule
    swallowed: _SwallowedErrors
    errors: RuleErrors = field(default_factory=RuleErrors)
    matched: int = 0
    # CreateAlert: false makes the rule's matches signals (for correlation rules), never alerts.
    create_alert: bool = True
    # The module defines unique(): its Threshold counts distinct unique() values, not events.
    unique_defined: bool = False

    @property
    def quick_matcher(self):
        """The rule's own rule() function, when its answer alone decides a match; else None.

        For a rule without filters, Rule.run() matches exactly when rule() returns the bool
        True, and misses when it returns False; anything else (another value, an exception) is
        left to the engine's own matcher (engine.matcher_decision), which reports it as Panther
        does. Calling rule() directly spares panther_core's per-call checks on the millions of
        events that miss. With DISABLE_DETECTION_OUTPUT set, panther_core's own matcher is
        used, so a rule's prints stay silenced.
        """
        engine = self.engine
        if engine.filters or engine.detection_type != TYPE_RULE:
            return None
        if engine.suppress_output:
            return engine.matcher_function
        return engine.module.rule

    @property
    def dedup_period_seconds(self):
        return self.dedup_period_minutes * 60

    def take_swallowed_errors(self, where):
        for function, message in self.swallowed.pending:
            self.errors.add(function, message, where)
        self.swallowed.pending.clear()

    def alert_context_json(self, result):
        """The match's alert context as JSON text (or None); an error counts as a rule error."""
        text = result.alert_context_output
        if not text:
            return None
        if ALERT_CONTEXT_ERROR_KEY in text:  # only then is decoding it worth the time
            context = orjson.loads(text)
            if isinstance(context, dict) and set(context) == {ALERT_CONTEXT_ERROR_KEY}:
                self.swallowed.pending.append(("alert_context", context[ALERT_CONTEXT_ERROR_KEY]))
        return text

    def event_severity(self, result):
        severity = result.severity_output or self.severity
        return severity if severity in SEVERITY_RANK else self.severity


@dataclass
class RuleSet:
    rules: list
    data_model: object
    # IDs of the repository's other rules: disabled, or not for AWS.CloudTrail.
    skipped: list
    # What the rules' panther_detection_helpers.caching calls reach while the set is loaded.
    store: KeyValueStore = field(default_factory=KeyValueStore)


def is_cloudtrail_rule(spec):
    return (
        spec.get("AnalysisType") == "rule"
        and bool(spec.get("Enabled", False))
        and LOG_TYPE in (spec.get("LogTypes") or [])
    )


# The directories panther_analysis_tool items live in; nothing else under a repository is
# loaded (a repository's tests, samples or downloaded logs must never be imported as rules).
ANALYSIS_DIRECTORIES = ("rules", "global_helpers", "data_models", "packs")
REPOSITORY_MARKERS = (".panther_settings.yml",)
# This package's own layout, for a repository without .panther_settings.yml.
REPOSITORY_LAYOUT = ("rules", "global_helpers")


def find_repository(start):
    """The nearest directory at or above `start` that is a detection repository, or None.

    As git finds its work tree: a directory holding .panther_settings.yml, or both rules/ and
    global_helpers/.
    """
    directory = Path(start).resolve()
    for candidate in (directory, *directory.parents):
        if is_repository(candidate):
            return candidate
    return None


def is_repository(directory):
    directory = Path(directory)
    if any((directory / marker).is_file() for marker in REPOSITORY_MARKERS):
        return True
    return all((directory / name).is_dir() for name in REPOSITORY_LAYOUT)


def load_analysis_items(repository):
    """The repository's analysis items, read from ANALYSIS_DIRECTORIES only.

    panther_analysis_tool's load_analysis() walks the whole path it is given (and ./
    global_helpers of the working directory), so it is not used: its two steps are, on the
    analysis directories alone.
    """
    directories = [
        str(Path(repository, name))
        for name in ANALYSIS_DIRECTORIES
        if Path(repository, name).is_dir()
    ]
    loader = import_deferring(LOADER_MODULE, UNUSED_BY_LOADER)
    raw_specs = list(loader.load_analysis_specs(directories, []))
    return loader.classify_analysis(
        raw_specs, ignore_table_names=False, valid_table_names=[], ignore_extra_keys=False
    )


@contextmanager
def load_rules(repository):
    """The enabled AWS.CloudTrail rules of `repository`, with its global helpers importable and
    Panther's key-value store answered from memory (see kv_store) until the block ends."""
    with chdir(repository):
        specs, invalid = load_analysis_items(repository)
    if invalid:
        problems = "; ".join(f"{name}: {error}" for name, error in invalid)
        raise RuleRepositoryError(f"invalid analysis items: {problems}")
    store = KeyValueStore()
    with store.installed(), global_helpers_importable(specs.globals):
        models = data_models(specs.data_models)
        rules, skipped = [], []
        for item in specs.detections:
            spec = item.analysis_spec
            if is_cloudtrail_rule(spec):
                rules.append(_runnable(item))
            elif spec.get("RuleID"):
                skipped.append(spec["RuleID"])
        if not rules:
            raise RuleRepositoryError(f"no enabled {LOG_TYPE} rule in {repository}")
        yield RuleSet(rules, models.get(LOG_TYPE), skipped, store)


def data_models(items):
    """The repository's data models by log type, as panther_analysis_tool sets them up."""
    if not items:
        return {}  # the tool's CLI module, which sets them up, is a second of imports
    from panther_analysis_tool.main import setup_data_models  # noqa: PLC0415

    models, invalid = setup_data_models(items)
    if invalid:
        raise RuleRepositoryError(f"invalid data models: {invalid}")
    return models


@contextmanager
def global_helpers_importable(helpers):
    """Each global helper importable by its GlobalID, as panther_analysis_tool arranges it.

    The tool copies every helper to <tmp>/panther-path/globals/<GlobalID>.py and puts that
    directory on sys.path. The replay does the same in a directory of its own, because the
    tool's fixed directory is shared by every process on the machine (a concurrent
    `panther_analysis_tool test` would delete it under us).
    """
    directory = Path(tempfile.mkdtemp(prefix="detection-replay-globals-"))
    # Modules of the same names imported earlier must not shadow the repository's copies while
    # the rules load; they are put back afterwards, leaving the process as it was found.
    shadowed = {}
    try:
        for item in helpers:
            name = item.analysis_spec["GlobalID"]
            source = Path(item.dir_name, item.analysis_spec["Filename"])
            shutil.copyfile(source, directory / f"{name}.py")
            shadowed[name] = sys.modules.pop(name, None)
        sys.path.insert(0, str(directory))
        yield
    finally:
        if str(directory) in sys.path:
            sys.path.remove(str(directory))
        for name, module in shadowed.items():
            sys.modules.pop(name, None)
            if module is not None:
                sys.modules[name] = module
        shutil.rmtree(directory, ignore_errors=True)


def effective_dedup_period(minutes):
    """DedupPeriodMinutes as Panther's backend applies it.

    panther_analysis_tool warns that 0 "will be ignored by the backend" (the default, 60,
    applies) and that a value below 5 "will be treated as '5' upon upload".
    """
    if not minutes:
        return DEFAULT_DEDUP_PERIOD_MINUTES
    return max(int(minutes), MINIMUM_DEDUP_PERIOD_MINUTES)


def _runnable(item):
    spec = item.analysis_spec
    rule_id = spec["RuleID"]
    severity = str(spec.get("Severity", "INFO")).upper()
    period = effective_dedup_period(spec.get("DedupPeriodMinutes", DEFAULT_DEDUP_PERIOD_MINUTES))
    engine = Rule(
        {
            "id": rule_id,
            "analysisType": TYPE_RULE,
            "versionId": "0000-0000-0000",
            "path": str(Path(item.dir_name, spec["Filename"])),
            # Panther passes these, so severity() returning "DEFAULT" resolves to the YAML's.
            "severity": severity,
            "dedupPeriodMinutes": period,
        }
    )
    if engine.setup_exception:
        raise RuleRepositoryError(
            f"rule {rule_id} cannot be loaded: {describe_exception(engine.setup_exception)}"
        )
    swallowed = _SwallowedErrors()
    engine.logger = _rule_logger(rule_id, swallowed)
    return LoadedRule(
        rule_id=rule_id,
        display_name=spec.get("DisplayName") or rule_id,
        severity=severity,
        dedup_period_minutes=period,
        threshold=int(spec.get("Threshold", 1)),
        engine=engine,
        swallowed=swallowed,
        create_alert=bool(spec.get("CreateAlert", True)),
        unique_defined=hasattr(engine.module, UNIQUE_FUNCTION),
    )


def _rule_logger(rule_id, handler):
    """A logger of the rule's own, so the errors panther_core logs reach `handler` only."""
    logger = logging.getLogger(f"detection_replay.rule.{rule_id}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
