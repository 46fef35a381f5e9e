"""The repository's CloudTrail rules, loaded and run the way panther_analysis_tool runs them."""

import ast
import copy
import logging
import shutil
import sys
import tempfile
import types
from collections import Counter
from contextlib import chdir, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from panther_core.enriched_event import PantherEvent
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
    # The module globals its functions change (see ModuleState), or None.
    module_state: "ModuleState | None" = None
    _decided_engine: Rule | None = None

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
    def decided_engine(self):
        """The engine for a match pass 1 decided: Rule.run() with rule() (and the inline filters)
        not called again, their answer being that match, for the title, dedup string, severity,
        alert context and the rest, once."""
        decided = self._decided_engine
        if decided is None:
            decided = copy.copy(self.engine)
            decided.filters = []
            decided.matcher_function = _matched
            self._decided_engine = decided
        return decided

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


def _matched(event):
    return True


@dataclass
class RuleSet:
    rules: list
    data_model: object
    # IDs of the repository's other rules: disabled, or not for AWS.CloudTrail.
    skipped: list
    # What the rules' panther_detection_helpers.caching calls reach while the set is loaded.
    store: KeyValueStore = field(default_factory=KeyValueStore)
    # Enabled AWS.CloudTrail rules (and items they may need) that could not be loaded:
    # [{rule_id, file, error}], rule_id None for an item that is not a rule.
    not_loaded: list = field(default_factory=list)
    # The global helpers' modules by GlobalID, as the rules imported them.
    helpers: dict = field(default_factory=dict)
    # [(key, module, names a ModuleState looks after, fingerprints of its globals as loaded)]
    # for every rule's and helper's module: what tells that pass 1 changed one (engine.py).
    module_baselines: list = field(default_factory=list)

    def __post_init__(self):
        modules = [
            (
                ("rule", rule.rule_id),
                rule.engine.module,
                frozenset(rule.module_state.names if rule.module_state else ()),
            )
            for rule in self.rules
        ]
        modules += [
            (("helper", name), module, frozenset()) for name, module in self.helpers.items()
        ]
        self.module_baselines = [
            (key, module, skip, global_fingerprints(module, skip)) for key, module, skip in modules
        ]


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
    """The repository's analysis items, read from ANALYSIS_DIRECTORIES only: (classified items,
    [(file, error)] of the invalid ones, {file: raw spec or None}).

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
    specs, invalid = loader.classify_analysis(
        raw_specs, ignore_table_names=False, valid_table_names=[], ignore_extra_keys=False
    )
    return specs, invalid, {name: spec for name, _, spec, _ in raw_specs}


# Invalid items that can take a replayed rule down with them: a rule's own YAML, a helper it
# imports, a data model it reads. (An invalid pack, policy or lookup table cannot.)
RELEVANT_WHEN_INVALID = frozenset({"rule", "global", "datamodel"})


def unloadable_items(invalid, raw_specs):
    """The invalid items a replay of the CloudTrail rules must report: [{rule_id, file, error}].
    A YAML file that cannot be read at all may be anything, so it is reported too."""
    found = []
    for name, error in invalid:
        spec = raw_specs.get(name)
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("AnalysisType")
        if kind is not None and kind not in RELEVANT_WHEN_INVALID:
            continue
        if kind in ("rule", "datamodel") and not (
            spec.get("Enabled") and LOG_TYPE in _listed(spec.get("LogTypes"))
        ):
            continue  # not an item this replay would have used
        rule_id = spec.get("RuleID") if kind == "rule" else None
        found.append(
            {
                "rule_id": rule_id if isinstance(rule_id, str) else None,
                "file": str(name),
                "error": f"invalid analysis item: {error}",
            }
        )
    return found


def _listed(value):
    return value if isinstance(value, list) else []


@contextmanager
def load_rules(repository):
    """The enabled AWS.CloudTrail rules of `repository`, with its global helpers importable and
    Panther's key-value store answered from memory (see kv_store) until the block ends.

    A rule that cannot be loaded (an invalid item, an import error, a third-party module that is
    not installed) is listed in RuleSet.not_loaded with its reason and the others are replayed;
    RuleRepositoryError only when no rule at all can be.
    """
    with chdir(repository):
        specs, invalid, raw_specs = load_analysis_items(repository)
    not_loaded = unloadable_items(invalid, raw_specs)
    store = KeyValueStore()
    with store.installed(), global_helpers_importable(specs.globals):
        models = data_models(specs.data_models)
        rules, skipped = [], []
        for item in specs.detections:
            spec = item.analysis_spec
            if not is_cloudtrail_rule(spec):
                if spec.get("RuleID"):
                    skipped.append(spec["RuleID"])
                continue
            try:
                rules.append(_runnable(item))
            except RuleNotLoaded as error:
                not_loaded.append(error.entry)
        if not rules:
            reasons = "; ".join(
                f"{entry['rule_id'] or entry['file']}: {entry['error']}" for entry in not_loaded
            )
            if reasons:
                raise RuleRepositoryError(f"no enabled {LOG_TYPE} rule could be loaded: {reasons}")
            raise RuleRepositoryError(f"no enabled {LOG_TYPE} rule in {repository}")
        helpers = {
            item.analysis_spec["GlobalID"]: sys.modules.get(item.analysis_spec["GlobalID"])
            for item in specs.globals
        }
        yield RuleSet(
            rules,
            models.get(LOG_TYPE),
            skipped,
            store,
            not_loaded=sorted(
                not_loaded, key=lambda entry: (entry["rule_id"] or "", entry["file"])
            ),
            helpers={name: module for name, module in helpers.items() if module is not None},
        )


def data_models(items):
    """The repository's AWS.CloudTrail data model by log type, as panther_analysis_tool sets
    it up. Only its models are set up: panther-analysis has 34, and each takes a third of a
    second (parsing its JSON paths)."""
    items = [item for item in items if LOG_TYPE in _listed(item.analysis_spec.get("LogTypes"))]
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


class RuleNotLoaded(Exception):
    """One rule that cannot be loaded; `entry` is its line of the report."""

    def __init__(self, rule_id, path, error):
        super().__init__(f"rule {rule_id} cannot be loaded: {error}")
        self.entry = {"rule_id": rule_id, "file": str(path), "error": error}


def _runnable(item):
    spec = item.analysis_spec
    rule_id = spec["RuleID"]
    path = Path(item.dir_name, spec["Filename"])
    try:
        severity = str(spec.get("Severity", "INFO")).upper()
        period = effective_dedup_period(
            spec.get("DedupPeriodMinutes", DEFAULT_DEDUP_PERIOD_MINUTES)
        )
        threshold = int(spec.get("Threshold", 1))
        engine = Rule(
            {
                "id": rule_id,
                "analysisType": TYPE_RULE,
                "versionId": "0000-0000-0000",
                "path": str(path),
                # Panther passes these, so severity() returning "DEFAULT" resolves to the YAML's.
                "severity": severity,
                "dedupPeriodMinutes": period,
            }
        )
    except Exception as error:  # a spec panther_core refuses (e.g. its inline filters)
        raise RuleNotLoaded(rule_id, path, describe_exception(error)) from error
    if engine.setup_exception:
        raise RuleNotLoaded(rule_id, path, describe_exception(engine.setup_exception))
    swallowed = _SwallowedErrors()
    engine.logger = _rule_logger(rule_id, swallowed)
    return LoadedRule(
        rule_id=rule_id,
        display_name=spec.get("DisplayName") or rule_id,
        severity=severity,
        dedup_period_minutes=period,
        threshold=threshold,
        engine=engine,
        swallowed=swallowed,
        create_alert=bool(spec.get("CreateAlert", True)),
        unique_defined=hasattr(engine.module, UNIQUE_FUNCTION),
        module_state=ModuleState.of(engine.module, path),
    )


def _rule_logger(rule_id, handler):
    """A logger of the rule's own, so the errors panther_core logs reach `handler` only."""
    logger = logging.getLogger(f"detection_replay.rule.{rule_id}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


# --- module state ---------------------------------------------------------------------------------

# Calls that change a list, dict, set, deque or bytearray in place.
MUTATING_METHODS = frozenset(
    {
        "add", "append", "appendleft", "clear", "discard", "extend", "extendleft", "insert",
        "pop", "popitem", "popleft", "remove", "reverse", "rotate", "setdefault", "sort",
        "update", "difference_update", "intersection_update", "symmetric_difference_update",
    }
)  # fmt: skip
MUTABLE_CONSTRUCTORS = frozenset(
    {"list", "dict", "set", "bytearray", "deque", "defaultdict", "OrderedDict", "Counter"}
)
MUTABLE_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
_MISSING = object()


def _copy(value):
    return value if value is _MISSING else copy.deepcopy(value)


def _is_mutable_value(node):
    if isinstance(node, MUTABLE_DISPLAYS):
        return True
    if isinstance(node, ast.Call):
        function = node.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
        return name in MUTABLE_CONSTRUCTORS
    return False


def _module_level_names(tree):
    """(names bound at the module's top level, those bound to a mutable container)."""
    bound, mutable = set(), set()
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                bound.add(target.id)
                if _is_mutable_value(value):
                    mutable.add(target.id)
    return bound, mutable


def _first_parameter(function):
    arguments = [*function.args.posonlyargs, *function.args.args]
    return arguments[0].arg if arguments else None


def _is_identity_memo(value, parameter):
    """`event` or `(event, ...)`: a memo of the event object itself, which only ever answers for
    that object (an immutable PantherEvent), so it cannot change another event's answers."""
    if isinstance(value, ast.Tuple) and value.elts:
        value = value.elts[0]
    return parameter is not None and isinstance(value, ast.Name) and value.id == parameter


def _local_names(function):
    """Names a function binds locally (its parameters and assignments, less its globals)."""
    declared_global = {
        name for node in ast.walk(function) if isinstance(node, ast.Global) for name in node.names
    }
    arguments = function.args
    local = {
        argument.arg
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    }
    local |= {argument.arg for argument in (arguments.vararg, arguments.kwarg) if argument}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            local.add(node.id)
    return local - declared_global, declared_global


def _changed_globals(function, bound, mutable):
    """The module globals `function` rebinds (declared global) or changes in place."""
    local, declared_global = _local_names(function)
    parameter = _first_parameter(function)
    memo_targets = {
        id(target)
        for node in ast.walk(function)
        if isinstance(node, ast.Assign) and _is_identity_memo(node.value, parameter)
        for target in node.targets
    }
    only_memos = {}
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, (ast.Store, ast.Del))
            and node.id in declared_global
        ):
            only_memos[node.id] = only_memos.get(node.id, True) and id(node) in memo_targets
    rebound = {name for name, memo in only_memos.items() if not memo}
    changed_in_place = set()
    containers = (mutable - local) | (declared_global & bound)
    for node in ast.walk(function):
        base = None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATING_METHODS
        ):
            base = node.func.value
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(
            node.ctx, (ast.Store, ast.Del)
        ):
            base = node.value
        if isinstance(base, ast.Name) and base.id in containers:
            changed_in_place.add(base.id)
    return rebound | changed_in_place


def module_state_names(source):
    """Names of the module globals a module's functions rebind or change in place: the state a
    rule module keeps between events. Not an identity memo of the event (see above)."""
    return module_state(source)[0]


def module_state(source, matcher="rule"):
    """(names of the globals the module keeps state in, those of them its `matcher` function
    sets afresh before anything else on every call: what an earlier event left there cannot
    change its answer)."""
    tree = ast.parse(source)
    bound, mutable = _module_level_names(tree)
    names, reset = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names |= _changed_globals(node, bound, mutable)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == matcher:
            reset = _set_on_entry(node)
    return sorted(names), sorted(reset & names)


def _is_constant(node):
    """A literal built of constants only: `{}`, `""`, `False`, `[]`, `(1, "a")`."""
    return all(
        isinstance(part, (ast.Constant, ast.Dict, ast.List, ast.Set, ast.Tuple, ast.Load))
        for part in ast.walk(node)
    )


def _set_on_entry(function):
    """The globals a function assigns constants to in its first statements, before anything
    else runs (panther-analysis rules reset what rule() leaves for title() so)."""
    declared_global = set()
    reset = set()
    for statement in function.body:
        if isinstance(statement, ast.Global):
            declared_global.update(statement.names)
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        elif (
            isinstance(statement, ast.Assign)
            and all(isinstance(target, ast.Name) for target in statement.targets)
            and _is_constant(statement.value)
        ):
            reset.update(target.id for target in statement.targets)
        else:
            break
    return reset & declared_global


@dataclass
class ModuleState:
    """The globals a rule module keeps state in, and their values as imported.

    The replay's first pass decides matches in any order (and in any process), so it calls the
    rule with these globals as imported and puts them back whenever a call changed them; an
    event whose call changed them, and every match (its title, severity, ... may read what rule()
    left there), is evaluated again in the second pass, in event-time order, in one process. A
    global rule() sets to a constant before anything else is not checked: no earlier event can
    change rule()'s answer through it.
    """

    namespace: dict
    names: list
    # The globals checked after each of pass 1's calls (rule() sets the others afresh first).
    pristine: dict

    @classmethod
    def of(cls, module, path):
        """The module's state, or None when its functions change no global."""
        try:
            names, reset = module_state(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):  # the engine imported it, so rare
            return None
        if not names:
            return None
        namespace = vars(module)
        checked = [name for name in names if name not in reset]
        pristine = {name: _copy(namespace.get(name, _MISSING)) for name in checked}
        return cls(namespace, names, pristine)

    def changed(self):
        """Whether a global differs from its value as imported; if so, all are put back."""
        namespace = self.namespace
        for name, value in self.pristine.items():
            current = namespace.get(name, _MISSING)
            if current is value:
                continue
            try:
                same = current is not _MISSING and value is not _MISSING and current == value
            except Exception:  # an __eq__ that raises: take it as changed
                same = False
            if not same:
                self.restore()
                return True
        return False

    def restore(self):
        """Every global as imported: a container emptied and refilled in place (whatever holds
        it sees the same object), anything else bound again to a copy."""
        namespace = self.namespace
        for name, value in self.pristine.items():
            current = namespace.get(name, _MISSING)
            if value is _MISSING:
                namespace.pop(name, None)
            elif type(current) is type(value) and isinstance(current, (list, bytearray)):
                current[:] = copy.deepcopy(value)
            elif type(current) is type(value) and isinstance(current, (dict, set)):
                current.clear()
                current.update(copy.deepcopy(value))
            else:
                namespace[name] = copy.deepcopy(value)


# What a module-global check leaves out: code and types, which hold no state of an event's.
_NOT_STATE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
_UNCHANGING = (str, bytes, int, float, complex, bool, type(None), frozenset, tuple, range)


MEMO = "an event's memo"


def _fingerprint(value):
    """What tells that a global changed: its identity, and for a container or an object its
    contents too; an identity memo of an event (see _is_identity_memo) is no state."""
    if isinstance(value, PantherEvent) or (
        type(value) is tuple and value and isinstance(value[0], PantherEvent)
    ):
        return MEMO
    if isinstance(value, _UNCHANGING):
        return id(value)
    try:
        contents = vars(value) if hasattr(value, "__dict__") else value
        return id(value), hash(repr(contents))
    except Exception:
        return id(value)


def global_fingerprints(module, skip=()):
    """{name: fingerprint} of the module's globals that could hold state."""
    return {
        name: _fingerprint(value)
        for name, value in list(vars(module).items())
        if not name.startswith("__")
        and name not in skip
        and not isinstance(value, _NOT_STATE)
        and not callable(value)
    }


def changed_globals(module, before, skip=()):
    """Names of the module's globals whose fingerprint is not `before`'s any more (a memo of an
    event, now or before, is no state)."""
    after = global_fingerprints(module, skip)
    return sorted(
        name
        for name in after.keys() | before.keys()
        if after.get(name) != before.get(name) and MEMO not in (after.get(name), before.get(name))
    )
