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
    unreadable_inputs   inputs that could not be read, or not wholly (see `unreadable`)
    inputs_with_records inputs that yielded at least one record
    digest_files_skipped  CloudTrail digest files (AWSLogs/.../CloudTrail-Digest/) skipped
    alert_count         alerts over all rules (after each rule's Threshold)
    alerts_not_listed   alerts counted but not listed, past --max-alerts
    seconds             wall time of the replay itself (not start-up or rule loading)
    events_per_second   records_read / seconds
    exit_status         the command's exit status
    rules               per replayed rule: rule_id, severity (YAML), dedup_period_minutes
                        (as Panther applies it), threshold, matched, alert_count, alerts
                        (below), errors {function: count}, error_examples [{function, error,
                        where}]
    rules_not_replayed  IDs of the repository's other rules (disabled or not AWS.CloudTrail)
    malformed_examples  the first malformed records: [{where, problem}]
    unreadable          [{input, error}]; an input broken part-way shows once per break, its
                        error starting with the line
    skipped_inputs      [{input, reason}]: named pipes, sockets, devices and directories
                        reached twice, found while walking a directory
    empty_directories   input directories holding no file

An alert (also one line of `--format jsonl`): rule_id, severity (highest among its events),
title and alert_context (its first event's), dedup, events, first_seen and last_seen (eventTime,
ISO 8601 UTC) and first_event_at (input and line/record of its first event).

File names are reported as valid UTF-8 (bytes that are not, as \\xNN); the text summary also
escapes control characters in anything taken from logs or file names, so a log cannot forge
report lines or send terminal escapes.
"""

import orjson

from detection_replay.text import printable

SCHEMA_VERSION = 1


def build_document(replay, repository, exit_status, discovery=None):
    """Everything the replay found, as plain data (the `--format json` document)."""
    totals = replay.totals
    rules = [_rule_document(rule, replay.grouper) for rule in replay.rules]
    return {
        "schema_version": SCHEMA_VERSION,
        "repository": str(repository),
        "inputs_read": replay.sources_read,
        "records_read": totals.records_read,
        "evaluated": totals.evaluated,
        "matched": totals.matched,
        "malformed": replay.malformed.count,
        "rule_errors": replay.rule_errors,
        "unreadable_inputs": len({item["input"] for item in replay.unreadable}),
        "inputs_with_records": replay.inputs_with_records,
        "digest_files_skipped": replay.digest_files,
        "alert_count": sum(rule["alert_count"] for rule in rules),
        "alerts_not_listed": replay.grouper.not_listed,
        "seconds": round(totals.seconds, 6),
        "events_per_second": round(totals.events_per_second, 1),
        "exit_status": exit_status,
        "rules": rules,
        "rules_not_replayed": replay.skipped_rules,
        "malformed_examples": replay.malformed.examples,
        "unreadable": replay.unreadable,
        "skipped_inputs": replay.skipped_inputs,
        "empty_directories": discovery.empty_directories if discovery else [],
    }


def _rule_document(rule, grouper):
    return {
        "rule_id": rule.rule_id,
        "severity": rule.severity,
        "dedup_period_minutes": rule.dedup_period_minutes,
        "threshold": rule.threshold,
        "matched": rule.matched,
        "alert_count": grouper.alert_count(rule),
        "alerts": [alert.as_dict() for alert in grouper.alerts_of(rule)],
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
        f"AWS.CloudTrail rule(s) from {printable(document['repository'])}",
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
        f"{printable(rule['rule_id'])} (severity {printable(rule['severity'])}, dedup "
        f"{rule['dedup_period_minutes']} min): {rule['alert_count']} alert(s) from "
        f"{rule['matched']} matching event(s)"
    ]
    for alert in alerts:
        lines.append(f"  [{printable(alert['severity'])}] {printable(alert['title'])}")
        lines.append(
            f"      events {alert['events']}, first seen {alert['first_seen']}, "
            f"last seen {alert['last_seen']}"
        )
    if rule["alert_count"] > len(alerts):
        lines.append(
            f"  ... and {rule['alert_count'] - len(alerts)} more, not listed (--max-alerts)"
        )
    for function, count in sorted(rule["errors"].items()):
        lines.append(f"  rule error: {function}() raised {count} time(s)")
    for example in rule["error_examples"]:
        lines.append(
            f"      {example['function']}(): {printable(example['error'])} at "
            f"{printable(example['where'])}"
        )
    lines.append("")
    return lines


def _problem_lines(document):
    lines = []
    if document["malformed"]:
        lines.append(f"Malformed records: {document['malformed']}")
        shown = document["malformed_examples"]
        lines.extend(
            f"  {printable(example['where'])}: {printable(example['problem'])}" for example in shown
        )
        if document["malformed"] > len(shown):
            lines.append(f"  ... and {document['malformed'] - len(shown)} more (--show-malformed)")
        lines.append("")
    sections = [
        ("Unreadable inputs", [(i["input"], i["error"]) for i in document["unreadable"]]),
        ("Skipped inputs", [(i["input"], i["reason"]) for i in document["skipped_inputs"]]),
        ("Empty directories", [(name, "no files") for name in document["empty_directories"]]),
    ]
    for heading, items in sections:
        if items:
            lines.append(f"{heading}: {len(items)}")
            lines.extend(f"  {printable(name)}: {printable(why)}" for name, why in items)
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
    if document["digest_files_skipped"]:
        rows.insert(4, ("digest files", f"{document['digest_files_skipped']:,}"))
    width = max(len(value) for _, value in rows)
    return ["Totals"] + [f"  {label:<13}{value:>{width}}" for label, value in rows]


def problem_lines_for_stderr(document):
    """The problems a report on stdout or in a file would not show a person at the terminal."""
    lines = [
        f"unreadable: {printable(item['input'])}: {printable(item['error'])}"
        for item in document["unreadable"]
    ]
    lines += [
        f"skipped: {printable(item['input'])}: {printable(item['reason'])}"
        for item in document["skipped_inputs"]
    ]
    if document["malformed"]:
        lines.append(f"{document['malformed']} malformed record(s)")
        lines += [
            f"malformed: {printable(example['where'])}: {printable(example['problem'])}"
            for example in document["malformed_examples"]
        ]
    return lines
