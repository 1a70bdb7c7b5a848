"""The fleet benchmark's reading of what it measured, and the default layout it checks: the
balancers' access-log lines (in the log format nginx is configured with) to routes, times and
cache statuses; hit ratios per route and per balancer; the spread of repeats; the layout
derived from the cores."""
import re
from pathlib import Path

from atelier_bench import fleet as bench
from atelier_bench.ceiling import Ceiling
from atelier_common import fleet

LOGGING_CONF = Path(__file__).resolve().parents[1] / "infra" / "nginx" / "conf" / "logging.conf"


def nginx_line(request: str, status: int, seconds: str, cache: str) -> str:
    """A line as nginx writes it with the balancers' own log_format (infra/nginx/conf/logging.conf)."""
    text = LOGGING_CONF.read_text()
    body = text.split("log_format atelier", 1)[1].split(";", 1)[0]
    template = "".join(re.findall(r"'([^']*)'", body))
    values = {"remote_addr": "127.0.0.1", "time_iso8601": "2026-12-06T20:00:00+00:00", "request": request,
              "status": str(status), "body_bytes_sent": "512", "request_time": seconds,
              "upstream_response_time": "0.001", "upstream_addr": "127.0.0.1:3101",
              "upstream_cache_status": cache, "request_id": "0123456789abcdef"}
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], template)


def test_log_lines_in_the_balancers_format_are_read():
    lines = [nginx_line("GET /products/7/styles HTTP/1.1", 200, "0.004", "HIT"),
             nginx_line("GET /qa/questions?product_id=7&count=100 HTTP/1.1", 200, "0.012", "MISS"),
             nginx_line("PUT /qa/questions/9/helpful HTTP/1.1", 204, "0.020", "-"),
             nginx_line("GET /readyz HTTP/1.1", 200, "0.001", "-")]
    assert list(bench.parse_log_lines(lines)) == [("product_styles", 4.0, "HIT"), ("qa_questions", 12.0, "MISS"),
                                                  ("qa_question_helpful", 20.0, "")]


def test_hit_ratios_count_cacheable_gets_per_route():
    rows = [("product", 1.0, "HIT")] * 3 + [("product", 9.0, "MISS"), ("qa_questions", 5.0, "EXPIRED"),
                                            ("qa_question_helpful", 30.0, "")]
    summary = bench.summarise_log(rows)
    assert summary["hit_ratio"] == 0.6  # 3 hits of 5 cacheable GETs; the PUT is not cacheable
    assert summary["endpoints"]["product"] == {"requests": 4, "p99_ms": 8.8, "cacheable": 4, "hits": 3,
                                               "hit_ratio": 0.75}
    assert summary["endpoints"]["qa_question_helpful"]["hit_ratio"] is None
    assert summary["requests"] == 6


def test_spread_is_the_median_with_min_and_max():
    assert bench.spread([2400, 2000, 2600]) == "2,400 (2,000–2,600)"
    assert bench.spread([12.34], "{:.1f}") == "12.3"
    assert bench.spread([None]) == ""


def test_the_default_layout_follows_the_cores():
    assert fleet.default_instances(1) == fleet.default_instances(2) == 1  # this machine's kind
    assert fleet.default_nginx_workers(2) == 1
    counts = [fleet.default_instances(c) for c in range(1, 65)]
    assert counts == sorted(counts) and counts[-1] > 1  # more cores never mean fewer instances
    assert fleet.default_instances() == fleet.default_instances(__import__("os").cpu_count())


def test_the_hit_ceiling_counts_first_reads_and_reads_after_a_write(tmp_path):
    """Three page loads of product 7 (related: 8), the third with a review posted first: the first
    is all misses, the second all hits, the third misses only the reviews views of 7."""
    files = {s: [] for s in ("products", "qa", "reviews")}
    for page, write in ((0, None), (1, None), (2, "reviews_post")):
        requests = bench.page_load(7, {7: [8]})
        if write:
            requests.insert(0, bench.a_write(write, 7, {}, {}))
        for service, method, path, body in requests:
            files[service].append(f"{page}\t{method}\t{path}\t{body}\n")
    for service, lines in files.items():
        (tmp_path / f"{service}.txt").write_text("".join(lines))
    reads = sum(1 for lines in files.values() for line in lines if "\tGET\t" in line)
    assert reads == 27

    assert Ceiling(1).replay(tmp_path, 1) == 0.0
    assert Ceiling(1).replay(tmp_path, 2) == 9 / 18
    assert Ceiling(1).replay(tmp_path, 3) == 16 / 27  # the list and meta of 7 were changed by the post
    one = Ceiling(1)
    assert (one.replay(tmp_path, 1), one.replay(tmp_path, 3)) == (0.0, 25 / 27)  # a cache fed before
    assert Ceiling(2).replay(tmp_path, 3) < 16 / 27  # two caches, each meets every view first
