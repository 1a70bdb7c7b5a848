"""Graceful shutdown (`make down` sends SIGTERM to each gunicorn master): requests in flight
finish with their real answers before the instance exits; nothing is cut off."""
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from atelier_common import fleet as fleet_tools


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
            time.sleep(0.5)
            master.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            refused = connection_refused(instance)  # no new work once the signal arrived
            locker.rollback()  # the writes can go on now
            answers = [future.result() for future in in_flight]
    finally:
        locker.close()
        master.wait(20)
        chaos_fleet.pidfiles[i].unlink(missing_ok=True)
        chaos_fleet.start_instance(i)  # back for the other tests
    assert [a.status_code for a in answers] == [204, 204, 204]
    assert chaos_db.value("SELECT helpful FROM question WHERE id = 4") == helpful + 3
    assert refused


def chaos_db_lock(chaos_db, question_id):
    import psycopg2

    conn = psycopg2.connect(chaos_db.owner_url)
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM question WHERE id = %s FOR UPDATE", (question_id,))
    return conn


def connection_refused(base: str) -> bool:
    try:
        requests.get(base + "/healthz", timeout=2)
    except requests.ConnectionError:
        return True
    return False
