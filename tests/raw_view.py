"""A stand-in for panther_core's read-only containers, for tests of the raw_view() paths."""

from collections.abc import Mapping


class RawViewOnly(Mapping):
    """A read-only mapping like PantherEvent whose lookups fail: only raw_view() reads it."""

    def __init__(self, record):
        self._record = record

    def raw_view(self):
        return self._record

    def __getitem__(self, key):
        raise AssertionError(f"read {key!r} through the wrapper")

    def __iter__(self):
        return iter(self._record)

    def __len__(self):
        return len(self._record)
