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

from atelier_bench import wrk
from atelier_bench.endpoint import Endpoint
from atelier_bench.service import last_tenth, load_definitions, start_worker, wrk_run
from atelier_common import fleet
from atelier_common.localpg import SERVICES, database_url

MODES = {"off": "0", "on": "1"}



def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default="products", choices=SERVICES)
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
        subprocess.run([sys.executable, "-m", "atelier_bench.micro"], check=True)
        return
    wrk.require()

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
            workers.append(start_worker(args.service, dsn, args.port + offset, workdir, METRICS=switch))
            bases[mode] = f"http://127.0.0.1:{args.port + offset}"
        processes = {mode: psutil.Process(fleet.pid_alive(worker)).children()[0]
                     for mode, worker in zip(MODES, workers)}
        runs = {(e.name, mode): [] for e in (trivial, real) for mode in MODES}
        for e in (trivial, real):  # warm both workers and the database's cache
            for mode in MODES:
                wrk_run(bases[mode], e, ids.get(e.name, (1, 1)), 2, args.connections, 0)
        for round_number in range(args.rounds):
            order = list(MODES) if round_number % 2 == 0 else list(reversed(MODES))
            for e in (trivial, real):
                for mode in order:
                    cpu_before = cpu_seconds(processes[mode])
                    result = wrk_run(bases[mode], e, ids.get(e.name, (1, 1)), args.seconds,
                                     args.connections, round_number + 1)
                    result["cpu_us"] = (cpu_seconds(processes[mode]) - cpu_before) / (result["rps"] * args.seconds) * 1e6
                    runs[(e.name, mode)].append(result)
                print(f"  round {round_number + 1}: {e.name}: off {runs[(e.name, 'off')][-1]['rps']:.0f}, "
                      f"on {runs[(e.name, 'on')][-1]['rps']:.0f} req/s", file=sys.stderr, flush=True)
    finally:
        fleet.stop_pids(workers)

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
