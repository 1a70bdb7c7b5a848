"""/metrics under real gunicorn (several workers, prometheus-client's multiprocess mode) on a
real database: exact counts across workers and worker restarts, route labels, errors."""
import glob
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import psycopg2
import pytest
import requests
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from atelier_bench.routes import all_routes
from atelier_common.metrics import LATENCY_BUCKETS, WorkerTally, _Buckets

# The products routes (the OpenAPI operationIds, tests/test_routes.py), plus the operational ones.
PRODUCTS_ROUTES = {r.name for r in all_routes() if r.service == "products"} | {
    "healthz", "readyz", "metrics", "unmatched", "preflight"}


@pytest.fixture(scope="module")
def database_url(database_factory):
    url = database_factory("products")
    with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute("INSERT INTO product VALUES (1, 'n', 's', 'd', 'c', 1)")
    return url


def scrape(base: str) -> dict:
    """{(sample name, frozenset of label items): value}"""
    response = requests.get(base + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(response.text)


def parse(text: str) -> dict:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(check, seconds=10.0):
    """The last value of check() once it is truthy (workers flush every METRICS_FLUSH_SECONDS)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def requests_per_worker(folder) -> dict:
    """Each worker's own count of `product` 200s, read from its counter file."""
    counts = {}
    for path in glob.glob(os.path.join(folder, "counter_*.db")):
        pid = int(path.rsplit("_", 1)[1][:-3])
        for family in MultiProcessCollector.merge([path]):
            for sample in family.samples:
                if sample.name == "atelier_http_requests_total" and sample.labels == {
                        "route": "product", "status": "200"}:
                    counts[pid] = sample.value
    return counts


def test_counts_every_request_of_both_workers_exactly(serve, database_url, tmp_path):
    folder = tmp_path / "metrics"
    base = serve("products", database_url, WEB_CONCURRENCY=2, METRICS_FLUSH_SECONDS=0.2,
                 PROMETHEUS_MULTIPROC_DIR=folder)
    sent = 0
    with ThreadPoolExecutor(16) as pool:
        # New connections, many at once, until both workers have answered some (each has its file).
        while sent < 2000:
            statuses = list(pool.map(lambda _: requests.get(base + "/products/1", timeout=10).status_code,
                                     range(100)))
            assert statuses == [200] * 100
            sent += 100
            if eventually(lambda: len(requests_per_worker(folder)) >= 2, 1):
                break
    for path in ("/products/999", "/products/abc/styles", "/no/such/thing", "/products/1/"):
        requests.get(base + path, timeout=5)
    requests.options(base + "/products", timeout=5)

    expected = {("product", "200"): sent + 1, ("product", "404"): 1, ("product_styles", "422"): 1,
                ("unmatched", "404"): 1, ("preflight", "204"): 1}

    def counted():
        samples = scrape(base)
        return {key: value(samples, "atelier_http_requests_total", route=key[0], status=key[1])
                for key in expected}, samples

    counts, samples = eventually(lambda: (lambda c: c if c[0] == expected else None)(counted())) or counted()
    assert counts == expected
    assert sum(requests_per_worker(folder).values()) == sent + 1
    assert len(requests_per_worker(folder)) == 2  # both workers served, both were counted
    assert value(samples, "atelier_http_request_duration_seconds_count", route="product") == sent + 2
    assert value(samples, "atelier_http_request_duration_seconds_bucket", route="product", le="+Inf") == sent + 2
    assert 0 < value(samples, "atelier_http_request_duration_seconds_sum", route="product") < (sent + 2) * 1.0
    assert value(samples, "atelier_db_pool_wait_seconds_count") == sent + 2  # one connection each
    routes = {dict(labels)["route"] for (name, labels) in samples if name == "atelier_http_requests_total"}
    assert routes <= PRODUCTS_ROUTES, routes  # endpoint names, never a raw URL


def test_counts_survive_worker_restarts(serve, database_url, tmp_path):
    """A worker that exits adds what it counted (no periodic flush here); its in-flight gauge goes."""
    folder = tmp_path / "metrics"
    base = serve("products", database_url, WEB_CONCURRENCY=1, MAX_REQUESTS=20, MAX_REQUESTS_JITTER=0,
                 METRICS_FLUSH_SECONDS=3600, PROMETHEUS_MULTIPROC_DIR=folder)
    served = 0  # (not /healthz: serve() polls it, and may give up on one that is answered later)

    def workers_started():
        return len(glob.glob(os.path.join(folder, "counter_*.db")))  # one file each

    deadline = time.monotonic() + 30
    while workers_started() < 3 and time.monotonic() < deadline:  # two restarts at least
        served += requests.get(base + "/products/1", timeout=5).status_code == 200
        time.sleep(0.02)
    assert workers_started() >= 3
    samples = scrape(base)
    assert value(samples, "atelier_http_requests_total", route="product", status="200") == served
    assert len(glob.glob(os.path.join(folder, "gauge_livesum_*.db"))) == 1  # the live worker's only


def test_pool_waits_timeouts_in_flight_and_503s(serve, database_url):
    base = serve("products", database_url, DB_POOL_MAX=1, DB_POOL_WAIT_SECONDS=0.5)
    locker = psycopg2.connect(database_url)
    watcher = psycopg2.connect(database_url)
    watcher.autocommit = True
    answers = {}

    def get(name, path):
        answers[name] = requests.get(base + path, timeout=30).status_code

    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE product_document IN ACCESS EXCLUSIVE MODE")
        holder = threading.Thread(target=get, args=("holder", "/products/1"))
        holder.start()

        def waits_on_the_lock():
            with watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name = 'products' AND wait_event_type = 'Lock'")
                return cur.fetchone()[0] == 1

        assert eventually(waits_on_the_lock)
        assert requests.get(base + "/readyz", timeout=5).status_code == 503  # gave up after 0.5 s
        samples = scrape(base)
        assert value(samples, "atelier_http_requests_in_flight") == 2  # the holder and this scrape
        assert value(samples, "atelier_db_pool_timeouts_total") == 1
        assert value(samples, "atelier_http_requests_total", route="readyz", status="503") == 1
        waiter = threading.Thread(target=get, args=("waiter", "/products/1/styles"))
        waiter.start()
        time.sleep(0.3)  # the waiter waits that long for the holder's connection
    finally:
        locker.rollback()
        locker.close()
        watcher.close()
    holder.join(10)
    waiter.join(10)
    assert answers == {"holder": 200, "waiter": 200}
    samples = scrape(base)
    assert value(samples, "atelier_http_requests_in_flight") == 1
    assert value(samples, "atelier_db_pool_wait_seconds_count") == 2  # holder and waiter
    waited_long = (value(samples, "atelier_db_pool_wait_seconds_count")
                   - value(samples, "atelier_db_pool_wait_seconds_bucket", le="0.1"))
    assert waited_long == 1 and value(samples, "atelier_db_pool_wait_seconds_sum") >= 0.25


def test_database_errors_are_counted_by_kind(serve, database_url, postgres):
    base = serve("products", database_url, DB_STATEMENT_TIMEOUT_MS=200)
    locker = psycopg2.connect(database_url)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE product_document IN ACCESS EXCLUSIVE MODE")
        assert requests.get(base + "/products/1", timeout=5).status_code == 503
    finally:
        locker.rollback()
        locker.close()
    samples = scrape(base)
    assert value(samples, "atelier_db_errors_total", kind="QueryCanceled") == 1

    unreachable = f"postgresql://nobody:wrong@127.0.0.1:{postgres.port}/no_such_database"
    base = serve("products", unreachable)
    assert requests.get(base + "/readyz", timeout=5).status_code == 503
    samples = scrape(base)
    assert value(samples, "atelier_db_errors_total", kind="OperationalError") == 1
    assert value(samples, "atelier_http_requests_total", route="readyz", status="503") == 1


def test_metrics_off(serve, database_url):
    base = serve("products", database_url, METRICS=0)
    assert requests.get(base + "/products/1", timeout=5).status_code == 200
    assert requests.get(base + "/metrics", timeout=5).status_code == 404


def test_a_flushed_tally_equals_prometheus_clients_own_histogram():
    """The batched buckets land where .observe() puts each value, bounds included (le is <=)."""
    values = [0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.3, 9.99, 10.0, 42.0] + list(LATENCY_BUCKETS)
    registry = CollectorRegistry()
    direct = Histogram("direct", "", buckets=LATENCY_BUCKETS, registry=registry)
    batched = Histogram("batched", "", buckets=LATENCY_BUCKETS, registry=registry)
    for v in values:
        direct.observe(v)
    tally = _Buckets(WorkerTally()._latency_bounds)
    for v in values:
        tally.observe(v)
    tally.add_to(batched)
    samples = parse(generate_latest(registry).decode())
    for (name, labels), count in samples.items():
        if name.startswith("direct_") and not name.endswith("_created"):
            assert samples[(name.replace("direct_", "batched_"), labels)] == pytest.approx(count), (name, labels)
