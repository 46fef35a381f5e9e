"""The replay's results as one JSON document, JSON Lines of alerts, or a readable summary.

`--format json` writes one document (a stable interface; fields are only ever added):

    schema_version      1
    repository          absolute path of the repository whose rules ran
    inputs_read         inputs opened (files, stdin), readable or not
    records_read        records found in the inputs; always evaluated + malformed
    evaluated           records the rules ran on
    matched             (record, rule) pairs where rule() returned True
    malformed           records skipped as not valid JSON, not an object or lacking a field
    rule_errors         failed rule function calls, all rules and functions together
    unreadable_inputs   inputs that could not be read, or not to their end
    alert_count         alerts over all rules (after each rule's Threshold)
    seconds             wall time of the replay itself (not start-up or rule loading)
    events_per_second   records_read / seconds
    exit_status         the command's exit status
    rules               per replayed rule: rule_id, severity (YAML), dedup_period_minutes,
                        threshold, matched, alerts (below), errors {function: count},
                        error_examples [{function, error, where}]
    rules_not_replayed  IDs of the repository's other rules (disabled or not AWS.CloudTrail)
    malformed_examples  the first malformed records: [{where, problem}]
    unreadable          [{input, error}]

An alert (also one line of `--format jsonl`): rule_id, severity (highest among its events),
title and alert_context (its first event's), dedup, events, first_seen and last_seen (eventTime,
ISO 8601 UTC) and first_event_at (input and line/record of its first event).
"""

import orjson

SCHEMA_VERSION = 1


def build_document(replay, repository, exit_status):
    """Everything the replay found, as plain data (the `--format json` document)."""
    totals = replay.totals
    rules = [_rule_document(rule, replay.grouper.alerts_of(rule)) for rule in replay.rules]
    return {
        "schema_version": SCHEMA_VERSION,
        "repository": str(repository),
        "inputs_read": replay.sources_read,
        "records_read": totals.records_read,
        "evaluated": totals.evaluated,
        "matched": totals.matched,
        "malformed": replay.malformed.count,
        "rule_errors": replay.rule_errors,
        "unreadable_inputs": len(replay.unreadable),
        "alert_count": sum(len(rule["alerts"]) for rule in rules),
        "seconds": round(totals.seconds, 6),
        "events_per_second": round(totals.events_per_second, 1),
        "exit_status": exit_status,
        "rules": rules,
        "rules_not_replayed": replay.skipped_rules,
        "malformed_examples": replay.malformed.examples,
        "unreadable": replay.unreadable,
    }


def _rule_document(rule, alerts):
    return {
        "rule_id": rule.rule_id,
        "severity": rule.severity,
        "dedup_period_minutes": rule.dedup_period_minutes,
        "threshold": rule.threshold,
        "matched": rule.matched,
        "alerts": [alert.as_dict() for alert in alerts],
        "errors": dict(rule.errors.counts),
        "error_examples": rule.errors.examples,
    }


def render_json(document):
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_jsonl(document):
    lines = [orjson.dumps(alert).decode() for rule in document["rules"] for alert in rule["alerts"]]
    return "".join(f"{line}\n" for line in lines)


def render_text(document):
    lines = [
        f"Replayed {document['inputs_read']} input(s) through {len(document['rules'])} "
        f"AWS.CloudTrail rule(s) from {document['repository']}",
        "",
    ]
    for rule in document["rules"]:
        lines.extend(_rule_lines(rule))
    lines.extend(_problem_lines(document))
    lines.extend(_total_lines(document))
    return "\n".join(lines) + "\n"


def _rule_lines(rule):
    alerts = rule["alerts"]
    lines = [
        f"{rule['rule_id']} (severity {rule['severity']}, dedup {rule['dedup_period_minutes']} "
        f"min): {len(alerts)} alert(s) from {rule['matched']} matching event(s)"
    ]
    for alert in alerts:
        lines.append(f"  [{alert['severity']}] {alert['title']}")
        lines.append(
            f"      events {alert['events']}, first seen {alert['first_seen']}, "
            f"last seen {alert['last_seen']}"
        )
    for function, count in sorted(rule["errors"].items()):
        lines.append(f"  rule error: {function}() raised {count} time(s)")
    for example in rule["error_examples"]:
        lines.append(f"      {example['function']}(): {example['error']} at {example['where']}")
    lines.append("")
    return lines


def _problem_lines(document):
    lines = []
    if document["malformed"]:
        lines.append(f"Malformed records: {document['malformed']}")
        shown = document["malformed_examples"]
        lines.extend(f"  {example['where']}: {example['problem']}" for example in shown)
        if document["malformed"] > len(shown):
            lines.append(f"  ... and {document['malformed'] - len(shown)} more")
        lines.append("")
    if document["unreadable"]:
        lines.append(f"Unreadable inputs: {len(document['unreadable'])}")
        lines.extend(f"  {item['input']}: {item['error']}" for item in document["unreadable"])
        lines.append("")
    return lines


def _total_lines(document):
    rows = [
        ("records read", f"{document['records_read']:,}"),
        ("evaluated", f"{document['evaluated']:,}"),
        ("matched", f"{document['matched']:,}"),
        ("malformed", f"{document['malformed']:,}"),
        ("rule errors", f"{document['rule_errors']:,}"),
        ("alerts", f"{document['alert_count']:,}"),
        ("seconds", f"{document['seconds']:.2f}"),
        ("events/s", f"{document['events_per_second']:,.0f}"),
    ]
    width = max(len(value) for _, value in rows)
    return ["Totals"] + [f"  {label:<13}{value:>{width}}" for label, value in rows]
