"""Alert context for CloudTrail network activity records: the fields an analyst needs, bounded.

Panther replaces an alert context whose JSON exceeds 200 KiB with an error, losing all of it, and
rejects NaN; so everything copied from the event goes through ``json_safe``, which returns plain,
finite, size-bounded JSON values whatever the event holds.
"""

import json
import math
from collections.abc import Mapping, Sequence

from cloudtrail_fields import actor, bucket_name, field, is_cross_account

TRUNCATED = "...(truncated)"
MAX_INT_BITS = 128
# Per-field budgets, in characters of JSON; together far below Panther's 200 KiB.
SCALAR_FIELD_CHARS = 1024
IDENTITY_CHARS = 16 * 1024

# Context key -> path in the event: the seed's output fields plus what says where the call came in.
EVENT_FIELDS = {
    "eventName": ("eventName",),
    "eventSource": ("eventSource",),
    "awsRegion": ("awsRegion",),
    "recipientAccountId": ("recipientAccountId",),
    "sourceIPAddress": ("sourceIPAddress",),
    "userAgent": ("userAgent",),
    "vpcEndpointId": ("vpcEndpointId",),
    "vpcEndpointAccountId": ("vpcEndpointAccountId",),
    "errorCode": ("errorCode",),
    # The pivots an analyst searches with next.
    "errorMessage": ("errorMessage",),
    "eventTime": ("eventTime",),
    "eventID": ("eventID",),
    "requestID": ("requestID",),
    "sharedEventID": ("sharedEventID",),
}


def _cut(text, limit):
    """text, or its head plus the marker in limit characters (limit >= len(TRUNCATED))."""
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


class _Budget:
    def __init__(self, chars):
        self.left = chars

    def take(self, chars):
        self.left -= chars


def json_safe(value, max_chars=SCALAR_FIELD_CHARS, max_items=64, max_depth=8):
    """A plain JSON copy of value whose serialisation stays near max_chars characters.

    Mappings become dicts with string keys, other sequences lists, non-finite floats and
    unserialisable objects strings; what does not fit is replaced by a truncation marker.
    """
    return _copy(value, _Budget(max_chars), max_items, max_depth)


def _copy(value, budget, max_items, depth):
    if value is None or isinstance(value, bool):
        budget.take(5)
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:  # str() of a huge int raises on CPython 3.11+
            return _copy_text(f"<integer of {value.bit_length()} bits>", budget)
        budget.take(40)
        return value
    if isinstance(value, float):
        budget.take(25)
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return _copy_text(value, budget)
    if depth <= 0 or budget.left <= 0:
        budget.take(len(TRUNCATED) + 2)
        return TRUNCATED
    if isinstance(value, Mapping):
        return _copy_mapping(value, budget, max_items, depth)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return _copy_sequence(value, budget, max_items, depth)
    return _copy_text(repr(value), budget)


def _copy_text(value, budget):
    room = max(budget.left - 2, len(TRUNCATED))
    shown = _cut(value, room)
    encoded = len(json.dumps(shown))
    if encoded > room + 2:  # escapes: one character can take up to 12 in JSON
        shown = _cut(value, max(room // 12, len(TRUNCATED)))
        encoded = len(json.dumps(shown))
    budget.take(encoded)
    return shown


def _copy_mapping(value, budget, max_items, depth):
    copied = {}
    for index, (key, item) in enumerate(value.items()):
        if index >= max_items or budget.left <= 0:
            copied[TRUNCATED] = f"{len(value) - index} more keys"
            break
        budget.take(2)
        name = _copy_text(key if isinstance(key, str) else repr(key), budget)
        copied[name] = _copy(item, budget, max_items, depth - 1)
    return copied


def _copy_sequence(value, budget, max_items, depth):
    copied = []
    for index, item in enumerate(value):
        if index >= max_items or budget.left <= 0:
            copied.append(f"{TRUNCATED} {len(value) - index} more items")
            break
        budget.take(2)
        copied.append(_copy(item, budget, max_items, depth - 1))
    return copied


def network_activity_context(event):
    """The analyst's view of a network activity record; always JSON-serialisable and bounded."""
    context = {key: json_safe(field(event, *path)) for key, path in EVENT_FIELDS.items()}
    context["userIdentity"] = json_safe(field(event, "userIdentity"), max_chars=IDENTITY_CHARS)
    context["actor_user"] = actor(event)
    context["bucketName"] = json_safe(bucket_name(event))
    context["crossAccount"] = is_cross_account(event)
    return context
