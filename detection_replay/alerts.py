"""Grouping matches into alerts the way Panther does.

Matches of one rule with the same dedup string make one alert while they fall within the rule's
DedupPeriodMinutes of the alert's first event, measured on eventTime. The alert keeps its first
event's title and alert context, counts its events, records the earliest and latest event time
and takes the highest severity among its events.

Inputs are replayed in the order given, and CloudTrail files are not strictly ordered (a trail
delivers roughly five-minute files per region, and events can arrive in a later file). So the
window is anchored at the eventTime of the alert's first event *in input order*, and a later
match joins the alert when its eventTime lies less than the period away from that anchor, on
either side. A match outside the window closes the old alert and opens a new one.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from detection_replay.rules import SEVERITY_RANK


@dataclass
class Alert:
    rule_id: str
    dedup: str
    title: str
    severity: str
    alert_context: dict
    first_event_time: float
    window_start: float
    last_event_time: float
    first_event_at: str
    events: int = 1

    def add(self, event_time, severity):
        self.events += 1
        self.first_event_time = min(self.first_event_time, event_time)
        self.last_event_time = max(self.last_event_time, event_time)
        if SEVERITY_RANK[severity] > SEVERITY_RANK[self.severity]:
            self.severity = severity

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
    """Open alert windows per (rule, dedup string), and every alert formed so far."""

    def __init__(self):
        self._open = {}
        self.alerts = []

    def add_match(self, rule, dedup, event_time, severity, make_alert):
        """Join the open alert for (rule, dedup) or open a new one with `make_alert()`."""
        key = (rule.rule_id, dedup)
        alert = self._open.get(key)
        if alert is not None and abs(event_time - alert.window_start) < rule.dedup_period_seconds:
            alert.add(event_time, severity)
            return
        alert = make_alert()
        self._open[key] = alert
        self.alerts.append(alert)

    def alerts_of(self, rule):
        """The rule's alerts that reached its Threshold, earliest first."""
        reached = [
            alert
            for alert in self.alerts
            if alert.rule_id == rule.rule_id and alert.events >= rule.threshold
        ]
        return sorted(reached, key=lambda alert: alert.first_event_time)
