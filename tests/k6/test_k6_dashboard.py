"""The Grafana dashboard of k6 runs, proven without Grafana: a real k6 smoke writes into a real
InfluxDB, then every template variable's and every panel's query from
infra/grafana/dashboards/k6.json runs against it (with the variables and $timeFilter
substituted as Grafana does) and must return points."""
import json
import re

from atelier_bench.routes import page_load
from atelier_common.localpg import ROOT

DASHBOARD = json.loads((ROOT / "infra" / "grafana" / "dashboards" / "k6.json").read_text())
# The reads of a page load (k6/lib/page-load.json): what the smoke run's page-load script asks for.
ROUTES = {name for part in ("product", "each_related", "page") for name in page_load()[part]}


def values(series_list) -> list:
    return [v for series in series_list for row in series["values"] for v in row[1:]
            if v is not None]


def grafana_substitute(query: str, variables: dict, start_ms: int, end_ms: int) -> str:
    """What Grafana sends: variables as regex alternations, the time range and interval."""
    for name, chosen in variables.items():
        query = query.replace(f"${name}", "(" + "|".join(re.escape(v) for v in chosen) + ")")
    return (query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
            .replace("$__interval_ms", "1000").replace("$__interval", "1s")
            .replace("$__from", str(start_ms)).replace("$__to", str(end_ms)))


def test_every_panel_query_returns_points_for_the_run(smoke_run, influx, influx_query):
    assert smoke_run["returncode"] == 0, smoke_run["output"][-3000:]
    run = smoke_run["run"]
    times = influx_query(influx, f'SELECT count("value") FROM "http_reqs" WHERE "run" = \'{run}\'')
    assert times, "k6 wrote nothing to InfluxDB"
    first = influx_query(influx, f'SELECT first("value") FROM "http_reqs" WHERE "run" = \'{run}\'')
    last = influx_query(influx, f'SELECT last("value") FROM "http_reqs" WHERE "run" = \'{run}\'')
    start_ms, end_ms = first[0]["values"][0][0] - 1000, last[0]["values"][0][0] + 1000

    variables = {}
    for variable in DASHBOARD["templating"]["list"]:  # in order: `name` depends on `run`
        query = grafana_substitute(variable["query"], variables, start_ms, end_ms)
        found = values(influx_query(influx, query))
        assert found, f"variable {variable['name']}: {query}"
        variables[variable["name"]] = [run] if variable["name"] == "run" else found
    assert run in values(influx_query(influx, DASHBOARD["templating"]["list"][0]["query"]))
    assert ROUTES <= set(variables["name"])

    panels = DASHBOARD["panels"]
    assert len(panels) >= 8
    for panel in panels:
        assert panel["datasource"]["uid"] == "k6-influxdb"
        for target in panel["targets"]:
            query = grafana_substitute(target["query"], variables, start_ms, end_ms)
            assert not re.search(r"\$[_a-zA-Z]", query), query
            series = influx_query(influx, query)
            assert values(series), f"panel {panel['title']!r} returned no points: {query}"
            if "GROUP BY" in query and '"name"' in query.split("GROUP BY")[-1]:
                assert ROUTES <= {s["tags"]["name"] for s in series}, panel["title"]


def test_influxdb_holds_the_runs_requests_per_endpoint_and_no_url_series(smoke_run, influx, influx_query):
    run = smoke_run["run"]
    summary = json.loads((smoke_run["folder"] / "summary.json").read_text())["metrics"]
    per_route = influx_query(influx, f'SELECT count("value") FROM "http_reqs" '
                                     f'WHERE "run" = \'{run}\' GROUP BY "name"')
    counts = {s["tags"]["name"]: s["values"][0][1] for s in per_route}
    assert sum(counts.values()) == summary["http_reqs"]["count"]
    for route, count in counts.items():
        assert count == summary[f"http_req_duration{{name:{route}}}"]["count"], route
    keys = {row[0] for s in influx_query(influx, 'SHOW TAG KEYS FROM "http_reqs"') for row in s["values"]}
    assert "name" in keys and "run" in keys and "url" not in keys


def test_the_provisioned_datasource_is_the_one_the_panels_name():
    provisioning = ROOT / "infra" / "grafana" / "provisioning"
    datasources = (provisioning / "datasources" / "datasources.yaml").read_text()
    uids = set(re.findall(r"^\s+uid: (\S+)$", datasources, re.M))
    assert {"k6-influxdb", "services-prometheus"} <= uids
    assert "dbName: k6" in datasources  # the database `make loadtest INFLUX=1` writes
    used = {p["datasource"]["uid"] for p in DASHBOARD["panels"]} | {
        v["datasource"]["uid"] for v in DASHBOARD["templating"]["list"]}
    assert used == {"k6-influxdb"}
    provider = (provisioning / "dashboards" / "dashboards.yaml").read_text()
    assert "path: $GRAFANA_DASHBOARDS" in provider
