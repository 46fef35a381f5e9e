"""Calls a VPC endpoint's policy refused (VpceAccessDenied), on network activity of any service.

From your own account inside your network a denial is a policy to fix, and an endpoint-policy
rollout refuses the same caller all day: the denials are grouped into one alert per caller,
endpoint, service and severity per DedupPeriodMinutes. From an address outside your network it
is a probe, and ranks higher. A denial the family explains better (external S3 object access, a
change to what protects data, a caller of another account) is that rule's alert, which says the
call was denied (vpceFamily in its context).
"""

from cloudtrail_fields import caller_id, caller_name, service_name, shown
from vpce_family import ACCESS_DENIED, family_alert_context, origin, owner, place

# --- Overrides: edit these assignments to tune this rule. ---------------------------------------

# Severity by where the refused caller was: inside your network (or one you trust), or outside.
SEVERITY_BY_PLACE = {"inside": "LOW", "outside": "MEDIUM"}

PANTHER_FIELD_LIMIT = 1000


def rule(event):
    return owner(event) == ACCESS_DENIED


def severity(event):
    return SEVERITY_BY_PLACE[place(event)]


def dedup(event):
    parts = (caller_id(event), shown(event, "vpcEndpointId"), service_name(event), severity(event))
    return ":".join(parts)[:PANTHER_FIELD_LIMIT]


def title(event):
    text_form = (
        f"VPC endpoint {shown(event, 'vpcEndpointId')} denied {service_name(event)} "
        f"{shown(event, 'eventName')} by {caller_name(event)} {origin(event)}"
    )
    return text_form[:PANTHER_FIELD_LIMIT]


def alert_context(event):
    return family_alert_context(event, place=place(event))
