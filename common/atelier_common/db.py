"""The connection pool and the few ways services talk to PostgreSQL.

- One pool per worker process, opened lazily after fork (a pool inherited from the gunicorn
  master would share sockets between processes).
- psycopg2's pools raise at once when exhausted; `FairSlots` in front makes a request wait up
  to `pool_wait_seconds` for a free connection, first come first served, then fail with
  PoolTimeout (-> 503).
- Connections run in autocommit (no BEGIN/COMMIT round trips for reads); writes open an
  explicit transaction with `transaction()`.
- Statements are prepared once per connection and then EXECUTEd: PostgreSQL plans them once.
- Faults (docs/reliability.md): a connection found broken (the server restarted, failed over)
  also drops every idle connection of the pool, which would be just as dead: the next requests
  open fresh ones instead of each failing once. Opening a connection is bounded in time
  (`connect_timeout_seconds`: psycogreen's asynchronous connect ignores libpq's own), and TCP
  keepalives notice a server that vanished without closing its sockets.
"""
import os
import re
import time
from collections import deque
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import psycopg2_pool
from flask import current_app
from gevent import Timeout
from gevent.event import AsyncResult

from .metrics import TALLY


class PoolTimeout(Exception):
    """No connection became free within the configured wait."""


class ConnectTimeout(psycopg2.OperationalError):
    """The database did not accept a connection in time (answered like any database outage)."""


def make_green():
    """Let psycopg2 yield to other greenlets while it waits on the network.

    Called in each gevent worker before its first connection. Not in the loader: COPY does not
    work with a wait callback installed."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


class _Connection(psycopg2.extensions.connection):
    """A connection that remembers which statements it has prepared."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.autocommit = True  # sends nothing; saves a BEGIN/COMMIT round trip per read
        self.prepared = set()


class Statement:
    """A named SQL statement with $1, $2 … placeholders, prepared lazily on each connection.

    Parameters are still passed separately (psycopg2 quotes them), never formatted into the SQL."""

    def __init__(self, name: str, sql: str):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"bad statement name {name!r}")
        self.name = name
        self.sql = sql
        count = max((int(n) for n in re.findall(r"\$(\d+)", sql)), default=0)
        args = ", ".join(["%s"] * count)
        self._execute_sql = f"EXECUTE {name} ({args})" if count else f"EXECUTE {name}"

    def run(self, cursor, params=()):
        connection = cursor.connection
        if self.name not in connection.prepared:
            cursor.execute(f"PREPARE {self.name} AS {self.sql}")
            connection.prepared.add(self.name)
        try:
            cursor.execute(self._execute_sql, params)
        except psycopg2.Error as error:
            if error.pgcode not in _STALE_PREPARED:
                raise
            # A reload (make load swaps in new tables) or a schema change left this connection's
            # prepared statement unusable: prepare it again. Outside a transaction the failed
            # EXECUTE changed nothing, so it runs again once; inside one the transaction is
            # already aborted, so the error goes up, and the next use prepares afresh.
            connection.prepared.discard(self.name)
            if connection.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                if error.pgcode != _NO_SUCH_PREPARED:
                    connection.stale = getattr(connection, "stale", set()) | {self.name}
                raise
            cursor.execute(f"DEALLOCATE {self.name}" if error.pgcode != _NO_SUCH_PREPARED else "SELECT 1")
            cursor.execute(f"PREPARE {self.name} AS {self.sql}")
            connection.prepared.add(self.name)
            cursor.execute(self._execute_sql, params)
        return cursor


class FairSlots:
    """A counting semaphore that serves waiters in arrival order.

    gevent's Semaphore lets a greenlet that calls acquire() while a slot is free take it, even
    when others wait: release() only schedules the wake-up of the first waiter, and any request
    that arrives before the hub runs it barges in. With 25 requests in flight on a worker and 10
    connections, a waiter could lose that race again and again (a 100-200 ms p99 under load).
    Here release() hands its slot straight to the oldest waiter, and nobody takes a free slot
    while anyone waits."""

    def __init__(self, size: int):
        self.free = size
        self.waiters = deque()

    def try_acquire(self) -> bool:
        """A free slot at once, when nobody waits (the usual case: no clock, no greenlet switch)."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    def acquire(self, timeout: float) -> bool:
        if self.try_acquire():
            return True
        handed = AsyncResult()
        self.waiters.append(handed)
        try:
            handed.get(timeout=timeout)
            return True
        except Timeout:
            if handed.ready():  # the slot arrived as the timer fired: it is ours
                return True
            self.waiters.remove(handed)
            return False

    def release(self):
        if self.waiters:
            self.waiters.popleft().set(True)  # the slot passes on without becoming free
        else:
            self.free += 1


_NO_SUCH_PREPARED = "26000"  # invalid_sql_statement_name: prepared statement does not exist
# feature_not_supported: "cached plan must not change result type" (a table's columns changed)
_STALE_PREPARED = frozenset((_NO_SUCH_PREPARED, "0A000"))


class Pool:
    def __init__(self, dsn: str, maxconn: int, wait_seconds: float, statement_timeout_ms: int,
                 application_name: str = "atelier", connect_timeout_seconds: float = 2.0, tally=None):
        self.pid = os.getpid()
        self.wait_seconds = wait_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.tally = tally  # metrics.WorkerTally, or None when metrics are off
        self._slots = FairSlots(maxconn)
        self._pool = psycopg2_pool.ConnectionPool(
            minconn=0, maxconn=maxconn, idle_timeout=600, dsn=dsn,
            connection_factory=_Connection, application_name=application_name,
            options=f"-c statement_timeout={int(statement_timeout_ms)}",
            connect_timeout=max(1, round(connect_timeout_seconds)),
            keepalives=1, keepalives_idle=10, keepalives_interval=2, keepalives_count=3,
        )

    def acquire(self):
        """A connection, waiting at most `wait_seconds` for one to be free (else PoolTimeout)."""
        if self._slots.try_acquire():  # the usual case: no clock needed
            waited = 0.0
        else:
            started = time.perf_counter()
            if not self._slots.acquire(self.wait_seconds):
                if self.tally is not None:
                    self.tally.pool_timed_out()
                raise PoolTimeout()
            waited = time.perf_counter() - started
        if self.tally is not None:
            self.tally.pool_waited(waited)
        try:
            if self._pool.idle_connections:  # the usual case: no connect, no timer to arm
                return self._pool.getconn()
            with Timeout(self.connect_timeout_seconds, ConnectTimeout):
                return self._pool.getconn()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn):
        try:
            if conn.closed:  # broken: the others, idle since before the fault, are dead too
                self._pool.clear()
            self._pool.putconn(conn)
        finally:
            self._slots.release()

    @contextmanager
    def connection(self):
        conn = self.acquire()
        try:
            yield conn
        finally:
            self.release(conn)

    def close(self):
        self._pool.clear()


def register_db(app):
    """Attach the settings' pool factory to the app; the pool itself opens in the worker."""
    app.extensions["atelier_pool"] = None


def get_pool() -> Pool:
    app = current_app
    pool = app.extensions.get("atelier_pool")
    if pool is None or pool.pid != os.getpid():
        settings = app.config["SETTINGS"]
        pool = Pool(settings.database_url, settings.pool_max, settings.pool_wait_seconds,
                    settings.statement_timeout_ms, application_name=settings.service,
                    connect_timeout_seconds=settings.connect_timeout_seconds,
                    tally=TALLY if settings.metrics_enabled else None)
        app.extensions["atelier_pool"] = pool
    return pool


@contextmanager
def cursor():
    """A cursor on an autocommit connection: each statement is its own transaction."""
    with get_pool().connection() as conn:
        with conn.cursor() as cur:
            yield cur


@contextmanager
def transaction():
    """A cursor inside BEGIN … COMMIT; any exception rolls everything back."""
    with get_pool().connection() as conn:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                yield cur
            except BaseException:
                if not conn.closed:
                    cur.execute("ROLLBACK")
                    for name in getattr(conn, "stale", ()):  # see Statement.run
                        cur.execute(f"DEALLOCATE {name}")
                    conn.stale = set()
                raise
            cur.execute("COMMIT")


def fetch_row(statement: Statement, params=()):
    """The first row as a tuple, or None when there is no row."""
    with cursor() as cur:
        return statement.run(cur, params).fetchone()


def fetch_value(statement: Statement, params=()):
    """The first column of the first row, or None when there is no row.

    The hot path of every read endpoint, so written out without context managers."""
    pool = get_pool()
    conn = pool.acquire()
    try:
        cur = conn.cursor()
        row = statement.run(cur, params).fetchone()
        cur.close()
    finally:
        pool.release(conn)
    return None if row is None else row[0]
