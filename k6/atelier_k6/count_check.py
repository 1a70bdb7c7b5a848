"""Do the services' /metrics count what k6 sent? One k6 run against the running `make up`
stack, with three counts side by side, per route and in total:

- k6: the requests it made (its http_reqs points, by their route-name tag);
- the balancers: their access-log lines of the run, split into answered by nginx alone (a cache
  hit, a rate limit: no upstream) and passed to an instance;
- the instances: the increase of atelier_http_requests_total over every instance's /metrics.

With the cache off, k6 and the instances should agree within 1%; with it on, the balancers'
own answers make up the difference. `python -m atelier_k6.count_check --script page-load
--profile load` (k6 environment such as RATE or DURATION passes through). Prints a table.
"""
import argparse
import csv
import gzip
import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from atelier_common.fleet import instance_addresses
from atelier_common.localpg import DATA, SERVICES
from atelier_k6 import loadtest

OPERATIONAL = {"metrics", "healthz", "readyz"}  # scrapes and health checks, not k6's
LOG_LINE = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d{3}) .* up=(?P<upstream>.*?) cache=(?P<cache>\S+)')


def instance_counts() -> Counter:
    counts = Counter()
    for service in SERVICES:
        for address in instance_addresses(service):
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
                text = response.read().decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "atelier_http_requests_total" and sample.labels["route"] not in OPERATIONAL:
                        counts[sample.labels["route"]] += sample.value
    return counts


def access_logs() -> dict:
    return {service: DATA / "run" / "nginx" / service / "access.log" for service in SERVICES}


def log_sizes() -> dict:
    return {service: path.stat().st_size if path.exists() else 0 for service, path in access_logs().items()}


def balancer_counts(since: dict) -> dict:
    """Lines logged since the given sizes: {'alone': Counter(cache status), 'passed': n, 'lines': n}."""
    alone, passed, lines = Counter(), 0, 0
    for service, path in access_logs().items():
        if not path.exists():
            continue
        with open(path, "rb") as handle:
            handle.seek(since[service])
            for raw in handle:
                match = LOG_LINE.search(raw.decode(errors="replace"))
                if not match or re.search(r"/(metrics|healthz|readyz)\b", match["request"]):
                    continue
                lines += 1
                upstreams = [u for u in match["upstream"].split(", ") if u != "-"]
                if upstreams:
                    passed += len(upstreams)  # a retry on another instance is one more request
                else:
                    alone[f"{match['cache']} {match['status']}"] += 1
    return {"alone": alone, "passed": passed, "lines": lines}


def k6_counts(folder: Path) -> Counter:
    counts = Counter()
    with gzip.open(folder / "points.csv.gz", "rt", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if row["metric_name"] == "http_reqs":
                # k6's own `name` tag carries the route name (k6/lib/api.js), so URLs never become series
                counts[row.get("name") or row.get("route") or "(untagged)"] += int(float(row["metric_value"]))
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", default="page-load", choices=loadtest.SCRIPTS)
    parser.add_argument("--profile", default="smoke", choices=loadtest.PROFILES)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait after k6 (workers flush each second, nginx's log too)")
    args = parser.parse_args(argv)

    before_instances, sizes = instance_counts(), log_sizes()
    folder = loadtest.RESULTS / f"{time.strftime('%Y%m%dT%H%M%S')}-count-check-{args.script}-{args.profile}"
    status = loadtest.run(args.script, args.profile, out=folder)
    time.sleep(args.settle)
    served = instance_counts() - before_instances
    balancers = balancer_counts(sizes)
    sent = k6_counts(folder)

    alone = sum(balancers["alone"].values())
    k6_total, served_total = sum(sent.values()), sum(served.values())
    print(f"\n{args.script} / {args.profile} (k6 exit {status}), results in {folder}\n")
    print("| route | k6 requests | instances' /metrics | difference |")
    print("|---|---:|---:|---:|")
    for route in sorted(set(sent) | set(served)):
        difference = served[route] - sent[route]
        print(f"| {route} | {sent[route]:.0f} | {served[route]:.0f} | {difference:+.0f} |")
    print(f"| **total** | **{k6_total:.0f}** | **{served_total:.0f}** | "
          f"**{served_total - k6_total:+.0f} ({(served_total - k6_total) / max(k6_total, 1):+.2%})** |")
    print(f"\nbalancers' access logs: {balancers['lines']} requests; answered by nginx alone: {alone} "
          f"({', '.join(f'{k}: {v}' for k, v in balancers['alone'].most_common()) or 'none'}); "
          f"passed to an instance: {balancers['passed']}")
    explained = served_total + alone
    print(f"instances' count + nginx's own answers = {explained:.0f} vs k6's {k6_total:.0f} "
          f"({(explained - k6_total) / max(k6_total, 1):+.2%}); instances' count vs requests nginx passed on: "
          f"{served_total:.0f} vs {balancers['passed']} ({(served_total - balancers['passed']) / max(balancers['passed'], 1):+.2%})")


if __name__ == "__main__":
    main()
