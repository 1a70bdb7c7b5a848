"""`make bench-fleet`: the front-end's page-load mix through the balancers, in the steady state,
with each figure repeated and its spread printed.

A benchmark, not a test: it prints tables and writes `.data/bench/fleet.json` (read by the
Terraform capacity model, infra/terraform/capacity.py).

One page load of product p is the front-end's product page as k6/lib/page-load.json defines it
(k6 and the soak replay the same): p's product, styles and related list; for each related id a
card (product, styles, ratings summary); p's questions, reviews and ratings summary. A share of
the page loads also write once (about 1% of the requests), drawn by that file's weights among
the writes the request files can carry (helpful and posts on p's first question or review; no
answer ids, no reports: a reported question would fail the file's later writes on it).
Product ids come from the loaded database: (a) uniformly from the last 10% of the ids,
(b) Zipf popularity (s = 1.1) over all products, in a fixed random popularity order; related
ids are the real related lists.

For each BALANCERS value (instance-local balancers per service; with more than one, a
round-robin front stands in for the AWS load balancer), `stack.py up --instances n --balancers
b --cache 1 --write-rate-limit 0`, where n is INSTANCES or, unset, the machine's default
(atelier_common.fleet.default_instances):

1. uniform cold: `stack.py flush`, then the uniform mix; --repeats times;
2. steady state: `stack.py flush`, then the Zipf mix for --steady seconds (new page loads all
   along, as a site that has been up for a while sees), not measured;
3. Zipf steady: the same Zipf traffic, --repeats measured runs (new page loads each); beside
   them, a bystander client (a few requests a second, its own latency) and, with two balancers
   or more, the write-to-visible probe (atelier_bench.visibility);
4. open model: k6 in a closed loop (its own maximum here: k6 costs far more CPU per request than
   wrk, on the same cores), then k6 at a constant arrival rate of --open-share (80%) of that
   maximum; k6 says when it could not keep the rate (dropped iterations).

Once per run of the benchmark, the load generator's own ceiling: the same wrk threads and
connections against a static nginx answer. Per run: requests/s, page loads/s, p50/p95/p99 (wrk,
client side), errors, the cache hit ratio per route and per balancer and the per-route p99
(from the balancers' access logs), the CPU seconds of each tier (nginx, the instances,
PostgreSQL per database, wrk, softirq, everything else on the machine) and the machine's
counters (steal, context switches, TCP accept-queue overflows and retransmissions, socket
queues). The tables give each figure as the median of the repeats with min–max.

    flock /tmp/atelier-bench.lock .venv/bin/python -m atelier_bench.fleet [--steady 180] [--repeats 3]

Needs the full-size data (or any loaded data), nginx, wrk and k6 (in the venv); uses the
databases of <SERVICE>_DATABASE_URL like `make up`.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from string import Template

import numpy as np
import psutil
import psycopg2

from atelier_bench import machine, visibility
from atelier_bench import stack as local_stack
from atelier_bench import wrk
from atelier_bench.ceiling import Ceiling
from atelier_bench.stats import percentile
from atelier_bench.routes import by_name, page_reads, route_name
from atelier_bench.routes import page_load as page_definition
from atelier_common import fleet as local_fleet
from atelier_common.localpg import DATA, SERVICES, database_url

HERE = Path(__file__).resolve().parent
LUA = HERE / "lua" / "fleet.lua"
OPEN_JS = HERE / "k6" / "open.js"
STATIC_CONF = HERE / "conf" / "static-nginx.conf"
OUT = DATA / "bench"
PORT_BASE = int(os.environ.get("ATELIER_PORT_BASE", "3001"))
STATIC_PORT = PORT_BASE + 90  # the load generator's ceiling (public ports +0..2, instances +100..)
ZIPF_S = 1.1
# Page loads per second the request files are sized for (a file replays from its start when a
# run outlasts it; the tables then say so): well above what the generator reaches on 2 cores
# (~460 page loads/s, 9,000 req/s, with the cache's answers in memory).
PAGE_LOADS_PER_SECOND = 700

_LOG_LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3}) \d+ rt=([\d.]+) .*cache=(\S*)')

BENCH_EMAIL = "bench@example.com"  # every post of the benchmark carries it (Catalogue.earlier_writes)
NEW_REVIEW = {"rating": 4, "summary": "Benchmark review", "recommend": True, "name": "bencher",
              "email": BENCH_EMAIL,
              "body": "A review posted by the page-load benchmark, long enough for the fifty character rule."}
NEW_QUESTION = {"body": "Does this run true to size?", "name": "bencher", "email": BENCH_EMAIL}
NEW_ANSWER = {"body": "It runs a little small.", "name": "bencher", "email": BENCH_EMAIL, "photos": []}


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

    def earlier_writes(self) -> dict:
        """Rows that earlier runs of this benchmark posted (its own email). They pile up on the
        most popular products, whose lists then cost more to build: runs on the same database
        drift apart unless the data is loaded again (`make load`)."""
        found = {}
        for service, table, sql in (
                ("qa", "questions", "SELECT count(*) FROM question WHERE asker_email = %s"),
                ("qa", "answers", "SELECT count(*) FROM answer WHERE answerer_email = %s"),
                ("reviews", "reviews", "SELECT count(*) FROM review WHERE reviewer_email = %s")):
            with psycopg2.connect(self.urls[service]) as conn, conn.cursor() as cur:
                cur.execute(sql, (BENCH_EMAIL,))
                found[table] = cur.fetchone()[0]
        return found

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
    """The PostgreSQL server answering url (a shared one is not ours to know by pid file)."""
    port = int(re.search(r":(\d+)/", url).group(1)) if re.search(r":(\d+)/", url) else 5432
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def balancer_pids(status: dict) -> tuple:
    """(the caching balancers and their cache listeners: what runs on an AWS instance beside
    the gunicorns; the fronts: with BALANCERS > 1 the round-robin nginx on each public port,
    standing in for the AWS load balancer, which is not an instance's CPU)."""
    caching = {b["pid"] for each in (status.get("caching_balancers") or {}).values() for b in each if b.get("pid")}
    public = {p for p in status["balancers"].values() if p}
    listeners = {p for each in (status.get("listeners") or {}).values() for p in each}
    if not caching:  # a stack without instance-local balancers: the public ones are the balancers
        caching, public = public, set()
    return sorted(caching | listeners), sorted(public - caching)


def tier_roots(status: dict) -> dict:
    postgres = status.get("postgres") or postmaster_of(database_url("products"))
    balancers, fronts = balancer_pids(status)
    return {"nginx": balancers, "front": fronts,
            "instances": [p for pids in status["instances"].values() for p in pids],
            "postgres": [postgres] if postgres else []}


def cpu_by_process(roots) -> dict:
    """{pid: cpu seconds} of each root and all its descendants."""
    seconds = {}
    for each in machine.process_tree(roots):
        try:
            t = each.cpu_times()
            seconds[each.pid] = t.user + t.system
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


def database_blocks() -> dict:
    """PostgreSQL's shared-buffer hits and reads (from the page cache or the disk) over all
    databases so far."""
    try:
        with psycopg2.connect(database_url("products")) as conn, conn.cursor() as cur:
            cur.execute("SELECT sum(blks_hit), sum(blks_read) FROM pg_stat_database")
            hit, read = cur.fetchone()
            return {"hit": int(hit or 0), "read": int(read or 0)}
    except psycopg2.Error:
        return {"hit": 0, "read": 0}


def backends_by_database() -> dict:
    """{backend pid: database name} of the PostgreSQL server (pg_stat_activity shows every
    session's pid and database to any role)."""
    try:
        with psycopg2.connect(database_url("products")) as conn, conn.cursor() as cur:
            cur.execute("SELECT pid, datname FROM pg_stat_activity WHERE datname IS NOT NULL")
            return dict(cur.fetchall())
    except psycopg2.Error:
        return {}


class CpuMeter:
    def __init__(self, roots: dict):
        self.roots = roots
        self.before = {tier: cpu_by_process(pids) for tier, pids in roots.items()}
        self.busy, self.interrupts = machine_seconds()
        self.databases = backends_by_database()
        self.blocks = database_blocks()

    def stop(self, loadgen_seconds: float) -> dict:
        used, deltas = {}, {}
        for tier, pids in self.roots.items():
            after = cpu_by_process(pids)
            deltas[tier] = {pid: after[pid] - self.before[tier].get(pid, 0.0) for pid in after}
            used[tier] = sum(deltas[tier].values())
        used["loadgen"] = loadgen_seconds
        busy, interrupts = machine_seconds()
        used["softirq"] = interrupts - self.interrupts
        # Everything else: other people's processes on a shared machine, kernel threads.
        used["other"] = max(0.0, busy - self.busy - sum(used.values()))
        result = {tier: round(value, 2) for tier, value in used.items()}
        # PostgreSQL per database: each backend's CPU goes to its database (the pools keep their
        # connections, so a backend lives through the run); the server's own processes
        # (checkpointer, WAL writer, autovacuum launcher, ...) and backends not seen go to "server".
        databases = {**self.databases, **backends_by_database()}
        by_database = {}
        for pid, seconds in deltas.get("postgres", {}).items():
            name = databases.get(pid, "server")
            by_database[name] = by_database.get(name, 0.0) + seconds
        result["postgres_by_database"] = {name: round(v, 2) for name, v in sorted(by_database.items())}
        blocks = database_blocks()
        result["postgres_blocks"] = {k: blocks[k] - self.blocks[k] for k in blocks}
        return result


# -- the balancers' access logs ---------------------------------------------------------------

def balancer_logs(status: dict) -> dict:
    """{balancer name: its access log}: each caching balancer (its own cache) as
    `stack.py status --json` lists them, or one per service where it lists none."""
    caching = status.get("caching_balancers") or {}
    if any(caching.values()):
        return {b["name"]: Path(b["access_log"]) for s in SERVICES for b in caching.get(s, [])}
    return {s: DATA / "run" / "nginx" / s / "access.log" for s in SERVICES}


def parse_log_lines(lines):
    """(route, milliseconds, cache status) of each benchmark request among nginx's log lines."""
    for line in lines:
        found = _LOG_LINE.search(line)
        if not found:
            continue
        method, target, _, seconds, cache = found.groups()
        name = route_name(method, target)
        if name is not None:  # not the benchmark's (e.g. a readiness probe)
            yield name, float(seconds) * 1000, ("" if method != "GET" or cache in ("", "-") else cache)


def summarise_log(rows) -> dict:
    """Per route: requests, p99 ms, cacheable GETs and hits; over all: p99/p99.9, the hit ratio."""
    routes, times, hits, cacheable = {}, [], 0, 0
    for name, ms, cache in rows:
        route = routes.setdefault(name, {"times": [], "cacheable": 0, "hits": 0})
        route["times"].append(ms)
        times.append(ms)
        if cache:
            route["cacheable"] += 1
            route["hits"] += cache == "HIT"
            cacheable += 1
            hits += cache == "HIT"
    endpoints = {name: {"requests": len(r["times"]), "p99_ms": round(percentile(r["times"], 0.99), 1),
                        "cacheable": r["cacheable"], "hits": r["hits"],
                        "hit_ratio": round(r["hits"] / r["cacheable"], 3) if r["cacheable"] else None}
                 for name, r in sorted(routes.items())}
    return {"endpoints": endpoints, "hit_ratio": round(hits / cacheable, 3) if cacheable else None,
            "requests": len(times),
            "p99_ms": round(percentile(times, 0.99), 1) if times else None,
            "p999_ms": round(percentile(times, 0.999), 1) if times else None}


class AccessLogs:
    """The lines the balancers log during a run, per balancer and over all of them."""

    def __init__(self, logs: dict):
        self.logs = logs
        self.offsets = {name: (p.stat().st_size if p.exists() else 0) for name, p in logs.items()}

    def read(self) -> dict:
        time.sleep(1.5)  # the balancers flush their log buffer every second
        per_balancer, everything = {}, []
        for name, path in self.logs.items():
            if not path.exists():
                continue
            with open(path, "rb") as f:
                f.seek(self.offsets[name])
                rows = list(parse_log_lines(f.read().decode(errors="replace").splitlines()))
            everything += rows
            per_balancer[name] = summarise_log(rows)
        overall = summarise_log(everything)
        overall["balancers"] = {name: {"hit_ratio": b["hit_ratio"], "requests": b["requests"],
                                       "routes": {r: e["hit_ratio"] for r, e in b["endpoints"].items()
                                                  if e["hit_ratio"] is not None}}
                                for name, b in per_balancer.items()}
        return overall


# -- clients beside the generator -------------------------------------------------------------

class Bystander(threading.Thread):
    """A light client beside the generator (one request per service every 20 ms, on its own
    keep-alive connections): the latency a request meets in the servers and the kernel while
    the generator saturates them, without the generator's own queueing."""

    def __init__(self, addresses: dict, products, interval: float = 0.02):
        super().__init__(daemon=True)
        self.addresses, self.products, self.interval = addresses, [int(p) for p in products], interval
        self.times, self.running = [], True

    def run(self):
        paths = {"products": "/products/{}", "qa": "/qa/questions?product_id={}&count=100",
                 "reviews": "/reviews/meta?product_id={}"}
        i = 0
        while self.running:
            for service, path in paths.items():
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(self.addresses[service] + path.format(
                            self.products[i % len(self.products)]), timeout=5) as response:
                        response.read()
                except OSError:
                    continue
                self.times.append((time.perf_counter() - started) * 1000)
            i += 1
            time.sleep(self.interval)

    def stop(self) -> dict:
        self.running = False
        self.join(10)
        t = self.times
        return {"requests": len(t), "p50_ms": _r(percentile(t, 0.5)), "p99_ms": _r(percentile(t, 0.99)),
                "max_ms": _r(max(t) if t else None)}


def _r(value, digits=1):
    return None if value is None else round(value, digits)


# -- one run ----------------------------------------------------------------------------------

def host_port(url: str) -> str:
    return url.split("//", 1)[1].rstrip("/")


def generator_env(addresses: dict, folder: Path, page_loads: int) -> dict:
    return dict(BENCH_DIR=str(folder), BENCH_PAGE_LOADS=str(page_loads),
                **{f"BENCH_{s.upper()}": host_port(addresses[s]) for s in SERVICES})


def run_wrk(addresses: dict, folder: Path, page_loads: int, seconds: int, connections: int):
    """wrk -t3 (one thread per service) on the request files in folder: (its JSON, its CPU seconds)."""
    (folder / "progress").write_bytes(bytes(64))
    text, cpu = wrk.run(addresses["products"], LUA, seconds, connections, threads=3,
                        env=generator_env(addresses, folder, page_loads), timeout="5s")
    found = re.search(r"^BENCH_FLEET (.*)$", text, re.M)
    if not found:
        raise SystemExit(f"wrk did not report:\n{text[-2000:]}")
    return json.loads(found.group(1)), cpu


def run_k6(addresses: dict, folder: Path, page_loads: int, rate: int, seconds: int, mode: str = "open",
           vus: int = 60):
    """k6's constant-arrival-rate run (or, mode "closed", `vus` closed-loop connections) of the
    request files in folder: (its summary, its CPU seconds)."""
    summary = folder / f"{mode}-summary.json"
    summary.unlink(missing_ok=True)
    env = dict(os.environ, **generator_env(addresses, folder, page_loads), BENCH_RATE=str(rate),
               BENCH_SECONDS=str(seconds), BENCH_SUMMARY=str(summary), BENCH_MODE=mode,
               K6_NO_USAGE_REPORT="true", **({"BENCH_VUS": str(vus)} if mode == "closed" else {}))
    k6 = Path(sys.executable).parent / "k6"
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen([str(k6), "run", "--quiet", "--no-color", str(OPEN_JS)], stdout=out,
                                   stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        out.seek(0)
        text = out.read()
    if not summary.exists():
        raise SystemExit(f"k6 failed (status {status}):\n{text[-2000:]}")
    return json.loads(summary.read_text()), usage.ru_utime + usage.ru_stime


def one_run(label: dict, env: dict, folder: Path, counts: dict, args, seconds=None, logs=True,
            side=None) -> dict:
    """One wrk run of the request files in folder, with everything measured around it."""
    seconds = seconds or args.seconds
    access = AccessLogs(env["logs"]) if logs else None
    meter = CpuMeter(env["roots"])
    counters = machine.Counters()
    switches = {tier: machine.switches(pids) for tier, pids in env["roots"].items()}
    queues = machine.Queues(env["ports"]) if side is not None else None
    bystander = Bystander(env["addresses"], side) if side is not None else None
    for thread in (queues, bystander):
        if thread:
            thread.start()
    result, loadgen_cpu = run_wrk(env["addresses"], folder, counts["page_loads"], seconds, args.connections)
    tail = {"queues": queues.stop(), "bystander": bystander.stop()} if side is not None else None
    cpu = meter.stop(loadgen_cpu)
    switched = {tier: machine.switches(pids) - switches[tier] for tier, pids in env["roots"].items()}
    seen = counters.stop()
    balancer = access.read() if access else {}
    duration = result["duration_us"] / 1e6
    rps = result["requests"] / duration
    run = {**label, "duration_s": round(duration, 1), "requests": result["requests"], "rps": round(rps),
           "page_loads_per_s": round(rps * counts["page_loads"] / counts["requests"], 1),
           "replayed": result["requests"] > counts["requests"],
           "p50_ms": round(result["p50_us"] / 1000, 1), "p95_ms": round(result["p95_us"] / 1000, 1),
           "p99_ms": round(result["p99_us"] / 1000, 1), "errors": sum(result["errors"].values()),
           "hit_ratio": balancer.get("hit_ratio"), "cpu_seconds": cpu,
           "context_switches_per_request": {t: round(n / max(result["requests"], 1), 2) for t, n in switched.items()},
           "machine": seen, "endpoints": balancer.get("endpoints", {}),
           "balancers_detail": balancer.get("balancers", {}),
           "balancer_p99_ms": balancer.get("p99_ms"), "balancer_p999_ms": balancer.get("p999_ms")}
    if tail:
        run["tail"] = tail
    say(f"  {label.get('balancers', '-')} balancer(s) {label['instances']} instance(s) {label['mix']:<8} "
        f"{label['cache']:<6}: {run['rps']:,} req/s, p95 {run['p95_ms']} p99 {run['p99_ms']} ms, "
        f"errors {run['errors']}, hit {run['hit_ratio']}, other CPU {cpu['other']} s, steal {seen['steal_share']:.1%}")
    return run


def open_run(label: dict, env: dict, files: tuple, share: float, seconds: int, connections: int) -> dict:
    """k6 in a closed loop first (its own maximum on this machine: the generator's CPU is then
    the same in both runs), then at a constant arrival rate of `share` of that maximum; each on
    page loads of its own (files: two (folder, counts)), or the second would replay the first's."""
    (closed_folder, closed_counts), (folder, counts) = files
    closed, _ = run_k6(env["addresses"], closed_folder, closed_counts["page_loads"], 0, seconds, mode="closed",
                       vus=connections)
    rate = max(1, int(share * closed["rps"]))
    access = AccessLogs(env["logs"])
    meter = CpuMeter(env["roots"])
    summary, loadgen_cpu = run_k6(env["addresses"], folder, counts["page_loads"], rate, seconds)
    cpu = meter.stop(loadgen_cpu)
    balancer = access.read()
    # Kept up: at most 1% of the requests due not started, and 97% of the rate reached.
    kept_up = summary["dropped_iterations"] <= 0.01 * rate * seconds and summary["rps"] >= 0.97 * rate
    run = {**label, "share": share, "closed_max_rps": round(closed["rps"]), "closed_p99_ms": _r(closed["p99_ms"]),
           "target_rps": rate, "rps": round(summary["rps"]), "requests": summary["requests"],
           "p50_ms": _r(summary["p50_ms"]), "p95_ms": _r(summary["p95_ms"]), "p99_ms": _r(summary["p99_ms"]),
           "max_ms": _r(summary["max_ms"]), "failed_share": round(summary["failed_share"], 4),
           "dropped_iterations": summary["dropped_iterations"], "generator_kept_up": kept_up,
           "hit_ratio": balancer.get("hit_ratio"), "cpu_seconds": cpu, "duration_s": seconds,
           "balancer_p99_ms": balancer.get("p99_ms")}
    say(f"  k6 closed loop ({connections} VUs): {run['closed_max_rps']:,} req/s; open model at {rate:,} req/s: "
        f"{run['rps']:,} req/s, p95 {run['p95_ms']} p99 {run['p99_ms']} ms, dropped {run['dropped_iterations']}, "
        f"k6 CPU {cpu['loadgen']:.1f} s")
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
        env = {"addresses": {s: url for s in SERVICES},
               "roots": {"nginx": [pid], "front": [], "instances": [], "postgres": []},
               "logs": {}, "ports": [STATIC_PORT]}
        return one_run({"balancers": 0, "instances": 0, "mix": "static", "cache": "off", "repeat": 1}, env,
                       folder, counts, args, logs=False)
    finally:
        subprocess.run([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-s", "stop"], check=False)


# -- the phases -------------------------------------------------------------------------------

class RequestFiles:
    """Request files written on demand into a temporary folder: (folder, counts) per (mix, seed)."""

    def __init__(self, catalogue, work: Path, page_loads: int):
        self.catalogue, self.work, self.page_loads = catalogue, work, page_loads
        self.made = {}

    def get(self, mix: str, seed: int, page_loads=None):
        page_loads = max(page_loads or 0, self.page_loads)
        key = (mix, seed, page_loads)
        if key not in self.made:
            folder = self.work / f"{mix}-{seed}-{page_loads}"
            self.made[key] = (folder, write_page_loads(self.catalogue, mix, seed, page_loads, folder))
        return self.made[key]


def pages_played(run: dict, counts: dict) -> int:
    """How many of a request file's page loads a run played (its threads keep within 20 page
    loads of each other; a file played more than once counts once)."""
    return min(counts["page_loads"], round(run["requests"] * counts["page_loads"] / counts["requests"]))


def stack_env(balancers: int) -> dict:
    status = json.loads(stack("status", "--json", capture=True))
    logs = balancer_logs(status)
    caching = status.get("caching_balancers") or {}
    local = {s: [b["url"] for b in caching.get(s, [])] for s in SERVICES}
    ports = sorted({int(u.rsplit(":", 1)[1]) for u in [*status["urls"].values(), *sum(local.values(), [])]})
    return {"status": status, "addresses": status["urls"], "roots": tier_roots(status), "logs": logs,
            "ports": ports, "local": local,
            "instances": len(status["instances"]["products"])}


def probe_targets(catalogue, balancers: dict, count: int = 30) -> list:
    """Popular products (the top of the Zipf order): the most helpful question and review of each."""
    targets = []
    for p in (int(p) for p in catalogue.by_popularity[:count]):
        for kind in ("qa", "reviews"):
            try:
                target = visibility.Target.most_helpful(kind, p, balancers[kind][0])
            except (OSError, ValueError):
                target = None
            if target:
                targets.append(target)
    return targets


def fleet_phases(b: int, n: int, files: RequestFiles, catalogue, args) -> dict:
    """Every phase at one BALANCERS value; returns its runs, its open-model run and its probe."""
    label = {"balancers": b, "instances": n}
    up = ["up", "--instances", str(n), "--cache", "1", "--write-rate-limit", "0"]
    if b != 1:
        up += ["--balancers", str(b)]
    if not args.keep_stack:
        stack(*up, capture=True)
    env = stack_env(b)
    label["instances"] = env["instances"]
    runs = []
    found = {"runs": runs, "open": None, "visibility": None}
    say(f"BALANCERS={b}, INSTANCES={env['instances']}:")
    if "uniform" in args.mixes:
        folder, counts = files.get("uniform", 1)
        for repeat in range(1, args.repeats + 1):
            if not args.keep_stack:
                stack("flush", capture=True)
            runs.append(one_run({**label, "mix": "uniform", "cache": "cold", "repeat": repeat}, env, folder,
                                counts, args))
    if "zipf" in args.mixes:
        if not args.keep_stack:
            stack("flush", capture=True)
        ceiling = Ceiling(b)  # perfect caches, fed the same requests from the flush on
        if args.steady:
            say(f"  steady state: {args.steady} s of Zipf page loads (not measured)")
            folder, counts = files.get("zipf", 100, PAGE_LOADS_PER_SECOND * args.steady)
            warmup = one_run({**label, "mix": "zipf", "cache": "steady-up", "repeat": 0}, env, folder, counts,
                             args, seconds=args.steady)
            warmup["hit_ceiling"] = round(ceiling.replay(folder, pages_played(warmup, counts)), 3)
            found["steady_up"] = {k: warmup[k] for k in ("rps", "hit_ratio", "hit_ceiling", "duration_s", "replayed")}
        probe = None
        if b > 1 and all(len(env["local"].get(s, [])) > 1 for s in ("qa", "reviews")):
            probe = visibility.Probe(env["local"], probe_targets(catalogue, env["local"]))
            probe.start()
        side = [int(p) for p in catalogue.by_popularity[:2000:7]]
        for repeat in range(1, args.repeats + 1):
            folder, counts = files.get("zipf", 100 + repeat, PAGE_LOADS_PER_SECOND * args.seconds)
            runs.append(one_run({**label, "mix": "zipf", "cache": "steady", "repeat": repeat}, env, folder,
                                counts, args, side=side))
            runs[-1]["hit_ceiling"] = round(ceiling.replay(folder, pages_played(runs[-1], counts)), 3)
        if probe:
            found["visibility"] = {**label, **probe.stop()}
        if args.open_share:
            pair = tuple(files.get("zipf", seed, PAGE_LOADS_PER_SECOND * args.seconds) for seed in (200, 201))
            found["open"] = open_run({**label, "mix": "zipf", "cache": "steady"}, env, pair, args.open_share,
                                     args.seconds, args.connections)
    return found


# -- the tables -------------------------------------------------------------------------------

def spread(values, fmt="{:,.0f}") -> str:
    """median (min–max) of the repeats; the value alone when there is one."""
    values = [v for v in values if v is not None]
    if not values:
        return ""
    middle = fmt.format(statistics.median(values))
    return middle if len(values) == 1 else f"{middle} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def groups(runs):
    found = {}
    for r in runs:
        found.setdefault((r.get("balancers", 0), r["instances"], r["mix"], r["cache"]), []).append(r)
    return found


def per_request_us(runs, tier: str):
    return [r["cpu_seconds"].get(tier, 0) / r["requests"] * 1e6 for r in runs if r["requests"]]


def print_tables(report: dict, args):
    runs = report["runs"]
    m = report["machine"]
    print(f"\nbench-fleet {report['measured_at']}: wrk -t3 -c{args.connections} {args.seconds} s per run, "
          f"{args.repeats} repeats (median (min–max)), steady state after {args.steady} s of Zipf traffic; "
          f"{m['cores']} cores ({m['cpu']}, {m['threads_per_core']} thread(s) per core, core speed "
          f"{m['core_speed_mloops_per_cpu_s']} M loop steps per CPU-second), generator on the same machine; "
          f"default INSTANCES here "
          f"{m['default_instances']}; NGINX_WORKERS={m['nginx_workers']}; machine: {report['load']}")
    earlier = report["settings"].get("earlier_writes") or {}
    if any(earlier.values()):
        print("Posted by earlier runs of this benchmark on this database, before this one: "
              + ", ".join(f"{count:,} {table}" for table, count in earlier.items())
              + " (on the popular products, whose lists then cost more than the loaded data's: "
              "`make load` restores the data).")
    print()
    print("| balancers | instances | mix | cache | req/s | p50 ms | p95 ms | p99 ms | errors | hit ratio "
          "| hit ceiling | µs/req nginx | front | instances | postgres | wrk | softirq | other | steal | iowait "
          "| context switches/req nginx, instances, postgres | PostgreSQL blocks read/req |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for (b, n, mix, cache), rs in groups(runs).items():
        hit = spread([r["hit_ratio"] * 100 for r in rs if r["hit_ratio"] is not None], "{:.0f}%")
        ceiling = spread([r["hit_ceiling"] * 100 for r in rs if r.get("hit_ceiling") is not None], "{:.0f}%")
        print(f"| {b or '-'} | {n or '-'} | {mix} | {cache} | {spread([r['rps'] for r in rs])} "
              f"| {spread([r['p50_ms'] for r in rs], '{:.1f}')} | {spread([r['p95_ms'] for r in rs], '{:.1f}')} "
              f"| {spread([r['p99_ms'] for r in rs], '{:.1f}')} | {sum(r['errors'] for r in rs)} | {hit} | {ceiling} | "
              + " | ".join(spread(per_request_us(rs, t)) for t in ("nginx", "front", "instances", "postgres",
                                                                    "loadgen", "softirq", "other"))
              + f" | {spread([r['machine']['steal_share'] * 100 for r in rs], '{:.1f}%')} "
              f"| {spread([r['machine'].get('iowait_share', 0) * 100 for r in rs], '{:.1f}%')} | "
              + ", ".join(spread([r["context_switches_per_request"].get(t, 0) for r in rs], "{:.2f}")
                          for t in ("nginx", "instances", "postgres"))
              + f" | {spread([r['cpu_seconds'].get('postgres_blocks', {}).get('read', 0) / r['requests'] for r in rs], '{:.2f}')} |")
    replayed = [r for r in runs if r.get("replayed")] + [
        {**up, "mix": "zipf", "cache": "steady-up", "repeat": 0} for up in report.get("steady_up", []) if up.get("replayed")]
    if replayed:
        print("\n**Replayed**: these runs outlasted their request file, whose page loads then repeated "
              "(their hit ratio is not the traffic's): " + ", ".join(
                  f"{r.get('balancers', '-')} balancer(s) {r['mix']} {r['cache']} repeat {r['repeat']}" for r in replayed)
              + "; raise PAGE_LOADS_PER_SECOND (bench/atelier_bench/fleet.py).")
    steady = [r for r in runs if r["cache"] == "steady"]
    if steady:
        print("\nPostgreSQL CPU per request of each service (µs; its database's backends / the service's "
              "requests), Zipf steady:\n")
        print("| balancers | " + " | ".join(SERVICES) + " | server processes (per request of all) |")
        print("|---:|" + "---:|" * (len(SERVICES) + 1))
        for (b, _n, _mix, _cache), rs in groups(steady).items():
            cells = []
            for s in SERVICES:
                cells.append(spread([r["cpu_seconds"]["postgres_by_database"].get(s, 0) * 1e6
                                     / max(service_requests(r, s), 1) for r in rs]))
            cells.append(spread([r["cpu_seconds"]["postgres_by_database"].get("server", 0) * 1e6 / r["requests"]
                                 for r in rs]))
            print(f"| {b} | " + " | ".join(cells) + " |")
        print("\nHit ratio per route and per balancer (each balancer has its own cache), Zipf steady, "
              "median of the repeats:\n")
        routes = sorted({name for r in steady for d in r["balancers_detail"].values() for name in d["routes"]})
        print("| balancers | balancer | all GETs | " + " | ".join(routes) + " |")
        print("|---:|---|---:|" + "---:|" * len(routes))
        for (b, _n, _mix, _cache), rs in groups(steady).items():
            for name in sorted({k for r in rs for k in r["balancers_detail"]}):
                details = [r["balancers_detail"][name] for r in rs if name in r["balancers_detail"]]
                cells = [spread([d["routes"].get(route, None) and d["routes"][route] * 100 for d in details],
                                "{:.0f}%") for route in routes]
                print(f"| {b} | {name} | {spread([d['hit_ratio'] * 100 for d in details if d['hit_ratio'] is not None], '{:.0f}%')} | "
                      + " | ".join(cells) + " |")
        print("\nWhere the client's tail comes from, Zipf steady (per run: client = wrk; balancer = every "
              "request's nginx $request_time; bystander = a light client beside wrk):\n")
        print("| balancers | repeat | client p99 ms | balancer p99 / p99.9 ms | bystander p99 / max ms "
              "| accept queue max | listen overflows | retransmits (loss probes) | RTO | client unread bytes max |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in steady:
            t, mc = r.get("tail") or {}, r["machine"]
            q, by = t.get("queues", {}), t.get("bystander", {})
            print(f"| {r['balancers']} | {r['repeat']} | {r['p99_ms']} | {r['balancer_p99_ms']} / {r['balancer_p999_ms']} "
                  f"| {by.get('p99_ms')} / {by.get('max_ms')} | {max(q.get('accept_queue_max', {0: 0}).values() or [0])} "
                  f"| {mc['tcp']['listen_overflows']} | {mc['tcp']['retransmitted_segments']} "
                  f"({mc['tcp']['loss_probes']}) | {mc['tcp']['retransmission_timeouts']} "
                  f"| {q.get('client_unread_bytes_max')} |")
    if report["open"]:
        print("\nOpen model, after the steady runs: k6 first in a closed loop (its maximum here, with its own CPU), "
              "then at a constant arrival rate of a share of that maximum (the same Zipf page loads):\n")
        print("| balancers | k6 closed-loop max req/s (p99 ms) | target req/s (share) | achieved req/s | p50 ms | p95 ms "
              "| p99 ms | max ms | failed | dropped | generator kept up | k6 CPU s | hit ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        for o in report["open"]:
            print(f"| {o['balancers']} | {o['closed_max_rps']:,} ({o['closed_p99_ms']}) | {o['target_rps']:,} "
                  f"({o['share']:.0%}) | {o['rps']:,} | {o['p50_ms']} "
                  f"| {o['p95_ms']} | {o['p99_ms']} | {o['max_ms']} | {o['failed_share']:.2%} "
                  f"| {o['dropped_iterations']} | {'yes' if o['generator_kept_up'] else 'NO'} "
                  f"| {o['cpu_seconds']['loadgen']:.1f} | {o['hit_ratio']} |")
    if report["visibility"]:
        print("\nWrite-to-visible delay at the other balancer (write through one instance-local balancer, "
              "read through another; during the Zipf steady runs):\n")
        print("| balancers | trials | p50 ms | p99 ms | max ms | stale 10 ms after the acknowledgement "
              "| not visible within 5 s | errors |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for v in report["visibility"]:
            print(f"| {v['balancers']} | {v['trials']} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} "
                  f"| {v['stale_after_pause']} | {v['not_visible_in_5s']} | {v['errors']} |")
    skipped = report.get("skipped")
    if skipped:
        print("\nnot measured: " + "; ".join(skipped))


def service_requests(run: dict, service: str) -> int:
    prefix = {"products": "product", "qa": "qa_", "reviews": "reviews_"}[service]
    return sum(e["requests"] for name, e in run["endpoints"].items() if name.startswith(prefix))


def machine_facts(args) -> dict:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        lscpu = ""
    fact = lambda key: (re.search(rf"^{key}:\s+(.*)$", lscpu, re.M) or [None, None])[1]  # noqa: E731
    return {"cores": os.cpu_count(), "cpu": fact("Model name") or platform.processor() or platform.machine(),
            "core_speed_mloops_per_cpu_s": machine.core_speed(),
            "threads_per_core": fact(r"Thread\(s\) per core"), "l2": fact("L2 cache"), "l3": fact("L3 cache"),
            "hypervisor": fact("Hypervisor vendor"),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_generator": f"wrk -t3 -c{args.connections}, k6 (open model), on the same machine",
            "workers_per_instance": int(os.environ.get("WEB_CONCURRENCY", "1")),
            "default_instances": local_fleet.default_instances(),
            "nginx_workers": os.environ.get("NGINX_WORKERS") or local_fleet.default_nginx_workers()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--balancers", default="1,2",
                        help="instance-local balancers per service, comma-separated (default 1,2)")
    parser.add_argument("--instances", type=int, default=None,
                        help="instances per service (default: the machine's, atelier_common.fleet.default_instances)")
    parser.add_argument("--mixes", default="zipf,uniform")
    parser.add_argument("--steady", type=int, default=180,
                        help="seconds of Zipf traffic before the measured Zipf runs (default 180)")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per figure (default 3)")
    parser.add_argument("--seconds", type=int, default=15, help="per measured run")
    parser.add_argument("--open-share", type=float, default=0.8,
                        help="open-model rate as a share of k6's closed-loop maximum (0: no open-model run)")
    parser.add_argument("--connections", type=int, default=60, help="wrk connections (a third per service)")
    parser.add_argument("--page-loads", type=int, default=12000, help="fewest page loads per request file")
    parser.add_argument("--no-static", action="store_true", help="skip the load generator's ceiling")
    parser.add_argument("--keep-stack", action="store_true",
                        help="measure the running stack as it is (no `stack.py up`, cache not flushed)")
    parser.add_argument("--load", default=os.environ.get("BENCH_MACHINE_LOAD", "not stated"),
                        help="what else ran on the machine, printed with the figures (e.g. 'quiet', "
                             "'shared with other jobs')")
    parser.add_argument("--out", type=Path, default=OUT / "fleet.json")
    args = parser.parse_args(argv)
    wrk.require()
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        raise SystemExit("nginx is not installed: `make install` installs it (as root)")
    instances = args.instances or local_fleet.default_instances()

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    work = Path(tempfile.mkdtemp(prefix="atelier-fleet-"))
    say("reading product ids and related lists")
    catalogue = Catalogue()
    files = RequestFiles(catalogue, work, args.page_loads)
    report = {"measured_at": started, "machine": machine_facts(args), "load": args.load,
              "settings": {"steady_s": args.steady, "repeats": args.repeats, "seconds": args.seconds,
                           "connections": args.connections, "open_share": args.open_share,
                           "earlier_writes": catalogue.earlier_writes()},
              "runs": [], "open": [], "visibility": [], "steady_up": [], "skipped": []}
    try:
        if not args.no_static:
            folder, counts = files.get(args.mixes.split(",")[0], 1)
            report["runs"].append(static_ceiling(folder, counts, args))
        for b in [int(x) for x in args.balancers.split(",")]:
            try:
                found = fleet_phases(b, instances, files, catalogue, args)
            except subprocess.CalledProcessError as error:
                reason = (error.stderr or error.stdout or "").strip().splitlines()[-1:] or [str(error)]
                report["skipped"].append(f"BALANCERS={b}: `stack.py up` failed: {reason[0]}")
                say(f"  BALANCERS={b} skipped: {reason[0]}")
                continue
            report["runs"] += found["runs"]
            for key in ("open", "visibility", "steady_up"):
                if found.get(key):
                    report[key].append({"balancers": b, **found[key]} if key == "steady_up" else found[key])
            if b > 1 and not found.get("visibility"):
                report["skipped"].append(f"BALANCERS={b}: write-to-visible probe (the stack lists no "
                                         "instance-local balancers)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_tables(report, args)
    say(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
