"""`make soak`: the page-load mix with writes at a steady rate through the balancers, for
10 minutes (DURATION), against a running `make up` stack (or the URLs given).

A page load is what the product page asks for: the product, its styles, related products,
the first reviews, the ratings summary and the first questions. Page loads start at a fixed
rate (an open model: a slow answer does not slow the arrivals down), and writes (a question, a
review, a helpful vote) at their own fixed rate. It reports, per minute, requests, errors, p50
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

from atelier_bench.stack import status as stack_status
from atelier_bench.stats import percentile
from atelier_common.localpg import DATA, ROOT

OUT = DATA / "soak"


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
        product = self.product()
        self.call("product", "products", "GET", f"/products/{product}", expect=(200, 404))
        self.call("product_styles", "products", "GET", f"/products/{product}/styles", expect=(200, 404))
        self.call("product_related", "products", "GET", f"/products/{product}/related", expect=(200, 404))
        reviews = self.call("reviews_list", "reviews", "GET", f"/reviews?product_id={product}&count=2&sort=relevant")
        self.call("reviews_meta", "reviews", "GET", f"/reviews/meta?product_id={product}")
        questions = self.call("qa_questions", "qa", "GET", f"/qa/questions?product_id={product}&count=4")
        try:
            with self.lock:
                self.question_ids += [q["question_id"] for q in questions.json()["results"]][:2]
                self.review_ids += [r["review_id"] for r in reviews.json()["results"]][:2]
                del self.question_ids[:-1000], self.review_ids[:-1000]
        except (AttributeError, ValueError, KeyError, TypeError):
            pass

    def write(self):
        product = self.product()
        roll = self.rng.random()
        if roll < 0.4:
            self.call("qa_question_post", "qa", "POST", "/qa/questions", expect=(201,), json={
                "body": "Does this run true to size?", "name": "soak", "email": "soak@example.com",
                "product_id": product})
        elif roll < 0.6:
            meta = self.call("reviews_meta", "reviews", "GET", f"/reviews/meta?product_id={product}")
            characteristics = {str(c["id"]): self.rng.randint(1, 5)
                               for c in meta.json()["characteristics"].values()} if meta is not None else {}
            self.call("reviews_post", "reviews", "POST", "/reviews", expect=(201,), json={
                "product_id": product, "rating": self.rng.randint(1, 5), "summary": "Soak test",
                "body": "Worn every day for a month and it still looks new; the fit is good.",
                "recommend": True, "name": "soak", "email": "soak@example.com", "photos": [],
                "characteristics": characteristics})
        elif roll < 0.8 and self.question_ids:
            question = self.rng.choice(self.question_ids)
            self.call("qa_question_helpful", "qa", "PUT", f"/qa/questions/{question}/helpful", expect=(204,))
        elif self.review_ids:
            review = self.rng.choice(self.review_ids)
            self.call("reviews_helpful", "reviews", "PUT", f"/reviews/{review}/helpful", expect=(204,))

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
    parser.add_argument("--page-rate", type=float, default=float(os.environ.get("PAGE_RATE", 15)),
                        help="page loads started per second (6 requests each)")
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
