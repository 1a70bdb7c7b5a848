"""Progress of a load: one line per file (or long statement), updated in place on a terminal
(rows, rows/s, percent, ETA), plain lines now and then when the output is not a terminal.

The three services load in processes of their own; each sends its events through a queue
(`QueueProgress`) to the parent, which draws them all (`Progress`)."""
import sys
import time

PLAIN_EVERY = 10.0  # seconds between plain progress lines of one task
LIVE_EVERY = 0.5    # seconds between events of one task sent for live drawing


def _line(label: str, rows, position, size, seconds: float, done: bool) -> str:
    if rows is None:  # a statement: only its time is known
        return f"{label:<44} {'done in' if done else 'running'} {seconds:7.1f} s"
    rate = rows / seconds if seconds > 0 else 0.0
    text = f"{label:<44} {rows:>12,} rows {rate:>11,.0f} rows/s"
    if done:
        return text + f"  done in {seconds:6.1f} s"
    if size:
        share = position / size
        eta = seconds * (1 - share) / share if share > 0 else float("nan")
        text += f" {100 * share:5.1f}%  ETA {eta:5.0f} s"
    return text


class Progress:
    """Draws the tasks of one or more loads on `stream`."""

    def __init__(self, stream=sys.stderr, live: bool = None):
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.lines = {}   # running task key -> text, in order of first appearance
        self.drawn = 0    # lines drawn by the last live redraw
        self.last_plain = {}

    def task(self, label: str, counts_rows: bool = True):
        return _Task(self, label, counts_rows)

    def event(self, key, label, rows, position, size, seconds, done):
        text = _line(label, rows, position, size, seconds, done)
        if self.live:  # running tasks redrawn in place below the finished ones
            if done:
                self.lines.pop(key, None)
                self.message(text)
            else:
                self.lines[key] = text
                self._redraw()
        else:
            now = time.monotonic()
            if done or now - self.last_plain.setdefault(key, now) >= PLAIN_EVERY:
                self.last_plain[key] = now
                print(text, file=self.stream, flush=True)

    def _redraw(self):
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}F")
        for text in self.lines.values():
            out.append("\x1b[2K" + text + "\n")
        if len(self.lines) < self.drawn:  # a task finished: clear the lines below
            out.append("\x1b[J")
        self.drawn = len(self.lines)
        self.stream.write("".join(out))
        self.stream.flush()

    def message(self, text: str):
        """A line above the live block (or a plain line)."""
        if self.live and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
        print(text, file=self.stream, flush=True)
        if self.live and self.lines:
            self._redraw()


class QueueProgress:
    """Progress of a child process, sent as events to the parent's Progress."""

    def __init__(self, events, prefix: str):
        self.events, self.prefix = events, prefix

    def task(self, label: str, counts_rows: bool = True):
        return _Task(self, f"{self.prefix} {label}", counts_rows)

    def event(self, *args):
        self.events.put(args)


class _Task:
    _numbers = iter(range(1 << 62))

    def __init__(self, sink, label: str, counts_rows: bool):
        self.sink, self.label = sink, label
        self.key = (label, next(self._numbers))
        self.started = time.monotonic()
        self.last = 0.0
        sink.event(self.key, label, 0 if counts_rows else None, 0, 0, 0.0, False)

    def update(self, rows: int, position: int, size: int):
        now = time.monotonic()
        if now - self.last >= LIVE_EVERY:
            self.last = now
            self.sink.event(self.key, self.label, rows, position, size, now - self.started, False)

    def done(self, rows, seconds: float):
        self.sink.event(self.key, self.label, rows, 0, 0, seconds, True)
