"""Whether a caller has reached the endpoint from an address's network before: a first-seen
baseline in Panther's key-value store.

"First time in 30 days" outlives any alert window, so it cannot be a threshold; it is the one
thing the store is for here. One small string set per caller and network (the address's /24, or
/64 for IPv6) holds the first and the latest sighting, in epoch seconds of *event* time, and
expires FIRST_SEEN_DAYS after the latest one. Expiry is an absolute epoch (over a billion), which
panther_detection_helpers 0.4.0 and 1.0.x both read as absolute.

The store is a network service and can fail: a failure (or an answer that is no string set of
times) costs the history, never the alert, and is reported as unknown. Time is bounded too:
botocore's default retries keep a throttled DynamoDB call going for about 25 s, past Panther's
15 s per batch, so a call to the store's own functions is given CALL_TIMEOUT_SECONDS in a
thread of its own and abandoned after that; and after a failure the store is left alone for a
while, so a batch pays for one failing call, not one per event. Only the store's public
functions are called, and they are passed in by the rule, so YAML Mocks on the rule's own names
reach them (a mock, or the replay's in-memory store, is called as it is).
"""

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import NamedTuple

from cloudtrail_fields import record_of, top_level_field
from public_ip import embedded_ipv4, ip_address

KEY_PREFIX = "vpce-first-seen"
IPV4_NETWORK_BITS = 24
IPV6_NETWORK_BITS = 64
DAY_SECONDS = 86400
# The latest sighting is written again only when it is this much older than the event: a burst
# of calls from one address costs one read each and a single write.
REFRESH_SECONDS = 3600
# After a failed call, how long (wall clock) the store is not asked again in this process.
RETRY_AFTER_SECONDS = 60.0
# DynamoDB answers in milliseconds; a call that takes longer than this is abandoned.
CALL_TIMEOUT_SECONDS = 2.0
STORE_MODULE = "panther_detection_helpers.caching"
MAX_READABLE_KEY_CHARS = 512
MAX_EPOCH_DIGITS = 12

NEW, SEEN, UNKNOWN = "new", "seen", "unknown"

# Panther's p_event_time ("2026-11-20 09:14:03.000000000") and CloudTrail's eventTime
# ("2026-11-20T09:14:03Z"); fractions are dropped.
_EVENT_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?",
    re.ASCII,  # int() would read other scripts' digits, which no ISO 8601 time holds
)


class AddressHistory(NamedTuple):
    """What the baseline says of one sighting: new, seen (since first_seen) or unknown (why)."""

    status: str
    network: str | None
    first_seen: int | None = None
    unavailable: str | None = None


def event_epoch(event):
    """The event's time in whole epoch seconds, as Panther's event_time_epoch() reads
    p_event_time, else CloudTrail's eventTime; None when neither is a time.

    Panther's own format is read here (the same answer, without the 40 µs of dateutil parsing
    event_time_epoch() costs); any other p_event_time is left to event_time_epoch() itself.
    """
    record = record_of(event)
    epoch = _epoch(top_level_field(record, event, "p_event_time"))
    if epoch is None:
        epoch = _panthers_reading(event)
    if epoch is None:
        epoch = _epoch(top_level_field(record, event, "eventTime"))
    return epoch


def _panthers_reading(event):
    try:
        epoch = event.event_time_epoch()
    except Exception:  # pylint: disable=broad-exception-caught  # any p_event_time, any type
        return None
    return epoch if isinstance(epoch, int) and epoch > 0 else None


def _epoch(value):
    if not isinstance(value, str):
        return None
    found = _EVENT_TIME.fullmatch(value.strip())
    if found is None:
        return None
    day, hours, minutes, seconds, zone = found.groups()
    stamp = f"{day}T{hours}:{minutes}:{seconds}{'+00:00' if zone in (None, 'Z') else zone}"
    try:
        epoch = int(datetime.fromisoformat(stamp).timestamp())
    except (ValueError, OverflowError):
        return None
    return epoch if epoch > 0 else None  # no CloudTrail event is older than 1970


def iso_time(epoch):
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def address_network(raw):
    """The network an address is judged by: its /24 (IPv4, also when carried inside IPv6) or
    its /64 (IPv6), as text; None when raw is no address."""
    address = ip_address(raw)
    if address is None:
        return None
    address = embedded_ipv4(address) or address
    bits = IPV4_NETWORK_BITS if address.version == 4 else IPV6_NETWORK_BITS
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def history_key(caller, network):
    """The store key for a caller's network; hashed when it would not be short printable ASCII,
    since DynamoDB refuses keys over 2 KB or not valid UTF-8."""
    joined = f"{caller}|{network}"
    if len(joined) > MAX_READABLE_KEY_CHARS or not (joined.isascii() and joined.isprintable()):
        joined = "sha256-" + hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{KEY_PREFIX}:{joined}"


def sightings(answer):
    """The epochs in a get_string_set answer: a set of digit strings (DynamoDB), or that set as
    JSON text (YAML Mocks); None when the answer is anything else."""
    if isinstance(answer, str):
        if not answer.strip():
            return set()
        try:
            answer = json.loads(answer)
        except ValueError:
            return None
    if not isinstance(answer, (AbstractSet, list, tuple)):
        return None
    epochs = set()
    for item in answer:
        if not (isinstance(item, str) and item.isascii() and item.isdigit()):
            return None
        if len(item) > MAX_EPOCH_DIGITS:
            return None
        epochs.add(int(item))
    return epochs


def sighting(seen, epoch, network):
    """What a sighting at `epoch` makes of the stored ones: its history, and the (times, latest)
    to store, or None when nothing needs writing."""
    first, latest = (min(seen), max(seen)) if seen else (epoch, epoch)
    # Seen before only when an earlier event was: a record read twice, or an older one
    # arriving late, is the first sighting again.
    if first < epoch:
        history = AddressHistory(SEEN, network, first)
    else:
        history = AddressHistory(NEW, network, epoch)
    if seen and first <= epoch < latest + REFRESH_SECONDS:
        return history, None
    latest = max(latest, epoch)
    return history, ({str(min(first, epoch)), str(latest)}, latest)


class Baseline:
    """The first-seen baseline over the store's get_string_set and put_string_set, remembering
    a network for `days` after its latest sighting."""

    def __init__(self, days, clock=time.monotonic, timeout=CALL_TIMEOUT_SECONDS):
        self.days = days
        self.clock = clock
        self.timeout = timeout
        self.closed_until = 0.0
        self.last_failure = None
        self._abandoned = None  # the thread of a call given up on, until it returns

    def reset(self):
        """Forget any failure (the store is asked again at once)."""
        self.closed_until = 0.0
        self.last_failure = None

    def refusal(self):
        """Why the store is not to be asked now, or None."""
        if self.last_failure is not None and self.clock() < self.closed_until:
            return f"{self.last_failure}; not retried for {RETRY_AFTER_SECONDS:.0f} s"
        return None

    def _failed(self, error):
        self.last_failure = f"{type(error).__name__}: {str(error)[:200]}"
        self.closed_until = self.clock() + RETRY_AFTER_SECONDS
        return self.last_failure

    def _call(self, function, *args, **kwargs):
        """function(*args, **kwargs), within self.timeout when it is the store's own."""
        if getattr(function, "__module__", None) != STORE_MODULE:
            return function(*args, **kwargs)
        if self._abandoned is not None and self._abandoned.is_alive():
            raise TimeoutError("an earlier call to the store has not returned")
        outcome = {}

        def run():
            try:
                outcome["answer"] = function(*args, **kwargs)
            except Exception as error:  # pylint: disable=broad-exception-caught  # handed back
                outcome["error"] = error

        thread = threading.Thread(target=run, name="vpce-kv-store-call", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            self._abandoned = thread
            raise TimeoutError(f"the store did not answer within {self.timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]

    def look_up(self, caller, address, epoch, store):
        """The caller's history with the address's network at event time `epoch`, recording
        this sighting; store is (get_string_set, put_string_set). At most one read and one
        write."""
        network = address_network(address)
        if network is None or epoch is None:
            reason = "no address to judge" if network is None else "the event has no time"
            return AddressHistory(UNKNOWN, network, unavailable=reason)
        key = history_key(caller, network)
        seen = self._read(key, store[0])
        if isinstance(seen, str):
            return AddressHistory(UNKNOWN, network, unavailable=seen)
        history, update = sighting(seen, epoch, network)
        failure = None if update is None else self._write(key, update, store[1])
        return history if failure is None else history._replace(unavailable=failure)

    def _read(self, key, read):
        """The sightings stored under key, or why they are unknown."""
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        try:
            answer = self._call(read, key, force_ttl_check=True)
        except Exception as error:  # pylint: disable=broad-exception-caught  # never the alert
            return self._failed(error)
        seen = sightings(answer)
        if seen is None:
            return f"the store answered {str(answer)[:40]!r}, not a set of times"
        return seen

    def _write(self, key, update, write):
        """Store the sightings, expiring `days` after the latest; why not, or None."""
        times, latest = update
        try:
            self._call(write, key, times, epoch_seconds=latest + self.days * DAY_SECONDS)
        except Exception as error:  # pylint: disable=broad-exception-caught  # never the alert
            return f"not recorded: {self._failed(error)}"
        return None


def history_context(history, days):
    """The alert context's view of a history."""
    return {
        "status": history.status,
        "network": history.network,
        "firstSeen": None if history.first_seen is None else iso_time(history.first_seen),
        "windowDays": days,
        "unavailable": history.unavailable,
    }
