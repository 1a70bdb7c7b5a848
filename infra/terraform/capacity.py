#!/usr/bin/env python3
"""Capacity model: how many instances and how much database each service needs on AWS for a
given rate of the page-load mix, from the figures the fleet benchmark measured.

    .venv/bin/python infra/terraform/capacity.py [docs/results/<date>-fleet.json] [--balancers 2]

It reads the fleet benchmark's JSON (`make bench-fleet`; its fields: bench/README.md, "Output";
by default the newest docs/results/*-fleet.json), takes the steady-state runs of the Zipf
page-load mix measured with the most instance-local balancers (each with its own cache, as each
AWS instance has), and of their repeats the median run (by throughput), and derives from it:

* CPU seconds per request on an instance (its nginx plus its gunicorns: on AWS both run on the
  instance; plus the kernel's network time, softirq), from the run's per-tier CPU seconds;
* each service's database CPU per request of that service, from the CPU its database's
  PostgreSQL backends used during the run (the server's own processes split by requests);
* the hit ratio of each instance-local cache, and each service's share of the requests and of
  the writes, from the balancers' access logs;
* for each target rate, the instances per service and instance type that keep them at the
  Auto Scaling group's CPU target even with one availability zone lost (instances spread evenly
  over --zones zones), the database vCPUs, queries/s, writes/s and connections that implies,
  and the smallest database class that holds it, or past the largest one, a primary for the
  writes plus read replicas for the GETs.

Assumptions (printed with the table): the instances' CPU is split between services in
proportion to their requests (the benchmark reports it per tier); an AWS vCPU does
`--vcpu-speed` times the work of one core of the benchmark machine; an AWS instance's cache,
which sees 1/N of its service's traffic, hits as often as a benchmark balancer's cache did.
Only the Python standard library and the route list (atelier_bench.routes, which reads the
OpenAPI descriptions): run it with the project's `.venv/bin/python`.
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from atelier_bench.routes import kinds_by_service

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"


def default_input() -> Path:
    """The newest dated fleet benchmark result (docs/results/YYYY-MM-DD-fleet.json; dates sort)."""
    found = sorted(RESULTS.glob("*-fleet.json"))
    return found[-1] if found else RESULTS / "fleet.json"


# The route names the benchmark reports, by service, from the one route list (the OpenAPI
# descriptions' operationIds); the writes are the ones that must stay on a service's primary.
ROUTES = kinds_by_service()
SERVICES = tuple(ROUTES)
RATES = (1_000, 10_000, 50_000)
# vCPUs of the instance types compared (x86, current generation, compute-optimised).
INSTANCE_TYPES = {"c7i.large": 2, "c7i.xlarge": 4, "c7i.2xlarge": 8}
# RDS PostgreSQL classes (memory-optimised Graviton), smallest first: name -> vCPUs.
DB_CLASSES = {"db.r7g.large": 2, "db.r7g.xlarge": 4, "db.r7g.2xlarge": 8, "db.r7g.4xlarge": 16,
              "db.r7g.8xlarge": 32, "db.r7g.12xlarge": 48, "db.r7g.16xlarge": 64}


class BenchmarkError(ValueError):
    """The benchmark file cannot give the figures the model needs."""


@dataclass(frozen=True)
class Costs:
    """Per-request figures measured in one benchmark run."""
    run: dict
    instance_cpu_per_request: float  # s: nginx + gunicorn + softirq, per request of the mix
    database_cpu_per_request: float  # s: all of PostgreSQL, per request of the mix
    hit_ratio: float                 # share of GETs the instance-local caches answered
    request_share: dict              # service -> share of all requests
    write_share: dict                # service -> share of all requests that are its writes
    unknown_requests: int = 0        # requests on routes outside ROUTES (left out of the shares)
    database_cpu_per_service_request: dict = None  # service -> s of its database per request of it
    balancer_hit_ratios: dict = None  # instance-local balancer -> its cache's GET hit ratio


@dataclass(frozen=True)
class Assumptions:
    """What the model assumes beyond the measurement (all printed with the table)."""
    utilization: float = 0.6                # the Auto Scaling group's CPU target (cpu_target_percent)
    vcpu_speed: float = 1.0                 # an AWS vCPU's work in benchmark-machine cores
    min_instances: int = 2                  # per service, one per zone at least
    zones: int = 3                          # availability zones the instances spread over
    largest_db_class: str = "db.r7g.4xlarge"  # past it, reads move to replicas
    db_pool_max: int = 10                   # connections per gunicorn worker (DB_POOL_MAX)
    max_connections: int = 1000             # the database module's default


@dataclass(frozen=True)
class Plan:
    """One service at one target rate."""
    service: str
    rate: float              # the service's requests/s
    instance_vcpus: float    # busy vCPUs at the CPU target
    instances: dict          # instance type -> instances (spread over the zones, one zone's loss covered)
    database_vcpus: float    # busy vCPUs at the CPU target
    database_queries: float  # requests/s that reach the database
    writes: float            # of which writes/s (always on the primary)
    connections: dict        # instance type -> most connections the fleet may open
    primary: str             # database class of the primary
    replicas: int            # read replicas (of the same class) past one database


def load_runs(path: Path) -> list:
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchmarkError(f"{path} does not exist: run the fleet benchmark (`make bench-fleet`) first") from None
    except json.JSONDecodeError as error:
        raise BenchmarkError(f"{path} is not JSON: {error}") from None
    runs = document.get("runs") if isinstance(document, dict) else None
    if not runs:
        raise BenchmarkError(f"{path} has no runs")
    return runs


def clean_runs(runs: list, mix: str, cache: str, max_error_rate: float = 0.001, balancers=None) -> list:
    """The runs of this mix and cache state whose errors are at most max_error_rate of their
    requests; of those, the ones with `balancers` instance-local balancers (by default the most
    the file has: the closest to AWS, where every instance has its own cache)."""
    found = [r for r in runs if r.get("mix") == mix and r.get("cache") == cache and r.get("requests")
             and (r.get("errors") or 0) <= max_error_rate * r["requests"]]
    if balancers is None and found:
        balancers = max(r.get("balancers") or 1 for r in found)
    return [r for r in found if balancers is None or (r.get("balancers") or 1) == balancers]


def pick_run(runs: list, mix: str, cache: str, max_error_rate: float = 0.001, instances=None,
             balancers=None) -> dict:
    """The median run (by throughput; the lower of the two middle ones) of the clean repeats of
    this mix, cache state and layout: not the most favourable one."""
    candidates = [r for r in clean_runs(runs, mix, cache, max_error_rate, balancers)
                  if instances is None or r.get("instances") == instances]
    if not candidates:
        seen = sorted({(r.get("mix"), r.get("cache"), r.get("balancers")) for r in runs}, key=str)
        raise BenchmarkError(f"no clean run (errors <= {max_error_rate:.1%}) with mix={mix} cache={cache}"
                             + (f" instances={instances}" if instances is not None else "")
                             + (f" balancers={balancers}" if balancers is not None else "")
                             + f"; the file has (mix, cache, balancers) {seen}")
    ordered = sorted(candidates, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


def measure(run: dict) -> Costs:
    cpu = run["cpu_seconds"]
    requests = run["requests"]
    known = {route for routes in ROUTES.values() for route in routes}
    counts = {route: figures["requests"] for route, figures in run.get("endpoints", {}).items()}
    unknown = sum(n for route, n in counts.items() if route not in known)  # e.g. "other": 404s
    counted = sum(n for route, n in counts.items() if route in known)
    if counted <= 0:
        raise BenchmarkError("the run has no per-endpoint request counts")
    served = {s: sum(counts.get(r, 0) for r in ROUTES[s]) for s in SERVICES}
    request_share = {s: served[s] / counted for s in SERVICES}
    write_share = {s: sum(counts.get(r, 0) for r, kind in ROUTES[s].items() if kind == "write") / counted
                   for s in SERVICES}
    by_database = cpu.get("postgres_by_database")
    if not by_database:
        raise BenchmarkError("the run has no PostgreSQL CPU per database (postgres_by_database): "
                             "measure it with the current `make bench-fleet`")
    # The server's own processes (checkpointer, WAL writer, ...) serve every database: split by requests.
    shared = by_database.get("server", 0.0)
    database_per_request = {s: (by_database.get(s, 0.0) + shared * request_share[s]) / served[s]
                            if served[s] else 0.0 for s in SERVICES}
    balancers = {name: b["hit_ratio"] for name, b in (run.get("balancers_detail") or {}).items()
                 if b.get("hit_ratio") is not None}
    return Costs(run=run,
                 # Kernel network time (softirq, charged to no process) is mostly the HTTP hops
                 # that an instance makes on AWS: counted with the instances, to be safe.
                 instance_cpu_per_request=(cpu["nginx"] + cpu["instances"] + cpu.get("softirq", 0)) / requests,
                 database_cpu_per_request=cpu["postgres"] / requests,
                 hit_ratio=run.get("hit_ratio") or 0.0,
                 request_share=request_share, write_share=write_share, unknown_requests=unknown,
                 database_cpu_per_service_request=database_per_request, balancer_hit_ratios=balancers)


def spread_over_zones(needed: int, zones: int, least: int) -> int:
    """Instances, a multiple of `zones` (the group spreads them evenly), such that those left
    after one zone is lost are still `needed`; never fewer than `least`."""
    if zones <= 1:
        return max(least, needed)
    per_zone = math.ceil(needed / (zones - 1))
    return max(per_zone * zones, math.ceil(least / zones) * zones)


def database_layout(vcpus: float, largest: str) -> tuple:
    """(class, replicas): the smallest class that holds the load alone, or the largest allowed
    class for the primary and enough replicas of it to take the reads beyond it."""
    classes = list(DB_CLASSES)[: list(DB_CLASSES).index(largest) + 1]
    for name in classes:
        if DB_CLASSES[name] >= vcpus:
            return name, 0
    return largest, math.ceil((vcpus - DB_CLASSES[largest]) / DB_CLASSES[largest])


def plan(costs: Costs, total_rate: float, assume: Assumptions = Assumptions()) -> list:
    plans = []
    capacity = assume.utilization * assume.vcpu_speed
    for service in SERVICES:
        rate = total_rate * costs.request_share[service]
        # Instance CPU per request of the mix, whatever the service (the benchmark measures it
        # per tier): a service's instances need its requests' share of it.
        instance_vcpus = rate * costs.instance_cpu_per_request / capacity
        database_vcpus = rate * costs.database_cpu_per_service_request[service] / capacity
        instances = {t: spread_over_zones(math.ceil(instance_vcpus / v), assume.zones, assume.min_instances)
                     for t, v in INSTANCE_TYPES.items()}
        # One gunicorn worker per vCPU, each with a pool of up to DB_POOL_MAX connections.
        connections = {t: n * INSTANCE_TYPES[t] * assume.db_pool_max for t, n in instances.items()}
        writes = total_rate * costs.write_share[service]
        queries = (rate - writes) * (1 - costs.hit_ratio) + writes  # the cache answers GETs only
        primary, replicas = database_layout(database_vcpus, assume.largest_db_class)
        plans.append(Plan(service, rate, instance_vcpus, instances, database_vcpus, queries, writes,
                          connections, primary, replicas))
    return plans


def render(costs: Costs, rates, source, assume: Assumptions = Assumptions(), others=(), document=None) -> str:
    run = costs.run
    document = document or {}
    lines = []
    if len(others) > 1:  # the spread between the repeats the model could have used
        lines += ["Clean repeats of this mix, cache state and layout (CPU ms per request; the median one is used):", "",
                  "| balancers | local instances per service | repeat | req/s | p99 ms | GET hit ratio | instance CPU "
                  "| PostgreSQL CPU | used |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for other in sorted(others, key=lambda r: (r.get("instances") or 0, r.get("repeat") or 0)):
            c = measure(other)
            lines.append(f"| {other.get('balancers') or 1} | {other.get('instances')} | {other.get('repeat', '')} "
                         f"| {other['rps']:,.0f} | {other.get('p99_ms')} | {c.hit_ratio:.0%} "
                         f"| {c.instance_cpu_per_request * 1e3:.3f} | {c.database_cpu_per_request * 1e3:.3f} "
                         f"| {'yes' if other is run else ''} |")
        lines.append("")
    instances = run.get("instances")
    balancers = run.get("balancers") or 1
    machine = document.get("machine") or {}
    caches = costs.balancer_hit_ratios or {}
    lines += [
        f"Measured: `{source}` ({document.get('measured_at', 'date not recorded')}, "
        f"{machine.get('cores', '?')} cores, machine: {document.get('load', 'not stated')}; "
        f"{run.get('mix')} mix, cache {run.get('cache')}, {balancers} instance-local balancer"
        f"{'' if balancers == 1 else 's'} and {instances} local instance{'' if instances == 1 else 's'} per service, "
        f"{run['rps']:,.0f} req/s, p99 {run.get('p99_ms')} ms, GET hit ratio {costs.hit_ratio:.0%}"
        + (" (per balancer: " + ", ".join(f"{name} {ratio:.0%}" for name, ratio in sorted(caches.items())) + ")"
           if caches else "")
        + f"): {costs.instance_cpu_per_request * 1e3:.3f} ms of instance CPU "
        f"(nginx + gunicorn + kernel network time) and {costs.database_cpu_per_request * 1e3:.3f} ms of PostgreSQL CPU per "
        f"request, i.e. {1 / costs.instance_cpu_per_request:,.0f} req/s per busy instance vCPU; PostgreSQL CPU per "
        f"request of each service: " + ", ".join(f"{s} {costs.database_cpu_per_service_request[s] * 1e3:.3f} ms"
                                                for s in SERVICES)
        + ". Requests: " + ", ".join(f"{s} {costs.request_share[s]:.0%}" for s in SERVICES) + "."
        + (f" ({costs.unknown_requests:,} requests on other routes left out of the shares.)"
           if costs.unknown_requests else ""),
        "",
        f"Sized for {assume.utilization:.0%} CPU (the Auto Scaling target) with one of {assume.zones} "
        f"availability zones lost (instances spread evenly: those of the other zones carry the load), at "
        f"least {assume.min_instances} instances per service, an AWS vCPU = {assume.vcpu_speed} benchmark "
        f"core, instance CPU split between services by their share of requests, each database sized "
        f"from its own backends' CPU (Multi-AZ: the standby takes over a lost zone's primary). DB "
        f"connections = instances x vCPUs x DB_POOL_MAX {assume.db_pool_max} (one gunicorn worker per "
        f"vCPU), to keep under max_connections ({assume.max_connections}). Past {assume.largest_db_class} "
        f"the reads move to replicas of that class.",
        "",
        "| req/s (all services) | service | req/s | instance vCPUs | "
        + " | ".join(f"{t} ({v} vCPU)" for t, v in INSTANCE_TYPES.items())
        + " | DB vCPUs | DB queries/s | writes/s | DB connections (c7i.large fleet) | database |",
        "|---:|---|---:|---:|" + "---:|" * len(INSTANCE_TYPES) + "---:|---:|---:|---:|---|",
    ]
    for rate in rates:
        for p in plan(costs, rate, assume):
            database = p.primary + (f" + {p.replicas} read replica{'s' * (p.replicas > 1)}" if p.replicas else "")
            lines.append(
                f"| {rate:,} | {p.service} | {p.rate:,.0f} | {p.instance_vcpus:.1f} | "
                + " | ".join(str(p.instances[t]) for t in INSTANCE_TYPES)
                + f" | {p.database_vcpus:.1f} | {p.database_queries:,.0f} | {p.writes:,.0f} | "
                f"{p.connections['c7i.large']:,} | {database} |")
    writes = {s: [r for r, kind in ROUTES[s].items() if kind == "write"] for s in SERVICES}
    lines += [
        "",
        "Past one database: GETs (" + ", ".join(r for s in SERVICES for r, k in ROUTES[s].items() if k == "read")
        + ") can be served by read replicas through a read-only connection; every write stays on "
        "the primary: " + "; ".join(f"{s}: {', '.join(w) if w else 'none (read-only API)'}" for s, w in writes.items())
        + ". So do the reads that must see the client's own write (read-your-writes: the front-end "
        "re-fetches right after it posts), since a replica lags the primary.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", type=Path, default=None,
                        help="the fleet benchmark's JSON (default: the newest docs/results/*-fleet.json)")
    parser.add_argument("--mix", default="zipf", help="the page-load mix to size for (default zipf)")
    parser.add_argument("--cache", default="steady", help="cache state of the runs to use (default steady)")
    parser.add_argument("--balancers", type=int, help="size from the runs with this many instance-local "
                        "balancers per service (default: the most the file has)")
    parser.add_argument("--zones", type=int, default=Assumptions.zones,
                        help="availability zones the instances spread over; one may be lost (default 3)")
    parser.add_argument("--max-error-rate", type=float, default=0.001,
                        help="a run counts if at most this share of its requests failed (default 0.001)")
    parser.add_argument("--instances", type=int, help="size from the runs with this many local instances "
                        "per service (default: any)")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="total req/s, comma-separated")
    parser.add_argument("--utilization", type=float, default=Assumptions.utilization,
                        help="CPU target (default 0.6 = the Auto Scaling group's 60%%)")
    parser.add_argument("--vcpu-speed", type=float, default=Assumptions.vcpu_speed,
                        help="an AWS vCPU's speed in benchmark cores (default 1.0)")
    parser.add_argument("--min-instances", type=int, default=Assumptions.min_instances,
                        help="fewest instances per service (default 2)")
    parser.add_argument("--largest-db-class", default=Assumptions.largest_db_class, choices=list(DB_CLASSES),
                        help=f"largest primary before reads move to replicas (default {Assumptions.largest_db_class})")
    args = parser.parse_args(argv)
    args.input = args.input or default_input()
    try:
        rates = [int(r) for r in args.rates.split(",")]
        runs = load_runs(args.input)
        costs = measure(pick_run(runs, args.mix, args.cache, args.max_error_rate, args.instances, args.balancers))
        others = [r for r in clean_runs(runs, args.mix, args.cache, args.max_error_rate,
                                        costs.run.get("balancers") or 1)
                  if r.get("instances") == costs.run.get("instances")]
        document = json.loads(Path(args.input).read_text())
    except (BenchmarkError, KeyError, TypeError, ValueError) as error:
        print(f"capacity: {error}", file=sys.stderr)
        return 2
    source = args.input.resolve()
    source = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    print(render(costs, rates, source, Assumptions(
        utilization=args.utilization, vcpu_speed=args.vcpu_speed, min_instances=args.min_instances,
        largest_db_class=args.largest_db_class, zones=args.zones), others, document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
