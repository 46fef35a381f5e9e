"""Counting events per key in fixed windows of *event* time, through Panther's key-value store.

The window is taken from the event's own time and put into the key, so replaying last month's
logs counts exactly as the live rule did; the store's TTL (wall-clock, as
panther_detection_helpers sets it) only cleans up. The store is a network service that can fail
(throttling, a missing table, no credentials, a timeout, a garbled value): a failure is reported
as an unavailable count, never raised, and bounded in time: each call has short timeouts and
one retry, and after a failure the store is left alone for a while instead of being asked again
for every event of a large batch.
"""

import functools
import hashlib
import os
import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple

from cloudtrail_fields import record_of, top_level_field

CACHING_MODULE = "panther_detection_helpers.caching"
# After a failed call, how long (wall clock) the store is not asked again in this process.
RETRY_AFTER_SECONDS = 60.0
# Per call: DynamoDB answers in milliseconds; boto3's defaults (10 attempts with backoff, 60 s
# read timeout) can hold a rule for far longer than Panther's 15 s per batch.
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 1.0
MAX_ATTEMPTS = 2
MAX_READABLE_KEY_CHARS = 512
MAX_COUNT = 10**12  # a larger value is no count this code wrote
# Panther's p_event_time ("2026-11-20 09:14:03.000000000") and CloudTrail's eventTime
# ("2026-11-20T09:14:03Z"); fractions beyond microseconds are dropped before parsing.
_EVENT_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6})\d*)?(Z|[+-]\d{2}:\d{2})?",
    re.ASCII,  # int() would read other scripts' digits, which no ISO 8601 time holds
)


class WindowCount(NamedTuple):
    """The count of events in the window so far (this one included), or why it is unknown."""

    count: int | None
    window_start: int | None
    unavailable: str | None = None


def event_epoch(event):
    """The event's time in epoch seconds (p_event_time, else eventTime), or None."""
    record = record_of(event)
    for name in ("p_event_time", "eventTime"):
        seconds = _epoch(top_level_field(record, event, name))
        if seconds is not None:
            return seconds
    return None


def _epoch(value):
    if not isinstance(value, str):
        return None
    found = _EVENT_TIME.fullmatch(value.strip())
    if found is None:
        return None
    day, clock, fraction, zone = found.groups()
    if zone is None or zone == "Z":
        return _utc_epoch(day, clock, fraction)
    stamp = f"{day}T{clock}.{fraction or '0'}{zone}"
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC).timestamp()
    except (ValueError, OverflowError):
        return None


def _utc_epoch(day, clock, fraction):
    """_epoch() of a UTC time (the two forms a live event carries), without building a datetime
    per event: the day's midnight is looked up, and the sum is what timestamp() computes."""
    midnight = _utc_midnight(day)
    hours, minutes, seconds = int(clock[:2]), int(clock[3:5]), int(clock[6:])
    if midnight is None or hours > 23 or minutes > 59 or seconds > 59:
        return None
    whole = midnight + hours * 3600 + minutes * 60 + seconds
    return (whole * 1_000_000 + int((fraction or "0").ljust(6, "0"))) / 1_000_000


@functools.lru_cache(maxsize=1024)
def _utc_midnight(day):
    """Epoch seconds at the start of a YYYY-MM-DD day (UTC), or None for a day that is none."""
    try:
        return (date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL) * 86400
    except ValueError:
        return None


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def window_start(epoch_seconds, window_seconds):
    """The start (epoch seconds) of the fixed window holding the instant."""
    return int(epoch_seconds // window_seconds * window_seconds)


def counter_key(prefix, parts, start):
    """prefix:part:...:start, readable when the parts are short printable ASCII; otherwise the
    parts are hashed, since DynamoDB refuses keys over 2 KB or not valid UTF-8."""
    joined = ":".join(parts)
    if len(joined) > MAX_READABLE_KEY_CHARS or not (joined.isascii() and joined.isprintable()):
        digest = hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()
        joined = f"sha256-{digest}"
    return f"{prefix}:{joined}:{start}"


def as_count(value):
    """The store's answer as a count: an int, a Decimal (DynamoDB) or digits (YAML Mocks)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 13:
        value = int(value.strip())
    return value if isinstance(value, int) and 0 < value <= MAX_COUNT else None


class StoreGuard:
    """Short-circuits the store for a while after it failed, and bounds each call's time."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.closed_until = 0.0
        self.last_failure = None
        self._table = None

    def reset(self):
        """Forget any failure (the store is asked again at once)."""
        self.closed_until = 0.0
        self.last_failure = None

    def refusal(self):
        """Why the store is not to be asked now, or None."""
        # Never failed since made or reset: no need to read the clock.
        if self.last_failure is not None and self.clock() < self.closed_until:
            return f"{self.last_failure}; not retried for {RETRY_AFTER_SECONDS:.0f} s"
        return None

    def failed(self, error):
        self.last_failure = f"{type(error).__name__}: {str(error)[:200]}"
        self.closed_until = self.clock() + RETRY_AFTER_SECONDS

    def call(self, function, *args, **kwargs):
        """function(*args, **kwargs); on panther_detection_helpers' own functions, on a table
        client with short timeouts, restoring the module's table afterwards so other rules keep
        theirs. Mocks (YAML tests) and stand-in stores (the replay) are called as they are."""
        if getattr(function, "__module__", None) != CACHING_MODULE:
            return function(*args, **kwargs)
        from panther_detection_helpers import caching  # noqa: PLC0415 (needed only here)

        shared = caching._KV_TABLE
        caching._KV_TABLE = self.table()
        try:
            return function(*args, **kwargs)
        finally:
            caching._KV_TABLE = shared

    def table(self):
        """The key-value table (as panther_detection_helpers finds it) on a bounded client."""
        if self._table is None:
            import boto3  # noqa: PLC0415 (as panther_detection_helpers: only once it is used)
            from botocore.config import Config  # noqa: PLC0415
            from panther_detection_helpers import caching  # noqa: PLC0415

            config = Config(
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            )
            endpoint = f"https://dynamodb{caching.FIPS_SUFFIX}" if caching.FIPS_ENABLED else None
            table_name = os.getenv("KV_STORE_TABLE_NAME", "panther-kv-store")
            resource = boto3.resource("dynamodb", endpoint_url=endpoint, config=config)
            self._table = resource.Table(table_name)
        return self._table


GUARD = StoreGuard()


def count_in_window(increment, prefix, parts, event, window_seconds, *, guard=GUARD):
    """Add this event to its window's counter with `increment` (panther_detection_helpers'
    increment_counter, or a stand-in with its signature) and return the WindowCount."""
    epoch = event_epoch(event)
    if epoch is None:
        return WindowCount(None, None, "the event has no usable p_event_time or eventTime")
    start = window_start(epoch, window_seconds)
    refusal = guard.refusal()
    if refusal is not None:
        return WindowCount(None, start, refusal)
    try:
        # A relative TTL ("seconds from now"): an absolute one taken from an old event's time
        # would already have passed, and the store would restart the counter on every event.
        answer = guard.call(increment, counter_key(prefix, parts, start), 1, 2 * window_seconds)
    except Exception as error:  # any failure of the store must cost the count, not the alert
        guard.failed(error)
        return WindowCount(None, start, guard.last_failure)
    count = as_count(answer)
    if count is None:
        return WindowCount(None, start, f"the store answered {str(answer)[:40]!r}, not a count")
    return WindowCount(count, start)
