"""The cache listener: carries the services' write notifications to one balancer.

    python -m atelier_common.cache_listener --service qa --control unix:PREFIX/control/control.sock \
        [--daemon --pidfile FILE --log FILE]

The database URL comes from <SERVICE>_DATABASE_URL. One listener runs beside each balancer
(infra/nginx/README.md, "Caching"). Every write transaction of a service publishes what it
changed with `pg_notify('atelier_cache', 'product:12 question:34')` (the keys of its
X-Invalidates header: `notify_changed`), and a load's swap publishes `flush`; PostgreSQL
delivers a notification only once its transaction has committed. The listener:

1. connects and LISTENs, then opens a session on the balancer's control socket (POST /listen):
   from then on the balancer caches mutable views, under a new epoch;
2. sends each notification as a line (`b product:12 question:34`, `f` for a flush) as soon as
   it arrives, and every quarter second checks its database connection with a round trip and
   then pings (`p`); the balancer stops caching mutable views when the pings stop for its lease
   (2 s: a hung listener, a dead network) or at once when the session closes;
3. on any failure (the database restarted or unreachable, nginx restarted) closes the session
   first, so the balancer stops caching mutable views at once, then starts again at 1.

Nothing is lost in between: the balancer serves mutable views uncached until a listener vouches
again, and then starts a new epoch, so what was cached before can no longer be served.
"""
import argparse
import os
import select
import signal
import socket
import sys
import time

import psycopg2

from .config import database_url_variable

CHANNEL = "atelier_cache"
PING_SECONDS = 0.25
RETRY_SECONDS = 0.2


def notify_changed(product_sql: str, question_sql: str = "NULL") -> str:
    """The SQL call that publishes a write's changes, for a statement's FROM list (one call per
    row; implicitly LATERAL, so it may name the columns of what comes before it): the payload
    is the write's X-Invalidates value (atelier_common.http.changed), `product:<p>` and, when
    the question is not NULL, ` question:<q>`."""
    return (f"pg_notify('{CHANNEL}', concat_ws(' ', 'product:' || ({product_sql})::bigint, "
            f"'question:' || ({question_sql})::bigint))")


# What a load's swap publishes: the data was replaced, every cached view must go.
FLUSH_SQL = f"SELECT pg_notify('{CHANNEL}', 'flush')"


def say(message: str):
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} cache-listener: {message}", flush=True)


class SessionClosed(Exception):
    """The balancer closed the session (nginx stopped or reloaded)."""


class Session:
    """The listener's session on the balancer's control socket (infra/nginx/lua/atelier_cache.lua)."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(5)
            self.sock.connect(path)
            self.sock.sendall(b"POST /listen HTTP/1.1\r\nHost: control\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise SessionClosed("closed before answering")
                head += chunk
            if not head.startswith(b"HTTP/1.1 200"):
                raise SessionClosed(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def send(self, lines):
        self.sock.setblocking(True)
        self.sock.settimeout(5)
        self.sock.sendall("".join(line + "\n" for line in lines).encode())
        self.sock.setblocking(False)

    def read_answers(self):
        """Discard the balancer's "ok" lines; a closed session raises."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            if not chunk:
                raise SessionClosed("the balancer closed the session")

    def close(self):
        self.sock.close()


def line_for(payload: str):
    if payload == "flush":
        return "f"
    keys = [key for key in payload.split() if key.partition(":")[0].isalpha() and key.partition(":")[2].isdigit()]
    return "b " + " ".join(keys) if keys else None


def share_priority(cur):
    """When the listener runs ahead of other processes (a negative nice) and its database server
    is on this machine (the local stack), its backend gets the same priority: a notification
    crosses two processes, and on a saturated machine either could wait its turn for ~20 ms.
    Elsewhere (RDS, no privilege) nothing happens."""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    if mine >= 0:
        return
    cur.execute("SELECT pg_backend_pid()")
    try:
        os.setpriority(os.PRIO_PROCESS, cur.fetchone()[0], mine)
    except OSError:
        pass  # not ours to change, or not on this machine


def forward(conn, session: Session):
    lines = [line for line in (line_for(n.payload) for n in conn.notifies) if line]
    conn.notifies.clear()
    if lines:
        session.send(lines)


def serve(database_url: str, control: str):
    """One connection and one session, until either fails (raises)."""
    conn = psycopg2.connect(database_url, application_name="atelier-cache-listener", connect_timeout=3,
                            keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                            tcp_user_timeout=3000)
    session = None
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute(f"LISTEN {CHANNEL}")
        share_priority(cur)
        session = Session(control)  # the balancer vouches from here, under a new epoch
        say(f"listening on {CHANNEL}; session open on {control}")
        next_ping = 0.0
        while True:
            wait = max(0.0, next_ping - time.monotonic())
            readable, _, _ = select.select([conn, session.sock], [], [], wait)
            if conn in readable:
                conn.poll()
            if session.sock in readable:
                session.read_answers()
            forward(conn, session)
            if time.monotonic() >= next_ping:
                # A round trip proves the connection (and so the LISTEN) alive; if it hangs, the
                # pings stop and the balancer's lease runs out.
                cur.execute("SELECT 1")
                forward(conn, session)
                session.send(["p"])
                next_ping = time.monotonic() + PING_SECONDS
    finally:
        if session is not None:
            session.close()  # first: the balancer stops caching mutable views at once
        conn.close()


def run(database_url: str, control: str):
    while True:
        try:
            serve(database_url, control)
        except (psycopg2.Error, OSError, SessionClosed) as problem:
            say(f"{type(problem).__name__}: {str(problem).strip().splitlines()[0] if str(problem).strip() else ''}"
                f"; again in {RETRY_SECONDS} s")
        time.sleep(RETRY_SECONDS)


def daemonize(pidfile: str, log: str):
    """Detach (double fork), write the pid file, send output to the log."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    with open(pidfile, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, help="products, qa or reviews (its <SERVICE>_DATABASE_URL)")
    parser.add_argument("--control", required=True, help="the balancer's control socket: unix:/path/control.sock")
    parser.add_argument("--daemon", action="store_true", help="detach (then --pidfile and --log are required)")
    parser.add_argument("--pidfile")
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    variable = database_url_variable(args.service)
    database_url = os.environ.get(variable)
    if not database_url:
        parser.error(f"{variable} is not set")
    control = args.control[len("unix:"):] if args.control.startswith("unix:") else args.control
    if args.daemon:
        if not (args.pidfile and args.log):
            parser.error("--daemon needs --pidfile and --log")
        daemonize(args.pidfile, args.log)
    elif args.pidfile:
        with open(args.pidfile, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run(database_url, control)
    except (KeyboardInterrupt, SystemExit):
        say("stopped")
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main()
