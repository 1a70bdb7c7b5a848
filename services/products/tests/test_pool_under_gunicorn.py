"""Under real gunicorn + gevent: a request stuck on a lock holds the pool's only connection; the
next request must get a quick 503 with Retry-After, not hang behind it."""
import threading
import time
from contextlib import closing

import psycopg2
import requests


def wait_until(check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_exhausted_pool_answers_503_quickly_while_a_request_waits_on_a_lock(serve, database_url):
    with closing(psycopg2.connect(database_url)) as setup, setup, setup.cursor() as cur:
        cur.execute("INSERT INTO product VALUES (1, 'n', 's', 'd', 'c', 1)")
    base = serve("products", database_url, DB_POOL_MAX=1, DB_POOL_WAIT_SECONDS=0.5)

    locker = psycopg2.connect(database_url)
    watcher = psycopg2.connect(database_url)
    watcher.autocommit = True
    stuck = {}
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE product_document IN ACCESS EXCLUSIVE MODE")

        def blocked_request():
            stuck["response"] = requests.get(base + "/products/1", timeout=30)

        thread = threading.Thread(target=blocked_request)
        thread.start()

        def service_waits_on_the_lock():
            with watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name = 'products' AND wait_event_type = 'Lock'")
                return cur.fetchone()[0] == 1

        wait_until(service_waits_on_the_lock)
        started = time.monotonic()
        response = requests.get(base + "/readyz", timeout=5)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"message": "service temporarily unavailable, retry later"}
        assert 0.4 < elapsed < 1.5, elapsed  # waited for the pool (0.5 s), then gave up
        assert thread.is_alive()  # the first request is still waiting on the lock
    finally:
        locker.rollback()  # release the lock
        locker.close()
        watcher.close()
    thread.join(10)
    assert stuck["response"].status_code == 200
    assert stuck["response"].json()["id"] == 1
    assert requests.get(base + "/readyz", timeout=5).status_code == 200
