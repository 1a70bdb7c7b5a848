"""`make load DATA=dir [SERVICE=name]`: replace the services' data with the CSV files in a folder.

Each service's loader lives in its own package (`<service>/loader.py`, next to its schema); this
command runs them, the three services at the same time (separate databases, separate processes:
their Python and their PostgreSQL backends share the machine's cores), and draws their progress.

Connections: the loader connects as the owner role, `<SERVICE>_OWNER_DATABASE_URL`, defaulting
to the service's own `<SERVICE>_DATABASE_URL` (or the local server's owner role); when the two
roles differ, the service's role is granted what it needs on the new tables before the swap.
The loader lifts `statement_timeout` (and the idle-transaction timeout) for its own session:
a server-wide cap (RDS's parameter group sets 30 s for the services) would cancel a long COPY.
Each load runs in one transaction that ends by swapping the new schema in (atelier_etl.swap):
the services answer from the old data until then, and a load killed at any point changes
nothing. After a service's swap, `atelier_etl.hooks.data_replaced(service)` runs (caches).

Rejected records go to `<rejects>/<service>/`, one file per input file (default rejects folder:
DATA/rejects). `--bench` prints a table of every file and step with its time, and the total
against the 3-minute target.
"""
import argparse
import importlib
import multiprocessing
import os
import queue
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

import psycopg2
import psycopg2.extensions

import psutil

from atelier_common.localpg import SERVICES, LocalPostgres, database_url, owner_database_url
from atelier_etl import hooks
from atelier_etl.copyload import print_reports
from atelier_etl.progress import Progress, QueueProgress
from atelier_etl.swap import drop_old

TARGET_SECONDS = 180


def owner_url(service: str) -> str:
    """<SERVICE>_OWNER_DATABASE_URL, else <SERVICE>_DATABASE_URL, else the local owner role."""
    return owner_database_url(service)


def _role(url: str) -> str:
    return psycopg2.extensions.parse_dsn(url).get("user")


def lift_timeouts(conn):
    """A server may cap every statement (RDS's parameter group: statement_timeout = 30 s for the
    services' sake) and every idle transaction; one COPY of a large file runs longer than that,
    and the load is one transaction. The loader lifts both for its own session only."""
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
        cur.execute("SET idle_in_transaction_session_timeout = 0")


def load_service(service: str, data: Path, rejects: Path, url: str, runtime_role: str = None, progress=None):
    """Load one service's files in one transaction and swap them in; returns the file reports."""
    loader = importlib.import_module(f"{service}.loader")
    missing = [name for name in loader.FILES if not (data / name).exists()]
    if missing:
        raise SystemExit(f"{service}: {data} lacks {', '.join(missing)}")
    conn = psycopg2.connect(url, application_name="atelier-load")
    try:
        lift_timeouts(conn)
        reports = loader.load(conn, data, rejects / service, progress=progress, runtime_role=runtime_role)
        conn.commit()
        drop_old(conn)
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    hooks.data_replaced(service)
    return reports


def _die_with_parent():
    """A load killed (even with SIGKILL) takes its service processes with it (Linux)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(service, data, rejects, url, runtime_role, events, results):
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    try:
        started = time.monotonic()
        reports = load_service(service, data, rejects, url, runtime_role, QueueProgress(events, service))
        results.put((service, reports, time.monotonic() - started, None))
    except BaseException as problem:  # reported by the parent
        results.put((service, None, 0.0, f"{type(problem).__name__}: {problem}\n{traceback.format_exc()}"))


def load_all(services, data: Path, rejects: Path, stream=sys.stderr):
    """Run the services' loads side by side; returns ({service: (reports, seconds)}, steps, wall
    seconds), steps being (label, rows, seconds) of every file and statement."""
    started = time.monotonic()
    progress = Progress(stream)
    steps = []
    plan = {}
    for service in services:  # in the parent: the local server starts (and roles appear) once
        url = owner_url(service)
        runtime = _role(database_url(service))
        plan[service] = (url, runtime if runtime != _role(url) else None)
    context = multiprocessing.get_context("fork")
    events, results = context.Queue(), context.Queue()
    children = [context.Process(target=_child, args=(service, data, rejects, *plan[service], events, results),
                                name=f"load-{service}") for service in services]
    for child in children:
        child.start()
    outcome, failures = {}, []
    try:
        while len(outcome) + len(failures) < len(children):
            try:
                while True:
                    key, label, rows, position, size, seconds, done = events.get(timeout=0.2)
                    progress.event(key, label, rows, position, size, seconds, done)
                    if done:
                        steps.append((label, rows, seconds))
            except queue.Empty:
                pass
            try:
                service, reports, seconds, error = results.get_nowait()
            except queue.Empty:
                if not any(child.is_alive() for child in children) and results.empty():
                    failures.append("a load process died")
                continue
            if error:
                failures.append(f"{service}: {error}")
            else:
                outcome[service] = (reports, seconds)
                progress.message(f"{service}: loaded and swapped in after {seconds:.1f} s")
    finally:
        for child in children:
            child.join()
    while True:  # the last events
        try:
            key, label, rows, position, size, seconds, done = events.get_nowait()
        except queue.Empty:
            break
        progress.event(key, label, rows, position, size, seconds, done)
        if done:
            steps.append((label, rows, seconds))
    if failures:
        raise SystemExit("load failed (the databases keep their previous data):\n" + "\n".join(failures))
    return outcome, steps, time.monotonic() - started


class CpuMeter:
    """CPU seconds spent by this process and its children (the loaders' Python) and by the local
    PostgreSQL server (its backends and parallel workers, living or exited), between start() and
    stop(): on a shared machine, the figures that do not depend on what else runs."""

    def start(self):
        self.python = self._python()
        self.postgres = self._postgres()
        self.load = os.getloadavg()[0]
        return self

    def stop(self):
        self.python = self._python() - self.python
        self.postgres = None if self.postgres is None else self._postgres() - self.postgres
        self.load = (self.load, os.getloadavg()[0])
        return self

    @staticmethod
    def _python():
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @staticmethod
    def _postgres():
        try:
            pid = int((LocalPostgres().pgdata / "postmaster.pid").read_text().split()[0])
            server = psutil.Process(pid)
            times = server.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in server.children():
                try:
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
                except psutil.Error:
                    pass
            return total
        except (OSError, ValueError, psutil.Error):
            return None


def print_bench(outcome, steps, wall: float, cpu: CpuMeter = None, stream=sys.stdout):
    print(f"\n{'step (services in parallel)':<56} {'rows':>12} {'seconds':>8} {'rows/s':>11}", file=stream)
    for label, rows, seconds in steps:
        rate = f"{rows / seconds:>11,.0f}" if rows and seconds else ""
        print(f"{label:<56} {'' if rows is None else f'{rows:,}':>12} {seconds:>8.1f} {rate}", file=stream)
    for service, (_, seconds) in outcome.items():
        print(f"{service + ' (load, indexes, swap)':<56} {'':>12} {seconds:>8.1f}", file=stream)
    rows = sum(r.loaded for reports, _ in outcome.values() for r in reports)
    read = sum(r.read for reports, _ in outcome.values() for r in reports)
    slow = sum(r.slow for reports, _ in outcome.values() for r in reports)
    verdict = "met" if wall <= TARGET_SECONDS else "MISSED"
    print(f"{'total wall time':<56} {rows:>12,} {wall:>8.1f} {rows / wall:>11,.0f}", file=stream)
    print(f"target: {TARGET_SECONDS} s for the whole load -> {verdict} ({wall:.1f} s)", file=stream)
    print(f"records read by Python (the slow path): {slow:,} of {read:,} ({100 * slow / max(read, 1):.2f} %)",
          file=stream)
    if cpu is not None:
        postgres = "unknown (not the local server)" if cpu.postgres is None else f"{cpu.postgres:.1f} s"
        print(f"CPU: loaders (Python) {cpu.python:.1f} s, PostgreSQL {postgres}, on {os.cpu_count()} cores; "
              f"load average {cpu.load[0]:.1f} before, {cpu.load[1]:.1f} after", file=stream)
    stream.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding the CSV files")
    parser.add_argument("--service", choices=SERVICES, help="one service (default: all three)")
    parser.add_argument("--rejects", type=Path, help="where rejects files go (default: DATA/rejects)")
    parser.add_argument("--bench", action="store_true", help="print every file's and step's time and the target")
    args = parser.parse_args(argv)
    rejects = args.rejects or args.data / "rejects"
    services = [args.service] if args.service else list(SERVICES)
    cpu = CpuMeter().start()
    outcome, steps, wall = load_all(services, args.data, rejects)
    cpu.stop()
    for service in services:
        reports, seconds = outcome[service]
        print_reports(service, reports)
        print(f"{service}: loaded in {seconds:.1f} s; rejects in {rejects / service}")
    if args.bench:
        print_bench(outcome, steps, wall, cpu)
    print(f"\ntotal: {wall:.1f} s for {', '.join(services)}")


if __name__ == "__main__":
    main()
