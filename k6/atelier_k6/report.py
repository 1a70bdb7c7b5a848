"""The HTML load report of one k6 run: one self-contained page (no CDN, no network).

Reads a results folder written by atelier_k6.loadtest (points.csv.gz: every k6 point;
summary.json: k6's end-of-test summary with its thresholds; run.json: what ran) and writes
report.html beside them: requests/s, latency percentiles and failed requests over time, per
endpoint, a table per endpoint and the thresholds passed/failed. The numbers are computed
here; the page's inline script only draws them as SVG, so the page works from a file:// URL
on a laptop without internet.
"""
import csv
import gzip
import html
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from atelier_bench.stats import percentile

MAX_POINTS = 150  # time buckets per plot: enough to see a ramp or a spike, light to draw
WANTED = ("http_req_duration", "http_req_failed", "dropped_iterations")


def read_points(path: Path):
    """(second, metric, route, value) for the metrics the report draws."""
    with gzip.open(path, "rt", newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        column = {name: i for i, name in enumerate(header)}
        metric_i, time_i, value_i, name_i = (column[c] for c in
                                             ("metric_name", "timestamp", "metric_value", "name"))
        for row in rows:
            if row[metric_i] in WANTED:
                yield int(row[time_i]), row[metric_i], row[name_i], float(row[value_i])


def summarise(folder: Path) -> dict:
    """Everything the page shows, as plain data (also what the tests compare against)."""
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
    summary = json.loads((folder / "summary.json").read_text())
    # One pass, kept per second (a soak's points do not fit in memory as rows), then bucketed.
    by_second = defaultdict(lambda: defaultdict(list))  # route -> second -> [ms]
    failed_by_second = defaultdict(lambda: defaultdict(int))  # route -> second -> failed
    dropped_by_second = defaultdict(float)
    for second, metric, route, value in read_points(folder / "points.csv.gz"):
        if metric == "http_req_duration":
            by_second[route][second].append(value)
        elif metric == "http_req_failed" and value:
            failed_by_second[route][second] += 1
        elif metric == "dropped_iterations":
            dropped_by_second[second] += value
    seconds = {t for per_route in by_second.values() for t in per_route} | set(dropped_by_second)
    if not seconds:
        raise SystemExit(f"{folder}: k6 wrote no request")
    start = min(seconds)
    span = max(seconds) - start + 1
    bucket = max(1, math.ceil(span / MAX_POINTS))
    buckets = math.ceil(span / bucket)
    durations = defaultdict(lambda: [[] for _ in range(buckets)])  # route -> bucket -> ms
    failures = defaultdict(lambda: [0] * buckets)
    dropped = [0] * buckets
    for route, per_second in by_second.items():
        for second, values in per_second.items():
            durations[route][(second - start) // bucket].extend(values)
            durations["all"][(second - start) // bucket].extend(values)
    for route, per_second in failed_by_second.items():
        for second, count in per_second.items():
            failures[route][(second - start) // bucket] += count
            failures["all"][(second - start) // bucket] += count
    for second, count in dropped_by_second.items():
        dropped[(second - start) // bucket] += count
    routes = sorted(r for r in durations if r != "all")
    # Over time, a percentile per endpoint means something only for routes with a request in
    # most buckets; the rare ones (writes, mostly) are in the table.
    steady = [r for r in routes if sum(1 for v in durations[r] if v) >= 0.8 * buckets]
    times = [i * bucket for i in range(buckets)]

    def rate(counts):
        return [round(c / bucket, 3) for c in counts]

    def series(name, values):
        return {"name": name, "values": values}

    def latency(route, p):
        return [None if not v else round(percentile(v, p / 100), 3) for v in durations[route]]

    plots = [
        {"id": "requests", "title": "Requests per second", "unit": "req/s",
         "series": [series(r, rate([len(v) for v in durations[r]])) for r in ["all"] + routes]},
        {"id": "latency", "title": "Latency of all requests (p50, p95, p99)", "unit": "ms",
         "series": [series(f"p{p}", latency("all", p)) for p in (50, 95, 99)]},
        {"id": "latency_p95", "title": "p95 latency per endpoint (requested in most intervals)",
         "unit": "ms", "series": [series(r, latency(r, 95)) for r in steady]},
        {"id": "latency_p99", "title": "p99 latency per endpoint (requested in most intervals)",
         "unit": "ms", "series": [series(r, latency(r, 99)) for r in steady]},
        {"id": "errors", "title": "Failed requests per second (status >= 400 or no answer)",
         "unit": "err/s",
         "series": [series(r, rate(failures[r])) for r in ["all"] + routes]
                   + [series("dropped iterations", rate(dropped))]},
    ]
    endpoints = []
    for route in ["all"] + routes:
        every = sorted(v for values in durations[route] for v in values)
        errors = sum(failures[route])
        endpoints.append({
            "route": route, "requests": len(every), "rps": round(len(every) / span, 2),
            "p50": round(percentile(every, 0.5), 2), "p95": round(percentile(every, 0.95), 2),
            "p99": round(percentile(every, 0.99), 2), "max": round(every[-1], 2),
            "errors": errors, "error_rate": round(errors / len(every), 5)})
    thresholds = []
    for metric, values in sorted(summary["metrics"].items(), key=lambda item: scope(item[0])):
        for expression, failed in sorted(values.get("thresholds", {}).items()):
            thresholds.append({"scope": scope(metric), "metric": metric.split("{")[0],
                               "threshold": expression, "passed": not failed,
                               "observed": observed(values, expression)})
    return {"run": run, "start": start, "span_s": span, "bucket_s": bucket, "times": times,
            "plots": plots, "endpoints": endpoints, "thresholds": thresholds,
            "iterations": summary["metrics"].get("iterations", {}).get("count", 0),
            "dropped_iterations": summary["metrics"].get("dropped_iterations", {}).get("count", 0)}


def scope(metric: str) -> str:
    """`http_req_duration{name:product}` -> `product`; an untagged metric is `all`."""
    return metric.split("{name:")[1].rstrip("}") if "{name:" in metric else "all"


def observed(values: dict, expression: str):
    """The figure a threshold expression tested (p(95), rate, ...); None without samples."""
    if values.get("count") == 0 or values.get("passes", 1) + values.get("fails", 0) == 0:
        return None
    statistic = expression.split("<")[0].split(">")[0].split("=")[0].strip()
    if statistic == "rate":
        return values.get("value")
    return values.get(statistic)


def write_report(folder: Path) -> Path:
    folder = Path(folder)
    data = summarise(folder)
    page = PAGE.replace("/*DATA*/null", json.dumps(data).replace("</", "<\\/"))
    page = page.replace("<!--TITLE-->", html.escape(data["run"].get("run", folder.name)))
    target = folder / "report.html"
    target.write_text(page)
    return target


PAGE = Path(__file__).with_name("report.html").read_text()  # the page, with its drawing script

if __name__ == "__main__":
    print(write_report(Path(sys.argv[1])))
