"""Grouping matches into alerts the way Panther does, in eventTime order.

The replay hands matches over sorted by eventTime (ties in input order), so grouping does not
depend on the order of the inputs. Matches of one rule with the same dedup string make one alert
while their eventTime lies within the rule's DedupPeriodMinutes of the alert's first event,
[first, first + period); the next match after that opens a new alert. The alert keeps its first
event's title and alert context, counts its events, records the earliest and latest event time
and takes the highest severity among its events.

Threshold: a group becomes an alert once it holds Threshold events or, when the rule defines
unique(), Threshold distinct values returned by unique() (counted exactly here; Panther
estimates the count). A unique() that gave None or an empty string (or raised) adds no value.

Signals: the groups of a rule with CreateAlert: false are signals, grouped the same way but
never alerts and never subject to the Threshold (every match is a signal in Panther).

Memory: an alert whose window has passed is closed and kept as a compact summary (its alert
context as the JSON text the engine produced, its distinct values as their count); at most
`alerts_kept` alerts and as many signal groups are kept, the rest are counted and reported as
not listed. An open group stores at most max(Threshold, UNIQUE_VALUES_KEPT) distinct values.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from detection_replay.rules import SEVERITY_RANK

# Summaries kept for the report; past this, alerts are counted, not listed (--max-alerts).
ALERTS_KEPT = 10_000
# How many matches go by between sweeps that close every alert whose window has passed.
SWEEP_EVERY_MATCHES = 4096
# Distinct unique() values an open group stores beyond its Threshold, for the count it reports;
# past max(Threshold, this) the count is a lower bound (the Threshold is decided long before).
UNIQUE_VALUES_KEPT = 1000
ALERT, SIGNAL = "alert", "signal"


@dataclass(slots=True)
class DistinctValues:
    """The distinct unique() values of one group: stored up to `kept`, then only counted as
    "at least"; on close, reduced to their count."""

    kept: int
    values: set | None = field(default_factory=set)
    count: int = 0
    capped: bool = False

    def add(self, value):
        # None (no value, or unique() raised) and "" name nothing, so they add no value.
        if not value or value in self.values:
            return
        if len(self.values) < self.kept:
            self.values.add(value)
            self.count += 1
        else:
            self.capped = True

    def close(self):
        self.values = None


@dataclass(slots=True)
class Alert:
    rule_id: str
    dedup: str
    title: str
    severity: str
    # The engine's alert_context output: JSON text, decoded only for the report.
    alert_context_json: str | None
    first_event_time: float
    last_event_time: float
    first_event_at: str
    window_end: float
    events: int = 1
    kind: str = ALERT
    # None when the rule defines no unique().
    distinct: DistinctValues | None = None

    def add(self, event_time, severity):
        self.events += 1
        self.last_event_time = max(self.last_event_time, event_time)
        if SEVERITY_RANK[severity] > SEVERITY_RANK[self.severity]:
            self.severity = severity

    @property
    def unique_values(self):
        return None if self.distinct is None else self.distinct.count

    def reaches(self, threshold):
        """Whether the group reached the rule's Threshold: distinct values, else events."""
        counted = self.events if self.distinct is None else self.distinct.count
        return counted >= threshold

    @property
    def alert_context(self):
        if not self.alert_context_json:
            return {}
        return orjson.loads(self.alert_context_json)

    def as_dict(self):
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "title": self.title,
            "dedup": self.dedup,
            "events": self.events,
            "first_seen": iso_time(self.first_event_time),
            "last_seen": iso_time(self.last_event_time),
            "first_event_at": self.first_event_at,
            "alert_context": self.alert_context,
            "kind": self.kind,
            "unique_values": self.unique_values,
            "unique_values_capped": self.distinct is not None and self.distinct.capped,
        }


def iso_time(seconds):
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Listing:
    """Closed groups of one kind: counted per rule (groups and their events), a few listed."""

    limit: int
    counts: dict
    events: dict
    kept: dict
    not_listed: int = 0
    listed: int = 0

    @classmethod
    def for_rules(cls, rules, limit):
        ids = [rule.rule_id for rule in rules]
        return cls(limit, dict.fromkeys(ids, 0), dict.fromkeys(ids, 0), {i: [] for i in ids})

    def add(self, alert):
        self.counts[alert.rule_id] += 1
        self.events[alert.rule_id] += alert.events
        if self.listed < self.limit:
            self.kept[alert.rule_id].append(alert)
            self.listed += 1
        else:
            self.not_listed += 1

    def of(self, rule_id):
        """The rule's listed groups, earliest first; groups starting in the same second by
        dedup string and title, never by input order, which must not change the report."""
        return sorted(
            self.kept[rule_id],
            key=lambda alert: (alert.first_event_time, alert.dedup, alert.title),
        )


class AlertGrouper:
    """Open windows per (rule, dedup string); closed ones counted and summarised as alerts
    (past the rule's Threshold) or signals (CreateAlert: false)."""

    def __init__(self, rules, alerts_kept=ALERTS_KEPT):
        self._rules = {rule.rule_id: rule for rule in rules}
        self._open = {}
        self.alerts_kept = alerts_kept
        self.alerts = Listing.for_rules(rules, alerts_kept)
        self.signals = Listing.for_rules(rules, alerts_kept)
        self._since_sweep = 0

    @property
    def counts(self):
        """Alerts per rule ID."""
        return self.alerts.counts

    @property
    def not_listed(self):
        return self.alerts.not_listed

    def add_match(self, rule, dedup, event_time, severity, make_alert, *, unique_value=None):
        """Join the open group for (rule, dedup) or open a new one with `make_alert()`.

        `unique_value` is what the rule's unique() returned (if it defines one). Matches must
        come in eventTime order.
        """
        key = (rule.rule_id, dedup)
        alert = self._open.get(key)
        if alert is not None and event_time < alert.window_end:
            alert.add(event_time, severity)
        else:
            if alert is not None:
                self._close(alert)
            alert = self._open[key] = make_alert()
            if not rule.create_alert:
                alert.kind = SIGNAL
            if rule.unique_defined:
                alert.distinct = DistinctValues(kept=max(rule.threshold, UNIQUE_VALUES_KEPT))
            self._since_sweep += 1
            if self._since_sweep >= SWEEP_EVERY_MATCHES:
                self._sweep(event_time)
        if alert.distinct is not None:
            alert.distinct.add(unique_value)

    def _sweep(self, now):
        """Close the groups whose window ended before `now`: no later match can join them."""
        self._since_sweep = 0
        for key, alert in list(self._open.items()):
            if alert.window_end <= now:
                del self._open[key]
                self._close(alert)

    def _close(self, alert):
        if alert.distinct is not None:
            alert.distinct.close()
        if alert.kind == SIGNAL:
            self.signals.add(alert)
        elif alert.reaches(self._rules[alert.rule_id].threshold):
            self.alerts.add(alert)

    def finish(self):
        """Close every group still open (all matches have been added)."""
        for alert in self._open.values():
            self._close(alert)
        self._open.clear()

    def alerts_of(self, rule):
        """The rule's alerts that reached its Threshold and were kept, earliest first."""
        return self.alerts.of(rule.rule_id)

    def alert_count(self, rule):
        return self.alerts.counts[rule.rule_id]

    def signals_of(self, rule):
        """The rule's signal groups that were kept, earliest first."""
        return self.signals.of(rule.rule_id)

    def signal_count(self, rule):
        """The rule's signals: one per matching event, as Panther records them."""
        return self.signals.events[rule.rule_id]

    def signal_group_count(self, rule):
        return self.signals.counts[rule.rule_id]
