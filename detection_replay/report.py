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
    alert_count         alerts over all rules (after each rule's Threshold); never signals
    alerts_not_listed   alerts counted but not listed, past --max-alerts
    signal_count        signals over all rules: matching events of CreateAlert: false rules
    signals_not_listed  signal groups counted but not listed, past --max-alerts
    seconds             wall time of the replay itself (not start-up or rule loading)
    events_per_second   records_read / seconds
    exit_status         the command's exit status
    rules               per replayed rule: rule_id, severity (YAML), dedup_period_minutes
                        (as Panther applies it), threshold, matched, alert_count, alerts
                        (below), errors {function: count}, error_examples [{function, error,
                        where}]; create_alert (YAML CreateAlert; false: a signal rule), unique
                        (the rule defines unique(): its threshold counts distinct values),
                        signal_count (its signals, one per matching event), signal_groups (how
                        many groups they form), signals (the groups, listed like alerts)
    rules_not_replayed  IDs of the repository's other rules (disabled or not AWS.CloudTrail)
    rules_not_loaded    enabled AWS.CloudTrail rules that could not be loaded, and invalid
                        helpers or data models they may need: [{rule_id (null for an item that
                        is not a rule), file, error}]; the others were replayed (exit status 8)
    rules_keeping_state rules whose module keeps state in its globals between events:
                        [{rule_id, globals, handled}]; handled: its events that change them and
                        its matches were evaluated in eventTime order in one process; not
                        handled: found changed while replaying, its alerts may depend on the
                        order of the inputs and on --jobs
    helpers_keeping_state  global helpers whose module globals changed while replaying:
                        [{helper, globals}] (not handled, as above)
    malformed_examples  the first malformed records: [{where, problem}]
    unreadable          [{input, error}]; an input broken part-way shows once per break, its
                        error starting with the line; one holding no CloudTrail record says
                        what its values look like
    skipped_inputs      [{input, reason}]: named pipes, sockets and devices found while
                        walking a directory, and inputs or folders met again (read once)
    empty_directories   input directories holding no file

An alert (also one line of `--format jsonl`): rule_id, severity (highest among its events),
title and alert_context (its first event's), dedup, events, first_seen and last_seen (eventTime,
ISO 8601 UTC) and first_event_at (input and line/record of its first event); kind ("alert");
unique_values (distinct values its events' unique() returned, null when the rule defines no
unique()) and unique_values_capped (true when more were seen than counted exactly: the count
is then a lower bound).

A signal group has the same fields with kind "signal": the matches of a CreateAlert: false rule
with one dedup string in one dedup window, as an alert would group them (no Threshold applies).
`--format jsonl` writes the alerts, then the signal groups, one per line.

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
        "signal_count": sum(rule["signal_count"] for rule in rules),
        "signals_not_listed": replay.grouper.signals.not_listed,
        "seconds": round(totals.seconds, 6),
        "events_per_second": round(totals.events_per_second, 1),
        "exit_status": exit_status,
        "rules": rules,
        "rules_not_replayed": replay.skipped_rules,
        "rules_not_loaded": replay.not_loaded_rules,
        "rules_keeping_state": replay.rules_keeping_state,
        "helpers_keeping_state": replay.helpers_keeping_state,
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
        "create_alert": rule.create_alert,
        "unique": rule.unique_defined,
        "signal_count": grouper.signal_count(rule),
        "signal_groups": grouper.signal_group_count(rule),
        "signals": [group.as_dict() for group in grouper.signals_of(rule)],
    }


def render_json(document):
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_jsonl(document):
    lines = [orjson.dumps(alert).decode() for rule in document["rules"] for alert in rule["alerts"]]
    lines += [
        orjson.dumps(group).decode() for rule in document["rules"] for group in rule["signals"]
    ]
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
    signal_rule = not rule["create_alert"]
    listed = rule["signals"] if signal_rule else rule["alerts"]
    counted = rule["signal_groups"] if signal_rule else rule["alert_count"]
    lines = [f"{printable(rule['rule_id'])} ({_rule_settings(rule)}): {_rule_outcome(rule)}"]
    for group in listed:
        marker = "signal " if signal_rule else ""
        lines.append(f"  {marker}[{printable(group['severity'])}] {printable(group['title'])}")
        lines.append(
            f"      events {group['events']}{_distinct_values(group)}, first seen "
            f"{group['first_seen']}, last seen {group['last_seen']}"
        )
        if signal_rule:  # what a correlation rule would join on
            lines.append(f"      dedup {printable(group['dedup'])}")
    if counted > len(listed):
        lines.append(f"  ... and {counted - len(listed)} more, not listed (--max-alerts)")
    for function, count in sorted(rule["errors"].items()):
        lines.append(f"  rule error: {function}() raised {count} time(s)")
    for example in rule["error_examples"]:
        lines.append(
            f"      {example['function']}(): {printable(example['error'])} at "
            f"{printable(example['where'])}"
        )
    lines.append("")
    return lines


def _distinct_values(group):
    if group["unique_values"] is None:
        return ""
    at_least = "at least " if group["unique_values_capped"] else ""
    return f", distinct unique() values {at_least}{group['unique_values']}"


def _rule_settings(rule):
    settings = [
        f"severity {printable(rule['severity'])}",
        f"dedup {rule['dedup_period_minutes']} min",
    ]
    if not rule["create_alert"]:
        settings.insert(0, "signals only, CreateAlert: false")
    elif rule["unique"]:
        settings.append(f"threshold {rule['threshold']} distinct unique() values")
    elif rule["threshold"] > 1:
        settings.append(f"threshold {rule['threshold']} events")
    return ", ".join(settings)


def _rule_outcome(rule):
    if not rule["create_alert"]:
        return (
            f"{rule['signal_count']} signal(s) in {rule['signal_groups']} group(s) from "
            f"{rule['matched']} matching event(s)"
        )
    return f"{rule['alert_count']} alert(s) from {rule['matched']} matching event(s)"


def _problem_lines(document):
    lines = []
    not_loaded = document["rules_not_loaded"]
    if not_loaded:
        lines.append(f"Rules not loaded: {len(not_loaded)}")
        lines.extend(f"  {_not_loaded_line(entry)}" for entry in not_loaded)
        lines.append("")
    keeping_state = document["rules_keeping_state"] + document["helpers_keeping_state"]
    if keeping_state:
        lines.append(f"Keeping state in module globals: {len(keeping_state)}")
        lines.extend(f"  {_state_line(entry)}" for entry in keeping_state)
        lines.append("")
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
    if any(not rule["create_alert"] for rule in document["rules"]):
        rows.insert(
            rows.index(("alerts", f"{document['alert_count']:,}")) + 1,
            (
                "signals",
                f"{document['signal_count']:,}",
            ),
        )
    if document["digest_files_skipped"]:
        rows.insert(4, ("digest files", f"{document['digest_files_skipped']:,}"))
    width = max(len(value) for _, value in rows)
    return ["Totals"] + [f"  {label:<13}{value:>{width}}" for label, value in rows]


def _not_loaded_line(entry):
    name = entry["rule_id"] or entry["file"]
    return f"{printable(name)}: {printable(entry['error'])}"


def _state_line(entry):
    kind, name = ("rule", entry["rule_id"]) if "rule_id" in entry else ("helper", entry["helper"])
    globals_ = ", ".join(printable(name) for name in entry["globals"])
    if entry.get("handled"):
        how = "its events that change them and its matches were evaluated in eventTime order"
    else:
        how = "found changed while replaying; its alerts may depend on the order of the events"
    return f"{kind} {printable(name)} keeps state in module globals: {globals_} ({how})"


def state_and_loading_lines_for_stderr(document):
    """What makes a report incomplete or order-dependent, said on stderr whatever the format:
    rules not loaded, and module state the replay could not look after."""
    lines = [
        f"rule not loaded: {_not_loaded_line(entry)}" for entry in document["rules_not_loaded"]
    ]
    lines += [
        _state_line(entry)
        for entry in document["rules_keeping_state"] + document["helpers_keeping_state"]
        if not entry.get("handled")
    ]
    return lines


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
