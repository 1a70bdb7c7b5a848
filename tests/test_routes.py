"""One list of routes, one page load: everything that names a route agrees with the OpenAPI
descriptions (atelier_bench.routes reads them), and everything that replays a page load reads
k6/lib/page-load.json.

Checked here: the services' view names (the `route` label of their metrics), k6 (its route
table, URL builders and every script's route names, run through real k6), the benchmarks
(`make bench`'s per-service endpoints, the tail, the fleet's page loads and writes), the soak,
the capacity model and docs/metrics.md.
"""
import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from atelier_bench import fleet, routes, soak, tail
from atelier_bench.service import load_definitions
from atelier_common.localpg import ROOT, SERVICES

UNREACHABLE_DATABASE = "postgresql://nobody:none@127.0.0.1:9/none"
K6 = Path(sys.executable).parent / "k6"


def test_the_route_list_is_the_openapi_operations():
    listed = routes.all_routes()
    assert len(listed) == 17 and len({r.name for r in listed}) == 17
    assert {r.service for r in listed} == set(SERVICES)
    for route in listed:
        assert route.kind == ("read" if route.method == "GET" else "write")
        assert route.status == {"GET": 200, "POST": 201, "PUT": 204}[route.method]
    assert routes.route_name("GET", "/qa/questions/12/answers?count=5") == "qa_answers"
    assert routes.route_name("PUT", "/reviews/3/helpful") == "reviews_helpful"
    assert routes.route_name("GET", "/products/7/") == "product"
    assert routes.route_name("GET", "/products/7/styles/x") is None
    assert routes.route_name("DELETE", "/products/7") is None


@pytest.mark.parametrize("service", SERVICES)
def test_every_view_is_named_after_its_operation(service):
    """The view's name is the `route` label of the metrics: it must be the operationId."""
    app = importlib.import_module(service).create_app({"database_url": UNREACHABLE_DATABASE})
    documented = {(r.method, re.sub(r"\{[^}]+\}", "{}", r.path)): r.name
                  for r in routes.all_routes(plumbing=True) if r.service == service}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        key = re.sub(r"<[^>]+>", "{}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert documented[(method, key)] == rule.endpoint.rsplit(".", 1)[-1], (method, rule.rule)


def k6_run(tmp_path, script: str, env=None) -> str:
    """Run a k6 script of one iteration; what it printed with console.log."""
    path = tmp_path / "probe.js"
    path.write_text(script)
    out = tmp_path / "console.txt"
    result = subprocess.run([str(K6), "run", "--quiet", "--no-summary", "--log-format", "raw", "--console-output", str(out),
                             str(path)],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert result.returncode == 0, result.stderr[-2000:]
    return out.read_text()


def test_k6_routes_and_urls_are_the_list(tmp_path):
    api = (ROOT / "k6" / "lib" / "api.js").as_uri()
    printed = k6_run(tmp_path, f"""
import {{ ROUTES, url, BASE }} from '{api}';
export const options = {{ iterations: 1, vus: 1 }};
export default function () {{
  const out = {{}};
  for (const [name, r] of Object.entries(ROUTES)) {{
    out[name] = {{ service: r.service, method: r.method, path: r.path, kind: r.kind, status: r.status,
                  url: url[name](7, 9).slice(BASE[r.service].length), checked: typeof r.body === 'function' }};
  }}
  console.log(JSON.stringify(out));
}}
""")
    k6_routes = json.loads(printed.strip().splitlines()[-1])
    listed = routes.by_name()
    assert set(k6_routes) == set(listed)
    for name, route in listed.items():
        seen = k6_routes[name]
        assert (seen["service"], seen["method"], seen["path"], seen["kind"], seen["status"]) == \
            (route.service, route.method, route.path, route.kind, route.status), name
        assert seen["checked"], name
        assert routes.route_name(route.method, seen["url"]) == name, (name, seen["url"])


def test_every_k6_script_names_only_routes(tmp_path):
    """k6 evaluates each script's init code (its route mix, lib/api.js's agreement check)."""
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"products": [[1, 100]], "last10_from": 90, **{
        pool: [1, 2] for pool in ("questions", "answers", "reviews", "reportable_questions",
                                  "reportable_answers", "reportable_reviews")}}))
    scripts = sorted((ROOT / "k6").glob("*.js"))
    assert {s.stem for s in scripts} == {"page-load", "products", "qa", "reviews"}
    for script in scripts:
        result = subprocess.run([str(K6), "inspect", "-e", f"IDS_FILE={ids}", "-e", "PROFILE=smoke", str(script)],
                                capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, (script.name, result.stderr[-2000:])
        mixed = re.findall(r"\[\s*\d+,\s*'([a-z_]+)'\s*\]", script.read_text())
        assert set(mixed) <= set(routes.by_name()), script.name


def test_the_page_load_names_routes_reads_and_writes():
    definition = routes.page_load()
    listed = routes.by_name()
    for name in [*definition["product"], *definition["each_related"], *definition["page"], *definition["query"]]:
        assert listed[name].kind == "read", name
    assert set(definition["writes"]) == {n for n, r in listed.items() if r.kind == "write"}
    assert 0 < definition["write_share"] < 1
    reads = routes.page_reads(5, [7, 9])
    assert len(reads) == len(definition["product"]) + 2 * len(definition["each_related"]) + len(definition["page"])
    for name, target in reads:
        assert routes.route_name("GET", target) == name, target


def test_the_fleet_benchmark_replays_the_page_load_and_names_its_routes():
    related = {5: [7, 9]}
    page = fleet.page_load(5, related)
    assert [target for _, _, target, _ in page] == [target for _, target in routes.page_reads(5, [7, 9])]
    for service, method, target, _ in page:
        assert routes.by_name()[routes.route_name(method, target)].service == service
    for kind in fleet.WRITABLE:
        service, method, target, _ = fleet.a_write(kind, 5, {5: 11}, {5: 13})
        assert routes.route_name(method, target) == kind
        assert routes.by_name()[kind].service == service


def test_the_soak_and_the_tail_name_routes():
    listed = routes.by_name()
    assert set(soak.WRITABLE) <= set(listed)
    for name, service, path, _ in tail.ENDPOINTS:
        if name == "healthz":
            continue
        assert routes.route_name("GET", path.replace("{id}", "1")) == name
        assert listed[name].service == service


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_benchmark_endpoint_is_one_of_its_routes(service):
    for endpoint in load_definitions(service).ENDPOINTS:
        name = routes.route_name(endpoint.method, endpoint.path.replace("{id}", "1"))
        assert name is not None, endpoint.name
        assert routes.by_name()[name].service == service


def test_the_capacity_model_reads_the_route_list():
    spec = importlib.util.spec_from_file_location("capacity", ROOT / "infra" / "terraform" / "capacity.py")
    capacity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(capacity)
    assert capacity.ROUTES == routes.kinds_by_service()


def test_the_metrics_doc_names_every_route():
    text = (ROOT / "docs" / "metrics.md").read_text()
    paragraph = text.split("**Route names.**", 1)[1].split("\n\n", 1)[0]
    named = re.findall(r"`([a-z_]+)`", paragraph.split("benchmark tables:", 1)[1].split("; plus the", 1)[0])
    assert sorted(named) == sorted(routes.by_name())
