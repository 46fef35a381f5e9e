"""Many secrets read through VPC endpoints by one caller within the dedup period.

A workload reads the few secrets it needs, again and again; a caller reading many different
secrets in a short time is collecting them. One secret read alerts only from outside your
network (AWS.CloudTrail.VPCE.SensitiveAPICalls) or by another account (ExternalPrincipal). Here
Panther counts a caller's successful reads, wherever they come from: the YAML's Threshold is
the number of distinct secrets (unique()) one caller reads within DedupPeriodMinutes.

Network activity records usually name no secret (they carry no requestParameters). Such a read
counts as a secret of its own, so on them the count is of reads (an upper bound of the secrets):
keep Threshold above what your busiest reader reads in a window, or list the callers that read
many secrets by design in ROUTINE_SECRET_READERS.
"""

from cloudtrail_fields import (
    caller_id,
    caller_name,
    event_names,
    record_id,
    record_of,
    secret_name,
    top_level_field,
)
from vpce_family import family_alert_context, findings, is_network_activity, origin, outcome

# --- Overrides: edit these assignments to tune this rule. ---------------------------------------

# Secrets Manager calls that return secret values. A BatchGetSecretValue counts as one read.
SECRET_READ_OPERATIONS = [
    "GetSecretValue",
    "BatchGetSecretValue",
]

# Callers that read many secrets by design (a secrets sync job, a deployment pipeline), as the
# alert context's "caller" names them. e.g. ["123456789012:AROAEXAMPLEID:secrets-sync"]
ROUTINE_SECRET_READERS = []

# Severity by who read: your own account's caller inside your network MEDIUM; a caller from an
# address outside it, or of another account you do not trust, HIGH.
SEVERITY_BY_READER = {"own": "MEDIUM", "external": "HIGH"}

PANTHER_FIELD_LIMIT = 1000
SECRETS_MANAGER = "secretsmanager.amazonaws.com"
SECRET_READS = event_names(SECRET_READ_OPERATIONS, setting="SECRET_READ_OPERATIONS")
ROUTINE_READERS = event_names(ROUTINE_SECRET_READERS, "ROUTINE_SECRET_READERS", kind="caller")


def rule(event):
    record = record_of(event)  # cheap checks first: most events are no secret read
    operation = top_level_field(record, event, "eventName")
    return (
        isinstance(operation, str)
        and operation in SECRET_READS
        and top_level_field(record, event, "eventSource") == SECRETS_MANAGER
        and is_network_activity(event)
        and outcome(event) == "succeeded"
        and caller_id(event) not in ROUTINE_READERS
    )


def unique(event):
    # A secret named by the record counts once however often it is read; a read that names none
    # counts as one more secret (a record delivered twice still counts once).
    named = secret_name(event)
    value = f"secret:{named}" if named is not None else f"read:{record_id(event)}"
    return value[:PANTHER_FIELD_LIMIT]


def reader(event):
    found = findings(event)
    external = found is not None and (found.external_address or found.foreign_principal)
    return "external" if external else "own"


def severity(event):
    return SEVERITY_BY_READER[reader(event)]


def dedup(event):
    return f"{caller_id(event)}:{reader(event)}"[:PANTHER_FIELD_LIMIT]


def title(event):
    text_form = f"Many secrets read through a VPC endpoint by {caller_name(event)} {origin(event)}"
    return text_form[:PANTHER_FIELD_LIMIT]


def alert_context(event):
    return family_alert_context(event, secret=secret_name(event), reader=reader(event))
