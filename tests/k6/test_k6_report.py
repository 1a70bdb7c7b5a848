"""`make loadtest` with real k6: thresholds enforced, results kept, and the HTML report drawn
with data in a real headless Chromium (the page's own script draws the plots)."""
import gzip
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

from atelier_bench.routes import page_load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Plots(HTMLParser):
    """The drawn SVG plots of a DOM: id -> {drawn points, polylines' coordinates}."""

    def __init__(self):
        super().__init__()
        self.plots, self.current, self.body = {}, None, {}
        self.tables, self.table, self.row = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "svg" and "plot" in attrs.get("class", ""):
            self.current = self.plots[attrs["id"]] = {
                "drawn": int(attrs.get("data-drawn-points", 0)), "coordinates": 0, "series": set()}
        elif tag in ("polyline", "circle") and self.current is not None:
            self.current["coordinates"] += len(attrs.get("points", "0,0").split())
            self.current["series"].add(attrs.get("data-series"))
        elif tag == "table":
            self.table = self.tables[attrs.get("id")] = []
        elif tag == "tr" and self.table is not None:
            self.row = []
            self.table.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.row.append("")

    def handle_endtag(self, tag):
        if tag == "svg":
            self.current = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.row is not None and self.row and self.table is not None:
            self.row[-1] += data


def rendered_dom(path) -> Plots:
    """The DOM after the page's scripts ran, as headless Chromium dumps it."""
    assert CHROMIUM, "chromium is missing: `make test` installs it as root (tools/install.py)"
    completed = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         "--virtual-time-budget=5000", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    dom = Plots()
    dom.feed(completed.stdout)
    return dom


def test_smoke_passes_its_thresholds_and_keeps_its_results(smoke_run):
    assert smoke_run["returncode"] == 0, smoke_run["output"][-3000:]
    folder = smoke_run["folder"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["count"] > 100
    with gzip.open(folder / "points.csv.gz", "rt") as points:
        header = points.readline().split(",")
        lines = points.readlines()
    # Every request tagged by route name, and never by its raw URL.
    assert "url" not in header
    names = {line.split(",")[header.index("name")] for line in lines if line.startswith("http_reqs,")}
    assert {name for part in ("product", "each_related", "page") for name in page_load()[part]} <= names
    assert all(re.fullmatch(r"[a-z_]+", name) for name in names)


def test_report_draws_every_plot_with_the_runs_data(smoke_run):
    folder = smoke_run["folder"]
    page = (folder / "report.html").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "the page must be self-contained"
    dom = rendered_dom(folder / "report.html")
    data = json.loads(re.search(r"const DATA = (.*);\n", page).group(1))
    assert int(dom.body.get("data-rendered", 0)) == len(data["plots"]) == len(dom.plots) == 5
    for spec in data["plots"]:
        drawn = dom.plots[f"plot-{spec['id']}"]
        expected = sum(v is not None for series in spec["series"] for v in series["values"])
        assert drawn["drawn"] == drawn["coordinates"] == expected > 0, spec["id"]
    # The endpoint table agrees with k6's own summary, route by route.
    summary = json.loads((folder / "summary.json").read_text())["metrics"]
    rows = {row[0]: row for row in dom.tables["endpoints"][1:]}
    assert int(rows["all"][1]) == summary["http_reqs"]["count"]
    for route, row in rows.items():
        if route != "all":
            assert int(row[1]) == summary[f"http_req_duration{{name:{route}}}"]["count"], route
    thresholds = dom.tables["thresholds"][1:]
    assert len(thresholds) == sum(len(m.get("thresholds", {})) for m in summary.values())
    assert {row[-1] for row in thresholds} == {"passed"}


def test_a_failed_threshold_fails_the_run_and_shows_in_the_report(stack, loadtest, tmp_path):
    failing = loadtest(stack, tmp_path / "run", "--profile", "smoke", "--script", "products",
                       DURATION="3s", RATE="40", READ_P95_MS="0.001")
    assert failing["returncode"] == 99, failing["output"][-3000:]  # k6: thresholds crossed
    dom = rendered_dom(failing["folder"] / "report.html")
    failed = [row for row in dom.tables["thresholds"][1:] if row[-1] == "failed"]
    assert failed and all(row[2] == "p(95)<0.001" for row in failed)
