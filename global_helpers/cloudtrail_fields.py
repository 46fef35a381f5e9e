"""Who made a CloudTrail call, from which account, on which bucket: read from any event shape.

Every function takes a Mapping (a PantherEvent or a plain dict) and never raises, whatever the
types of the fields: CloudTrail records are shaped by the service, and network activity records
redact or omit much of what management events carry.
"""

# Exact type checks (type(x) is dict) on purpose: only a plain dict or list may take the fast
# paths; anything else, subclasses included, takes the general one.
# pylint: disable=unidiomatic-typecheck

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

UNKNOWN = "<unknown>"
MAX_NAME_CHARS = 256
# A part of a title (a name, an address) is cut here: a title stays readable and within
# Panther's 1,000 characters whatever a record holds.
MAX_TITLE_PART_CHARS = 120

# Per userIdentity.type: where the actor's name can be found, best first. An ARN is reduced to
# its last name (the role name for an assumed-role ARN).
ACTOR_NAME_PATHS = {
    "AssumedRole": (("sessionContext", "sessionIssuer", "userName"), ("arn",), ("principalId",)),
    "Role": (("userName",), ("arn",), ("principalId",)),
    "IAMUser": (("userName",), ("arn",), ("principalId",)),
    "FederatedUser": (("sessionContext", "sessionIssuer", "userName"), ("arn",), ("principalId",)),
    "IdentityCenterUser": (("onBehalfOf", "userId"), ("principalId",)),
    "AWSService": (("invokedBy",), ("principalId",)),
    "AWSAccount": (("principalId",),),
    "Root": (("userName",), ("principalId",)),
}
DEFAULT_ACTOR_NAME_PATHS = (
    ("userName",),
    ("sessionContext", "sessionIssuer", "userName"),
    ("arn",),
    ("principalId",),
    ("invokedBy",),
)
# How the name is shown; a redacted cross-account caller is only a principal and an account.
ACTOR_FORMATS = {
    "AWSAccount": "{name} in account {account}",
    "Root": "root of account {account}",
}
DEFAULT_ACTOR_FORMAT = "{name}"

_S3_ARN = re.compile(r"arn:aws[a-z-]*:s3:::([^/]+)")
# A secret's full ARN ends in "-" and six random characters Secrets Manager adds to its name.
_SECRET_ARN = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[^:]*:[^:]*:secret:(.+?)(?:-[A-Za-z0-9]{6})?"
)
# Panther's limit on a string a detection function returns.
PANTHER_FIELD_LIMIT = 1000

# Error codes that mean the call was refused before it reached the data: the endpoint policy
# (VpceAccessDenied), IAM or bucket policy (AccessDenied...), or credentials that do not verify.
# Any other code (NoSuchKey, SlowDown, ...) means the call was let through and then failed.
DENIAL_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "UnauthorizedAccess",
        "VpceAccessDenied",
    }
)
DENIAL_CODE_SUFFIX = "AccessDenied"


def once_per_event(function):
    """function(event), answered once for the panther_core event it was last given.

    A rule's title, dedup and alert_context each ask the same of one event, one after another.
    Only a read-only event (one offering raw_view, as PantherEvent does) is remembered: a plain
    dict may change between calls. Holding the event keeps its identity from going to another.
    """
    last = (None, None)

    def answer(event):
        nonlocal last
        seen, result = last
        if event is seen:
            return result
        result = function(event)
        if hasattr(event, "raw_view"):
            last = (event, result)
        return result

    answer.__name__ = function.__name__
    answer.__doc__ = function.__doc__
    return answer


def event_names(values, setting, kind="event name"):
    """A frozenset of names from an override list, failing loudly on a bad entry."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{setting} must be a list of {kind}s, got {values!r}")
    for entry in values:
        if not isinstance(entry, str) or not entry.strip() or entry != entry.strip():
            raise ValueError(f"{setting}: {entry!r} is not a valid {kind}")
    return frozenset(values)


def positive_int(value, setting, maximum):
    """An override that must be a whole number from 1 to maximum, failing loudly otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{setting} must be a whole number from 1 to {maximum}, got {value!r}")
    return value


def field(mapping, *path):
    """The value at path inside nested mappings, or None when any step is missing or no mapping."""
    # Fast path: panther_core's PantherEvent offers the dict it wraps (raw_view). A key found
    # there as spelled, or found in no spelling at all, answers what the event's own lookups
    # would, without the case-insensitive copy they build of each nested mapping and without
    # the KeyError they raise and catch for each missing key (a network activity record lacks
    # userAgent, requestParameters, resources, p_enrichment, ...). A key that may be there in
    # another case, and a dict or list found, are left to the event's own lookups.
    value = getattr(mapping, "raw_view", None)
    if value is not None:
        value = record = value()
        for key in path:
            if type(value) is not dict:
                break
            found = value.get(key, _ABSENT)
            if found is _ABSENT:
                keys = _lowered_keys(mapping) if value is record else _lowered(value)
                if keys is None or key.lower() in keys:
                    break
                return None
            value = found
        else:
            if type(value) is not dict and type(value) is not list:
                return value
    value = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


_ABSENT = object()


def record_of(mapping):
    """The dict holding mapping's top-level fields as spelled: the one a PantherEvent wraps (with
    its dicts and lists unwrapped: to copy out, not to read on), a plain dict itself, else an
    empty one. A name it lacks is absent_field()'s to answer."""
    view = getattr(mapping, "raw_view", None)
    record = mapping if view is None else view()
    return record if type(record) is dict else _NO_RECORD


_NO_RECORD = MappingProxyType({})


def absent_field(mapping, name):
    """field(mapping, name) for a name record_of(mapping) lacks as spelled: None, unless a
    PantherEvent may hold it in another case (its lowercased keys tell, without a lookup)."""
    keys = _lowered_keys(mapping)  # worked out once per event: a record lacks several fields
    if keys is not None and name.lower() not in keys:
        return None
    return field(mapping, name)


def top_level_field(record, mapping, name):
    """field(mapping, name), read from record = record_of(mapping): cheaper than the event's
    own lookup, a dict or list coming unwrapped."""
    return record[name] if name in record else absent_field(mapping, name)


def _lowered(keys):
    """The keys lowercased, as PantherEvent matches them; None when one is no str (unknown)."""
    try:
        return frozenset(map(str.lower, keys))
    except TypeError:
        return None


@once_per_event
def _lowered_keys(event):
    """A PantherEvent's top-level keys lowercased, every missing field being looked up in them;
    None for anything else."""
    view = getattr(event, "raw_view", None)
    record = None if view is None else view()
    return _lowered(record) if type(record) is dict else None


def text(value):
    """value when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _name_from_arn(value):
    if not value.startswith("arn:"):
        return value
    resource = value.split(":", 5)[-1]
    parts = resource.split("/")
    if parts[0] == "assumed-role" and len(parts) > 1:
        return parts[1] or value
    return parts[-1] or value


def _first_name(event, paths):
    for path in paths:
        name = text(field(event, "userIdentity", *path))
        if name is not None:
            return _name_from_arn(name) if path == ("arn",) else name
    return None


# The identity's type and account are each asked more than once per event (by actor() and
# session_name(); by the rule's counter key and is_cross_account()): read once.


@once_per_event
def identity_type(event):
    return text(field(event, "userIdentity", "type"))


@once_per_event
def caller_account(event):
    """The AWS account the caller belongs to, when the record says."""
    return text(field(event, "userIdentity", "accountId"))


def principal(event):
    return text(field(event, "userIdentity", "principalId"))


# Who the caller is, as one key: the dedup strings, the bulk rule's grouping and the title all
# name this caller. The principal where the record has one; else what each identity type that
# lacks it carries instead (Identity Center users, AWS services, bare credentials), labelled so
# that values of different kinds never collide.
CALLER_FALLBACKS = (
    ("service", ("invokedBy",)),
    ("key", ("accessKeyId",)),
    ("credential", ("credentialId",)),
    ("user", ("userName",)),
)


def caller_id(event):
    """ "<account>:<who>": principalId, else the Identity Center user with its identity store,
    the invoking service, the access key or credential id, the user name, else <unknown>."""
    account = (caller_account(event) or UNKNOWN)[:MAX_NAME_CHARS]
    return f"{account}:{_caller_key(event)}"


def _caller_key(event):
    principal_id = principal(event)
    if principal_id is not None:
        return principal_id[:MAX_NAME_CHARS]
    user = text(field(event, "userIdentity", "onBehalfOf", "userId"))
    if user is not None:
        store = text(field(event, "userIdentity", "onBehalfOf", "identityStoreArn"))
        store = store.rpartition("/")[2] if store else UNKNOWN
        return f"identitycenter:{store[:MAX_NAME_CHARS]}:{user[:MAX_NAME_CHARS]}"
    for label, path in CALLER_FALLBACKS:
        value = text(field(event, "userIdentity", *path))
        if value is not None:
            return f"{label}:{value[:MAX_NAME_CHARS]}"
    return UNKNOWN


def caller_name(event, max_chars=MAX_TITLE_PART_CHARS):
    """The caller as a title names it: the actor, with an assumed role's session when it says
    more ("DataPipeline (session etl-nightly)")."""
    name = (actor(event) or UNKNOWN)[:max_chars]
    session = session_name(event)
    return f"{name} (session {session[:max_chars]})" if session and session != name else name


def source_address(event, max_chars=MAX_TITLE_PART_CHARS):
    """sourceIPAddress as a title and a dedup string show it: stripped, bounded, <unknown>."""
    raw = field(event, "sourceIPAddress")
    text_form = raw.strip() if isinstance(raw, str) else ""
    return (text_form or UNKNOWN)[:max_chars]


def shown(event, name, max_chars=MAX_TITLE_PART_CHARS):
    """A top-level string field as a title shows it: bounded, <unknown> when it is no text."""
    return (text(field(event, name)) or UNKNOWN)[:max_chars]


def service_name(event):
    """The service's short name: "kms" of eventSource kms.amazonaws.com."""
    return shown(event, "eventSource").split(".", 1)[0]


def session_name(event):
    """The assumed-role session name (often the person or workload), when the record says."""
    if identity_type(event) != "AssumedRole":
        return None
    arn = field(event, "userIdentity", "arn")
    if isinstance(arn, str) and "/" in arn:
        return text(arn.rpartition("/")[2][:MAX_NAME_CHARS])
    caller = principal(event)
    if caller is not None and ":" in caller:
        return text(caller.split(":", 1)[1][:MAX_NAME_CHARS])
    return None


def error_kind(event):
    """ "denied" when the call was refused, "failed" when it failed after being let through,
    None when the record carries no error."""
    code = field(event, "errorCode")
    if not code:
        return None
    if isinstance(code, str) and (code in DENIAL_ERROR_CODES or code.endswith(DENIAL_CODE_SUFFIX)):
        return "denied"
    return "failed"


@once_per_event
def actor(event):
    """A short name for the caller: the role name for roles, principal and account when redacted."""
    kind = identity_type(event)
    name = _first_name(event, ACTOR_NAME_PATHS.get(kind, DEFAULT_ACTOR_NAME_PATHS))
    template = ACTOR_FORMATS.get(kind, DEFAULT_ACTOR_FORMAT)
    return template.format(
        name=(name or UNKNOWN)[:MAX_NAME_CHARS],
        account=(caller_account(event) or UNKNOWN)[:MAX_NAME_CHARS],
    )


def is_cross_account(event):
    """Whether the caller and the endpoint owner are different accounts; None when unknown."""
    return accounts_differ(caller_account(event), field(event, "vpcEndpointAccountId"))


def accounts_differ(caller, owner):
    """is_cross_account() from caller_account() and the vpcEndpointAccountId field as read, for
    a reader that already has them."""
    owner = text(owner)
    if caller is None or owner is None:
        return None
    return caller != owner


def _arns(resources):
    if isinstance(resources, (str, bytes)) or not isinstance(resources, Sequence):
        return
    for resource in resources:
        arn = text(field(resource, "ARN")) or text(field(resource, "arn"))
        if arn is not None:
            yield arn


@once_per_event
def bucket_name(event):
    """requestParameters.bucketName, else the bucket of the first S3 ARN in resources, else None."""
    named = text(field(event, "requestParameters", "bucketName"))
    if named is not None:
        return named
    for arn in _arns(field(event, "resources")):
        match = _S3_ARN.match(arn)
        if match:
            return match.group(1)
    return None


def record_id(event):
    """What names one CloudTrail record however often it is delivered: its eventID (CloudTrail
    delivers at least once, a record delivered twice carrying the same one), else a digest of
    its content, the same whatever the order of its keys."""
    record = record_of(event)
    event_id = text(top_level_field(record, event, "eventID"))
    if event_id is not None:
        return event_id[:PANTHER_FIELD_LIMIT]
    try:
        content = json.dumps(record, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):  # keys of mixed types cannot be sorted
        content = repr(record)
    return "sha256:" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def secret_name(event):
    """The Secrets Manager secret a call names: requestParameters.secretId, else the first secret
    ARN in resources; an ARN read as the secret's name, so both spellings name one secret.
    None when the record names none, as network activity records usually don't."""
    named = text(field(event, "requestParameters", "secretId"))
    if named is None:
        arns = _arns(field(event, "resources"))
        named = next((arn for arn in arns if _SECRET_ARN.fullmatch(arn)), None)
        if named is None:
            return None
    match = _SECRET_ARN.fullmatch(named)
    return (match.group(1) if match else named)[:PANTHER_FIELD_LIMIT]
