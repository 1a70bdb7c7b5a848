"""The benchmark harness every service uses: `make bench SERVICE=products` (or
`.venv/bin/python -m atelier_bench.service products`). It prints tables; it is not a test.

A service describes its endpoints in `services/<svc>/bench.py`:

    from atelier_bench import Endpoint
    ID_RANGE = "SELECT min(product_id), max(product_id) FROM question"
    ENDPOINTS = [Endpoint("GET /qa/questions", path="/qa/questions?product_id={id}",
                          statement=queries.QUESTIONS, params=(":id", "5", "0")), ...]

For each endpoint, ids are drawn uniformly from the last 10% of its id range. The harness
measures, in one run:
1. the query alone: pgbench, one client, the endpoint's statement prepared, --calls calls,
   p50/p99 from pgbench's per-transaction log;
2. one gunicorn gevent worker under wrk (--connections, default 50): req/s, p50, p99, and
   non-2xx answers, next to the trivial /healthz of the same worker; each endpoint --rounds
   times, interleaved with /healthz, medians reported, ratio = endpoint req/s / healthz req/s.
"""
import argparse
import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from atelier_bench import wrk
from atelier_bench.endpoint import Endpoint
from atelier_bench.stats import percentile
from atelier_common import fleet
from atelier_common.localpg import POSTGRES_BIN_PATH, ROOT, SERVICES, database_url, wait_for


def last_tenth(dsn: str, sql: str):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        low, high = cur.fetchone()
    conn.close()
    if low is None:
        raise SystemExit(f"no ids from {sql!r}: is the database loaded?")
    return low + (high - low) * 9 // 10, high


def pgbench_latency(dsn: str, endpoint: Endpoint, ids, calls: int, workdir: Path):
    """p50 and p99 in ms of the endpoint's statement, prepared, one client."""
    params = [":id" if p == ":id" else str(p) for p in endpoint.params]
    stray = re.findall(r"(?<!:):[A-Za-z_]\w*", endpoint.statement.sql)
    if stray:
        # pgbench takes any :name for one of its variables, even inside a string literal.
        raise SystemExit(f"{endpoint.name}: the statement contains {', '.join(stray)}, which pgbench "
                         "would read as variables; keep colons out of the SQL text (e.g. wrap the "
                         "format in an SQL function)")
    sql = re.sub(r"\$(\d+)", lambda m: params[int(m.group(1)) - 1], endpoint.statement.sql)
    script = workdir / "script.sql"
    script.write_text(f"\\set id random({ids[0]}, {ids[1]})\n{' '.join(sql.split())};\n")
    for old in workdir.glob("pgbench_log*"):
        old.unlink()
    subprocess.run([str(POSTGRES_BIN_PATH / "pgbench"), "-n", "-M", "prepared", "-c", "1", "-j", "1",
                    "-t", str(calls), "-f", str(script), "-l", "--log-prefix", str(workdir / "pgbench_log"),
                    dsn], check=True, capture_output=True, text=True)
    latencies = []
    for log in workdir.glob("pgbench_log*"):
        latencies += [int(line.split()[2]) / 1000 for line in log.read_text().splitlines()]
    return percentile(latencies, 0.5), percentile(latencies, 0.99)


def wrk_run(base: str, endpoint: Endpoint, ids, seconds: int, connections: int, seed: int):
    return wrk.endpoint(base, endpoint.path, ids, seconds, connections, seed, endpoint.method, endpoint.body)


def start_worker(service: str, dsn: str, port: int, workdir: Path, **env) -> Path:
    """One gunicorn gevent worker of the service on 127.0.0.1:port (the instance `make up`
    starts, WEB_CONCURRENCY=1); returns its pid file (atelier_common.fleet.stop_pid stops it)."""
    pidfile = workdir / f"{service}-{port}.pid"
    fleet.start_instance(service, port, dsn, pidfile, workdir / f"{service}-{port}.log",
                         WEB_CONCURRENCY=1, **env)
    wait_for(lambda: fleet.ready(f"http://127.0.0.1:{port}/readyz"), 30, "benchmark worker")
    return pidfile


def load_definitions(service: str):
    path = ROOT / "services" / service / "bench.py"
    spec = importlib.util.spec_from_file_location(f"{service}_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark one service: pgbench per query, wrk per endpoint.")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--calls", type=int, default=10000, help="pgbench calls per query")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per endpoint (median reported)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--only", help="regular expression: benchmark only the endpoints it matches")
    args = parser.parse_args(argv)
    wrk.require()

    definitions = load_definitions(args.service)
    endpoints = [e for e in definitions.ENDPOINTS if not args.only or re.search(args.only, e.name)]
    dsn = database_url(args.service)
    ranges = {e.name: last_tenth(dsn, e.id_range or definitions.ID_RANGE) for e in endpoints}
    workdir = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M")

    query = {}
    for endpoint in endpoints:
        if endpoint.statement is not None:
            query[endpoint.name] = pgbench_latency(dsn, endpoint, ranges[endpoint.name], args.calls, workdir)
            print(f"  query {endpoint.name}: p50 {query[endpoint.name][0]:.3f} ms, "
                  f"p99 {query[endpoint.name][1]:.3f} ms", file=sys.stderr, flush=True)

    trivial = Endpoint("GET /healthz (trivial)", "/healthz")
    worker = start_worker(args.service, dsn, args.port, workdir)
    base = f"http://127.0.0.1:{args.port}"
    runs = {e.name: [] for e in [trivial, *endpoints]}
    try:
        for endpoint in [trivial, *endpoints]:  # warm caches and the worker
            wrk_run(base, endpoint, ranges.get(endpoint.name, (1, 1)), 2, args.connections, 0)
        for round_number in range(args.rounds):
            for endpoint in endpoints:
                for e in (trivial, endpoint):
                    result = wrk_run(base, e, ranges.get(e.name, (1, 1)), args.seconds, args.connections,
                                     round_number + 1)
                    runs[e.name].append(result)
                print(f"  round {round_number + 1}: {endpoint.name}: {runs[endpoint.name][-1]['rps']:.0f} req/s",
                      file=sys.stderr, flush=True)
    finally:
        fleet.stop_pid(worker)

    def median(name, key):
        return statistics.median(r[key] for r in runs[name])

    def fmt(value):
        return "" if value is None else f"{value:.3f}"

    trivial_rps = median(trivial.name, "rps")
    print(f"\n{args.service}: {started}, one gunicorn gevent worker, wrk -t1 -c{args.connections} "
          f"{args.seconds}s x {args.rounds} rounds (medians); pgbench -M prepared -c1, {args.calls} calls\n")
    print("| endpoint | query p50 ms | query p99 ms | req/s | vs trivial | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for e in [trivial, *endpoints]:
        q50, q99 = query.get(e.name, (None, None))
        print(f"| {e.name} | {fmt(q50)} | {fmt(q99)} | {median(e.name, 'rps'):.0f} | "
              f"{median(e.name, 'rps') / trivial_rps:.0%} | {median(e.name, 'p50'):.1f} | "
              f"{median(e.name, 'p99'):.1f} | {sum(r['non2xx'] for r in runs[e.name])} |")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
