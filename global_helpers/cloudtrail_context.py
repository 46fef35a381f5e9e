"""Alert context for CloudTrail network activity records: the fields an analyst needs, bounded.

Panther replaces an alert context whose JSON exceeds 200 KiB with an error, losing all of it, and
rejects NaN; so everything copied from the event goes through ``json_safe``, which returns plain,
finite, size-bounded JSON values whatever the event holds.
"""

# Exact type checks (type(x) is dict) on purpose: only a plain dict or list may take the fast
# paths; anything else, subclasses included, takes the general one.
# pylint: disable=unidiomatic-typecheck

import itertools
import math
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring_ascii

from cloudtrail_fields import (
    absent_field,
    accounts_differ,
    actor,
    bucket_name,
    caller_account,
    caller_id,
    record_of,
    top_level_field,
)

TRUNCATED = "...(truncated)"
MAX_INT_BITS = 128
# Per-field budgets, in characters of JSON; together far below Panther's 200 KiB.
SCALAR_FIELD_CHARS = 1024
IDENTITY_CHARS = 16 * 1024
ENRICHMENT_CHARS = 4096

# The event's fields copied under their own names: the seed's output fields plus what says
# where the call came in.
EVENT_FIELDS = (
    "eventName",
    "eventSource",
    "awsRegion",
    "recipientAccountId",
    "sourceIPAddress",
    "userAgent",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "errorCode",
    # The pivots an analyst searches with next.
    "errorMessage",
    "eventTime",
    "eventID",
    "requestID",
    "sharedEventID",
)


def _cut(text, limit):
    """text, or its head plus the marker in limit characters (limit >= len(TRUNCATED))."""
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


# How many characters of JSON a str takes: what json.dumps returns for it, without the overhead
# of a call through the encoder object.
_encode = encode_basestring_ascii


def json_safe(value, max_chars=SCALAR_FIELD_CHARS, max_items=64, max_depth=8):
    """A plain JSON value for value whose serialisation stays near max_chars characters.

    Mappings become dicts with string keys, other sequences lists, non-finite floats and
    unserialisable objects strings; what does not fit is replaced by a truncation marker. A
    value that already is plain JSON within every bound is returned as it is, not copied: the
    result is for serialising (as Panther does with an alert context), not for changing.
    """
    # The common cases inline: null or a bool, a plain str whose JSON fits the budget (see
    # _copy_mapping), and a small record of strings such as a userIdentity (see _plain_left).
    kind = type(value)
    if kind in KEPT_AS_THEY_ARE:
        return value
    if kind is str:
        if len(value) < max_chars and len(_encode(value)) <= max_chars:
            return value
    elif (kind is dict or kind is list) and _plain_left(value, max_chars, max_items, max_depth) > 0:
        return value
    return _copy(value, max_chars, max_items, max_depth)[0]


KEPT_AS_THEY_ARE = frozenset({type(None), bool})

# What _plain_left charges: each character of a key or str its widest JSON form (a character
# beyond the BMP is a surrogate pair, \ud83d\ude00), and each item its slot (2), a key's
# quotes (2) and its value's quotes or literal (at most 5, "false"). That is never less than
# what _copy charges, so a value that fits this way is one _copy would copy whole, unchanged.
WIDEST_CHAR_CHARS = 12
ITEM_CHARS = 9
# So a str of at most this many characters fits a scalar field's budget, whatever it holds.
SHORT_TEXT_CHARS = (SCALAR_FIELD_CHARS - 2) // WIDEST_CHAR_CHARS


_NO_KEYS = itertools.repeat("")


def _plain_left(value, left, max_items, depth):
    """The budget left after a dict or list made only of str keys, str, None, bool and such
    containers, within every bound; 0 or less as soon as anything else is met or it may not fit.

    Unlike _copy it need not encode a str to know its size, nor build anything: the common
    record, nothing but short strings, is checked in a single pass. A container is entered only
    with budget left and charged when it ends (at least 9 per item), so little of a value that
    cannot fit is read.
    """
    if depth <= 0 or len(value) > max_items or left <= 0:
        return 0
    depth -= 1
    chars = 0  # of keys and strings, since the budget was last charged
    # A list's items come as a dict's values would, each with an empty key.
    pairs = value.items() if type(value) is dict else zip(_NO_KEYS, value, strict=False)
    for key, item in pairs:
        kind = type(item)
        if type(key) is not str:
            return 0
        chars += len(key)
        if kind is str:
            chars += len(item)
        elif kind is dict or kind is list:
            left = _plain_left(item, left - WIDEST_CHAR_CHARS * chars, max_items, depth)
            chars = 0
        elif item is not None and kind is not bool:
            return 0
    return left - WIDEST_CHAR_CHARS * chars - ITEM_CHARS * len(value)


# Each _copy function takes the budget left, in characters of JSON, and returns the copy with
# the budget left after it.


def _copy(value, left, max_items, depth):  # pylint: disable=too-many-return-statements,too-complex
    # Concrete types before the ABCs (Mapping, Sequence): isinstance() against an ABC costs
    # several times as much, and event fields are nearly always plain str, dict and list.
    if isinstance(value, str):
        return _copy_text(value, left)
    if value is None or isinstance(value, bool):
        return value, left - 5
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:  # str() of a huge int raises on CPython 3.11+
            return _copy_text(f"<integer of {value.bit_length()} bits>", left)
        return value, left - 40
    if isinstance(value, float):
        return (value if math.isfinite(value) else repr(value)), left - 25
    if depth <= 0 or left <= 0:
        return TRUNCATED, left - len(TRUNCATED) - 2
    if isinstance(value, dict):
        return _copy_mapping(value, left, max_items, depth)
    if isinstance(value, list):
        return _copy_sequence(value, left, max_items, depth)
    if isinstance(value, Mapping):
        # panther_core's read-only wrappers offer the dict they wrap: reading through the
        # wrapper would build a new wrapper (and copy) for every nested value.
        view = getattr(value, "raw_view", None)
        return _copy_mapping(value if view is None else view(), left, max_items, depth)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return _copy_sequence(value, left, max_items, depth)
    return _copy_text(repr(value), left)


def _copy_text(value, left):
    room = max(left - 2, len(TRUNCATED))
    shown = _cut(value, room)
    encoded = len(_encode(shown))
    if encoded > room + 2:  # escapes: one character can take up to 12 in JSON
        shown = _cut(value, max(room // 12, len(TRUNCATED)))
        encoded = len(_encode(shown))
    return shown, left - encoded


# Inside containers, a plain str whose JSON fits in what is left is kept whole and charged its
# JSON size right in the loop: _copy_text would return the same (it keeps a str whole exactly
# when its JSON fits), only after two calls. Anything else goes through _copy_text or _copy.


def _copy_mapping(value, left, max_items, depth):
    copied = {}
    depth -= 1
    for index, (key, item) in enumerate(value.items()):
        if index >= max_items or left <= 0:
            copied[TRUNCATED] = f"{len(value) - index} more keys"
            break
        left -= 2
        if type(key) is str and len(key) < left and (size := len(_encode(key))) <= left:
            name = key
            left -= size
        else:
            name, left = _copy_text(key if isinstance(key, str) else repr(key), left)
        if type(item) is str and len(item) < left and (size := len(_encode(item))) <= left:
            copy = item
            left -= size
        else:
            copy, left = _copy(item, left, max_items, depth)
        copied[name] = copy
    return copied, left


def _copy_sequence(value, left, max_items, depth):
    copied = []
    depth -= 1
    for index, item in enumerate(value):
        if index >= max_items or left <= 0:
            copied.append(f"{TRUNCATED} {len(value) - index} more items")
            break
        left -= 2
        if type(item) is str and len(item) < left and (size := len(_encode(item))) <= left:
            copy = item
            left -= size
        else:
            copy, left = _copy(item, left, max_items, depth)
        copied.append(copy)
    return copied, left


def network_activity_context(event):
    """The analyst's view of a network activity record; always JSON-serialisable and bounded."""
    # Read from the dict the event wraps, each dict or list as it is held there: copying it
    # from there costs less than from the read-only copy the event's own lookup makes first.
    record = record_of(event)
    context = {}
    for name in EVENT_FIELDS:
        value = record[name] if name in record else absent_field(event, name)
        # Nearly all are short strings or null, kept without a call: what json_safe returns.
        if (type(value) is str and len(value) <= SHORT_TEXT_CHARS) or value is None:
            context[name] = value
        else:
            context[name] = json_safe(value)
    identity = top_level_field(record, event, "userIdentity")
    context["userIdentity"] = json_safe(identity, max_chars=IDENTITY_CHARS)
    context["actor_user"] = actor(event)
    context["caller"] = caller_id(event)
    bucket = bucket_name(event)  # a str or None
    context["bucketName"] = bucket if bucket is None else json_safe(bucket)
    owner = top_level_field(record, event, "vpcEndpointAccountId")
    context["crossAccount"] = accounts_differ(caller_account(event), owner)
    return context


def enrichment_context(profile):
    """ip_enrichment.source_ip_profile() for the alert context: None, or bounded plain JSON."""
    return profile if profile is None else json_safe(profile, max_chars=ENRICHMENT_CHARS)
