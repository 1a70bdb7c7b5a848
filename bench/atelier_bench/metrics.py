"""What /metrics costs: one gunicorn gevent worker with metrics (METRICS=1) against one without
(METRICS=0), under wrk, on a real endpoint and on /healthz. `make bench-metrics [SERVICE=products]`.

Both workers run side by side on the same database; rounds alternate which goes first (so a
drift of the machine does not favour either), and the table shows the medians of the rounds.
On a machine shared with other work, req/s swing by tens of percent from round to round, so the
table also shows what is steadier: the worker's own CPU time per request (user + system, from
/proc), and its inverse, the requests one fully busy worker serves per CPU-second, which is the
per-worker throughput the metrics must not cut by more than 5%. It prints a table; it is not
a test. Wrap it in `flock /tmp/atelier-bench.lock` on a shared machine.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from atelier_bench import Endpoint, last_tenth, load_definitions, start_worker, wrk_run
from atelier_common.localpg import database_url

MODES = {"off": "0", "on": "1"}

# --micro: what one recording costs, prometheus-client's own calls (multiprocess mode: mmap
# files, a lock, under gevent as in a worker) against the worker's plain Python tally.
MICRO = r"""
import os, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="atelier-micro-")
from gevent import monkey; monkey.patch_all()
from atelier_common.metrics import IN_FLIGHT, LATENCY, POOL_WAIT, REQUESTS, WorkerTally
tally = WorkerTally()
N = 200000
def cost(call):
    started = time.perf_counter()
    for _ in range(N):
        call()
    return (time.perf_counter() - started) / N * 1e6
rows = [
    ("prometheus-client: requests counter .labels(route, status).inc()", cost(lambda: REQUESTS.labels("product", "200").inc())),
    ("prometheus-client: latency histogram .labels(route).observe()", cost(lambda: LATENCY.labels("product").observe(0.003))),
    ("prometheus-client: pool wait histogram .observe()", cost(lambda: POOL_WAIT.observe(0.0))),
    ("prometheus-client: in-flight gauge .inc() + .dec()", cost(lambda: (IN_FLIGHT.inc(), IN_FLIGHT.dec()))),
    ("WorkerTally: request(route, status, seconds)", cost(lambda: tally.request("product", "200", 0.003))),
    ("WorkerTally: pool_waited(seconds)", cost(lambda: tally.pool_waited(0.0))),
]
print("| one recording | us |")
print("|---|---:|")
for name, us in rows:
    print(f"| {name} | {us:.2f} |")

# The whole app in this process (no server, no network): /healthz through Flask and every
# middleware, metrics off and on, interleaved; the best of 40 rounds of 5000 calls each.
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
        for chunk in app(dict(environ), ignore):
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
"""


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default="products", choices=("products", "qa", "reviews"))
    parser.add_argument("--endpoint", default=None,
                        help="name of the service's bench endpoint (default: its second, the first by id)")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--port", type=int, default=int(os.environ.get("ATELIER_PORT_BASE", "3001")) + 190,
                        help="the worker without metrics; the one with them on the next port")
    parser.add_argument("--micro", action="store_true", help="only the cost of one recording, no wrk")
    args = parser.parse_args(argv)
    if args.micro:
        subprocess.run([sys.executable, "-c", MICRO], check=True)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    definitions = load_definitions(args.service)
    endpoints = definitions.ENDPOINTS
    real = next((e for e in endpoints if e.name == args.endpoint), None) if args.endpoint else endpoints[1]
    if real is None:
        raise SystemExit(f"no endpoint {args.endpoint!r}; one of: {', '.join(e.name for e in endpoints)}")
    dsn = database_url(args.service)
    ids = {real.name: last_tenth(dsn, real.id_range or definitions.ID_RANGE)}
    trivial = Endpoint("GET /healthz", "/healthz")
    workdir = Path(tempfile.mkdtemp(prefix="atelier-bench-metrics-"))
    started = time.strftime("%Y-%m-%d %H:%M")

    workers, bases = [], {}
    try:
        for offset, (mode, switch) in enumerate(MODES.items()):
            os.environ["METRICS"] = switch
            workers.append(start_worker(args.service, dsn, args.port + offset, workdir / f"{mode}.log"))
            bases[mode] = f"http://127.0.0.1:{args.port + offset}"
        processes = {mode: psutil.Process(worker.pid).children()[0] for mode, worker in zip(MODES, workers)}
        runs = {(e.name, mode): [] for e in (trivial, real) for mode in MODES}
        for e in (trivial, real):  # warm both workers and the database's cache
            for mode in MODES:
                wrk_run(bases[mode], e, ids.get(e.name, (1, 1)), 2, args.connections, workdir, 0)
        for round_number in range(args.rounds):
            order = list(MODES) if round_number % 2 == 0 else list(reversed(MODES))
            for e in (trivial, real):
                for mode in order:
                    cpu_before = cpu_seconds(processes[mode])
                    result = wrk_run(bases[mode], e, ids.get(e.name, (1, 1)), args.seconds,
                                     args.connections, workdir, round_number + 1)
                    result["cpu_us"] = (cpu_seconds(processes[mode]) - cpu_before) / (result["rps"] * args.seconds) * 1e6
                    runs[(e.name, mode)].append(result)
                print(f"  round {round_number + 1}: {e.name}: off {runs[(e.name, 'off')][-1]['rps']:.0f}, "
                      f"on {runs[(e.name, 'on')][-1]['rps']:.0f} req/s", file=sys.stderr, flush=True)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)

    def median(name, mode, key):
        return statistics.median(r[key] for r in runs[(name, mode)])

    print(f"\n{args.service}: {started}, one gunicorn gevent worker each, METRICS=0 vs METRICS=1, "
          f"wrk -t1 -c{args.connections} {args.seconds}s x {args.rounds} rounds (medians)\n")
    print("| endpoint | CPU us/req off | CPU us/req on | req per CPU-s off | on | change | "
          "req/s off | req/s on | change | p50 ms off | p50 ms on | p99 ms off | p99 ms on | non-2xx on |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in (trivial, real):
        off, on = median(e.name, "off", "rps"), median(e.name, "on", "rps")
        cpu_off, cpu_on = median(e.name, "off", "cpu_us"), median(e.name, "on", "cpu_us")
        print(f"| {e.name} | {cpu_off:.0f} | {cpu_on:.0f} | {1e6 / cpu_off:.0f} | {1e6 / cpu_on:.0f} | "
              f"{cpu_off / cpu_on - 1:+.1%} | {off:.0f} | {on:.0f} | {on / off - 1:+.1%} | "
              f"{median(e.name, 'off', 'p50'):.2f} | {median(e.name, 'on', 'p50'):.2f} | "
              f"{median(e.name, 'off', 'p99'):.2f} | {median(e.name, 'on', 'p99'):.2f} | "
              f"{sum(r['non2xx'] for r in runs[(e.name, 'on')])} |")
    print("\nper round, off / on: req/s; CPU us per request")
    for e in (trivial, real):
        pairs = zip(runs[(e.name, 'off')], runs[(e.name, 'on')])
        print(f"  {e.name}: " + ", ".join(f"{a['rps']:.0f}/{b['rps']:.0f}; {a['cpu_us']:.0f}/{b['cpu_us']:.0f}"
                                          for a, b in pairs))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
