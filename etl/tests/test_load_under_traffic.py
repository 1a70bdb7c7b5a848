"""`make load` while the services serve: no request fails before, during or after the swap, and
the new data is served once the load is done (real gunicorn, requests in flight throughout)."""
import os
import subprocess
import sys
import threading
import time
from contextlib import closing

import psycopg2
import requests

from atelier_etl.generate import generate
from atelier_etl.load import load_service

SERVICES = ("products", "qa", "reviews")


def _max_id(url, sql):
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_requests_in_flight_through_a_reload(database_factory, serve, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    generate(old, scale=0.001, seed=21, dirty=True, jobs=1, log=None)
    generate(new, scale=0.004, seed=22, dirty=True, jobs=1, log=None)
    urls = {service: database_factory(service) for service in SERVICES}
    for service in SERVICES:
        load_service(service, old, tmp_path / "rejects-old", urls[service].owner)
    old_products = _max_id(urls["products"], "SELECT max(id) FROM product")
    bases = {service: serve(service, urls[service]) for service in ("products", "reviews")}
    paths = [f"{bases['products']}/products/{pid}{suffix}" for pid in range(1, old_products, 37)
             for suffix in ("", "/styles", "/related")]
    paths += [f"{bases['reviews']}/reviews/meta?product_id={pid}" for pid in range(1, old_products, 37)]
    paths += [f"{bases['reviews']}/reviews?product_id={pid}&sort=newest" for pid in range(1, old_products, 37)]
    paths.append(f"{bases['products']}/products?count=20")

    failures, statuses, stop = [], [], threading.Event()

    def client(offset):
        with requests.Session() as session:
            index = offset
            while not stop.is_set():
                path = paths[index % len(paths)]
                index += 7
                try:
                    status = session.get(path, timeout=10).status_code
                except requests.RequestException as problem:
                    failures.append((path, repr(problem)))
                    continue
                statuses.append(status)
                if status not in (200, 404):  # 404: an id that one of the data sets rejected
                    failures.append((path, status))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    before = len(statuses)
    env = dict(os.environ, **{f"{s.upper()}_DATABASE_URL": u for s, u in urls.items()},
               **{f"{s.upper()}_OWNER_DATABASE_URL": u.owner for s, u in urls.items()})
    subprocess.run([sys.executable, "-m", "atelier_etl.load", "--data", str(new), "--rejects",
                    str(tmp_path / "rejects-new")], env=env, check=True, capture_output=True)
    during = len(statuses) - before
    time.sleep(1.0)  # and after the swap
    stop.set()
    for thread in threads:
        thread.join()

    assert failures == []
    assert during > 50 and len(statuses) - before - during > 10
    newest = _max_id(urls["products"], "SELECT max(id) FROM product")
    assert newest > old_products  # the new data set is larger, and it is what is served now
    assert requests.get(f"{bases['products']}/products/{newest}", timeout=10).status_code == 200
