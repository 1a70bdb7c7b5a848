"""The per-endpoint tail through the balancers: `make bench-tail` (a benchmark, not a test).

The tail target: with the cache off (`make up CACHE=0`), each read endpoint, one after
another, under `wrk -t1 -c50` with ids drawn uniformly from the last 10% of their range, through
the service's balancer. Prints req/s, p50, p99 and non-2xx per endpoint (median of --rounds
runs), plus the balancer's /healthz (it always reaches an instance) as the trivial reference.

    flock /tmp/atelier-bench.lock .venv/bin/python -m atelier_bench.tail [--seconds 8] [--rounds 1]

Base URLs come from `tools/stack.py status --json` (or --products/--qa/--reviews).
"""
import argparse
import statistics
import sys
import time

from atelier_bench import stack, wrk
from atelier_bench.service import last_tenth
from atelier_common.localpg import SERVICES, database_url

# (route name: the OpenAPI operationId (tests/test_routes.py), service, path with {id}, SQL giving the id range)
PRODUCT_IDS = "SELECT min(id), max(id) FROM product"
ENDPOINTS = [
    ("healthz", "products", "/healthz", None),
    ("products_list", "products", "/products", None),
    ("product", "products", "/products/{id}", PRODUCT_IDS),
    ("product_styles", "products", "/products/{id}/styles", PRODUCT_IDS),
    ("product_related", "products", "/products/{id}/related", PRODUCT_IDS),
    ("qa_questions", "qa", "/qa/questions?product_id={id}&count=100",
     "SELECT min(product_id), max(product_id) FROM question"),
    ("qa_answers", "qa", "/qa/questions/{id}/answers", "SELECT min(id), max(id) FROM question"),
    ("reviews_list", "reviews", "/reviews?product_id={id}&count=100&sort=relevant",
     "SELECT min(product_id), max(product_id) FROM review"),
    ("reviews_meta", "reviews", "/reviews/meta?product_id={id}",
     "SELECT min(product_id), max(product_id) FROM review"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", help="route names, comma-separated")
    parser.add_argument("--label", default="", help="printed in the table's heading")
    for service in SERVICES:
        parser.add_argument(f"--{service}", help=f"{service} base URL (default: from stack.py status)")
    args = parser.parse_args(argv)
    wrk.require()
    urls = {s: getattr(args, s) for s in SERVICES}
    if not all(urls.values()):
        urls = {**stack.status()["urls"], **{s: u for s, u in urls.items() if u}}
    chosen = [e for e in ENDPOINTS if not args.only or e[0] in args.only.split(",")]
    ranges = {}
    for name, service, _, sql in chosen:
        ranges[name] = last_tenth(database_url(service), sql) if sql else (1, 1)
    results = {name: [] for name, *_ in chosen}
    started = time.strftime("%Y-%m-%d %H:%M")
    for round_number in range(args.rounds):
        for name, service, path, _ in chosen:
            result = wrk.endpoint(urls[service], path, ranges[name], args.seconds, args.connections,
                                  round_number + 1)
            results[name].append(result)
            print(f"  {name}: {result['rps']:.0f} req/s p99 {result['p99']:.1f} ms", file=sys.stderr,
                  flush=True)

    def median(name, key):
        return statistics.median(r[key] for r in results[name])

    print(f"\ntail {args.label}: {started}, wrk -t1 -c{args.connections} {args.seconds}s x {args.rounds} "
          f"(medians), one endpoint at a time through the balancers, ids uniform in the last 10%\n")
    print("| endpoint | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|")
    for name, *_ in chosen:
        print(f"| {name} | {median(name, 'rps'):.0f} | {median(name, 'p50'):.1f} | {median(name, 'p99'):.1f} "
              f"| {sum(r['non2xx'] for r in results[name])} |")


if __name__ == "__main__":
    main()
