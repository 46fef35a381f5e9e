"""The replay in two passes: records in, matches buffered, then alerts in eventTime order.

Pass 1 streams every record: decode, validate, and decide for each rule whether it matches,
with the rule's own rule() (and its inline filters), never its title(), dedup(), severity() or
alert_context(). Matching records, which are few, are buffered with where they came from.

Pass 2, once every input is read, sorts the matches by eventTime (ties broken by the record's
content, then input order, so that any order of the same inputs gives the same result) and only
then runs panther_core's `Rule.run(..., batch_mode=True)` on each, in that order, for its title,
dedup string, severity and alert context, and groups the results into alerts. So alerts do not
depend on the order of the inputs, and a rule's auxiliary functions run exactly once per
matching event, in eventTime order: what a rule that keeps state (a key-value store keyed by
time) needs. `before_match(event_time_seconds)` is called right before each such run.
"""

import hashlib
import tempfile
import time
from dataclasses import dataclass, field

import orjson
from panther_core.enriched_event import PantherEvent
from panther_core.rule import TYPE_RULE

from detection_replay.alerts import ALERTS_KEPT, Alert, AlertGrouper
from detection_replay.framing import READ_ERRORS, Damage
from detection_replay.inputs import (
    UnreadableInput,
    describe_error,
    no_cloudtrail_record,
    open_source,
    read_records,
)
from detection_replay.records import event_time_seconds, record_problem
from detection_replay.rules import describe_exception, reset_rule_counters

MALFORMED_EXAMPLES_KEPT = 10
# Matching events buffered between the passes; past this the replay stops (--max-matches).
MATCHES_KEPT = 1_000_000
# Matched records are kept in memory up to this many bytes (as JSON), then in a temporary file
# that has no name (it disappears with the process, however the process ends).
MATCH_MEMORY_BYTES = 64 * 1024 * 1024
# Replays know no destinations; one shared empty mapping spares two dicts per rule call.
NO_DESTINATIONS = {}


def location(source_name, line, index):
    """Where a record is: its line, and its position inside a delivery object or array."""
    parts = [source_name]
    if line:
        parts.append(f"line {line}")
    if index:
        parts.append(f"record {index}")
    return " ".join(parts)


class MatchLimitExceeded(Exception):
    """More matching events than the replay buffers between its passes."""

    def __init__(self, limit):
        super().__init__(
            f"more than {limit:,} matching events (--max-matches): a rule matches too broadly "
            "for a replay; replay fewer inputs at a time or raise the limit"
        )
        self.limit = limit


@dataclass
class MalformedRecords:
    examples_kept: int = MALFORMED_EXAMPLES_KEPT
    count: int = 0
    examples: list = field(default_factory=list)

    def add(self, source_name, line, index, problem):
        self.count += 1
        if len(self.examples) < self.examples_kept:  # only then is the location worth building
            self.examples.append({"where": location(source_name, line, index), "problem": problem})


@dataclass
class Totals:
    records_read: int = 0
    evaluated: int = 0
    matched: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self):
        return self.records_read / self.seconds if self.seconds > 0 else 0.0


class MatchBuffer:
    """Matched records between the passes, sorted on the way out.

    Each entry is (eventTime seconds, content digest, sequence, rule index, where, body); the
    body is the record as JSON bytes, or (offset, length) in the spill file once the in-memory
    bodies pass MATCH_MEMORY_BYTES, or the record itself when it cannot be written as JSON.
    """

    def __init__(self, limit=MATCHES_KEPT, memory_bytes=MATCH_MEMORY_BYTES):
        self.limit = limit
        self._memory_bytes = memory_bytes
        self._entries = []
        self._in_memory = 0
        self._spill = None

    def __len__(self):
        return len(self._entries)

    def add(self, seconds, sequence, rule_index, where, record):
        try:
            body = orjson.dumps(record)
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits: keep the object
            digest, body = b"", record
        else:
            digest = hashlib.blake2b(body, digest_size=8).digest()
        self.add_entry((seconds, digest, sequence, rule_index, where, body))

    def add_entry(self, entry):
        """(seconds, digest, sequence, rule index, where, body): body is the record as JSON
        bytes, or the record itself when it cannot be written as JSON."""
        seconds, digest, sequence, rule_index, where, body = entry
        if len(self._entries) >= self.limit:
            raise MatchLimitExceeded(self.limit)
        if type(body) is bytes:
            if self._in_memory + len(body) > self._memory_bytes:
                body = self._spilled(body)
            else:
                self._in_memory += len(body)
        self._entries.append((seconds, digest, sequence, rule_index, where, body))

    def encoded(self):
        """Every entry as added, with its body as JSON bytes (read back from the spill file)."""
        for *head, body in self._entries:
            if type(body) is tuple:
                offset, length = body
                self._spill.seek(offset)
                yield (*head, self._spill.read(length))
            else:
                yield (*head, body)

    def _spilled(self, body):
        if self._spill is None:
            # Closed by close(); unnamed, so nothing is left behind even if that never runs.
            self._spill = tempfile.TemporaryFile(prefix="detection-replay-matches-")  # noqa: SIM115
        offset = self._spill.seek(0, 2)
        self._spill.write(body)
        return offset, len(body)

    def in_time_order(self):
        """(seconds, rule index, where, record) by eventTime, ties in a content-given order."""
        self._entries.sort(key=lambda entry: entry[:3])
        for seconds, _, _, rule_index, where, body in self._entries:
            yield seconds, rule_index, where, self._record(body)

    def _record(self, body):
        if type(body) is bytes:
            return orjson.loads(body)
        if type(body) is tuple:
            offset, length = body
            self._spill.seek(offset)
            return orjson.loads(self._spill.read(length))
        return body

    def close(self):
        self._entries.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def matcher_decision(engine, event):
    """Rule.run()'s decision without its auxiliary functions: (matched, (function, error)).

    The same steps as panther_core's Rule.run() up to its `trigger_alert`: inline filters (on
    plain rules, unless skipped), then the rule's matcher, whose result must be the bool True.
    """
    filtered = engine.detection_type == TYPE_RULE and engine.filters and not engine.skip_filters
    try:
        if filtered and not all(single.filter(event) for single in engine.filters):
            return False, None
    except Exception as error:
        return False, ("filters", error)
    try:
        output = engine.matcher_function(event)
    except Exception as error:
        return False, ("rule", error)
    return output is engine.matcher_alert_value, None


class Replay:
    """Replays sources through a RuleSet, keeping totals, malformed records and alerts."""

    def __init__(
        self,
        rule_set,
        *,
        progress=None,
        malformed_examples=MALFORMED_EXAMPLES_KEPT,
        quick_miss=True,
        before_match=None,
        max_matches=MATCHES_KEPT,
        max_alerts=ALERTS_KEPT,
    ):
        self.rule_set = rule_set
        self.options = {
            "malformed_examples": malformed_examples,
            "quick_miss": quick_miss,
            "max_matches": max_matches,
            "max_alerts": max_alerts,
        }
        self.rules = rule_set.rules
        # Each replay starts from an empty key-value store, on the replayed events' clock.
        self.store = rule_set.store
        self.store.clear()
        self.skipped_rules = rule_set.skipped
        # (rule, its quick matcher or None): see LoadedRule.quick_matcher.
        self._checks = [(rule, rule.quick_matcher if quick_miss else None) for rule in self.rules]
        self.data_model = rule_set.data_model
        self.progress = progress
        self.before_match = before_match
        self.totals = Totals()
        self.malformed = MalformedRecords(examples_kept=malformed_examples)
        self.unreadable = []
        self.skipped_inputs = []
        self.digest_files = 0
        self.sources_read = 0
        # Inputs that yielded at least one record (a run where none did is a failed run).
        self.inputs_with_records = 0
        # The first malformed record of the input being read, and why (see replay_source).
        self._first_malformed = None
        self.grouper = AlertGrouper(self.rules, alerts_kept=max_alerts)
        self.matches = MatchBuffer(limit=max_matches)
        self.finished = False

    def run(self, sources, jobs=1):
        """Both passes over the sources; pass 1 in `jobs` processes (see parallel.py)."""
        started = time.perf_counter()
        try:
            if jobs > 1:
                from detection_replay.parallel import first_pass  # noqa: PLC0415

                first_pass(self, sources, jobs)
            else:
                for source in sources:
                    self.replay_source(source)
            self.group_matches()
        finally:
            self.matches.close()
            self.totals.seconds += time.perf_counter() - started
        return self

    def fresh(self):
        """A replay with these rules and options and nothing counted: a worker's, per input."""
        reset_rule_counters(self.rules)
        return Replay(self.rule_set, **self.options)

    # --- pass 1 ---------------------------------------------------------------------------------

    def replay_source(self, source):
        if source.digest:
            self.digest_files += 1
            return
        if source.skipped:
            self.skipped_inputs.append({"input": source.name, "reason": source.skipped})
            return
        self.sources_read += 1
        read_before, evaluated_before = self.totals.records_read, self.totals.evaluated
        problems_before = len(self.unreadable)
        self._first_malformed = None
        try:
            with open_source(source) as (chunks, raw):
                report = self.progress.reporter(raw) if self.progress else None
                self._replay_records(source.name, read_records(chunks, report))
        except UnreadableInput as error:
            self._unreadable(source.name, str(error))
        except READ_ERRORS as error:
            self._unreadable(source.name, describe_error(error))
        finally:
            if (read := self.totals.records_read - read_before) > 0:
                self.inputs_with_records += 1
                said = len(self.unreadable) > problems_before
                if self.totals.evaluated == evaluated_before and not said:
                    # Not one record replayed, and nothing else said: the wrong files
                    # (EventBridge events, a CSV export), named rather than a quiet day.
                    reason = no_cloudtrail_record(read, *self._first_malformed)
                    self._unreadable(source.name, reason)
            if self.progress:
                self.progress.finish(source)

    def _unreadable(self, name, error):
        self.unreadable.append({"input": name, "error": error})

    def _replay_records(self, source_name, records):
        # The hot loop: locals instead of attributes, flushed even when the input breaks off.
        checks, data_model, malformed = self._checks, self.data_model, self.malformed
        read = evaluated = 0
        sequence = self.totals.records_read
        self._current = source_name
        try:
            for item in records:
                if type(item) is Damage:
                    self._unreadable(source_name, str(item))
                    continue
                line, index, record = item
                read += 1
                problem = record_problem(record)
                if problem is not None:
                    malformed.add(source_name, line, index, problem)
                    if self._first_malformed is None:
                        self._first_malformed = (record, problem)
                    continue
                evaluated += 1
                event = PantherEvent(record, data_model)
                for rule_index, (rule, quick_matcher) in enumerate(checks):
                    if quick_matcher is not None:
                        try:
                            verdict = quick_matcher(event)
                        except Exception:  # the exact decision below records the error
                            verdict = None
                        if verdict is False:
                            continue
                        if verdict is True:
                            self._on_match(rule, rule_index, record, sequence + read, line, index)
                            continue
                    matched, error = matcher_decision(rule.engine, event)
                    if matched:
                        self._on_match(rule, rule_index, record, sequence + read, line, index)
                    elif error is not None:
                        function, exception = error
                        where = location(source_name, line, index)
                        rule.errors.add(function, describe_exception(exception), where)
        finally:
            self.totals.records_read += read
            self.totals.evaluated += evaluated

    def _on_match(self, rule, rule_index, record, sequence, *where):
        rule.matched += 1
        self.totals.matched += 1
        seconds = event_time_seconds(record["eventTime"])
        self.matches.add(seconds, sequence, rule_index, (self._current, *where), record)

    # --- pass 2 ---------------------------------------------------------------------------------

    def group_matches(self):
        """Run each matching event through Rule.run() in eventTime order and group alerts."""
        for seconds, rule_index, where, record in self.matches.in_time_order():
            rule = self.rules[rule_index]
            self.store.set_clock(seconds)
            if self.before_match is not None:
                self.before_match(seconds)
            result = rule.engine.run(
                PantherEvent(record, self.data_model),
                NO_DESTINATIONS,
                NO_DESTINATIONS,
                batch_mode=True,
            )
            place = location(*where)
            if result.trigger_alert:
                self._group(rule, result, seconds, place)
            else:
                rule.errors.add("rule", "matched in the first pass but not when run again", place)
            rule.take_swallowed_errors(place)
        self.grouper.finish()
        self.finished = True

    def _group(self, rule, result, seconds, where):
        severity = rule.event_severity(result)
        context = rule.alert_context_json(result)

        def first_alert():
            return Alert(
                rule_id=rule.rule_id,
                dedup=result.dedup_output,
                title=result.title_output or rule.display_name,
                severity=severity,
                alert_context_json=context,
                first_event_time=seconds,
                last_event_time=seconds,
                first_event_at=where,
                window_end=seconds + rule.dedup_period_seconds,
            )

        self.grouper.add_match(
            rule,
            result.dedup_output,
            seconds,
            severity,
            first_alert,
            unique_value=result.unique_output,
        )

    @property
    def rule_errors(self):
        return sum(sum(rule.errors.counts.values()) for rule in self.rules)

    @property
    def alert_count(self):
        return sum(self.grouper.counts.values())
