"""The machinery every service's loader shares: read a dirty CSV file as it comes, turn each
record into a row for PostgreSQL's `COPY … FROM STDIN` (text format), set aside what cannot be
loaded, and report.

A loader supplies, per file, a `parse(fields, repair)` function: it returns the row as a tuple
of COPY text values (`copy_text()` for text, digit strings for numbers, None for NULL), calls
`repair(reason)` when it fixed something that has one correct reading, or raises
`Reject(reason)` when the record cannot be loaded. Everything else is done here:

- the UTF-8 byte-order mark is dropped and the header must be exactly the expected one;
- records are numbered by the physical line they start on (quoted fields may span lines),
  so a rejects file points at the line an operator opens in an editor;
- a record with the wrong number of fields is rejected, and so is a repeated id;
- every rejected record goes to `<rejects>/<file>.rejects.csv` as `line,reason,record`;
- rows stream into COPY in large chunks while the file is read: Python parses on one core
  while PostgreSQL ingests on the other;
- progress goes to stderr every few seconds.
"""
import csv
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

csv.field_size_limit(1 << 24)

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """A text value in COPY's text format."""
    # Most values need no escape; `in` scans are ~20x cheaper than translate() on long text.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


class Reject(Exception):
    """The record cannot be loaded; the message is the reason written to the rejects file."""


class IdSet:
    """A set of positive integer ids as a bitmap: 19 million ids in a few megabytes."""

    def __init__(self):
        self._bits = bytearray(1 << 20)

    def add(self, ident: int):
        byte = ident >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (ident & 7)

    def __contains__(self, ident: int) -> bool:
        byte = ident >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (ident & 7)))

    def flags(self) -> bytes:
        """One byte per id from 0 up, 1 where present: `flags[ident]` is the cheapest membership
        test for a hot loop (an IndexError means absent). Take it once the set is complete."""
        return b"".join(map(_BYTE_FLAGS.__getitem__, self._bits))


_BYTE_FLAGS = [bytes((value >> bit) & 1 for bit in range(8)) for value in range(256)]


@dataclass
class FileReport:
    file: str
    read: int = 0
    loaded: int = 0
    repaired: int = 0
    rejected: int = 0
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)


def parse_id(text: str, name: str) -> int:
    """A positive integer id, or Reject naming the column."""
    if text.isdigit() and text.isascii() and 0 < len(text) <= 10:
        value = int(text)
        if 0 < value <= 2147483647:
            return value
    raise Reject(f"{name} is not a valid id: {text!r}")


def parse_reference(text: str, column: str, parents: IdSet, parent: str) -> str:
    """A reference to a parent row that must have loaded; returned as COPY text.

    A value that is no id is a "bad value"; an id whose parent did not load is an "orphan"."""
    if text.isdigit() and text.isascii() and len(text) <= 10:
        value = int(text)
        if 0 < value <= 2147483647:
            if value not in parents:
                raise Reject(f"orphan: {column} {value} is not a loaded {parent}")
            return text
    raise Reject(f"bad value: {column} is not a valid id: {text!r}")


class _Progress:
    def __init__(self, label: str, size: int, stream=sys.stderr, every: float = 3.0):
        self.label, self.size, self.stream, self.every = label, size, stream, every
        self.start = self.last = time.monotonic()

    def tick(self, records: int, position: int):
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            share = f"{100 * position / self.size:5.1f}%" if self.size else ""
            print(f"  {self.label}: {records:,} records {share} {now - self.start:6.1f} s",
                  file=self.stream, flush=True)


class _RowStream:
    """A file-like object for copy_expert: each read() returns the next chunk of COPY lines."""

    def __init__(self, rows):
        self._rows = rows

    def read(self, size=-1):
        lines = []
        for row in self._rows:
            try:
                lines.append("\t".join(row))
            except TypeError:  # a None among the values: NULL (the slower join only then)
                lines.append("\t".join(r"\N" if value is None else value for value in row))
            if len(lines) >= 20000:
                break
        return "\n".join(lines) + "\n" if lines else ""

    readline = read


def load_csv(cursor, path: Path, *, header: str, table: str, columns: tuple, parse,
             rejects_dir: Path, id_column: int = 0, seen_ids: IdSet = None,
             progress_stream=sys.stderr, check_width: bool = True) -> FileReport:
    """COPY the records of one CSV file into `table`; returns what happened to them.

    `id_column` is the position of the record's own id (checked for repeats, and remembered in
    `seen_ids` so that child files can check their references); None when there is no id.
    `check_width=False` hands records of any field count to `parse`, for files whose dirt
    changes the count in ways that have their own outcome (a missing column to repair, an
    unclosed quote that swallowed the next line); the id column is still checked first."""
    path = Path(path)
    report = FileReport(path.name)
    expected = header.split(",")
    width = len(expected)
    seen = seen_ids if seen_ids is not None else IdSet()
    rejects_dir = Path(rejects_dir)
    rejects_dir.mkdir(parents=True, exist_ok=True)
    rejects_path = rejects_dir / f"{path.stem}.rejects.csv"
    started = time.monotonic()
    progress = _Progress(f"{path.name}", path.stat().st_size, progress_stream)

    with open(path, encoding="utf-8-sig", errors="replace", newline="") as source, \
            open(rejects_path, "w", encoding="utf-8", newline="") as rejects_file:
        reader = csv.reader(source)
        rejects = csv.writer(rejects_file)
        rejects.writerow(["line", "reason", "record"])
        found = next(reader, None)
        if found != expected:
            raise ValueError(f"{path}: header is {found!r}, expected {header!r}")

        def reject(line, reason, fields):
            report.rejected += 1
            kind = reason.split(":")[0]
            report.reasons[kind] = report.reasons.get(kind, 0) + 1
            rejects.writerow([line, reason, ",".join(fields)])

        def repair(reason):
            report.repaired += 1
            report.reasons["repaired: " + reason] = report.reasons.get("repaired: " + reason, 0) + 1

        def rows():
            # Runs once per record (tens of millions): counters live in locals and the id
            # checks of parse_id and IdSet are inlined; the outcome is the same as theirs.
            read = loaded = 0
            bits = seen._bits
            line = reader.line_num + 1
            for fields in reader:
                read += 1
                if read & 0xFFFF == 0:
                    progress.tick(read, source.buffer.tell())
                try:
                    if len(fields) != width and (check_width or not fields):
                        raise Reject(f"wrong field count: expected {width} fields, found {len(fields)}")
                    if id_column is not None:
                        text = fields[id_column]
                        if not (text.isdigit() and text.isascii() and 0 < len(text) <= 10
                                and 0 < (ident := int(text)) <= 2147483647):
                            ident = parse_id(text, expected[id_column])  # raises the Reject
                        byte = ident >> 3
                        if byte < len(bits) and bits[byte] & (1 << (ident & 7)):
                            raise Reject(f"duplicate id: {ident} appeared on an earlier line")
                    row = parse(fields, repair)
                except Reject as problem:
                    reject(line, str(problem), fields)
                else:
                    if id_column is not None:
                        if byte < len(bits):
                            bits[byte] |= 1 << (ident & 7)
                        else:
                            seen.add(ident)
                    loaded += 1
                    yield row
                line = reader.line_num + 1
            report.read, report.loaded = read, loaded

        column_list = ", ".join(columns)
        cursor.copy_expert(f"COPY {table} ({column_list}) FROM STDIN", _RowStream(rows()), size=1 << 20)
    report.seconds = time.monotonic() - started
    if report.rejected == 0:
        os.unlink(rejects_path)
    return report


def begin_bulk_load(cursor):
    """Settings for a load transaction. The loader creates its tables inside the transaction, so
    with wal_level=minimal COPY writes no WAL, and nothing needs to be durable before COMMIT."""
    cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
    cursor.execute("SET LOCAL max_parallel_maintenance_workers = 2")
    cursor.execute("SET LOCAL work_mem = '256MB'")


def run_timed(cursor, sql: str, what: str = None, stream=sys.stderr):
    """One long statement after the COPYs (an index build, a derived table), with a line of
    progress saying how long it took."""
    started = time.monotonic()
    cursor.execute(sql)
    label = what or " ".join(sql.split())[:72]
    print(f"  {label}: {time.monotonic() - started:.1f} s", file=stream, flush=True)


def print_reports(service: str, reports, stream=sys.stdout):
    print(f"\n{service}: {'file':<28} {'read':>12} {'loaded':>12} {'repaired':>10} {'rejected':>10} {'seconds':>8}",
          file=stream)
    for r in reports:
        print(f"{'':<{len(service) + 2}}{r.file:<28} {r.read:>12,} {r.loaded:>12,} {r.repaired:>10,} "
              f"{r.rejected:>10,} {r.seconds:>8.1f}", file=stream)
        for reason, count in sorted(r.reasons.items()):
            print(f"{'':<{len(service) + 4}}{count:>10,}  {reason}", file=stream)
    stream.flush()
