"""An in-memory stand-in for Panther's key-value store, on the replayed events' clock.

Stateful rules call ``panther_detection_helpers.caching`` (a DynamoDB table in Panther). A replay
must not reach AWS, and must count as the live rule counted when the events happened. So while
rules are loaded and run, the module's functions are replaced by this store's methods, with the
same signatures and meanings, and "now" is the eventTime of the event being evaluated, not the
wall clock: a TTL of an hour lasts an hour of the replayed day.

Differences from DynamoDB, on purpose: an item is gone as soon as its expiry passes (DynamoDB
deletes expired items lazily, within about two days), and an expired counter restarts at the
increment (as panther_detection_helpers documents it).

While the replay's first pass decides what matches (in any order, in any process), the store is
a probe: it answers as an empty store, keeps nothing past the evaluation that wrote it, and counts
every call, so the replay knows which evaluations touched it and runs those again, in event-time
order, against the real store (engine.py).
"""

import importlib
import importlib.util
import json
import sys
import types
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

CACHING_PACKAGE = "panther_detection_helpers"
CACHING_MODULE = f"{CACHING_PACKAGE}.caching"
DEFAULT_TTL_SECONDS = 90 * 24 * 60 * 60  # the helpers' default: 90 days
RELATIVE_TTL_LIMIT = 1_000_000_000  # smaller epoch_seconds mean "that many seconds from now"


class ReplayStoreError(Exception):
    """A store call the replay cannot honour (direct table access)."""


@dataclass
class _Item:
    count: int | None = None
    strings: set | None = None
    dictionary: str | None = None
    expires_at: int | None = None


@dataclass
class KeyValueStore:
    """The functions of panther_detection_helpers.caching over a dict, with a settable clock."""

    now: float = 0.0
    items: dict = field(default_factory=dict)
    # Every call that reads or writes an item: a change tells that an evaluation touched the store.
    calls: int = 0
    # The real items while probing (then `items` is the probe's scratch), else None.
    _kept: dict | None = None

    # --- clock and expiry ---------------------------------------------------------------------

    def set_clock(self, epoch_seconds):
        self.now = epoch_seconds

    def clear(self):
        self.stop_probing()
        self.items.clear()
        self.calls = 0

    # --- probing (the replay's first pass) ----------------------------------------------------

    def start_probing(self):
        """Answer as an empty store from now on, keeping the real items aside."""
        if self._kept is None:
            self._kept, self.items = self.items, {}

    def forget_probe(self):
        """Drop what the evaluation just probed wrote: the next one starts from an empty store."""
        self.items.clear()

    def stop_probing(self):
        if self._kept is not None:
            self.items, self._kept = self._kept, None

    def _expiry(self, epoch_seconds):
        if isinstance(epoch_seconds, str):
            epoch_seconds = float(epoch_seconds)
        if isinstance(epoch_seconds, float):
            epoch_seconds = int(epoch_seconds)
        if not isinstance(epoch_seconds, int):
            return int(self.now) + DEFAULT_TTL_SECONDS
        if epoch_seconds < RELATIVE_TTL_LIMIT:
            return int(self.now) + epoch_seconds
        return epoch_seconds

    def _live(self, key):
        """The key's item, or None when there is none or it has expired (and is dropped)."""
        self.calls += 1
        item = self.items.get(key)
        if item is not None and item.expires_at is not None and item.expires_at < int(self.now):
            del self.items[key]
            return None
        return item

    def _item(self, key):
        return self._live(key) or self.items.setdefault(key, _Item())

    def ttl_expired(self, response):
        expiration = response.get("Item", {}).get("expiresAt", 0)
        return bool(expiration) and float(expiration) <= self.now

    # --- counters -----------------------------------------------------------------------------

    def get_counter(self, key, force_ttl_check=False):
        item = self._live(key)
        return item.count or 0 if item else 0

    def increment_counter(self, key, val=1, epoch_seconds=DEFAULT_TTL_SECONDS):
        item = self._item(key)
        item.count = (item.count or 0) + val
        if epoch_seconds is not None:
            item.expires_at = self._expiry(epoch_seconds)
        return item.count

    def reset_counter(self, key):
        item = self._live(key)
        if item:
            item.count = None

    def set_key_expiration(self, key, epoch_seconds):
        self._item(key).expires_at = self._expiry(epoch_seconds)

    def evaluate_threshold(self, key, threshold=10, expiry_seconds=3600):
        if self.increment_counter(key, epoch_seconds=expiry_seconds) >= threshold:
            self.reset_counter(key)
            return True
        return False

    # --- string sets --------------------------------------------------------------------------

    def get_string_set(self, key, force_ttl_check=False):
        item = self._live(key)
        return set(item.strings) if item and item.strings else set()

    def put_string_set(self, key, val, epoch_seconds=None):
        if not val:
            self.reset_string_set(key)
            return
        item = self._item(key)
        item.strings = set(val)
        item.expires_at = self._expiry(epoch_seconds)

    def add_to_string_set(self, key, val, epoch_seconds=DEFAULT_TTL_SECONDS):
        values = {val} if isinstance(val, str) else set(val)
        if not values:
            return self.get_string_set(key)
        item = self._item(key)
        item.strings = (item.strings or set()) | values
        if epoch_seconds is not None:
            item.expires_at = self._expiry(epoch_seconds)
        return set(item.strings)

    def remove_from_string_set(self, key, val, epoch_seconds=DEFAULT_TTL_SECONDS):
        values = {val} if isinstance(val, str) else set(val)
        item = self._live(key)
        if not values or item is None:
            return self.get_string_set(key)
        item.strings = (item.strings or set()) - values or None
        if epoch_seconds is not None:
            item.expires_at = self._expiry(epoch_seconds)
        return set(item.strings or ())

    def reset_string_set(self, key):
        item = self._live(key)
        if item:
            item.strings = None

    def check_account_age(self, key):
        return isinstance(key, str) and key != "" and bool(self.get_string_set(key))

    # --- dictionaries -------------------------------------------------------------------------

    def put_dictionary(self, key, val, epoch_seconds=None):
        if not isinstance(val, Mapping):
            raise TypeError("put_dictionary: value is not a dictionary")
        try:
            text = json.dumps(val)
        except TypeError as error:
            raise ValueError("put_dictionary: the dictionary is not JSON serializable") from error
        item = self._item(key)
        item.dictionary = text
        item.expires_at = self._expiry(epoch_seconds)

    def get_dictionary(self, key, force_ttl_check=False):
        item = self._live(key)
        return json.loads(item.dictionary) if item and item.dictionary else {}

    def kv_table(self):
        raise ReplayStoreError(
            "detection-replay's key-value store has no DynamoDB table: use the functions of "
            "panther_detection_helpers.caching"
        )

    FUNCTIONS = (
        "ttl_expired",
        "get_counter",
        "increment_counter",
        "reset_counter",
        "set_key_expiration",
        "evaluate_threshold",
        "get_string_set",
        "put_string_set",
        "add_to_string_set",
        "remove_from_string_set",
        "reset_string_set",
        "check_account_age",
        "put_dictionary",
        "get_dictionary",
        "kv_table",
    )

    @contextmanager
    def installed(self):
        """panther_detection_helpers.caching answering from this store, within the block.

        Rules bind the functions when they are imported, so load them inside the block. Where
        the real module is already imported (tests), its functions are swapped for the block.
        Otherwise (a replay) a stand-in module takes its place: importing the real one costs
        half a second for boto3 and datadog, clients a replay must not use.
        """
        caching = sys.modules.get(CACHING_MODULE)
        with self._swapped(caching) if caching is not None else self._standing_in():
            yield self

    @contextmanager
    def _swapped(self, caching):
        originals = {name: getattr(caching, name) for name in self.FUNCTIONS}
        try:
            for name in self.FUNCTIONS:
                setattr(caching, name, getattr(self, name))
            yield
        finally:
            for name, function in originals.items():
                setattr(caching, name, function)

    @contextmanager
    def _standing_in(self):
        package = importlib.import_module(CACHING_PACKAGE)
        stand_in = CachingStandIn(CACHING_MODULE, importlib.util.find_spec(CACHING_MODULE))
        for name in self.FUNCTIONS:
            setattr(stand_in, name, getattr(self, name))
        sys.modules[CACHING_MODULE] = stand_in
        package.caching = stand_in
        try:
            yield
        finally:
            if sys.modules.get(CACHING_MODULE) is stand_in:
                del sys.modules[CACHING_MODULE]
            if getattr(package, "caching", None) is stand_in:
                del package.caching


class CachingStandIn(types.ModuleType):
    """panther_detection_helpers.caching with the store's functions. Other names (constants,
    private helpers) are read from a private copy of the real module, loaded on first use."""

    def __init__(self, name, spec):
        super().__init__(name, __doc__)
        self.__spec__ = spec
        self._real = None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if self._real is None:
            real = importlib.util.module_from_spec(self.__spec__)
            self.__spec__.loader.exec_module(real)
            self._real = real
        return getattr(self._real, name)
