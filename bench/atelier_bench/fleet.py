"""`make bench-fleet`: the front-end's page-load mix through the balancers.

A benchmark, not a test: it prints a table and writes `.data/bench/fleet.json` (read by the
Terraform capacity model, infra/terraform/capacity.py).

One page load of product p is the front-end's product page as k6/lib/page-load.json defines it
(k6 and the soak replay the same): p's product, styles and related list; for each related id a
card (product, styles, ratings summary); p's questions, reviews and ratings summary. A share of
the page loads also write once (about 1% of the requests), drawn by that file's weights among
the writes the request files can carry (helpful and posts on p's first question or review; no
answer ids, no reports: a reported question would fail the file's later writes on it).
Product ids come from the loaded database: (a) uniformly from the last 10% of the ids,
(b) Zipf popularity (s = 1.1) over all products, in a fixed random popularity order; related
ids are the real related lists. For each INSTANCES in --instances: `stack.py up --instances n
--cache 1 --write-rate-limit 0`, then per mix a cold run (right after `stack.py flush`) and a
warm run (new page loads of the same mix, the cache as the cold run left it). Once per run of
the benchmark, the load generator's own ceiling: the same wrk threads and connections against a
static nginx answer. Per run: requests/s, page loads/s, p50/p95/p99 (wrk, client side), errors,
the cache hit ratio and per-route p99 (from the balancers' access logs), and the CPU seconds of
each tier (nginx, the instances, PostgreSQL, wrk, and everything else on the machine).

    flock /tmp/atelier-bench.lock .venv/bin/python -m atelier_bench.fleet [--seconds 15]

Needs the full-size data (or any loaded data) and nginx; uses the databases of
<SERVICE>_DATABASE_URL like `make up`.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from string import Template

import numpy as np
import psutil
import psycopg2

from atelier_bench import stack as local_stack
from atelier_bench import wrk
from atelier_bench.routes import by_name, page_reads, route_name
from atelier_bench.routes import page_load as page_definition
from atelier_common.localpg import DATA, ROOT, SERVICES, database_url

HERE = Path(__file__).resolve().parent
LUA = HERE / "lua" / "fleet.lua"
STATIC_CONF = HERE / "conf" / "static-nginx.conf"
OUT = DATA / "bench"
PORT_BASE = int(os.environ.get("ATELIER_PORT_BASE", "3001"))
STATIC_PORT = PORT_BASE + 90  # the load generator's ceiling (public ports +0..2, instances +100..)
ZIPF_S = 1.1

_LOG_LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3}) \d+ rt=([\d.]+) .*cache=(\S*)')

NEW_REVIEW = {"rating": 4, "summary": "Benchmark review", "recommend": True, "name": "bencher",
              "email": "bench@example.com",
              "body": "A review posted by the page-load benchmark, long enough for the fifty character rule."}
NEW_QUESTION = {"body": "Does this run true to size?", "name": "bencher", "email": "bench@example.com"}
NEW_ANSWER = {"body": "It runs a little small.", "name": "bencher", "email": "bench@example.com", "photos": []}


def say(message: str):
    print(message, file=sys.stderr, flush=True)


# -- the page loads -------------------------------------------------------------------------

class Catalogue:
    """Product ids, related lists and a question and review per product, from the databases."""

    def __init__(self):
        self.urls = {s: database_url(s) for s in SERVICES}
        with psycopg2.connect(self.urls["products"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM product ORDER BY id")
            self.ids = np.fromiter((row[0] for row in cur), dtype=np.int64)
        if not len(self.ids):
            raise SystemExit("no products: load the data first (make load)")
        low, high = int(self.ids[0]), int(self.ids[-1])
        self.last_tenth = self.ids[self.ids >= low + (high - low) * 9 // 10]
        # Popularity order: rank 1 is the most asked-for product; not the id order, whose
        # neighbours share database pages.
        self.by_popularity = np.random.default_rng(1).permutation(self.ids)
        weights = 1.0 / np.arange(1, len(self.ids) + 1) ** ZIPF_S
        self.zipf_cdf = np.cumsum(weights) / weights.sum()

    def draw(self, mix: str, count: int, rng) -> np.ndarray:
        if mix == "uniform":
            return rng.choice(self.last_tenth, size=count)
        ranks = np.searchsorted(self.zipf_cdf, rng.random(count))
        return self.by_popularity[np.minimum(ranks, len(self.ids) - 1)]

    def lookups(self, products):
        """related ids, one visible question id and one review id, for each product id."""
        wanted = sorted({int(p) for p in products})
        with psycopg2.connect(self.urls["products"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT product_id, related FROM product_document WHERE product_id = ANY(%s)",
                        (wanted,))
            related = {p: json.loads(r) for p, r in cur}
        firsts = {}
        for service, sql in (("qa", "SELECT DISTINCT ON (product_id) product_id, id FROM question "
                                    "WHERE product_id = ANY(%s) AND NOT reported ORDER BY product_id, id"),
                             ("reviews", "SELECT DISTINCT ON (product_id) product_id, id FROM review "
                                         "WHERE product_id = ANY(%s) AND NOT reported ORDER BY product_id, id")):
            with psycopg2.connect(self.urls[service]) as conn, conn.cursor() as cur:
                cur.execute(sql, (wanted,))
                firsts[service] = dict(cur.fetchall())
        return related, firsts["qa"], firsts["reviews"]


def page_load(p: int, related: dict):
    """(service, method, path, body) of one page load of product p, reads only (k6/lib/page-load.json)."""
    routes = by_name()
    return [(routes[name].service, "GET", target, "") for name, target in page_reads(p, related.get(p, []))]


# The writes a request file can carry: the ones whose ids the catalogue knows (no answer ids),
# and no reports (a reported question or review vanishes: the file's later writes on it would fail).
WRITABLE = ("qa_question_helpful", "qa_question_post", "qa_answer_post", "reviews_helpful", "reviews_post")


def a_write(kind: str, p: int, question: dict, review: dict):
    """(service, method, path, body) of one write of the given route name on product p."""
    route = by_name()[kind]
    if kind == "reviews_helpful" and p in review:
        return (route.service, route.method, route.url(review[p]), "")
    if kind in ("qa_question_helpful", "qa_answer_post") and p in question:
        body = json.dumps(NEW_ANSWER) if kind == "qa_answer_post" else ""
        return (route.service, route.method, route.url(question[p]), body)
    if kind == "reviews_post":
        return (route.service, route.method, route.path, json.dumps({"product_id": p, **NEW_REVIEW}))
    route = by_name()["qa_question_post"]  # nothing of p's to act on
    return (route.service, route.method, route.path, json.dumps({"product_id": p, **NEW_QUESTION}))


def write_page_loads(catalogue: Catalogue, mix: str, seed: int, count: int, folder: Path) -> dict:
    """The request files the Lua script replays, one per service; returns counts."""
    rng = np.random.default_rng(seed)
    definition = page_definition()
    kinds = [k for k in definition["writes"] if k in WRITABLE]
    weights = np.array([definition["writes"][k] for k in kinds], dtype=float)
    weights /= weights.sum()
    products = [int(p) for p in catalogue.draw(mix, count, rng)]
    related, question, review = catalogue.lookups(products)
    folder.mkdir(parents=True, exist_ok=True)
    files = {s: open(folder / f"{s}.txt", "w") for s in SERVICES}
    requests = writes = 0
    try:
        for page, p in enumerate(products):
            lines = page_load(p, related)
            # A share of the page loads write once (about 1% of the requests), drawn by the
            # page load's weights among the writes a file can carry.
            if rng.random() < definition["write_share"]:
                position = int(rng.integers(0, len(lines) + 1))
                kind = str(rng.choice(kinds, p=weights))
                lines.insert(position, a_write(kind, p, question, review))
                writes += 1
            for service, method, path, body in lines:
                files[service].write(f"{page}\t{method}\t{path}\t{body}\n")
            requests += len(lines)
    finally:
        for f in files.values():
            f.close()
    return {"page_loads": count, "requests": requests, "writes": writes}


# -- the processes and their CPU ------------------------------------------------------------

def stack(*args, capture=False):
    output = local_stack.run(*args)
    return output if capture else None


def postmaster_of(url: str):
    """The PostgreSQL server answering url (the shared full-size one is not ours to know by pid file)."""
    port = int(re.search(r":(\d+)/", url).group(1)) if re.search(r":(\d+)/", url) else 5432
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def tier_roots(status: dict) -> dict:
    postgres = status.get("postgres") or postmaster_of(database_url("products"))
    return {"nginx": [p for p in status["balancers"].values() if p],
            "instances": [p for pids in status["instances"].values() for p in pids],
            "postgres": [postgres] if postgres else []}


def cpu_by_process(roots) -> dict:
    """{pid: cpu seconds} of each root and all its descendants."""
    seconds = {}
    for root in roots:
        try:
            process = psutil.Process(root)
            for each in [process, *process.children(recursive=True)]:
                try:
                    t = each.cpu_times()
                    seconds[each.pid] = t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
    return seconds


def machine_seconds():
    """(busy CPU seconds of the whole machine, of which interrupt handling): loopback TCP is
    processed in softirq time, which Linux charges to no process."""
    t = psutil.cpu_times()
    interrupts = getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    guest = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # already inside user/nice
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - guest, interrupts


class CpuMeter:
    def __init__(self, roots: dict):
        self.roots = roots
        self.before = {tier: cpu_by_process(pids) for tier, pids in roots.items()}
        self.busy, self.interrupts = machine_seconds()

    def stop(self, loadgen_seconds: float) -> dict:
        used = {}
        for tier, pids in self.roots.items():
            after = cpu_by_process(pids)
            used[tier] = sum(after[pid] - self.before[tier].get(pid, 0.0) for pid in after)
        used["loadgen"] = loadgen_seconds
        busy, interrupts = machine_seconds()
        used["softirq"] = interrupts - self.interrupts
        # Everything else: other people's processes on a shared machine, kernel threads.
        used["other"] = max(0.0, busy - self.busy - sum(used.values()))
        return {tier: round(value, 1) for tier, value in used.items()}


# -- one run ----------------------------------------------------------------------------------

def host_port(url: str) -> str:
    return url.split("//", 1)[1].rstrip("/")


def run_wrk(addresses: dict, folder: Path, page_loads: int, seconds: int, connections: int):
    """wrk -t3 (one thread per service) on the request files in folder: (its JSON, its CPU seconds)."""
    progress = folder / "progress"
    progress.write_bytes(bytes(64))
    env = dict(BENCH_DIR=str(folder), BENCH_PAGE_LOADS=str(page_loads),
               **{f"BENCH_{s.upper()}": host_port(addresses[s]) for s in SERVICES})
    text, cpu = wrk.run(addresses["products"], LUA, seconds, connections, threads=3, env=env, timeout="5s")
    found = re.search(r"^BENCH_FLEET (.*)$", text, re.M)
    if not found:
        raise SystemExit(f"wrk did not report:\n{text[-2000:]}")
    return json.loads(found.group(1)), cpu


class AccessLogs:
    """The lines the balancers log during a run: per-route p99 and the cache hit ratio."""

    def __init__(self):
        self.paths = [DATA / "run" / "nginx" / s / "access.log" for s in SERVICES]
        self.offsets = {p: (p.stat().st_size if p.exists() else 0) for p in self.paths}

    def read(self):
        time.sleep(1.5)  # the balancers flush their log buffer every second
        times, hits, cached = {}, 0, 0
        for path in self.paths:
            if not path.exists():
                continue
            with open(path, "rb") as f:
                f.seek(self.offsets[path])
                for line in f.read().decode(errors="replace").splitlines():
                    found = _LOG_LINE.search(line)
                    if not found:
                        continue
                    method, target, _, seconds, cache = found.groups()
                    name = route_name(method, target)
                    if name is None:  # not the benchmark's (e.g. a readiness probe)
                        continue
                    times.setdefault(name, []).append(float(seconds) * 1000)
                    if method == "GET" and cache not in ("", "-"):
                        cached += 1
                        hits += cache == "HIT"
        endpoints = {name: {"requests": len(values), "p99_ms": round(float(np.percentile(values, 99)), 1)}
                     for name, values in sorted(times.items())}
        return endpoints, (round(hits / cached, 3) if cached else None)


def one_run(label: dict, addresses: dict, folder: Path, counts: dict, args, roots: dict, logs=True) -> dict:
    access = AccessLogs() if logs else None
    meter = CpuMeter(roots)
    result, loadgen_cpu = run_wrk(addresses, folder, counts["page_loads"], args.seconds, args.connections)
    cpu = meter.stop(loadgen_cpu)
    endpoints, hit_ratio = access.read() if access else ({}, None)
    seconds = result["duration_us"] / 1e6
    rps = result["requests"] / seconds
    run = {**label, "duration_s": round(seconds, 1), "requests": result["requests"], "rps": round(rps),
           "page_loads_per_s": round(rps * counts["page_loads"] / counts["requests"], 1),
           "p50_ms": round(result["p50_us"] / 1000, 1), "p95_ms": round(result["p95_us"] / 1000, 1),
           "p99_ms": round(result["p99_us"] / 1000, 1), "errors": sum(result["errors"].values()),
           "hit_ratio": hit_ratio, "cpu_seconds": cpu, "endpoints": endpoints}
    say(f"  {label['instances']} instances {label['mix']:<8} {label['cache']:<5}: {run['rps']} req/s, "
        f"p99 {run['p99_ms']} ms, errors {run['errors']}, hit {hit_ratio}, cpu {cpu}")
    return run


def static_ceiling(folder: Path, counts: dict, args) -> dict:
    """The same wrk threads, connections and request files against an nginx that answers a
    product-sized constant: the most this load generator can send on this machine."""
    prefix = OUT / "static-nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"id": 1, "name": "static", "description": "x" * 440})
    (prefix / "nginx.conf").write_text(Template(STATIC_CONF.read_text()).substitute(
        prefix=prefix, port=STATIC_PORT, body=body))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    subprocess.run([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], check=True)
    try:
        time.sleep(0.5)
        pid = int((prefix / "nginx.pid").read_text())
        url = f"http://127.0.0.1:{STATIC_PORT}"
        return one_run({"instances": 0, "mix": "static", "cache": "off"}, {s: url for s in SERVICES},
                       folder, counts, args, {"nginx": [pid], "instances": [], "postgres": []}, logs=False)
    finally:
        subprocess.run([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-s", "stop"], check=False)


# -- the table --------------------------------------------------------------------------------

def print_table(runs, started: str, args):
    print(f"\nbench-fleet {started}: wrk -t3 -c{args.connections} {args.seconds}s per run, "
          f"{os.cpu_count()} cores, generator on the same machine; WEB_CONCURRENCY="
          f"{os.environ.get('WEB_CONCURRENCY', '1')} worker(s) per instance\n")
    print("| instances | mix | cache | req/s | page loads/s | p50 ms | p95 ms | p99 ms | errors | hit ratio "
          "| CPU s nginx | instances | postgres | wrk | softirq | other | busiest tier |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        cpu = r["cpu_seconds"]
        tiers = {k: v for k, v in cpu.items() if k not in ("other", "softirq")}
        busiest = max(tiers, key=tiers.get)
        hit = "" if r["hit_ratio"] is None else f"{r['hit_ratio']:.0%}"
        print(f"| {r['instances'] or '-'} | {r['mix']} | {r['cache']} | {r['rps']:,} | {r['page_loads_per_s']:,.0f} "
              f"| {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {hit} | {cpu['nginx']} "
              f"| {cpu['instances']} | {cpu['postgres']} | {cpu['loadgen']} | {cpu.get('softirq', '')} | {cpu['other']} | "
              f"{busiest} {tiers[busiest] / r['duration_s']:.2f} cores |")
    routes = sorted({name for r in runs for name in r["endpoints"]})
    if routes:
        print("\nper-route p99 ms at the balancer (nginx $request_time), same runs:\n")
        print("| instances | mix | cache | " + " | ".join(routes) + " |")
        print("|---:|---|---|" + "---:|" * len(routes))
        for r in runs:
            if r["endpoints"]:
                print(f"| {r['instances']} | {r['mix']} | {r['cache']} | "
                      + " | ".join(str(r["endpoints"].get(n, {}).get("p99_ms", "")) for n in routes) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="1,2,4", help="instance counts, comma-separated")
    parser.add_argument("--mixes", default="zipf,uniform")
    parser.add_argument("--seconds", type=int, default=15, help="per run")
    parser.add_argument("--connections", type=int, default=60, help="wrk connections (a third per service)")
    parser.add_argument("--page-loads", type=int, default=12000, help="page loads per request file")
    parser.add_argument("--no-static", action="store_true", help="skip the load generator's ceiling")
    parser.add_argument("--keep-stack", action="store_true",
                        help="measure the running stack as it is (no `stack.py up`, cache not flushed)")
    args = parser.parse_args(argv)
    wrk.require()
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        raise SystemExit("nginx is not installed: `make install` installs it (as root)")

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    work = Path(tempfile.mkdtemp(prefix="atelier-fleet-"))
    say("reading product ids and related lists")
    catalogue = Catalogue()
    files = {}
    for mix in args.mixes.split(","):
        for cache, seed in (("cold", 1), ("warm", 2)):
            folder = work / f"{mix}-{cache}"
            files[mix, cache] = (folder, write_page_loads(catalogue, mix, seed, args.page_loads, folder))
    say("request files: " + ", ".join(f"{m}/{c} {v[1]['requests']} requests, {v[1]['writes']} writes"
                                       for (m, c), v in files.items()))
    runs = []
    try:
        if not args.no_static:
            folder, counts = next(iter(files.values()))
            runs.append(static_ceiling(folder, counts, args))
        for n in [int(x) for x in args.instances.split(",")]:
            if not args.keep_stack:
                stack("up", "--instances", str(n), "--cache", "1", "--write-rate-limit", "0", capture=True)
            status = json.loads(stack("status", "--json", capture=True))
            addresses = status["urls"]
            roots = tier_roots(status)
            count = n if not args.keep_stack else len(status["instances"]["products"])
            for mix in args.mixes.split(","):
                for cache in ("cold", "warm"):
                    if cache == "cold" and not args.keep_stack:
                        stack("flush", capture=True)
                    folder, counts = files[mix, cache]
                    runs.append(one_run({"instances": count, "mix": mix, "cache": cache}, addresses, folder,
                                        counts, args, roots))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"measured_at": started,
              "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                          "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                          "load_generator": f"wrk -t3 -c{args.connections} (on the same machine)",
                          "workers_per_instance": int(os.environ.get("WEB_CONCURRENCY", "1"))},
              "runs": runs}
    (OUT / "fleet.json").write_text(json.dumps(report, indent=1) + "\n")
    print_table(runs, started, args)
    say(f"\nwritten: {(OUT / 'fleet.json').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
