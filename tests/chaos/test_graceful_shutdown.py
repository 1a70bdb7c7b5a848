"""Graceful shutdown (`make down` sends SIGTERM to each gunicorn master): requests in flight
finish with their real answers before the instance exits; nothing is cut off."""
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def test_sigterm_lets_in_flight_requests_finish(chaos_db, chaos_fleet):
    i = 1
    instance = chaos_fleet.instance(i)
    master = chaos_fleet.master(i)
    helpful = chaos_db.value("SELECT helpful FROM question WHERE id = 4")
    locker = chaos_db_lock(chaos_db, 4)
    try:
        with ThreadPoolExecutor(3) as pool:
            # Three writes in flight: each waits on the row lock inside the instance.
            in_flight = [pool.submit(requests.put, instance + "/qa/questions/4/helpful", timeout=15)
                         for _ in range(3)]
            wait_until_waiting(chaos_db, 3)
            master.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # The lock goes well within the 1.5 s statement timeout: the writes go on, after
            # the signal, and must get their real answers.
            locker.rollback()
            answers = [future.result() for future in in_flight]
            refused = connection_refused(instance)  # it stops accepting (within its 1 s tick)
            answered = time.monotonic()
            # The balancer holds idle keep-alive connections to the instance: they are closed,
            # not waited for until the graceful timeout (15 s here).
            master.wait(10)
            exit_seconds = time.monotonic() - answered
    finally:
        locker.close()
        if master.is_running():
            master.wait(20)
        chaos_fleet.pidfiles[i].unlink(missing_ok=True)
        chaos_fleet.start_instance(i)  # back for the other tests
    assert [a.status_code for a in answers] == [204, 204, 204]
    print(f"\ninstance exited {exit_seconds:.1f} s after its last answer")
    assert exit_seconds < 5
    assert chaos_db.value("SELECT helpful FROM question WHERE id = 4") == helpful + 3
    assert refused


def wait_until_waiting(chaos_db, count: int, seconds: float = 5):
    deadline = time.monotonic() + seconds
    while chaos_db.admin_value("SELECT count(*) FROM pg_stat_activity "
                               "WHERE application_name = 'qa' AND wait_event_type = 'Lock'") < count:
        assert time.monotonic() < deadline, "the requests never reached the lock"
        time.sleep(0.02)


def chaos_db_lock(chaos_db, question_id):
    import psycopg2

    conn = psycopg2.connect(chaos_db.owner_url)
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM question WHERE id = %s FOR UPDATE", (question_id,))
    return conn


def connection_refused(base: str, seconds: float = 3) -> bool:
    """New connections are refused within `seconds` (gunicorn's worker closes its listener at
    its next once-a-second check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/healthz", timeout=1)
        except requests.ConnectionError:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_of_an_instance_under_load_through_the_balancer(chaos_db, chaos_fleet, question_ids, load):
    """A rolling restart's step: one instance gets SIGTERM while the load runs through nginx.
    No request is left without an answer, no read fails, and every acknowledged write is in
    the database."""
    import collections

    i = 0
    questions_before = chaos_db.value("SELECT count(*) FROM question")
    with load(chaos_fleet.base, question_ids) as running:
        time.sleep(1.5)
        master = chaos_fleet.master(i)
        master.send_signal(signal.SIGTERM)
        master.wait(20)
        chaos_fleet.pidfiles[i].unlink(missing_ok=True)
        time.sleep(1.5)
        chaos_fleet.start_instance(i)
        time.sleep(1.5)
    outcomes = running.outcomes
    statuses = collections.Counter((o.method, o.status) for o in outcomes)
    print(f"\nSIGTERM under load: {len(outcomes)} requests, {dict(statuses)}")
    assert not [o for o in outcomes if o.status is None], "a request got no HTTP answer"
    assert all(o.status == 200 for o in outcomes if o.method == "GET")
    failed_writes = [o for o in outcomes if o.method != "GET" and o.status not in (201, 204)]
    assert all(o.status in (502, 503) for o in failed_writes), failed_writes[:5]
    created = [int(o.location.rsplit("/", 1)[1]) for o in outcomes if o.status == 201]
    assert chaos_db.value("SELECT count(*) FROM question WHERE id = ANY(%s)", (created,)) == len(created)
    added = chaos_db.value("SELECT count(*) FROM question") - questions_before
    assert len(created) <= added <= len(created) + sum(1 for o in failed_writes if o.method == "POST")
    assert not failed_writes, f"{len(failed_writes)} writes refused while an instance stopped"


def test_a_request_on_a_kept_alive_connection_during_shutdown_is_answered(chaos_fleet):
    """What the balancer does at the instant an instance gets SIGTERM: it sends its next request
    on a connection it keeps alive. The instance answers it (with `Connection: close`, so the
    balancer never reuses the connection) rather than closing the connection under it (nginx's
    "upstream prematurely closed connection": a 502 for a write, which is never retried). It
    closes a connection itself only after one idle spell longer than the balancer's upstream
    keepalive_timeout, and exits a few seconds after the signal."""
    import socket

    i = 1
    port = chaos_fleet.ports[i]
    master = chaos_fleet.master(i)
    request = b"GET /healthz HTTP/1.1\r\nHost: qa\r\n\r\n"
    try:
        kept, idle = socket.create_connection(("127.0.0.1", port)), socket.create_connection(("127.0.0.1", port))
        for connection in (kept, idle):
            connection.settimeout(10)
            connection.sendall(request)
            assert read_answer(connection).startswith(b"HTTP/1.1 200")
        master.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(1.5)  # the worker has seen the signal (its ~1 s tick) and stopped accepting
        assert connection_refused(chaos_fleet.instance(i))
        kept.sendall(request)
        late = read_answer(kept)
        assert kept.recv(1) == b""  # then it closes that connection
        idle_closed = wait_closed(idle)
        master.wait(10)
        exit_seconds = time.monotonic() - signalled
    finally:
        if master.is_running():
            master.wait(20)
        chaos_fleet.pidfiles[i].unlink(missing_ok=True)
        chaos_fleet.start_instance(i)
    print(f"\nidle connection closed {idle_closed - signalled:.1f} s and instance exited "
          f"{exit_seconds:.1f} s after SIGTERM")
    assert late.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close\r\n" in late
    assert idle_closed - signalled >= 2.5  # longer than nginx's 2 s upstream keepalive_timeout
    assert exit_seconds < 8


def read_answer(connection) -> bytes:
    """One answer with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"the connection closed instead of answering: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def wait_closed(connection) -> float:
    """When the instance closed an idle connection (time.monotonic())."""
    assert connection.recv(1) == b""
    return time.monotonic()


def test_a_write_refused_by_a_stopped_instance_goes_to_the_next_one(chaos_db, chaos_fleet):
    """A write that meets an instance no longer accepting (connection refused) never reached
    it: the balancer sends it to the next instance instead of answering 502. (A PUT goes to the
    instances as a POST so that nginx never resends one that was sent: infra/nginx/conf/routes.conf.)"""
    i = 0
    master = chaos_fleet.master(i)
    helpful = chaos_db.value("SELECT helpful FROM question WHERE id = 5")
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(15)
        # Round robin over two instances: one of the first two PUTs is sent to the stopped one.
        statuses = [requests.put(chaos_fleet.base + "/qa/questions/5/helpful", timeout=10).status_code
                    for _ in range(4)]
    finally:
        chaos_fleet.pidfiles[i].unlink(missing_ok=True)
        chaos_fleet.start_instance(i)
    refused = [line for line in (chaos_fleet.folder / "nginx" / "error.log").read_text().splitlines()
               if "Connection refused" in line and "/qa/questions/5/helpful" in line]
    assert refused, "no PUT met the stopped instance"
    assert statuses == [204] * 4
    assert chaos_db.value("SELECT helpful FROM question WHERE id = 5") == helpful + 4
