"""Bulk S3 object access through a VPC endpoint from one public address.

The events are exactly those AWS.CloudTrail.VPCE.S3ExternalIP alerts on, one by one (the same
decision, from the global helper vpce_family). Here Panther counts them: the YAML's Threshold is
the number of distinct records (unique()) one caller makes from one address within
DedupPeriodMinutes, successful and refused calls counted apart. No key-value store is involved,
so the count cannot be lost to a store outage, and Panther's Data Replay can preview it.
"""

from cloudtrail_fields import caller_id, caller_name, record_id, source_address
from vpce_family import family_alert_context, is_external_s3_data_access, origin, outcome

# Severity of a group by what its calls achieved: data that moved is CRITICAL; a flood of refused
# or failed calls moved none (a probe, or keys being guessed), so it never ranks above MEDIUM.
SEVERITY_BY_CLASS = {"succeeded": "CRITICAL", "refused": "MEDIUM"}
TITLE_BY_CLASS = {"succeeded": "Bulk S3 access", "refused": "Bulk refused S3 calls"}
PANTHER_FIELD_LIMIT = 1000


def rule(event):
    return is_external_s3_data_access(event)


def unique(event):
    # CloudTrail delivers at least once: a record delivered twice must count once.
    return record_id(event)


def dedup(event):
    return f"{caller_id(event)}:{source_address(event)}:{outcome(event)}"[:PANTHER_FIELD_LIMIT]


def severity(event):
    return SEVERITY_BY_CLASS[outcome(event)]


def title(event):
    text_form = (
        f"{TITLE_BY_CLASS[outcome(event)]} through a VPC endpoint by {caller_name(event)} "
        f"{origin(event)}"
    )
    return text_form[:PANTHER_FIELD_LIMIT]


def alert_context(event):
    return family_alert_context(event, outcomeClass=outcome(event))
