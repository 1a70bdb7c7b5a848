"""`make soak`: the page-load mix with writes at a steady rate through the balancers, for
10 minutes (DURATION), against a running `make up` stack (or the URLs given).

A page load is what the product page asks for, as k6/lib/page-load.json defines it (k6 and the
fleet benchmark replay the same): the product, its styles and related list, a card per related
product, the questions, the reviews and the ratings summary. Page loads start at a fixed rate
(an open model: a slow answer does not slow the arrivals down), and writes (drawn by that
file's weights: posts and helpful votes) at their own fixed rate. It reports, per minute, requests, errors, p50
and p99; the resident memory (RSS) of every gunicorn worker and nginx worker at the start and
at the end; and fails (exit 1) on any error, a worker whose RSS grew by more than 25 % and
50 MB, or a last-minute p99 more than twice the first full minute's (and above 50 ms).
Results also go to .data/soak/soak-<time>.json.
"""
import argparse
import json
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests

from atelier_bench.routes import by_name, page_load, page_reads
from atelier_bench.stack import status as stack_status
from atelier_bench.stats import percentile
from atelier_common.localpg import DATA, ROOT

OUT = DATA / "soak"
WRITABLE = ("qa_question_post", "qa_answer_post", "qa_question_helpful", "reviews_post", "reviews_helpful")


def worker_memory(status: dict) -> dict:
    """{"<tier> <service> pid": RSS bytes} of every gunicorn worker and nginx worker."""
    memory = {}
    for service, pids in status["instances"].items():
        for master in pids:
            for child in psutil.Process(master).children():
                memory[f"gunicorn {service} {child.pid}"] = child.memory_info().rss
    for service, master in status["balancers"].items():
        if master:
            for child in psutil.Process(master).children():
                memory[f"nginx {service} {child.pid}"] = child.memory_info().rss
    return memory


class Soak:
    def __init__(self, urls: dict, products: int, seed: int):
        self.urls = urls
        self.products = products
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.samples = []  # (minute, seconds, ok, route, status)
        self.started = time.monotonic()
        self.question_ids = []
        self.review_ids = []
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def product(self) -> int:
        # A few products are much more popular than the rest (Zipf-like).
        return min(self.products, int(self.rng.paretovariate(1.2)))

    def call(self, route: str, service: str, method: str, path: str, expect=(200,), **kwargs):
        started = time.monotonic()
        status, body = None, None
        try:
            response = self.session().request(method, self.urls[service] + path, timeout=10, **kwargs)
            status = response.status_code
            body = response
        except requests.RequestException as error:
            status = type(error).__name__
        elapsed = time.monotonic() - started
        with self.lock:
            self.samples.append((int((started - self.started) // 60), elapsed, status in expect, route, status))
        return body

    def page_load(self):
        """One page load as k6/lib/page-load.json defines it (k6 and the fleet benchmark replay
        the same): the product's own reads, a card per related product, the page's reads."""
        product = self.product()
        routes = by_name()

        def read(name, target):
            expect = (200, 404) if routes[name].service == "products" else (200,)
            return self.call(name, routes[name].service, "GET", target, expect=expect)

        definition = page_load()
        own = [read(name, target) for name, target in page_reads(product, [])[:len(definition["product"])]]
        related = own[definition["product"].index("product_related")]
        try:
            related_ids = related.json() if related is not None and related.status_code == 200 else []
        except ValueError:
            related_ids = []
        answers = {name: read(name, target)
                   for name, target in page_reads(product, related_ids)[len(definition["product"]):]}
        try:
            with self.lock:
                self.question_ids += [q["question_id"] for q in answers["qa_questions"].json()["results"]][:2]
                self.review_ids += [r["review_id"] for r in answers["reviews_list"].json()["results"]][:2]
                del self.question_ids[:-1000], self.review_ids[:-1000]
        except (AttributeError, ValueError, KeyError, TypeError):
            pass

    def write(self):
        """One write, drawn by the page load's weights among the ones the soak can make (no
        answer ids, no reports: a reported question or review would fail later votes on it)."""
        product = self.product()
        weights = {k: w for k, w in page_load()["writes"].items() if k in WRITABLE}
        kind = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        route = by_name()[kind]
        if kind in ("qa_question_helpful", "qa_answer_post") and self.question_ids:
            question = self.rng.choice(self.question_ids)
            body = {"json": {"body": "It runs a little small.", "name": "soak", "email": "soak@example.com",
                             "photos": []}} if kind == "qa_answer_post" else {}
            self.call(kind, route.service, route.method, route.url(question), expect=(route.status,), **body)
        elif kind == "reviews_helpful" and self.review_ids:
            review = self.rng.choice(self.review_ids)
            self.call(kind, route.service, route.method, route.url(review), expect=(route.status,))
        elif kind == "reviews_post":
            meta = self.call("reviews_meta", "reviews", "GET", f"/reviews/meta?product_id={product}")
            characteristics = {str(c["id"]): self.rng.randint(1, 5)
                               for c in meta.json()["characteristics"].values()} if meta is not None else {}
            self.call(kind, route.service, route.method, route.path, expect=(route.status,), json={
                "product_id": product, "rating": self.rng.randint(1, 5), "summary": "Soak test",
                "body": "Worn every day for a month and it still looks new; the fit is good.",
                "recommend": True, "name": "soak", "email": "soak@example.com", "photos": [],
                "characteristics": characteristics})
        else:  # a question post, or nothing yet to vote on
            route = by_name()["qa_question_post"]
            self.call(route.name, route.service, route.method, route.path, expect=(route.status,), json={
                "body": "Does this run true to size?", "name": "soak", "email": "soak@example.com",
                "product_id": product})

    def run(self, duration: float, page_rate: float, write_rate: float, clients: int):
        late = 0
        with ThreadPoolExecutor(clients) as pool:
            pending = []
            next_page, next_write = time.monotonic(), time.monotonic()
            end = self.started + duration
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_page:
                    pending.append(pool.submit(self.page_load))
                    next_page += 1 / page_rate
                if now >= next_write:
                    pending.append(pool.submit(self.write))
                    next_write += 1 / write_rate
                pending = [f for f in pending if not f.done()]
                if len(pending) > clients:
                    late += 1  # arrivals waiting for a free client: the system fell behind
                time.sleep(max(0.0, min(next_page, next_write) - time.monotonic()))
        return late


def minute_table(samples) -> list:
    minutes = {}
    for minute, seconds, ok, _, _ in samples:
        minutes.setdefault(minute, []).append((seconds, ok))
    rows = []
    for minute in sorted(minutes):
        values = minutes[minute]
        latencies = [s for s, _ in values]
        rows.append({"minute": minute + 1, "requests": len(values),
                     "errors": sum(1 for _, ok in values if not ok),
                     "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
                     "p99_ms": round(1000 * percentile(latencies, 0.99), 1)})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION", 600)))
    parser.add_argument("--page-rate", type=float, default=float(os.environ.get("PAGE_RATE", 5)),
                        help="page loads started per second (about 19 requests each on the sample data)")
    parser.add_argument("--write-rate", type=float, default=float(os.environ.get("WRITE_RATE", 3)),
                        help="writes per second")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--products", type=int, default=int(os.environ.get("SOAK_PRODUCTS", 10000)),
                        help="product ids drawn from 1..N")
    args = parser.parse_args()

    status = stack_status()
    if not all(status["balancers"].values()):
        raise SystemExit("the stack is not running: `make up` first")
    memory_start = worker_memory(status)
    soak = Soak(status["urls"], args.products, seed=1)
    print(f"soak: {args.duration:.0f} s, {args.page_rate}/s page loads + {args.write_rate}/s writes "
          f"through {', '.join(status['urls'].values())}", flush=True)
    late = soak.run(args.duration, args.page_rate, args.write_rate, args.clients)
    memory_end = worker_memory(stack_status())

    rows = minute_table(soak.samples)
    errors = [s for s in soak.samples if not s[2]]
    print("\n| minute | requests | errors | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['minute']} | {row['requests']} | {row['errors']} | {row['p50_ms']} | {row['p99_ms']} |")
    print("\n| worker | RSS start MB | RSS end MB | growth |\n|---|---:|---:|---:|")
    grown = []
    for name in sorted(memory_start):
        start, end = memory_start[name], memory_end.get(name)
        if end is None:
            print(f"| {name} | {start / 2**20:.1f} | (gone: restarted) | |")
            grown.append(name)
            continue
        growth = (end - start) / start
        print(f"| {name} | {start / 2**20:.1f} | {end / 2**20:.1f} | {growth:+.1%} |")
        if growth > 0.25 and end - start > 50 * 2**20:
            grown.append(name)
    full = [r for r in rows if r["requests"] > 0][:-1] or rows  # the last minute may be partial
    first, last = full[0]["p99_ms"], full[-1]["p99_ms"]
    print(f"\nrequests {len(soak.samples)}, errors {len(errors)}, arrivals that found every client busy {late}; "
          f"p99 first full minute {first} ms, last {last} ms")
    if errors:
        print("errors by route and status:",
              json.dumps({f"{r} {s}": sum(1 for e in errors if (e[3], e[4]) == (r, s))
                          for r, s in {(e[3], e[4]) for e in errors}}))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"soak-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"duration_s": args.duration, "page_rate": args.page_rate,
                                "write_rate": args.write_rate, "minutes": rows, "errors": len(errors),
                                "late_arrivals": late, "rss_start": memory_start, "rss_end": memory_end},
                               indent=1))
    print(f"results in {path.relative_to(ROOT)}")
    failed = bool(errors) or bool(grown) or (last > 2 * first and last > 50)
    if failed:
        print(f"SOAK FAILED: errors {len(errors)}, memory grown {grown}, p99 {first} -> {last} ms")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
