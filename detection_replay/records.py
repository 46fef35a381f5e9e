"""What a record must carry before a rule sees it, and how it is wrapped for the engine."""

from datetime import UTC, datetime

LOG_TYPE = "AWS.CloudTrail"
LOG_TYPE_FIELD = "p_log_type"

# Panther's CloudTrail parser rejects a record without these, so the replay does too: eventTime
# is the event's time (and the dedup clock), eventSource/eventName say what was called.
REQUIRED_STRING_FIELDS = ("eventTime", "eventSource", "eventName")


class InvalidJson:
    """Stands in for a record whose text could not be decoded."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


# eventTime values repeat (CloudTrail has second resolution and a busy account logs many events
# a second), so parsed times are remembered; the memo is emptied when it grows this large.
_EVENT_TIME_MEMO_LIMIT = 65536
_event_times = {}


def parse_event_time(text):
    """Seconds since the epoch; a time without a zone is read as UTC (CloudTrail writes `Z`)."""
    seconds = _event_times.get(text)
    if seconds is None:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
        if len(_event_times) >= _EVENT_TIME_MEMO_LIMIT:
            _event_times.clear()
        _event_times[text] = seconds
    return seconds


def is_iso_time(text):
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


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
            and is_iso_time(event_time)
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
        return f"eventTime {record['eventTime'][:40]!r} is not an ISO 8601 time"
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
