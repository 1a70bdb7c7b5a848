"""The machinery every service's loader shares: read a dirty CSV file as it comes, let
PostgreSQL parse the clean bulk of it, set aside what cannot be loaded, and report.

Where the time goes: PostgreSQL's `COPY … (FORMAT csv)` parses a record in well under a
microsecond; Python's csv module plus a parse function took 3–10 µs, on one core. So the file's
bytes go to COPY as they are, and Python only decides which records may pass unread:

- a loader describes, per file, what a *clean record* looks like as a regular expression over
  bytes (`record=`: ids without leading zeros, 1–5, quoted text without line breaks, …),
  chosen so that every record it matches is one PostgreSQL reads exactly as the loader's
  `parse` function would have produced it;
- runs of clean records pass through untouched; their leading integer fields (the id and the
  references to parent files) are read with numpy, a block at a time, to find repeated ids and
  orphans;
- every other record (the dirt, and the few records whose text holds a line break) takes the
  slow path: Python's csv module and the loader's `parse(fields, repair)`, exactly as before.
  `parse` returns the row's values (strings; None for NULL), calls `repair(reason)` when it
  fixed something that has one correct reading, or raises `Reject(reason)`. A loaded row is
  written back into the stream as a CSV line, in its place, so the table keeps file order.

Rules (the same for both paths):
- the UTF-8 byte-order mark is dropped and the header must be exactly the expected one;
- records are numbered by the physical line they start on (quoted fields may span lines),
  so a rejects file points at the line an operator opens in an editor;
- a record with the wrong number of fields is rejected, and so is a repeated id (the first
  occurrence that loaded is kept);
- `one_line_records=True` (a file whose values never hold a line break, e.g. photos of URLs):
  every physical line is a record, so a quote left open ends at the line break (counted as a
  repair) instead of swallowing the next line;
- every rejected record goes to `<rejects>/<file>.rejects.csv` as `line,reason,record`.
"""
import csv
import os
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atelier_etl.progress import Progress

csv.field_size_limit(1 << 24)

BLOCK = 4 << 20  # bytes read and checked at a time
FAST_PATH = True  # False: every record takes the slow path (the tests compare the two)
BOM = b"\xef\xbb\xbf"

# Building blocks of the clean-record expressions. Each accepts only what PostgreSQL reads the
# same way as the slow path would: anything else simply takes the slow path.
ID = rb"[1-9][0-9]{0,8}"                       # 1 … 999,999,999: always a valid int4 id
COUNT = rb"[0-9]{1,9}"                         # a whole number that fits int4
_BODY = rb'[^"\r\x00]*+(?:""[^"\r\x00]*+)*+"'   # (line breaks allowed, carriage returns not)
TEXT = rb'"' + _BODY                           # quoted, may be empty
NONEMPTY_TEXT = rb'"(?!")' + _BODY             # quoted, not empty
NULLABLE_TEXT = rb'(?:null|"(?!null")' + _BODY + rb")"  # bare null is NULL; "null" is not clean
URL = rb'"(?!")[^"\n\r\x00]*+(?:""[^"\n\r\x00]*+)*+"'  # quoted, not empty, on one line


def copy_text(value: str) -> str:
    """A text value as the loaders hand it over (kept for the loaders' readability: values are
    quoted for CSV when the row is written)."""
    return value


class Reject(Exception):
    """The record cannot be loaded; the message is the reason written to the rejects file."""


class IdSet:
    """A set of positive integer ids, one byte per id (19 million ids in 19 MB), so that numpy can
    test and add a whole block of ids at once."""

    def __init__(self):
        self._flags = np.zeros(1 << 20, dtype=np.bool_)

    def _grow(self, highest: int):
        if highest >= len(self._flags):
            grown = np.zeros(max(highest + 1, 2 * len(self._flags)), dtype=np.bool_)
            grown[:len(self._flags)] = self._flags
            self._flags = grown

    def add(self, ident: int):
        self._grow(ident)
        self._flags[ident] = True

    def __contains__(self, ident: int) -> bool:
        return 0 <= ident < len(self._flags) and bool(self._flags[ident])

    def add_many(self, idents: np.ndarray):
        if len(idents):
            self._grow(int(idents.max()))
            self._flags[idents] = True

    def contains_many(self, idents: np.ndarray) -> np.ndarray:
        inside = idents < len(self._flags)
        found = np.zeros(len(idents), dtype=np.bool_)
        found[inside] = self._flags[idents[inside]]
        return found

    def flags(self) -> bytes:
        """One byte per id from 0 up, 1 where present: `flags[ident]` (an IndexError means absent)."""
        return self._flags.tobytes()


@dataclass
class FileReport:
    file: str
    read: int = 0
    loaded: int = 0
    repaired: int = 0
    rejected: int = 0
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)
    slow: int = 0  # records that took the slow path (not part of the outcome; for tuning)


def parse_id(text: str, name: str) -> int:
    """A positive integer id, or Reject naming the column."""
    if text.isdigit() and text.isascii() and 0 < len(text) <= 10:
        value = int(text)
        if 0 < value <= 2147483647:
            return value
    raise Reject(f"{name} is not a valid id: {text!r}")


def parse_reference(text: str, column: str, parents: IdSet, parent: str) -> str:
    """A reference to a parent row that must have loaded.

    A value that is no id is a "bad value"; an id whose parent did not load is an "orphan"."""
    if text.isdigit() and text.isascii() and len(text) <= 10:
        value = int(text)
        if 0 < value <= 2147483647:
            if value not in parents:
                raise Reject(f"orphan: {column} {value} is not a loaded {parent}")
            return text
    raise Reject(f"bad value: {column} is not a valid id: {text!r}")


def _csv_line(row) -> bytes:
    """A row of values as one CSV record for `COPY … (FORMAT csv, NULL 'null')`: every value
    quoted (so no text is ever read as NULL), None as the bare word null."""
    return (",".join("null" if value is None else '"' + value.replace('"', '""') + '"' for value in row)
            + "\n").encode()


def _leading_ints(block: bytes, starts: np.ndarray, count: int):
    """The first `count` fields of each line starting at `starts`, where each is known to be 1–9
    digits followed by a comma (the clean-record expression made sure): int64 arrays."""
    data = np.frombuffer(block + b"\0" * 16, dtype=np.uint8)
    position = starts
    values = []
    for _ in range(count):
        value = np.zeros(len(starts), dtype=np.int64)
        length = np.zeros(len(starts), dtype=np.int64)
        going = np.ones(len(starts), dtype=np.bool_)
        for offset in range(10):
            char = data[position + offset]
            going &= (char >= 48) & (char <= 57)
            if not going.any():
                break
            value = np.where(going, value * 10 + (char.astype(np.int64) - 48), value)
            length += going
        values.append(value)
        position = position + length + 1
    return values


class _Loader:
    """One file: the filter between the file and COPY, and the report."""

    def __init__(self, path: Path, header: str, parse, rejects_dir: Path, id_column, seen_ids,
                 check_width: bool, record: bytes, references, vector_check, one_line_records: bool,
                 progress):
        self.path = path
        self.expected = header.split(",")
        self.width = len(self.expected)
        self.parse = parse
        self.id_column = id_column
        self.seen = seen_ids if seen_ids is not None else IdSet()
        self.check_width = check_width
        self.clean = re.compile(b"(?:" + record + b"\n)*+") if record and FAST_PATH else None
        self.references = references or ()
        self.vector_check = vector_check
        self.one_line = one_line_records
        self.leading = max([id_column or 0, *(index for index, _ in self.references)]) + 1
        self.report = FileReport(path.name)
        self.progress = progress
        rejects_dir.mkdir(parents=True, exist_ok=True)
        self.rejects_path = rejects_dir / f"{path.stem}.rejects.csv"
        self._rejects_file = open(self.rejects_path, "w", encoding="utf-8", newline="")
        self._rejects = csv.writer(self._rejects_file)
        self._rejects.writerow(["line", "reason", "record"])

    # -- outcomes ---------------------------------------------------------------------------
    def _reject(self, line: int, reason: str, fields):
        report = self.report
        report.rejected += 1
        kind = reason.split(":")[0]
        report.reasons[kind] = report.reasons.get(kind, 0) + 1
        self._rejects.writerow([line, reason, ",".join(fields)])

    def _repair(self, reason: str):
        report = self.report
        report.repaired += 1
        key = "repaired: " + reason
        report.reasons[key] = report.reasons.get(key, 0) + 1

    def close(self):
        self._rejects_file.close()
        if self.report.rejected == 0:
            os.unlink(self.rejects_path)

    # -- the slow path ------------------------------------------------------------------------
    def _slow(self, fields, line: int, unclosed: bool = False) -> bytes:
        """One record through the loader's parse function: its CSV line, or b"" if rejected."""
        self.report.read += 1
        self.report.slow += 1
        try:
            if len(fields) != self.width and (self.check_width or not fields):
                raise Reject(f"wrong field count: expected {self.width} fields, found {len(fields)}")
            ident = None
            if self.id_column is not None:
                ident = parse_id(fields[self.id_column], self.expected[self.id_column])
                if ident in self.seen:
                    raise Reject(f"duplicate id: {ident} appeared on an earlier line")
            if any("\x00" in value for value in fields):
                raise Reject("bad value: a NUL character, which PostgreSQL text cannot hold")
            if unclosed:
                self._repair("unclosed_quote: a quoted value had no closing quote; it ends at the line break")
            row = self.parse(fields, self._repair)
        except Reject as problem:
            self._reject(line, str(problem), fields)
            return b""
        if ident is not None:
            self.seen.add(ident)
        self.report.loaded += 1
        return _csv_line(row)

    # -- the fast path ------------------------------------------------------------------------
    def _clean_run(self, block: bytes, line: int, out: list) -> int:
        """A run of clean records: checked in bulk, passed on as they are except the records
        whose id repeats or whose parent did not load, which take the slow path. Returns the
        number of physical lines in the run."""
        data = np.frombuffer(block, dtype=np.uint8)
        newlines = np.flatnonzero(data == 10)
        if self.one_line:
            record_ends = np.arange(len(newlines))
        else:
            # A record ends at a line break outside quotes: the run is valid CSV (the clean
            # expression matched it), so that is a line break after an even number of quotes.
            quotes_before = np.searchsorted(np.flatnonzero(data == 34), newlines)
            record_ends = np.flatnonzero((quotes_before & 1) == 0)
        ends = newlines[record_ends]
        count = len(ends)
        starts = np.empty(count, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        values = _leading_ints(block, starts, self.leading)
        ids = values[self.id_column if self.id_column is not None else 0]
        bad = np.zeros(count, dtype=np.bool_)
        if self.id_column is not None:
            bad |= self.seen.contains_many(ids)
            if count > 1 and not bool(np.all(ids[1:] > ids[:-1])):
                # ids repeat within the run: every record of such an id takes the slow path,
                # which keeps the first that loads
                order = np.argsort(ids, kind="stable")
                ordered = ids[order]
                same = np.flatnonzero(ordered[1:] == ordered[:-1])
                bad[order[same]] = True
                bad[order[same + 1]] = True
        for index, parents in self.references:
            bad |= ~parents.contains_many(values[index])
        if self.vector_check is not None:
            bad |= self.vector_check(values)
        good = ~bad
        if self.id_column is not None:
            self.seen.add_many(ids[good])
        loaded = int(np.count_nonzero(good))
        self.report.read += loaded
        self.report.loaded += loaded
        if loaded == count:
            out.append(block)
            return len(newlines)
        previous = 0
        for index in np.flatnonzero(bad).tolist():
            start, end = int(starts[index]), int(ends[index])
            first_line = 0 if index == 0 else int(record_ends[index - 1]) + 1
            out.append(block[previous:start])
            out.append(self._slow(next(csv.reader(_Lines(block[start:end + 1], 0))), line + first_line))
            previous = end + 1
        out.append(block[previous:])
        return len(newlines)

    def _utf8_prefix(self, block: bytes) -> int:
        """How many bytes at the start of `block` are valid UTF-8 (PostgreSQL refuses the rest)."""
        if block.isascii():
            return len(block)
        try:
            block.decode("utf-8")
            return len(block)
        except UnicodeDecodeError as problem:
            return problem.start

    # -- the stream ---------------------------------------------------------------------------
    def chunks(self):
        """The file, filtered: bytes of CSV records for COPY, in file order."""
        with open(self.path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            head = source.readline()
            if head.startswith(BOM):
                head = head[len(BOM):]
            found = next(csv.reader([head.decode("utf-8", "replace")]), None)
            if found != self.expected:
                raise ValueError(f"{self.path}: header is {found!r}, expected {','.join(self.expected)!r}")
            line = 2  # the physical line the next record starts on
            pending = b""
            at_end = False
            while not at_end or pending:
                if not at_end:
                    more = source.read(BLOCK)
                    at_end = not more
                    pending += more
                    if not at_end:
                        cut = pending.rfind(b"\n") + 1
                        if cut == 0:
                            continue  # a line longer than a block: read on
                        work, pending = pending[:cut], pending[cut:]
                    else:
                        work, pending = pending, b""
                else:
                    work, pending = pending, b""
                if at_end and work and not work.endswith(b"\n"):
                    work += b"\n"
                out = []
                position, line, deferred = self._filter(work, line, at_end, out)
                if deferred:
                    pending = work[position:] + pending
                self.progress.update(self.report.read, source.tell() - len(pending), size)
                if out:
                    yield b"".join(out)

    def _filter(self, work: bytes, line: int, at_end: bool, out: list):
        """Pass the records of `work` (whole lines) to `out`; returns (position reached, next
        line number, whether the rest must wait for more of the file)."""
        position, length = 0, len(work)
        clean = self.clean
        while position < length:
            if clean is not None:
                end = clean.match(work, position).end()
                if end > position:
                    valid = self._utf8_prefix(work[position:end])
                    if position + valid < end:  # the clean records before the bad byte's record
                        end = clean.match(work, position, position + valid).end()
                if end > position:
                    line += self._clean_run(work[position:end], line, out)
                    position = end
                    if position >= length:
                        break
            # one record the slow way
            if self.one_line:
                end = work.index(b"\n", position) + 1
                text = work[position:end].decode("utf-8", "replace").rstrip("\r\n")
                fields = next(csv.reader([text])) if text else []
                out.append(self._slow(fields, line, unclosed=text.count('"') % 2 == 1))
                line += 1
                position = end
                continue
            lines = _Lines(work, position)
            try:
                fields = next(csv.reader(lines))
            except csv.Error:
                fields = None
            if lines.ran_out and not at_end:
                return position, line, True  # the record goes on past this block
            if fields is None:  # unreadable even by the csv module (e.g. a NUL byte)
                self.report.read += 1
                raw = work[position:lines.position].decode("utf-8", "replace").rstrip("\r\n")
                self._reject(line, "unreadable: not a CSV record", [raw])
            else:
                out.append(self._slow(fields, line))
            line += lines.count
            position = lines.position
        return position, line, False


class _Lines:
    """Lines of a block from a position, for csv.reader, remembering how far it read."""

    def __init__(self, block: bytes, position: int):
        self.block, self.position, self.count, self.ran_out = block, position, 0, False

    def __iter__(self):
        return self

    def __next__(self):
        if self.position >= len(self.block):
            self.ran_out = True
            raise StopIteration
        end = self.block.find(b"\n", self.position) + 1 or len(self.block)
        text = self.block[self.position:end].decode("utf-8", "replace")
        self.position = end
        self.count += 1
        return text


class _Stream:
    """A file-like object for copy_expert, fed by a thread that filters the file, so that Python
    filters the next block while the connection sends the last one (and PostgreSQL parses it)."""

    def __init__(self, chunks):
        self._queue = queue.Queue(maxsize=4)
        self.error = None
        self._buffer = b""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(chunks,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                pass
        return False

    def _produce(self, chunks):
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    chunks.close()  # the COPY failed: stop reading the file
                    return
        except BaseException as problem:  # handed to the reading side
            self.error = problem
        self._put(None)

    def stop(self):
        """Let the filtering thread end (it stops at its next block) if COPY ended early."""
        self._stopped.set()
        self._thread.join()

    def read(self, size=-1):
        while not self._buffer:
            chunk = self._queue.get()
            if chunk is None:
                self._queue.put(None)
                if self.error is not None:
                    raise self.error
                return b""
            self._buffer = chunk
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        return piece

    readline = read


def load_csv(cursor, path: Path, *, header: str, table: str, columns: tuple, parse,
             rejects_dir: Path, id_column: int = 0, seen_ids: IdSet = None,
             progress=None, check_width: bool = True, record: bytes = None, references=(),
             vector_check=None, one_line_records: bool = False) -> FileReport:
    """COPY the records of one CSV file into `table` (created in this transaction); returns
    what happened to them.

    `id_column` is the position of the record's own id (checked for repeats, and remembered in
    `seen_ids` so that child files can check their references); None when there is no id.
    `record` is the clean-record expression (None: every record takes the slow path);
    `references` pairs (field position, IdSet of the parent) for the clean records' parent
    checks (the parse function checks the same for the slow path); `vector_check(values)`
    returns a mask of clean records that must take the slow path anyway (values: int64 arrays
    of the leading fields). `check_width=False` hands records of any field count to `parse`."""
    path = Path(path)
    started = time.monotonic()
    progress = progress or Progress(sys.stderr)
    task = progress.task(path.name)
    loader = _Loader(path, header, parse, Path(rejects_dir), id_column, seen_ids, check_width, record,
                     references, vector_check, one_line_records, task)
    try:
        column_list = ", ".join(columns)
        stream = _Stream(loader.chunks())
        try:
            cursor.copy_expert(f"COPY {table} ({column_list}) FROM STDIN (FORMAT csv, NULL 'null', FREEZE)",
                               stream, size=1 << 18)
        except Exception:
            if stream.error is not None:  # the filter's own error (a wrong header, say) says more
                raise stream.error from None
            raise
        finally:
            stream.stop()
        if stream.error is not None:
            raise stream.error
    finally:
        loader.close()
    report = loader.report
    report.seconds = time.monotonic() - started
    task.done(report.read, report.seconds)
    return report


def begin_bulk_load(cursor):
    """Settings for a load transaction. The loader creates its tables inside the transaction, so
    with wal_level=minimal COPY writes no WAL, and nothing needs to be durable before COMMIT."""
    cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
    cursor.execute("SET LOCAL max_parallel_maintenance_workers = 2")
    cursor.execute("SET LOCAL work_mem = '256MB'")


def run_timed(cursor, sql: str, what: str = None, progress=None):
    """One long statement after the COPYs (an index build, a derived table), with a line of
    progress saying how long it took."""
    progress = progress or Progress(sys.stderr)
    label = what or " ".join(sql.split())[:60]
    task = progress.task(label, counts_rows=False)
    started = time.monotonic()
    cursor.execute(sql)
    task.done(None, time.monotonic() - started)


def print_reports(service: str, reports, stream=sys.stdout):
    print(f"\n{service}: {'file':<28} {'read':>12} {'loaded':>12} {'repaired':>10} {'rejected':>10} {'seconds':>8}",
          file=stream)
    for r in reports:
        print(f"{'':<{len(service) + 2}}{r.file:<28} {r.read:>12,} {r.loaded:>12,} {r.repaired:>10,} "
              f"{r.rejected:>10,} {r.seconds:>8.1f}", file=stream)
        for reason, count in sorted(r.reasons.items()):
            print(f"{'':<{len(service) + 4}}{count:>10,}  {reason}", file=stream)
    stream.flush()
