"""Prometheus metrics at `/metrics`: requests by route and status, latency per route, requests in
flight, the pool's waits and timeouts, database errors by kind.

- Route labels are Flask endpoint names without the blueprint (`product_styles`), never the raw
  URL (one series per id would swamp Prometheus); requests no route matched are `unmatched`,
  CORS preflights (answered before Flask) `preflight`.
- Several gunicorn workers: prometheus-client's multiprocess mode. Each worker writes its values
  to files in PROMETHEUS_MULTIPROC_DIR (gunicorn_conf.py makes a fresh one per gunicorn master
  and forgets dead workers' in-flight gauges); a scrape, whichever worker answers it, sums them.
- Cheap: a request only bumps plain Python numbers of its worker (`WorkerTally`, well under
  1 us); they reach the multiprocess files in a batch every METRICS_FLUSH_SECONDS, before a
  scrape (the answering worker's own) and when the worker exits. prometheus-client's own
  `.labels().inc()` and `.observe()` cost 2-6 us each through its mmap files and lock, 9-18 us
  a request (docs/metrics.md: the whole of the metrics costs a worker 1-2% of its throughput).
  The price: a scrape may miss up to one flush interval of the other workers' requests; they
  show at the next one.
- METRICS=0 turns all of it off (no middleware, no /metrics, no pool timing).
- Private: with METRICS_LISTEN=host:port the instance listens there too, and only a request
  that arrived on that listener gets the metrics; on the public listener every spelling of the
  path (`/metrics/`, `//metrics`, `/%6detrics`, `/metrics%2f`: all read as /metrics) is 404.
"""
import os
import threading
import time
from bisect import bisect_left
from time import perf_counter

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from prometheus_client.multiprocess import MultiProcessCollector

# Seconds. Reads take 1-10 ms; the pool gives up after DB_POOL_WAIT_SECONDS (2 s by default).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_WAIT_BUCKETS = (0.0, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0)
UNMATCHED = "unmatched"
PREFLIGHT = "preflight"
ROUTE_KEY = "atelier.route"  # where the route name waits in the WSGI environ

REQUESTS = Counter("atelier_http_requests", "HTTP requests answered, by route and status",
                   ["route", "status"])
LATENCY = Histogram("atelier_http_request_duration_seconds",
                    "Time from the request reaching the app to its response, by route",
                    ["route"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge("atelier_http_requests_in_flight", "Requests being answered",
                  multiprocess_mode="livesum")
POOL_WAIT = Histogram("atelier_db_pool_wait_seconds",
                      "Time a request waited for a free database connection (0 when one was free)",
                      buckets=POOL_WAIT_BUCKETS)
POOL_TIMEOUTS = Counter("atelier_db_pool_timeouts",
                        "Requests that found no free database connection within the wait (503)")
DB_ERRORS = Counter("atelier_db_errors", "Database errors that reached a response, by kind",
                    ["kind"])


class _Buckets:
    """A histogram's per-bucket counts and sum, in plain Python, since the last flush."""
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds):
        self.bounds = bounds  # ends with +Inf
        self.counts = [0] * len(bounds)
        self.total = 0.0

    def observe(self, value: float):
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value
        self.total += value

    def add_to(self, histogram_child):
        # prometheus-client keeps one value per bucket (not cumulative) and the sum; it has no
        # public way to add n observations at once. Pinned version; the tests read the result.
        for value, count in zip(histogram_child._buckets, self.counts):
            if count:
                value.inc(count)
        histogram_child._sum.inc(self.total)


class WorkerTally:
    """What one worker has seen since its last flush. Only ever touched by that worker's
    greenlets, which never yield inside these methods, so nothing needs a lock."""

    def __init__(self):
        self.enabled = False
        self.flush_seconds = 1.0
        self.in_flight = 0
        self._latency_bounds = tuple(LATENCY_BUCKETS) + (float("inf"),)
        self._pool_bounds = tuple(POOL_WAIT_BUCKETS) + (float("inf"),)
        self._flush_lock = threading.Lock()
        self._flusher = None
        self._reset()

    def _reset(self):
        self.requests = {}   # (route, status) -> count
        self.latency = {}    # route -> _Buckets
        self.pool_wait = _Buckets(self._pool_bounds)
        self.pool_timeouts = 0
        self.db_errors = {}  # kind -> count

    def request(self, route: str, status_line: str, seconds: float):
        key = (route, status_line)  # the status is cut out of "200 OK" at the flush, not here
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        latency = self.latency.get(route)
        if latency is None:
            latency = self.latency[route] = _Buckets(self._latency_bounds)
        latency.counts[bisect_left(latency.bounds, seconds)] += 1  # _Buckets.observe, inlined
        latency.total += seconds

    def pool_waited(self, seconds: float):
        self.pool_wait.observe(seconds)

    def pool_timed_out(self):
        self.pool_timeouts += 1

    def database_error(self, kind: str):
        self.db_errors[kind] = self.db_errors.get(kind, 0) + 1

    def flush(self):
        """Add what was seen since the last flush to the (multiprocess) metrics."""
        with self._flush_lock:
            requests, latency, pool_wait = self.requests, self.latency, self.pool_wait
            pool_timeouts, db_errors = self.pool_timeouts, self.db_errors
            self._reset()
            for (route, status_line), count in requests.items():
                REQUESTS.labels(route, status_line[:3]).inc(count)
            for route, buckets in latency.items():
                buckets.add_to(LATENCY.labels(route))
            if any(pool_wait.counts):
                pool_wait.add_to(POOL_WAIT)
            if pool_timeouts:
                POOL_TIMEOUTS.inc(pool_timeouts)
            for kind, count in db_errors.items():
                DB_ERRORS.labels(kind).inc(count)
            IN_FLIGHT.set(self.in_flight)

    def start_flushing(self):
        """In a worker (gunicorn's post_worker_init): flush every `flush_seconds` in the
        background. A thread, which gevent's worker has made a greenlet."""
        if not self.enabled or self._flusher is not None:
            return

        def flush_forever():
            while True:
                time.sleep(self.flush_seconds)
                self.flush()

        self._flusher = threading.Thread(target=flush_forever, name="metrics-flush", daemon=True)
        self._flusher.start()


TALLY = WorkerTally()  # one per process: the metrics themselves are process-wide too


class MetricsMiddleware:
    """Counts and times every request (outermost, so 404s, preflights and errors too)."""

    def __init__(self, wsgi_app, tally: WorkerTally):
        self.wsgi_app = wsgi_app
        self.tally = tally

    def __call__(self, environ, start_response):
        tally = self.tally
        tally.in_flight += 1
        started = perf_counter()
        status_line = "500 Internal Server Error"  # unless the app answers

        def start_and_note_status(status, headers, exc_info=None):
            nonlocal status_line
            status_line = status
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start_and_note_status)
        finally:
            tally.in_flight -= 1
            tally.request(environ.get(ROUTE_KEY) or unrouted(environ), status_line, perf_counter() - started)


def route_noting(request_class):
    """Flask's request class, made to leave the matched route in the WSGI environ, where the
    middleware finds it once Flask has let go of the request. (A before_request hook did the same
    for 2 us a request, through Flask's hook machinery; this costs about 0.5 us.)"""

    class RouteNotingRequest(request_class):
        _url_rule = None

        @property
        def url_rule(self):
            return self._url_rule

        @url_rule.setter
        def url_rule(self, rule):  # Flask sets it once, after routing
            self._url_rule = rule
            if rule is not None:
                self.environ[ROUTE_KEY] = rule.endpoint.rpartition(".")[2]

    return RouteNotingRequest


def unrouted(environ) -> str:
    """The label of a request Flask matched to no route."""
    return PREFLIGHT if environ.get("REQUEST_METHOD") == "OPTIONS" else UNMATCHED


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    port = current_app.config["METRICS_PORT"]
    if port is not None and request.environ.get("SERVER_PORT") != port:
        abort(404)  # the contract's 404, as for any unknown path
    TALLY.flush()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:  # a single process (the Flask test client, `flask run`)
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def register_metrics(app):
    """Serve /metrics and count every request; call it last in the factory (outermost)."""
    settings = app.config["SETTINGS"]
    if not settings.metrics_enabled:
        return
    TALLY.enabled = True
    TALLY.flush_seconds = settings.metrics_flush_seconds
    app.config["METRICS_PORT"] = settings.metrics_listen.rpartition(":")[2] or None
    app.register_blueprint(bp)
    app.request_class = route_noting(app.request_class)
    app.wsgi_app = MetricsMiddleware(app.wsgi_app, TALLY)
