"""Calls through a VPC endpoint that change or destroy what protects data, and sensitive routine
calls from outside your network.

Stopping a trail, rewriting a bucket policy, scheduling a key's deletion, deleting a secret,
creating a key pair: each alerts, whoever makes it from wherever. The calls a workload makes all
day (decrypts, data keys, secret reads, describes, listings) alert only from an address outside
your network: from your own account inside it they are the endpoint doing its job, and from
another account they are AWS.CloudTrail.VPCE.ExternalPrincipal's. Both lists are overrides
(PROTECTION_CHANGES, ROUTINE_SENSITIVE_CALLS) in the global helper vpce_family.
"""

from cloudtrail_fields import caller_id, caller_name, service_name, shown
from vpce_family import SENSITIVE_API_CALLS, family_alert_context, findings, origin, outcome, owner

# --- Overrides: edit these assignments to tune this rule. ---------------------------------------

# Severity by the kind of call and what it achieved. "DEFAULT" keeps the YAML's Medium.
SEVERITY_BY_CALL = {
    ("change", "succeeded"): "HIGH",
    ("change", "refused"): "DEFAULT",
    ("routine", "succeeded"): "DEFAULT",
    ("routine", "refused"): "LOW",
}
TITLE_KIND = {"change": "Protection change", "routine": "Sensitive call"}

PANTHER_FIELD_LIMIT = 1000


def rule(event):
    return owner(event) == SENSITIVE_API_CALLS


def kind(event):
    found = findings(event)
    return found.sensitive if found is not None and found.sensitive else "routine"


def severity(event):
    return SEVERITY_BY_CALL[(kind(event), outcome(event))]


def dedup(event):
    parts = (caller_id(event), service_name(event), severity(event))
    return ":".join(parts)[:PANTHER_FIELD_LIMIT]


def title(event):
    refused = " (refused)" if outcome(event) == "refused" else ""
    text_form = (
        f"{TITLE_KIND[kind(event)]} {service_name(event)} {shown(event, 'eventName')}{refused} "
        f"through VPC endpoint {shown(event, 'vpcEndpointId')} by {caller_name(event)} "
        f"{origin(event)}"
    )
    return text_form[:PANTHER_FIELD_LIMIT]


def alert_context(event):
    return family_alert_context(event, callKind=kind(event), outcome=outcome(event))
