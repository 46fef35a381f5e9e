"""The standard fields Panther's log processing adds to every CloudTrail event, on first read.

Panther's log processing adds `p_log_type`, `p_event_time`, `p_parse_time`, `p_row_id`,
`p_source_id`, `p_source_label` and the `p_any_*` indicator fields of the log type's schema to
every event before a rule sees it. The replay sets `p_log_type` on every record as it is read
(records.py); the others are worked out the first time something reads them, so a rule that never
does pays nothing for them: `ReplayEvent` is panther_core's `PantherEvent` with the missing ones
filled in on a lookup that would otherwise fail. A field the record already carries (a record
exported from Panther's data lake) is kept as it is, in whatever case it is spelled.

Which record fields feed which indicator follows Panther's AWS.CloudTrail schema as its log
processor applies it (the open-source panther-labs/panther v1.16 parser: struct tags of the
CloudTrail fields, and `extractIndicators` over its JSON-typed fields), with the indicators
Panther added since (trace ids, user names, actor ids) as the `p_any_*` fields of
panther-analysis's CloudTrail test events show them. README.md has the table.
"""

import codecs
import contextlib
import functools
import hashlib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from panther_core.enriched_event import PantherEvent

from detection_replay.records import EVENT_TIME

EVENT_TIME_FIELD = "p_event_time"
PARSE_TIME_FIELD = "p_parse_time"
ROW_ID_FIELD = "p_row_id"
SOURCE_ID_FIELD = "p_source_id"
SOURCE_LABEL_FIELD = "p_source_label"

# Panther's p_source_id is its log source's UUID; a replay has none, so it has one of its own.
DEFAULT_SOURCE_ID = "5e1f0c3a-6d2b-4c8e-9a71-d3b0c0de7e91"
DEFAULT_SOURCE_LABEL = "detection-replay"
ROW_ID_BYTES = 16  # 32 hex digits, as long as the longest ids Panther writes

# --- indicators ---------------------------------------------------------------------------------

IP_ADDRESSES = "p_any_ip_addresses"
DOMAIN_NAMES = "p_any_domain_names"
ACCOUNT_IDS = "p_any_aws_account_ids"
ARNS = "p_any_aws_arns"
INSTANCE_IDS = "p_any_aws_instance_ids"
TAGS = "p_any_aws_tags"
TRACE_IDS = "p_any_trace_ids"
USERNAMES = "p_any_usernames"
ACTOR_IDS = "p_any_actor_ids"
INDICATOR_FIELDS = (
    ACTOR_IDS,
    ACCOUNT_IDS,
    ARNS,
    INSTANCE_IDS,
    TAGS,
    DOMAIN_NAMES,
    IP_ADDRESSES,
    TRACE_IDS,
    USERNAMES,
)


def _account_id(value, found):
    if len(value) == 12 and value.isascii() and value.isdigit():
        found[ACCOUNT_IDS].add(value)


def _instance_id(value, found):
    if value.startswith("i-"):
        found[INSTANCE_IDS].add(value)


def _arn(value, found):
    """An ARN, the account it names and, for an EC2 instance's, the instance id."""
    parts = value.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return
    found[ARNS].add(value)
    _account_id(parts[4], found)
    resource = parts[5]
    if resource.startswith("instance/"):
        _instance_id(resource.rpartition("/")[2], found)


@functools.lru_cache(maxsize=4096)  # addresses repeat: a caller makes many calls
def _is_ip_address(value):
    if "%" in value:  # a zone index: not an address Panther's parser accepts
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _ip_address(value, found):
    value = value.strip()
    if value and _is_ip_address(value):
        found[IP_ADDRESSES].add(value)


def _domain_name(value, found):
    value = value.strip()
    if not value:
        return
    if value.startswith("xn--"):  # punycode, recorded decoded
        with contextlib.suppress(UnicodeError, ValueError):
            value = codecs.decode(value.encode("ascii"), "idna")
    found[DOMAIN_NAMES].add(value)


def _hostname(value, found):
    """An address, or else a host name (sourceIPAddress holds either)."""
    stripped = value.strip()
    if stripped and _is_ip_address(stripped):
        found[IP_ADDRESSES].add(stripped)
    else:
        _domain_name(stripped, found)


def _collector(field):
    def collect(value, found):
        if value:
            found[field].add(value)

    return collect


def _tag(value, found):
    if value:
        found[TAGS].add(value)


# The schema's typed fields: where each is in a record, and the indicator it feeds.
TOP_LEVEL_FIELDS = (("recipientAccountId", _account_id), ("sourceIPAddress", _hostname))
IDENTITY_FIELDS = (  # userIdentity's
    ("arn", _arn),
    ("accountId", _account_id),
    ("accessKeyId", _collector(TRACE_IDS)),
    ("userName", _collector(USERNAMES)),
    ("principalId", _collector(ACTOR_IDS)),
)
ISSUER_FIELDS = (  # userIdentity.sessionContext.sessionIssuer's
    ("arn", _arn),
    ("accountId", _account_id),
    ("userName", _collector(USERNAMES)),
    ("principalId", _collector(ACTOR_IDS)),
)
# Fields of each `resources` item (Panther's parser matches JSON keys in any case).
RESOURCE_FIELDS = {"arn": _arn, "accountid": _account_id}
# The JSON-typed fields, searched through for indicators by key (and, in userIdentity's
# sessionContext, webIdFederationData.attributes).
JSON_FIELDS = (
    "additionalEventData",
    "requestParameters",
    "responseElements",
    "serviceEventDetails",
)
# Inside them, a string under one of these keys feeds the indicator.
JSON_KEYS = {
    "arn": _arn,
    "ARN": _arn,
    "aws:SourceArn": _arn,
    "instanceId": _instance_id,
    "instance-id": _instance_id,
    "accountId": _account_id,
    "account": _account_id,
    "tags": _tag,
    "ipv6Addresses": _ip_address,
    "publicIp": _ip_address,
    "privateIpAddress": _ip_address,
    "ipAddressV4": _ip_address,
    "sourceIPAddress": _ip_address,
    "publicDnsName": _domain_name,
    "privateDnsName": _domain_name,
    "domain": _domain_name,
}
# Any other key ending so, and any other string that is an ARN.
JSON_KEY_SUFFIXES = (("AccountId", _account_id), ("InstanceId", _instance_id))


def _scan_fields(mapping, fields, found):
    for name, scan in fields:
        value = mapping.get(name)
        if type(value) is str:
            scan(value, found)


def _json_string(key, value, found):
    scan = JSON_KEYS.get(key)
    if scan is None:
        for suffix, by_suffix in JSON_KEY_SUFFIXES:
            if key.endswith(suffix):
                scan = by_suffix
                break
    if scan is not None:
        scan(value, found)
    elif value.startswith("arn:") and value.count(":") >= 5:
        _arn(value, found)


def _tag_object(value, found):
    """{"key": ..., "value": ...} under "tags" is one tag, key:value (keys in any case)."""
    fields = {str(name).lower(): item for name, item in value.items()}
    key, text = fields.get("key"), fields.get("value")
    if isinstance(key, str) and isinstance(text, str) and key and text:
        found[TAGS].add(f"{key}:{text}")


def _search_json(value, found):
    """Every string in a JSON value, by the key it is under (a list's items take its key).
    Iterative: a record may nest as deep as the decoder allows, past Python's recursion limit."""
    pending = [("", value)]
    while pending:
        key, value = pending.pop()
        if type(value) is str:
            _json_string(key, value, found)
        elif type(value) is dict:
            if key == "tags":
                _tag_object(value, found)
            else:
                pending.extend((name, item) for name, item in value.items() if type(name) is str)
        elif type(value) is list:
            pending.extend((key, item) for item in value)


def indicators(record):
    """The record's p_any_* fields as Panther's CloudTrail schema fills them: each a sorted list
    of distinct values, absent when there is none."""
    found = defaultdict(set)
    _scan_fields(record, TOP_LEVEL_FIELDS, found)
    identity = record.get("userIdentity")
    if type(identity) is dict:
        _scan_fields(identity, IDENTITY_FIELDS, found)
        context = identity.get("sessionContext")
        if type(context) is dict:
            issuer = context.get("sessionIssuer")
            if type(issuer) is dict:
                _scan_fields(issuer, ISSUER_FIELDS, found)
            federation = context.get("webIdFederationData")
            if type(federation) is dict and federation.get("attributes") is not None:
                _search_json(federation["attributes"], found)
    resources = record.get("resources")
    if type(resources) is list:
        for resource in resources:
            if type(resource) is dict:
                for name, value in resource.items():
                    scan = RESOURCE_FIELDS.get(name.lower()) if type(name) is str else None
                    if scan is not None and type(value) is str:
                        scan(value, found)
    for name in JSON_FIELDS:
        value = record.get(name)
        if value is not None:
            _search_json(value, found)
    return {field: sorted(values) for field, values in found.items()}


# --- times and ids ------------------------------------------------------------------------------


def _seconds_text(moment):
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def panther_time(moment):
    """A UTC datetime written as Panther writes timestamps: YYYY-MM-DD HH:MM:SS.fffffffff."""
    return f"{_seconds_text(moment)}.{moment.microsecond:06d}000"


_EVENT_TIME_MEMO_LIMIT = 65536
_panther_times = {}


def panther_event_time(text):
    """An eventTime (validated by records.record_problem) as Panther's p_event_time: in UTC, with
    all nine digits of the fraction; None when it is not an event time."""
    written = _panther_times.get(text)
    if written is None:
        written = _panther_event_time(text)
        if len(_panther_times) >= _EVENT_TIME_MEMO_LIMIT:
            _panther_times.clear()
        _panther_times[text] = written
    return written


def _panther_event_time(text):
    try:
        match = EVENT_TIME.fullmatch(text.encode("ascii"))
    except UnicodeEncodeError:
        return None
    if match is None:
        return None
    date = [int(part) for part in match.group(1, 2, 3)]
    if match[4] is not None:
        clock, fraction = match.group(4, 5, 6), match[7]
    else:
        clock, fraction = match.group(12, 13, 14), match[15]
    try:
        moment = datetime(*date, *(int(part) for part in clock))
        if match[9] is not None:
            offset = timedelta(hours=int(match[10]), minutes=int(match[11]))
            moment = moment - offset if match[9] == b"+" else moment + offset
    except (ValueError, OverflowError):
        return None
    nanoseconds = (fraction or b"").decode().ljust(9, "0")
    return f"{_seconds_text(moment)}.{nanoseconds}"


@functools.lru_cache(maxsize=4096)  # event times repeat
def _epoch_of_panther_time(written):
    """int(timestamp) of a p_event_time this module wrote, as panther_core's event_time_epoch()
    computes it through dateutil (which keeps six digits of the fraction)."""
    day, clock = written.split(" ")
    whole, fraction = clock.split(".")
    moment = datetime(
        *map(int, day.split("-")), *map(int, whole.split(":")), int(fraction[:6]), tzinfo=UTC
    )
    return int(moment.timestamp())


def parse_time_option(text):
    """--parse-time: an ISO 8601 date-time (UTC unless it has an offset) as Panther writes it."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return panther_time(moment)


def row_id(source_name, line, index):
    """A row id for the record at this place: the same on every run and with any --jobs."""
    place = f"{source_name}\0{line}\0{index}".encode("utf-8", "surrogateescape")
    return hashlib.blake2b(place, digest_size=ROW_ID_BYTES).hexdigest()


@dataclass(frozen=True)
class LogSource:
    """What the replay says of where its events came from, for every record alike. parse_time
    None: each event's p_parse_time is its p_event_time (see README)."""

    source_id: str = DEFAULT_SOURCE_ID
    source_label: str = DEFAULT_SOURCE_LABEL
    parse_time: str | None = None

    def field(self, name, record, place):
        """The value of standard field `name` for the record at place (source, line, index), or
        None when it has none."""
        if name == EVENT_TIME_FIELD:
            return _event_time_of(record)
        if name == PARSE_TIME_FIELD:
            return self.parse_time or _event_time_of(record)
        if name == ROW_ID_FIELD:
            return row_id(*place)
        if name == SOURCE_ID_FIELD:
            return self.source_id
        if name == SOURCE_LABEL_FIELD:
            return self.source_label
        return None


def _event_time_of(record):
    text = record.get("eventTime")
    return panther_event_time(text) if type(text) is str else None


SCALAR_FIELDS = (
    EVENT_TIME_FIELD,
    PARSE_TIME_FIELD,
    ROW_ID_FIELD,
    SOURCE_ID_FIELD,
    SOURCE_LABEL_FIELD,
)
STANDARD_FIELDS = (*SCALAR_FIELDS, *INDICATOR_FIELDS)
STANDARD_FIELD_SET = frozenset(STANDARD_FIELDS)


class ReplayEvent(PantherEvent):
    """panther_core's PantherEvent with Panther's standard fields filled in as they are read.

    `pending` is (LogSource, place) until every field is in, then None. A lookup of a key the
    record lacks reaches `_case_insensitive_lookup`; that is where a missing standard field is
    worked out and added, so lookups of fields the record has cost what they cost before. The
    indicator fields are worked out together, the first time one is read. Reading the whole
    event (iterating, its length, to_dict(), repr) fills in every field first. `raw_view()`, and
    panther_core's JSON encoder of an event (which reads the record directly), show the record
    as it is so far: the fields not read yet are not there (fill_in() adds them all).
    """

    pending = None
    # The standard fields added so far (the record's own are not in it).
    added = frozenset()

    def _case_insensitive_lookup(self, key):
        found = super()._case_insensitive_lookup(key)
        if found is not None or self.pending is None:
            return found
        name = key.lower()  # the standard fields' names are lowercase
        if name not in STANDARD_FIELD_SET:
            return None
        return name if self._fill(name) else None

    def _fill(self, name):
        """Add standard field `name` (all the indicators, for one of them); True when the event
        has it now."""
        lowered = self._lowered_keys()
        if name in lowered:
            return False  # the record has it in another case, and the lookup found that
        if name in INDICATOR_FIELDS:
            self._add(self._indicators(lowered))
        else:
            source, place = self.pending
            value = source.field(name, self._container, place)
            self._add({} if value is None else {name: value})
        return name in self._container

    def _indicators(self, lowered):
        found = indicators(self._container)
        return {field: values for field, values in found.items() if field not in lowered}

    def _add(self, fields):
        if not fields:
            return
        self._container.update(fields)
        self.added = self.added | fields.keys()
        # The container changed size: the lookup's key map restarts from a fresh iterator.
        self._keymap_key_iterator = None
        self._keymap_fully_built = False
        self._case_insensitive_keymap.update((name, name) for name in fields)

    def _lowered_keys(self):
        """The record's own standard-looking keys (p_..., in any case), lowercased."""
        return {
            key.lower()
            for key in self._container
            if type(key) is str and key[1:2] == "_" and key[:1] in "pP"
        }

    def fill_in(self):
        """Every standard field the record lacks, added now."""
        if self.pending is None:
            return self
        source, place = self.pending
        container, lowered = self._container, self._lowered_keys()
        fields = self._indicators(lowered)
        for name in SCALAR_FIELDS:
            if name not in lowered:
                value = source.field(name, container, place)
                if value is not None:
                    fields[name] = value
        self._add(fields)
        self.pending = None
        return self

    def __iter__(self):
        return super(ReplayEvent, self.fill_in()).__iter__()

    def __len__(self):
        return super(ReplayEvent, self.fill_in()).__len__()

    def copy(self):
        return super(ReplayEvent, self.fill_in()).copy()

    def __repr__(self):
        return super(ReplayEvent, self.fill_in()).__repr__()

    def event_time_epoch(self, force_utc=True):
        """panther_core's answer (whole seconds of p_event_time, 0 without one), worked out from
        the replay's own p_event_time without parsing it with dateutil (50 µs): the same
        datetime, to the microsecond, and the same truncation of its timestamp."""
        derived = EVENT_TIME_FIELD in self.added or (
            self.pending is not None and EVENT_TIME_FIELD not in self._lowered_keys()
        )
        if not derived:
            return super().event_time_epoch(force_utc)
        written = self.get(EVENT_TIME_FIELD)
        return 0 if written is None else _epoch_of_panther_time(written)

    def deep_walk(self, *keys, default=None, return_val="all"):
        if keys and self.pending is not None and keys[0] not in self._container:
            self._case_insensitive_lookup(keys[0])
        return super().deep_walk(*keys, default=default, return_val=return_val)

    def _get_json_path(self, key):
        if self.pending is not None and _names_standard_field(self.data_model, key):
            self.fill_in()
        return super()._get_json_path(key)

    def _get_method(self, key):
        """A data model method gets this event, which fills in the standard fields it reads
        (panther_core hands methods a plain immutable copy of the record, which would not)."""
        method = super()._get_method(key)
        if method is None or self.pending is None:
            return method
        return lambda _record: method(self)


# Whether a data model's JSON path names a standard field, by (model, mapping) (paths are fixed).
_paths_naming_standard_fields = {}


def _names_standard_field(model, key):
    known = _paths_naming_standard_fields.get((id(model), key))
    if known is None:
        path = model.paths.get(key) if model is not None else None
        known = path is not None and "p_" in str(path)
        _paths_naming_standard_fields[(id(model), key)] = known
    return known


def replay_event(record, data_model, source, place):
    """The record as a rule sees it: a ReplayEvent whose standard fields come from `source`."""
    event = ReplayEvent(record, data_model)
    event.pending = (source, place)
    return event
