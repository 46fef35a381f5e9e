"""Grouping matches into alerts the way Panther does, in eventTime order.

The replay hands matches over sorted by eventTime (ties in input order), so grouping does not
depend on the order of the inputs. Matches of one rule with the same dedup string make one alert
while their eventTime lies within the rule's DedupPeriodMinutes of the alert's first event,
[first, first + period); the next match after that opens a new alert. The alert keeps its first
event's title and alert context, counts its events, records the earliest and latest event time
and takes the highest severity among its events.

Memory: an alert whose window has passed is closed and kept as a compact summary (its alert
context as the JSON text the engine produced); at most `alerts_kept` summaries are kept, the
rest are counted and reported as not listed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from detection_replay.rules import SEVERITY_RANK

# Summaries kept for the report; past this, alerts are counted, not listed (--max-alerts).
ALERTS_KEPT = 10_000
# How many matches go by between sweeps that close every alert whose window has passed.
SWEEP_EVERY_MATCHES = 4096


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

    def add(self, event_time, severity):
        self.events += 1
        self.last_event_time = max(self.last_event_time, event_time)
        if SEVERITY_RANK[severity] > SEVERITY_RANK[self.severity]:
            self.severity = severity

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
        }


def iso_time(seconds):
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AlertGrouper:
    """Open alert windows per (rule, dedup string); closed alerts counted and summarised."""

    def __init__(self, rules, alerts_kept=ALERTS_KEPT):
        self._rules = {rule.rule_id: rule for rule in rules}
        self._open = {}
        self._kept = {rule.rule_id: [] for rule in rules}
        self.alerts_kept = alerts_kept
        self.counts = dict.fromkeys(self._kept, 0)
        self.not_listed = 0
        self._since_sweep = 0

    def add_match(self, rule, dedup, event_time, severity, make_alert):
        """Join the open alert for (rule, dedup) or open a new one with `make_alert()`.

        Matches must come in eventTime order.
        """
        key = (rule.rule_id, dedup)
        alert = self._open.get(key)
        if alert is not None and event_time < alert.window_end:
            alert.add(event_time, severity)
            return
        if alert is not None:
            self._close(alert)
        self._open[key] = make_alert()
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY_MATCHES:
            self._sweep(event_time)

    def _sweep(self, now):
        """Close the alerts whose window ended before `now`: no later match can join them."""
        self._since_sweep = 0
        for key, alert in list(self._open.items()):
            if alert.window_end <= now:
                del self._open[key]
                self._close(alert)

    def _close(self, alert):
        if alert.events < self._rules[alert.rule_id].threshold:
            return
        self.counts[alert.rule_id] += 1
        if sum(len(kept) for kept in self._kept.values()) < self.alerts_kept:
            self._kept[alert.rule_id].append(alert)
        else:
            self.not_listed += 1

    def finish(self):
        """Close every alert still open (all matches have been added)."""
        for alert in self._open.values():
            self._close(alert)
        self._open.clear()

    def alerts_of(self, rule):
        """The rule's alerts that reached its Threshold and were kept, earliest first.

        Alerts that start in the same second are ordered by dedup string and title: never by
        input order, which must not change the report.
        """
        return sorted(
            self._kept[rule.rule_id],
            key=lambda alert: (alert.first_event_time, alert.dedup, alert.title),
        )

    def alert_count(self, rule):
        return self.counts[rule.rule_id]
