"""What one recording of the metrics costs: prometheus-client's own calls (multiprocess mode: mmap
files, a lock, under gevent as in a worker) against the worker's plain Python tally; then the
whole app in this process, metrics off and on. `make bench-metrics` with --micro runs it in a
process of its own (`python -m atelier_bench.micro`): it patches the process for gevent.
"""
import os
import tempfile
import time

N = 200000


def cost(call, n=N):
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6


def recordings():
    from atelier_common.metrics import IN_FLIGHT, LATENCY, POOL_WAIT, REQUESTS, WorkerTally
    tally = WorkerTally()
    rows = [
        ("prometheus-client: requests counter .labels(route, status).inc()",
         cost(lambda: REQUESTS.labels("product", "200").inc())),
        ("prometheus-client: latency histogram .labels(route).observe()",
         cost(lambda: LATENCY.labels("product").observe(0.003))),
        ("prometheus-client: pool wait histogram .observe()", cost(lambda: POOL_WAIT.observe(0.0))),
        ("prometheus-client: in-flight gauge .inc() + .dec()", cost(lambda: (IN_FLIGHT.inc(), IN_FLIGHT.dec()))),
        ("WorkerTally: request(route, status, seconds)", cost(lambda: tally.request("product", "200", 0.003))),
        ("WorkerTally: pool_waited(seconds)", cost(lambda: tally.pool_waited(0.0))),
    ]
    print("| one recording | us |")
    print("|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")


def whole_app():
    """/healthz through Flask and every middleware (no server, no network), metrics off and on,
    interleaved; the best of 40 rounds of 5000 calls each."""
    from werkzeug.test import EnvironBuilder
    os.environ.setdefault("PRODUCTS_DATABASE_URL", "postgresql://unused@127.0.0.1:1/unused")
    from products import create_app
    apps = {"off": create_app({"metrics_enabled": False}), "on": create_app({"metrics_enabled": True})}
    environ = EnvironBuilder(path="/healthz").get_environ()

    def ignore(status, headers, exc_info=None):
        pass

    def calls(app, n=5000):
        started = time.perf_counter()
        for _ in range(n):
            for _chunk in app(dict(environ), ignore):
                pass
        return (time.perf_counter() - started) / n * 1e6

    best = {mode: min(calls(app) for _ in range(3)) for mode, app in apps.items()}
    for _ in range(40):
        for mode, app in apps.items():
            best[mode] = min(best[mode], calls(app))
    print()
    print("| /healthz through the whole app, in process | us |")
    print("|---|---:|")
    print(f"| METRICS=0 | {best['off']:.2f} |")
    print(f"| METRICS=1 | {best['on']:.2f} |")
    print(f"| cost of the metrics | {best['on'] - best['off']:.2f} |")


if __name__ == "__main__":
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="atelier-micro-")
    from gevent import monkey
    monkey.patch_all()
    recordings()
    whole_app()
