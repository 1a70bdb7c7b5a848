"""The services' Grafana dashboard, proved without Grafana: a real Prometheus (Debian's package)
scrapes real gunicorn instances through infra/prometheus/ (prometheus.yml + targets.py), and
every panel query and template variable of infra/grafana/dashboards/services.json, with the
variables substituted as Grafana would, returns data from it."""
import json
import math
import re
import shutil
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import requests

from atelier_common.localpg import ROOT, wait_for
from atelier_common.testing import free_port

DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "services.json"
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
RATE_INTERVAL = "20s"  # what Grafana would pick for a 1 s scrape interval and a short time range
VARIABLES = {"service": "products", "instance": ".*", "route": ".*"}


def panel_queries(dashboard: dict):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(f"${name}", value)
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", "5m")


@pytest.fixture
def prometheus(tmp_path):
    """Prometheus as `make prometheus` runs it: the committed config, targets from targets.py."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: `make test` installs it as root (tools/install.py)"
    shutil.copy(PROMETHEUS_DIR / "prometheus.yml", tmp_path / "prometheus.yml")
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    base = f"http://127.0.0.1:{port}"

    def ready():
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        try:
            return requests.get(base + "/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(ready, 30, "Prometheus")

    def scrape(*targets):
        subprocess.run([sys.executable, str(PROMETHEUS_DIR / "targets.py"), "--out", str(tmp_path / "targets.json"),
                        "--scrape-interval", "1s", *[f"--target={t}" for t in targets]], check=True)

    yield base, scrape
    process.terminate()
    process.wait(20)


def query(base: str, expr: str) -> list:
    answer = requests.get(base + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def traffic(bases, seconds: float):
    """Reads on every route (404s from the empty database, 422s, 200s), from 4 threads."""
    paths = ["/products", "/products/1", "/products/1/styles", "/products/1/related", "/products/2",
             "/products/x", "/healthz", "/readyz", "/no/such/path"]
    deadline = time.monotonic() + seconds

    def client(offset):
        with requests.Session() as session:
            i = offset
            while time.monotonic() < deadline:
                session.get(bases[i % len(bases)] + paths[i % len(paths)], timeout=10)
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    return threads


def database_trouble(base: str, database_url: str):
    """With the products table locked: one statement timeout (QueryCanceled) and pool timeouts."""
    locker = psycopg2.connect(database_url)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE product_document IN ACCESS EXCLUSIVE MODE")
        statuses = []
        threads = [threading.Thread(target=lambda: statuses.append(
            requests.get(base + "/products/1", timeout=10).status_code)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [503] * 4
    finally:
        locker.rollback()
        locker.close()


def test_every_panel_query_returns_data_from_a_real_prometheus(serve, database_factory, prometheus):
    database_url = database_factory("products")  # empty: product reads answer 404 after a query
    dashboard = json.loads(DASHBOARD.read_text())
    prometheus_url, scrape = prometheus
    fast = dict(METRICS_FLUSH_SECONDS=0.2)
    calm = serve("products", database_url, WEB_CONCURRENCY=2, **fast)
    troubled = serve("products", database_url, DB_POOL_MAX=1, DB_POOL_WAIT_SECONDS=0.1,
                     DB_STATEMENT_TIMEOUT_MS=300, **fast)
    instances = [base.removeprefix("http://") for base in (calm, troubled)]
    scrape(*[f"products={instance}" for instance in instances])
    wait_for(lambda: len(query(prometheus_url, 'up{service="products"} == 1')) == 2, 30, "both targets scraped")

    for thread in traffic([calm, troubled], 4):
        thread.join()
    database_trouble(troubled, database_url)
    time.sleep(2.5)  # the last flush (0.2 s) and two more scrapes (1 s)

    empty, not_a_number = [], []
    for title, expr in panel_queries(dashboard):
        result = query(prometheus_url, substitute(expr))
        if not result:
            empty.append((title, expr))
        elif not any(math.isfinite(float(series["value"][1])) for series in result):
            not_a_number.append((title, expr))
    assert not empty, f"queries without data: {empty}"
    assert not not_a_number, f"queries without a number: {not_a_number}"
    assert len(list(panel_queries(dashboard))) >= 15

    # The template variables' own queries (Grafana's label_values(selector, label)).
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]["query"]).groups()
        values = requests.get(f"{prometheus_url}/api/v1/label/{label}/values",
                              params={"match[]": substitute(selector)}, timeout=10).json()["data"]
        assert values, variable["name"]
        if label == "instance":
            assert sorted(values) == sorted(instances)
        if label == "route":
            assert {"product", "product_styles", "product_related", "products_list", "unmatched"} <= set(values)

    # What the panels show is what happened.
    by_kind = {s["metric"]["kind"]: s for s in query(prometheus_url, substitute(
        'sum by (kind, instance) (increase(atelier_db_errors_total{service=~"$service"}[1m]))'))}
    assert set(by_kind) == {"QueryCanceled"} and by_kind["QueryCanceled"]["metric"]["instance"] == instances[1]
    timeouts = query(prometheus_url, 'sum by (instance) (atelier_db_pool_timeouts_total{service="products"})')
    timeouts = {s["metric"]["instance"]: float(s["value"][1]) for s in timeouts}
    assert timeouts[instances[0]] == 0 and timeouts[instances[1]] >= 3  # (traffic may have added some)
