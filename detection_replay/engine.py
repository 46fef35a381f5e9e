"""The replay in two passes: records in, matches buffered, then alerts in eventTime order.

Pass 1 streams every record: decode, validate, and decide for each rule whether it matches,
with the rule's own rule() (and its inline filters), never its title(), dedup(), severity() or
alert_context(). It may run in several processes and sees the inputs in any order, so each
evaluation starts from the same state: Panther's key-value store is a probe that answers as an
empty store and records that it was touched (kv_store), and a rule module's globals that its
functions change are put back as imported after a call changed them (rules.ModuleState). An
evaluation that touched neither decides: a match is buffered, a miss costs nothing more. One that
did is undecided: the record is buffered to be evaluated in pass 2. So are all the matches of a
rule keeping module state, whose title or severity may read what its rule() left there.

Pass 2, once every input is read, sorts what was buffered by eventTime (ties broken by the
record's content, then input order, so that any order of the same inputs gives the same result)
and runs panther_core's `Rule.run(..., batch_mode=True)` on each, in that order, in this process:
for a decided match with rule() not called again (its answer is the match), for its title, dedup
string, severity and alert context; for an undecided event in full, rule() included, against the
real store on the event's clock (`before_match(event_time_seconds)` is called right before each
run). So every function of a rule runs once per event that counts, in eventTime order, whatever
the rule keeps, and the report does not depend on the order of the inputs or on --jobs.
"""

import contextlib
import hashlib
import os
import tempfile
import time
from array import array
from dataclasses import dataclass, field

import orjson
from panther_core.rule import TYPE_RULE

from detection_replay.alerts import ALERTS_KEPT, Alert, AlertGrouper
from detection_replay.framing import READ_ERRORS, Damage
from detection_replay.inputs import (
    UnreadableInput,
    describe_error,
    no_cloudtrail_record,
    open_source,
    read_records,
)
from detection_replay.records import event_time_seconds, record_problem
from detection_replay.rules import changed_globals, describe_exception, reset_rule_counters
from detection_replay.standard_fields import LogSource, ReplayEvent

MALFORMED_EXAMPLES_KEPT = 10
# Events buffered between the passes (matches, and undecided events); past this the replay stops
# (--max-matches).
MATCHES_KEPT = 1_000_000
# Buffered records are kept in memory up to this many bytes (as JSON), then in a temporary file
# that has no name (it disappears with the process, however the process ends).
MATCH_MEMORY_BYTES = 64 * 1024 * 1024
# Replays know no destinations; one shared empty mapping spares two dicts per rule call.
NO_DESTINATIONS = {}


def location(source_name, line, index):
    """Where a record is: its line, and its position inside a delivery object or array."""
    parts = [source_name]
    if line:
        parts.append(f"line {line}")
    if index:
        parts.append(f"record {index}")
    return " ".join(parts)


class MatchLimitExceeded(Exception):
    """More matching events than the replay buffers between its passes."""

    def __init__(self, limit):
        super().__init__(
            f"more than {limit:,} matching events (--max-matches): a rule matches too broadly "
            "for a replay; replay fewer inputs at a time or raise the limit"
        )
        self.limit = limit


@dataclass
class MalformedRecords:
    examples_kept: int = MALFORMED_EXAMPLES_KEPT
    count: int = 0
    examples: list = field(default_factory=list)

    def add(self, source_name, line, index, problem):
        self.count += 1
        if len(self.examples) < self.examples_kept:  # only then is the location worth building
            self.examples.append({"where": location(source_name, line, index), "problem": problem})


@dataclass
class Totals:
    records_read: int = 0
    evaluated: int = 0
    matched: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self):
        return self.records_read / self.seconds if self.seconds > 0 else 0.0


# --- buffered records between the passes ---------------------------------------------------------


class SpillFile:
    """Records' JSON appended to a file and read back by position.

    Without a path the file has no name (it disappears with the process however it ends); with
    one (a worker's, see parallel.py) the process that adopts it opens it and removes the name.
    """

    def __init__(self, path=None):
        if path is None:
            # Closed by close(); unnamed, so nothing is left behind even if that never runs.
            self._file = tempfile.TemporaryFile(prefix="detection-replay-matches-")  # noqa: SIM115
        else:
            self._file = open(path, "w+b")  # noqa: SIM115 (closed by close())
        self.path = path
        self.size = 0
        self._unflushed = False

    def append(self, body):
        offset = self.size
        self._file.write(body)
        self.size += len(body)
        self._unflushed = True
        return offset

    def flush(self):
        if self._unflushed:
            self._file.flush()
            self._unflushed = False

    def read(self, offset, length):
        self.flush()
        return os.pread(self._file.fileno(), length, offset)

    def close(self):
        self._file.close()


class AdoptedSpill:
    """Another process's SpillFile, read here (its name removed once it is open)."""

    def __init__(self, path):
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        with contextlib.suppress(OSError):  # its directory goes at the end of the run anyway
            os.unlink(path)

    def read(self, offset, length):
        return os.pread(self._file.fileno(), length, offset)

    def close(self):
        self._file.close()


class MemoryArena:
    """Records' JSON back to back in bytearrays of CHUNK_BYTES: no object, header or slack per
    record, and growing never copies what is held (one bytearray would, doubling the peak)."""

    CHUNK_BYTES = 1 << 20

    def __init__(self):
        self.chunks = []
        self.size = 0

    def append(self, body):
        """Keep body; its offset says where: chunk index << 32 | position in the chunk."""
        chunks = self.chunks
        if not chunks or len(chunks[-1]) + len(body) > max(self.CHUNK_BYTES, len(body)):
            chunks.append(bytearray())
        chunk = chunks[-1]
        offset = (len(chunks) - 1) << 32 | len(chunk)
        chunk += body
        self.size += len(body)
        return offset

    def read(self, offset, length):
        position = offset & 0xFFFFFFFF
        return memoryview(self.chunks[offset >> 32])[position : position + length]

    def close(self):
        self.chunks = []
        self.size = 0


# Where a buffered record's body is: MemoryArena, the buffer's own SpillFile, adopted spills after
# them, or OBJECTS (a record orjson cannot write, e.g. an integer past 64 bits, kept as it is).
ARENA, OWN_SPILL, OBJECTS = 0, 1, -1
# One entry per buffered (record, rule): its columns. 69 bytes an entry, whatever the record.
COLUMNS = (
    ("seconds", "d"),  # eventTime, the sort key
    ("digest", "Q"),  # of the record's JSON: ties broken by content ...
    ("sequence", "q"),  # ... then by the record's number in input order
    ("rule", "i"),
    ("decided", "b"),  # 1: a match pass 1 decided; 0: to evaluate in full in pass 2
    ("source", "i"),  # where the record is: input (an index into `sources`), line, index
    ("line", "q"),
    ("index", "q"),
    ("store", "i"),  # where its JSON is: store, offset, length
    ("offset", "q"),
    ("length", "q"),
)
# The spill files of worker processes, one per (directory, process), kept across their tasks.
_process_spills = {}


def process_spill(directory):
    """This process's SpillFile in `directory` (a worker's; see parallel.py)."""
    key = (directory, os.getpid())
    spill = _process_spills.get(key)
    if spill is None:
        spill = _process_spills[key] = SpillFile(os.path.join(directory, f"matches-{key[1]}"))
    return spill


@dataclass
class ExportedMatches:
    """A worker's buffered entries as plain data for the parent: columns, the inputs they name,
    records kept as objects, and the spill file holding their JSON."""

    columns: dict
    sources: list
    objects: list
    spill_path: str | None


class MatchBuffer:
    """Records buffered between the passes, sorted on the way out.

    An entry is a few numbers in arrays (COLUMNS); the record's JSON is stored once however many
    rules buffer it, in memory up to `memory_bytes` (MemoryArena: the JSON and nothing else),
    then in a temporary file. With `spill_directory` (a worker) every record goes to the
    process's spill file there, which the parent reads in pass 2: a worker hands back numbers,
    never the records themselves.
    """

    def __init__(self, limit=MATCHES_KEPT, memory_bytes=MATCH_MEMORY_BYTES, spill_directory=None):
        self.limit = limit
        self._memory_bytes = memory_bytes
        self._spill_directory = spill_directory
        self._columns = {name: array(code) for name, code in COLUMNS}
        self._arena = MemoryArena()
        self._stores = [self._arena, None]
        self._adopted = {}
        self._objects = []
        self._sources = []
        self._source_numbers = {}

    def __len__(self):
        return len(self._columns["seconds"])

    @property
    def memory_bytes(self):
        """What the entries and the in-memory records take."""
        columns = sum(column.itemsize * len(column) for column in self._columns.values())
        return columns + self._arena.size

    def store(self, record):
        """Keep the record's JSON: (store, offset, length, digest), for add()."""
        try:
            body = orjson.dumps(record)
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits: keep the object
            self._objects.append(record)
            return OBJECTS, len(self._objects) - 1, 0, 0
        digest = int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big")
        if self._spill_directory is None and self._arena.size + len(body) <= self._memory_bytes:
            return ARENA, self._arena.append(body), len(body), digest
        return OWN_SPILL, self._own_spill().append(body), len(body), digest

    def _own_spill(self):
        spill = self._stores[OWN_SPILL]
        if spill is None:
            if self._spill_directory is None:
                spill = SpillFile()
            else:
                spill = process_spill(self._spill_directory)
            self._stores[OWN_SPILL] = spill
        return spill

    def add(self, seconds, sequence, rule_index, decided, where, stored):  # noqa: PLR0917
        """Buffer the record at `where` (input, line, index), stored by store(), for a rule."""
        if len(self) >= self.limit:
            raise MatchLimitExceeded(self.limit)
        source_name, line, index = where
        number = self._source_number(source_name)
        store, offset, length, digest = stored
        values = (seconds, digest, sequence, rule_index, decided, number, line, index)
        for column, value in zip(
            self._columns.values(), (*values, store, offset, length), strict=True
        ):
            column.append(value)

    def export(self):
        """The entries as plain data for another process (a worker's, to its parent)."""
        spill = self._stores[OWN_SPILL]
        if spill is not None:
            spill.flush()
        return ExportedMatches(
            columns=self._columns,
            sources=self._sources,
            objects=self._objects,
            spill_path=None if spill is None else spill.path,
        )

    def adopt(self, exported, sequence_offset):
        """Take another process's entries, numbering their records after `sequence_offset`."""
        columns = exported.columns
        count = len(columns["seconds"])
        if len(self) + count > self.limit:
            raise MatchLimitExceeded(self.limit)
        if not count:
            return
        spill_store = None
        if exported.spill_path is not None:
            spill_store = self._adopted.get(exported.spill_path)
            if spill_store is None:
                spill_store = self._adopted[exported.spill_path] = len(self._stores)
                self._stores.append(AdoptedSpill(exported.spill_path))
        object_offset = len(self._objects)
        self._objects.extend(exported.objects)
        numbers = [self._source_number(name) for name in exported.sources]
        mine = self._columns
        for name in ("seconds", "digest", "rule", "decided", "line", "index", "length"):
            mine[name].extend(columns[name])
        mine["sequence"].extend(sequence + sequence_offset for sequence in columns["sequence"])
        mine["source"].extend(numbers[number] for number in columns["source"])
        stores, offsets = columns["store"], columns["offset"]
        for store, offset in zip(stores, offsets, strict=True):
            if store == OBJECTS:
                mine["store"].append(OBJECTS)
                mine["offset"].append(offset + object_offset)
            else:
                mine["store"].append(spill_store)
                mine["offset"].append(offset)

    def _source_number(self, name):
        number = self._source_numbers.get(name)
        if number is None:
            number = self._source_numbers[name] = len(self._sources)
            self._sources.append(name)
        return number

    def in_time_order(self):
        """(seconds, rule index, decided, where, record) by eventTime, ties in a content-given
        order; entries of one record share its decoded record (read-only to the engine)."""
        columns = self._columns
        seconds, digest = columns["seconds"], columns["digest"]
        sequence, rule = columns["sequence"], columns["rule"]
        order = sorted(
            range(len(self)),
            key=lambda entry: (seconds[entry], digest[entry], sequence[entry], rule[entry]),
        )
        decided, source, line, index = (
            columns[name] for name in ("decided", "source", "line", "index")
        )
        store, offset, length = columns["store"], columns["offset"], columns["length"]
        last_body, record = None, None
        for entry in order:
            body = (store[entry], offset[entry])
            if body != last_body:
                record = self._record(*body, length[entry])
                last_body = body
            where = (self._sources[source[entry]], line[entry], index[entry])
            yield seconds[entry], rule[entry], bool(decided[entry]), where, record

    def _record(self, store, offset, length):
        if store == OBJECTS:
            return self._objects[offset]
        return orjson.loads(self._stores[store].read(offset, length))

    def close(self):
        for column in self._columns.values():
            del column[:]
        self._objects.clear()
        for store in self._stores:
            if store is None or (isinstance(store, SpillFile) and store.path is not None):
                continue  # a worker's spill file outlives its tasks (see process_spill)
            store.close()


def matcher_decision(engine, event):
    """Rule.run()'s decision without its auxiliary functions: (matched, (function, error)).

    The same steps as panther_core's Rule.run() up to its `trigger_alert`: inline filters (on
    plain rules, unless skipped), then the rule's matcher, whose result must be the bool True.
    """
    filtered = engine.detection_type == TYPE_RULE and engine.filters and not engine.skip_filters
    try:
        if filtered and not all(single.filter(event) for single in engine.filters):
            return False, None
    except Exception as error:
        return False, ("filters", error)
    try:
        output = engine.matcher_function(event)
    except Exception as error:
        return False, ("rule", error)
    return output is engine.matcher_alert_value, None


class Replay:
    """Replays sources through a RuleSet, keeping totals, malformed records and alerts."""

    def __init__(
        self,
        rule_set,
        *,
        progress=None,
        malformed_examples=MALFORMED_EXAMPLES_KEPT,
        quick_miss=True,
        before_match=None,
        max_matches=MATCHES_KEPT,
        max_alerts=ALERTS_KEPT,
        log_source=None,
        spill_directory=None,
    ):
        self.rule_set = rule_set
        self.options = {
            "malformed_examples": malformed_examples,
            "quick_miss": quick_miss,
            "max_matches": max_matches,
            "max_alerts": max_alerts,
            "log_source": log_source,
        }
        self.rules = rule_set.rules
        # Each replay starts from an empty key-value store, on the replayed events' clock.
        self.store = rule_set.store
        self.store.clear()
        self.skipped_rules = rule_set.skipped
        self.not_loaded_rules = rule_set.not_loaded
        # (its quick matcher or None, its module state or None) per rule: see LoadedRule.
        self._checks = [
            (rule.quick_matcher if quick_miss else None, rule.module_state) for rule in self.rules
        ]
        self.data_model = rule_set.data_model
        self.log_source = log_source or LogSource()
        self.progress = progress
        self.before_match = before_match
        self.totals = Totals()
        self.malformed = MalformedRecords(examples_kept=malformed_examples)
        self.unreadable = []
        self.skipped_inputs = []
        self.digest_files = 0
        self.sources_read = 0
        # Inputs that yielded at least one record (a run where none did is a failed run).
        self.inputs_with_records = 0
        # The first malformed record of the input being read, and why (see replay_source).
        self._first_malformed = None
        # Module globals found changed by pass 1 that no ModuleState looks after:
        # {("rule", rule_id) or ("helper", GlobalID): names}.
        self.unhandled_state = {}
        self.grouper = AlertGrouper(self.rules, alerts_kept=max_alerts)
        self.matches = MatchBuffer(limit=max_matches, spill_directory=spill_directory)
        self.finished = False

    def run(self, sources, jobs=1):
        """Both passes over the sources; pass 1 in `jobs` processes (see parallel.py)."""
        started = time.perf_counter()
        try:
            self.store.start_probing()
            try:
                if jobs > 1:
                    from detection_replay.parallel import first_pass  # noqa: PLC0415

                    first_pass(self, sources, jobs)
                else:
                    for source in sources:
                        self.replay_source(source)
                    self.note_unhandled_state(self.changed_module_globals())
            finally:
                self.store.stop_probing()
            self.group_matches()
        finally:
            self.matches.close()
            self.totals.seconds += time.perf_counter() - started
        return self

    def fresh(self, spill_directory=None):
        """A replay with these rules and options and nothing counted: a worker's, per task."""
        reset_rule_counters(self.rules)
        replay = Replay(self.rule_set, **self.options, spill_directory=spill_directory)
        replay.store.start_probing()  # a new Replay empties the store, probe included
        return replay

    # --- pass 1 ---------------------------------------------------------------------------------

    def replay_source(self, source):
        if source.digest:
            self.digest_files += 1
            return
        if source.skipped:
            self.skipped_inputs.append({"input": source.name, "reason": source.skipped})
            return
        self.sources_read += 1
        read_before, evaluated_before = self.totals.records_read, self.totals.evaluated
        problems_before = len(self.unreadable)
        self._first_malformed = None
        try:
            with open_source(source) as (chunks, raw):
                report = self.progress.reporter(raw) if self.progress else None
                self._replay_records(source.name, read_records(chunks, report))
        except UnreadableInput as error:
            self._unreadable(source.name, str(error))
        except READ_ERRORS as error:
            self._unreadable(source.name, describe_error(error))
        finally:
            if (read := self.totals.records_read - read_before) > 0:
                self.inputs_with_records += 1
                said = len(self.unreadable) > problems_before
                if self.totals.evaluated == evaluated_before and not said:
                    # Not one record replayed, and nothing else said: the wrong files
                    # (EventBridge events, a CSV export), named rather than a quiet day.
                    reason = no_cloudtrail_record(read, *self._first_malformed)
                    self._unreadable(source.name, reason)
            if self.progress:
                self.progress.finish(source)

    def _unreadable(self, name, error):
        self.unreadable.append({"input": name, "error": error})

    def _replay_records(self, source_name, records):
        # The hot loop: locals instead of attributes, flushed even when the input breaks off.
        checks, data_model, malformed = self._checks, self.data_model, self.malformed
        store, log_source = self.store, self.log_source
        read = evaluated = 0
        sequence = self.totals.records_read
        try:
            for item in records:
                if type(item) is Damage:
                    self._unreadable(source_name, str(item))
                    continue
                line, index, record = item
                read += 1
                problem = record_problem(record)
                if problem is not None:
                    malformed.add(source_name, line, index, problem)
                    if self._first_malformed is None:
                        self._first_malformed = (record, problem)
                    continue
                evaluated += 1
                where = (source_name, line, index)
                event = ReplayEvent(record, data_model)
                event.pending = (log_source, where)
                stored = None  # the record's place in the buffer, once a rule needs it there
                for rule_index, (quick_matcher, state) in enumerate(checks):
                    calls = store.calls
                    verdict = None
                    if quick_matcher is not None and state is None:
                        try:
                            verdict = quick_matcher(event)
                        except Exception:  # the exact decision records the error
                            verdict = None
                        if verdict is False and store.calls == calls:
                            continue  # a miss that touched nothing: most events, most rules
                    decided = self._decide(rule_index, verdict, calls, event)
                    if decided is not None:
                        stored = self._buffer(
                            stored, record, where, sequence=sequence + read,
                            rule_index=rule_index, decided=decided,
                        )  # fmt: skip
        finally:
            self.totals.records_read += read
            self.totals.evaluated += evaluated

    def _decide(self, rule_index, verdict, calls, event):
        """Pass 1's decision for one rule on an event, past the quick miss: True for a match to
        buffer as decided, False for an event to buffer undecided (it touched the store or
        changed the module's state, or it is a match of a rule keeping module state), None for
        a miss (its error, if any, recorded)."""
        rule = self.rules[rule_index]
        store, state = self.store, rule.module_state
        matched, error = verdict, None
        if type(matched) is not bool and store.calls == calls:
            matched, error = matcher_decision(rule.engine, event)
        touched = store.calls != calls
        if touched:
            store.forget_probe()
        if state is not None and state.changed():
            touched = True
        if touched or (matched and state is not None):
            return False
        if matched:
            rule.matched += 1
            return True
        if error is not None:
            function, exception = error
            rule.errors.add(function, describe_exception(exception), location(*event.pending[1]))
        return None

    def _buffer(self, stored, record, where, *, sequence, rule_index, decided):
        """Buffer the record for pass 2 (its JSON kept once, however many rules buffer it)."""
        if stored is None:
            stored = (event_time_seconds(record["eventTime"]), self.matches.store(record))
        seconds, body = stored
        self.matches.add(seconds, sequence, rule_index, decided, where, body)
        if decided:
            self.totals.matched += 1
        return stored

    def changed_module_globals(self):
        """{module key: names} of the globals pass 1 changed that no ModuleState restores."""
        found = {}
        for key, module, skip, before in self.rule_set.module_baselines:
            names = changed_globals(module, before, skip)
            if names:
                found[key] = names
        return found

    def note_unhandled_state(self, found):
        for key, names in found.items():
            self.unhandled_state[key] = sorted(set(self.unhandled_state.get(key, ())) | set(names))

    # --- pass 2 ---------------------------------------------------------------------------------

    def group_matches(self):
        """Run each buffered event through Rule.run() in eventTime order and group alerts."""
        for rule in self.rules:
            if rule.module_state is not None:
                rule.module_state.changed()  # puts the globals back as imported, if need be
        data_model, log_source, store = self.data_model, self.log_source, self.store
        for seconds, rule_index, decided, where, record in self.matches.in_time_order():
            rule = self.rules[rule_index]
            store.set_clock(seconds)
            if self.before_match is not None:
                self.before_match(seconds)
            event = ReplayEvent(record, data_model)
            event.pending = (log_source, where)
            engine = rule.decided_engine if decided else rule.engine
            result = engine.run(event, NO_DESTINATIONS, NO_DESTINATIONS, batch_mode=True)
            place = location(*where)
            if result.trigger_alert:
                if not decided:
                    rule.matched += 1
                    self.totals.matched += 1
                self._group(rule, result, seconds, place)
            elif result.filter_exception is not None:
                rule.errors.add("filters", describe_exception(result.filter_exception), place)
            elif result.detection_exception is not None:
                rule.errors.add("rule", describe_exception(result.detection_exception), place)
            rule.take_swallowed_errors(place)
        self.grouper.finish()
        self.finished = True

    def _group(self, rule, result, seconds, where):
        severity = rule.event_severity(result)
        context = rule.alert_context_json(result)

        def first_alert():
            return Alert(
                rule_id=rule.rule_id,
                dedup=result.dedup_output,
                title=result.title_output or rule.display_name,
                severity=severity,
                alert_context_json=context,
                first_event_time=seconds,
                last_event_time=seconds,
                first_event_at=where,
                window_end=seconds + rule.dedup_period_seconds,
            )

        self.grouper.add_match(
            rule,
            result.dedup_output,
            seconds,
            severity,
            first_alert,
            unique_value=result.unique_output,
        )

    @property
    def rule_errors(self):
        return sum(sum(rule.errors.counts.values()) for rule in self.rules)

    @property
    def alert_count(self):
        return sum(self.grouper.counts.values())

    @property
    def rules_keeping_state(self):
        """[{rule_id, globals, handled}]: rules whose module keeps state, looked after by a
        ModuleState (handled) or found changed by pass 1 (not)."""
        found = [
            {"rule_id": rule.rule_id, "globals": list(rule.module_state.names), "handled": True}
            for rule in self.rules
            if rule.module_state is not None
        ]
        found += [
            {"rule_id": name, "globals": names, "handled": False}
            for (kind, name), names in self.unhandled_state.items()
            if kind == "rule"
        ]
        return sorted(found, key=lambda entry: entry["rule_id"])

    @property
    def helpers_keeping_state(self):
        """[{helper, globals}]: global helpers whose module globals pass 1 changed."""
        return sorted(
            (
                {"helper": name, "globals": names}
                for (kind, name), names in self.unhandled_state.items()
                if kind == "helper"
            ),
            key=lambda entry: entry["helper"],
        )
