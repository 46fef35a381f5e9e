"""A caller of another AWS account at your VPC endpoint, whatever its identity type.

CloudTrail delivers network activity records to the endpoint's account and redacts a caller
from another account to its account and principal: an account that is not the endpoint's
(vpcEndpointAccountId, else recipientAccountId) is a principal from outside, unless you trust it
(TRUSTED_ACCOUNTS or TRUSTED_ACCOUNT_LOOKUP_TABLES in the global helper vpce_family: your
organisation's other accounts, known partners). A call that got through ranks above a refused
one, and one from an address outside your network above both. External S3 object access and
changes to what protects data are their own rules' alerts, which say the caller was foreign
(vpceFamily in their context).
"""

from cloudtrail_fields import UNKNOWN, caller_account, caller_id, caller_name, service_name, shown
from vpce_family import (
    EXTERNAL_PRINCIPAL,
    endpoint_owner,
    family_alert_context,
    origin,
    outcome,
    owner,
    place,
)

# --- Overrides: edit these assignments to tune this rule. ---------------------------------------

# Severity by what the call achieved and where it came from. "DEFAULT" keeps the YAML's Medium.
SEVERITY_BY_OUTCOME = {
    ("succeeded", "outside"): "HIGH",
    ("succeeded", "inside"): "DEFAULT",
    ("refused", "outside"): "LOW",
    ("refused", "inside"): "LOW",
}
TITLE_OUTCOME = {"succeeded": "", "refused": " (refused)"}

PANTHER_FIELD_LIMIT = 1000


def rule(event):
    return owner(event) == EXTERNAL_PRINCIPAL


def severity(event):
    return SEVERITY_BY_OUTCOME[(outcome(event), place(event))]


def dedup(event):
    # One alert per foreign caller and severity a day, across your endpoints: a probe of several
    # services is one story. The endpoints it reached are in its events.
    return f"{caller_id(event)}:{severity(event)}"[:PANTHER_FIELD_LIMIT]


def title(event):
    caller = caller_name(event)
    account = (caller_account(event) or UNKNOWN)[:120]
    # A redacted caller is named with its account already ("AKIA... in account 777788889999").
    who = caller if account in caller else f"{caller} of account {account}"
    text_form = (
        f"External principal {who} called {service_name(event)} {shown(event, 'eventName')}"
        f"{TITLE_OUTCOME[outcome(event)]} through VPC endpoint {shown(event, 'vpcEndpointId')} "
        f"of account {endpoint_owner(event)}, {origin(event)}"
    )
    return text_form[:PANTHER_FIELD_LIMIT]


def alert_context(event):
    return family_alert_context(event, outcome=outcome(event), place=place(event))
