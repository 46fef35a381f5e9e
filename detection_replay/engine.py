"""The replay loop: records in, rule results out, matches grouped into alerts."""

import time
from dataclasses import dataclass, field

from panther_core.enriched_event import PantherEvent

from detection_replay.alerts import Alert, AlertGrouper
from detection_replay.inputs import (
    READ_ERRORS,
    UnreadableInput,
    describe_error,
    open_source,
    read_records,
)
from detection_replay.records import parse_event_time, record_problem
from detection_replay.rules import describe_exception

MALFORMED_EXAMPLES_KEPT = 10
# Replays know no destinations; one shared empty mapping spares two dicts per rule call.
NO_DESTINATIONS = {}


def location(source_name, line, index):
    """Where a record is: its line for JSON Lines, its position inside a document or line."""
    parts = [source_name]
    if line:
        parts.append(f"line {line}")
    if index:
        parts.append(f"record {index}")
    return " ".join(parts)


@dataclass
class MalformedRecords:
    examples_kept: int = MALFORMED_EXAMPLES_KEPT
    count: int = 0
    examples: list = field(default_factory=list)

    def add(self, where, problem):
        self.count += 1
        if len(self.examples) < self.examples_kept:
            self.examples.append({"where": where, "problem": problem})


@dataclass
class Totals:
    records_read: int = 0
    evaluated: int = 0
    matched: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self):
        return self.records_read / self.seconds if self.seconds > 0 else 0.0


class Replay:
    """Replays sources through a RuleSet, keeping totals, malformed records and alerts."""

    def __init__(
        self,
        rule_set,
        progress=None,
        malformed_examples=MALFORMED_EXAMPLES_KEPT,
        quick_miss=True,
    ):
        self.rules = rule_set.rules
        # Each replay starts from an empty key-value store, on the replayed events' clock.
        self.store = rule_set.store
        self.store.clear()
        self.skipped_rules = rule_set.skipped
        # (rule, its quick matcher or None): see LoadedRule.quick_matcher.
        self._checks = [(rule, rule.quick_matcher if quick_miss else None) for rule in self.rules]
        self.data_model = rule_set.data_model
        self.progress = progress
        self.totals = Totals()
        self.malformed = MalformedRecords(examples_kept=malformed_examples)
        self.unreadable = []
        self.sources_read = 0
        self.grouper = AlertGrouper()

    def run(self, sources):
        started = time.perf_counter()
        try:
            for source in sources:
                self.replay_source(source)
        finally:
            self.totals.seconds += time.perf_counter() - started
        return self

    def replay_source(self, source):
        self.sources_read += 1
        try:
            with open_source(source) as (lines, raw):
                report = self.progress.reporter(raw) if self.progress else None
                self._replay_records(source.name, read_records(lines, report))
        except UnreadableInput as error:
            self.unreadable.append({"input": source.name, "error": str(error)})
        except READ_ERRORS as error:
            self.unreadable.append({"input": source.name, "error": describe_error(error)})
        finally:
            if self.progress:
                self.progress.finish(source)

    def _replay_records(self, source_name, records):
        # The hot loop: locals instead of attributes, flushed even when the input breaks off.
        checks, data_model, malformed = self._checks, self.data_model, self.malformed
        read = evaluated = 0
        try:
            for line, index, record in records:
                read += 1
                problem = record_problem(record)
                if problem is not None:
                    malformed.add(location(source_name, line, index), problem)
                    continue
                evaluated += 1
                event = PantherEvent(record, data_model)
                for rule, quick_matcher in checks:
                    if quick_matcher is not None:
                        try:
                            if quick_matcher(event) is False:
                                continue
                        except Exception:  # run() below records the error as Panther does
                            pass
                    self.store.set_clock(parse_event_time(record["eventTime"]))
                    result = rule.engine.run(
                        event, NO_DESTINATIONS, NO_DESTINATIONS, batch_mode=True
                    )
                    if result.trigger_alert:
                        self._on_match(rule, record, result, location(source_name, line, index))
                    elif result.detection_exception is not None or result.filter_exception:
                        self._on_rule_error(rule, result, location(source_name, line, index))
        finally:
            self.totals.records_read += read
            self.totals.evaluated += evaluated

    def _on_rule_error(self, rule, result, where):
        if result.detection_exception is not None:
            rule.errors.add("rule", describe_exception(result.detection_exception), where)
        else:
            rule.errors.add("filters", describe_exception(result.filter_exception), where)
        # panther_core also logs a filter error; it is counted above, not again.
        rule.swallowed.pending.clear()

    def _on_match(self, rule, record, result, where):
        rule.matched += 1
        self.totals.matched += 1
        event_time = parse_event_time(record["eventTime"])
        severity = rule.event_severity(result)
        context = rule.alert_context(result)

        def first_alert():
            return Alert(
                rule_id=rule.rule_id,
                dedup=result.dedup_output,
                title=result.title_output or rule.display_name,
                severity=severity,
                alert_context=context,
                first_event_time=event_time,
                window_start=event_time,
                last_event_time=event_time,
                first_event_at=where,
            )

        self.grouper.add_match(rule, result.dedup_output, event_time, severity, first_alert)
        rule.take_swallowed_errors(where)

    @property
    def rule_errors(self):
        return sum(sum(rule.errors.counts.values()) for rule in self.rules)
