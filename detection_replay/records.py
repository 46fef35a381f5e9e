"""What a record must carry before a rule sees it, and how it is wrapped for the engine."""

import re
from datetime import datetime

LOG_TYPE = "AWS.CloudTrail"
LOG_TYPE_FIELD = "p_log_type"

# Panther's CloudTrail parser rejects a record without these, so the replay does too: eventTime
# is the event's time (and the dedup clock), eventSource/eventName say what was called.
REQUIRED_STRING_FIELDS = ("eventTime", "eventSource", "eventName")

# The timestamp forms CloudTrail and Panther write, and no others: an ISO 8601 date-time with
# `Z` or a numeric offset (CloudTrail: 2026-11-20T09:00:00Z), an optional fraction of up to nine
# digits, or Panther's own UTC form with a space and no zone (2026-11-20 09:00:00.000000000).
# A date alone, a week or ordinal date, a time without seconds or a zone-less `T` time is not
# an event time: `datetime.fromisoformat` accepts all of those, so the form is checked first.
EVENT_TIME = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})"
    rb"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))"
    rb"| (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)"
)
# Instants outside years 1-9999 (UTC) cannot be represented as a datetime: such a record is
# malformed, whatever its written form (0001-01-01T00:00:00+01:00 is in year 0).
EARLIEST_SECONDS = -62135596800.0  # 0001-01-01T00:00:00Z
LATEST_SECONDS = 253402300800.0  # 10000-01-01T00:00:00Z (exclusive)
_UNIX_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


class InvalidJson:
    """Stands in for a record whose text could not be decoded."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


# eventTime values repeat (CloudTrail has second resolution and a busy account logs many events
# a second), so parsed times are remembered, the invalid ones too (as None); the memo is emptied
# when it grows this large.
_EVENT_TIME_MEMO_LIMIT = 65536
_event_times = {}


def event_time_seconds(text):
    """Seconds since the epoch (UTC) of an eventTime string, or None when it is not one."""
    seconds = _event_times.get(text, False)
    if seconds is False:
        seconds = _parse_event_time(text)
        if len(_event_times) >= _EVENT_TIME_MEMO_LIMIT:
            _event_times.clear()
        _event_times[text] = seconds
    return seconds


def _parse_event_time(text):
    if (
        len(text) == 20
        and text[19] == "Z"
        and text[10] == "T"
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
        and text.isascii()
    ):
        # CloudTrail's own form, YYYY-MM-DDTHH:MM:SSZ: the C parser checks the calendar.
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            return None
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    match = EVENT_TIME.fullmatch(raw)
    if match is None:
        return None
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    if match[4] is not None:
        hour, minute, second, fraction = match[4], match[5], match[6], match[7]
    else:
        hour, minute, second, fraction = match[12], match[13], match[14], match[15]
    offset_seconds = 0
    if match[9] is not None:
        offset_hours, offset_minutes = int(match[10]), int(match[11])
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset_seconds = (offset_hours * 60 + offset_minutes) * 60
        if match[9] == b"-":
            offset_seconds = -offset_seconds
    try:
        # Validates the calendar (month 13, 30 February, hour 24 are not times).
        moment = datetime(year, month, day, int(hour), int(minute), int(second))
    except ValueError:
        return None
    day_seconds = (moment.toordinal() - _UNIX_EPOCH_ORDINAL) * 86400
    seconds = day_seconds + moment.hour * 3600 + moment.minute * 60 + moment.second
    seconds -= offset_seconds
    if fraction:
        seconds += int(fraction) / 10 ** len(fraction)
    if not EARLIEST_SECONDS <= seconds < LATEST_SECONDS:
        return None
    return float(seconds)


def parse_event_time(text):
    """Seconds since the epoch of a valid eventTime; ValueError for anything else."""
    seconds = event_time_seconds(text)
    if seconds is None:
        raise ValueError(f"not an event time: {text[:40]!r}")
    return seconds


def is_iso_time(text):
    return event_time_seconds(text) is not None


def record_problem(record):
    """Why `record` cannot be replayed, or None when it can. Sets p_log_type on good records."""
    # Fast path for the common, well-formed record; the slow path finds out what is wrong.
    if type(record) is dict:
        event_time = record.get("eventTime")
        source = record.get("eventSource")
        name = record.get("eventName")
        if (
            type(source) is str
            and type(name) is str
            and type(event_time) is str
            and source
            and name
            and event_time_seconds(event_time) is not None
            and record.setdefault(LOG_TYPE_FIELD, LOG_TYPE) == LOG_TYPE
        ):
            return None
    return _problem_of(record)


def _problem_of(record):
    if type(record) is not dict:
        if isinstance(record, InvalidJson):
            return f"not valid JSON ({record.reason})"
        return f"not a JSON object (a JSON {json_type_name(record)})"
    for field in REQUIRED_STRING_FIELDS:
        value = record.get(field)
        if value is None:
            return f"missing required field {field}"
        if type(value) is not str or not value:
            return f"{field} is not a non-empty string"
    if not is_iso_time(record["eventTime"]):
        return (
            f"eventTime {record['eventTime'][:40]!r} is not an ISO 8601 date-time with Z or an "
            "offset within years 1-9999"
        )
    log_type = record.setdefault(LOG_TYPE_FIELD, LOG_TYPE)
    if log_type != LOG_TYPE:
        # A record another log type's parser produced: CloudTrail rules must not judge it.
        return f"{LOG_TYPE_FIELD} is {str(log_type)[:40]!r}, not {LOG_TYPE}"
    return None


def json_type_name(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else type(value).__name__
