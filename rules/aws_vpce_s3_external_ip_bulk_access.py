"""Bulk S3 object access through a VPC endpoint from one public address.

The events are exactly those AWS.CloudTrail.VPCE.S3ExternalIP alerts on, one by one (the same
decision, from the global helper vpce_family). Here Panther counts them: the YAML's Threshold is
the number of distinct records (unique()) one caller makes from one address within
DedupPeriodMinutes, successful and refused calls counted apart. No key-value store is involved,
so the count cannot be lost to a store outage, and Panther's Data Replay can preview it.
"""

import hashlib
import json

from cloudtrail_context import enrichment_context, network_activity_context
from cloudtrail_fields import (
    caller_id,
    caller_name,
    error_kind,
    record_of,
    source_address,
    text,
    top_level_field,
)
from ip_enrichment import described_address, source_ip_profile
from vpce_family import SETTINGS_IN_EFFECT, TRUSTED_TABLES, is_external_s3_data_access

# Severity of a group by what its calls achieved: data that moved is CRITICAL; a flood of refused
# or failed calls moved none (a probe, or keys being guessed), so it never ranks above MEDIUM.
SEVERITY_BY_CLASS = {"succeeded": "CRITICAL", "refused": "MEDIUM"}
TITLE_BY_CLASS = {"succeeded": "Bulk S3 access", "refused": "Bulk refused S3 calls"}
PANTHER_FIELD_LIMIT = 1000


def rule(event):
    return is_external_s3_data_access(event)


def unique(event):
    # CloudTrail delivers at least once: a record delivered twice carries the same eventID and
    # must count once. A record without one counts as its content.
    record = record_of(event)
    event_id = text(top_level_field(record, event, "eventID"))
    if event_id is not None:
        return event_id[:PANTHER_FIELD_LIMIT]
    try:
        content = json.dumps(record, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):  # keys of mixed types cannot be sorted
        content = repr(record)
    return "sha256:" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def outcome_class(event):
    return "succeeded" if error_kind(event) is None else "refused"


def dedup(event):
    return f"{caller_id(event)}:{source_address(event)}:{outcome_class(event)}"[
        :PANTHER_FIELD_LIMIT
    ]


def severity(event):
    return SEVERITY_BY_CLASS[outcome_class(event)]


def title(event):
    where = described_address(source_address(event), source_ip_profile(event, TRUSTED_TABLES))
    text_form = (
        f"{TITLE_BY_CLASS[outcome_class(event)]} through a VPC endpoint by {caller_name(event)} "
        f"from external IP {where}"
    )
    return text_form[:PANTHER_FIELD_LIMIT]


def alert_context(event):
    context = network_activity_context(event)
    context["outcomeClass"] = outcome_class(event)
    context["sourceIPEnrichment"] = enrichment_context(source_ip_profile(event, TRUSTED_TABLES))
    context["overrides"] = SETTINGS_IN_EFFECT
    return context
